"""What surprised a new user: every bad input gets a typed error and leaves the store unchanged;
files are never damaged by opening them (real SQLite, no model needed)."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from click.testing import CliRunner

from engramdb import EngramError, InputError, LimitError, Memory, MigrationError, NotFoundError, StoreError
from engramdb.cli import main

from conftest import fingerprint


@pytest.fixture
def mem(tmp_path: Path) -> Any:
    with Memory(tmp_path / "h.db", embedder=None) as m:
        m.add("I had apples for lunch.", user_id="u", session_id="s1")
        yield m


BAD_CALLS: list[tuple[str, Callable[[Memory], object], type[EngramError]]] = [
    ("lone surrogate user_id", lambda m: m.add("x", user_id="\ud800"), InputError),
    ("lone surrogate session_id", lambda m: m.add("x", user_id="u", session_id="a\udfff"), InputError),
    ("lone surrogate name", lambda m: m.add({"content": "x", "name": "\ud800"}, user_id="u"), InputError),
    ("lone surrogate place", lambda m: m.add({"content": "x", "place": "\ud800"}, user_id="u"), InputError),
    ("lone surrogate in metadata", lambda m: m.add({"content": "x", "metadata": {"k": "\ud800"}}, user_id="u"), InputError),
    ("NUL in role", lambda m: m.add({"content": "x", "role": "us\x00er"}, user_id="u"), InputError),
    ("NaN in metadata", lambda m: m.add({"content": "x", "metadata": {"k": math.nan}}, user_id="u"), InputError),
    ("infinity in call metadata", lambda m: m.add("x", user_id="u", metadata={"k": math.inf}), InputError),
    ("a bytes query", lambda m: m.search(b"\xff\xfe", user_id="u"), InputError),  # type: ignore[arg-type]
    ("why(None)", lambda m: m.why(None), InputError),  # type: ignore[arg-type]
    ("negative list limit", lambda m: m.list(user_id="u", limit=-1), LimitError),
    ("negative list offset", lambda m: m.list(user_id="u", offset=-5), LimitError),
    ("a string as list limit", lambda m: m.list(user_id="u", limit="x"), LimitError),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("what, call, error", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_typed_and_changes_nothing(store_at: Callable[[str], str], mem: Memory, tmp_path: Path, what: str, call: Callable[[Memory], object],
                                                error: type[EngramError]) -> None:
    before = fingerprint(store_at("h"))
    with pytest.raises(error):
        call(mem)
    assert fingerprint(store_at("h")) == before


def test_a_bytes_query_that_is_utf8_is_a_query(mem: Memory) -> None:
    assert mem.search(b"apples", user_id="u")[0].text == "I had apples for lunch."  # type: ignore[arg-type]


def test_export_is_strict_json(mem: Memory) -> None:
    mem.add({"content": "y", "metadata": {"score": 1.5, "tags": ["a"]}}, user_id="u")
    for ep in mem.export(user_id="u"):
        json.loads(json.dumps(ep.to_dict(), allow_nan=False))


def test_memory_of_something_that_is_no_path_is_typed() -> None:
    with pytest.raises(InputError):
        Memory(123, embedder=None)  # type: ignore[arg-type]


def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
    con.execute("INSERT INTO orders(total) VALUES (9.5)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(MigrationError, match="not an engramdb"):
        Memory(other, embedder=None)
    assert other.read_bytes() == before  # no table written, not switched to WAL
    assert not Path(str(other) + "-wal").exists()


def test_a_failed_write_names_its_cause(tmp_path: Path) -> None:
    # A full disk: the failed write's own rollback used to fail too ("cannot rollback - no
    # transaction is active") and hide "database or disk is full". max_page_count makes it full.
    with Memory(tmp_path / "full.db", embedder=None) as m:
        m.add("first", user_id="u")
        pages = m.store.query("PRAGMA page_count")[0][0]
        m.store.query(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(StoreError, match="full"):
            m.add(["a long message " * 2000] * 20, user_id="u")
        assert [e.text for e in m.list(user_id="u")] == ["first"]  # the acknowledged write is there


def _file_bytes(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_read_only_open_searches_and_refuses_every_write(tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    with Memory(db, embedder=None) as m:
        [eid] = m.add("I keep bees on the roof.", user_id="u")
    before = _file_bytes(db)
    with Memory(db, embedder=None, read_only=True) as m:
        assert m.search("bees", user_id="u")[0].episode_ids == [eid]
        assert m.context("bees", user_id="u").episode_ids == (eid,)
        assert m.facts(user_id="u") is not None and m.stats().episodes == 1
        for write in (
            lambda: m.add("more", user_id="u"),
            lambda: m.delete(eid),
            lambda: m.quarantine(eid, user_id="u"),
            lambda: m.forget(user_id="u"),
        ):
            with pytest.raises(StoreError, match="read-only"):
                write()
    wal = Path(str(db) + "-wal")
    assert _file_bytes(db) == before and (not wal.exists() or wal.stat().st_size == 0)
    with pytest.raises(StoreError):
        Memory(tmp_path / "missing.db", embedder=None, read_only=True)


@contextmanager
def _as_nobody() -> Iterator[None]:
    """Run as an unprivileged user (root may write any file, so a read-only file needs one)."""
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_file_this_process_may_not_write_is_opened_read_only(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="engramdb-ro-"))  # under /tmp: reachable by any user
    try:
        db = folder / "m.db"
        with Memory(db, embedder=None) as m:
            [eid] = m.add("I keep bees on the roof.", user_id="u")
        before = _file_bytes(db)
        if os.geteuid() == 0:
            folder.chmod(0o755)  # root's file and folder: others may read, not write
            guard = _as_nobody()
        else:
            db.chmod(0o444)
            folder.chmod(0o555)
            guard = nullcontext()
        with guard:
            with Memory(db, embedder=None) as m:
                assert m.store.read_only
                assert m.search("bees", user_id="u")[0].episode_ids == [eid]
                with pytest.raises(StoreError, match="read-only"):
                    m.add("more", user_id="u")
        assert _file_bytes(db) == before
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


def test_read_commands_refuse_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for args in (["stats"], ["search", "--user", "u", "apples"], ["list", "--user", "u"], ["export"]):
        r = CliRunner().invoke(main, [*args, "--db", str(missing)])
        assert r.exit_code == 3 and "no memory file" in r.output, (args, r.output)
    assert not missing.exists()
    r = CliRunner().invoke(main, ["add", "--db", str(missing), "--user", "u", "hello"])  # a write creates it
    assert r.exit_code == 0 and missing.exists()


def test_stats_count_sessions_per_user_and_name_the_model(store_at: Callable[[str], str], tmp_path: Path) -> None:
    from engramdb import HashEmbedder

    with Memory(store_at("s"), embedder=HashEmbedder()) as m:
        for user in ("a", "b"):
            for sid in ("session_1", "session_2"):
                m.add("hello there", user_id=user, session_id=sid)
    with Memory(store_at("s"), embedder=None) as m:  # opened without a model, as the CLI does
        s = m.stats()
        assert s.sessions == 4 and s.embedder == "hash-bow-64"


def test_ids_of_another_user_are_not_found(mem: Memory) -> None:
    eid = mem.list(user_id="u")[0].id
    with pytest.raises(NotFoundError):
        mem.get(eid, user_id="someone-else")
    with pytest.raises(NotFoundError):
        mem.delete(eid, user_id="someone-else")
    assert mem.get(eid, user_id="u").id == eid


def test_fact_and_change_ids_of_another_user_are_not_found(store_at: Callable[[str], str], tmp_path: Path) -> None:
    with Memory(store_at("i"), embedder=None) as m:
        m.add("I live in Lisbon.", user_id="ana")
        m.add("I live in Porto.", user_id="ben")
        [fact] = m.facts(user_id="ana")
        [change] = [c for c in m.changes(user_id="ana") if c.fact_id == fact.id]
        before = fingerprint(store_at("i"))
        with pytest.raises(NotFoundError):
            m.history(fact.id, user_id="ben")
        with pytest.raises(NotFoundError):
            m.undo(change.id, user_id="ben")
        assert fingerprint(store_at("i")) == before
        assert [f.object for f in m.history(fact.id, user_id="ana")] == ["Lisbon"]
    r = CliRunner().invoke(main, ["get", "--db", store_at("i"), "--user", "ben", fact.sources[0]])
    assert r.exit_code == 3, r.output


def test_export_then_import_is_exact_and_idempotent(store_at: Callable[[str], str], tmp_path: Path) -> None:
    src, dst, dump = store_at("a"), store_at("b"), tmp_path / "a.jsonl"
    with Memory(src, embedder=None) as m:
        m.add([{"role": "user", "name": "Ana", "content": "Yesterday I adopted a kitten.", "metadata": {"turn": 1},
                "timestamp": "2023-05-08T10:00:00"}, "We named her Pixel."], user_id="u", session_id="s1")
        m.add("I moved to Porto.", user_id="v", agent_id="bot")
        before = {e.id: e for e in m.export()}
    runner = CliRunner()
    assert runner.invoke(main, ["export", "--db", str(src), "-o", str(dump)]).exit_code == 0
    for _ in range(2):  # the second import finds every id already there: nothing changes
        r = runner.invoke(main, ["import", "jsonl", str(dump), "--db", str(dst)])
        assert r.exit_code == 0, r.output
        with Memory(dst, embedder=None) as m:
            after = {e.id: e for e in m.export()}
    assert after.keys() == before.keys()
    for eid, e in before.items():
        a = after[eid]
        assert (a.user_id, a.session_id, a.agent_id, a.role, a.name, a.text, a.timestamp, a.recorded_at, a.metadata, a.times) == (
            e.user_id, e.session_id, e.agent_id, e.role, e.name, e.text, e.timestamp, e.recorded_at, e.metadata, e.times)
    with Memory(dst, embedder=None) as m, pytest.raises(InputError, match="another user"):
        m.add({"content": "x", "id": next(iter(before))}, user_id="someone-else")


def test_a_file_keeps_one_embedding_model_until_it_is_reembedded(tmp_path: Path) -> None:
    from engramdb import EmbedderError, HashEmbedder

    path = tmp_path / "e.db"
    with Memory(path, embedder=HashEmbedder(64)) as m:
        m.add([{"role": "user", "name": "Ana", "content": "I adopted a cat named Pixel."}, "We went hiking."], user_id="u")
        want = [h.episode_ids for h in m.search("cat Pixel", user_id="u")]
    before = fingerprint(path)
    with Memory(path, embedder=HashEmbedder(32)) as m:  # another model: refused, file untouched
        with pytest.raises(EmbedderError, match="hash-bow-64"):
            m.add("More text", user_id="u")
        with pytest.raises(EmbedderError):
            m.search("cat", user_id="u")
        assert fingerprint(path) == before
        assert m.search("cat", user_id="u", options=__import__("engramdb").RecallOptions(
            weights=__import__("engramdb").Weights(dense=0)))  # lexical recall needs no model
        done: list[tuple[int, int]] = []
        assert m.reembed(progress=lambda a, b: done.append((a, b))) > 0 and done[-1][0] == done[-1][1]
        assert m.stats().embedder == "hash-bow-32"
        assert [h.episode_ids for h in m.search("cat Pixel", user_id="u")] == want
        m.add("More text", user_id="u")
    with Memory(path, embedder=HashEmbedder(32)) as fresh:  # every vector is the new model's
        assert fresh.store.query("SELECT DISTINCT model FROM vectors") == [("hash-bow-32",)]
    r = CliRunner().invoke(main, ["reembed", "--db", str(path), "--embedder", "hash:16"])
    assert r.exit_code == 0, r.output
    with Memory(path, embedder=HashEmbedder(16)) as m:
        assert m.search("cat Pixel", user_id="u")[0].episode_ids == want[0]


def test_a_database_locked_past_the_busy_timeout_is_a_typed_error(tmp_path: Path) -> None:
    from engramdb.store.sqlite import SQLiteStore

    path = tmp_path / "l.db"
    with Memory(path, embedder=None) as m:
        [first] = m.add("I like tea.", user_id="u")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process writes and holds on
    try:
        with Memory(SQLiteStore(path, timeout=0.3), embedder=None) as m:
            with pytest.raises(StoreError, match="locked"):
                m.add("I like coffee.", user_id="u")
            assert [e.id for e in m.list(user_id="u")] == [first]  # reads go on (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Memory(path, embedder=None) as m:
        m.add("I like coffee.", user_id="u")
        assert len(m.list(user_id="u")) == 2


def test_a_corrupted_page_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with Memory(path, embedder=None) as m:
        m.add([f"Message number {i} about the garden and the lake." for i in range(400)], user_id="u")
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, 3 * page):  # scribble over every third page
        data[start + 100 : start + 1100] = b"\xa5" * 1000
    path.write_bytes(bytes(data))
    with pytest.raises(EngramError):
        with Memory(path, embedder=None) as m:
            m.list(user_id="u")
            m.search("garden", user_id="u", limit=50)


def test_a_deleted_memory_leaves_no_trace_in_the_file(tmp_path: Path) -> None:
    from engramdb import HashEmbedder

    path = tmp_path / "d.db"
    with Memory(path, embedder=HashEmbedder()) as m:
        m.add([{"role": "user", "name": "Dana", "content": "My secret code is Quixotrel42 and my cat is named Zorblax."},
               {"role": "user", "name": "Dana", "content": "I moved to Lisbon last spring."}], user_id="u", session_id="s")
        m.search("secret code", user_id="u")  # the index has it too
        secret = next(e for e in m.list(user_id="u") if "Quixotrel42" in e.text)
        kept = {r[0] for r in m.store.query("SELECT hash FROM vectors")}
        m.delete(secret.id, user_id="u")
        assert not m.search("Quixotrel42 Zorblax", user_id="u", options=__import__("engramdb").RecallOptions(
            weights=__import__("engramdb").Weights(dense=0)))
        left = {r[0] for r in m.store.query("SELECT hash FROM vectors")}
        assert left < kept  # its passages' and its keys' vectors are gone, the other message's stay
        assert all("Zorblax" not in e.name for e in m.entities(user_id="u"))
        for (table,) in m.store.query("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in m.store.query(f"SELECT * FROM {table}"):
                assert "Quixotrel42" not in repr(row), table
    for suffix in ("", "-wal"):
        f = Path(str(path) + suffix)
        if f.exists():
            assert b"Quixotrel42" not in f.read_bytes(), f"the text is still in the bytes of {f.name}"


def test_kill_during_bulk_adds_and_consolidation_loses_nothing_acknowledged(store_at: Callable[[str], str], tmp_path: Path) -> None:
    # A writer adds batches (each add stores its episodes, then consolidates them) and prints the
    # ids of every acknowledged add; it is killed at some point in that loop, several times over.
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    from engramdb import HashEmbedder

    path = store_at("k")
    script = textwrap.dedent(f"""
        from engramdb import HashEmbedder, Memory
        with Memory({str(path)!r}, embedder=HashEmbedder()) as m:
            i = 0
            while True:
                ids = m.add([f"I live in City{{i}}k{{k}} and I love sport{{k}}. My sister has a dog named Rex{{i}}."
                             for k in range(40)], user_id="u", session_id=f"s{{i}}")
                print(" ".join(ids), flush=True)
                i += 1
    """)
    acknowledged: list[str] = []
    for wait in (0.1, 0.5, 1.0):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the loop is running (a loaded machine starts slowly)
        time.sleep(wait)
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        acknowledged += (first + out).split()
    assert acknowledged, "the writer acknowledged nothing before it was killed"
    with Memory(path, embedder=HashEmbedder()) as m:
        have = {e.id for e in m.list(user_id="u")}
        assert set(acknowledged) <= have
        m.consolidate(user_id="u")  # whatever a kill interrupted is consolidated now, once
        assert m.store.query("SELECT COUNT(*) FROM episodes e WHERE e.user_id = 'u' AND e.seq > "
                             "(SELECT last_seq FROM consolidation WHERE user_id = 'u')") == [(0,)]
        said = [f.object for f in m.facts(user_id="u", kinds=["statement"])]
        assert len(said) == len(set(said))  # no statement stored twice
        assert m.search("dog named Rex0", user_id="u")
