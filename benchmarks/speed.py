"""Ingest and search speed at 10k, 100k (and 1M) episodes in one user's scope.

    python benchmarks/speed.py [--shared ../shared] [--sizes 10000 100000] [--queries 200]
    python benchmarks/speed.py --keep DIR --sizes 10000 100000 1000000 --replicate

Texts are real conversation turns from the shared LongMemEval and LoCoMo files (turns are
reused, under new session ids, to reach the larger sizes). Measures:
- the embedding model's raw batch throughput (one big call) on the first 10k turns' whole texts,
  and on exactly the passages ingest embeds for them; cold ingest as a share of each;
- cold ingest: those texts through ``Memory.add`` (one call per 20-turn session), no cache;
- warm ingest: the same texts again into another scope (vectors come from the store, and what
  the texts alone give from the process: ``Memory.analyses``); and again into a third scope with
  those analyses dropped first (a process that has not seen the texts, as after a restart);
- the same messages sent again into that scope (a chat API resending its history): sightings;
- warm ingest of the same sessions into a fourth scope as ``engramdb import`` adds a history:
  2,000 messages per add, each naming its session;
- ingest of each larger scope (vectors from the cache), with its rate per 10k turns; or, with
  ``--replicate``, the scope before copied over (1M: the 100k scope ten times, under new ids),
  and the first search of a fresh process, which builds its index;
- search p50/p95/p99 (query embedding included; every query distinct) at each size, also by how
  a question is answered: in one recall, as an aggregate, or in parts (an anchor event, or each
  piece of a question relating several, embedded and recalled too: two or three recalls); warm
  (the second pass over the questions), and the first pass's p50/p95;
- at sizes whose vectors are clustered (``ClusteredIndex``), how many top-10 hits an exact index
  would give the same;
- the first search in a fresh process (a new interpreter opens the file and asks one question),
  with the user's recall index saved beside the file (``memory.db.idx``) and without it
  (``persist_indexes=False``: built from the database), and that process's peak RSS;
- a fresh process that only searches (every question, twice): its p50/p95, peak RSS, and the
  index arrays it holds in memory most of (this process also ingested, and holds every size's
  index).
The large scope borrows vectors from the shared embedding cache that ``engramdb bench`` fills
(``~/.cache/engramdb/embeddings.sqlite``); texts missing from it are embedded.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from engramdb import Memory, default_embedder
from engramdb.bench.metrics import percentile
from engramdb.index import vector
from engramdb.recall.query import aggregate_of, analyse, facets

EXACT_BELOW = vector.EXACT_BELOW

SESSION = 20


def texts_and_queries(shared: Path) -> tuple[list[dict], list[str]]:
    lme = json.load(gzip.open(shared / "data/longmemeval/longmemeval_s_dev.json.gz"))
    seen: set[str] = set()
    msgs, queries = [], []
    for item in lme:
        queries.append(item["question"])
        for sess in item["haystack_sessions"]:
            for t in sess:
                if t["content"].strip() and t["content"] not in seen:
                    seen.add(t["content"])
                    msgs.append({"role": t["role"], "content": t["content"]})
    locomo = json.load(open(shared / "data/locomo/locomo10.json"))
    for conv in locomo:
        queries += [q["question"] for q in conv["qa"]]
        c = conv["conversation"]
        for k, v in c.items():
            if k.startswith("session_") and isinstance(v, list):
                for t in v:
                    if t["text"] not in seen:
                        seen.add(t["text"])
                        msgs.append({"role": "user", "name": t["speaker"], "content": t["text"]})
    return msgs, list(dict.fromkeys(queries))


def passage_texts(msgs: list[dict], mem: Memory) -> list[str]:
    """The texts ``Memory.add`` embeds for these messages: leading passages, speaker-prefixed."""
    out = [t for m in msgs for _, t in mem.passages(m["content"], role=m["role"], name=m.get("name")) if t]
    return list(dict.fromkeys(out))


def ingest(mem: Memory, user: str, msgs: list[dict], tag: str) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(msgs), SESSION):
        mem.add(msgs[i : i + SESSION], user_id=user, session_id=f"{tag}-{i // SESSION}", timestamp="2024-01-01T00:00:00")
    return time.perf_counter() - t0


def ingest_history(mem: Memory, user: str, msgs: list[dict], tag: str, per_add: int = 2000) -> float:
    """The same sessions as ``ingest``, in adds of ``per_add`` messages, each message naming its
    session: how ``engramdb import`` adds a history."""
    t0 = time.perf_counter()
    for i in range(0, len(msgs), per_add):
        batch = [{**m, "session_id": f"{tag}-{(i + j) // SESSION}"} for j, m in enumerate(msgs[i : i + per_add])]
        mem.add(batch, user_id=user, timestamp="2024-01-01T00:00:00")
    return time.perf_counter() - t0


def replicate(source: Path, target: Path, copies: int) -> None:
    """``target``: the one-user scope at ``source`` copied ``copies`` times over (new ids,
    session ids and seqs; the same texts, vectors, facts, segments and entities): a scope to
    measure search on at sizes whose ingest would take hours here. Rows of other users stay."""
    import shutil
    import sqlite3

    shutil.copyfile(source, target)
    c = sqlite3.connect(target, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=OFF")  # a scratch copy: rebuilt if a crash spoils it

    def top(sql: str) -> int:
        return int(c.execute(sql).fetchone()[0] or 0) + 1

    R, S = top("SELECT MAX(rowid) FROM episodes"), top("SELECT MAX(seq) FROM episodes WHERE user_id = 'big'")
    U, F, G = top("SELECT MAX(rowid) FROM units"), top("SELECT MAX(rowid) FROM facts"), top("SELECT MAX(rowid) FROM segments")
    shift = {  # how each copied column changes (others are copied as they are)
        "episodes": {"rowid": "rowid + {k}*{R}", "id": "id || '-r{k}'", "session_id": "session_id || '-r{k}'",
                     "seq": "seq + {k}*{S}"},
        "units": {"rowid": "rowid + {k}*{U}", "episode_rowid": "episode_rowid + {k}*{R}",
                  "fact_rowid": "fact_rowid + {k}*{F}"},
        "facts": {"rowid": "rowid + {k}*{F}", "id": "id || '-r{k}'", "superseded_by": "superseded_by || '-r{k}'"},
        "fact_sources": {"fact_rowid": "fact_rowid + {k}*{F}", "episode_rowid": "episode_rowid + {k}*{R}"},
        "segments": {"rowid": "rowid + {k}*{G}", "id": "id || '-r{k}'", "session_id": "session_id || '-r{k}'",
                     "first_seq": "first_seq + {k}*{S}", "last_seq": "last_seq + {k}*{S}",
                     "summary_episode_rowid": "summary_episode_rowid + {k}*{R}"},
        "episode_times": {"episode_rowid": "episode_rowid + {k}*{R}"},
        "entity_links": {"episode_rowid": "episode_rowid + {k}*{R}", "fact_rowid": "fact_rowid + {k}*{F}"},
    }
    original = {"episodes": f"rowid < {R}", "units": f"rowid < {U}", "facts": f"rowid < {F}",
                "segments": f"rowid < {G}", "fact_sources": f"fact_rowid < {F}",
                "episode_times": f"episode_rowid < {R}", "entity_links": f"episode_rowid < {R}"}
    for k in range(1, copies):
        c.execute("BEGIN")
        for table, how in shift.items():
            cols = [r[1] for r in c.execute(f"PRAGMA table_info({table})")]
            exprs = ",".join(how.get(x, x).format(k=k, R=R, S=S, U=U, F=F, G=G) for x in cols)
            c.execute(f"INSERT INTO {table}({','.join(cols)}) SELECT {exprs} FROM {table} "
                      f"WHERE user_id = 'big' AND {original[table]}")
        c.execute("COMMIT")
    last = int(c.execute("SELECT MAX(seq) FROM episodes WHERE user_id = 'big'").fetchone()[0])
    version = int(c.execute("SELECT version FROM users WHERE user_id = 'big'").fetchone()[0]) + 1
    c.execute("UPDATE users SET version = ? WHERE user_id = 'big'", (version,))
    c.execute("INSERT INTO journal(user_id, seq, kind, at) VALUES ('big', ?, 'rebuild', '2026-01-01T00:00:00+00:00')",
              (version,))  # the index is built afresh
    c.execute("UPDATE consolidation SET last_seq = ? WHERE user_id = 'big'", (last,))  # nothing pending
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


def clustered_vs_exact(db: Path, embedder: object, queries: list[str]) -> dict[str, float]:
    """How the clustered vector index (above ``EXACT_BELOW`` vectors) changes the top 10 hits:
    the same questions against the saved (clustered) index and an exact one built afresh."""
    tops: dict[str, list[list[str]]] = {}
    for mode in ("clustered", "exact"):
        vector.EXACT_BELOW = 10**12 if mode == "exact" else EXACT_BELOW
        with Memory(db, embedder=embedder, persist_indexes=mode == "clustered") as mem:
            tops[mode] = [[h.episode_ids[0] for h in mem.search(q, user_id="big", limit=10)] for q in queries]
    vector.EXACT_BELOW = EXACT_BELOW
    pairs = list(zip(tops["clustered"], tops["exact"]))
    return {
        "same_top10_lists": round(sum(a == b for a, b in pairs) / len(pairs), 3),
        "same_first_hit": round(sum(a[:1] == b[:1] for a, b in pairs) / len(pairs), 3),
        "top10_overlap": round(sum(len(set(a) & set(b)) / max(1, len(b)) for a, b in pairs) / len(pairs), 3),
    }


def kind_of(query: str) -> str:
    """How the search pipeline answers a question: "in parts" (an event it hangs on, or each
    piece of a question relating several, recalled and embedded on their own as well),
    "aggregate" (a deeper pool gathered) or "one recall"."""
    now = datetime.now(timezone.utc)
    if analyse(query, now).anchor is not None:
        return "in parts"
    if aggregate_of(query):
        return "aggregate"
    return "in parts" if facets(query, now) else "one recall"


def search_latency(mem: Memory, user: str, queries: list[str]) -> dict[str, object]:
    """Latency percentiles of warm searches (the second pass over the questions, each embedded
    again), over all the questions and by how they are answered (``kind_of``); those of the
    first pass, which also reads the index from disk where the page cache does not hold it; and
    the most memory of its own (anonymous, MB) the process held after any of the searches (RSS
    also counts the pages of the index file it read)."""
    mem.search("warm up the index", user_id=user)  # loads the scope into memory once
    anon = 0.0
    passes: list[list[float]] = []
    by_kind: dict[str, list[float]] = {}
    for _ in range(2):
        mem._recall._query_cache.clear()  # (every question embedded in each pass)
        lat: list[float] = []
        by_kind = {}
        for q in queries:
            t0 = time.perf_counter()
            mem.search(q, user_id=user, limit=10)
            lat.append((time.perf_counter() - t0) * 1000)
            by_kind.setdefault(kind_of(q), []).append(lat[-1])
            anon = max(anon, memory_mb()["anon"])
        passes.append(lat)
    first, lat = passes
    kinds = {k: {"n": len(v), "p50": round(percentile(v, 0.5), 2), "p95": round(percentile(v, 0.95), 2)}
             for k, v in sorted(by_kind.items())}
    return {"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99),
            "mean": statistics.mean(lat), "by_kind": kinds,
            "first_pass": {"p50": round(percentile(first, 0.5), 2), "p95": round(percentile(first, 0.95), 2)},
            "peak_anon_mb": anon, **{f"{k}_mb_after": v for k, v in memory_mb().items()}}


# A fresh interpreter: open the file, load the model (before the clock), ask one question. Peak
# RSS is VmHWM, the peak of this process's own memory map (ru_maxrss survives exec on Linux, so a
# child would report its parent's peak); anon and file: RssAnon and RssFile after the search.
FIRST_SEARCH = """
import json, sys, time
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return round(int(line.split()[1]) / 1024, 1)
def peak_rss_mb():
    return status('VmHWM')
t0 = time.perf_counter()
from engramdb import Memory, default_embedder
emb = default_embedder()
emb.embed(["load the model"])
t1 = time.perf_counter()
with Memory(sys.argv[1], embedder=emb, persist_indexes=sys.argv[2] == "1") as mem:
    t2 = time.perf_counter()
    hits = mem.search(sys.argv[3], user_id="big", limit=10)
    t3 = time.perf_counter()
    mem.search(sys.argv[3] + " again", user_id="big", limit=10)
    t4 = time.perf_counter()
print(json.dumps({"first_search_ms": round((t3 - t2) * 1000, 1), "second_search_ms": round((t4 - t3) * 1000, 1),
                  "import_and_model_s": round(t1 - t0, 2), "hits": len(hits), "peak_rss_mb": peak_rss_mb(),
                  "anon_mb": status('RssAnon'), "file_mb": status('RssFile')}))
"""


# A fresh interpreter that only searches: every question twice (as search_latency), then its peak
# RSS (VmHWM: its own memory and the index pages it mapped) and its memory at the end.
SEARCHING = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from speed import mapped_mb, memory_mb, search_latency, peak_rss_mb
from engramdb import Memory, default_embedder
queries = json.loads(open(sys.argv[2]).read())
with Memory(sys.argv[1], embedder=default_embedder()) as mem:
    got = search_latency(mem, "big", queries)
print(json.dumps({"p50": round(got["p50"], 2), "p95": round(got["p95"], 2), "peak_rss_mb": peak_rss_mb(),
                  **{f"{k}_mb_after": v for k, v in memory_mb().items()}, "mapped_mb_by_array": mapped_mb()}))
"""


def searching(db: Path, queries: list[str]) -> dict[str, float]:
    """A process that only searches ``db``'s scope (every question, twice): its latency and memory."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(queries, fh)
    try:
        out = subprocess.run([sys.executable, "-c", SEARCHING, str(db), fh.name, str(Path(__file__).resolve().parent)],
                             capture_output=True, text=True, check=True)
    finally:
        os.unlink(fh.name)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM), mapped files' pages included."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def mapped_mb(top: int = 8) -> dict[str, float]:
    """The resident MB of each mapped index array (``/proc/self/smaps``, by file name; the
    ``top`` largest): which arrays a process's searches keep in memory."""
    by_file: dict[str, float] = {}
    name = ""
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping: address range ... [path]
            name = Path(head[-1]).name if len(head) >= 6 and head[-1].endswith(".npy") else ""
        elif name and line.startswith("Rss:"):
            by_file[name] = by_file.get(name, 0.0) + int(head[1]) / 1024
    return {k: round(v, 1) for k, v in sorted(by_file.items(), key=lambda kv: -kv[1])[:top]}


def memory_mb() -> dict[str, float]:
    """This process's memory now (MB): ``rss`` in all; ``anon``, its own (heap, arrays, the
    model); ``file``, pages of mapped files it has read (the saved index), which the kernel may
    drop and read again, and which processes mapping the same file share."""
    got = {}
    for line in open("/proc/self/status"):
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            got[{"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}[key]] = round(int(line.split()[1]) / 1024, 1)
    return got


def first_search(db: Path, query: str, persist: bool) -> dict[str, float]:
    """The first search of a fresh process (model loaded before the clock starts)."""
    out = subprocess.run([sys.executable, "-c", FIRST_SEARCH, str(db), "1" if persist else "0", query],
                         capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/engramdb/embeddings.sqlite"))
    ap.add_argument("--keep", type=Path, default=None, help="keep the scope databases here (and reuse them)")
    ap.add_argument("--replicate", action="store_true",
                    help="fill a size that is a multiple of the one before by copying that scope (1M in a minute "
                         "or two, not hours of ingest); its ingest rate is then not measured")
    args = ap.parse_args()
    msgs, queries = texts_and_queries(args.shared)
    queries = queries[: args.queries]
    report: dict[str, object] = {"unique_texts": len(msgs), "queries": len(queries)}
    embedder = default_embedder()
    first = msgs[: min(10_000, *args.sizes)]  # (as the docstring says: ingest rates on at most 10k turns)

    # Raw model throughput, one big call: on the turns' whole texts (what "embedding a turn"
    # costs the model), and on exactly the passages the cold ingest embeds (fact keys aside).
    whole = [f"{m['name']}: {m['content']}" if m.get("name") else m["content"] for m in first]
    t0 = time.perf_counter()
    embedder.embed(whole)
    report["raw_embed_whole_turns_per_s"] = round(len(whole) / (time.perf_counter() - t0), 1)
    embed_texts = passage_texts(first, Memory(":memory:", embedder=None))
    t0 = time.perf_counter()
    embedder.embed(embed_texts)
    raw_seconds = time.perf_counter() - t0
    report["raw_embed_passages_per_s"] = round(len(embed_texts) / raw_seconds, 1)
    report["raw_embed_seconds_for_the_passages"] = round(raw_seconds, 1)

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = str(args.keep or tmp_dir)
        Path(tmp).mkdir(parents=True, exist_ok=True)
        (Path(tmp) / "speed.db").unlink(missing_ok=True)
        with Memory(Path(tmp) / "speed.db", embedder=embedder) as mem:
            cold = ingest(mem, "cold", first, "c")
            warm = ingest(mem, "warm", first, "w")
            again = ingest(mem, "warm", first, "w")  # the same messages sent again: sightings
            history = ingest_history(mem, "warm-history", first, "h")  # as an import adds them
            mem.analyses.clear()
            unkept = ingest(mem, "warm-unkept", first, "u")
            report["cold_ingest_turns_per_s"] = round(len(first) / cold, 1)
            report["warm_ingest_turns_per_s"] = round(len(first) / warm, 1)
            report["resent_turns_per_s"] = round(len(first) / again, 1)
            report["warm_ingest_history_turns_per_s"] = round(len(first) / history, 1)
            report["warm_ingest_analyses_not_kept_turns_per_s"] = round(len(first) / unkept, 1)
            # ingest turns/s against the model's whole-turn throughput; and the stricter share:
            # time to embed the same passages in one call / time to ingest them in 20-turn calls
            report["cold_ingest_vs_raw_turns"] = round(len(first) / cold / report["raw_embed_whole_turns_per_s"], 3)
            report["cold_ingest_vs_raw_passages"] = round(raw_seconds / cold, 3)
            report["embedded_texts_cold_and_warm"] = mem.embedded_texts
        previous = None
        for size in args.sizes:
            db = Path(tmp) / f"scope-{size}.db"
            if args.replicate and previous and not db.exists() and size % previous == 0:
                t0 = time.perf_counter()
                replicate(Path(tmp) / f"scope-{previous}.db", db, size // previous)
                report[f"replicated_{size}_from_{previous}_seconds"] = round(time.perf_counter() - t0, 1)
                # the first search builds its index from the store (and saves it): time and memory
                report[f"fresh_process_{size}_first_build"] = first_search(db, queries[-4], True)
            previous = size
            with Memory(db, embedder=embedder, embedding_cache=args.cache) as mem:
                if mem.store.user_version("big") is None:
                    rows = [msgs[i % len(msgs)] for i in range(size)]
                    step = 10_000  # the rate per 10k turns shows whether adds slow as the scope grows
                    parts = [ingest(mem, "big", rows[i : i + step], f"s{i}") for i in range(0, size, step)]
                    report[f"ingest_{size}_seconds"] = round(sum(parts), 1)
                    report[f"ingest_{size}_turns_per_s_by_10k"] = [
                        round(min(step, size - i * step) / p, 1) for i, p in enumerate(parts)
                    ]
                    report[f"embedded_for_{size}"] = mem.embedded_texts
                report[f"search_ms_at_{size}"] = {
                    k: round(v, 2) if isinstance(v, float) else v for k, v in search_latency(mem, "big", queries).items()
                }
                report[f"peak_rss_mb_so_far_after_searching_{size}"] = peak_rss_mb()  # this process's, all sizes
                print(json.dumps(report, indent=1), file=sys.stderr)
            # the searches above saved the index; first with it, then built from the database
            report[f"fresh_process_{size}_saved_index"] = first_search(db, queries[-1], True)
            report[f"fresh_process_{size}_searching"] = searching(db, queries)  # this process ingested too
            report[f"fresh_process_{size}_rebuilt_index"] = first_search(db, queries[-2], False)
            if EXACT_BELOW // 2 <= size <= 200_000:  # clustered (~2 vectors per episode); at 1M an
                # exact index takes 4 minutes and 14 GB to build (vector recall there: README)
                report[f"clustered_vs_exact_{size}"] = clustered_vs_exact(db, embedder, queries)
            print(json.dumps(report, indent=1), file=sys.stderr)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
