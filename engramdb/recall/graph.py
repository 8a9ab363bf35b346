"""Associative recall: Personalized PageRank over the memory graph (HippoRAG's walk, offline).

The graph's nodes are episodes and the entities they mention (people, places, organisations,
things; aliases merged at consolidation, see :mod:`engramdb.consolidate.mentions`); an edge
joins an episode to each entity it mentions. A question starts a random walk with restart at
the entities it names ("Deb", "my sister"), and optionally at those the best episodes mention
(``RecallOptions.graph_seeds``); the walk's mass on an episode is how strongly it is associated
with what the question is about, through who and what they share. So "where does Deborah's
husband work?" reaches "Tomasz works at Acme" through Tomasz, whom the episode about Deborah's
wedding mentions and the question does not.

Only the neighbourhood of the start is read from the store (a few indexed reads), so the cost
follows it, not the memory. An entity that much of the memory mentions (the user, the other
speaker) says nothing about any one episode: past ``HUB_SHARE`` of the episodes (and at least
``HUB_MIN``) it is left out, as a stopword is.
"""

from __future__ import annotations

import re
from typing import Collection, Sequence

import numpy as np

from ..consolidate.mentions import KIN
from ..encode.text import STOPWORDS
from ..store.base import SemanticStore

#: Restart probability of the walk (HippoRAG uses 0.5).
RESTART = 0.5
ITERATIONS = 12
#: An entity mentioned by more than max(HUB_MIN, HUB_SHARE * episodes) episodes is a hub, left out.
HUB_MIN = 30
HUB_SHARE = 0.02
#: Share of the walk's restarts at the entities the question names (when it names any).
NAMED_SHARE = 0.5

_NAME = re.compile(r"\b[A-Z][\w-]+(?:\s+[A-Z][\w-]+)*")
_KIN = re.compile(rf"\bmy ({KIN})\b", re.I)


def names_in(question: str) -> list[str]:
    """What a question may name: capitalised runs ("Deb", "St Mary") and their single words,
    its other words and pairs of words ("ikea", "acme robotics"; entity names are matched
    case aside), and "my sister" as the alias consolidation gives it ("user's sister")."""
    out: list[str] = []
    for m in _NAME.finditer(question):
        run = re.sub(r"'s$", "", m.group(0))
        out.append(run)
        out += run.split()
    ws = [w for w in re.findall(r"[\w'-]+", question) if w.lower() not in STOPWORDS]
    out += ws + [f"{a} {b}" for a, b in zip(ws, ws[1:])]
    out += [f"user's {k.lower()}" for k in _KIN.findall(question)]
    return list(dict.fromkeys(out))


class EntityIndex:
    """A user's entities by name and alias, case aside: what a question names, found without a
    read (one per memory version; see ``Recaller``)."""

    def __init__(self, rows: Sequence[tuple[int, str, Sequence[str]]]) -> None:
        self._by: dict[str, list[int]] = {}
        for rowid, name, aliases in rows:
            for key in (name, *aliases):
                self._by.setdefault(key.lower(), []).append(rowid)

    def find(self, names: Sequence[str]) -> set[int]:
        """The entities named or aliased by one of ``names``."""
        return {e for n in names for e in self._by.get(n.lower(), ())}


def ppr(
    edges: np.ndarray, n_nodes: int, restart: np.ndarray, *, alpha: float = RESTART, iterations: int = ITERATIONS
) -> np.ndarray:
    """Personalized PageRank on an undirected graph given as (a, b) node pairs ``edges``:
    the stationary distribution of a walk that follows a random edge, or with probability
    ``alpha`` jumps back to a node drawn from ``restart``. ``restart`` may hold several
    columns (n_nodes x k), each walked on its own (the walk is linear in its restarts); they
    are not normalised, so the columns' masses add up. Dangling mass restarts. Pure numpy."""
    p = np.asarray(restart, dtype=np.float64)
    one = p.ndim == 1
    p = p.reshape(n_nodes, -1)
    if edges.size == 0:
        return p[:, 0] if one else p
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    order = np.argsort(dst, kind="stable")
    src, dst = src[order], dst[order]
    starts = np.flatnonzero(np.concatenate(([True], dst[1:] != dst[:-1])))
    deg = np.bincount(src, minlength=n_nodes).astype(np.float64)
    share = (1.0 / deg[src])[:, None]
    dangling = deg == 0
    x = p.copy()
    for _ in range(iterations):
        moved = np.zeros_like(x)
        moved[dst[starts]] = np.add.reduceat(x[src] * share, starts, axis=0)
        if dangling.any():
            moved += p * x[dangling].sum(axis=0) / np.maximum(p.sum(axis=0), 1e-300)
        x = alpha * p + (1 - alpha) * moved
    result: np.ndarray = x[:, 0] if one else x
    return result


def associations(
    semantic: SemanticStore,
    user_id: str,
    seed_rowids: Sequence[int],
    seed_weights: Sequence[float],
    named_entities: Collection[int],
    n_episodes: int,
    beyond_named: bool = False,
) -> dict[int, float]:
    """Episode rowid -> how strongly the walk associates it with the question: its mass, the
    walk restarting at the entities the question names (``NAMED_SHARE`` of the restarts when
    there are any) and at those the best episodes ``seed_rowids`` mention (by their
    ``seed_weights``), less what a seed sends back to itself (an episode is not associated with
    itself). The subgraph read: those entities, the episodes that mention them, the other
    entities those mention, and their episodes. {} without entities.

    ``beyond_named``: scale so that the best episode *not* mentioning a named entity gets 1 (and
    cap the ones that do at 1): they are found by their words already; what the walk adds is
    what lies a step further (Tomasz's job, for a question about Deborah's husband).
    """
    hub = max(HUB_MIN, HUB_SHARE * n_episodes)

    def specific(entities: set[int]) -> set[int]:
        degree = semantic.entity_degrees(user_id, sorted(entities))
        return {e for e in entities if degree.get(e, 0) <= hub}

    named = specific(set(named_entities)) if named_entities else set()
    seeds = [r for r, w in zip(seed_rowids, seed_weights) if w > 0]
    first = semantic.graph_edges(user_id, episodes=seeds) if seeds else []
    start = named | specific({e for e, _ in first})
    if not start:
        return {}
    reached = {ep for _, ep in semantic.graph_edges(user_id, entities=sorted(start))}
    around = specific({e for e, _ in semantic.graph_edges(user_id, episodes=sorted(reached))} - start)
    kept = sorted(start | around)
    edges = semantic.graph_edges(user_id, entities=kept)
    if not edges:
        return {}
    ep_ids = sorted({ep for _, ep in edges})
    ep_at = {r: i for i, r in enumerate(ep_ids)}
    ent_at = {e: len(ep_ids) + i for i, e in enumerate(kept)}
    pairs = np.array([(ent_at[e], ep_at[ep]) for e, ep in edges], dtype=np.int64)
    n = len(ep_ids) + len(kept)
    # one restart column per seed episode (its weight spread over its entities), one for the
    # entities the question names: the walk is linear, so a seed's own column is what it sends
    # back to itself, and is left out of its association
    per_seed: dict[int, list[int]] = {}
    for e, ep in first:
        if e in ent_at and ep in ep_at:
            per_seed.setdefault(ep, []).append(ent_at[e])
    w = dict(zip(seed_rowids, (float(x) for x in seed_weights)))
    total = sum(w[r] for r in per_seed) or 1.0
    named_nodes = [ent_at[e] for e in sorted(named)]
    seed_share = 1.0 - NAMED_SHARE if named_nodes and per_seed else 1.0
    restart = np.zeros((n, len(per_seed) + 1))
    for j, (r, nodes) in enumerate(per_seed.items()):
        restart[nodes, j] = seed_share * w[r] / total / len(nodes)
    if named_nodes:
        restart[named_nodes, -1] = (1.0 - seed_share if per_seed else 1.0) / len(named_nodes)
    walked = ppr(pairs, n, restart)
    mass = walked.sum(axis=1)
    for j, r in enumerate(per_seed):
        mass[ep_at[r]] -= walked[ep_at[r], j]
    if beyond_named and named:
        direct = {ep for e, ep in edges if e in named}
        further = [mass[ep_at[r]] for r in ep_ids if r not in direct]
        top = max(further, default=0.0)
        if top > 0:
            mass = np.minimum(mass / top, 1.0)
    return {r: float(mass[i]) for r, i in ep_at.items() if mass[i] > 1e-12}
