"""The in-memory recall index of one user: unit vectors, full-text postings, and the episode
graph around them.

Built from the store on first use (or opened from its snapshot, see :mod:`.snapshot`) and kept
current from the user's journal: after writes that only append, the next search appends the new
rows; after a quarantine or release it reads the hidden set again; after a delete, an undo, an
archive or a restore it rebuilds. Archived episodes are left out (an index built with
``archived=True`` holds them too). Searches hold it for reading (``current``).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from ..index.lexical import LexicalIndex, decode_terms, pool_postings, query_keys
from ..index.vector import ClusteredIndex, VectorIndex
from ..store.base import ScopeRows, SegmentRows, Store


#: Units read from the store at a time when the index is built or brought up to date.
UNIT_CHUNK = 100_000
#: Segments whose passages' postings are pooled at a time when a build loads them.
SEGMENT_CHUNK = 20_000

#: Journal entries that only append rows (see ``Store.journal``).
APPENDS = frozenset({"add", "consolidate"})
#: Journal entries that change which episodes recall may show (quarantine, release): the
#: index keeps its rows and reads the hidden set again.
MASKS = frozenset({"status"})


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers (no starvation).

    Searches read a scope's arrays for their whole length; a refresh replaces them. Readers
    run side by side (numpy releases the GIL), a refresh waits for them to finish.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class ScopeIndex:
    def __init__(self, user_id: str, model: str | None, archived: bool = False) -> None:
        self.lock = ReadWriteLock()  # readers: searches; writer: refresh
        self.user_id = user_id
        self.model = model
        self.archived = archived  # holds archived episodes too (search(include_archived=True))
        self.outdated = False  # opened from a snapshot of an older format: to save again once
        self._clear()

    def _clear(self) -> None:
        """Empty the index (the lock stays: a rebuild happens under it)."""
        self.version = -1
        self.vectors: VectorIndex = ClusteredIndex()  # exact up to 50k vectors, clustered above
        self.lexical = LexicalIndex()
        self.unit_rowid = np.zeros(0, dtype=np.int64)
        self.unit_ep = np.zeros(0, dtype=np.int64)  # position of the unit's episode
        self.unit_is_key = np.zeros(0, dtype=bool)  # fact keys: recall their episode, never shown
        self.unit_is_statement = np.zeros(0, dtype=bool)  # ...of them, statements (sentences as said)
        # Each unit's full-text terms, kept in chunks as loaded (first unit, offsets [n + 1], term
        # keys, counts), so a segment's document is pooled from memory, not read again.
        self._terms: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        self.ep_rowid = np.zeros(0, dtype=np.int64)
        self.ep_preference = np.zeros(0, dtype=bool)  # a preference was drawn from the episode
        self.ep_hidden = np.zeros(0, dtype=bool)  # quarantined: recalled only when asked for
        self.ep_ts = np.zeros(0, dtype=np.float64)
        self.ep_recorded_ts = np.zeros(0, dtype=np.float64)
        self.ep_event_lo = np.zeros(0, dtype=np.float64)  # NaN: the episode mentions no time
        self.ep_event_hi = np.zeros(0, dtype=np.float64)
        self.ep_session = np.zeros(0, dtype=np.int64)
        self.ep_prev = np.zeros(0, dtype=np.int64)
        self.ep_next = np.zeros(0, dtype=np.int64)
        # The same person's previous and next episode in the session when someone else spoke
        # between them (-1: none): in a talk between people each one's next turn goes on from
        # their last, past the other's reply. An assistant's turn has no thread and ends the
        # session's threads: the user's next turn answers it (its next-door neighbour), not
        # their own last one.
        self.ep_prev_own = np.zeros(0, dtype=np.int64)
        self.ep_next_own = np.zeros(0, dtype=np.int64)
        self.ep_first_unit = np.zeros(0, dtype=np.int64)  # -1 until the episode's units arrive
        # How many passages the episode has: they are units ep_first_unit .. + ep_n_units - 1
        # (an episode's passages are stored together, in order; keys come later, elsewhere).
        self.ep_n_units = np.zeros(0, dtype=np.int64)
        # Segments (consolidation's runs of episodes about one topic), each indexed as one key:
        # its members' terms pooled, the centroid of their passage vectors.
        self.seg_rowid = np.zeros(0, dtype=np.int64)
        self.ep_segment = np.zeros(0, dtype=np.int64)  # position of the episode's segment, -1: none
        self.seg_lexical = LexicalIndex()
        self.seg_vectors: VectorIndex = ClusteredIndex()  # ~140k segments at 1M episodes
        self._ep_pos: dict[int, int] | None = {}
        self._session_ids: dict[str | None, int] = {}
        self._last_in_session: dict[int, int] | None = {}
        self._last_own: dict[int, dict[str, int]] = {}  # session -> speaker -> their last position
        self.last_seq = 0
        self.saved_units = 0  # units the newest snapshot on disk holds (recall.snapshot)
        self.to_warm: list[str] = []  # its files for the kernel to read in once it has answered (recall.snapshot.warm)

    #: Arrays saved as they are (see :meth:`state`).
    ARRAYS = (
        "unit_rowid", "unit_ep", "unit_is_key", "unit_is_statement", "ep_rowid", "ep_preference", "ep_ts",
        "ep_recorded_ts", "ep_event_lo", "ep_event_hi", "ep_session", "ep_prev", "ep_next", "ep_prev_own",
        "ep_next_own", "ep_first_unit", "ep_n_units", "seg_rowid", "ep_segment", "ep_hidden",
    )

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """Everything the index holds, as named arrays and a JSON-able dict, for :meth:`from_state`."""
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        if self._terms:
            self._terms = [_join_chunks(self._terms)] if len(self._terms) > 1 else self._terms
            first, offsets, keys, tfs = self._terms[0]
            arrays.update(terms_offsets=offsets, terms_keys=keys, terms_tf=tfs)
        parts: dict[str, object] = {}
        for prefix, index in (("lex_", self.lexical), ("seglex_", self.seg_lexical)):
            la, lm = index.state()
            arrays.update({prefix + k: v for k, v in la.items()})
            parts[prefix] = lm
        for prefix, vec in (("vec_", self.vectors), ("segvec_", self.seg_vectors)):
            arrays.update({prefix + k: v for k, v in vec.state().items()})
        meta: dict[str, object] = {
            "user_id": self.user_id,
            "model": self.model,
            "version": self.version,
            "last_seq": self.last_seq,
            "sessions": list(self._session_ids),
            "last_own": {str(code): own for code, own in self._last_own.items()},
            "lexical": parts,
        }
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> ScopeIndex:
        """An index from :meth:`state`'s output; arrays may be memory-mapped: appends copy them."""
        user, model = meta["user_id"], meta["model"]
        assert isinstance(user, str) and (model is None or isinstance(model, str))
        scope = cls(user, model)
        for name in cls.ARRAYS:
            if name == "ep_hidden" and name not in arrays:  # saved before quarantine existed
                scope.ep_hidden = np.zeros(arrays["ep_rowid"].size, dtype=bool)
                continue
            setattr(scope, name, arrays[name])
        if "terms_offsets" in arrays:
            scope._terms = [(0, arrays["terms_offsets"], arrays["terms_keys"], arrays["terms_tf"])]
        parts = meta["lexical"]
        assert isinstance(parts, dict)
        scope.lexical = LexicalIndex.from_state({k[4:]: v for k, v in arrays.items() if k.startswith("lex_")}, parts["lex_"])
        scope.seg_lexical = LexicalIndex.from_state(
            {k[7:]: v for k, v in arrays.items() if k.startswith("seglex_")}, parts["seglex_"]
        )
        scope.vectors = ClusteredIndex.from_state({k[4:]: v for k, v in arrays.items() if k.startswith("vec_")})
        scope.seg_vectors = ClusteredIndex.from_state({k[7:]: v for k, v in arrays.items() if k.startswith("segvec_")})
        sessions = meta["sessions"]
        last_own = meta["last_own"]
        assert isinstance(sessions, list) and isinstance(last_own, dict)
        scope._session_ids = {sid: code for code, sid in enumerate(sessions)}
        scope._last_own = {int(code): dict(own) for code, own in last_own.items()}
        # The maps from episode rowid to position, and from session to its last episode, are
        # made when an append or a lookup first needs them: at 1M episodes they took 0.2 s of
        # a fresh process's first search, which seldom needs them.
        scope._ep_pos = None
        scope._last_in_session = None
        version, last_seq = meta["version"], meta["last_seq"]
        assert isinstance(version, int) and isinstance(last_seq, int)
        scope.version, scope.last_seq = version, last_seq
        return scope

    @property
    def units(self) -> int:
        return int(self.unit_rowid.size)

    @property
    def n_sessions(self) -> int:
        return len(self._session_ids)

    @property
    def n_segments(self) -> int:
        return int(self.seg_rowid.size)

    def lexical_search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k units by BM25 for ``query``: (unit positions, scores), best first."""
        return self.lexical.search(query_keys(query), k)

    @contextmanager
    def current(
        self, store: Store, after_refresh: Callable[[ScopeIndex], None] | None = None
    ) -> Iterator[ScopeIndex]:
        """The index brought up to date with the store, held for reading until the block ends:
        no refresh by another thread changes it under a search. ``after_refresh`` runs after a
        refresh that changed something, or the first use of an ``outdated`` index, still holding
        the write lock (e.g. to save it)."""
        if self.outdated or store.user_version(self.user_id) != self.version:  # only a change waits for readers
            with self.lock.writing():
                before = self.version
                self.refresh(store)
                if after_refresh is not None and (self.version != before or self.outdated):
                    after_refresh(self)
                self.outdated = False
        with self.lock.reading():
            yield self

    def refresh(self, store: Store) -> None:
        """Bring the index up to date with the store (cheap when nothing changed); the caller
        holds the write lock."""
        with store.read_transaction():  # the version and the rows of one state of the store
            version = store.user_version(self.user_id)
            if version is None or version == self.version:
                return
            # The journal says what happened since this index was current: appends are read by
            # their row ids past what it holds; anything removed or rewritten means a rebuild.
            journal = store.journal(self.user_id, self.version) if self.version >= 0 else [(0, "rebuild")]
            if not all(k in APPENDS or k in MASKS for _, k in journal):
                self._clear()
            # Units a chunk at a time (the episodes come with the first): a large user's rows
            # are never all in memory as Python objects at once, only the arrays built from them.
            first = True
            while True:
                after = int(self.unit_rowid[-1]) if self.unit_rowid.size else 0
                rows = store.scope_rows(
                    self.user_id, self.model, after_unit=after, after_seq=self.last_seq, archived=self.archived,
                    unit_limit=UNIT_CHUNK, episodes=first,
                )
                self._append(rows)
                first = False
                if rows.unit_rowid.size < UNIT_CHUNK:
                    break
            after = int(self.seg_rowid[-1]) if self.seg_rowid.size else 0
            segs = store.segment_rows(self.user_id, after_segment=after, archived=self.archived)
            hidden = store.hidden_episodes(self.user_id)
        self._append_segments(segs)
        for lexical in (self.lexical, self.seg_lexical):  # a build or a large read: sorted for search
            if lexical.tail_size > lexical.merge_at:
                lexical.compact()
        self.ep_hidden = np.isin(self.ep_rowid, np.asarray(hidden, dtype=np.int64))
        self.version = version

    def positions_of(self, rowids: np.ndarray) -> np.ndarray:
        """Positions of episodes given their rowids; -1 for one this index does not hold."""
        rowids = np.asarray(rowids, dtype=np.int64)
        if not self.ep_rowid.size or not rowids.size:
            return np.full(rowids.size, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ep_rowid, rowids), self.ep_rowid.size - 1)
        found = self.ep_rowid[pos] == rowids  # episodes are appended in rowid order, mostly
        out = np.where(found, pos, -1)
        for i in np.flatnonzero(~found).tolist():  # not held, or held out of order
            out[i] = self._positions().get(int(rowids[i]), -1)
        return out

    def _positions(self) -> dict[int, int]:
        """Episode rowid -> position (made on first use after opening a saved index)."""
        held = self._ep_pos
        if held is None:
            held = self._ep_pos = dict(zip(self.ep_rowid.tolist(), range(self.ep_rowid.size)))
        return held

    def _session_ends(self) -> dict[int, int]:
        """Session code -> its last episode's position (made on first use, as above)."""
        ends_of = self._last_in_session
        if ends_of is None:
            ends_of = {}
            if self.ep_session.size:  # the highest position with each code
                order = np.lexsort((np.arange(self.ep_session.size), self.ep_session))
                ends = np.flatnonzero(np.append(self.ep_session[order][1:] != self.ep_session[order][:-1], True))
                ends_of = dict(zip(self.ep_session[order][ends].tolist(), order[ends].tolist()))
            self._last_in_session = ends_of
        return ends_of

    def _episode_positions(self, rowids: np.ndarray) -> np.ndarray:
        """Positions of episodes given their rowids (episodes are appended in rowid order)."""
        if rowids.size == 0:
            return np.zeros(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ep_rowid, rowids), max(self.ep_rowid.size - 1, 0))
        if self.ep_rowid.size and np.array_equal(self.ep_rowid[pos], rowids):
            return pos.astype(np.int64)
        held = self._positions()
        return np.array([held[r] for r in rowids.tolist()], dtype=np.int64)  # not sorted

    def _append_segments(self, rows: SegmentRows) -> None:
        """Index new segments, each as one document: its member episodes' passages (fact keys
        aside) pooled — their terms summed, the mean of their vectors — from what the scope
        holds, so loading segments reads nothing but their members."""
        n = int(rows.segment_rowid.size)
        if n == 0:
            return
        base = self.seg_rowid.size
        self.seg_rowid = np.append(self.seg_rowid, rows.segment_rowid)
        held = self._positions()
        known = np.array([r in held for r in rows.member_episode.tolist()], dtype=bool)
        if known.any():
            self.ep_segment[self._episode_positions(rows.member_episode[known])] = base + rows.member_segment[known]
        seg_of_unit = self.ep_segment[self.unit_ep] if self.unit_ep.size else np.zeros(0, dtype=np.int64)
        units = np.flatnonzero((seg_of_unit >= base) & ~self.unit_is_key)
        group = seg_of_unit[units] - base
        lengths = np.zeros(n, dtype=np.float32)
        np.add.at(lengths, group, self.lexical.lengths(units))
        # pooled SEGMENT_CHUNK segments at a time: a build reads every segment at once, and the
        # postings of all their passages at once were most of a 1M-episode build's peak memory
        for first in range(0, n, SEGMENT_CHUNK):
            last = min(first + SEGMENT_CHUNK, n)
            these = (group >= first) & (group < last)
            posting_group, key, tf = self._postings_of(units[these], group[these] - first)
            self.seg_lexical.append_postings(*pool_postings(posting_group, key, tf, lengths[first:last]),
                                             [""] * (last - first))
        centroid = self.vectors.group_sums(units, group, n)
        dim = int(centroid.shape[1])
        norms = np.linalg.norm(centroid, axis=1) if dim else np.zeros(n)
        centroid /= np.maximum(norms, 1e-12)[:, None]
        self.seg_vectors.append(centroid.astype(np.float32), norms > 0)

    def _postings_of(self, units: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The term postings of ``units`` (ascending positions): (group of each posting — the
        ``group`` of its unit —, term key, count)."""
        groups, keys, tfs = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.uint16)]
        for first, offsets, key, tf in self._terms:
            lo, hi = np.searchsorted(units, [first, first + offsets.size - 1])
            if hi <= lo:
                continue
            local = units[lo:hi] - first
            start, size = offsets[local], offsets[local + 1] - offsets[local]
            # indices of every posting of the chosen units, in order
            idx = np.repeat(start - np.cumsum(size) + size, size) + np.arange(int(size.sum()))
            groups.append(np.repeat(group[lo:hi], size))
            keys.append(key[idx])
            tfs.append(tf[idx])
        return np.concatenate(groups), np.concatenate(keys), np.concatenate(tfs)

    def _append(self, rows: ScopeRows) -> None:
        if rows.episode_rowid.size:
            self._append_episodes(rows)
        if rows.unit_rowid.size:
            self._append_units(rows)

    def _append_episodes(self, rows: ScopeRows) -> None:
        start = self.ep_rowid.size
        new_eps = rows.episode_rowid
        sessions = rows.episode_session
        if rows.episode_seq.size:
            self.last_seq = int(rows.episode_seq[-1])
        prev = np.full(len(new_eps), -1, dtype=np.int64)
        ses = np.zeros(len(new_eps), dtype=np.int64)
        next_all = np.append(self.ep_next, np.full(len(new_eps), -1, dtype=np.int64))
        prev_own = np.full(len(new_eps), -1, dtype=np.int64)
        next_own = np.append(self.ep_next_own, np.full(len(new_eps), -1, dtype=np.int64))
        agent = rows.episode_by_assistant.tolist()
        held, last_in = self._positions(), self._session_ends()
        for i, (rowid, sid, who) in enumerate(zip(new_eps.tolist(), sessions, rows.episode_speaker)):
            pos = start + i
            held[rowid] = pos
            code = self._session_ids.setdefault(sid, len(self._session_ids))
            ses[i] = code
            last = last_in.get(code)
            if last is not None:
                prev[i] = last
                next_all[last] = pos
            last_in[code] = pos
            if agent[i]:
                self._last_own.pop(code, None)
                continue
            own = self._last_own.setdefault(code, {})
            last = own.get(who)
            if last is not None and last != prev[i]:  # not the next-door neighbour
                prev_own[i] = last
                next_own[last] = pos
            own[who] = pos
        self.ep_rowid = np.append(self.ep_rowid, new_eps)
        self.ep_ts = np.append(self.ep_ts, rows.episode_ts)
        self.ep_recorded_ts = np.append(self.ep_recorded_ts, rows.episode_recorded_ts)
        self.ep_event_lo = np.append(self.ep_event_lo, rows.episode_event_lo)
        self.ep_event_hi = np.append(self.ep_event_hi, rows.episode_event_hi)
        self.ep_session = np.append(self.ep_session, ses)
        self.ep_prev = np.append(self.ep_prev, prev)
        self.ep_next = next_all
        self.ep_prev_own = np.append(self.ep_prev_own, prev_own)
        self.ep_next_own = next_own
        self.ep_first_unit = np.append(self.ep_first_unit, np.full(len(new_eps), -1, dtype=np.int64))
        self.ep_n_units = np.append(self.ep_n_units, np.zeros(len(new_eps), dtype=np.int64))
        self.ep_segment = np.append(self.ep_segment, np.full(len(new_eps), -1, dtype=np.int64))
        self.ep_preference = np.append(self.ep_preference, np.zeros(len(new_eps), dtype=bool))
        self.ep_hidden = np.append(self.ep_hidden, np.zeros(len(new_eps), dtype=bool))

    def _append_units(self, rows: ScopeRows) -> None:
        for name in ("ep_preference", "ep_first_unit", "ep_n_units"):  # written below: not a snapshot's map
            if not getattr(self, name).flags.writeable:
                setattr(self, name, np.array(getattr(self, name)))
        base = self.unit_rowid.size
        self.unit_rowid = np.append(self.unit_rowid, rows.unit_rowid)
        self.unit_is_key = np.append(self.unit_is_key, rows.unit_is_key)
        self.unit_is_statement = np.append(self.unit_is_statement, rows.unit_is_statement)
        new_unit_ep = self._episode_positions(rows.unit_episode)
        self.unit_ep = np.append(self.unit_ep, new_unit_ep)
        self.ep_preference[new_unit_ep[np.asarray(rows.unit_is_preference, dtype=bool)]] = True
        # An episode's first passage (keys aside): shown when none of its passages matched.
        passage = ~np.asarray(rows.unit_is_key, dtype=bool)
        eps, first = np.unique(new_unit_ep[passage], return_index=True)
        unset = self.ep_first_unit[eps] < 0
        self.ep_first_unit[eps[unset]] = base + np.flatnonzero(passage)[first[unset]]
        np.add.at(self.ep_n_units, new_unit_ep[passage], 1)
        self.vectors.append(rows.unit_vector, rows.has_vector)
        doc, key, tf, length = decode_terms(rows.unit_terms)
        if rows.unit_rowid.size:
            self._terms.append((base, np.searchsorted(doc, np.arange(rows.unit_rowid.size + 1)), key, tf))
            if len(self._terms) > 32:  # many small appends (a live chat): one chunk again
                self._terms = [_join_chunks(self._terms)]
        self.lexical.append_postings(doc, key, tf, length, rows.unit_speaker)


def _join_chunks(chunks: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive term chunks (first unit, offsets, keys, counts) as one."""
    offsets = [chunks[0][1]]
    shift = int(chunks[0][1][-1])
    for _, off, _, _ in chunks[1:]:
        offsets.append(off[1:] + shift)
        shift += int(off[-1])
    return (
        chunks[0][0],
        np.concatenate(offsets),
        np.concatenate([k for _, _, k, _ in chunks]),
        np.concatenate([t for _, _, _, t in chunks]),
    )
