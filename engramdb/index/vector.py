"""Vector indexes behind a handful of verbs: exact search, and an inverted file over k-means
clusters (:class:`ClusteredIndex`) for scopes too large to scan at every search."""

from __future__ import annotations

import threading
from typing import NamedTuple, Protocol

import numpy as np


class VectorIndex(Protocol):
    """Rows are addressed by position (0..count-1), in the order they were appended."""

    def append(self, vectors: np.ndarray, valid: np.ndarray) -> None:
        """Add rows; ``valid`` marks rows that have a vector (others are never returned)."""

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine similarity: (positions, similarities), best first."""

    def count(self) -> int: ...

    def state(self) -> dict[str, np.ndarray]:
        """The index as arrays, for the class's ``from_state``."""

    def group_sums(self, positions: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
        """Sum of the stored vectors of the rows at ``positions`` per ``group`` (ints in
        [0, n_groups)): float64 [n_groups, D]; rows without a vector add nothing."""


#: Rows waiting to be folded into the matrix are folded as they come once this many wait, not
#: at the next search: a user's index built from the store arrives a chunk at a time, and all
#: of its rows were held twice at once (waiting, and in the matrix made of them: at 1M
#: episodes 3 GB each).
FOLD_ROWS = 65_536


class ExactIndex:
    """Brute-force cosine over a float32 matrix: ~10 ms per query at 100k x 384 on 2 cores.

    Only rows that have a vector are stored (a map gives their positions), so units indexed by
    full text alone cost nothing here.
    """

    def __init__(self, dimensions: int = 0) -> None:
        self._dim = dimensions
        self._count = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (vectors, positions)
        self._pending_rows = 0
        self._matrix = np.zeros((0, dimensions), dtype=np.float32)
        self._positions = np.zeros(0, dtype=np.int64)
        self._mbuf: np.ndarray | None = None  # what _matrix is a prefix of (see _fold_pending)
        self._pbuf: np.ndarray | None = None
        # Searches may run side by side and each may fold pending rows in: one at a time, and
        # the matrix and its positions are read together (see _rows).
        self._fold = threading.Lock()

    def append(self, vectors: np.ndarray, valid: np.ndarray) -> None:
        n = int(vectors.shape[0])
        if n == 0:
            return
        valid = np.asarray(valid, dtype=bool)
        if vectors.ndim == 2 and vectors.shape[1] > 0 and valid.any():
            if self._dim == 0:
                self._dim = int(vectors.shape[1])
                self._matrix = np.zeros((0, self._dim), dtype=np.float32)
            rows = np.flatnonzero(valid)
            self._pending.append((np.ascontiguousarray(vectors[rows], dtype=np.float32), rows + self._count))
            self._pending_rows += rows.size
            if self._pending_rows >= FOLD_ROWS:
                with self._fold:
                    self._fold_pending()
        self._count += n

    def _consolidate(self) -> None:
        self._rows()

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(matrix, positions) with the pending rows folded in, as one consistent pair."""
        with self._fold:
            self._fold_pending()
            return self._matrix, self._positions

    def _fold_pending(self) -> bool:
        """Append the pending rows to the matrix (the caller holds ``_fold``); True if any.

        The matrix is a prefix of a buffer with room to grow (by a quarter when full), so a
        live chat's few rows per search are copied, not the whole matrix each time. Rows
        already in it are never written, so a search still reading the previous prefix is
        undisturbed.
        """
        if not self._pending:
            return False
        vectors = [v for v, _ in self._pending]
        positions = [p for _, p in self._pending]
        self._matrix, self._mbuf = _extend(self._matrix, self._mbuf, vectors)
        self._positions, self._pbuf = _extend(self._positions, self._pbuf, positions)
        self._pending.clear()
        self._pending_rows = 0
        return True

    def count(self) -> int:
        return self._count

    def state(self) -> dict[str, np.ndarray]:
        self._consolidate()
        return {"matrix": self._matrix, "positions": self._positions, "count": np.array([self._count, self._dim])}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray]) -> ExactIndex:
        """An index from :meth:`state`'s output; the arrays may be memory-mapped (read-only)."""
        count, dim = (int(x) for x in arrays["count"])
        index = cls(dim)
        index._matrix, index._positions, index._count = arrays["matrix"], arrays["positions"], count
        return index

    def group_sums(self, positions: np.ndarray, group: np.ndarray, n_groups: int, chunk: int = 16_384) -> np.ndarray:
        self._consolidate()
        out = np.zeros((n_groups, self._dim), dtype=np.float64)
        if self._positions.size == 0 or positions.size == 0:
            return out
        positions = np.asarray(positions, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._positions, positions), self._positions.size - 1)
        has = self._positions[at] == positions
        rows, grp = at[has], np.asarray(group, dtype=np.int64)[has]
        order = np.argsort(grp, kind="stable")
        rows, grp = rows[order], grp[order]
        for i in range(0, rows.size, chunk):  # gather a slice at a time: never a copy of every row
            r, g = rows[i : i + chunk], grp[i : i + chunk]
            starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
            out[g[starts]] += np.add.reduceat(self._matrix[r].astype(np.float64), starts, axis=0)
        return out

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return _exact(*self._rows(), query, k)


#: Vectors up to which a :class:`ClusteredIndex` searches exactly (read when one is made).
EXACT_BELOW = 50_000
#: A clustered index's first pass: dimensions, clusters probed (× the exact pass's), and rows
#: it hands to the exact pass (× k). Read when an index is made. Chosen on the speed benchmark's
#: vectors (see ClusteredIndex).
LOW_DIMENSIONS = 96
PROBE_LOW = 1.5
REFINE = 8


class _Stored(NamedTuple):
    """A clustered index's arrays, read as one (see ``ClusteredIndex._view``)."""

    matrix: np.ndarray  # float32 rows; int8 codes once grouped (then ``scales`` is set)
    scales: np.ndarray | None  # float32, one per row: a row is its codes times its scale
    positions: np.ndarray
    centroids: np.ndarray
    offsets: np.ndarray
    first: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None  # the first pass: (axes, rows on them, their scales)

    def rows(self, at: np.ndarray | slice) -> np.ndarray:
        """The stored rows ``at``, as float32."""
        return _rows_at(self.matrix, self.scales, at)


class ClusteredIndex(ExactIndex):
    """Exact search up to ``exact_below`` rows (default :data:`EXACT_BELOW`); above, an inverted
    file (IVF, as in FAISS's ``IndexIVFFlat``): the rows are grouped by their nearest of ~2·√n
    spherical k-means centroids and stored cluster by cluster, and a query scans only the ``probe``
    share of the clusters nearest to it, plus the rows appended since the last grouping (the tail,
    scanned exactly). At 194k vectors (a 100k-episode scope) the default probe (12 % of the
    clusters) finds 99 % of the exact top 10 and top 50 in ~5 ms instead of ~17. Larger scopes probe
    at most ``max_probe`` clusters, so the rows read grow as √n: at 1.9M vectors (1M episodes) 128
    of 2,787 clusters, ~15 ms instead of 165, and still all of the exact top 50.

    The probed rows are first scored in ``low`` dimensions (their projection on the principal axes
    of the rows, as FAISS's ``PCA + IVF + refine``): a quarter of the bytes, where the scan is
    bound by memory bandwidth. The best ``refine`` × k of them are then scored in full. Against an
    exact scan of every row (200 questions, k = 300), probing 1.5× more clusters this way keeps
    more of the exact top 300 at 194k vectors (0.985 vs 0.978) in 2.9 ms instead of 4.5, and at
    1.9M nearly as much (0.978 vs 0.992; the top 10: 1.000 vs 0.995) in 9.3 ms instead of 13.5
    (benchmarks/README.md).

    Once grouped, the rows and their first pass's are kept as int8 codes with one scale per row
    (scalar quantization, as FAISS's ``SQ8``, but scaled per row, which suits unit vectors): a
    quarter of the bytes of float32. Over many questions a search touches nearly every page of
    both, and at 1M episodes they were 3.7 GB of the process's 4.6 GB resident; as codes, 0.94
    GB. A similarity returned is within ~2e-3 of the exact one; of the exact top 300, 0.982 are
    found at 194k vectors (0.983 with float32 rows) and 0.967 at 1.9M (0.971), in about the same
    time (``benchmarks/vector_recall.py``).

    The tail is grouped into the clusters once it grows past a quarter of the grouped rows, and
    the centroids (and the axes) are trained again once the rows have doubled since their
    training. Rows keep their positions: the stored order is an internal permutation. Below
    ``exact_below`` the index is an :class:`ExactIndex`, row for row (rankings of small scopes
    are exact).
    """

    def __init__(self, dimensions: int = 0, *, exact_below: int | None = None, probe: float = 0.12, seed: int = 0,
                 max_probe: int = 128, low: int | None = None, refine: int | None = None) -> None:
        super().__init__(dimensions)
        self.exact_below = EXACT_BELOW if exact_below is None else exact_below
        self.probe = probe
        self.max_probe = max_probe
        self.low = LOW_DIMENSIONS if low is None else low  # of the first pass (none if not fewer than the vectors')
        self.refine = REFINE if refine is None else refine
        self._seed = seed
        self._scales: np.ndarray | None = None  # set once the rows are codes (see the class)
        self._sbuf: np.ndarray | None = None
        self._basis = np.zeros((dimensions, 0), dtype=np.float32)  # the principal axes, one per column
        self._low: np.ndarray | None = None  # the rows on those axes, stored as the matrix is; None: to make
        self._low_scales: np.ndarray | None = None  # (codes, as the rows; None only if opened as float32)
        self._lbuf: np.ndarray | None = None
        self._lsbuf: np.ndarray | None = None
        self._centroids = np.zeros((0, dimensions), dtype=np.float32)
        self._offsets = np.zeros(1, dtype=np.int64)  # cluster c: rows offsets[c]..offsets[c+1]
        self._trained_on = 0  # rows when the centroids were trained
        self._by_position: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (of positions: sorted, rows)

    @property
    def clustered(self) -> int:
        """Rows grouped into clusters (the first ones stored); the rest are the tail."""
        return int(self._offsets[-1])

    def _consolidate(self) -> None:
        self._view()

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        stored = self._view()
        return (stored.matrix if stored.scales is None else stored.rows(slice(None))), stored.positions

    def _view(self) -> _Stored:
        """The arrays, pending rows folded in, read as one."""
        with self._fold:
            if self._fold_pending():
                self._by_position = None
            n, grouped = self._matrix.shape[0], self.clustered
            if n >= self.exact_below and (grouped == 0 or n - grouped > grouped // 4):
                self._organise(retrain=grouped == 0 or n >= 2 * self._trained_on)
            first = None
            if self.clustered and 0 < self.low < self._dim:
                self._project()
                assert self._low is not None
                first = (self._basis, self._low, self._low_scales)
            return _Stored(self._matrix, self._scales, self._positions, self._centroids, self._offsets, first)

    def _fold_pending(self) -> bool:
        if not self._pending:
            return False
        reaching = self._matrix.shape[0] + self._pending_rows >= self.exact_below
        if self._scales is None and self.clustered == 0 and reaching:
            # to be grouped at the next search: coded now, so that an index built from the store
            # never holds all of its rows as float32
            self._matrix, self._scales = _quantized(_Rows(self._matrix, None), np.arange(self._matrix.shape[0]))
            self._mbuf = self._sbuf = None
        if self._scales is None:
            return super()._fold_pending()
        self._matrix, self._mbuf, self._scales, self._sbuf = _append_rows(  # as codes, as the grouped rows are
            self._matrix, self._mbuf, self._scales, self._sbuf, [v for v, _ in self._pending])
        self._positions, self._pbuf = _extend(self._positions, self._pbuf, [p for _, p in self._pending])
        self._pending.clear()
        self._pending_rows = 0
        return True

    def _project(self) -> None:
        """Bring the rows' projection on the principal axes up to the matrix (the caller holds
        ``_fold``): the axes are trained if there are none, and only rows new since are projected."""
        rows = _Rows(self._matrix, self._scales)
        if self._basis.shape[1] == 0:
            self._basis = _principal_axes(rows, self.low, np.random.default_rng(self._seed))
            self._low = self._lbuf = self._low_scales = self._lsbuf = None
        if self._low is None:
            self._low = np.zeros((0, self._basis.shape[1]), dtype=np.int8)
            self._low_scales = np.zeros(0, dtype=np.float32)
        done = self._low.shape[0]
        if done < rows.shape[0]:
            parts = [rows[i : i + 65_536] @ self._basis for i in range(done, rows.shape[0], 65_536)]
            self._low, self._lbuf, self._low_scales, self._lsbuf = _append_rows(
                self._low, self._lbuf, self._low_scales, self._lsbuf, parts)

    def _organise(self, retrain: bool) -> None:
        """Group every row into the clusters (training the centroids first if asked), stored as
        codes from then on."""
        rows, positions = _Rows(self._matrix, self._scales), self._positions
        rng = np.random.default_rng(self._seed)
        n = rows.shape[0]
        if retrain or self._centroids.shape[0] == 0:
            self._centroids = _spherical_kmeans(rows, max(16, int(2 * np.sqrt(n))), rng)
            self._trained_on = n
            self._basis = np.zeros((self._dim, 0), dtype=np.float32)  # trained again on these rows
        cluster = _nearest(rows, self._centroids)
        order = np.argsort(cluster, kind="stable")
        codes, scales = _quantized(rows, order)
        self._matrix, self._mbuf = _extend(codes[:0], None, [codes])
        self._scales, self._sbuf = _extend(scales[:0], None, [scales])
        self._positions, self._pbuf = _extend(np.zeros(0, dtype=np.int64), None, [positions[order]])
        self._offsets = np.searchsorted(cluster[order], np.arange(self._centroids.shape[0] + 1)).astype(np.int64)
        self._by_position = None
        self._low = self._lbuf = self._low_scales = self._lsbuf = None  # the rows moved: projected again

    def state(self) -> dict[str, np.ndarray]:
        stored = self._view()
        matrix, scales = stored.matrix, stored.scales
        if stored.offsets[-1] and scales is None:  # opened from a format that kept float32 rows
            matrix, scales = _quantized(_Rows(matrix, None), np.arange(matrix.shape[0]))
        projected = {}
        if stored.first is not None:
            basis, low, low_scales = stored.first
            if low_scales is None:  # (as the rows)
                low, low_scales = _quantized(_Rows(low, None), np.arange(low.shape[0]))
            projected = {"basis": basis, "low": low, "low_scales": low_scales}
        return {
            "matrix": matrix, "positions": stored.positions, "count": np.array([self._count, self._dim]),
            **({"scales": scales} if scales is not None else {}),
            "centroids": stored.centroids, "offsets": stored.offsets, **projected,
            "params": np.array([self.exact_below, self.probe, self._trained_on, self._seed], dtype=np.float64),
        }

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray]) -> ClusteredIndex:
        count, dim = (int(x) for x in arrays["count"])
        if "params" in arrays:
            exact_below, probe, trained_on, seed = (float(x) for x in arrays["params"])
            index = cls(dim, exact_below=int(exact_below), probe=probe, seed=int(seed))
            index._centroids, index._offsets, index._trained_on = arrays["centroids"], arrays["offsets"], int(trained_on)
            if "low" in arrays:  # else (saved before the first pass existed) projected when first searched
                index._basis, index._low, index._low_scales = arrays["basis"], arrays["low"], arrays.get("low_scales")
                index.low = int(index._basis.shape[1])
            index._scales = arrays.get("scales")  # else: float32 rows, as saved before codes existed
        else:  # saved by an ExactIndex
            index = cls(dim)
        index._matrix, index._positions, index._count = arrays["matrix"], arrays["positions"], count
        return index

    def _position_map(self, stored: _Stored) -> tuple[np.ndarray, np.ndarray]:
        """(positions sorted, their rows) of ``stored``'s positions."""
        with self._fold:
            if self._by_position is None or self._by_position[0] is not stored.positions:
                order = np.argsort(stored.positions, kind="stable")
                self._by_position = (stored.positions, stored.positions[order], order)
            return self._by_position[1], self._by_position[2]

    def group_sums(self, positions: np.ndarray, group: np.ndarray, n_groups: int, chunk: int = 16_384) -> np.ndarray:
        stored = self._view()  # (grouped or not: the rows' order is read with them)
        out = np.zeros((n_groups, self._dim), dtype=np.float64)
        sorted_pos, rows_of = self._position_map(stored)
        if sorted_pos.size == 0 or positions.size == 0:
            return out
        positions = np.asarray(positions, dtype=np.int64)
        at = np.minimum(np.searchsorted(sorted_pos, positions), sorted_pos.size - 1)
        has = sorted_pos[at] == positions
        rows, grp = rows_of[at[has]], np.asarray(group, dtype=np.int64)[has]
        order = np.argsort(grp, kind="stable")
        rows, grp = rows[order], grp[order]
        for i in range(0, rows.size, chunk):
            r, g = rows[i : i + chunk], grp[i : i + chunk]
            starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
            out[g[starts]] += np.add.reduceat(stored.rows(r).astype(np.float64), starts, axis=0)
        return out

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        stored = self._view()
        matrix, positions, centroids, offsets, first = (stored.matrix, stored.positions, stored.centroids,
                                                        stored.offsets, stored.first)
        grouped, n = int(offsets[-1]), matrix.shape[0]
        if grouped == 0:  # (then the rows are float32, as an ExactIndex's)
            return _exact(matrix, positions, query, k)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        q = np.asarray(query, dtype=np.float32)
        c = centroids.shape[0]
        nprobe = min(c, self.max_probe, max(8, int(np.ceil(self.probe * c))))
        if first is not None:  # a cheaper first pass affords more clusters
            nprobe = min(c, int(np.ceil(PROBE_LOW * nprobe)))
        near = np.argpartition(-(centroids @ q), nprobe - 1)[:nprobe]
        near.sort()  # in storage order
        starts, ends = offsets[near], offsets[near + 1]
        spans = [(int(a), int(b)) for a, b in zip(starts, ends) if b > a]
        if n > grouped:
            spans.append((grouped, n))  # the tail
        if not spans:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows = np.concatenate([np.arange(a, b) for a, b in spans])
        if first is not None:
            basis, low, low_scales = first
            q_low = q @ basis
            rough = np.concatenate([_scores(low, low_scales, slice(a, b), q_low) for a, b in spans])
            keep = min(rows.size, self.refine * k)
            if keep < rows.size:
                rows = np.sort(rows[np.argpartition(-rough, keep - 1)[:keep]])
            sims = _scores(matrix, stored.scales, rows, q)
        else:
            sims = np.concatenate([_scores(matrix, stored.scales, slice(a, b), q) for a, b in spans])
        k = min(k, rows.size)
        top = np.argpartition(-sims, k - 1)[:k] if k < rows.size else np.arange(rows.size)
        order = top[np.lexsort((positions[rows[top]], -sims[top]))]  # ties: by position
        return positions[rows[order]], sims[order].astype(np.float32)


def _exact(matrix: np.ndarray, positions: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of float32 rows by dot product with ``query``: (positions, similarities)."""
    n = matrix.shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    sims = matrix @ np.asarray(query, dtype=np.float32)
    k = min(k, n)
    top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
    order = top[np.argsort(-sims[top], kind="stable")]
    return positions[order], sims[order].astype(np.float32)


class _Rows:
    """Float32 rows read from a matrix as stored: float32, or int8 codes with a scale per row."""

    def __init__(self, matrix: np.ndarray, scales: np.ndarray | None) -> None:
        self.matrix, self.scales = matrix, scales
        self.shape = matrix.shape

    def __getitem__(self, at: np.ndarray | slice) -> np.ndarray:
        return _rows_at(self.matrix, self.scales, at)


def _rows_at(matrix: np.ndarray, scales: np.ndarray | None, at: np.ndarray | slice) -> np.ndarray:
    rows = np.asarray(matrix[at], dtype=np.float32)
    if scales is None:
        return rows
    out: np.ndarray = rows * scales[at][:, None]
    return out


def _scores(matrix: np.ndarray, scales: np.ndarray | None, at: np.ndarray | slice, query: np.ndarray) -> np.ndarray:
    """Dot products of the stored rows ``at`` with ``query`` (codes: scaled after the product)."""
    sims: np.ndarray = np.asarray(matrix[at], dtype=np.float32) @ query
    return sims if scales is None else sims * scales[at]


def _append_rows(current: np.ndarray, buffer: np.ndarray | None, scales: np.ndarray | None,
                 scale_buffer: np.ndarray | None, parts: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """:func:`_extend` for rows stored as they are (``scales`` None) or as codes (then ``parts``
    are coded first): (rows, buffer, scales, scale buffer)."""
    if scales is None:
        current, buffer = _extend(current, buffer, parts)
        return current, buffer, None, None
    coded = [_quantize(p) for p in parts]
    current, buffer = _extend(current, buffer, [c for c, _ in coded])
    scales, scale_buffer = _extend(scales, scale_buffer, [f for _, f in coded])
    return current, buffer, scales, scale_buffer


def _quantize(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, float32 scale per row) of float rows: a row's largest component is coded
    ±127, and its scale is then the one that brings the codes closest to the row (least squares:
    the rounding error is left orthogonal to the row kept, so a unit row's similarity to itself
    comes out just under 1, never over)."""
    rows = np.asarray(rows, dtype=np.float32)
    peak = np.abs(rows).max(axis=1) if rows.shape[1] else np.zeros(rows.shape[0], dtype=np.float32)
    codes = np.rint(rows / np.where(peak > 0, peak / 127.0, 1.0)[:, None]).astype(np.int8)
    wide = codes.astype(np.float32)
    power = np.einsum("ij,ij->i", wide, wide)
    scales = np.where(power > 0, np.einsum("ij,ij->i", rows, wide) / np.maximum(power, 1.0), 1.0).astype(np.float32)
    return codes, scales


def _quantized(rows: _Rows, order: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """The rows in ``order`` as codes and scales, a slice at a time (never a float32 copy of all)."""
    codes = np.empty((order.size, rows.shape[1]), dtype=np.int8)
    scales = np.empty(order.size, dtype=np.float32)
    for i in range(0, order.size, chunk):
        codes[i : i + chunk], scales[i : i + chunk] = _quantize(rows[order[i : i + chunk]])
    return codes, scales


def _extend(current: np.ndarray, buffer: np.ndarray | None, parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``current`` (a prefix of ``buffer``, or standing alone when ``buffer`` is None) with
    ``parts`` appended: (the longer prefix, its buffer)."""
    n, add = current.shape[0], sum(p.shape[0] for p in parts)
    if buffer is None or buffer.shape[0] < n + add:
        buffer = np.empty((max(int(1.25 * (n + add)), 1024), *current.shape[1:]), dtype=current.dtype)
        buffer[:n] = current
    at = n
    for p in parts:
        buffer[at : at + p.shape[0]] = p
        at += p.shape[0]
    return buffer[:at], buffer


def _spherical_kmeans(matrix: np.ndarray | _Rows, clusters: int, rng: np.random.Generator, iterations: int = 8,
                      sample: int = 40_000) -> np.ndarray:
    """``clusters`` unit centroids of (a sample of) the rows, by cosine: Lloyd's iterations."""
    n = matrix.shape[0]
    clusters = min(clusters, n)
    take = np.sort(rng.choice(n, size=min(n, max(sample, 16 * clusters)), replace=False))
    data = np.asarray(matrix[take], dtype=np.float32)
    centroids: np.ndarray = data[rng.choice(data.shape[0], size=clusters, replace=False)].copy()
    for _ in range(iterations):
        nearest = _nearest(data, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, data)
        empty = np.bincount(nearest, minlength=clusters) == 0
        if empty.any():  # a cluster nobody chose starts again from a random row
            sums[empty] = data[rng.choice(data.shape[0], size=int(empty.sum()), replace=False)]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return centroids


def _principal_axes(matrix: np.ndarray | _Rows, dims: int, rng: np.random.Generator,
                    sample: int = 40_000) -> np.ndarray:
    """The ``dims`` directions along which (a sample of) the rows vary most, as the columns of
    a [D, dims] float32 matrix (PCA). A dot product on them ranks rows as the full one does, up
    to the variance left out (a constant shift per query comes from the rows' mean)."""
    n = matrix.shape[0]
    take = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    data = np.asarray(matrix[take], dtype=np.float64)
    data -= data.mean(axis=0)
    values, vectors = np.linalg.eigh(data.T @ data)  # ascending
    return np.ascontiguousarray(vectors[:, ::-1][:, :dims], dtype=np.float32)


def _nearest(matrix: np.ndarray | _Rows, centroids: np.ndarray, chunk: int = 32_768) -> np.ndarray:
    """Index of each row's nearest centroid (highest dot product), a slice at a time."""
    out = np.empty(matrix.shape[0], dtype=np.int64)
    for i in range(0, matrix.shape[0], chunk):
        out[i : i + chunk] = np.argmax(np.asarray(matrix[i : i + chunk], dtype=np.float32) @ centroids.T, axis=1)
    return out
