"""Adding text the file has already (its vectors stored) to a new scope: turns/s by the number
of turns per add, and what an add writes.

    python benchmarks/ingest_writes.py [--shared ../shared] [--turns 10000] [--sizes 20 100 500]

The texts are ``speed.py``'s (real turns of the shared LongMemEval and LoCoMo files). They are
first added to one scope (embedded unless the shared embedding cache has them), then to a new
scope per batch size, in adds of that many turns, with what the texts alone give kept from
before (``Memory.analyses``) and, at the first size, with it dropped first. Last, 50 adds of the
first size with the WAL left to grow: the pages an add writes to it, by table or index
(``dbstat``), the cost of its commit.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import texts_and_queries  # noqa: E402

from engramdb import Memory, default_embedder  # noqa: E402


def add_all(mem: Memory, user: str, msgs: list[dict], size: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(msgs), size):
        mem.add(msgs[i : i + size], user_id=user, session_id=f"{user}-{i // size}", timestamp="2024-01-01T00:00:00")
    return time.perf_counter() - t0


def wal_pages(mem: Memory, db: Path, msgs: list[dict], size: int, adds: int = 50) -> dict[str, object]:
    """Pages an add writes to the WAL, by the table or index they belong to."""
    conn = mem.store._conn  # type: ignore[attr-defined]  # SQLite only: a measurement, not an API
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    try:
        add_all(mem, "wal", msgs[: adds * size], size)
        data = Path(f"{db}-wal").read_bytes()
        page = struct.unpack(">I", data[8:12])[0]
        frames = [struct.unpack(">I", data[at : at + 4])[0] for at in range(32, len(data) - 24 - page + 1, 24 + page)]
        owner = dict((p, n) for n, p in conn.execute("SELECT name, pageno FROM dbstat").fetchall())
        by = collections.Counter(owner.get(p, "?") for p in frames)
    finally:
        conn.execute("PRAGMA wal_autocheckpoint=1000")
    return {
        "pages_per_add": round(len(frames) / adds, 1),
        "mb_per_add": round(len(frames) * page / adds / 1e6, 3),
        "pages_per_add_by_btree": {n: round(c / adds, 1) for n, c in by.most_common(12)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--turns", type=int, default=10_000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 500])
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/engramdb/embeddings.sqlite"))
    args = ap.parse_args()
    msgs = texts_and_queries(args.shared)[0][: args.turns]
    report: dict[str, object] = {"turns": len(msgs)}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "memory.db"
        with Memory(db, embedder=default_embedder(), embedding_cache=args.cache) as mem:
            report["first_scope_turns_per_s"] = round(len(msgs) / add_all(mem, "first", msgs, args.sizes[0]), 1)
            rates = {}
            for size in args.sizes:
                rates[size] = round(len(msgs) / add_all(mem, f"kept-{size}", msgs, size), 1)
            report["turns_per_s_by_turns_per_add"] = rates
            mem.analyses.clear()
            report[f"turns_per_s_analyses_dropped_{args.sizes[0]}"] = round(
                len(msgs) / add_all(mem, "dropped", msgs, args.sizes[0]), 1)
            report[f"wal_at_{args.sizes[0]}_turns_per_add"] = wal_pages(mem, db, msgs, args.sizes[0])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
