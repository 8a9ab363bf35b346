"""Load and isolation: concurrent clients against ``engramdb serve`` on loopback.

``clients`` threads, each with its own :class:`~engramdb.Client`, run mixed add / search /
context calls for ``seconds`` over ``users`` users split between two tenants (each with its own
key). Every user's messages carry a marker of its own; a result that shows another user's
marker, or an episode of another user, is a leak. Reported: calls, errors, leaks, throughput, and
latency p50/p95 per kind; then the server's own cost: the same 200 searches one at a time over
HTTP and in-process on the same Memory.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..memory import Memory

TOPICS = [
    "I adopted a cat named {m}.", "I moved to a flat near the river, {m} told me about it.",
    "My sister's wedding is in June; the planner is called {m}.", "I started learning the cello with {m}.",
    "We hiked the coast trail with our friend {m} last weekend.", "I bought a used bike from {m} for 150 euros.",
]
QUESTIONS = ["what is my cat called?", "who told me about the flat?", "who plans the wedding?",
             "who teaches me the cello?", "who did we hike with?", "who sold me the bike?"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(db: str | Path, *, clients: int = 16, seconds: float = 60.0, users: int = 50, seed: int = 0,
        embedder: Any = "default") -> dict[str, Any]:
    import uvicorn

    from ..client import Client
    from ..server.app import create_app
    from ..server.keys import create_key

    mem = Memory(db, embedder=embedder)
    keys = {t: create_key(mem.store, t, "load")[1] for t in ("acme", "beta")}
    people = [(("acme", "beta")[i % 2], f"u{i}", f"zq{i:03d}mark") for i in range(users)]
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(mem), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    # every user starts with a few memories, so searches have something to find
    for tenant, user, marker in people:
        with Client(url, api_key=keys[tenant]) as c:
            c.add([t.format(m=marker) for t in TOPICS[:3]], user_id=user)
    lat: dict[str, list[float]] = {"add": [], "search": [], "context": []}
    errors: list[str] = []
    leaks: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        rng = random.Random(f"{seed}:{n}")
        clients_by_tenant = {t: Client(url, api_key=k) for t, k in keys.items()}
        try:
            while time.monotonic() < stop:
                tenant, user, marker = rng.choice(people)
                c = clients_by_tenant[tenant]
                kind = rng.choices(("add", "search", "context"), weights=(2, 5, 3))[0]
                t0 = time.perf_counter()
                try:
                    if kind == "add":
                        c.add(rng.choice(TOPICS).format(m=marker), user_id=user)
                        seen: list[tuple[str, str]] = []
                    elif kind == "search":
                        hits = c.search(rng.choice(QUESTIONS), user_id=user, limit=10)
                        seen = [(e.user_id, e.text) for h in hits for e in h.episodes]
                    else:
                        ctx = c.context(rng.choice(QUESTIONS), user_id=user, budget_tokens=300)
                        seen = [(e.user_id, e.text) for h in ctx.hits for e in h.episodes]
                except Exception as exc:  # counted: the test and the bench want zero
                    with lock:
                        errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                dt = (time.perf_counter() - t0) * 1000
                bad = [t for u, t in seen if u != user or marker not in t]
                with lock:
                    lat[kind].append(dt)
                    leaks.extend(bad)
        finally:
            for c in clients_by_tenant.values():
                c.close()

    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    # The server's own cost: the same searches one at a time, over HTTP and in-process (under
    # load, latency is mostly waiting for the 2 cores: clients / throughput).
    asked = [(lambda r: (r.choice(people), r.choice(QUESTIONS)))(random.Random(f"{seed}:solo:{i}")) for i in range(200)]
    remote, direct = [], []
    clients_by_tenant = {t: Client(url, api_key=k) for t, k in keys.items()}
    for (tenant, user, _m), q in asked:
        t0 = time.perf_counter()
        clients_by_tenant[tenant].search(q, user_id=user, limit=10)
        remote.append((time.perf_counter() - t0) * 1000)
    for c in clients_by_tenant.values():
        c.close()
    server.should_exit = True
    thread.join(10)
    mem.track_use = False
    for (tenant, user, _m), q in asked:
        t0 = time.perf_counter()
        mem.search(q, user_id=f"{tenant}/{user}", limit=10)
        direct.append((time.perf_counter() - t0) * 1000)
    mem.close()

    def pct(xs: list[float], q: float) -> float | None:
        return round(float(np.percentile(xs, q)), 2) if xs else None

    calls = sum(len(v) for v in lat.values())
    return {
        "clients": clients, "seconds": seconds, "users": users, "tenants": 2,
        "calls": calls, "errors": len(errors), "error_examples": errors[:5], "leaks": len(leaks),
        "calls_per_second": round(calls / wall, 1),
        "latency_ms": {k: {"n": len(v), "p50": pct(v, 50), "p95": pct(v, 95)} for k, v in lat.items()},
        "one_client_search_ms": {"p50": pct(remote, 50), "p95": pct(remote, 95)},
        "in_process_search_ms": {"p50": pct(direct, 50), "p95": pct(direct, 95)},
        "server_overhead_p50_ms": round(float(np.percentile(remote, 50) - np.percentile(direct, 50)), 2),
    }
