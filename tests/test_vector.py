"""The exact vector index: positions, rows without vectors, appends across calls."""

import numpy as np

from engramdb.index.vector import ExactIndex


def test_exact_index_returns_positions_of_valid_rows_best_first() -> None:
    idx = ExactIndex()
    idx.append(np.array([[1.0, 0.0], [0.0, 0.0], [0.6, 0.8]], dtype=np.float32), np.array([True, False, True]))
    idx.append(np.zeros((2, 0), dtype=np.float32), np.array([False, False]))  # rows with no vector at all
    idx.append(np.array([[0.0, 1.0]], dtype=np.float32), np.array([True]))
    assert idx.count() == 6
    pos, sims = idx.search(np.array([0.0, 1.0], dtype=np.float32), 10)
    assert pos.tolist() == [5, 2, 0] and sims.tolist() == [1.0, np.float32(0.8), 0.0]
    pos, _ = idx.search(np.array([1.0, 0.0], dtype=np.float32), 1)
    assert pos.tolist() == [0]
    assert ExactIndex().search(np.array([1.0]), 3)[0].size == 0
