"""Many processes on one memory: writers add, readers search, nothing is lost or unseen.

``writers`` processes each add ``adds`` messages (to users they share) as fast as they can,
each message carrying a unique token, and log every acknowledged add with the time it was
acknowledged. ``readers`` processes follow those logs: again and again they take the newest
acknowledged message and search its token until it comes back among the top 10 (through their
own recall index, which learns of other processes' writes from the journal), and record the lag.
Afterwards every acknowledged id must be in the store, once. Reported: errors, lost writes, adds per second, the readers'
lag p50 / p95 / max, and the writes a reader never found within ``GIVE_UP`` seconds: if a fresh
process does not find them either, that is ranking (the token does not lift the message into the
top 10 among thousands of near-identical ones), not visibility; ``not_visible`` counts the rest.

Used by ``engramdb bench writers`` (full size) and by the test suite (bounded).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from ..memory import Memory

USERS = ("team-a", "team-b")
#: A reader stops following a write it has not found this many seconds after it was acknowledged.
GIVE_UP = 10.0


def _writer(target: str, index: int, adds: int, log: str, embedder: Any) -> None:
    rng = random.Random(index)
    with Memory(target, embedder=embedder) as mem, open(log, "a", encoding="utf-8") as out:
        for i in range(adds):
            token = f"tok{index}x{i}q{rng.randrange(10**6)}"
            user = USERS[i % len(USERS)]
            try:
                [eid] = mem.add(f"Writer {index} noted {token} during the sync.", user_id=user,
                                session_id=f"w{index}")
            except Exception as exc:  # counted, never hidden
                out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
                out.flush()
                continue
            out.write(json.dumps({"id": eid, "user": user, "token": token, "acked": time.time()}) + "\n")
            out.flush()


def run(target: str, *, writers: int = 4, adds: int = 1000, readers: int = 2, embedder: Any = None,
        slots: int = 2, settle: float = 5.0) -> dict[str, Any]:
    """Run the writers and readers on ``target`` (a file or a PostgreSQL URL); see the module."""
    ctx = mp.get_context("spawn")  # a fresh interpreter per process, as separate programs would be
    with tempfile.TemporaryDirectory() as tmp:
        with Memory(target, embedder=embedder):
            pass  # create the schema once, before the processes race to
        logs = [os.path.join(tmp, f"writer-{i}.jsonl") for i in range(writers)]
        outs = [os.path.join(tmp, f"reader-{i}.json") for i in range(readers)]
        started = time.time()
        ws = [ctx.Process(target=_writer, args=(target, i, adds, logs[i], embedder)) for i in range(writers)]
        for p in ws:
            p.start()
        # Readers run until ``settle`` seconds after the writers finish (told by a file).
        rs = [ctx.Process(target=_reader_until, args=(target, logs, outs[i], os.path.join(tmp, "stop"), settle,
                                                         embedder, slots)) for i in range(readers)]
        for p in rs:
            p.start()
        for p in ws:
            p.join()
        wrote = time.time() - started
        Path(tmp, "stop").write_text(str(time.time()), encoding="utf-8")
        for p in rs:
            p.join(timeout=600)
        acked: list[str] = []
        errors: list[str] = []
        for log in logs:
            if not os.path.exists(log):  # the writer died before its first add
                errors.append(f"{log}: no log")
                continue
            for line in Path(log).read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                (acked if "id" in row else errors).append(str(row.get("id") or row.get("error")))
        reads: list[dict[str, Any]] = [
            json.loads(Path(o).read_text(encoding="utf-8")) if os.path.exists(o)
            else {"lags": [], "errors": ["no report"], "unseen_rows": []} for o in outs
        ]
    unseen = [row for r in reads for row in r["unseen_rows"]]
    with Memory(target, embedder=embedder) as mem:
        stored = [e.id for u in USERS for e in mem.list(user_id=u)]
        # A write a reader never found: does a fresh process find it? If not either, its token
        # does not bring it into the top 10 (ranking), and the reader was not behind (visibility).
        missed_fresh = sum(
            not any(row["id"] in h.episode_ids for h in mem.search(row["token"], user_id=row["user"], limit=10))
            for row in unseen
        )
    lost = sorted(set(acked) - set(stored))
    lags = np.array([x for r in reads for x in r["lags"]], dtype=np.float64)
    return {
        "target": "postgresql" if target.startswith(("postgres://", "postgresql://")) else "sqlite",
        "writers": writers, "adds_each": adds, "readers": readers,
        "acknowledged": len(acked), "stored": len(stored), "duplicates": len(stored) - len(set(stored)),
        "lost": len(lost), "write_errors": len(errors) + sum(int(p.exitcode != 0) for p in ws),
        "read_errors": sum(len(r["errors"]) for r in reads) + sum(int(p.exitcode != 0) for p in rs),
        "unseen": len(unseen),  # by the reader that followed it
        "unseen_by_a_fresh_process_too": missed_fresh,  # so not a visibility failure
        "not_visible": len(unseen) - missed_fresh,
        "adds_per_second": round(len(acked) / wrote, 1) if wrote else None,
        "lag_checked": int(lags.size),
        "lag_ms": {
            "p50": round(float(np.percentile(lags, 50)) * 1000, 1) if lags.size else None,
            "p95": round(float(np.percentile(lags, 95)) * 1000, 1) if lags.size else None,
            "max": round(float(lags.max()) * 1000, 1) if lags.size else None,
        },
        "lag_within_1s": round(float((lags <= 1.0).mean()), 4) if lags.size else None,
        "errors": (errors + [e for r in reads for e in r["errors"]])[:5],
    }


def _reader_until(target: str, logs: list[str], out_path: str, stop: str, settle: float, embedder: Any,
                  slots: int) -> None:
    """A reader (one process) that stops ``settle`` seconds after the ``stop`` file appears."""
    import threading

    deadline = [time.time() + 24 * 3600]

    def watch() -> None:
        while not os.path.exists(stop):
            time.sleep(0.05)
        deadline[0] = time.time() + settle

    threading.Thread(target=watch, daemon=True).start()
    _reader_loop(target, logs, deadline, out_path, embedder, slots)


def _reader_loop(target: str, logs: list[str], deadline: list[float], out_path: str, embedder: Any, slots: int) -> None:
    """Follow the writers' logs; search the newest acknowledged message (up to ``slots`` at once)
    by its token until it comes back, and record how long after its acknowledgement."""
    lags: list[float] = []
    errors: list[str] = []
    seen_lines = {log: 0 for log in logs}
    pending: list[dict[str, Any]] = []
    unseen: list[dict[str, Any]] = []
    newest: dict[str, Any] | None = None
    try:
        with Memory(target, embedder=embedder, track_use=False) as mem:
            while time.time() < deadline[0]:
                for log in logs:
                    try:
                        text = Path(log).read_text(encoding="utf-8")
                    except FileNotFoundError:
                        continue
                    lines = text.split("\n")[:-1]  # the last piece may be a line being written
                    for line in lines[seen_lines[log]:]:
                        seen_lines[log] += 1
                        row = json.loads(line)
                        if "id" in row:
                            newest = row if newest is None or row["acked"] > newest["acked"] else newest
                # Follow the newest acknowledged write, a few at a time: the lag then measures when
                # a write becomes visible, not how long this reader's own queue is.
                if newest is not None and len(pending) < slots:
                    pending.append(newest)
                newest = None
                still = []
                for row in pending:
                    try:
                        hits = mem.search(row["token"], user_id=row["user"], limit=10)
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    if any(row["id"] in h.episode_ids for h in hits):
                        lags.append(time.time() - row["acked"])
                    elif time.time() - row["acked"] > GIVE_UP:
                        unseen.append(row)  # frees the slot; run() asks a fresh process about it
                    else:
                        still.append(row)
                pending = still
                time.sleep(0.01)
    except Exception:
        errors.append(traceback.format_exc())
    Path(out_path).write_text(json.dumps({"lags": lags, "errors": errors, "unseen_rows": unseen + pending}),
                              encoding="utf-8")
