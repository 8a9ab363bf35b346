"""``Client``: a :class:`~engramdb.Memory` on the other side of ``engramdb serve``.

The same methods, arguments, return types and errors as ``Memory`` (for the calls the REST
API serves), over HTTP with httpx. Records come back through :mod:`engramdb.wire`, the one
serialisation, so a ``Hit`` from a Client equals the ``Hit`` the server's ``Memory`` made.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from types import TracebackType
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from . import errors as _errors
from .errors import EngramError, MissingDependencyError, StoreError
from .forget import DeletionReceipt
from .consolidate.engine import Report
from .lifecycle import MaintenanceReport, Policy, Recognition
from .model import (
    CoreBlock, CoreChange, Entity, Episode, Fact, Flagged, Hit, Hits, MemoryGraph, Related, Relevance, Segment, StoreStats,
    Summary,
)
from .recall.packing import Context
from .structured import Row, Rows
from .wire import load

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependencyError("the client needs its extra: pip install 'engramdb[server]'") from exc


def _when(value: str | datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class Client:
    """``Client("http://127.0.0.1:8765", api_key="...")``: the memory a server holds."""

    def __init__(self, base_url: str = "http://127.0.0.1:8765", *, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        try:
            clean = {k: v for k, v in (params or {}).items() if v is not None}
            resp = self._http.request(method, path, json=json, params=clean)
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach the engramdb server at {self._http.base_url}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                cls = getattr(_errors, err["type"], None)
                message = str(err["message"])
            except (ValueError, KeyError, TypeError):
                cls, message = None, resp.text[:200]
            if not (isinstance(cls, type) and issubclass(cls, EngramError)):
                cls = _errors.AuthError if resp.status_code == 401 else EngramError
            raise cls(message, status=resp.status_code)
        return resp.json()

    @staticmethod
    def _path(*parts: str) -> str:
        for p in parts:
            if not isinstance(p, str):
                raise _errors.InputError(f"an id must be a string, not {type(p).__name__}")
        return "/".join(quote(p, safe="") for p in parts)

    # -- the Memory API ----------------------------------------------------------------------

    def add(
        self,
        messages: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        timestamp: str | datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> builtins.list[str]:
        body = {"messages": messages, "user_id": user_id, "session_id": session_id, "agent_id": agent_id,
                "timestamp": _when(timestamp), "metadata": metadata, "source": source}
        return list(self._call("POST", "/v1/memories", json={k: v for k, v in body.items() if v is not None})["ids"])

    def search(
        self, query: str, *, user_id: str, limit: int = 10, now: str | datetime | None = None,
        as_of: str | datetime | None = None, include_archived: bool = False,
    ) -> Hits:
        body = {"query": query, "user_id": user_id, "limit": limit, "now": _when(now), "as_of": _when(as_of),
                "include_archived": include_archived}
        data = self._call("POST", "/v1/search", json={k: v for k, v in body.items() if v is not None})
        hits = load(list[Hit], data["hits"])
        return Hits(hits, load(Relevance, data["relevance"]), data.get("aggregate"), hits[: int(data.get("instances") or 0)])

    def related(self, episode_id: str, *, user_id: str | None = None, limit: int = 10) -> builtins.list[Related]:
        data = self._call("GET", f"/v1/episodes/{self._path(episode_id)}/related", params={"user_id": user_id, "limit": limit})
        return load(list[Related], data["related"])  # type: ignore[no-any-return]

    def graph(self, *, user_id: str, around: str | None = None, limit: int = 50) -> MemoryGraph:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/graph", params={"around": around, "limit": limit})
        return load(MemoryGraph, data)  # type: ignore[no-any-return]

    def context(
        self, query: str, *, user_id: str, budget_tokens: int = 1000, now: str | datetime | None = None,
        as_of: str | datetime | None = None, group: str = "auto",
    ) -> Context:
        body = {"query": query, "user_id": user_id, "budget_tokens": budget_tokens, "now": _when(now), "as_of": _when(as_of),
                "group": group}
        return load(Context, self._call("POST", "/v1/context", json={k: v for k, v in body.items() if v is not None}))  # type: ignore[no-any-return]

    def timeline(
        self, *, user_id: str, query: str | None = None, start: str | datetime | None = None,
        end: str | datetime | None = None, limit: int = 100, now: str | datetime | None = None, place: str | None = None,
    ) -> builtins.list[Episode]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/timeline",
                          params={"query": query, "start": _when(start), "end": _when(end), "limit": limit, "now": _when(now),
                                  "place": place})
        return load(list[Episode], data["episodes"])  # type: ignore[no-any-return]

    def query(
        self, *, user_id: str, subject: str | None = None, predicate: str | None = None, object: str | None = None,
        entity: str | None = None, between: tuple[str | datetime | None, str | datetime | None] | None = None,
        as_of: str | datetime | None = None, known_at: str | datetime | None = None, amounts: bool = False,
        limit: int = 1000,
    ) -> Rows:
        body = {"user_id": user_id, "subject": subject, "predicate": predicate, "object": object, "entity": entity,
                "between": [_when(b) for b in between] if between is not None else None, "as_of": _when(as_of),
                "known_at": _when(known_at), "amounts": amounts, "limit": limit}
        data = self._call("POST", "/v1/query", json={k: v for k, v in body.items() if v is not None})
        return Rows(load(list[Row], data["rows"]))

    def summary(
        self, *, user_id: str, level: str = "person", query: str | None = None, limit: int = 50
    ) -> builtins.list[Summary]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/summary",
                          params={"level": level, "query": query, "limit": limit})
        return load(list[Summary], data["nodes"])  # type: ignore[no-any-return]

    def places(self, *, user_id: str) -> builtins.list[Entity]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/places")
        return load(list[Entity], data["places"])  # type: ignore[no-any-return]

    def list(
        self, *, user_id: str, session_id: str | None = None, limit: int | None = None, offset: int = 0
    ) -> builtins.list[Episode]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/episodes",
                          params={"session_id": session_id, "limit": limit, "offset": offset})
        return load(list[Episode], data["episodes"])  # type: ignore[no-any-return]

    def facts(
        self, *, user_id: str, status: str | None = "current", subject: str | None = None, predicate: str | None = None
    ) -> builtins.list[Fact]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/facts",
                          params={"status": status if status is not None else "all", "subject": subject, "predicate": predicate})
        return load(list[Fact], data["facts"])  # type: ignore[no-any-return]

    def profile(self, *, user_id: str) -> dict[str, dict[str, builtins.list[Fact]]]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/profile")
        return load(dict[str, dict[str, list[Fact]]], data["profile"])  # type: ignore[no-any-return]

    def get(self, episode_id: str, *, user_id: str | None = None) -> Episode:
        return load(Episode, self._call("GET", f"/v1/episodes/{self._path(episode_id)}", params={"user_id": user_id}))  # type: ignore[no-any-return]

    def delete(self, episode_id: str, *, user_id: str | None = None) -> DeletionReceipt:
        data = self._call("DELETE", f"/v1/episodes/{self._path(episode_id)}", params={"user_id": user_id})
        return load(DeletionReceipt, data)  # type: ignore[no-any-return]

    def forget(
        self, *, user_id: str, session_id: str | None = None, before: str | datetime | None = None,
        query: str | None = None, episode_ids: Sequence[str] | None = None, dry_run: bool | None = None, limit: int = 20,
    ) -> DeletionReceipt:
        """Forget a whole user, a session, what was said before a time, given episodes, or what a
        query finds (as :meth:`Memory.forget`)."""
        if session_id is None and before is None and query is None and episode_ids is None and dry_run is None:
            return load(DeletionReceipt, self._call("DELETE", f"/v1/users/{self._path(user_id)}"))  # type: ignore[no-any-return]
        body = {"session_id": session_id, "before": _when(before), "query": query,
                "episode_ids": list(episode_ids) if isinstance(episode_ids, (list, tuple)) else episode_ids,
                "dry_run": dry_run, "limit": limit}
        data = self._call("POST", f"/v1/users/{self._path(user_id)}/forget", json={k: v for k, v in body.items() if v is not None})
        return load(DeletionReceipt, data)  # type: ignore[no-any-return]

    def export(self, *, user_id: str) -> builtins.list[Episode]:
        """Every episode of the user, oldest first (a list: it came over the network whole)."""
        return load(list[Episode], self._call("GET", f"/v1/users/{self._path(user_id)}/export")["episodes"])  # type: ignore[no-any-return]

    def entities(self, *, user_id: str) -> builtins.list[Entity]:
        return load(list[Entity], self._call("GET", f"/v1/users/{self._path(user_id)}/entities")["entities"])  # type: ignore[no-any-return]

    def segments(self, *, user_id: str, session_id: str | None = None) -> builtins.list[Segment]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/segments", params={"session_id": session_id})
        return load(list[Segment], data["segments"])  # type: ignore[no-any-return]

    def consolidate(self, *, user_id: str) -> Report:
        return load(Report, self._call("POST", f"/v1/users/{self._path(user_id)}/consolidate"))  # type: ignore[no-any-return]

    def quarantined(self, *, user_id: str, limit: int = 100) -> builtins.list[Flagged]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/quarantine", params={"limit": limit})
        return load(list[Flagged], data["flagged"])  # type: ignore[no-any-return]

    def quarantine(self, episode_id: str, *, user_id: str) -> Episode:
        return load(Episode, self._call("POST", f"/v1/users/{self._path(user_id)}/quarantine/{self._path(episode_id)}"))  # type: ignore[no-any-return]

    def release(self, episode_id: str, *, user_id: str) -> Episode:
        return load(Episode, self._call("POST", f"/v1/users/{self._path(user_id)}/release/{self._path(episode_id)}"))  # type: ignore[no-any-return]

    def reinforce(self, episode_ids: Sequence[str], *, user_id: str, at: str | datetime | None = None) -> int:
        body = {"episode_ids": list(episode_ids) if isinstance(episode_ids, (list, tuple)) else episode_ids, "at": _when(at)}
        data = self._call("POST", f"/v1/users/{self._path(user_id)}/reinforce", json={k: v for k, v in body.items() if v is not None})
        return int(data["reinforced"])

    def maintain(
        self, *, user_id: str, policy: Policy | None = None, now: str | datetime | None = None, dry_run: bool = False
    ) -> MaintenanceReport:
        body = {"policy": policy.to_dict() if isinstance(policy, Policy) else policy, "now": _when(now), "dry_run": dry_run}
        data = self._call("POST", f"/v1/users/{self._path(user_id)}/maintain", json={k: v for k, v in body.items() if v is not None})
        return load(MaintenanceReport, data)  # type: ignore[no-any-return]

    def policy(self, *, user_id: str | None = None) -> Policy | None:
        """The user's policy (their own, else their tenant's default); without ``user_id``, the
        tenant's default."""
        path = "/v1/policy" if user_id is None else f"/v1/users/{self._path(user_id)}/policy"
        data = self._call("GET", path)["policy"]
        return None if data is None else Policy.from_dict(data)

    def set_policy(self, policy: Policy | None, *, user_id: str | None = None) -> None:
        """Keep a policy for the user; without ``user_id``, for every user of the tenant without one."""
        body = {"policy": policy.to_dict() if isinstance(policy, Policy) else policy}
        path = "/v1/policy" if user_id is None else f"/v1/users/{self._path(user_id)}/policy"
        self._call("PUT", path, json=body)

    def recognise(
        self, query: str, *, user_id: str, limit: int = 5, threshold: float = 0.6, include_active: bool = False
    ) -> Recognition:
        body = {"query": query, "limit": limit, "threshold": threshold, "include_active": include_active}
        return load(Recognition, self._call("POST", f"/v1/users/{self._path(user_id)}/recognise", json=body))  # type: ignore[no-any-return]

    def restore(self, episode_ids: Sequence[str], *, user_id: str) -> builtins.list[str]:
        body = {"episode_ids": list(episode_ids) if isinstance(episode_ids, (list, tuple)) else episode_ids}
        return list(self._call("POST", f"/v1/users/{self._path(user_id)}/restore", json=body)["restored"])

    def stats(self, *, user_id: str | None = None) -> StoreStats:
        return load(StoreStats, self._call("GET", "/v1/stats", params={"user_id": user_id}))  # type: ignore[no-any-return]

    # -- working memory ------------------------------------------------------------------------

    def core(self, *, user_id: str) -> dict[str, CoreBlock]:
        return load(dict[str, CoreBlock], self._call("GET", f"/v1/users/{self._path(user_id)}/core")["blocks"])  # type: ignore[no-any-return]

    def core_set(self, label: str, value: str, *, user_id: str, limit: int | None = None) -> CoreBlock:
        body = {"value": value, **({"limit": limit} if limit is not None else {})}
        return load(CoreBlock, self._call("PUT", f"/v1/users/{self._path(user_id)}/core/{self._path(label)}", json=body))  # type: ignore[no-any-return]

    def core_append(self, label: str, text: str, *, user_id: str) -> CoreBlock:
        path = f"/v1/users/{self._path(user_id)}/core/{self._path(label)}/append"
        return load(CoreBlock, self._call("POST", path, json={"text": text}))  # type: ignore[no-any-return]

    def core_replace(self, label: str, old: str, new: str, *, user_id: str) -> CoreBlock:
        path = f"/v1/users/{self._path(user_id)}/core/{self._path(label)}/replace"
        return load(CoreBlock, self._call("POST", path, json={"old": old, "new": new}))  # type: ignore[no-any-return]

    def core_delete(self, label: str, *, user_id: str) -> None:
        self._call("DELETE", f"/v1/users/{self._path(user_id)}/core/{self._path(label)}")

    def core_history(self, *, user_id: str, label: str | None = None, limit: int = 50) -> builtins.list[CoreChange]:
        data = self._call("GET", f"/v1/users/{self._path(user_id)}/core-history", params={"label": label, "limit": limit})
        return load(list[CoreChange], data["changes"])  # type: ignore[no-any-return]

    def core_undo(self, change_id: str, *, user_id: str) -> CoreBlock | None:
        data = self._call("POST", f"/v1/users/{self._path(user_id)}/core-undo", json={"change_id": change_id})
        return load(CoreBlock | None, data["block"])  # type: ignore[no-any-return]
