"""Aggregating recall — pure: for a question about every instance of something ("how many
weddings did I attend?", "how much did I spend in total on workshops?"), gather the instances
across sessions instead of the few best turns of one session, each instance once.

Similarity ranks the turns of the session that resembles the question most at the top; the
other instances, told in other sessions in other words, sit lower. Here a hit is an instance
when it scores within ``ratio`` of the best hit, or names what is counted (a word of the
question's focus: "weddings") and scores within ``named_ratio`` of it; for a question about the
asker's own life ("how many … have I …") not an assistant's turn; the best ``per_session`` of
each session. (Admitting every hit that merely names what is counted — "online courses" — let
every session that mentions courses in and pushed the real instances out; benchmarks/README.md.)
Two instances that tell the same thing (a typed fact drawn from both, or nearly the same words
about the same time) are one instance citing both tellings. The ranking is otherwise kept: an
instance ranked below the first ``within`` hits takes the place of the last hit there that is
not one (putting the instances first moved the best evidence down, and cost more than it gained).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from ..encode.quantity import singular
from ..encode.text import STOPWORDS, words
from ..model import Hit
from .query import Aggregate

#: Words of a focus that do not say what is counted ("the total money", "hours of jogging").
_GENERIC = frozenset(
    "total number amount money time times hours hour days day weeks week months month years year minutes "
    "much many more different various new old current kinds kind types type sort sorts".split()
)


def focus_words(agg: Aggregate) -> frozenset[str]:
    """The words that name what is counted, singular ("doctor's appointments" -> doctor, appointment)."""
    return frozenset(
        singular(w) for w in words(agg.focus) if w not in STOPWORDS and w not in _GENERIC and len(w) > 2
    )


#: Two tellings with this share of their words in common (Jaccard) tell the same thing.
NEAR_SAME = 0.6


def _words_of(hit: Hit) -> set[str]:
    return {singular(w) for w in words(hit.text) if w not in STOPWORDS}


def _apart(a: Hit, b: Hit) -> bool:
    """Whether two tellings name times that do not meet ("last weekend" said in January and
    said again in May): then they tell two events, however alike their words."""
    ta, tb = a.episodes[0].times, b.episodes[0].times
    return bool(ta and tb) and not any(x.start <= y.end and y.start <= x.end for x in ta for y in tb)


def _session(hit: Hit) -> str | None:
    return hit.episodes[0].session_id if hit.episodes else None


def gather(
    hits: Sequence[Hit],
    agg: Aggregate,
    limit: int,
    *,
    ratio: float = 0.5,
    per_session: int = 1,
    most: int = 12,
    within: int = 10,
    named_ratio: float | None = None,
    by: str = "score",
    same_thing: Callable[[Sequence[str]], list[set[str]]] | None = None,
) -> tuple[list[Hit], list[Hit]]:
    """(hits with every instance among the first ``within``, the instances). ``hits``: a pool,
    best first, deeper than ``limit``; ``by``: what ``ratio`` compares, the fused ``score`` or
    the query's raw ``cosine`` with the hit; ``named_ratio``: also a hit that names what is counted
    (a word of the question's focus) and scores within this share of the best;
    ``same_thing(episode ids)``: groups of the episodes that tell one thing (the sources of one
    fact), or None."""
    if not hits:
        return [], []
    top = hits[0].score
    texts: dict[int, set[str]] = {}  # a hit's words, read when first needed (most never are)

    def text(i: int) -> set[str]:
        if i not in texts:
            texts[i] = _words_of(hits[i])
        return texts[i]

    chosen: list[int] = []
    per: dict[str | None, int] = {}
    mine = agg.first_person
    focus = focus_words(agg) if named_ratio is not None else frozenset()
    near = [h.signals.get("cosine", 0.0) for h in hits] if by == "cosine" else [h.score for h in hits]
    best = max(near)
    for i, h in enumerate(hits):
        low = near[i] < ratio * best
        if low and by == "score" and (named_ratio is None or h.score < named_ratio * top):
            break  # best first: the rest score lower still
        s = _session(h)
        if per.get(s, 0) >= per_session:
            continue
        if low and not (bool(focus) and named_ratio is not None and h.score >= named_ratio * top and bool(focus & text(i))):
            continue
        if i and mine and all(e.role == "assistant" for e in h.episodes):
            continue  # "how many … have I …": the asker tells their own instances
        per[s] = per.get(s, 0) + 1
        chosen.append(i)
        if len(chosen) >= most:
            break
    # one telling per instance: the sources of one fact, or nearly the same words
    groups: list[list[int]] = []
    told = same_thing([h.episodes[0].id for h in (hits[i] for i in chosen)]) if same_thing and chosen else []
    for i in chosen:
        eid = hits[i].episodes[0].id
        for g in groups:
            j = g[0]
            a, b = text(i), text(j)
            alike = bool(a and b) and len(a & b) / len(a | b) >= NEAR_SAME and not _apart(hits[i], hits[j])
            one_fact = any(eid in t and hits[j].episodes[0].id in t for t in told)
            if alike or one_fact:
                g.append(i)
                break
        else:
            groups.append([i])
    instances: list[Hit] = []
    first_of: dict[int, int] = {}  # pool position -> instance number
    merged: set[int] = set()
    for n, g in enumerate(groups, 1):
        first = hits[g[0]]
        eps, passages = list(first.episodes), list(first.passages)
        for j in g[1:]:
            for ep, p in zip(hits[j].episodes, hits[j].passages):
                if all(e.id != ep.id for e in eps):
                    eps.append(ep)
                    passages.append(p)
            merged.add(j)
        first_of[g[0]] = n
        instances.append(replace(
            first, episodes=tuple(eps), passages=tuple(passages), text="\n".join(passages),
            signals={**first.signals, "instance": float(n)},
        ))
    # The ranking stays as it was, but every instance is within the first ``within`` hits: those
    # ranked lower take the places of the last hits there that are not instances.
    order = [i for i in range(len(hits)) if i not in merged]
    head, tail = order[:within], order[within:]
    late = [i for i in tail if i in first_of]
    if late:
        others = [i for i in head if i not in first_of]
        drop = set(others[max(0, len(others) - len(late)) :])
        head = [i for i in head if i not in drop] + late
        tail = [i for i in order if i in drop] + [i for i in tail if i not in first_of]
    out: list[Hit] = []
    for i in head + tail:
        h = instances[first_of[i] - 1] if i in first_of else hits[i]
        if out and h.score > out[-1].score:
            h = replace(h, score=out[-1].score)
        out.append(h)
    out = out[:limit]  # the caller's limit holds: instances past it are not returned
    return out, [h for h in out if "instance" in h.signals]


def header(kind: str, n: int) -> str:
    """The line that opens a context with instances: how many were found, and how to read them."""
    what = {"count": "to count", "sum": "to add up", "list": "to list", "most": "to compare"}.get(kind, "")
    return (
        f"{n} possible instance{'s' if n != 1 else ''} found {what}, marked #1–#{n} "
        "(each told once; the same thing told twice is one instance; check that each is one):"
    ) if n else ""
