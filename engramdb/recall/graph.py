"""Associative recall: Personalized PageRank over the memory graph (HippoRAG's walk, offline).

The graph's nodes are episodes and the entities they mention (people, places, organisations,
things; aliases merged at consolidation, see :mod:`engramdb.consolidate.mentions`); an edge
joins an episode to each entity it mentions. A question starts a random walk with restart at
the entities it names ("Deb", "my sister"), and optionally at those the best episodes mention
(``RecallOptions.graph_seeds``); the walk's mass on an episode is how strongly it is associated
with what the question is about, through who and what they share. So "where does Deborah's
husband work?" reaches "Tomasz works at Acme" through Tomasz, whom the episode about Deborah's
wedding mentions and the question does not.

The links are kept in memory (:class:`GraphIndex`: each way sorted, a small unsorted tail for
those added since), brought up to date from the store with the links added since the last
search, so a walk reads only the neighbourhood of its start, in arrays. An entity that much of
the memory mentions (the user, the other speaker) says nothing about any one episode: past
``HUB_SHARE`` of the episodes (and at least ``HUB_MIN``) it is left out, as a stopword is.
"""

from __future__ import annotations

import re
from typing import Collection, Sequence

import numpy as np

from ..consolidate.mentions import KIN
from ..encode.text import STOPWORDS
from ..index.arrays import distinct, minus, union

#: Restart probability of the walk (HippoRAG uses 0.5).
RESTART = 0.5
ITERATIONS = 12
#: An entity mentioned by more than max(HUB_MIN, HUB_SHARE * episodes) episodes is a hub, left out.
HUB_MIN = 30
HUB_SHARE = 0.02
#: Share of the walk's restarts at the entities the question names (when it names any).
NAMED_SHARE = 0.5
#: The walk's second step goes through at most this many entities (those the episodes reached
#: name most often), and it returns at most ``WALK_KEEP`` episodes (the most associated). At
#: 100k episodes it reached up to ~20k episodes through hundreds of entities, most with a lift
#: too small to move a ranking; walking and ranking them took p95 from +14.5 to +7.9 ms
#: (benchmarks/graph_speed.py). 256: on LongMemEval dev, 64 changed 11 rankings, 256 none.
AROUND_MAX = 256
WALK_KEEP = 500

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
    read (kept while no entity of the user is deleted; see ``Recaller``). Immutable: :meth:`extend`
    returns a new index."""

    def __init__(self, rows: Sequence[tuple[int, str, Sequence[str]]] = (), last: int = 0, aliased: int = 0) -> None:
        self._by: dict[str, tuple[int, ...]] = {}
        self.last = last  # the highest entity rowid read
        self.aliased = aliased  # the user's alias counter when it was read
        self._add(rows)

    def _add(self, rows: Sequence[tuple[int, str, Sequence[str]]]) -> None:
        for rowid, name, aliases in rows:
            for key in dict.fromkeys(k.lower() for k in (name, *aliases)):
                have = self._by.get(key, ())
                if rowid not in have:
                    self._by[key] = (*have, rowid)
            self.last = max(self.last, rowid)

    def extend(self, rows: Sequence[tuple[int, str, Sequence[str]]], aliased: int | None = None) -> EntityIndex:
        """This index with ``rows`` (rowid, name, aliases) added: new entities, or older ones with
        their aliases now; ``aliased``: the alias counter they were read at."""
        if not rows and (aliased is None or aliased == self.aliased):
            return self
        out = EntityIndex(last=self.last, aliased=self.aliased if aliased is None else aliased)
        out._by = dict(self._by)
        out._add(rows)
        return out

    def find(self, names: Sequence[str]) -> set[int]:
        """The entities named or aliased by one of ``names``."""
        return {e for n in names for e in self._by.get(n.lower(), ())}



_Pairs = tuple[np.ndarray, np.ndarray]  # (entity rowids, episode rowids), one link each
_NONE = np.zeros(0, dtype=np.int64)


class GraphIndex:
    """A user's entity–episode links, in memory: each (entity, episode) pair once, sorted by
    entity and by episode, with those added since in a small tail. Immutable: :meth:`extend`
    returns a new index (a search may be reading this one)."""

    #: The tail is merged in past this share of the sorted part.
    MERGE_SHARE = 0.0625

    def __init__(self, entity: np.ndarray | None = None, episode: np.ndarray | None = None,
                 roles: frozenset[int] = frozenset(), last: int = 0) -> None:
        ent = np.zeros(0, dtype=np.int64) if entity is None else np.asarray(entity, dtype=np.int64)
        ep = np.zeros(0, dtype=np.int64) if episode is None else np.asarray(episode, dtype=np.int64)
        self.roles = roles  # entities that are a role ("user", "assistant"): no edges, a degree
        self.last = last  # the highest link rowid read
        self._by_entity = _unique_sorted(ent, ep)
        by_ep = _unique_sorted(self._by_entity[1], self._by_entity[0])
        self._by_episode = (by_ep[1], by_ep[0])  # (entity, episode), sorted by episode
        self._tail: _Pairs = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def extend(self, links: Sequence[tuple[int, int, int, bool]]) -> GraphIndex:
        """This index with ``links`` added: (link rowid, entity rowid, episode rowid, whether the
        entity is a role)."""
        if not links:
            return self
        arr = np.asarray([(e, p) for _, e, p, _ in links], dtype=np.int64).reshape(-1, 2)
        roles = self.roles | {e for _, e, _, role in links if role}
        last = max(self.last, max(r for r, _, _, _ in links))
        new = _unique_sorted(arr[:, 0], arr[:, 1])
        known = _contains(self._by_entity, new)
        tail = (np.concatenate([self._tail[0], new[0][~known]]), np.concatenate([self._tail[1], new[1][~known]]))
        tail = _unique_sorted(*tail)
        if tail[0].size > max(256, self.MERGE_SHARE * self._by_entity[0].size):
            merged = GraphIndex(np.concatenate([self._by_entity[0], tail[0]]),
                                np.concatenate([self._by_entity[1], tail[1]]), roles, last)
            return merged
        out = GraphIndex.__new__(GraphIndex)
        out.roles, out.last = roles, last
        out._by_entity, out._by_episode, out._tail = self._by_entity, self._by_episode, tail
        return out

    def edges(self, *, episodes: Sequence[int] | np.ndarray = (), entities: Sequence[int] | np.ndarray = ()) -> _Pairs:
        """(entity rowids, episode rowids) of the links touching ``episodes`` or ``entities``,
        roles aside, each once, sorted by entity then episode."""
        ents: list[np.ndarray] = []
        eps: list[np.ndarray] = []
        for keys, (a, b), by_entity in ((episodes, self._by_episode, False), (entities, self._by_entity, True)):
            if not len(keys):
                continue
            want = distinct(np.asarray(keys, dtype=np.int64))
            idx = _slices(a if by_entity else b, want)
            ents.append(a[idx])
            eps.append(b[idx])
            in_tail = np.isin(self._tail[0] if by_entity else self._tail[1], want)
            ents.append(self._tail[0][in_tail])
            eps.append(self._tail[1][in_tail])
        if not ents:
            return _NONE, _NONE
        e, p = _unique_sorted(np.concatenate(ents), np.concatenate(eps))
        if self.roles:
            keep = ~np.isin(e, np.fromiter(self.roles, dtype=np.int64, count=len(self.roles)))
            e, p = e[keep], p[keep]
        return e, p

    def degree_array(self, entities: np.ndarray) -> np.ndarray:
        """How many episodes each of ``entities`` links to (roles too; 0: none)."""
        want = np.asarray(entities, dtype=np.int64)
        a = self._by_entity[0]
        counts = np.searchsorted(a, want, side="right") - np.searchsorted(a, want, side="left")
        if self._tail[0].size:
            counts += np.searchsorted(self._tail[0], want, side="right") - np.searchsorted(self._tail[0], want, side="left")
        return counts


def _unique_sorted(a: np.ndarray, b: np.ndarray) -> _Pairs:
    """The pairs (a, b) once each, sorted by a then b."""
    if a.size == 0:
        return a.astype(np.int64), b.astype(np.int64)
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.concatenate(([True], (a[1:] != a[:-1]) | (b[1:] != b[:-1])))
    return a[keep], b[keep]


def _contains(sorted_pairs: _Pairs, pairs: _Pairs) -> np.ndarray:
    """For each of ``pairs``: whether ``sorted_pairs`` (by a, then b) holds it."""
    a, b = sorted_pairs
    if a.size == 0 or pairs[0].size == 0:
        return np.zeros(pairs[0].size, dtype=bool)
    if max(int(a[-1]), int(b.max()), int(pairs[0].max()), int(pairs[1].max())) < 2**31:  # rowids, in practice
        base, asked = (a << 32) | b, (pairs[0] << 32) | pairs[1]  # in the same order as the pairs
        at = np.minimum(np.searchsorted(base, asked), base.size - 1)
        return np.asarray(base[at] == asked)
    lo = np.searchsorted(a, pairs[0], side="left")
    hi = np.searchsorted(a, pairs[0], side="right")
    out = np.zeros(pairs[0].size, dtype=bool)
    for i in np.flatnonzero(hi > lo):
        j = lo[i] + np.searchsorted(b[lo[i] : hi[i]], pairs[1][i])
        out[i] = j < hi[i] and b[j] == pairs[1][i]
    return out


def _slices(sorted_keys: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Positions in ``sorted_keys`` of every entry equal to one of ``want``."""
    lo = np.searchsorted(sorted_keys, want, side="left")
    hi = np.searchsorted(sorted_keys, want, side="right")
    n = hi - lo
    if not n.sum():
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(n)[:-1])), n)
    return np.arange(int(n.sum()), dtype=np.int64) + starts


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
    graph: GraphIndex,
    seed_rowids: Sequence[int],
    seed_weights: Sequence[float],
    named_entities: Collection[int],
    n_episodes: int,
    beyond_named: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(episode rowids, mass): how strongly the walk associates each episode with the question:
    its mass, the walk restarting at the entities the question names (``NAMED_SHARE`` of the
    restarts when there are any) and at those the best episodes ``seed_rowids`` mention (by
    their ``seed_weights``), less what a seed sends back to itself (an episode is not associated
    with itself). The subgraph walked: those entities, the episodes that mention them, the other
    entities those mention, and their episodes. Only episodes with mass; none without entities.

    ``beyond_named``: scale so that the best episode *not* mentioning a named entity gets 1 (and
    cap the ones that do at 1): they are found by their words already; what the walk adds is
    what lies a step further (Tomasz's job, for a question about Deborah's husband).
    """
    nothing = (np.zeros(0, dtype=np.int64), np.zeros(0))
    hub = max(HUB_MIN, HUB_SHARE * n_episodes)

    def specific(entities: np.ndarray) -> np.ndarray:
        return entities[graph.degree_array(entities) <= hub]

    named = specific(distinct(np.fromiter(named_entities, dtype=np.int64))) if named_entities else _NONE
    seeds = np.asarray([r for r, w in zip(seed_rowids, seed_weights) if w > 0], dtype=np.int64)
    first_e, first_p = graph.edges(episodes=seeds) if seeds.size else (_NONE, _NONE)
    start = union(named, specific(distinct(first_e)))
    if not start.size:
        return nothing
    reached = distinct(graph.edges(entities=start)[1])
    mentions = graph.edges(episodes=reached)[0]
    around = _strongest(specific(minus(mentions, start)), mentions)
    kept = union(start, around)
    edge_e, edge_p = graph.edges(entities=kept)
    if not edge_e.size:
        return nothing
    ep_ids = distinct(edge_p)
    n_ep = ep_ids.size
    pairs = np.stack([np.searchsorted(kept, edge_e) + n_ep, np.searchsorted(ep_ids, edge_p)], axis=1)
    n = n_ep + kept.size
    # one restart column per seed episode (its weight spread over its entities), one for the
    # entities the question names: the walk is linear, so a seed's own column is what it sends
    # back to itself, and is left out of its association. Columns in the order the seeds' links
    # come (by entity, then episode).
    inside = np.isin(first_e, kept) & np.isin(first_p, ep_ids)
    seed_e, seed_p = first_e[inside], first_p[inside]
    _, at = np.unique(seed_p, return_index=True)
    per_seed = [int(r) for r in seed_p[np.sort(at)]]
    w = dict(zip(seed_rowids, (float(x) for x in seed_weights)))
    total = sum(w[r] for r in per_seed) or 1.0
    named_nodes = np.searchsorted(kept, named) + n_ep
    seed_share = 1.0 - NAMED_SHARE if named_nodes.size and per_seed else 1.0
    restart = np.zeros((n, len(per_seed) + 1))
    seed_at = np.searchsorted(ep_ids, np.asarray(per_seed, dtype=np.int64))
    for j, r in enumerate(per_seed):
        nodes = np.searchsorted(kept, seed_e[seed_p == r]) + n_ep
        restart[nodes, j] = seed_share * w[r] / total / nodes.size
    if named_nodes.size:
        restart[named_nodes, -1] = (1.0 - seed_share if per_seed else 1.0) / named_nodes.size
    walked = ppr(pairs, n, restart)
    mass = walked.sum(axis=1)
    for j, i in enumerate(seed_at):
        mass[i] -= walked[i, j]
    if beyond_named and named.size:
        direct = np.isin(ep_ids, edge_p[np.isin(edge_e, named)])
        top = float(mass[:n_ep][~direct].max()) if (~direct).any() else 0.0
        if top > 0:
            mass = np.minimum(mass / top, 1.0)
    keep = np.flatnonzero(mass[:n_ep] > 1e-12)
    if keep.size > WALK_KEEP:  # the most associated: a walk past them lifts nothing that ranks
        keep = np.sort(keep[np.lexsort((keep, -mass[keep]))[:WALK_KEEP]])
    return ep_ids[keep], mass[:n_ep][keep]


def _strongest(around: np.ndarray, mentions: np.ndarray) -> np.ndarray:
    """Of the entities ``around`` (sorted), the ``AROUND_MAX`` that the most of ``mentions``
    (one entity per link of the episodes reached) name; a tie: the earlier entity."""
    if around.size <= AROUND_MAX:
        return around
    ordered = np.sort(mentions)
    firsts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    ids, counts = ordered[firsts], np.diff(np.concatenate((firsts, [ordered.size])))
    counts = counts[np.searchsorted(ids, around)]  # every entity around is among the mentions
    return np.sort(around[np.lexsort((around, -counts))[:AROUND_MAX]])

