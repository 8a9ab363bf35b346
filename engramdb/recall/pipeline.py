"""The search corridor: from a question to hits, through one user's recall index.

``Memory.search`` validates its arguments and hands over here; nothing comes back to the
facade until the hits are built. The steps:

1. the user's :class:`~engramdb.recall.scope.ScopeIndex`, brought up to date with the store
   and held for reading for the whole search (a write by another thread waits, and never
   changes the arrays under it);
2. query analysis (time ranges, order, "before/after <event>", advice);
3. for a before/after question, the event it hangs on, found first;
4. ranking (:func:`engramdb.recall.search.recall`), with the memory graph's walk when it is on
   (:mod:`.graph`), and for a "where" question a lift for the hits that carry a place;
5. for a question about every instance of something ("how many…?"), a deeper pool whose
   instances are moved into the first hits, each telling once (:mod:`.aggregate`);
   for a question in several pieces ("which came first, X or Y?"), each piece recalled too,
   their hits taking turns (:func:`~engramdb.recall.query.facets`);
6. hits: the episodes and the passages each hit shows, read from the store, and whether any of
   them is relevant at all (:mod:`.relevance`).
"""

from __future__ import annotations

import re
import shutil
import threading
import warnings
from collections import OrderedDict
from datetime import datetime
from typing import Callable, Sequence, TypeVar

import numpy as np

from ..encode.embedders import Embedder
from ..index.arrays import distinct
from ..lifecycle import DAY, retrievability
from ..consolidate.mentions import place_tags
from ..model import Episode, Hit, Hits
from ..store.base import ROLES, SEMANTIC, Store
from . import snapshot
from .graph import EntityIndex, GraphIndex, associations, names_in
from .packing import excerpt
from .aggregate import gather
from .query import aggregate_of, analyse, facets
from .relevance import assess
from .scope import ScopeIndex
from .search import RankedGroup, RecallOptions, recall

_FIRST_PERSON = re.compile(r"(i|we|my|our)\b", re.I)
_WHERE = re.compile(r"^\W*where\b|\bwhere (?:did|do|does|was|were|is|are|have|has|had|will|would|can|could)\b", re.I)

#: Users whose indexes one process keeps in memory (least recently searched go first).
MAX_SCOPES = 32
K = TypeVar("K")
V = TypeVar("V")
#: Query vectors kept (a question asked again, or context() after search, embeds nothing).
MAX_QUERY_VECTORS = 1024
#: An index is saved when this many of its units, and this share of them, are not on disk.
SAVE_MIN_UNITS = 20_000
SAVE_SHARE = 0.1
#: Passages of a saved index looked up in the store when it is opened (evenly spread, the last included).
CHECKED_UNITS = 64


class Recaller:
    """Per-user recall indexes of one store, and the search that runs over them.

    Safe to share between threads: each index has a read/write lock, and the caches a lock.
    """

    def __init__(self, store: Store, embedder: Callable[[], Embedder | None], *, persist: bool = True) -> None:
        self.store = store
        self._embedder = embedder
        self._root = store.index_dir if persist else None
        self._store_id: str | None = None
        self._scopes: OrderedDict[tuple[str, bool], ScopeIndex] = OrderedDict()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._entities: OrderedDict[str, tuple[tuple[str, str, int], EntityIndex]] = OrderedDict()  # user -> (state, index)
        self._graphs: OrderedDict[str, tuple[tuple[str, str, int], GraphIndex]] = OrderedDict()  # user -> (state, links)
        self._lock = threading.Lock()

    def scope(self, user: str, archived: bool = False) -> ScopeIndex:
        """The user's recall index (built on first use; ``current()`` brings it up to date);
        ``archived``: the one that holds archived episodes too (never saved)."""
        emb = self._embedder()
        model = emb.model_id if emb else None
        key = (user, archived)
        with self._lock:
            scope = self._scopes.get(key)
            if scope is None or scope.model != model:
                scope = ScopeIndex(user, model, archived=True) if archived else self._open(user, model)
            _keep(self._scopes, key, scope)
            return scope

    def _open(self, user: str, model: str | None) -> ScopeIndex:
        """The user's index saved on disk when it can be trusted, else an empty one to build."""
        if self._root is not None:
            if self._store_id is None:
                self._store_id = self.store.store_id()
            saved = snapshot.load(self._root, user, model, self._store_id)
            version = self.store.user_version(user)
            # A snapshot newer than the store (a restored backup) or holding other rows is not it.
            # Checked at 64 places (counting every unit of the user took 0.44 s at 1M episodes,
            # half of a first search, and missed rows written again under the same row ids
            # after a restore); a removal since the snapshot is in the journal, and the refresh
            # rebuilds for it.
            if saved is not None and version is not None and saved.version <= version and (
                saved.units == 0 or self._rows_held(user, saved)
            ):
                saved.saved_units = 0 if saved.outdated else saved.units  # an older format: saved again
                return saved
        return ScopeIndex(user, model)

    def _rows_held(self, user: str, saved: ScopeIndex) -> bool:
        """Whether the store holds what the saved index says, looked up at ``CHECKED_UNITS``
        passages spread over it (the last included): each is the user's, of the same episode,
        recorded at the same time (a restored file hands the same row ids to other rows)."""
        passages = np.flatnonzero(~saved.unit_is_key)
        if passages.size == 0:
            return False
        at = passages[distinct(np.linspace(0, passages.size - 1, CHECKED_UNITS).astype(np.int64))]
        eps = saved.unit_ep[at]
        if (eps < 0).any():
            return False
        ep_rowids = saved.ep_rowid[eps].tolist()
        spans = self.store.unit_spans(saved.unit_rowid[at].tolist())
        if [spans.get(int(u), (-1,))[0] for u in saved.unit_rowid[at]] != ep_rowids:
            return False
        stored = self.store.episodes_by_rowid(ep_rowids)
        for rowid, pos in zip(ep_rowids, eps.tolist()):
            ep = stored.get(rowid)
            if ep is None or ep.user_id != user or abs(ep.recorded_at.timestamp() - float(saved.ep_recorded_ts[pos])) > 1e-3:
                return False
        return True

    def _save(self, scope: ScopeIndex) -> None:
        """After a refresh: save the index if much of it is not on disk yet (a fresh process
        then reads only the rest from the database)."""
        unsaved = scope.units - scope.saved_units
        if self._root is None or self._store_id is None or unsaved < max(SAVE_MIN_UNITS, SAVE_SHARE * scope.units):
            return
        if self.store.read_only or scope.archived:  # a reader who may not write still reads what is saved
            return
        try:
            snapshot.save(scope, self._root, self._store_id)
            scope.saved_units = scope.units
        except OSError as exc:  # a cache: searching goes on without it
            warnings.warn(f"could not save the recall index of {scope.user_id!r}: {exc}", stacklevel=3)

    def drop(self, user: str) -> None:
        """Forget the user's index: in memory, and its snapshots on disk (their vectors and
        terms were made from texts that are being deleted)."""
        with self._lock:
            self._scopes.pop((user, False), None)
            self._scopes.pop((user, True), None)
            self._entities.pop(user, None)
            self._query_cache.clear()
        if self._root is not None:
            for model_dir in {snapshot.folder(self._root, user, m) for m in self._models(user)}:
                shutil.rmtree(model_dir, ignore_errors=True)

    def _models(self, user: str) -> set[str | None]:
        emb = self._embedder()
        return {None, emb.model_id if emb else None, self.store.embedder_model()}

    def index(self, user: str) -> ScopeIndex:
        """The user's index, up to date now (for inspection; a search holds it while it reads)."""
        with self.scope(user).current(self.store, self._save) as scope:
            return scope

    def query_vector(self, text: str) -> np.ndarray | None:
        return self.query_vectors([text])[0]

    def query_vectors(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """The query vectors of ``texts``, those not kept embedded in one call (a question and
        its pieces: ~9 ms for four at once, ~13 ms one by one; the same vectors either way)."""
        emb = self._embedder()
        if emb is None:
            return [None] * len(texts)
        with self._lock:
            kept = {t: self._query_cache.get(t) for t in texts}
        todo = [t for t, v in kept.items() if v is None]
        if todo:
            made = emb.embed(todo)
            with self._lock:
                for t, vec in zip(todo, made):
                    kept[t] = self._query_cache[t] = vec
                while len(self._query_cache) > MAX_QUERY_VECTORS:
                    self._query_cache.popitem(last=False)
        return [kept[t] for t in texts]

    def search(
        self, user: str, query: str, *, limit: int, asked: datetime, as_of_ts: float | None, options: RecallOptions,
        include_hidden: bool = False,
        include_archived: bool = False,
    ) -> Hits:
        """Hits for ``query`` in the user's memory, best first (arguments already validated);
        quarantined episodes only with ``include_hidden``, archived ones with ``include_archived``;
        with their :class:`~engramdb.model.Relevance` to the question."""
        index = self.scope(user, include_archived)
        hits = self._search(index, query, limit=limit, asked=asked, as_of_ts=as_of_ts, options=options,
                            include_hidden=include_hidden)
        if index.to_warm:  # opened from a snapshot: its files read in now that it has answered
            paths, index.to_warm = index.to_warm, []
            snapshot.warm(paths)
        return hits

    def _search(
        self, index: ScopeIndex, query: str, *, limit: int, asked: datetime, as_of_ts: float | None,
        options: RecallOptions, include_hidden: bool = False,
    ) -> Hits:
        opts = options
        dense = opts.weights.dense > 0
        with index.current(self.store, self._save) as scope:
            analysis = analyse(query, asked)
            # Full text and the query vector one after the other: each takes a few ms, and run side
            # by side on 2 cores they slowed each other down (measured: 12 ms for the query vector).
            lexical = (
                scope.lexical_search(query, opts.candidates)
                if opts.weights.lexical > 0 and analysis.anchor is None
                else None
            )
            anchored = analysis.anchor is not None and opts.weights.time > 0
            found: list[RankedGroup] = []
            if analysis.anchor is not None and anchored:
                # "before I moved to Berlin": find that event first, then favour what lies before it
                event = analysis.anchor[1]
                found = self._anchor_event(
                    scope, event, self.query_vector(event) if dense else None, as_of_ts, opts, include_hidden
                )
                if found:
                    pivot = float(scope.ep_ts[found[0].episodes[0]])
                    lo = scope.ep_event_lo[found[0].episodes[0]]
                    analysis = analysis.relative_to(float(lo) if lo == lo else pivot)  # lo == lo: not NaN
                    query = analysis.core or query  # recall what is asked about, not the event itself
            agg = aggregate_of(query) if opts.aggregate and not found else None
            # "which came first, X or Y?", "what do Jon and Gina both like?": each piece recalled
            # on its own (below), so none is left out for resembling the question less
            pieces = facets(query, asked) if opts.facets and not found and not agg else []
            # A question hanging on an event is embedded once its event is found: the part asked
            # about is what is recalled then (embedding the whole question too cost ~4 ms for nothing).
            vectors = self.query_vectors([query, *pieces]) if dense else [None] * (1 + len(pieces))
            qvec = vectors[0]
            pool = max(limit, opts.aggregate_pool) if agg else limit
            groups = recall(
                scope, query, qvec, limit=pool + bool(found), as_of_ts=as_of_ts, analysis=analysis,
                options=opts, lexical=lexical, include_hidden=include_hidden, graph=self._graph(scope, query, opts.graph_beyond_named),
            )
            groups = self._placed(scope, query, groups, opts)
            if found:
                groups = _cite_event(groups, found[0], limit)
            elif agg:
                # "how many weddings…?": the instances across sessions among the first hits, each once
                relevance = assess(scope, query, groups[:limit])
                hits, instances = gather(
                    self._hits(scope, groups, include_hidden, asked), agg, limit, ratio=opts.aggregate_ratio,
                    per_session=opts.aggregate_per_session, most=opts.aggregate_max, within=opts.aggregate_within,
                    named_ratio=opts.aggregate_named, by=opts.aggregate_by,
                    same_thing=self._same_thing(scope.user_id),
                )
                return Hits(hits, relevance, agg.kind, instances)
            elif pieces:
                per = [
                    recall(scope, p, vec, limit=limit, as_of_ts=as_of_ts, analysis=analyse(p, asked),
                           options=opts, include_hidden=include_hidden)
                    for p, vec in zip(pieces, vectors[1:])
                ]
                groups = _interleave([groups, *per], limit)
            return Hits(self._hits(scope, groups, include_hidden, asked), assess(scope, query, groups))

    def _graph(
        self, scope: ScopeIndex, query: str, beyond: bool = False
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        """The memory graph's associations for recall (see :mod:`.graph`), or None without one."""
        if SEMANTIC not in self.store.capabilities:
            return None

        def walk(seeds: np.ndarray, weights: np.ndarray) -> np.ndarray:
            out = np.zeros(scope.ep_rowid.size)
            named = self._entity_index(scope.user_id).find(names_in(query))
            if not named and not seeds.size:
                return out
            rowids, mass = associations(self._graph_index(scope.user_id), scope.ep_rowid[seeds].tolist(),
                                        weights.tolist(), named, scope.ep_rowid.size, beyond_named=beyond)
            if rowids.size:
                pos = scope.positions_of(rowids)
                out[pos[pos >= 0]] = mass[pos >= 0]
            return out

        return walk

    def _placed(self, scope: ScopeIndex, query: str, groups: list[RankedGroup], opts: RecallOptions) -> list[RankedGroup]:
        """Groups re-ranked by place: a "where" question favours hits that carry a place tag, a
        place the question names favours hits tagged with it (``hit.signals["place"]``)."""
        if not groups or SEMANTIC not in self.store.capabilities or (opts.place_where <= 0 and opts.place_named <= 0):
            return groups
        where = opts.place_where > 0 and bool(_WHERE.search(query))
        named = {n.lower() for n in names_in(query)} | set(place_tags(query)) if opts.place_named > 0 else set()
        if not where and not named:
            return groups
        rowids = [int(scope.ep_rowid[g.episodes[0]]) for g in groups]
        tags = self.store.semantic().place_links(scope.user_id, rowids)
        moved = False
        for g, r in zip(groups, rowids):
            t = tags.get(r, set())
            lift = (opts.place_where if where and t else 0.0) + (opts.place_named if t & named else 0.0)
            if lift:  # a factor on the hit's own score: a weak hit with a place stays weak
                g.score *= 1.0 + lift
                g.signals = {**g.signals, "place": lift}
                moved = True
        return sorted(groups, key=lambda g: -g.score) if moved else groups

    def _same_thing(self, user: str) -> Callable[[Sequence[str]], list[set[str]]] | None:
        """Groups of episodes that tell one thing: the sources of one typed fact (a purchase
        told twice is one fact, merged by consolidation), or None without semantic memory."""
        if SEMANTIC not in self.store.capabilities:
            return None
        facts = self.store.semantic()

        def same(episode_ids: Sequence[str]) -> list[set[str]]:
            told = facts.facts(user, status=None, episode_ids=list(episode_ids), kinds=("fact", "preference"))
            return [set(f.sources) for f in told if len(f.sources) > 1]

        return same

    def _graph_index(self, user: str) -> GraphIndex:
        """The user's entity–episode links: kept while no link of theirs was deleted (the
        entity counter of ``SemanticStore.entity_state`` stands), with the links added since
        read at each walk (a user deleted and made again, or another database, starts over)."""
        semantic = self.store.semantic()
        state = semantic.entity_state(user)
        if state is None:
            return GraphIndex()
        stands = (state[0], state[1], state[2])
        with self._lock:
            cached = self._graphs.get(user)
        graph = cached[1] if cached is not None and cached[0] == stands else GraphIndex()
        graph = graph.extend(semantic.graph_links_after(user, graph.last))
        with self._lock:
            _keep(self._graphs, user, (stands, graph))
        return graph

    def _entity_index(self, user: str) -> EntityIndex:
        """The user's entities by name: kept while none of theirs is deleted, with the entities
        added since, and those given an alias since, read at each use (as consolidation does)."""
        semantic = self.store.semantic()
        state = semantic.entity_state(user)
        if state is None:
            return EntityIndex()
        stands, aliased = (state[0], state[1], state[2]), state[3]
        with self._lock:
            cached = self._entities.get(user)
        if cached is not None and cached[0] == stands:
            index = cached[1]
            rows = [(r, n, a) for r, n, _, a in semantic.entities_after(user, index.last) if n not in ROLES]
            if aliased != index.aliased:  # older entities got aliases: theirs again
                rows += [(r, n, a) for r, n, _, a in semantic.aliased_entities(user) if r <= index.last and n not in ROLES]
            index = index.extend(rows, aliased)
        else:
            rows = [(r, n, a) for r, n, _, a in semantic.entities_after(user) if n not in ROLES]
            index = EntityIndex(rows, aliased=aliased)
        with self._lock:
            _keep(self._entities, user, (stands, index))
        return index

    def _anchor_event(
        self, scope: ScopeIndex, event: str, evec: np.ndarray | None, as_of_ts: float | None, opts: RecallOptions,
        include_hidden: bool = False,
    ) -> list[RankedGroup]:
        """The episode that tells the event a before/after question hangs on (at most one).

        "I had a doctor's appointment" is the user's own statement: an assistant turn that
        echoes it ("for your appointment...") is second-hand and usually dated later, so a
        first-person event prefers the best match not said by the assistant.
        """
        found = recall(scope, event, evec, limit=5, as_of_ts=as_of_ts, options=opts, include_hidden=include_hidden)
        if found and _FIRST_PERSON.match(event):
            eps = self.store.episodes_by_rowid([int(scope.ep_rowid[g.episodes[0]]) for g in found])
            own = [g for g in found if (ep := eps.get(int(scope.ep_rowid[g.episodes[0]]))) and ep.role != "assistant"]
            return own[:1] or found[:1]
        return found[:1]

    def _hits(
        self, scope: ScopeIndex, groups: list[RankedGroup], include_hidden: bool = False, asked: datetime | None = None
    ) -> list[Hit]:
        ep_rowids = [int(scope.ep_rowid[e]) for g in groups for e in g.episodes]
        unit_rowids = [int(scope.unit_rowid[u]) for g in groups for us in g.units.values() for u in us]
        episodes = self.store.episodes_by_rowid(ep_rowids)
        spans = self.store.unit_spans(unit_rowids)
        hits: list[Hit] = []
        for g in groups:
            eps: list[Episode] = []
            passages: list[str] = []
            for e in g.episodes:
                ep = episodes.get(int(scope.ep_rowid[e]))
                if ep is None:  # deleted by another process since the index was refreshed
                    continue
                if ep.status == "quarantined" and not include_hidden:  # a quarantined neighbour, or
                    continue  # one quarantined by another process since the refresh
                if ep.status == "archived" and not scope.archived:  # archived since the refresh
                    continue
                shown = [spans[r][1:] for u in g.units[e] if (r := int(scope.unit_rowid[u])) in spans]
                eps.append(ep)
                passages.append(excerpt(ep.text, shown))
            if eps:
                signals = g.signals
                if asked is not None:  # how strong the memory is when asked (not a ranking signal)
                    first = eps[0]
                    since = (first.last_used or first.timestamp).timestamp()
                    signals = {**signals, "strength": float(retrievability((asked.timestamp() - since) / DAY, first.stability))}
                hits.append(
                    Hit(text="\n".join(passages), score=g.score, episodes=tuple(eps), passages=tuple(passages), signals=signals)
                )
        return hits


def _keep(cache: OrderedDict[K, V], key: K, value: V) -> None:
    """Put ``value`` in an LRU ``cache`` of at most ``MAX_SCOPES`` users (the caller holds its lock)."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > MAX_SCOPES:
        cache.popitem(last=False)


def _interleave(ranked: list[list[RankedGroup]], limit: int) -> list[RankedGroup]:
    """The question's own hits and each facet's, taken in turn (best of each first), an
    episode once; scores made non-increasing. A facet's hit is marked ``signals["facet"]``
    (1, 2, ...)."""
    out: list[RankedGroup] = []
    seen: set[int] = set()
    for rank in range(max((len(r) for r in ranked), default=0)):
        for i, groups in enumerate(ranked):
            if rank >= len(groups) or len(out) >= limit:
                continue
            g = groups[rank]
            if seen & set(g.episodes):
                continue
            seen.update(g.episodes)
            if out:
                g.score = min(g.score, out[-1].score)
            if i:
                g.signals = {**g.signals, "facet": float(i)}
            out.append(g)
    return out


def _cite_event(groups: list[RankedGroup], event: RankedGroup, limit: int) -> list[RankedGroup]:
    """The event the question hangs on is part of the answer ("the day before my doctor's
    appointment": when was it?), but not the answer itself: it is cited right after the best hit."""
    told = set(event.episodes)
    same = [g for g in groups if told & set(g.episodes)]
    event_hit = same[0] if same else event
    rest = [g for g in groups if g is not event_hit]
    at = min(1, len(rest))
    if at:
        event_hit.score = rest[0].score  # a tie with the best: scores stay best first
    event_hit.signals = {**event_hit.signals, "anchor": 1.0}
    return (rest[:at] + [event_hit] + rest[at:])[:limit]
