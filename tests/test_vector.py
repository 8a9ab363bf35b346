"""The vector indexes: exact, and clustered (its rows coded): positions, rows without vectors,
appends across calls, saved states."""

import numpy as np
import pytest

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


def _clustered_data(n: int, dim: int = 16, centres: int = 20, seed: int = 3, decay: float | None = None) -> np.ndarray:
    """Unit rows around ``centres`` points; with ``decay``, dimension j varies as exp(-j/decay)
    (as sentence embeddings do: a few directions carry most of the variance)."""
    rng = np.random.default_rng(seed)
    scale = np.ones(dim) if decay is None else np.exp(-np.arange(dim) / decay)
    c = rng.normal(size=(centres, dim)) * scale
    x = c[rng.integers(0, centres, size=n)] + 0.3 * rng.normal(size=(n, dim)) * scale
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _decoded(state: dict[str, np.ndarray], name: str = "matrix", scales: str = "scales") -> np.ndarray:
    """A saved clustered index's rows (or, with "low", "low_scales", their first pass's) as
    float32: codes times their row's scale."""
    assert state[name].dtype == np.int8
    out: np.ndarray = state[name].astype(np.float32) * state[scales][:, None]
    return out


def test_clustered_index_is_exact_below_its_threshold() -> None:
    from engramdb.index.vector import ClusteredIndex

    x = _clustered_data(300)
    valid = np.arange(300) % 7 != 0
    exact, clustered = ExactIndex(), ClusteredIndex(exact_below=1000)
    for idx in (exact, clustered):
        idx.append(x[:120], valid[:120])
        idx.append(x[120:], valid[120:])
    for q in x[:20]:
        e, c = exact.search(q, 15), clustered.search(q, 15)
        assert e[0].tolist() == c[0].tolist() and np.array_equal(e[1], c[1])
    assert clustered.clustered == 0


def test_clustered_index_finds_the_nearest_rows_and_keeps_positions() -> None:
    from engramdb.index.vector import ClusteredIndex

    x = _clustered_data(4000)
    valid = np.ones(4000, dtype=bool)
    valid[::10] = False  # rows without a vector keep their positions out of the results
    exact, clustered = ExactIndex(), ClusteredIndex(exact_below=1000, probe=0.25)
    for idx in (exact, clustered):
        idx.append(x[:3000], valid[:3000])
    assert clustered.search(x[1], 5)[0][0] == 1 and clustered.clustered == int(valid[:3000].sum())
    for idx in (exact, clustered):  # a tail, scanned exactly until it is grouped in
        idx.append(x[3000:3300], valid[3000:3300])
    pos, sims = clustered.search(x[3001], 3)
    assert pos[0] == 3001 and 1 - 2e-3 < sims[0] <= 1 and clustered.clustered < 3300
    found = 0
    for q in x[:200:3]:
        e, c = exact.search(q, 20)[0], clustered.search(q, 20)[0]
        assert not set(c.tolist()) & set(np.flatnonzero(~valid).tolist())
        found += len(set(e.tolist()) & set(c.tolist()))
    assert found / (20 * len(x[:200:3])) >= 0.95
    for idx in (exact, clustered):  # past a quarter more: the tail is grouped into the clusters
        idx.append(x[3300:], valid[3300:])
    clustered.search(x[0], 1)
    assert clustered.clustered == int(valid.sum())
    positions = np.arange(0, 4000, 3)
    group = positions % 4
    sums, exact_sums = clustered.group_sums(positions, group, 4), exact.group_sums(positions, group, 4)
    norms, exact_norms = np.linalg.norm(sums, axis=1), np.linalg.norm(exact_sums, axis=1)
    cosines = np.einsum("ij,ij->i", sums, exact_sums) / norms / exact_norms
    assert cosines.min() > 1 - 1e-5 and np.allclose(norms, exact_norms, rtol=1e-3)  # (the rows are codes)
    # saved and opened again (as a snapshot is): the same answers
    again = ClusteredIndex.from_state({k: v.copy() for k, v in clustered.state().items()})
    for q in x[:50:7]:
        a, b = clustered.search(q, 10), again.search(q, 10)
        assert a[0].tolist() == b[0].tolist()
    assert again.count() == clustered.count() == 4000
    # an ExactIndex's saved state opens as a ClusteredIndex (grouped when first searched)
    old = ClusteredIndex.from_state(ExactIndex.from_state(exact.state()).state())
    assert old.search(x[5], 1)[0][0] == 5


def test_clustered_index_first_pass_on_principal_axes_then_scores_the_full_rows() -> None:
    from engramdb.index.vector import ClusteredIndex

    # (found: 1.0 here; on random axes 0.82, on the least varying ones 0.12)
    x = _clustered_data(4000, dim=128, decay=32.0)
    valid = np.ones(4000, dtype=bool)
    valid[::10] = False
    exact, two = ExactIndex(), ClusteredIndex(exact_below=1000, probe=0.25, low=32)
    for idx in (exact, two):
        idx.append(x[:3000], valid[:3000])
    found = 0
    for q in x[:200:3]:
        pos, sims = two.search(q, 20)
        assert np.allclose(sims, x[pos] @ q, atol=2e-3)  # the second pass scores the full rows (as codes)
        assert not set(pos.tolist()) & set(np.flatnonzero(~valid).tolist())
        found += len(set(exact.search(q, 20)[0].tolist()) & set(pos.tolist()))
    assert found / (20 * len(x[:200:3])) >= 0.95
    state = two.state()
    assert state["basis"].shape == (128, 32) and state["low"].shape == (int(valid[:3000].sum()), 32)
    assert state["low"].dtype == np.int8 and state["low_scales"].shape == (state["low"].shape[0],)
    # the axes are orthonormal, and the rows on them are the stored rows projected
    assert np.allclose(state["basis"].T @ state["basis"], np.eye(32), atol=1e-4)
    assert np.allclose(_decoded(state, "low", "low_scales"), _decoded(state) @ state["basis"], atol=5e-3)
    for idx in (exact, two):  # a tail: projected as it comes, found at once
        idx.append(x[3000:3300], valid[3000:3300])
    pos, sims = two.search(x[3001], 3)
    assert pos[0] == 3001 and abs(sims[0] - 1.0) < 2e-3
    state = two.state()
    assert state["low"].shape[0] == state["matrix"].shape[0] == int(valid[:3300].sum())
    # saved and opened again, with the first pass and without it (saved by an older version)
    again = ClusteredIndex.from_state({k: v.copy() for k, v in state.items()})
    older = ClusteredIndex.from_state({k: v.copy() for k, v in state.items()
                                       if k not in ("basis", "low", "low_scales")})
    for q in x[:50:7]:
        a, b, c = two.search(q, 10), again.search(q, 10), older.search(q, 10)
        assert a[0].tolist() == b[0].tolist() == c[0].tolist()
    # past a quarter more: the rows are grouped and trained again, and projected again
    for idx in (exact, two):
        idx.append(x[3300:], valid[3300:])
    two.search(x[0], 1)
    state = two.state()
    assert state["low"].shape[0] == int(valid.sum())
    assert np.allclose(_decoded(state, "low", "low_scales"), _decoded(state) @ state["basis"], atol=5e-3)


def test_clustered_index_keeps_grouped_rows_as_int8_codes_and_opens_float_rows() -> None:
    from engramdb.index.vector import ClusteredIndex

    x = _clustered_data(3000, dim=64, decay=16.0)
    idx = ClusteredIndex(exact_below=1000, probe=0.25, low=16)
    idx.append(x[:2000], np.ones(2000, dtype=bool))
    idx.search(x[0], 1)
    idx.append(x[2000:2100], np.ones(100, dtype=bool))  # a tail: coded as it joins
    state = idx.state()
    assert state["matrix"].dtype == np.int8 and state["scales"].shape == (2100,)
    assert np.abs(state["matrix"]).max() == 127
    order = state["positions"]
    decoded = _decoded(state)
    step = np.abs(x[order]).max(axis=1) / 127  # a row's largest component is coded ±127
    assert (np.abs(decoded - x[order]).max(axis=1) <= 0.75 * step).all()  # rounding: half a step, and the fit
    # a unit row's similarity to itself: just under 1 (the rounding is orthogonal to the row)
    self_sims = np.einsum("ij,ij->i", decoded, x[order])
    assert self_sims.max() <= 1.0 + 1e-6 and self_sims.min() > 1 - 1e-3
    # saved with float32 rows (before codes existed): opened as such, searched the same, saved as codes
    older = {**{k: v.copy() for k, v in state.items() if k not in ("scales", "low_scales")},
             "matrix": x[order].copy(), "low": x[order] @ state["basis"]}
    opened = ClusteredIndex.from_state(older)
    for q in x[:300:13]:
        a, b = idx.search(q, 10), opened.search(q, 10)
        assert len(set(a[0].tolist()) & set(b[0].tolist())) >= 9 and np.allclose(a[1], b[1], atol=2e-3)
    again = opened.state()
    assert again["matrix"].dtype == np.int8 and np.array_equal(again["matrix"], state["matrix"])
    assert np.allclose(again["scales"], state["scales"], rtol=1e-6)
    assert again["low"].dtype == np.int8 and np.allclose(_decoded(again, "low", "low_scales"),
                                                         _decoded(state, "low", "low_scales"), atol=1e-2)


def test_rows_are_folded_as_they_come_and_coded_before_the_first_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """An index built from the store gets its rows a chunk at a time: they are folded in as they
    come, and coded once there are enough to group, so all of them are never held as float32
    (waiting, then in the matrix made of them)."""
    import tracemalloc

    from engramdb.index import vector

    monkeypatch.setattr(vector, "FOLD_ROWS", 2_000)
    x = _clustered_data(40_000, dim=128, decay=32.0)
    valid = np.ones(x.shape[0], dtype=bool)
    built = vector.ClusteredIndex(exact_below=4_000, probe=0.25, low=32)
    tracemalloc.start()
    for i in range(0, x.shape[0], 1_000):
        built.append(x[i : i + 1_000], valid[i : i + 1_000])
        assert built._pending_rows < 2_000  # never more than a fold's worth waits
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # codes are a quarter of float32, held twice while their buffer grows; all rows waiting as
    # float32 (before) are x itself
    assert peak < 0.75 * x.nbytes
    assert built._matrix.dtype == np.int8 and built.clustered == 0  # coded; grouped at the first search
    once = vector.ClusteredIndex(exact_below=4_000, probe=0.25, low=32)
    once.append(x, valid)
    for q in x[:2_000:97]:
        a, b = built.search(q, 10), once.search(q, 10)
        assert len(set(a[0].tolist()) & set(b[0].tolist())) >= 9 and np.allclose(a[1][:5], b[1][:5], atol=3e-3)
    assert built.clustered == once.clustered == x.shape[0]
