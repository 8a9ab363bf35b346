"""The set operations of search's hot paths give numpy's own results (pure logic)."""

from __future__ import annotations

import numpy as np

from engramdb.index.arrays import distinct, minus, union


def test_set_operations_equal_numpys() -> None:
    rng = np.random.default_rng(5)
    for size in (0, 1, 2, 7, 300, 5000):
        for dtype in (np.int32, np.int64):
            a = rng.integers(-3, 200, size).astype(dtype)
            b = rng.integers(0, 400, size // 2 + 1).astype(dtype)
            for got, want in ((distinct(a), np.unique(a)), (union(a, b), np.union1d(a, b)), (minus(a, b), np.setdiff1d(a, b))):
                assert got.tolist() == want.tolist()
                assert got.dtype == want.dtype
    assert union(np.array([3, 1]), np.array([], dtype=np.int64), np.array([1, 2])).tolist() == [1, 2, 3]
