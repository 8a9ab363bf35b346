"""What the memory graph costs a search at scale: search latency on one large scope with the
graph walk on and off, the same queries, the same process.

    python benchmarks/graph_speed.py DB [--user big] [--shared ../shared] [--queries 300] [--passes 3]

DB is a memory file with one large user, e.g. the 100k-episode scope benchmarks/speed.py and
benchmarks/backends.py build (``--keep DIR``). A memory built before the graph gets its mention
edges first (``Memory.rebuild_graph``, timed). Queries are the distinct LongMemEval and LoCoMo
questions, as in speed.py; each is asked once per setting, back to back, the setting asked first
taking turns, after a pass that embeds every question (so that neither setting pays for
embedding a query: until this round the walk's setting went first and paid for it, ~7-10 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import texts_and_queries  # noqa: E402

from engramdb import Memory, RecallOptions, Weights, default_embedder  # noqa: E402
from engramdb.bench.metrics import percentile  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db", type=Path)
    ap.add_argument("--user", default="big")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--passes", type=int, default=3, help="timed passes; the median of each figure is reported")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args()
    _, queries = texts_and_queries(args.shared)
    queries = queries[: args.queries]
    out: dict[str, object] = {"db": str(args.db), "user": args.user, "queries": len(queries)}
    with Memory(args.db, embedder=default_embedder()) as mem:
        edges = sum(1 for e in mem.graph(user_id=args.user, limit=1).edges)
        if not mem.entities(user_id=args.user) or edges == 0:
            t0 = time.perf_counter()
            out["mention_edges"] = mem.rebuild_graph(user_id=args.user)
            out["rebuild_seconds"] = round(time.perf_counter() - t0, 1)
        out["entities"] = len(mem.entities(user_id=args.user))
        on = RecallOptions(weights=Weights(graph=0.2))  # the walk is off by default
        off = RecallOptions(weights=Weights(graph=0))
        for q in queries:  # warm the index and the query-vector cache: neither setting embeds
            mem.search(q, user_id=args.user, options=off)
        passes = []
        for _ in range(args.passes):
            lat: dict[str, list[float]] = {"graph": [], "no-graph": []}
            walked = 0
            for i, q in enumerate(queries):
                settings = [("graph", on), ("no-graph", off)]
                for name, opts in settings if i % 2 else settings[::-1]:  # each goes first every other time
                    t0 = time.perf_counter()
                    hits = mem.search(q, user_id=args.user, limit=10, options=opts)
                    lat[name].append((time.perf_counter() - t0) * 1000)
                    if name == "graph":
                        walked += any(h.signals.get("graph", 0) > 0 for h in hits)
            one: dict[str, object] = {name: {"p50": round(percentile(xs, 0.5), 1), "p95": round(percentile(xs, 0.95), 1)}
                                      for name, xs in lat.items()}
            one["added_ms"] = {k: round(percentile(lat["graph"], p) - percentile(lat["no-graph"], p), 1)
                               for k, p in (("p50", 0.5), ("p95", 0.95))}
            # paired: what the walk added to each question (the same question, back to back)
            added = [a - b for a, b in zip(lat["graph"], lat["no-graph"])]
            one["added_per_question_ms"] = {"p50": round(percentile(added, 0.5), 1), "p95": round(percentile(added, 0.95), 1)}
            one["queries_the_graph_moved"] = walked
            passes.append(one)
        out["passes"] = passes
        # the median pass of each figure: this machine is shared, and one pass can be slowed throughout
        for key in ("graph", "no-graph", "added_ms", "added_per_question_ms"):
            out[key] = {k: statistics.median(p[key][k] for p in passes) for k in ("p50", "p95")}  # type: ignore[index]
        out["queries_the_graph_moved"] = passes[-1]["queries_the_graph_moved"]
    print(json.dumps(out, indent=1))
    if args.output:
        args.output.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
