"""Retrieval metrics — pure functions.

``recall_any``/``recall_all``/``ndcg_any`` follow LongMemEval's scorer
(``src/retrieval/eval_utils.py``): a ranked list of corpus ids, the set of correct ids,
cut at k; DCG puts weight 1 on the first two ranks and 1/log2(i) on rank i after that.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from ..encode.text import words


def dedupe(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _dcg(relevances: Sequence[float], k: int) -> float:
    rel = list(relevances)[:k]
    if not rel:
        return 0.0
    return rel[0] + sum(r / math.log2(i) for i, r in enumerate(rel[1:], start=2))


def ndcg_any(ranked: Sequence[str], correct: Iterable[str], k: int) -> float:
    gold = set(correct)
    if not gold:
        return 0.0
    actual = _dcg([1.0 if d in gold else 0.0 for d in ranked[:k]], k)
    ideal = _dcg([1.0] * len(gold), k)
    return actual / ideal if ideal else 0.0


def recall_any(ranked: Sequence[str], correct: Iterable[str], k: int) -> float:
    top = set(ranked[:k])
    return float(any(c in top for c in correct))


def recall_all(ranked: Sequence[str], correct: Iterable[str], k: int) -> float:
    top = set(ranked[:k])
    gold = list(correct)
    return float(bool(gold) and all(c in top for c in gold))


def covered_within_budget(
    items: Sequence[tuple[Sequence[str], int]], correct: Iterable[str], budget: int
) -> float:
    """1.0 if every correct id is in the items whose tokens fit in the first ``budget``.

    ``items`` are (ids, tokens) in rank order; the walk stops at the first item that would
    overflow the budget (a strict prefix: what the first ``budget`` tokens contain).
    """
    gold = set(correct)
    if not gold:
        return 0.0
    used, seen = 0, set[str]()
    for ids, tokens in items:
        if used + tokens > budget:
            break
        used += tokens
        seen.update(ids)
        if gold <= seen:
            return 1.0
    return 0.0


def normalise_answer(text: str) -> str:
    """Lower case, words only (letters and digits, accents removed), single spaces."""
    return " ".join(words(text))


def holds(text: str, phrase: str) -> bool:
    """Whether normalised ``text`` holds normalised ``phrase`` as whole words."""
    return bool(phrase) and f" {phrase} " in f" {text} "


def answer_within_budget(items: Sequence[tuple[Sequence[str], int]], answer: str, budget: int) -> float:
    """1.0 if a text piece of the items whose tokens fit in the first ``budget`` holds ``answer``.

    ``items`` are (normalised text pieces shown, tokens) in rank order; the walk is the strict
    prefix of :func:`covered_within_budget`. Pieces are matched one by one, so an answer is
    never pieced together across two excerpts.
    """
    used = 0
    for pieces, tokens in items:
        if used + tokens > budget:
            break
        used += tokens
        if any(holds(p, answer) for p in pieces):
            return 1.0
    return 0.0


def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """Area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half); None without both kinds."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))
