"""Vector indexes behind a handful of verbs, so an ANN index can replace exact search."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    """Rows are addressed by position (0..count-1), in the order they were appended."""

    def append(self, vectors: np.ndarray, valid: np.ndarray) -> None:
        """Add rows; ``valid`` marks rows that have a vector (others are never returned)."""

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine similarity: (positions, similarities), best first."""

    def count(self) -> int: ...


class ExactIndex:
    """Brute-force cosine over a float32 matrix: ~10 ms per query at 100k x 384 on 2 cores."""

    def __init__(self, dimensions: int = 0) -> None:
        self._dim = dimensions
        self._chunks: list[np.ndarray] = []
        self._valid_chunks: list[np.ndarray] = []
        self._matrix = np.zeros((0, dimensions), dtype=np.float32)
        self._valid = np.zeros(0, dtype=bool)

    def append(self, vectors: np.ndarray, valid: np.ndarray) -> None:
        if vectors.shape[0] == 0:
            return
        if vectors.shape[1] == 0:  # rows without any vector yet (e.g. no embedder)
            vectors = np.zeros((vectors.shape[0], self._dim), dtype=np.float32)
            valid = np.zeros(vectors.shape[0], dtype=bool)
        if self._dim == 0:
            self._dim = vectors.shape[1]
            self._matrix = np.zeros((0, self._dim), dtype=np.float32)
        self._chunks.append(np.ascontiguousarray(vectors, dtype=np.float32))
        self._valid_chunks.append(np.asarray(valid, dtype=bool))

    def _consolidate(self) -> None:
        if self._chunks:
            self._matrix = np.concatenate([self._matrix, *self._chunks])
            self._valid = np.concatenate([self._valid, *self._valid_chunks])
            self._chunks.clear()
            self._valid_chunks.clear()

    def count(self) -> int:
        return int(self._matrix.shape[0] + sum(c.shape[0] for c in self._chunks))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._consolidate()
        n = self._matrix.shape[0]
        if n == 0 or self._dim == 0 or not self._valid.any():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        sims = self._matrix @ np.asarray(query, dtype=np.float32)
        sims = np.where(self._valid, sims, -np.inf)
        k = min(k, int(self._valid.sum()))
        top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.isfinite(sims[top])]
        order = top[np.argsort(-sims[top], kind="stable")]
        return order.astype(np.int64), sims[order].astype(np.float32)
