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


def test_group_sums_equal_a_plain_sum_over_any_chunking() -> None:
    rng = np.random.default_rng(7)
    idx = ExactIndex()
    valid = rng.random(60) > 0.3
    vecs = rng.normal(size=(60, 4)).astype(np.float32)
    idx.append(vecs[:25], valid[:25])
    idx.append(vecs[25:], valid[25:])  # pending rows are included
    positions = np.sort(rng.choice(60, size=40, replace=False))
    group = rng.integers(0, 5, size=40)
    expected = np.zeros((5, 4))
    for p, g in zip(positions, group):
        if valid[p]:
            expected[g] += vecs[p]
    for chunk in (1, 3, 7, 1000):
        assert np.allclose(idx.group_sums(positions, group, 5, chunk=chunk), expected, atol=1e-6)
    assert idx.group_sums(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 2).shape == (2, 4)
    assert ExactIndex().group_sums(positions, group, 5).shape == (5, 0)
