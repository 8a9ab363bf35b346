"""Normalise and validate what callers hand to ``Memory.add`` — before anything is written."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence

from .errors import ContentError, InputError, LimitError, ScopeError
from .guard import SOURCES
from .timeutil import parse_timestamp

#: Longest message content accepted, in characters (about 25k tokens).
MAX_CONTENT_CHARS = 100_000
#: Most messages accepted by one ``add`` call.
MAX_MESSAGES_PER_ADD = 10_000
#: Longest id (user, agent, session) accepted.
MAX_ID_CHARS = 256
#: Longest query accepted by ``search``/``context``, in characters.
MAX_QUERY_CHARS = 10_000

_MESSAGE_KEYS = {
    "content", "role", "name", "timestamp", "metadata", "place", "importance", "id", "recorded_at", "source", "writer",
    "status", "session_id", "agent_id",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass
class Draft:
    """A validated message, ready to persist."""

    content: str
    timestamp: datetime
    role: str | None = None
    name: str | None = None
    place: str | None = None
    importance: float | None = None  # None: estimated (engramdb.lifecycle.estimate_importance)
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # kept as the episode's id (an import of an export); else one is made
    recorded_at: datetime | None = None  # when the memory first learned it (an import keeps it)
    source: str | None = None  # who wrote it (engramdb.guard.SOURCES); None: what the role implies
    writer: str | None = None  # through what it came (an export keeps it)
    quarantined: bool = False  # an export of a quarantined episode stays quarantined
    session_id: str | None = None  # the message's, else the add's
    agent_id: str | None = None  # the message's, else the add's


def check_id(value: object, field_name: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ScopeError(
                f"{field_name} is required: every memory belongs to a user", field=field_name
            )
        return None
    if not isinstance(value, str):
        raise ScopeError(
            f"{field_name} must be a string, not {type(value).__name__}", field=field_name, value=value
        )
    if not value.strip():
        raise ScopeError(f"{field_name} must not be empty", field=field_name)
    if len(value) > MAX_ID_CHARS or _CONTROL.search(value) or "\x00" in value or not _encodable(value):
        raise ScopeError(
            f"{field_name} must be at most {MAX_ID_CHARS} printable characters of valid Unicode", field=field_name
        )
    return value


def _encodable(text: str) -> bool:
    """Valid Unicode: no lone surrogate (what UTF-8 cannot store)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_count(value: object, field_name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer argument (a limit, an offset) within bounds, or a :class:`LimitError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise LimitError(f"{field_name} must be an integer {bounds}", field=field_name, value=value)
    return value


def check_text(value: object, *, field_name: str, index: int | None = None, limit: int, allow_empty: bool = False) -> str:
    where = f"message {index}: " if index is not None else ""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContentError(
                f"{where}{field_name} is not valid UTF-8 (byte {exc.start})", field=field_name, index=index
            ) from exc
    if not isinstance(value, str):
        raise ContentError(
            f"{where}{field_name} must be a string, not {type(value).__name__}",
            field=field_name,
            index=index,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ContentError(
            f"{where}{field_name} is not valid UTF-8 (unpaired surrogate at {exc.start})",
            field=field_name,
            index=index,
        ) from exc
    if "\x00" in value:
        raise ContentError(f"{where}{field_name} contains a NUL character", field=field_name, index=index)
    if not value.strip() and not allow_empty:
        raise ContentError(f"{where}{field_name} is empty", field=field_name, index=index)
    if len(value) > limit:
        raise ContentError(
            f"{where}{field_name} has {len(value):,} characters; the limit is {limit:,}. "
            "Split long documents into several messages.",
            field=field_name,
            index=index,
        )
    return value


def _optional_str(msg: Mapping[str, Any], key: str, index: int) -> str | None:
    value = msg.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or len(value) > MAX_ID_CHARS
        or "\x00" in value
        or _CONTROL.search(value)
        or not _encodable(value)
    ):
        raise InputError(
            f"message {index}: {key} must be a string of at most {MAX_ID_CHARS} printable characters of valid Unicode",
            field=key,
            index=index,
        )
    return value.strip() or None


def _scope_id(msg: Mapping[str, Any], key: str, index: int, default: str | None) -> str | None:
    """A message's own session or agent id (checked as the add's are), else the add's."""
    value = msg.get(key)
    if value is None:
        return default
    try:
        return check_id(value, key, required=False)
    except ScopeError as exc:
        raise ScopeError(f"message {index}: {exc}", field=key, index=index) from exc


def _metadata(value: object, index: int | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(
            f"metadata must be a dict, not {type(value).__name__}", field="metadata", index=index
        )
    try:
        # strict JSON: no NaN or Infinity (export writes JSON other parsers must read), and
        # valid Unicode throughout (a lone surrogate cannot be stored)
        text = json.dumps(dict(value), allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
        return dict(json.loads(text))
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InputError(f"metadata must be strict JSON (no NaN, valid Unicode): {exc}", field="metadata", index=index) from exc


def normalise_messages(
    messages: object,
    *,
    default_time: datetime,
    metadata: Mapping[str, Any] | None = None,
    session_id: str | None = None,
    agent_id: str | None = None,
) -> list[Draft]:
    """Turn the ``messages`` argument of ``add`` into validated drafts, or raise InputError.
    ``session_id``, ``agent_id``: the add's, for messages that do not name their own."""
    if isinstance(messages, (str, bytes, bytearray)):
        items: Sequence[Any] = [{"content": messages}]
    elif isinstance(messages, Mapping):
        items = [messages]
    elif isinstance(messages, Sequence):
        items = messages
    else:
        raise InputError(
            "messages must be a string, a message dict, or a list of them, "
            f"not {type(messages).__name__}",
            field="messages",
        )
    if not items:
        raise InputError("messages is empty: nothing to add", field="messages")
    if len(items) > MAX_MESSAGES_PER_ADD:
        raise LimitError(
            f"{len(items):,} messages in one add; the limit is {MAX_MESSAGES_PER_ADD:,} — add them in batches",
            count=len(items),
        )
    shared_meta = _metadata(metadata, None)
    drafts: list[Draft] = []
    for i, item in enumerate(items):
        if isinstance(item, (str, bytes, bytearray)):
            item = {"content": item}
        if not isinstance(item, Mapping):
            raise InputError(
                f"message {i} must be a dict or a string, not {type(item).__name__}", index=i
            )
        unknown = set(item) - _MESSAGE_KEYS
        if unknown:
            raise InputError(
                f"message {i} has unknown keys {sorted(unknown)}; allowed: {sorted(_MESSAGE_KEYS)}",
                index=i,
                field=sorted(unknown)[0],
            )
        if "content" not in item:
            raise ContentError(f"message {i} has no content", index=i, field="content")
        content = check_text(item["content"], field_name="content", index=i, limit=MAX_CONTENT_CHARS)
        ts = item.get("timestamp")
        when = default_time if ts is None else parse_timestamp(ts, field=f"message {i} timestamp")
        importance = item.get("importance")
        if importance is not None and (
            isinstance(importance, bool) or not isinstance(importance, (int, float)) or not 0 <= importance <= 1
        ):
            raise InputError(f"message {i}: importance must be a number in [0, 1]", index=i, field="importance")
        meta = dict(shared_meta)
        meta.update(_metadata(item.get("metadata"), i))
        eid = check_id(item.get("id"), f"message {i} id", required=False)
        recorded = item.get("recorded_at")
        source = item.get("source")
        if source is not None and source not in SOURCES:
            raise InputError(f"message {i}: source must be one of {', '.join(SOURCES)}", index=i, field="source")
        status = item.get("status")
        if status is not None and status not in ("active", "quarantined"):
            raise InputError(f"message {i}: status must be active or quarantined", index=i, field="status")
        drafts.append(
            Draft(
                content=content,
                timestamp=when,
                role=_optional_str(item, "role", i),
                name=_optional_str(item, "name", i),
                place=_optional_str(item, "place", i),
                importance=None if importance is None else float(importance),
                metadata=meta,
                id=eid,
                recorded_at=None if recorded is None else parse_timestamp(recorded, field=f"message {i} recorded_at"),
                source=source,
                writer=_optional_str(item, "writer", i),
                quarantined=status == "quarantined",
                session_id=_scope_id(item, "session_id", i, session_id),
                agent_id=_scope_id(item, "agent_id", i, agent_id),
            )
        )
    ids = [d.id for d in drafts if d.id is not None]
    if len(ids) != len(set(ids)):
        raise InputError("two messages of one add have the same id", field="id")
    return drafts
