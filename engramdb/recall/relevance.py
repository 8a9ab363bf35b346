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
import threading
import weakref
from collections import OrderedDict

import numpy as np

from ..index.arrays import distinct
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
#: A word in more passages than this has the episodes holding it kept (a bit each), per scope
#: and until the scope changes: counting them is a pass over the word's postings and over every
#: episode (~18 ms a question at 1M episodes, most of it for the common words that recur).
KEEP_ABOVE = 20_000
KEPT_WORDS = 256

_kept: weakref.WeakKeyDictionary[ScopeIndex, tuple[tuple[int, int, int], OrderedDict[int, tuple[int, np.ndarray]]]] = (
    weakref.WeakKeyDictionary()
)
_kept_lock = threading.Lock()


def _holding(scope: ScopeIndex, key: int, n: int) -> tuple[int, np.ndarray, bool]:
    """(how many episodes hold ``key``, which: their positions ascending, or packed bits (a bit
    per episode), packed?)."""
    state = (scope.version, int(scope.ep_rowid.size), int(scope.unit_ep.size))
    with _kept_lock:
        got = _kept.get(scope)
        if got is not None and got[0] == state and key in got[1]:
            got[1].move_to_end(key)
            seen, bits = got[1][key]
            return seen, bits, True
    docs = scope.lexical.documents(key)
    eps = scope.unit_ep[docs]
    if docs.size <= KEEP_ABOVE:  # a rare word: its few episodes, not a flag for every one
        held = distinct(eps[eps >= 0])
        return int(held.size), held, False
    has = np.bincount(eps[eps >= 0], minlength=n) > 0  # the episodes holding it
    seen = int(np.count_nonzero(has))
    bits = np.packbits(has)
    with _kept_lock:
        got = _kept.get(scope)
        words = got[1] if got is not None and got[0] == state else OrderedDict()
        words[key] = (seen, bits)
        while len(words) > KEPT_WORDS:
            words.popitem(last=False)
        _kept[scope] = (state, words)
    return seen, bits, True


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
    member = np.asarray([e for g in shown for e in g.episodes], dtype=np.int64)  # every hit's episodes
    hit_of = np.repeat(np.arange(len(shown)), [len(g.episodes) for g in shown])
    for key in keys:
        seen, has, packed = _holding(scope, key, n)
        df = max(seen, 1)  # a word never seen here is as telling as the rarest seen, no more
        idf = max(math.log((n - df + 0.5) / (df + 0.5)) if df < n else 0.0, 0.05)
        total += idf
        if seen:
            if packed:  # bit m of the packed array, first bit highest
                holds = ((has[member >> 3] >> (7 - (member & 7))) & 1).astype(bool)
            else:  # positions ascending
                at = np.minimum(np.searchsorted(has, member), has.size - 1)
                holds = has[at] == member
            held += idf * (np.bincount(hit_of[holds], minlength=len(shown)) > 0)
    coverage = float(held.max() / total) if total else 1.0
    closeness = max((g.signals.get("cosine", 0.0) for g in shown), default=0.0)
    confidence = 1.0 / (1.0 + math.exp(-SLOPE * (coverage - THRESHOLD)))
    return Relevance(round(confidence, 4), coverage >= THRESHOLD, round(coverage, 4), round(closeness, 4))
