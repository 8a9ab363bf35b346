"""Run a retrieval benchmark through the public ``Memory`` API and collect per-question results.

Each conversation is ingested with ``Memory.add`` (one call per session) into its own user
scope; each question is asked with ``Memory.search(question, now=<question time>)``; metrics
come only from the returned hits and ``Memory.context`` — what a user of the library gets, and
scored on what they *show*: a hit that cites a long turn but shows an excerpt of it has not
handed the turn over (``er@B`` is strict; ``cite@B`` is the lenient count).
"""

from __future__ import annotations

import os
import platform
import re
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
from ..consolidate.llm import LLMExtractor
from ..errors import DatasetError, InputError
from ..io.datasets import Conversation, load_locomo, load_longmemeval
from ..memory import Memory
from ..recall.fusion import Weights
from ..model import Hit
from ..recall.packing import PASSAGE_JOIN
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
            weights=Weights(lexical=1, dense=0, neighbours=0, session=0, time=0, when=0, order=0, facts=0, facts_support=0, statements=0, segments=0, preference=0, thread=0, exact=0, graph=0),
            merge_adjacent=False,
            facets=False,
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
    "no-exact": {"recall": RecallOptions(weights=Weights(exact=0))},
    "no-facets": {"recall": RecallOptions(facets=False)},
    "no-graph": {"recall": RecallOptions(weights=Weights(graph=0))},  # the default, named for the ablation table
    # context(): a quarter of the budget when nothing seems relevant
    "abstain-0.25": {"recall": RecallOptions(abstain_share=0.25)},
    # The graph walk on (off by default), and its variants measured on the tuning halves.
    "graph": {"recall": RecallOptions(weights=Weights(graph=0.2))},
    "graph-seeded": {"recall": RecallOptions(weights=Weights(graph=0.2), graph_seeds=20, graph_beyond_named=False)},
    # Without this round's associative recall: no graph walk, no facets, no exact lookups.
    "no-association": {"recall": RecallOptions(weights=Weights(graph=0, exact=0), facets=False)},
    # Structured memory's part in recall: aggregating recall for "how many / how much in total"
    # questions, and places for "where" questions and places named; all off, then each alone,
    # then the variants measured on the tuning halves.
    "no-structure": {"recall": RecallOptions(aggregate=False, place_where=0, place_named=0)},
    "no-aggregate": {"recall": RecallOptions(aggregate=False)},
    "no-places": {"recall": RecallOptions(place_where=0, place_named=0)},
    "aggregate-0.25": {"recall": RecallOptions(aggregate_ratio=0.25)},
    "aggregate-0.5": {"recall": RecallOptions(aggregate_ratio=0.5)},
    "aggregate-0.85": {"recall": RecallOptions(aggregate_ratio=0.85)},
    "aggregate-within-20": {"recall": RecallOptions(aggregate_within=20)},
    "aggregate-2-per-session": {"recall": RecallOptions(aggregate_per_session=2)},
    "aggregate-unnamed": {"recall": RecallOptions(aggregate_named=None)},
    "aggregate-named-0.4": {"recall": RecallOptions(aggregate_named=0.4)},
    "aggregate-cosine-0.8": {"recall": RecallOptions(aggregate_by="cosine", aggregate_ratio=0.8)},
    "aggregate-cosine-0.9": {"recall": RecallOptions(aggregate_by="cosine", aggregate_ratio=0.9)},
    "where-0.1": {"recall": RecallOptions(place_where=0.1)},
    "place-named": {"recall": RecallOptions(place_named=0.2)},
    "where-0.5": {"recall": RecallOptions(place_where=0.5)},
    "any-speaker-keys": {"recall": RecallOptions(named_keys_only=False)},
    # Without the semantic layer (fact, statement and segment keys, the preference boost; all
    # are still built).
    "no-semantic": {
        "recall": RecallOptions(weights=Weights(facts=0, facts_support=0, statements=0, segments=0, preference=0))
    },
    "no-time": {"recall": RecallOptions(weights=Weights(time=0, when=0, order=0))},
    # What a hit shows of a long episode: before this round, only its best passage (and a close
    # second), however short the episode.
    "excerpts": {"recall": RecallOptions(whole_passages=1, context_passages=0)},
    "passage-context": {"recall": RecallOptions(context_passages=1)},  # a long turn's passages with their neighbours
    # context(): the best hit's turns handed over whole when they fit a quarter of the budget
    "context-whole": {"recall": RecallOptions(context_whole_hits=1)},
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
    relevance: dict[str, Any] = field(default_factory=dict)  # search()'s Relevance


@dataclass
class ConversationResult:
    user_id: str
    turns: int
    ingest_seconds: float
    embedded_texts: int
    questions: list[QuestionResult]


#: Fixed halves of a file, by the order of its conversations: the first half (LoCoMo
#: conversations 0-4) is where rules and weights are chosen, the second (5-9) where they are
#: judged. ``all`` runs both.
SPLITS = ("all", "tune", "report")


def load_dataset(kind: str, path: str | Path, corpus: str = "all", split: str = "all") -> list[Conversation]:
    if kind == "locomo":
        if corpus != "all":
            raise InputError("--corpus applies to longmemeval only", field="corpus")
        convs = load_locomo(path)
    elif kind == "longmemeval":
        convs = list(load_longmemeval(path, corpus=corpus))
    else:
        raise DatasetError(f"unknown dataset kind {kind!r}: use locomo or longmemeval")
    return split_of(convs, split)


def split_of(convs: list[Conversation], split: str) -> list[Conversation]:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use {', '.join(SPLITS)}", field="split")
    half = (len(convs) + 1) // 2
    return convs if split == "all" else convs[:half] if split == "tune" else convs[half:]


def memory_kwargs(config: str, threads: int | None = None) -> dict[str, Any]:
    if config not in CONFIGS:
        raise InputError(f"unknown config {config!r}; known: {', '.join(CONFIGS)}", field="config")
    kwargs = dict(CONFIGS[config])
    if kwargs.get("embedder", "default") == "default" and threads:
        from ..encode.embedders import default_embedder

        kwargs["embedder"] = default_embedder(threads=threads)
    return kwargs


@dataclass(frozen=True)
class ShownTurn:
    """One episode of a hit as a reader of the hit sees it."""

    turn: str  # the dataset's turn id
    session: str
    whole: bool  # the hit's text holds the whole turn, not an excerpt of it
    pieces: tuple[str, ...]  # the excerpts shown, normalised (see metrics.normalise_answer)


@dataclass(frozen=True)
class HitView:
    turns: tuple[ShownTurn, ...]
    tokens: int  # tokens of the hit's text, what handing it over costs


def view_of(hit: Hit) -> HitView:
    """What a hit shows of each of its episodes: the whole turn, or excerpts of it."""
    turns = []
    for ep, passage in zip(hit.episodes, hit.passages):
        turns.append(
            ShownTurn(
                turn=str(ep.metadata.get("turn_id", ep.id)),
                session=str(ep.session_id),
                whole=M.holds(M.normalise_answer(passage), M.normalise_answer(ep.text)),
                pieces=tuple(M.normalise_answer(p) for p in passage.split(PASSAGE_JOIN)),
            )
        )
    return HitView(tuple(turns), count_tokens(hit.text))


_LINE_HEAD = re.compile(r"^(?:#\d+ )?\[[^\]]*\] [^:\n]*: ")  # "[2023-05-08 13:56] Caroline: " (packing.hit_lines)


def context_pieces(ctx: str) -> list[str]:
    """The excerpts a packed context shows, normalised, without each line's date and speaker
    (memory lines only: not the header, nor a note such as the count of instances found)."""
    return [
        M.normalise_answer(p) for line in ctx.splitlines() if _LINE_HEAD.match(line)
        for p in _LINE_HEAD.sub("", line).split(PASSAGE_JOIN)
    ]


def instances_shown(ctx: Any, evidence_turns: list[str]) -> tuple[float, float]:
    """Whether a context holds every evidence turn: cited (its episode is in the context), and
    shown whole (a hit in the context shows all of it, not an excerpt)."""
    shown = [view_of(h) for h in ctx.hits]
    cited = {t.turn for v in shown for t in v.turns}
    whole = {t.turn for v in shown for t in v.turns if t.whole}
    gold = set(evidence_turns)
    return float(gold <= cited), float(gold <= whole)


#: A question that asks for a count or an amount ("how many…", "how much…", "the total…"):
#: its evidence is every instance, so these are scored apart (``counting`` in the summary).
COUNTING = re.compile(r"\b(?:how many|how much|total|in total|number of)\b", re.I)


def question_metrics(
    q_evidence_turns: list[str],
    q_evidence_sessions: list[str],
    hits: list[HitView],
    budgets: Iterable[int],
    answer: str = "",
) -> tuple[dict[str, float], list[str], list[str]]:
    """Metrics of one question from what its hits show, in rank order.

    ``answer``: the normalised gold answer when it appears verbatim in the evidence turns
    (``ans@B`` is scored only then), else "".
    """
    ranked_turns = M.dedupe(t.turn for h in hits for t in h.turns)
    ranked_sessions = M.dedupe(t.session for h in hits for t in h.turns)
    gold_t, gold_s = q_evidence_turns, q_evidence_sessions
    m: dict[str, float] = {}
    if gold_t:
        for k in TURN_KS:
            m[f"turn_recall_all@{k}"] = M.recall_all(ranked_turns, gold_t, k)
            m[f"turn_recall_any@{k}"] = M.recall_any(ranked_turns, gold_t, k)
            m[f"turn_ndcg_any@{k}"] = M.ndcg_any(ranked_turns, gold_t, k)
        top10 = {t.turn for h in hits[:10] for t in h.turns}
        m["turn_all@10hits"] = float(all(t in top10 for t in gold_t))
        for b in budgets:
            # strict: a turn counts only where a hit shows all of it; cite: where a hit cites it
            m[f"er@{b}"] = M.covered_within_budget([([t.turn for t in h.turns if t.whole], h.tokens) for h in hits], gold_t, b)
            m[f"cite@{b}"] = M.covered_within_budget([([t.turn for t in h.turns], h.tokens) for h in hits], gold_t, b)
            if answer:
                m[f"ans@{b}"] = M.answer_within_budget([([p for t in h.turns for p in t.pieces], h.tokens) for h in hits], answer, b)
    if gold_s:
        for k in SESSION_KS:
            m[f"sess_recall_all@{k}"] = M.recall_all(ranked_sessions, gold_s, k)
            m[f"sess_recall_any@{k}"] = M.recall_any(ranked_sessions, gold_s, k)
            m[f"sess_ndcg_any@{k}"] = M.ndcg_any(ranked_sessions, gold_s, k)
    return m, ranked_turns, ranked_sessions


def gold_answer(answer: str, evidence_texts: Iterable[str]) -> str:
    """The normalised answer if some evidence turn holds it verbatim, else "" (not scored by ans@B/ctx@B)."""
    a = M.normalise_answer(answer)
    return a if a and any(M.holds(M.normalise_answer(t), a) for t in evidence_texts) else ""


def run_conversation(
    conv: Conversation,
    db_path: str,
    config: str,
    budgets: tuple[int, ...],
    cache: str | None,
    threads: int | None = None,
    llm: Chat | None = None,
    dataset: str = "",
    extract_llm: Chat | None = None,
) -> ConversationResult:
    """Ingest one conversation and ask its questions. ``llm``: answer and judge each question
    end to end; ``extract_llm``: consolidation extracts facts with it (:class:`LLMExtractor`)
    instead of the offline rules."""
    texts = {str(m["metadata"]["turn_id"]): str(m["content"]) for s in conv.sessions for m in s.messages}
    kwargs = memory_kwargs(config, threads)
    if extract_llm is not None:
        kwargs["extractor"] = LLMExtractor(extract_llm)  # no fallback: a failed call fails the run
    with Memory(db_path, embedding_cache=cache, **kwargs) as mem:
        t0 = time.perf_counter()
        for s in conv.sessions:
            if s.messages:
                mem.add(s.messages, user_id=conv.user_id, session_id=s.id)
        ingest = time.perf_counter() - t0
        results = []
        limit = max(SEARCH_LIMIT, max(budgets, default=0) // 20)
        for q in conv.questions:
            if not q.evidence_turns and not q.abstention:
                continue  # nothing to score (counted by the document as excluded)
            t1 = time.perf_counter()
            hits = mem.search(q.text or "?", user_id=conv.user_id, limit=limit, now=q.asked_at)
            latency = (time.perf_counter() - t1) * 1000
            views = [view_of(h) for h in hits]
            answer = gold_answer(q.answer, (texts.get(t, "") for t in q.evidence_turns)) if q.evidence_turns else ""
            m, ranked_turns, ranked_sessions = question_metrics(q.evidence_turns, q.evidence_sessions, views, budgets, answer)
            ctx_tokens = {}
            for b in budgets:
                ctx = mem.context(q.text or "?", user_id=conv.user_id, budget_tokens=b, now=q.asked_at)
                ctx_tokens[str(b)] = ctx.tokens
                if answer:
                    m[f"ctx@{b}"] = float(any(M.holds(p, answer) for p in context_pieces(ctx)))
                if q.evidence_turns:
                    m[f"inst@{b}"], m[f"instw@{b}"] = instances_shown(ctx, q.evidence_turns)
            qa: dict[str, Any] = {}
            if llm is not None:
                qa = answer_and_judge(
                    llm,
                    dataset,
                    {"question": q.text, "answer": q.answer, "category": q.category, "abstention": q.abstention},
                    str(mem.context(q.text or "?", user_id=conv.user_id, budget_tokens=QA_BUDGET, now=q.asked_at)),
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
                    hits=[
                        {"turns": [t.turn for t in v.turns], "sessions": [t.session for t in v.turns],
                         "whole": [t.whole for t in v.turns], "tokens": v.tokens, "score": round(h.score, 5)}
                        for v, h in zip(views[:20], hits)
                    ],
                    metrics=m,
                    latency_ms=latency,
                    context_tokens=ctx_tokens,
                    llm=qa,
                    relevance=hits.relevance.to_dict(),
                )
            )
        return ConversationResult(conv.user_id, conv.n_messages, ingest, mem.embedded_texts, results)


_WorkerArgs = tuple[Conversation, str, str, tuple[int, ...], "str | None", "int | None", "Chat | None", str, "Chat | None"]


def _worker(args: _WorkerArgs) -> ConversationResult:
    conv, where, config, budgets, cache, threads, llm, dataset, extract_llm = args
    return run_conversation(conv, _place(where, f"worker-{os.getpid()}"), config, budgets, cache, threads, llm, dataset,
                            extract_llm)


def _place(where: str, name: str) -> str:
    """A worker's memory: a file in the work folder, or a schema of the PostgreSQL database
    (``where`` is then the URL with a run tag, see :func:`run`)."""
    if where.startswith(("postgres://", "postgresql://")):
        url, tag = where.rsplit("#", 1)
        return url + ("&" if "?" in url else "?") + f"schema={tag}_{name.replace('-', '_')}"
    return os.path.join(where, f"{name}.db")


def _drop_schemas(where: str) -> None:
    """Drop the schemas a PostgreSQL run made (they hold only benchmark data)."""
    url, tag = where.rsplit("#", 1)
    from ..store.postgres import parse_url

    import psycopg

    with psycopg.connect(parse_url(url)[0], autocommit=True) as conn:
        for (name,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (tag + "\\_%",)).fetchall():
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def run(
    kind: str,
    path: str | Path,
    *,
    config: str = "default",
    corpus: str = "all",
    split: str = "all",
    budgets: tuple[int, ...] = DEFAULT_BUDGETS,
    limit: int | None = None,
    jobs: int = 1,
    cache: str | None = None,
    workdir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    llm: Chat | None = None,
    db: str | None = None,
    extract_llm: Chat | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns the full result document (JSON-serialisable). ``db``: a
    PostgreSQL URL to run on instead of SQLite files; ``llm``: answer and judge each question
    with it; ``extract_llm``: extract facts with it instead of the offline rules."""
    memory_kwargs(config)  # fail fast on a bad config name
    convs = load_dataset(kind, path, corpus, split)
    excluded = excluded_counts(convs)
    if limit is not None:
        convs = _limit_questions(convs, limit)
    started = time.time()
    tmp = tempfile.TemporaryDirectory(prefix="engramdb-bench-") if workdir is None else None
    wd = workdir or (tmp.name if tmp else ".")
    Path(wd).mkdir(parents=True, exist_ok=True)
    if db is not None:
        if not db.startswith(("postgres://", "postgresql://")):
            raise InputError("--db takes a PostgreSQL URL (SQLite runs use temporary files)", field="db")
        wd = f"{db}#bench_{os.getpid()}_{int(started)}"
    results: list[ConversationResult] = []
    total = sum(len(c.questions) for c in convs)
    done = 0
    try:
        if jobs <= 1:
            for conv in convs:
                results.append(run_conversation(conv, _place(wd, "bench"), config, budgets, cache, None, llm, kind, extract_llm))
                done += len(conv.questions)
                if progress:
                    progress(done, total)
        else:
            threads = 1  # one onnxruntime thread per process: the cores are the workers'
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_worker, (c, wd, config, budgets, cache, threads, llm, kind, extract_llm)) for c in convs]
                for fut in as_completed(futures):
                    r = fut.result()
                    results.append(r)
                    done += len(r.questions)
                    if progress:
                        progress(done, total)
    finally:
        if tmp is not None:
            tmp.cleanup()
        if db is not None:
            _drop_schemas(wd)
    results.sort(key=lambda r: r.user_id)
    wall = time.time() - started
    return document(kind, path, config, budgets, results, wall, jobs, corpus=corpus, split=split, excluded=excluded,
                    backend="sqlite" if db is None else "postgresql", extractor=_extractor_name(extract_llm))


def _extractor_name(chat: Chat | None) -> str:
    """What extracted the facts: "rules", or "llm:<model>"."""
    if chat is None:
        return "rules"
    inner = getattr(chat, "inner", chat)  # a CachedChat's model
    return f"llm:{getattr(inner, 'model', type(inner).__name__)}"


def excluded_counts(convs: list[Conversation]) -> dict[str, int]:
    """Questions not scored because their evidence names no turn of their conversation, and
    evidence ids that name no turn (dropped from questions that keep others)."""
    qs = [q for c in convs for q in c.questions if not q.abstention]
    return {
        "questions_without_evidence": sum(1 for q in qs if not q.evidence_turns),
        "unresolved_evidence_ids": sum(len(q.unresolved) for q in qs),
    }


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
    *,
    corpus: str = "all",
    split: str = "all",
    excluded: dict[str, int] | None = None,
    backend: str = "sqlite",
    extractor: str = "rules",
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
            "corpus": corpus,
            "split": split,
            "excluded": excluded or {},
            "budgets": list(budgets),
            "engramdb": __version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "jobs": jobs,
            "backend": backend,
            "extractor": extractor,
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
        "abstention": abstention_summary(questions),
        **({"qa": qa_summary(questions)} if any(q.llm for q in questions) else {}),
        "questions": [asdict(q) for q in questions],
    }


def summarise(questions: Iterable[QuestionResult | dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean of every metric per category and overall, over the questions that have it;
    abstention questions excluded. ``n`` counts the questions scored, ``n_ans`` those whose
    answer appears verbatim in their evidence (the ones ``ans@B`` and ``ctx@B`` score)."""
    by_cat: dict[str, list[dict[str, float]]] = {}
    for q in questions:
        qd = q if isinstance(q, dict) else asdict(q)
        if qd["abstention"]:
            continue
        by_cat.setdefault(qd["category"], []).append(qd["metrics"])
        by_cat.setdefault("all", []).append(qd["metrics"])
        if COUNTING.search(qd["question"] or ""):
            by_cat.setdefault("counting", []).append(qd["metrics"])
    out: dict[str, dict[str, float]] = {}
    for cat in sorted(by_cat, key=lambda c: (c == "all", c == "counting", c)):
        rows = by_cat[cat]
        keys = sorted({k for r in rows for k in r})
        n_ans = sum(1 for r in rows if any(k.startswith("ans@") for k in r))
        out[cat] = {
            "n": float(len(rows)),
            "n_ans": float(n_ans),
            **{k: round(M.mean(r[k] for r in rows if k in r), 4) for k in keys},
        }
    return out


def abstention_summary(questions: Iterable[QuestionResult | dict[str, Any]]) -> dict[str, Any]:
    """How well ``search()``'s relevance tells the questions nothing answers (abstention) from
    the others: AUROC of 1 - confidence, and accuracy of ``relevant`` at its threshold."""
    qds = [q if isinstance(q, dict) else asdict(q) for q in questions]
    qds = [q for q in qds if q.get("relevance")]
    absent = [1.0 - q["relevance"]["confidence"] for q in qds if q["abstention"]]
    present = [1.0 - q["relevance"]["confidence"] for q in qds if not q["abstention"]]
    right = sum(q["relevance"]["relevant"] != q["abstention"] for q in qds)
    auc = M.auroc(absent, present)
    return {
        "n_abstention": len(absent),
        "n_answerable": len(present),
        "auroc": round(auc, 4) if auc is not None else None,
        "accuracy": round(right / len(qds), 4) if qds else None,
        "abstention_caught": round(sum(q["abstention"] and not q["relevance"]["relevant"] for q in qds) / len(absent), 4) if absent else None,
        "answerable_kept": round(sum(not q["abstention"] and q["relevance"]["relevant"] for q in qds) / len(present), 4) if present else None,
    }


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
