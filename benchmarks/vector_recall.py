"""How much of the exact nearest rows the clustered vector index finds, with its rows kept as
int8 codes or as float32, on one user's stored vectors.

    python benchmarks/vector_recall.py DB [--user big] [--k 300] [--queries 200] [--shared ../shared]

Reads the user's passage vectors from the database (the truth: float32, as the model gave
them), groups them as a ``ClusteredIndex`` does, and asks the speed benchmark's questions
(embedded by the default model) of three indexes: an exact scan of every row; the clustered
index with its rows and their first pass's as int8 codes, a scale per row (what engramdb
stores); and the same clusters with float32 rows (what it stored before). For each: ms per
query, the share of the exact top k found (``same@k``), the share of questions whose top 10
equals the exact one, and the largest difference of a similarity returned from the exact one.
Use a scope kept by ``speed.py --keep`` (``scope-100000.db``: 194k vectors;
``scope-1000000.db``: 1.9M).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from engramdb import Memory, default_embedder
from engramdb.index.vector import ClusteredIndex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import texts_and_queries  # noqa: E402


def stored_vectors(mem: Memory, user: str, model: str, chunk: int = 250_000) -> tuple[np.ndarray, np.ndarray]:
    """(vectors of the units that have one, float32; whether each unit has one), in unit order."""
    vectors, valid, after = [], [], 0
    while True:
        rows = mem.store.scope_rows(user, model, after_unit=after, unit_limit=chunk, episodes=False)
        if rows.unit_rowid.size == 0:
            break
        vectors.append(rows.unit_vector[rows.has_vector])
        valid.append(rows.has_vector)
        after = int(rows.unit_rowid[-1])
        print(f"  read {sum(v.size for v in valid):,} units", file=sys.stderr, flush=True)
    return np.concatenate(vectors).astype(np.float32), np.concatenate(valid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db", type=Path)
    ap.add_argument("--user", default="big")
    ap.add_argument("--k", type=int, default=300)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = ap.parse_args()
    embedder = default_embedder()
    _, questions = texts_and_queries(args.shared)
    queries = np.asarray(embedder.embed(questions[: args.queries]), dtype=np.float32)
    with Memory(args.db, embedder=embedder) as mem:
        vectors, valid = stored_vectors(mem, args.user, embedder.model_id)
    positions = np.flatnonzero(valid)  # a unit's position among all units (as the index returns)

    t0 = time.perf_counter()
    coded = ClusteredIndex(vectors.shape[1])
    row_of = np.cumsum(valid) - 1  # a unit's row among the vectors
    for a in range(0, valid.size, 250_000):  # appended as the scope does: every unit, with or without one
        part = np.zeros((min(250_000, valid.size - a), vectors.shape[1]), dtype=np.float32)
        has = valid[a : a + part.shape[0]]
        part[has] = vectors[row_of[a : a + part.shape[0]][has]]
        coded.append(part, has)
    coded.search(queries[0], 1)  # groups the rows (k-means, the first pass's axes)
    build_s = time.perf_counter() - t0
    state = coded.state()
    by_row = np.searchsorted(positions, state["positions"])
    rows = vectors[by_row]
    plain = ClusteredIndex.from_state({**{k: v for k, v in state.items() if k not in ("scales", "low_scales")},
                                       "matrix": rows, "low": rows @ state["basis"]})

    report: dict[str, object] = {"vectors": int(vectors.shape[0]), "k": args.k, "queries": len(queries),
                                 "grouped_in_s": round(build_s, 1), "clusters": int(state["centroids"].shape[0])}
    t0 = time.perf_counter()
    truth = []
    for q in queries:
        sims = vectors @ q
        top = np.argpartition(-sims, args.k - 1)[: args.k]
        top = top[np.lexsort((top, -sims[top]))]  # ties: by position, as the index orders them
        truth.append(positions[top])
    report["exact_ms"] = round((time.perf_counter() - t0) * 1000 / len(queries), 2)
    for name, index in (("int8_codes", coded), ("float32_rows", plain)):
        found, equal10, worst, spent = 0.0, 0, 0.0, 0.0
        for q, want in zip(queries, truth):
            t0 = time.perf_counter()
            got, got_sims = index.search(q, args.k)
            spent += time.perf_counter() - t0
            found += len(set(got.tolist()) & set(want.tolist())) / args.k
            equal10 += got[:10].tolist() == want[:10].tolist()
            worst = max(worst, float(np.abs(got_sims - vectors[np.searchsorted(positions, got)] @ q).max()))
        report[name] = {"ms": round(spent * 1000 / len(queries), 2), f"same@{args.k}": round(found / len(queries), 3),
                        "top10_equal": round(equal10 / len(queries), 3), "max_similarity_error": float(f"{worst:.2g}")}
        print(json.dumps(report), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
