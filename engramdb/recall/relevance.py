"""Is anything recalled relevant to the question? (LongMemEval's abstention)

Recall always returns its best hits, however poor. A question about something never said
("How much time do I spend practising the violin?" of someone who only ever spoke of the
guitar) still gets hits, and an LLM shown them pads its answer with them. What tells such a
question apart, cheaply: whether one of the top hits holds the question's words *together*,
each word weighted by how rare it is in this memory (idf). A word memory has never held weighs
the most; a guitar practice that matches "practising every day" does not hold "violin", and
the one turn that mentions a violin does not hold the practice.

``coverage`` is that best single-hit share over the top ``TOP`` hits; ``relevant`` is
``coverage >= THRESHOLD``; ``confidence`` a logistic of coverage, 0.5 at the threshold.
``closeness`` (the best cosine) is reported beside it: on the tuning half of LongMemEval's dev
split it did not help (benchmarks/README.md, "Abstention").
"""

from __future__ import annotations

import math

import numpy as np

from ..index.lexical import query_keys
from ..model import Relevance
from .scope import ScopeIndex
from .search import RankedGroup

#: Hits whose words count.
TOP = 10
#: The default threshold on coverage (chosen on the tuning half: 2 of 3 abstention questions
#: caught, 45 of 46 answerable ones kept).
THRESHOLD = 0.35
#: Slope of the confidence around the threshold.
SLOPE = 12.0


def assess(scope: ScopeIndex, query: str, groups: list[RankedGroup], *, top: int = TOP) -> Relevance:
    """The :class:`Relevance` of ``groups`` (ranked, best first) to ``query`` in ``scope``."""
    if not groups:
        return Relevance(0.0, False, 0.0, 0.0)
    keys = query_keys(query)
    named = scope.lexical.speakers_named(keys)
    if named.size:  # a speaker's name says who, not what: it is in the speaker field, not the text
        keys = [k for k in keys if not scope.lexical.speakers_named([k]).size]
    shown = groups[:top]
    n = max(scope.ep_rowid.size, 1)
    held = np.zeros(len(shown))
    total = 0.0
    member = [np.asarray(g.episodes, dtype=np.int64) for g in shown]
    for key in keys:
        eps = scope.unit_ep[scope.lexical.documents(key)]
        has = np.bincount(eps[eps >= 0], minlength=n) > 0  # the episodes holding it
        seen = int(np.count_nonzero(has))
        df = max(seen, 1)  # a word never seen here is as telling as the rarest seen, no more
        idf = max(math.log((n - df + 0.5) / (df + 0.5)) if df < n else 0.0, 0.05)
        total += idf
        if seen:
            held += idf * np.fromiter((has[m].any() for m in member), dtype=bool, count=len(member))
    coverage = float(held.max() / total) if total else 1.0
    closeness = max((g.signals.get("cosine", 0.0) for g in shown), default=0.0)
    confidence = 1.0 / (1.0 + math.exp(-SLOPE * (coverage - THRESHOLD)))
    return Relevance(round(confidence, 4), coverage >= THRESHOLD, round(coverage, 4), round(closeness, 4))
