"""Score fusion — pure functions over numpy arrays, no storage.

Signals arrive on different scales (BM25 is unbounded, cosine lives in [-1, 1]); each is
normalised to [0, 1] over the candidates, then combined by a weighted sum. Reciprocal rank
fusion is available for comparison (``method="rrf"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def normalise_max(scores: np.ndarray) -> np.ndarray:
    """Scale non-negative scores so the best is 1 (all zeros stay zeros)."""
    top = float(scores.max()) if scores.size else 0.0
    if top <= 0:
        return np.zeros_like(scores, dtype=np.float64)
    return np.asarray(np.clip(scores / top, 0.0, 1.0), dtype=np.float64)


def normalise_dense(sims: np.ndarray, exhaustive: bool, min_span: float = 0.15) -> np.ndarray:
    """Map top-k cosine similarities (best first) to [0, 1]: the best to 1, a floor to 0.

    The floor is the k-th similarity — or the median when the k rows are every row there is —
    but at least ``min_span`` below the best, so near-equal similarities in a small memory
    stay near-equal. Anchoring at this user's own similarities removes the offset every text
    shares with every other under a sentence encoder, without a fixed threshold (and works
    for ANN indexes, which only return the top k).
    """
    if sims.size == 0:
        return np.zeros(0, dtype=np.float64)
    top = float(sims[0])
    floor = float(np.median(sims)) if exhaustive else float(sims[-1])
    floor = min(floor, top - min_span)
    if top - floor <= 1e-6:  # one candidate, or all alike: they are all the best there is
        return (sims >= top - 1e-6).astype(np.float64)
    return np.asarray(np.clip((sims - floor) / (top - floor), 0.0, 1.0), dtype=np.float64)


def rrf(ranked_lists: list[np.ndarray], n: int, k: float = 60.0) -> np.ndarray:
    """Reciprocal rank fusion: each list holds item indices best first; returns scores [n]."""
    out = np.zeros(n, dtype=np.float64)
    for lst in ranked_lists:
        out[lst] += 1.0 / (k + np.arange(1, len(lst) + 1))
    return out


@dataclass(frozen=True)
class Weights:
    """Weights of the recall signals; a weight of 0 turns a signal off (ablations)."""

    lexical: float = 0.5
    dense: float = 0.5
    neighbours: float = 0.25
    session: float = 0.15
    time: float = 0.5  # boost for episodes in or near a time range named in the question
    when: float = 0.3  # "when"-questions: boost episodes that mention a time
    order: float = 0.5  # "first"/"latest" questions: boost the earliest/newest relevant episode
    facts: float = 0.5  # a fact-key match standing in for its episode's text, scaled
    facts_support: float = 0.2  # share of the best key match added to the episode's relevance
    statements: float = 1.0  # a statement key (a sentence as said) standing in, scaled: it is the text
    segments: float = 0.1  # context from the episode's segment, recalled as one key (its pooled text)
    preference: float = 0.3  # advice questions: boost for episodes a preference was drawn from
    thread: float = 0.15  # the same speaker's previous/next turn in the session (past the other's reply)
    # Association through the memory graph (PPR from the entities the question names), x the
    # best score. Off: on the tuning halves it moved nothing on LoCoMo and cost LongMemEval two
    # multi-session questions (benchmarks/README.md, "Associative recall"); 0.2 turns it on.
    graph: float = 0.0
    exact: float = 1.0  # a rare code, id or name of the question held in full: >= 1 puts it first
    method: str = "weighted"  # or "rrf"

    def __post_init__(self) -> None:
        for name in ("lexical", "dense", "neighbours", "thread", "session", "time", "when", "order", "facts", "facts_support", "statements", "segments", "preference", "exact", "graph"):
            if getattr(self, name) < 0:
                raise ValueError(f"weight {name} must be >= 0")
        if self.method not in ("weighted", "rrf"):
            raise ValueError("method must be 'weighted' or 'rrf'")


def fuse(lexical: np.ndarray, dense: np.ndarray, weights: Weights) -> np.ndarray:
    """Combine normalised lexical and dense scores per unit."""
    if weights.method == "rrf":
        lists = []
        for w, s in ((weights.lexical, lexical), (weights.dense, dense)):
            if w > 0:
                nz = np.flatnonzero(s > 0)
                lists.append(nz[np.argsort(-s[nz], kind="stable")])
        fused = rrf(lists, lexical.shape[0])
        return normalise_max(fused)
    total = weights.lexical + weights.dense
    if total <= 0:
        return np.zeros_like(lexical)
    return np.asarray((weights.lexical * lexical + weights.dense * dense) / total, dtype=np.float64)


def max_by_group(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group maximum of values (groups are integer ids in [0, n_groups)); empty groups get 0."""
    out = np.zeros(n_groups, dtype=np.float64)
    if values.size:
        np.maximum.at(out, groups, values)
    return out


def neighbour_support(scores: np.ndarray, prev_idx: np.ndarray, next_idx: np.ndarray) -> np.ndarray:
    """The better score of each item's neighbours (-1 means no neighbour)."""
    padded = np.append(scores, 0.0)  # index -1 reads the pad
    return np.asarray(np.maximum(padded[prev_idx], padded[next_idx]), dtype=np.float64)


def best_other_in_group(scores: np.ndarray, members: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each of ``members`` (item indices), the best score among the other members of its
    group (``group[j]`` is the group key of ``members[j]``); 0 for non-members and lone members."""
    out = np.zeros(scores.shape, dtype=np.float64)
    if members.size < 2:
        return out
    s, g = scores[members], group
    order = np.lexsort((-s, g))  # by group, best first
    m, s, g = members[order], s[order], g[order]
    first = np.searchsorted(g, g, side="left")  # each one's group's best
    top1 = s[first]
    has_second = (first + 1 < m.size) & (g[np.minimum(first + 1, m.size - 1)] == g)
    top2 = np.where(has_second, s[np.minimum(first + 1, m.size - 1)], 0.0)
    out[m] = np.where(np.arange(m.size) == first, top2, top1)
    return out


def session_support(scores: np.ndarray, session_idx: np.ndarray, n_sessions: int, top: int = 3) -> np.ndarray:
    """Each item's session relevance: the sum of the session's ``top`` best scores over ``top``.

    Only non-zero scores are sorted, so the cost follows the candidates, not the history.
    """
    out = np.zeros(scores.shape, dtype=np.float64)
    nz = np.flatnonzero(scores > 0)
    if nz.size == 0 or n_sessions == 0:
        return out
    s, g = scores[nz], session_idx[nz]
    order = np.lexsort((-s, g))
    g_sorted = g[order]
    first = np.searchsorted(g_sorted, g_sorted, side="left")
    keep = (np.arange(order.size) - first) < top
    sums = np.zeros(n_sessions)
    np.add.at(sums, g_sorted[keep], s[order][keep])
    return np.asarray(sums[session_idx] / top, dtype=np.float64)


def combine(
    base: np.ndarray,
    neighbours: np.ndarray,
    thread: np.ndarray,
    session: np.ndarray,
    segment: np.ndarray,
    weights: Weights,
) -> np.ndarray:
    """Final item score: own relevance plus context from neighbours, the speaker's thread, the
    session and the segment."""
    out = (
        base
        + weights.neighbours * neighbours
        + weights.thread * thread
        + weights.session * session
        + weights.segments * segment
    )
    return np.asarray(out, dtype=np.float64)
