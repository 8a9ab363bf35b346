"""The forgetting benchmark: does a memory that archives most of what it holds still answer
what it was used for, and still recognise the rest?

No public benchmark scores forgetting, so this one is generated from a LoCoMo-format file with
a fixed seed. Each conversation is replayed session by session, as an agent lives it. A seeded
half of the questions is asked *along the way*, right after the session that completes its
evidence, with that session's date as "now"; their hits are used (``track_use``), which
strengthens them. Then a capacity policy keeps ``keep`` of the episodes active and archives the
rest (:meth:`Memory.maintain`), and every question is asked again.

Reported, per group of questions: evidence recall (every evidence turn among the episodes of the
top ``k`` hits) with no archival and after it, and their ratio. Recognition, as psychology tests
it, with the item as the cue: for every archived evidence turn, does :meth:`Memory.recognise`
given its text say ``known`` and point at it among its top 5; and for as many turns of another
conversation (foils), how often it wrongly says ``known``. Also, harder, with the question as
the cue: does it point at an archived evidence turn.
"""

from __future__ import annotations

import math
import random
import time
from datetime import timedelta
from typing import Any, Callable

from ..io.datasets import Conversation
from ..lifecycle import Policy
from ..memory import Memory

K = 10


def _recall(mem: Memory, user: str, question: str, evidence: set[str], now: Any) -> bool:
    hits = mem.search(question or "?", user_id=user, limit=K, now=now)
    cited = {str(e.metadata.get("turn_id")) for h in hits for e in h.episodes}
    return evidence <= cited


def run_conversation(
    conv: Conversation, cache: str | None, keep: float, seed: int, foils: list[str] | None = None
) -> dict[str, Any]:
    questions = [q for q in conv.questions if q.evidence_turns and not q.abstention]
    rng = random.Random(f"{seed}:{conv.user_id}")
    along = {q.id for q in questions if rng.random() < 0.5}
    session_of = {str(m["metadata"]["turn_id"]): i for i, s in enumerate(conv.sessions) for m in s.messages}
    ready: dict[int, list[Any]] = {}
    for q in questions:
        if q.id in along:  # asked once, some time after the session that completes its evidence
            last = max(session_of.get(t, len(conv.sessions) - 1) for t in q.evidence_turns)
            ready.setdefault(rng.randint(last, len(conv.sessions) - 1), []).append(q)
    with Memory(":memory:", embedding_cache=cache, track_use=True) as mem:
        user = conv.user_id
        last_time = None
        for i, s in enumerate(conv.sessions):
            if s.messages:
                mem.add(s.messages, user_id=user, session_id=s.id)
            when = s.started_at or last_time
            last_time = when or last_time
            for q in ready.get(i, []):  # asked along the way: its hits are used, at this session's date
                mem.search(q.text or "?", user_id=user, limit=K, now=when)
        mem.track_use = False  # measuring must not change what it measures
        end = (last_time + timedelta(days=1)) if last_time else None
        before = {q.id: _recall(mem, user, q.text, set(q.evidence_turns), end) for q in questions}
        n = len(mem.list(user_id=user))
        report = mem.maintain(user_id=user, policy=Policy(max_active=math.ceil(keep * n)), now=end)
        archived = set(report.archived)
        trace_bytes, index_bytes = mem.store.archive_bytes(user)
        turn_of = {e.id: str(e.metadata.get("turn_id")) for e in mem.list(user_id=user)}
        archived_turns = {turn_of[i] for i in archived if i in turn_of}
        after = {q.id: _recall(mem, user, q.text, set(q.evidence_turns), end) for q in questions}
        # Recognition proper: the memory itself as the cue ("I told you I went to the support
        # group"), for every archived evidence turn; and turns of another conversation as foils,
        # which must not be "known".
        text_of = {str(e.metadata.get("turn_id")): e.text for e in mem.list(user_id=user)}
        items = sorted({t for q in questions for t in q.evidence_turns} & archived_turns)
        item_hits = item_known = 0
        for t in items:
            rec = mem.recognise(text_of[t], user_id=user, limit=5)
            pointed = any(str(e.metadata.get("turn_id")) == t for e in rec.episodes)
            item_hits += pointed
            item_known += rec.known and pointed
        foil_known = sum(mem.recognise(f, user_id=user, limit=5).known for f in (foils or [])[: len(items)])
        recognised = {}
        for q in questions:
            gone = set(q.evidence_turns) & archived_turns
            if gone:
                rec = mem.recognise(q.text or "?", user_id=user, limit=5)
                pointed = any(str(e.metadata.get("turn_id")) in gone for e in rec.episodes)
                recognised[q.id] = (pointed, rec.known and pointed)
    return {
        "conversation": user,
        "episodes": n,
        "archived": len(archived),
        "trace_bytes": trace_bytes,
        "index_bytes": index_bytes,
        "items": len(items),
        "items_recognised": item_hits,
        "items_known": item_known,
        "foils": min(len(foils or []), len(items)),
        "foils_known": foil_known,
        "questions": [
            {"id": q.id, "category": q.category, "along": q.id in along, "before": before[q.id], "after": after[q.id],
             "evidence_archived": q.id in recognised,
             "recognised": recognised.get(q.id, (None, None))[0], "known": recognised.get(q.id, (None, None))[1]}
            for q in questions
        ],
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    qs = [q for r in rows for q in r["questions"]]

    def group(pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        g = [q for q in qs if pred(q)]
        b = sum(q["before"] for q in g) / len(g) if g else None
        a = sum(q["after"] for q in g) / len(g) if g else None
        return {"n": len(g), "before": b, "after": a, "ratio": (a / b) if b else None}

    arch = [q for q in qs if q["evidence_archived"]]
    items = sum(r["items"] for r in rows)
    foils = sum(r["foils"] for r in rows)
    trace = sum(r["trace_bytes"] for r in rows)
    index = sum(r["index_bytes"] for r in rows)
    return {
        "archived_bytes_per_episode": {
            "recognition": round(trace / max(1, sum(r["archived"] for r in rows)), 1),
            "recall_index": round(index / max(1, sum(r["archived"] for r in rows)), 1),
        },
        "archived_evidence_turns": items,
        "item_recognised@5": sum(r["items_recognised"] for r in rows) / items if items else None,
        "item_known_and_recognised@5": sum(r["items_known"] for r in rows) / items if items else None,
        "foils": foils,
        "foil_false_alarms": sum(r["foils_known"] for r in rows) / foils if foils else None,
        "episodes": sum(r["episodes"] for r in rows),
        "archived": sum(r["archived"] for r in rows),
        "asked_along_the_way": group(lambda q: q["along"]),
        "never_asked": group(lambda q: not q["along"]),
        "all": group(lambda q: True),
        "evidence_archived": len(arch),
        "question_recognised@5": sum(bool(q["recognised"]) for q in arch) / len(arch) if arch else None,
        "question_known_and_recognised@5": sum(bool(q["known"]) for q in arch) / len(arch) if arch else None,
    }


def run(
    convs: list[Conversation], *, cache: str | None, keep: float = 0.3, seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows = []
    for i, c in enumerate(convs):
        other = convs[(i + 1) % len(convs)] if len(convs) > 1 else None
        pool = [str(m["content"]) for s in other.sessions for m in s.messages] if other is not None else []
        foils = random.Random(f"{seed}:foils:{c.user_id}").sample(pool, min(len(pool), 400))
        rows.append(run_conversation(c, cache, keep, seed, foils))
        if progress is not None:
            progress(i + 1, len(convs))
    return {
        "meta": {"keep": keep, "seed": seed, "k": K, "conversations": len(convs), "wall_seconds": round(time.perf_counter() - t0, 1)},
        "summary": summarise(rows),
        "conversations": rows,
    }
