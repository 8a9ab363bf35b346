"""The engramdb error tree.

Every error the library raises on purpose derives from :class:`EngramError`, so callers
(and the CLI, REST and MCP adapters) can catch one type and map it once::

    EngramError
    ├── InputError            bad input from the caller; nothing was written
    │   ├── ScopeError        a missing or malformed user_id / agent_id / session_id
    │   ├── ContentError      empty, non-string, invalid UTF-8 or oversized content
    │   ├── TimestampError    a timestamp that cannot be parsed
    │   └── LimitError        a call beyond a documented limit (messages per add, query size)
    ├── NotFoundError         an id or user that this store does not know
    │   └── UnknownUserError  a read for a user_id with no memories
    ├── StoreError            the storage backend failed (I/O, corruption, locked database)
    │   └── MigrationError    the schema could not be brought up to date
    ├── EmbedderError         the embedding model could not be loaded or run
    ├── DatasetError          an import/benchmark file is not in the expected format
    ├── LLMError              an OpenAI-compatible endpoint failed or is not configured
    └── MissingDependencyError  an optional extra is not installed (says which)

Errors carry context as attributes (``field``, ``index``, ``value``...) as well as a
message written for the person who will read it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ContentError",
    "DatasetError",
    "EmbedderError",
    "EngramError",
    "InputError",
    "LLMError",
    "LimitError",
    "MigrationError",
    "MissingDependencyError",
    "NotFoundError",
    "ScopeError",
    "StoreError",
    "TimestampError",
    "UnknownUserError",
]


class EngramError(Exception):
    """Root of every error engramdb raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)


class InputError(EngramError):
    """The caller passed something invalid; the store was not changed."""


class ScopeError(InputError):
    """A required scope (user_id) is missing, or a scope id is malformed."""


class ContentError(InputError):
    """Message content is empty, not a string, not valid UTF-8, or too large."""


class TimestampError(InputError):
    """A timestamp could not be parsed."""


class LimitError(InputError):
    """A call exceeds a documented limit."""


class NotFoundError(EngramError):
    """The id or user is not known to this store."""


class UnknownUserError(NotFoundError):
    """A read was made for a user_id that has no memories in this store."""


class AuthError(EngramError):
    """No API key, or one the server does not know or has revoked (HTTP 401)."""


class StoreError(EngramError):
    """The storage backend failed."""


class MigrationError(StoreError):
    """The schema could not be migrated."""


class EmbedderError(EngramError):
    """The embedding model could not be loaded or failed to run."""


class DatasetError(EngramError):
    """An import or benchmark file is not in the expected format."""


class LLMError(EngramError):
    """An LLM endpoint failed, answered nonsense, or is not configured."""


class MissingDependencyError(EngramError):
    """An optional dependency is missing; the message names the extra to install."""

    @classmethod
    def for_extra(cls, package: str, extra: str, purpose: str) -> MissingDependencyError:
        return cls(
            f"{purpose} needs the '{package}' package: pip install 'engramdb[{extra}]'",
            package=package,
            extra=extra,
        )
