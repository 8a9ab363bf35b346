"""The REST API: a thin ASGI adapter over one :class:`~engramdb.Memory`.

Every route validates nothing itself: it maps the JSON body (which mirrors the Python keyword
arguments) onto a ``Memory`` call, and the call's typed errors onto HTTP statuses. Records go out
through :mod:`engramdb.wire`, the one serialisation. With API keys, each request acts for the
key's tenant: user ids are put in its namespace on the way in and taken out on the way back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import (
    AuthError, EmbedderError, EngramError, InputError, LimitError, MissingDependencyError, NotFoundError, StoreError,
)
from ..lifecycle import Policy
from ..memory import Memory
from ..wire import dump
from .keys import Tenant, tenant_for

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependencyError("the server needs its extra: pip install 'engramdb[server]'") from exc

#: The web inspector: one static page over the REST API.
INSPECTOR = Path(__file__).parent / "static" / "inspector.html"

#: Largest request body accepted (bytes): a message may be 100,000 characters, an add 10,000 of them.
MAX_BODY = 16 * 1024 * 1024


def status_of(exc: EngramError) -> int:
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, LimitError):
        return 413
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, (StoreError, EmbedderError)):
        return 503
    return 500


def error_body(exc: EngramError) -> dict[str, Any]:
    return {"error": {"type": type(exc).__name__, "message": exc.message}}


def _strip(data: Any, tenant: Tenant) -> Any:
    """The tenant's view of dumped data: user ids without the namespace."""
    if tenant.name is None:
        return data
    if isinstance(data, list):
        return [_strip(v, tenant) for v in data]
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if k == "user_id" and isinstance(v, str):
                mine = tenant.outside(v)
                if mine is None:  # never expected: every call is scoped to the tenant's users
                    raise NotFoundError("not found")
                out[k] = mine
            else:
                out[k] = _strip(v, tenant)
        return out
    return data


def _policy(data: Any) -> Policy | None:
    """A Policy from its JSON (``Policy.to_dict``'s keys), or None."""
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) - {"archive_below", "max_active", "ttl_days", "horizon_days"}:
        raise InputError("policy is an object of archive_below, max_active, ttl_days, horizon_days", field="policy")
    return Policy.from_dict(data)


def create_app(memory: Memory, *, require_keys: bool | None = None, max_body: int = MAX_BODY) -> FastAPI:
    """The ASGI app over ``memory``. ``require_keys``: demand a key on every request (default:
    when the store holds any key)."""
    app = FastAPI(title="engramdb", version="1", description="Long-term memory for LLM agents: REST API.")
    store = memory.store
    needs_key = bool(store.list_keys()) if require_keys is None else require_keys

    @app.exception_handler(EngramError)
    async def _typed(request: Request, exc: EngramError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=status_of(exc))

    def tenant(request: Request) -> Tenant:
        auth = request.headers.get("authorization", "")
        if not auth:
            if needs_key:
                raise AuthError("this server needs an API key: Authorization: Bearer KEY")
            return Tenant(None)
        scheme, _, key = auth.partition(" ")
        found = tenant_for(store, key.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise AuthError("unknown or revoked API key")
        return found

    async def body(request: Request) -> dict[str, Any]:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body:  # refused before it is read
            raise LimitError(f"request body over {max_body:,} bytes")
        raw = await request.body()
        if len(raw) > max_body:
            raise LimitError(f"request body over {max_body:,} bytes")
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            raise InputError(f"the body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError("the body must be a JSON object of the call's keyword arguments")
        return data

    def args(data: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise InputError(f"unknown argument {unknown[0]!r}; allowed: {', '.join(allowed)}", field=unknown[0])
        return data

    def out(data: Any, t: Tenant) -> JSONResponse:
        return JSONResponse(_strip(dump(data), t))

    def owned(episode_id: str, t: Tenant, user_id: str | None) -> str:
        """The store user id owning an episode, if the tenant may reach it (else not found)."""
        if not isinstance(episode_id, str):
            raise InputError("episode id must be a string", field="episode_id")
        owner = store.episode_owners([episode_id]).get(episode_id)
        if owner is None or t.outside(owner) is None or (user_id is not None and owner != t.inside(user_id)):
            raise NotFoundError(f"no episode {episode_id!r}", id=episode_id)
        return owner

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/", include_in_schema=False)
    def inspector() -> HTMLResponse:
        return HTMLResponse(INSPECTOR.read_text(encoding="utf-8"))

    @app.get("/v1/users")
    def users(request: Request) -> JSONResponse:
        t = tenant(request)
        return out({"users": sorted(u for u in (t.outside(x) for x in memory.users()) if u is not None)}, t)

    @app.get("/v1/users/{user_id}/changes")
    def changes(request: Request, user_id: str, limit: int = 100) -> JSONResponse:
        t = tenant(request)
        return out({"changes": memory.changes(user_id=t.inside(user_id), limit=limit)}, t)

    @app.post("/v1/users/{user_id}/changes/{change_id}/undo")
    def undo(request: Request, user_id: str, change_id: str) -> JSONResponse:
        t = tenant(request)
        return out(memory.undo(change_id, user_id=t.inside(user_id)), t)

    @app.get("/v1/users/{user_id}/facts/{fact_id}/history")
    def history(request: Request, user_id: str, fact_id: str) -> JSONResponse:
        t = tenant(request)
        return out({"facts": memory.history(fact_id, user_id=t.inside(user_id))}, t)

    @app.post("/v1/memories")
    async def add(request: Request) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("messages", "user_id", "session_id", "agent_id", "timestamp", "metadata", "source"))
        data["user_id"] = t.inside(data.get("user_id"))
        ids = memory.add(data.pop("messages", None), writer=t.writer, **data)
        return out({"ids": ids}, t)

    @app.post("/v1/search")
    async def search(request: Request) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("query", "user_id", "limit", "now", "as_of", "include_archived", "explain"))
        data["user_id"] = t.inside(data.get("user_id"))
        explain = data.pop("explain", False) is True
        hits = memory.search(data.pop("query", None), **data)
        found: dict[str, Any] = {"hits": hits, "relevance": hits.relevance}
        if hits.aggregate:  # "how many…?": the first ``instances`` hits are the instances gathered
            found.update(aggregate=hits.aggregate, instances=len(hits.instances))
        if explain:  # why(): each hit's signals, episodes and the facts drawn from them
            found["why"] = [list(memory.why(h).lines) for h in hits]
        return out(found, t)

    @app.post("/v1/context")
    async def context(request: Request) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("query", "user_id", "budget_tokens", "now", "as_of", "group"))
        data["user_id"] = t.inside(data.get("user_id"))
        return out(memory.context(data.pop("query", None), **data), t)

    @app.get("/v1/users/{user_id}/timeline")
    def timeline(request: Request, user_id: str, query: str | None = None, start: str | None = None,
                 end: str | None = None, limit: int = 100, now: str | None = None, place: str | None = None) -> JSONResponse:
        t = tenant(request)
        eps = memory.timeline(user_id=t.inside(user_id), query=query, start=start, end=end, limit=limit, now=now, place=place)
        return out({"episodes": eps}, t)

    @app.post("/v1/query")
    async def query(request: Request) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("user_id", "subject", "predicate", "object", "entity", "between", "as_of",
                                          "known_at", "amounts", "limit", "unit"))
        data["user_id"] = t.inside(data.get("user_id"))
        unit = data.pop("unit", None)
        if unit is not None and not isinstance(unit, str):
            raise InputError("unit must be a string", field="unit")
        rows = memory.query(**data)
        return out({"rows": list(rows), "count": len(rows), "total": rows.total(unit), "latest": rows.latest,
                    "earliest": rows.earliest}, t)

    @app.get("/v1/users/{user_id}/summary")
    def summary(request: Request, user_id: str, level: str = "person", query: str | None = None, limit: int = 50) -> JSONResponse:
        t = tenant(request)
        return out({"nodes": memory.summary(user_id=t.inside(user_id), level=level, query=query, limit=limit)}, t)

    @app.get("/v1/users/{user_id}/places")
    def places(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        return out({"places": memory.places(user_id=t.inside(user_id))}, t)

    @app.get("/v1/users/{user_id}/episodes")
    def list_episodes(request: Request, user_id: str, session_id: str | None = None, limit: int | None = None,
                      offset: int = 0) -> JSONResponse:
        t = tenant(request)
        return out({"episodes": memory.list(user_id=t.inside(user_id), session_id=session_id, limit=limit, offset=offset)}, t)

    @app.get("/v1/users/{user_id}/facts")
    def facts(request: Request, user_id: str, status: str | None = "current", subject: str | None = None,
              predicate: str | None = None) -> JSONResponse:
        t = tenant(request)
        st = None if status in ("", "all") else status
        return out({"facts": memory.facts(user_id=t.inside(user_id), status=st, subject=subject, predicate=predicate)}, t)

    @app.get("/v1/users/{user_id}/profile")
    def profile(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        return out({"profile": memory.profile(user_id=t.inside(user_id))}, t)

    @app.get("/v1/users/{user_id}/graph")
    def graph(request: Request, user_id: str, around: str | None = None, limit: int = 50) -> JSONResponse:
        t = tenant(request)
        return out(memory.graph(user_id=t.inside(user_id), around=around, limit=limit), t)

    @app.get("/v1/episodes/{episode_id}/related")
    def related(request: Request, episode_id: str, user_id: str | None = None, limit: int = 10) -> JSONResponse:
        t = tenant(request)
        owner = owned(episode_id, t, user_id)
        return out({"related": memory.related(episode_id, user_id=owner, limit=limit)}, t)

    @app.get("/v1/episodes/{episode_id}")
    def get(request: Request, episode_id: str, user_id: str | None = None) -> JSONResponse:
        t = tenant(request)
        owner = owned(episode_id, t, user_id)
        return out(memory.get(episode_id, user_id=owner), t)

    @app.delete("/v1/episodes/{episode_id}")
    def delete(request: Request, episode_id: str, user_id: str | None = None) -> JSONResponse:
        t = tenant(request)
        owner = owned(episode_id, t, user_id)
        return out(memory.delete(episode_id, user_id=owner), t)

    @app.delete("/v1/users/{user_id}")
    def forget_user(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        return out(memory.forget(user_id=t.inside(user_id)), t)

    @app.get("/v1/users/{user_id}/core")
    def core(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        return out({"blocks": memory.core(user_id=t.inside(user_id))}, t)

    @app.put("/v1/users/{user_id}/core/{label}")
    async def core_set(request: Request, user_id: str, label: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("value", "limit"))
        return out(memory.core_set(label, data.get("value"), user_id=t.inside(user_id), limit=data.get("limit")), t)  # type: ignore[arg-type]

    @app.post("/v1/users/{user_id}/core/{label}/append")
    async def core_append(request: Request, user_id: str, label: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("text",))
        return out(memory.core_append(label, data.get("text"), user_id=t.inside(user_id)), t)  # type: ignore[arg-type]

    @app.post("/v1/users/{user_id}/core/{label}/replace")
    async def core_replace(request: Request, user_id: str, label: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("old", "new"))
        return out(memory.core_replace(label, data.get("old"), data.get("new"), user_id=t.inside(user_id)), t)  # type: ignore[arg-type]

    @app.delete("/v1/users/{user_id}/core/{label}")
    def core_delete(request: Request, user_id: str, label: str) -> JSONResponse:
        t = tenant(request)
        memory.core_delete(label, user_id=t.inside(user_id))
        return out({"deleted": label}, t)

    @app.get("/v1/users/{user_id}/core-history")
    def core_history(request: Request, user_id: str, label: str | None = None, limit: int = 50) -> JSONResponse:
        t = tenant(request)
        return out({"changes": memory.core_history(user_id=t.inside(user_id), label=label, limit=limit)}, t)

    @app.post("/v1/users/{user_id}/core-undo")
    async def core_undo(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("change_id",))
        return out({"block": memory.core_undo(data.get("change_id"), user_id=t.inside(user_id))}, t)  # type: ignore[arg-type]

    @app.get("/v1/users/{user_id}/entities")
    def entities(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        return out({"entities": memory.entities(user_id=t.inside(user_id))}, t)

    @app.get("/v1/users/{user_id}/segments")
    def segments(request: Request, user_id: str, session_id: str | None = None) -> JSONResponse:
        t = tenant(request)
        return out({"segments": memory.segments(user_id=t.inside(user_id), session_id=session_id)}, t)

    @app.post("/v1/users/{user_id}/consolidate")
    def consolidate(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        return out(memory.consolidate(user_id=t.inside(user_id)), t)

    @app.post("/v1/users/{user_id}/forget")
    async def forget(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("session_id", "before", "query", "episode_ids", "dry_run", "limit"))
        return out(memory.forget(user_id=t.inside(user_id), **data), t)

    @app.get("/v1/users/{user_id}/quarantine")
    def quarantined(request: Request, user_id: str, limit: int = 100) -> JSONResponse:
        t = tenant(request)
        return out({"flagged": memory.quarantined(user_id=t.inside(user_id), limit=limit)}, t)

    @app.post("/v1/users/{user_id}/quarantine/{episode_id}")
    def quarantine(request: Request, user_id: str, episode_id: str) -> JSONResponse:
        t = tenant(request)
        return out(memory.quarantine(episode_id, user_id=t.inside(user_id)), t)

    @app.post("/v1/users/{user_id}/release/{episode_id}")
    def release(request: Request, user_id: str, episode_id: str) -> JSONResponse:
        t = tenant(request)
        return out(memory.release(episode_id, user_id=t.inside(user_id)), t)

    @app.post("/v1/users/{user_id}/reinforce")
    async def reinforce(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("episode_ids", "at"))
        return out({"reinforced": memory.reinforce(data.get("episode_ids"), user_id=t.inside(user_id), at=data.get("at"))}, t)  # type: ignore[arg-type]

    @app.post("/v1/users/{user_id}/maintain")
    async def maintain(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("policy", "now", "dry_run"))
        policy = _policy(data.get("policy"))
        report = memory.maintain(user_id=t.inside(user_id), policy=policy, now=data.get("now"), dry_run=data.get("dry_run", False))
        return out(report, t)

    @app.get("/v1/users/{user_id}/policy")
    def get_policy(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        kept = memory.policy(user_id=t.inside(user_id))
        return out({"policy": kept.to_dict() if kept else None}, t)

    @app.put("/v1/users/{user_id}/policy")
    async def set_policy(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("policy",))
        memory.set_policy(_policy(data.get("policy")), user_id=t.inside(user_id))
        kept = memory.policy(user_id=t.inside(user_id))
        return out({"policy": kept.to_dict() if kept else None}, t)

    @app.get("/v1/policy")
    def get_default_policy(request: Request) -> JSONResponse:
        """The tenant's default policy (its namespace's; keyless: the store's default)."""
        t = tenant(request)
        kept = memory.policy(namespace=t.name) if t.name else memory.policy()
        return out({"policy": kept.to_dict() if kept else None}, t)

    @app.put("/v1/policy")
    async def set_default_policy(request: Request) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("policy",))
        if t.name:
            memory.set_policy(_policy(data.get("policy")), namespace=t.name)
            kept = memory.policy(namespace=t.name)
        else:
            memory.set_policy(_policy(data.get("policy")))
            kept = memory.policy()
        return out({"policy": kept.to_dict() if kept else None}, t)

    @app.post("/v1/users/{user_id}/recognise")
    async def recognise(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("query", "limit", "threshold", "include_active"))
        return out(memory.recognise(data.pop("query", None), user_id=t.inside(user_id), **data), t)

    @app.post("/v1/users/{user_id}/restore")
    async def restore(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        data = args(await body(request), ("episode_ids",))
        return out({"restored": memory.restore(data.get("episode_ids"), user_id=t.inside(user_id))}, t)  # type: ignore[arg-type]

    @app.get("/v1/users/{user_id}/export")
    def export(request: Request, user_id: str) -> JSONResponse:
        t = tenant(request)
        return out({"episodes": list(memory.export(user_id=t.inside(user_id)))}, t)

    @app.get("/v1/stats")
    def stats(request: Request, user_id: str | None = None) -> JSONResponse:
        t = tenant(request)
        if user_id is None and t.name is not None:
            raise InputError("with a tenant's key, stats are per user: pass user_id", field="user_id")
        return out(memory.stats(user_id=t.inside(user_id) if user_id is not None else None), t)

    return app
