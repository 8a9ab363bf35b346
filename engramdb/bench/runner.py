"""Run a retrieval benchmark through the public ``Memory`` API and collect per-question results.

Each conversation is ingested with ``Memory.add`` (one call per session) into its own user
scope; each question is asked with ``Memory.search(question, now=<question time>)``; metrics
come only from the returned hits and ``engramdb.pack`` — what a user of the library gets.
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .. import __version__
from ..encode.text import count_tokens
from ..errors import DatasetError, InputError
from ..io.datasets import Conversation, load_locomo, load_longmemeval
from ..memory import Memory
from ..recall.fusion import Weights
from ..recall.packing import pack
from ..recall.search import RecallOptions
from . import metrics as M
from .qa import Chat, answer_and_judge

QA_BUDGET = 2000

DEFAULT_BUDGETS = (500, 1000, 2000, 4000)
TURN_KS = (5, 10, 50)
SESSION_KS = (5, 10)
SEARCH_LIMIT = 50

_W = Weights()
#: Named configurations: Memory keyword arguments. "bm25" is the plain baseline.
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    # Plain BM25 over whole turns: no vectors, no context, no time, and no consolidation (its
    # keys would sit in the same full-text index and change its term statistics).
    "bm25": {
        "embedder": None,
        "passage_tokens": 1_000_000,
        "consolidate_on_add": False,
        "recall": RecallOptions(
            weights=Weights(lexical=1, dense=0, neighbours=0, session=0, time=0, when=0, order=0, facts=0, facts_support=0, statements=0, segments=0, preference=0, thread=0),
            merge_adjacent=False,
        ),
    },
    "lexical-only": {"recall": RecallOptions(weights=Weights(_W.lexical, 0, _W.neighbours, _W.session))},
    "dense-only": {"recall": RecallOptions(weights=Weights(0, _W.dense, _W.neighbours, _W.session))},
    "no-neighbours": {"recall": RecallOptions(weights=Weights(_W.lexical, _W.dense, 0, _W.session))},
    "no-session": {"recall": RecallOptions(weights=Weights(_W.lexical, _W.dense, _W.neighbours, 0))},
    "no-context": {"recall": RecallOptions(weights=Weights(_W.lexical, _W.dense, 0, 0, thread=0))},
    "no-thread": {"recall": RecallOptions(weights=Weights(thread=0))},
    "merge": {"recall": RecallOptions(merge_adjacent=True)},
    "rrf": {"recall": RecallOptions(weights=Weights(method="rrf"))},
    "whole-turns": {"passage_tokens": 1_000_000},
    "first-passage": {"dense_passages": 1},
    "passages-96": {"passage_tokens": 96},
    "no-fact-keys": {"recall": RecallOptions(weights=Weights(facts=0, facts_support=0))},
    "no-key-support": {"recall": RecallOptions(weights=Weights(facts_support=0))},
    "no-segment-keys": {"recall": RecallOptions(weights=Weights(segments=0))},
    "no-statement-keys": {"recall": RecallOptions(weights=Weights(statements=0))},
    "no-preference": {"recall": RecallOptions(weights=Weights(preference=0))},
    "any-speaker-keys": {"recall": RecallOptions(named_keys_only=False)},
    # Without the semantic layer (fact, statement and segment keys, the preference boost; all
    # are still built).
    "no-semantic": {
        "recall": RecallOptions(weights=Weights(facts=0, facts_support=0, statements=0, segments=0, preference=0))
    },
    "no-time": {"recall": RecallOptions(weights=Weights(time=0, when=0, order=0))},
}


@dataclass
class QuestionResult:
    id: str
    conversation: str
    category: str
    abstention: bool
    question: str
    answer: str
    evidence_turns: list[str]
    evidence_sessions: list[str]
    ranked_turns: list[str]
    ranked_sessions: list[str]
    hits: list[dict[str, Any]]  # per hit: turn ids, session ids, tokens, score
    metrics: dict[str, float]
    latency_ms: float
    context_tokens: dict[str, int]
    llm: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConversationResult:
    user_id: str
    turns: int
    ingest_seconds: float
    embedded_texts: int
    questions: list[QuestionResult]


def load_dataset(kind: str, path: str | Path) -> list[Conversation]:
    if kind == "locomo":
        return load_locomo(path)
    if kind == "longmemeval":
        return list(load_longmemeval(path))
    raise DatasetError(f"unknown dataset kind {kind!r}: use locomo or longmemeval")


def memory_kwargs(config: str, threads: int | None = None) -> dict[str, Any]:
    if config not in CONFIGS:
        raise InputError(f"unknown config {config!r}; known: {', '.join(CONFIGS)}", field="config")
    kwargs = dict(CONFIGS[config])
    if kwargs.get("embedder", "default") == "default" and threads:
        from ..encode.embedders import default_embedder

        kwargs["embedder"] = default_embedder(threads=threads)
    return kwargs


def question_metrics(
    q_evidence_turns: list[str],
    q_evidence_sessions: list[str],
    hit_items: list[tuple[list[str], list[str], int]],
    budgets: Iterable[int],
) -> tuple[dict[str, float], list[str], list[str]]:
    """Metrics of one question from its hits: (turn ids, session ids, tokens) in rank order."""
    ranked_turns = M.dedupe(t for turns, _, _ in hit_items for t in turns)
    ranked_sessions = M.dedupe(s for _, sessions, _ in hit_items for s in sessions)
    gold_t, gold_s = q_evidence_turns, q_evidence_sessions
    m: dict[str, float] = {}
    if gold_t:
        for k in TURN_KS:
            m[f"turn_recall_all@{k}"] = M.recall_all(ranked_turns, gold_t, k)
            m[f"turn_recall_any@{k}"] = M.recall_any(ranked_turns, gold_t, k)
            m[f"turn_ndcg_any@{k}"] = M.ndcg_any(ranked_turns, gold_t, k)
        top10 = {t for turns, _, _ in hit_items[:10] for t in turns}
        m["turn_all@10hits"] = float(all(t in top10 for t in gold_t))
        for b in budgets:
            m[f"er@{b}"] = M.covered_within_budget([(t, n) for t, _, n in hit_items], gold_t, b)
    if gold_s:
        for k in SESSION_KS:
            m[f"sess_recall_all@{k}"] = M.recall_all(ranked_sessions, gold_s, k)
            m[f"sess_recall_any@{k}"] = M.recall_any(ranked_sessions, gold_s, k)
            m[f"sess_ndcg_any@{k}"] = M.ndcg_any(ranked_sessions, gold_s, k)
    return m, ranked_turns, ranked_sessions


def run_conversation(
    conv: Conversation,
    db_path: str,
    config: str,
    budgets: tuple[int, ...],
    cache: str | None,
    threads: int | None = None,
    llm: Chat | None = None,
    dataset: str = "",
) -> ConversationResult:
    with Memory(db_path, embedding_cache=cache, **memory_kwargs(config, threads)) as mem:
        t0 = time.perf_counter()
        for s in conv.sessions:
            if s.messages:
                mem.add(s.messages, user_id=conv.user_id, session_id=s.id)
        ingest = time.perf_counter() - t0
        results = []
        limit = max(SEARCH_LIMIT, max(budgets, default=0) // 20)
        for q in conv.questions:
            t1 = time.perf_counter()
            hits = mem.search(q.text or "?", user_id=conv.user_id, limit=limit, now=q.asked_at)
            latency = (time.perf_counter() - t1) * 1000
            items = [
                (
                    [str(e.metadata.get("turn_id", e.id)) for e in h.episodes],
                    [str(e.session_id) for e in h.episodes],
                    count_tokens(h.text),
                )
                for h in hits
            ]
            m, ranked_turns, ranked_sessions = question_metrics(q.evidence_turns, q.evidence_sessions, items, budgets)
            ctx_tokens = {}
            ep_turn = {e.id: str(e.metadata.get("turn_id", e.id)) for h in hits for e in h.episodes}
            for b in budgets:
                ctx = pack(hits, b)
                ctx_tokens[str(b)] = ctx.tokens
                if q.evidence_turns:
                    got = {ep_turn[i] for i in ctx.episode_ids}
                    m[f"ctx@{b}"] = float(all(t in got for t in q.evidence_turns))
            qa: dict[str, Any] = {}
            if llm is not None:
                qa = answer_and_judge(
                    llm,
                    dataset,
                    {"question": q.text, "answer": q.answer, "category": q.category, "abstention": q.abstention},
                    str(pack(hits, QA_BUDGET)),
                    q.asked_at.strftime("%Y-%m-%d %H:%M") if q.asked_at else None,
                )
            results.append(
                QuestionResult(
                    id=q.id,
                    conversation=conv.user_id,
                    category=q.category,
                    abstention=q.abstention,
                    question=q.text,
                    answer=q.answer,
                    evidence_turns=q.evidence_turns,
                    evidence_sessions=q.evidence_sessions,
                    ranked_turns=ranked_turns[:50],
                    ranked_sessions=ranked_sessions[:10],
                    hits=[{"turns": t, "sessions": s, "tokens": n, "score": round(h.score, 5)} for (t, s, n), h in zip(items[:20], hits)],
                    metrics=m,
                    latency_ms=latency,
                    context_tokens=ctx_tokens,
                    llm=qa,
                )
            )
        return ConversationResult(conv.user_id, conv.n_messages, ingest, mem.embedded_texts, results)


_WorkerArgs = tuple[Conversation, str, str, tuple[int, ...], "str | None", "int | None", "Chat | None", str]


def _worker(args: _WorkerArgs) -> ConversationResult:
    conv, workdir, config, budgets, cache, threads, llm, dataset = args
    db = os.path.join(workdir, f"worker-{os.getpid()}.db")
    return run_conversation(conv, db, config, budgets, cache, threads, llm, dataset)


def run(
    kind: str,
    path: str | Path,
    *,
    config: str = "default",
    budgets: tuple[int, ...] = DEFAULT_BUDGETS,
    limit: int | None = None,
    jobs: int = 1,
    cache: str | None = None,
    workdir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    llm: Chat | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns the full result document (JSON-serialisable)."""
    memory_kwargs(config)  # fail fast on a bad config name
    convs = load_dataset(kind, path)
    if limit is not None:
        convs = _limit_questions(convs, limit)
    started = time.time()
    tmp = tempfile.TemporaryDirectory(prefix="engramdb-bench-") if workdir is None else None
    wd = workdir or (tmp.name if tmp else ".")
    Path(wd).mkdir(parents=True, exist_ok=True)
    results: list[ConversationResult] = []
    total = sum(len(c.questions) for c in convs)
    done = 0
    try:
        if jobs <= 1:
            for conv in convs:
                db = os.path.join(wd, "bench.db")
                results.append(run_conversation(conv, db, config, budgets, cache, None, llm, kind))
                done += len(conv.questions)
                if progress:
                    progress(done, total)
        else:
            threads = 1  # one onnxruntime thread per process: the cores are the workers'
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_worker, (c, wd, config, budgets, cache, threads, llm, kind)) for c in convs]
                for fut in as_completed(futures):
                    r = fut.result()
                    results.append(r)
                    done += len(r.questions)
                    if progress:
                        progress(done, total)
    finally:
        if tmp is not None:
            tmp.cleanup()
    results.sort(key=lambda r: r.user_id)
    wall = time.time() - started
    return document(kind, path, config, budgets, results, wall, jobs)


def _limit_questions(convs: list[Conversation], limit: int) -> list[Conversation]:
    out, left = [], limit
    for c in convs:
        if left <= 0:
            break
        out.append(Conversation(c.user_id, c.sessions, c.questions[:left]))
        left -= len(out[-1].questions)
    return out


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def document(
    kind: str,
    path: str | Path,
    config: str,
    budgets: tuple[int, ...],
    results: list[ConversationResult],
    wall: float,
    jobs: int,
) -> dict[str, Any]:
    questions = [q for r in results for q in r.questions]
    turns = sum(r.turns for r in results)
    ingest = sum(r.ingest_seconds for r in results)
    lat = [q.latency_ms for q in questions]
    return {
        "meta": {
            "dataset": kind,
            "file": str(path),
            "config": config,
            "budgets": list(budgets),
            "engramdb": __version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "jobs": jobs,
        },
        "cost": {
            "wall_seconds": round(wall, 2),
            "turns": turns,
            "ingest_seconds": round(ingest, 2),
            "ingest_turns_per_second": round(turns / ingest, 1) if ingest else None,
            "embedded_texts": sum(r.embedded_texts for r in results),
            "search_ms_p50": round(M.percentile(lat, 0.5), 2),
            "search_ms_p95": round(M.percentile(lat, 0.95), 2),
            "search_ms_p99": round(M.percentile(lat, 0.99), 2),
            "context_tokens_mean": {
                str(b): round(M.mean(q.context_tokens.get(str(b), 0) for q in questions), 1) for b in budgets
            },
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        },
        "summary": summarise(questions),
        **({"qa": qa_summary(questions)} if any(q.llm for q in questions) else {}),
        "questions": [asdict(q) for q in questions],
    }


def summarise(questions: Iterable[QuestionResult | dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean of every metric per category and overall; abstention questions excluded."""
    by_cat: dict[str, list[dict[str, float]]] = {}
    for q in questions:
        qd = q if isinstance(q, dict) else asdict(q)
        if qd["abstention"]:
            continue
        by_cat.setdefault(qd["category"], []).append(qd["metrics"])
        by_cat.setdefault("all", []).append(qd["metrics"])
    out: dict[str, dict[str, float]] = {}
    for cat in sorted(by_cat, key=lambda c: (c == "all", c)):
        rows = by_cat[cat]
        keys = sorted({k for r in rows for k in r})
        out[cat] = {"n": float(len(rows)), **{k: round(M.mean(r[k] for r in rows if k in r), 4) for k in keys}}
    return out


def qa_summary(questions: Iterable[QuestionResult]) -> dict[str, dict[str, float]]:
    """End-to-end QA accuracy per category, abstention questions included (as their own row)."""
    by_cat: dict[str, list[float]] = {}
    for q in questions:
        if not q.llm:
            continue
        cat = "abstention" if q.abstention else q.category
        for key in (cat, "all"):
            by_cat.setdefault(key, []).append(1.0 if q.llm.get("correct") else 0.0)
    return {c: {"n": float(len(v)), "accuracy": round(M.mean(v), 4)} for c, v in sorted(by_cat.items(), key=lambda kv: (kv[0] == "all", kv[0]))}


def iter_metric_pairs(a: dict[str, Any], b: dict[str, Any], metric: str) -> Iterator[tuple[str, float, float]]:
    """(category, value in a, value in b) for questions present in both runs."""
    bq = {q["id"]: q for q in b["questions"]}
    for q in a["questions"]:
        other = bq.get(q["id"])
        if other is None or q["abstention"] or metric not in q["metrics"] or metric not in other["metrics"]:
            continue
        yield q["category"], q["metrics"][metric], other["metrics"][metric]
