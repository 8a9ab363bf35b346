"""Recall indexes saved beside the file: a fresh process opens them instead of rebuilding, the
journal brings them up to date, and no crash or foreign file makes them lie (real SQLite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engramdb import HashEmbedder, Memory
from engramdb.recall import pipeline, snapshot


def _fill(mem: Memory, user: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n, 10):
        mem.add(
            [{"role": "user", "name": ["Ana", "Ben"][j % 2], "content": f"Day {j}: we talked about topic{j % 7} and the lake {j}."}
             for j in range(i, i + 10)],
            user_id=user, session_id=f"s{i // 30}",
        )


def _ranking(mem: Memory, user: str) -> list[tuple[list[str], float, str]]:
    out = []
    for q in ("topic3 lake", "what did Ana say about topic5?", "day 17"):
        out += [(h.episode_ids, round(h.score, 6), h.text) for h in mem.search(q, user_id=user, limit=15)]
    return out


@pytest.fixture
def save_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "SAVE_MIN_UNITS", 1)  # save every index, however small


def _states_equal(a: object, b: object) -> None:
    from engramdb.recall.scope import ScopeIndex

    assert isinstance(a, ScopeIndex) and isinstance(b, ScopeIndex)
    (xa, ma), (xb, mb) = a.state(), b.state()
    assert ma == mb and sorted(xa) == sorted(xb)
    for k in xa:
        assert np.array_equal(np.asarray(xa[k]), np.asarray(xb[k]), equal_nan=True), k


def test_a_fresh_process_opens_the_saved_index(tmp_path: Path, save_small: None) -> None:
    path = tmp_path / "m.db"
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 120)
        before = _ranking(mem, "u")  # the first search builds the index and saves it
    saved = list((tmp_path / "m.db.idx").glob("*/CURRENT"))
    assert len(saved) == 1
    with Memory(path, embedder=HashEmbedder()) as mem:
        scope = mem._recall.scope("u")
        assert scope.units > 0 and scope.saved_units == scope.units  # opened, not rebuilt
        matrix = scope.vectors.state()["matrix"]
        assert isinstance(matrix.base, np.memmap) and not matrix.flags.owndata  # a view of the map
        assert _ranking(mem, "u") == before
        _fill(mem, "u", 30, start=120)  # appended after the snapshot: read from the file
        after = _ranking(mem, "u")
        with Memory(path, embedder=HashEmbedder(), persist_indexes=False) as rebuilt:
            assert _ranking(rebuilt, "u") == after
            _states_equal(mem._recall.index("u"), rebuilt._recall.index("u"))


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads the kernel's advice from /proc (Linux)")
def test_arrays_read_at_scattered_places_are_mapped_without_read_ahead(tmp_path: Path, save_small: None) -> None:
    """The vectors re-scored and the postings are read a few pages at a time: read ahead, every
    page brought its neighbours into memory. Arrays read whole are still read ahead."""
    path = tmp_path / "m.db"
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 60)
        mem.search("topic3", user_id="u")
    with Memory(path, embedder=HashEmbedder()) as mem:
        assert mem._recall.scope("u").saved_units > 0  # opened from the snapshot
        flags: dict[str, str] = {}
        name = ""
        for line in Path("/proc/self/smaps").read_text().splitlines():
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping: address range ... [path]
                name = Path(head[-1]).name if len(head) >= 6 and str(tmp_path) in line else ""  # (none: anonymous)
            elif line.startswith("VmFlags:") and name:
                flags[name] = line
        assert {"vec_matrix.npy", "lex_doc.npy", "lex_keys.npy", "ep_ts.npy", "lex_length.npy"} <= set(flags)
        for scattered in ("vec_matrix.npy", "lex_doc.npy", "lex_tf.npy", "terms_keys.npy"):
            assert " rr" in flags[scattered], scattered  # MADV_RANDOM
        for whole in ("ep_ts.npy", "lex_length.npy", "unit_ep.npy", "lex_keys.npy"):
            assert " rr" not in flags[whole], whole


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="asks the kernel through posix_fadvise")
def test_a_snapshot_opened_with_memory_to_spare_is_read_ahead_once(
    tmp_path: Path, save_small: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel is asked to read the arrays read at scattered places into the page cache, in
    the background, when memory holds them with room to spare (from a cold page cache a search
    would bring them in a page at a time), once the index has answered its first search, once
    per process; not when memory is short."""
    path = tmp_path / "m.db"
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 60)
        mem.search("topic3", user_id="u")
    monkeypatch.setattr(snapshot, "WARM_MIN_BYTES", 0)
    monkeypatch.setattr(snapshot, "_warmed", set())
    read: list[str] = []
    asked: list[int] = []
    threads: list[object] = []
    real_open, real_advise, real_warm = os.open, os.posix_fadvise, snapshot.warm

    def opened(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file).endswith(".npy"):
            read.append(Path(file).stem)
        return real_open(file, *args, **kwargs)

    def advised(fd, offset, length, advice):  # type: ignore[no-untyped-def]
        asked.append(advice)
        return real_advise(fd, offset, length, advice)

    def warming(paths):  # type: ignore[no-untyped-def]
        thread = real_warm(paths)
        threads.append(thread)
        return thread

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "posix_fadvise", advised)
    monkeypatch.setattr(snapshot, "warm", warming)
    monkeypatch.setattr(snapshot, "available_memory", lambda: 1_000)  # short of memory
    with Memory(path, embedder=HashEmbedder()) as mem:
        assert mem._recall.scope("u").saved_units > 0
        assert threads == []  # not before the index has answered
        mem.search("topic3", user_id="u")
    assert threads == [None] and read == []
    monkeypatch.setattr(snapshot, "available_memory", lambda: 1 << 40)
    for _ in range(2):
        with Memory(path, embedder=HashEmbedder()) as mem:
            assert mem._recall.scope("u").saved_units > 0
            mem.search("topic3", user_id="u")
            mem.search("topic5", user_id="u")
    assert len(threads) == 3 and threads[1] is not None and threads[2] is None  # once per process
    threads[1].join(timeout=30)  # type: ignore[attr-defined]
    assert asked and set(asked) == {os.POSIX_FADV_WILLNEED}
    saved = {p.stem for p in (tmp_path / "m.db.idx").glob("*/*/*.npy")}
    assert {"vec_matrix", "lex_doc", "lex_keys", "ep_ts", "lex_length"} <= saved
    assert sorted(read) == sorted(saved & snapshot.SCATTERED)  # each once; not those read whole


def test_a_saved_index_is_not_trusted_after_a_delete_or_for_another_file(tmp_path: Path, save_small: None) -> None:
    path = tmp_path / "m.db"
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 60)
        _ranking(mem, "u")
        victim = mem.list(user_id="u")[5].id
    with Memory(path, embedder=HashEmbedder(), persist_indexes=False) as other:
        other.delete(victim, user_id="u")  # another process removes rows behind the snapshot
    with Memory(path, embedder=HashEmbedder()) as mem:
        hits = _ranking(mem, "u")
        assert all(victim not in ids for ids, _, _ in hits)
    with Memory(path, embedder=HashEmbedder(), persist_indexes=False) as rebuilt:
        assert _ranking(rebuilt, "u") == hits
    # the same folder beside a different database with the same user: ignored
    os.rename(tmp_path / "m.db.idx", tmp_path / "n.db.idx")
    with Memory(tmp_path / "n.db", embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 20)
        assert mem._recall.scope("u").units == 0  # not opened: built from this file
        assert len(mem.search("lake", user_id="u", limit=50)) == 20


def test_a_snapshot_is_not_trusted_over_a_restored_backup(tmp_path: Path, save_small: None) -> None:
    import shutil
    import sqlite3

    path = tmp_path / "r.db"
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 40)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(path) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 40, start=40)
        _ranking(mem, "u")  # saved: 80 episodes
    for part in ("", "-wal", "-shm"):
        Path(f"{path}{part}").unlink(missing_ok=True)
    shutil.copy(backup, path)  # the file goes back to 40 episodes; the snapshot stays
    with Memory(path, embedder=HashEmbedder(), persist_indexes=False) as other:
        _fill(other, "u", 60, start=500)  # other writes: the user's version passes the snapshot's
    with Memory(path, embedder=HashEmbedder()) as mem, Memory(path, embedder=HashEmbedder(), persist_indexes=False) as fresh:
        assert mem._recall.scope("u").units == 0  # not opened: rebuilt from the file
        assert _ranking(mem, "u") == _ranking(fresh, "u")


def test_a_killed_save_leaves_an_index_equal_to_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    script = textwrap.dedent(f"""
        import sys
        from engramdb import HashEmbedder, Memory
        from engramdb.recall import pipeline
        pipeline.SAVE_MIN_UNITS = 1
        pipeline.SAVE_SHARE = 0.0
        with Memory({str(path)!r}, embedder=HashEmbedder()) as mem:
            i = 0
            while True:
                mem.add([f"Note {{i}}.{{k}} about topic{{(i + k) % 9}} and the river {{i}}." for k in range(5)],
                        user_id="u", session_id=f"s{{i // 20}}")
                mem.search("topic4 river", user_id="u")  # refresh: saves a snapshot each time
                i += 1
                if i == 3:
                    print("ready", flush=True)
    """)
    for wait in (0.05, 0.3, 0.9):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(wait)
        os.kill(proc.pid, signal.SIGKILL)  # somewhere in add, search or the save of a snapshot
        proc.wait()
        with Memory(path, embedder=HashEmbedder()) as mem, Memory(path, embedder=HashEmbedder(), persist_indexes=False) as fresh:
            assert _ranking(mem, "u") == _ranking(fresh, "u")
            _states_equal(mem._recall.index("u"), fresh._recall.index("u"))
    leftovers = [p.name for p in (tmp_path / "k.db.idx").glob("*/*") if p.name != "CURRENT"]
    assert len(leftovers) <= 2  # the current snapshot (and at most one a kill left half-written)


def test_a_save_clears_what_killed_saves_left(tmp_path: Path, save_small: None) -> None:
    path = tmp_path / "c.db"
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 20)
        _ranking(mem, "u")
        [current] = list((tmp_path / "c.db.idx").glob("*/CURRENT"))
        base = current.parent
        # what a kill leaves at each step of a save: a folder half-written, a complete one never
        # made current (its pointer still inside), and a pointer file of an older version
        (base / ".7-dead.tmp").mkdir()
        (base / ".7-dead.tmp" / "vectors.npy").write_bytes(b"half")
        (base / "8-dead").mkdir()
        (base / "8-dead" / snapshot._POINTER).write_text("8-dead")
        (base / ".CURRENT.0badf00d").write_text("6-gone")
        _fill(mem, "u", 20, start=20)
        _ranking(mem, "u")  # the next save
        name = (base / "CURRENT").read_text()
        assert sorted(p.name for p in base.iterdir()) == sorted(["CURRENT", name])
        assert not (base / name / snapshot._POINTER).exists()


def _near(got: list[tuple[list[str], float, str]], want: list[tuple[list[str], float, str]]) -> bool:
    """The same hits in the same order, scores equal up to float rounding."""
    return [h[0] for h in got] == [h[0] for h in want] and all(abs(a[1] - b[1]) < 1e-5 for a, b in zip(got, want))


@pytest.mark.parametrize("older", [3, 4, 5])
def test_a_snapshot_of_an_older_format_is_opened_and_saved_again_once(
    tmp_path: Path, save_small: None, monkeypatch: pytest.MonkeyPatch, older: int
) -> None:
    """Format 3 lacks the clustered index's first pass, format 4 keeps its rows as float32, not
    codes, and format 5 and before keep a term key per posting, not the terms' directory: opened
    all the same (not rebuilt), what is missing is made on first use and the index saved again,
    once."""
    from engramdb.index import vector

    monkeypatch.setattr(vector, "EXACT_BELOW", 100)  # clustered, with a first pass on 16 of 64 axes
    monkeypatch.setattr(vector, "LOW_DIMENSIONS", 16)
    path = tmp_path / "m.db"
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 300)
        before = _ranking(mem, "u")
    (base,) = [p.parent for p in (tmp_path / "m.db.idx").glob("*/CURRENT")]
    name = (base / "CURRENT").read_text()
    meta = json.loads((base / name / "meta.json").read_text())
    first_pass = [a for a in meta["arrays"] if a.endswith(("_basis", "_low"))]
    assert "vec_low" in first_pass and meta["format"] == snapshot.FORMAT == 6
    codes, scales = np.load(base / name / "vec_matrix.npy"), np.load(base / name / "vec_scales.npy")
    assert codes.dtype == np.int8 and scales.shape == (codes.shape[0],)
    gone = [f"{p}{a}" for p in ("lex_", "seglex_") for a in ("keys", "starts")]
    for p in ("lex_", "seglex_"):  # a term key per posting
        keys, starts = np.load(base / name / f"{p}keys.npy"), np.load(base / name / f"{p}starts.npy")
        np.save(base / name / f"{p}term.npy", np.repeat(keys, np.diff(starts)))
    meta["arrays"] += ["lex_term", "seglex_term"]
    if older == 3:  # as format 3 saved it
        gone += first_pass
    elif older == 4:  # as format 4 saved it: the rows as float32
        gone += ["vec_scales"]
        np.save(base / name / "vec_matrix.npy", codes.astype(np.float32) * scales[:, None])
    for a in gone:
        (base / name / f"{a}.npy").unlink()
    meta["arrays"] = [a for a in meta["arrays"] if a not in gone]
    (base / name / "meta.json").write_text(json.dumps({**meta, "format": older}))
    with Memory(path, embedder=HashEmbedder()) as mem:
        assert mem._recall.scope("u").outdated
        if older != 4:
            assert _ranking(mem, "u") == before
        else:  # the same rows, their similarities summed in another order
            assert _near(_ranking(mem, "u"), before)
    upgraded = (base / "CURRENT").read_text()
    assert upgraded != name and json.loads((base / upgraded / "meta.json").read_text())["format"] == 6
    assert {"lex_keys", "seglex_starts"} <= {p.stem for p in (base / upgraded).glob("*.npy")}
    assert not list((base / upgraded).glob("*_term.npy"))
    assert np.array_equal(np.load(base / upgraded / "vec_matrix.npy"), codes)
    assert np.allclose(np.load(base / upgraded / "vec_scales.npy"), scales, rtol=1e-6, atol=0)
    with Memory(path, embedder=HashEmbedder()) as mem:
        scope = mem._recall.scope("u")
        assert not scope.outdated and scope.saved_units == scope.units  # opened as it is
        assert _ranking(mem, "u") == before if older != 4 else _near(_ranking(mem, "u"), before)
    assert (base / "CURRENT").read_text() == upgraded  # not saved again


def test_damaged_snapshot_is_rebuilt(tmp_path: Path, save_small: None) -> None:
    path = tmp_path / "d.db"
    with Memory(path, embedder=HashEmbedder()) as mem:
        _fill(mem, "u", 40)
        before = _ranking(mem, "u")
    [current] = list((tmp_path / "d.db.idx").glob("*/CURRENT"))
    snap = current.parent / current.read_text()
    (snap / "ep_rowid.npy").write_bytes(b"not an array")
    with Memory(path, embedder=HashEmbedder()) as mem:
        store_id = mem.store.store_id()
    assert snapshot.load(tmp_path / "d.db.idx", "u", "hash-bow-64", store_id) is None
    with Memory(path, embedder=HashEmbedder()) as mem:
        assert _ranking(mem, "u") == before


def test_a_postgres_memory_opens_the_index_this_machine_cached(postgres_url: str, tmp_path: Path, save_small: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A database has no folder beside it: its indexes are cached on this machine, and a fresh
    # Memory opens them, checked against the database, instead of rebuilding (real PostgreSQL).
    import uuid

    from conftest import _with_schema, drop_schemas

    monkeypatch.setenv("ENGRAMDB_INDEX_CACHE", str(tmp_path / "cache"))
    schema = f"t_cache_{uuid.uuid4().hex[:10]}"
    url = _with_schema(postgres_url, schema)
    try:
        with Memory(url, embedder=HashEmbedder()) as mem:
            _fill(mem, "u", 90)
            before = _ranking(mem, "u")
        assert len(list((tmp_path / "cache").glob("*/*/CURRENT"))) == 1
        with Memory(url, embedder=HashEmbedder(), persist_indexes=False) as other:
            late = other.add("A late note about topic3 and the lake.", user_id="u")  # another process
        with Memory(url, embedder=HashEmbedder()) as mem:
            scope = mem._recall.scope("u")
            assert scope.units > 0 and scope.saved_units == scope.units  # opened, not rebuilt
            after = _ranking(mem, "u")
            assert after != before and any(late[0] in ids for ids, _, _ in after)  # caught up
            with Memory(url, embedder=HashEmbedder(), persist_indexes=False) as rebuilt:
                assert _ranking(rebuilt, "u") == after
    finally:
        drop_schemas(postgres_url, [schema])


def test_an_index_read_a_chunk_at_a_time_equals_one_read_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  save_small: None) -> None:
    """A large user's units are read from the store in chunks (never all as Python rows at
    once); the index built so equals one built in one read, and so does one opened from its
    snapshot and then given units without new episodes (fact keys of older episodes)."""
    from engramdb.recall import scope as scope_module

    path = tmp_path / "m.db"
    with Memory(path, embedder=HashEmbedder(), persist_indexes=False) as mem:
        _fill(mem, "u", 90)
        whole = mem._recall.index("u")
        before = _ranking(mem, "u")
    monkeypatch.setattr(scope_module, "UNIT_CHUNK", 7)
    monkeypatch.setattr(scope_module.LexicalIndex, "merge_at", 10)
    with Memory(path, embedder=HashEmbedder()) as mem:  # built in chunks of 7 units, and saved
        assert _ranking(mem, "u") == before
        _states_equal(mem._recall.index("u"), whole)
        assert mem._recall.index("u").lexical.tail_size <= 10  # sorted once built, not left an eighth behind
    with Memory(path, embedder=HashEmbedder()) as mem:  # opened from the snapshot (read-only maps)
        assert mem._recall.scope("u").saved_units > 0
        mem.add({"role": "user", "content": "I prefer green tea to coffee, always have."}, user_id="u", session_id="s0")
        after = _ranking(mem, "u")
        with Memory(path, embedder=HashEmbedder(), persist_indexes=False) as rebuilt:
            assert _ranking(rebuilt, "u") == after
            _states_equal(mem._recall.index("u"), rebuilt._recall.index("u"))


def test_segments_pooled_a_few_at_a_time_build_the_same_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build pools its segments' postings SEGMENT_CHUNK segments at a time (peak memory): the
    index is the one pooled all at once."""
    from engramdb.recall import scope as scope_module

    path = tmp_path / "m.db"
    with Memory(path, embedder=HashEmbedder(), persist_indexes=False) as mem:
        _fill(mem, "u", 150)
        whole = mem._recall.index("u")
        before = _ranking(mem, "u")
        segments = int(whole.seg_rowid.size)
    assert segments >= 5  # several chunks below
    monkeypatch.setattr(scope_module, "SEGMENT_CHUNK", 2)
    with Memory(path, embedder=HashEmbedder(), persist_indexes=False) as mem:
        assert _ranking(mem, "u") == before
        _states_equal(mem._recall.index("u"), whole)
