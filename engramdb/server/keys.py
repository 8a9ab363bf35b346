"""API keys and tenants for ``engramdb serve``.

A key belongs to a tenant; a tenant's user ids are its own namespace: inside the store, tenant
``acme``'s user ``u1`` is ``acme/u1`` (a tenant name has no ``/``), and every id that goes out
has the prefix taken off again. Keys are random, shown once, and stored as SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..store.base import Store

_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PREFIX = "edb_"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tenant:
    """Who a request acts for: ``name`` (None: the open, keyless local mode) and the key's name."""

    name: str | None
    key_id: str | None = None
    key_name: str = ""

    def inside(self, user_id: Any) -> Any:
        """The store's id for one of this tenant's user ids (left as is if not a string: the
        facade then gives the typed error)."""
        if self.name is None or not isinstance(user_id, str):
            return user_id
        return f"{self.name}/{user_id}"

    def outside(self, user_id: str) -> str | None:
        """This tenant's user id for a store id, or None if it belongs to someone else."""
        if self.name is None:
            return user_id
        prefix = self.name + "/"
        return user_id[len(prefix):] if user_id.startswith(prefix) else None

    @property
    def writer(self) -> str | None:
        return f"key:{self.key_name or self.key_id}" if self.key_id else None


def create_key(store: Store, tenant: str, name: str = "") -> tuple[str, str]:
    """A new key for ``tenant``: (key id, the key). The key is not kept; only its digest is."""
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise InputError("a tenant name is 1-64 letters, digits, '_', '.' or '-'", field="tenant")
    key = PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + uuid.uuid4().hex[:12]
    store.put_key(key_id, tenant, name[:100], digest(key))
    return key_id, key


def tenant_for(store: Store, key: str) -> Tenant | None:
    found = store.find_key(digest(key))
    return Tenant(found[1], found[0], found[2]) if found else None
