"""Full-text recall: BM25 over an in-memory inverted index of one user's units.

Why not SQLite FTS5 (used until schema 0004): its ``bm25()`` scores every row that matches any
query term before sorting, reading each row's size from a B-tree on the way; at 100k episodes
that alone took 40-120 ms per query. Here each unit's terms are stored with the unit (a small
blob, see :func:`encode_terms`), loaded once per scope, and kept as postings sorted by term, so
a query touches only the postings of its own terms, in numpy: ~2 ms at 300k units. A top-k
search adds its terms rarest first and scores each only for the documents that can still
reach the k-th best score so far (MaxScore, per document): 4.1 ms at 7.7M units.

Terms are 47-bit hashes of Porter stems (no dictionary table: nothing outlives a deleted unit,
and every process and backend computes the same keys). Scoring is FTS5's BM25 (k1 1.2, b 0.75,
idf floored just above zero) with a second, half-weight field for the speaker's name, with
statistics from the user's own units rather than the whole file.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import lru_cache
from typing import NamedTuple, Sequence

import numpy as np
import snowballstemmer

from ..encode.text import is_content, query_terms, words
from .arrays import union

K1 = 1.2
B = 0.75
SPEAKER_WEIGHT = 0.5
_TF_BITS = 16
_TF_MAX = (1 << _TF_BITS) - 1
_stemmer = snowballstemmer.stemmer("porter")
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # postings: term keys, documents, counts


class _Sorted(NamedTuple):
    """Postings sorted by term, and where each term's run starts: a query term is found by a
    binary search among the distinct keys (at 1M episodes 51k keys, 0.4 MB), not among a key
    per posting (86M, 688 MB: a search read a page here and there of them, and at 1M they came
    to hold 0.6 GB of the process's resident memory)."""

    keys: np.ndarray  # the distinct term keys, ascending (int64)
    starts: np.ndarray  # term keys[i]'s postings: starts[i]..starts[i+1] (int64, one more than keys)
    doc: np.ndarray
    tf: np.ndarray


@lru_cache(maxsize=262_144)
def term_key(word: str) -> int:
    """The index key of a (lower-cased) word: a 47-bit hash of its Porter stem (so a key with
    its 16-bit count fits a signed 64-bit integer)."""
    stem: str = _stemmer.stemWord(word)
    return int.from_bytes(hashlib.blake2b(stem.encode("utf-8"), digest_size=6).digest(), "big") >> 1


def text_terms(text: str) -> tuple[Counter[int], int]:
    """(term key -> count over content words, number of words) of a text."""
    ws = words(text)
    return Counter(term_key(w) for w in ws if is_content(w)), len(ws)


def query_keys(query: str) -> list[int]:
    """Distinct term keys of a query's content words, in order."""
    return list(dict.fromkeys(term_key(w) for w in query_terms(query)))


def encode_terms(text: str) -> bytes:
    """A unit's terms as stored beside it: int64 [length, (key << 16 | count) ...]."""
    counts, length = text_terms(text)
    packed = [length] + [(k << _TF_BITS) | min(c, _TF_MAX) for k, c in counts.items()]
    return np.asarray(packed, dtype=np.int64).tobytes()


def decode_terms(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Many units' blobs -> (doc of each posting, key, count, length per unit), vectorised."""
    n = len(blobs)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty.astype(np.int32), empty, empty.astype(np.uint16), empty.astype(np.float32)
    sizes = np.fromiter((len(b) // 8 for b in blobs), dtype=np.int64, count=n)
    flat = np.frombuffer(b"".join(blobs), dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    lengths = flat[starts].astype(np.float32)
    body = np.ones(flat.size, dtype=bool)
    body[starts] = False
    packed = flat[body]
    doc = np.repeat(np.arange(n, dtype=np.int32), sizes - 1)
    return doc, packed >> _TF_BITS, (packed & _TF_MAX).astype(np.uint16), lengths


def pool_postings(
    group: np.ndarray, key: np.ndarray, tf: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool postings into documents: posting i (term ``key[i]``, count ``tf[i]``) joins document
    ``group[i]``; ``lengths`` are the documents' lengths. Returns (doc of each posting, key, count,
    length per document), as :func:`decode_terms` does, one posting per document and term."""
    if key.size == 0:
        return np.zeros(0, dtype=np.int32), key, tf.astype(np.uint16), lengths
    g = np.asarray(group, dtype=np.int64)
    if int(g.max()) < 1 << 16:  # (group, key) fits one int64 (keys are 47 bits): one sort, not two
        order = np.argsort((g << 47) | key)
    else:
        order = np.lexsort((key, g))
    g, key, tf = g[order], key[order], tf[order].astype(np.int64)
    starts = np.flatnonzero(np.concatenate(([True], (g[1:] != g[:-1]) | (key[1:] != key[:-1]))))
    counts = np.minimum(np.add.reduceat(tf, starts), _TF_MAX).astype(np.uint16)
    return g[starts].astype(np.int32), key[starts], counts, lengths


class LexicalIndex:
    """BM25 over documents addressed by position (0..count-1), in the order appended.

    Postings live in arrays sorted by term, found through the distinct terms (a binary search
    per query term, see ``_Sorted``), plus a short unsorted tail for recent appends, merged in
    when it grows past an eighth of the whole.
    """

    merge_at = 65_536  # tail postings that trigger a merge (or an eighth of the sorted part)

    def __init__(self) -> None:
        # (sorted part, tail): replaced as a whole, never changed in place, so a query that
        # reads it once sees one consistent state while another thread appends.
        empty = _Sorted(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32),
                        np.zeros(0, dtype=np.uint16))
        self._postings: tuple[_Sorted, tuple[_Arrays, ...]] = (empty, ())
        self._tail_size = 0
        self._length = np.zeros(0, dtype=np.float32)
        self._speaker = np.zeros(0, dtype=np.int32)  # speaker code per document
        self._speaker_codes: dict[str, int] = {}
        self._speaker_keys: list[frozenset[int]] = []
        self._speaker_length: list[int] = []
        self._averages = (1e-9, 1e-9)
        self._speaker_cache: dict[tuple[int, ...], tuple[int, np.ndarray]] = {}

    def count(self) -> int:
        return int(self._length.size)

    def lengths(self, docs: np.ndarray) -> np.ndarray:
        """The lengths (words) of documents at positions ``docs``."""
        lengths: np.ndarray = self._length[docs]
        return lengths

    def speakers_named(self, keys: Sequence[int]) -> np.ndarray:
        """Codes of the speakers whose name has a term among ``keys`` (a query naming them)."""
        wanted = set(keys)
        return np.asarray([c for c, ks in enumerate(self._speaker_keys) if ks & wanted], dtype=np.int32)

    def speaker_codes(self, docs: np.ndarray) -> np.ndarray:
        """The speaker code of documents at positions ``docs``."""
        codes: np.ndarray = self._speaker[docs]
        return codes

    def append(self, blobs: Sequence[bytes], speakers: Sequence[str]) -> None:
        """Add documents: their stored term blobs (see :func:`encode_terms`) and speaker names."""
        if len(blobs) != len(speakers):
            raise ValueError("one speaker per document")  # programming error
        self.append_postings(*decode_terms(blobs), speakers)

    def append_postings(
        self, doc: np.ndarray, term: np.ndarray, tf: np.ndarray, length: np.ndarray, speakers: Sequence[str]
    ) -> None:
        """Add documents given as postings (see :func:`decode_terms`, :func:`merge_terms`)."""
        if length.size != len(speakers):
            raise ValueError("one speaker per document")  # programming error
        base = self.count()
        self._length = np.concatenate([self._length, length])
        codes = np.empty(len(speakers), dtype=np.int32)
        for i, name in enumerate(speakers):
            code = self._speaker_codes.get(name)
            if code is None:
                code = self._speaker_codes[name] = len(self._speaker_keys)
                name_keys, name_length = text_terms(name)  # a name is indexed as any text is
                self._speaker_keys.append(frozenset(name_keys))
                self._speaker_length.append(name_length)
            codes[i] = code
        self._speaker = np.concatenate([self._speaker, codes])
        sp_len = np.asarray(self._speaker_length, dtype=np.float32)
        self._averages = (  # mean text and speaker-name lengths, as BM25 normalises by them
            max(float(self._length.mean()), 1e-9) if self._length.size else 1e-9,
            max(float(sp_len[self._speaker].mean()), 1e-9) if self._speaker.size else 1e-9,
        )
        if term.size:
            sorted_part, tail = self._postings
            tail = (*tail, (term, doc + base, tf))
            self._tail_size += term.size
            if self._tail_size > max(self.merge_at, sorted_part.doc.size // 8):
                self._postings, self._tail_size = (_merge(sorted_part, tail), ()), 0
            else:
                self._postings = (sorted_part, tail)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """The index as arrays and a JSON-able dict, for :meth:`from_state` (the tail merged in)."""
        sorted_part, tail = self._postings
        keys, starts, doc, tf = _merge(sorted_part, tail) if tail else sorted_part
        names = sorted(self._speaker_codes, key=self._speaker_codes.__getitem__)
        arrays = {"keys": keys, "starts": starts, "doc": doc, "tf": tf,
                  "length": self._length, "speaker": self._speaker}
        return arrays, {"speakers": names}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> LexicalIndex:
        """An index from :meth:`state`'s output; the arrays may be memory-mapped (read-only)."""
        index = cls()
        names = meta["speakers"]
        assert isinstance(names, list)
        for name in names:  # speaker codes in order, as append_postings assigns them
            index._speaker_codes[name] = len(index._speaker_keys)
            name_keys, name_length = text_terms(name)
            index._speaker_keys.append(frozenset(name_keys))
            index._speaker_length.append(name_length)
        if "keys" in arrays:
            keys, starts = arrays["keys"], arrays["starts"]
        else:  # saved with a term key per posting (snapshot format 5 and before)
            keys, starts = _directory(np.asarray(arrays["term"]))
        index._postings = (_Sorted(keys, starts, arrays["doc"], arrays["tf"]), ())
        index._length, index._speaker = arrays["length"], arrays["speaker"]
        sp_len = np.asarray(index._speaker_length, dtype=np.float32)
        index._averages = (
            max(float(index._length.mean()), 1e-9) if index._length.size else 1e-9,
            max(float(sp_len[index._speaker].mean()), 1e-9) if index._speaker.size else 1e-9,
        )
        return index

    def compact(self) -> None:
        """Merge the unsorted tail into the sorted postings (a search scans the tail per term)."""
        sorted_part, tail = self._postings
        if tail:
            self._postings, self._tail_size = (_merge(sorted_part, tail), ()), 0

    @property
    def tail_size(self) -> int:
        """Postings not merged into the sorted part yet."""
        return self._tail_size

    def scores(self, keys: Sequence[int]) -> np.ndarray:
        """BM25 of every document for the query terms ``keys`` (zeros where nothing matches).

        Reads a snapshot of the arrays, so a concurrent ``append`` cannot tear a query.
        """
        view = self._view()
        out = np.zeros(view.n, dtype=np.float32)
        for term in self._terms_of(keys, view):
            for docs, part in term.parts(view):
                out[docs] += part
        return out

    def _view(self) -> _View:
        """The arrays a query reads, as they are now (an ``append`` replaces them, never changes them)."""
        length, speaker = self._length, self._speaker
        n = min(length.size, speaker.size)
        avg_len, sp_avg = self._averages
        return _View(n, length[:n], speaker[:n], np.asarray(self._speaker_length, dtype=np.float32), avg_len, sp_avg)

    def _terms_of(self, keys: Sequence[int], view: _View) -> list[_Term]:
        """The query terms that match any document, rarest first (ties in query order): the
        order their scores are added in, so that :meth:`search` may stop reading common ones."""
        n = view.n
        base, tail = self._postings
        terms = []
        for key in keys if n else ():
            docs, tf = _postings(key, base, tail, n)
            codes = tuple(c for c, ks in enumerate(self._speaker_keys) if key in ks)
            sp_docs = self._speaker_docs(codes, view.speaker) if codes else np.zeros(0, dtype=np.int64)
            if docs.size == 0 and sp_docs.size == 0:
                continue
            both = int(np.isin(view.speaker[docs], codes).sum()) if codes and docs.size else 0
            df = docs.size + sp_docs.size - both
            idf = float(np.log((n - df + 0.5) / (df + 0.5)))
            terms.append(_Term(docs, tf, codes, sp_docs, idf if idf > 0 else 1e-6))  # as FTS5: a common term counts a little
        order = sorted(range(len(terms)), key=lambda i: -terms[i].idf)
        return [terms[i] for i in order]

    def _speaker_docs(self, codes: tuple[int, ...], speaker: np.ndarray) -> np.ndarray:
        """The documents (ascending) among ``speaker``'s whose speaker is one of ``codes``: kept
        per set of codes and extended by what was appended since (a document's speaker never
        changes, and documents are only appended), so a name asked again costs no scan of all."""
        n = speaker.size
        seen, docs = self._speaker_cache.get(codes, (0, np.zeros(0, dtype=np.int32)))
        if seen > n:  # the caller reads an older snapshot than the one kept
            return docs[: int(np.searchsorted(docs, n))]
        if seen < n:
            more = (seen + np.flatnonzero(np.isin(speaker[seen:], codes))).astype(np.int32)
            docs = np.concatenate([docs, more])
            if len(self._speaker_cache) >= 8:  # a few names (a role's list runs to half the documents)
                self._speaker_cache.clear()
            self._speaker_cache[codes] = (n, docs)  # one assignment: readers see the old or the new
        return docs

    def documents(self, key: int) -> np.ndarray:
        """The documents (positions, each once, in no particular order) whose text holds ``key``."""
        base, tail = self._postings
        docs, _ = _postings(key, base, tail, min(self._length.size, self._speaker.size))
        return docs

    def search(self, keys: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k documents by BM25: (positions, scores), best first; only documents that match.

        The same as ranking :meth:`scores`, without scoring every posting of the common terms
        (MaxScore, per document): terms are added rarest first, and the k-th best score so far is
        kept exactly. A document whose score so far, plus the most that the terms left could add,
        stays below it can no longer rank, so each term is scored only for the documents that
        still can: once the terms left could not lift a document none of the terms read holds,
        that is the documents found, and fewer with each term.
        """
        view = self._view()
        terms = self._terms_of(keys, view)
        if not terms or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        out = np.zeros(view.n, dtype=np.float32)
        bounds = [t.bound(view) for t in terms]
        left = float(sum(bounds))  # the most the terms not read yet could add
        # ``best`` holds every document scoring at least ``kth``, the k-th best score so far (0
        # while fewer than k are found): a document rises to it only when a term adds to it.
        best = np.zeros(0, dtype=np.int64)
        kth = 0.0
        for term, bound in zip(terms, bounds):
            # A document whose score so far, and the most this term and the rest could add, stays
            # below the k-th best cannot rank: this term is read for the others only. (Margins
            # for float32 rounding: the bounds hold for exact sums.)
            least = kth * (1 - 1e-4) - left * (1 + 1e-4)
            for docs, part in term.parts(view, least if least > 0 else None, out):
                out[docs] += part
                best = union(best, docs[out[docs] >= kth])
            left -= bound
            kth, best = _kth(best, out, k)
        hit = best
        hit = hit[out[hit] > 0]
        hit = _top(hit, out[hit], k)
        order = hit[np.lexsort((hit, -out[hit]))]
        return order.astype(np.int64), out[order]


class _View:
    """What a query reads of a :class:`LexicalIndex`: its first ``n`` documents' lengths and
    speakers, the speaker names' lengths, and the mean lengths BM25 normalises by."""

    __slots__ = ("n", "length", "speaker", "sp_len", "avg_len", "sp_avg")

    def __init__(self, n: int, length: np.ndarray, speaker: np.ndarray, sp_len: np.ndarray,
                 avg_len: float, sp_avg: float) -> None:
        self.n, self.length, self.speaker, self.sp_len = n, length, speaker, sp_len
        self.avg_len, self.sp_avg = avg_len, sp_avg


class _Term:
    """One query term's postings: in the text (``docs``, counts ``tf``), and the documents of
    the speakers whose name holds it (``codes``, ``sp_docs``), with its ``idf``."""

    __slots__ = ("docs", "tf", "codes", "sp_docs", "idf")

    def __init__(self, docs: np.ndarray, tf: np.ndarray, codes: tuple[int, ...], sp_docs: np.ndarray, idf: float) -> None:
        self.docs, self.tf, self.codes, self.sp_docs, self.idf = docs, tf, codes, sp_docs, idf

    def parts(self, view: _View, least: float | None = None, found: np.ndarray | None = None,
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(documents, BM25 of this term) for the text, then the speaker's name; with ``least``,
        only for the documents whose score so far (in ``found``) is at least that."""
        docs, tf, sp_docs = self.docs, self.tf, self.sp_docs
        if least is not None and found is not None:
            held = np.flatnonzero(found[docs] >= least)
            docs, tf = docs[held], tf[held]
            sp_docs = sp_docs[found[sp_docs] >= least]
        out = []
        if docs.size:
            docs = docs.astype(np.intp, copy=False)  # (numpy indexes by intp: converted once here)
            tf = tf.astype(np.float32)
            norm = K1 * (1 - B + B * view.length[docs] / view.avg_len)
            out.append((docs, self.idf * tf * (K1 + 1) / (tf + norm)))
        if sp_docs.size:
            norm_sp = K1 * (1 - B + B * view.sp_len[view.speaker[sp_docs]] / view.sp_avg)
            out.append((sp_docs, SPEAKER_WEIGHT * self.idf * (K1 + 1) / (1 + norm_sp)))
        return out

    def bound(self, view: _View) -> float:
        """The most this term adds to any document's score: its highest count in a document of
        length 0, and its speakers' shortest name. (Bounds kept from the scores once read were
        tighter, and made no difference to the time at 1M episodes.)"""
        most = 0.0
        if self.docs.size:
            tf = float(self.tf.max())
            most += self.idf * (K1 + 1) * tf / (tf + K1 * (1 - B))
        if self.codes:
            shortest = float(view.sp_len[list(self.codes)].min())
            most += SPEAKER_WEIGHT * self.idf * (K1 + 1) / (1 + K1 * (1 - B + B * shortest / view.sp_avg))
        return most


def _kth(docs: np.ndarray, scores: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """The k-th best of ``scores`` at ``docs`` (0 when fewer), and those of ``docs`` scoring at least that."""
    if docs.size < k:
        return 0.0, docs
    at = scores[docs]
    kth = float(np.partition(at, docs.size - k)[docs.size - k])
    kept: np.ndarray = docs[at >= kth]
    return kth, kept


def _top(docs: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best of ``docs`` (ascending) by ``scores``; of those tied at the cut, the
    earliest. (``argpartition`` alone picks among ties by where they lie in the array, so the
    same scores could keep different documents from one index layout to another.)"""
    if docs.size <= k:
        return docs
    cut = np.partition(-scores, k - 1)[k - 1]
    above = docs[-scores < cut]
    kept: np.ndarray = np.concatenate([above, docs[-scores == cut][: k - above.size]])
    return kept


def _merge(sorted_part: _Sorted, tail: tuple[_Arrays, ...]) -> _Sorted:
    """The sorted postings with the tail's merged in: within a term, the documents stay in the
    order they were appended (ascending). Only the tail is sorted; the sorted part moves by
    slices, each shifted by the tail postings inserted before it. At 1M episodes (86M postings
    and a tail of 10M, when a refresh merges) sorting everything again took 8.1 s and 2.9 GB
    more memory; this takes 1.4 s and 0.95 GB."""
    t_term = np.concatenate([t for t, _, _ in tail]) if tail else np.zeros(0, dtype=np.int64)
    order = np.argsort(t_term, kind="stable")  # stable: appended order, so documents ascend
    t_term = t_term[order]
    t_doc = np.concatenate([d for _, d, _ in tail])[order] if tail else np.zeros(0, dtype=sorted_part.doc.dtype)
    t_tf = np.concatenate([f for _, _, f in tail])[order] if tail else np.zeros(0, dtype=sorted_part.tf.dtype)
    t_keys, t_starts = _directory(t_term)
    keys = np.union1d(sorted_part.keys, t_keys).astype(np.int64)
    old_at, new_at = np.searchsorted(keys, sorted_part.keys), np.searchsorted(keys, t_keys)
    old_runs, new_runs = np.diff(sorted_part.starts), np.diff(t_starts)
    counts = np.zeros(keys.size, dtype=np.int64)
    counts[old_at] += old_runs
    counts[new_at] += new_runs
    starts = np.zeros(keys.size + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    doc = np.empty(int(starts[-1]), dtype=np.result_type(sorted_part.doc.dtype, t_doc.dtype))
    tf = np.empty(int(starts[-1]), dtype=np.result_type(sorted_part.tf.dtype, t_tf.dtype))
    # a term's old postings come first in its run; the shift of old postings changes only where
    # a tail posting was put before them, so they move as a few slices
    if keys.size and sorted_part.keys.size:
        shift = starts[old_at] - sorted_part.starts[:-1]
        cuts = np.concatenate(([0], np.flatnonzero(np.diff(shift)) + 1, [shift.size]))
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            lo, hi, by = int(sorted_part.starts[a]), int(sorted_part.starts[b]), int(shift[a])
            doc[lo + by : hi + by] = sorted_part.doc[lo:hi]
            tf[lo + by : hi + by] = sorted_part.tf[lo:hi]
    if t_term.size:  # after the old postings of their term
        place = np.repeat(starts[new_at] + counts[new_at] - new_runs - t_starts[:-1], new_runs) + np.arange(t_term.size)
        doc[place] = t_doc
        tf[place] = t_tf
    return _Sorted(keys, starts, doc, tf)


def _directory(term: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys, where each one's run starts, and the end) of term keys sorted ascending."""
    if term.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    first = np.flatnonzero(np.concatenate(([True], term[1:] != term[:-1])))
    return term[first].astype(np.int64), np.append(first, term.size).astype(np.int64)


def _postings(key: int, base: _Sorted, tail: tuple[_Arrays, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(documents, counts) of one term: a binary search in the sorted part, a scan of the tail."""
    at = int(np.searchsorted(base.keys, key))
    lo = hi = 0
    if at < base.keys.size and base.keys[at] == key:
        lo, hi = int(base.starts[at]), int(base.starts[at + 1])
    docs, tfs = [base.doc[lo:hi]], [base.tf[lo:hi]]
    if hi > lo and docs[0][-1] >= n:  # appended after the caller's snapshot (docs ascend per term)
        keep = docs[0] < n
        docs, tfs = [docs[0][keep]], [tfs[0][keep]]
    for t_term, t_doc, t_tf in tail:
        hit = (t_term == key) & (t_doc < n)
        if hit.any():
            docs.append(t_doc[hit])
            tfs.append(t_tf[hit])
    if len(docs) == 1:
        return docs[0], tfs[0]
    return np.concatenate(docs), np.concatenate(tfs)
