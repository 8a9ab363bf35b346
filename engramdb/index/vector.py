"""Vector indexes behind a handful of verbs, so an ANN index can replace exact search."""

from __future__ import annotations

import threading
from typing import Protocol

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


class ExactIndex:
    """Brute-force cosine over a float32 matrix: ~10 ms per query at 100k x 384 on 2 cores.

    Only rows that have a vector are stored (a map gives their positions), so units indexed by
    full text alone cost nothing here.
    """

    def __init__(self, dimensions: int = 0) -> None:
        self._dim = dimensions
        self._count = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (vectors, positions)
        self._matrix = np.zeros((0, dimensions), dtype=np.float32)
        self._positions = np.zeros(0, dtype=np.int64)
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
        self._count += n

    def _consolidate(self) -> None:
        self._rows()

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(matrix, positions) with the pending rows folded in, as one consistent pair."""
        with self._fold:
            if self._pending:
                self._matrix = np.concatenate([self._matrix, *(v for v, _ in self._pending)])
                self._positions = np.concatenate([self._positions, *(p for _, p in self._pending)])
                self._pending.clear()
            return self._matrix, self._positions

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
        matrix, positions = self._rows()
        n = matrix.shape[0]
        if n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        sims = matrix @ np.asarray(query, dtype=np.float32)
        k = min(k, n)
        top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
        order = top[np.argsort(-sims[top], kind="stable")]
        return positions[order], sims[order].astype(np.float32)
