"""Forgetting on request, verifiably: a user, a session, a time range, a query's finds; every
derived row goes, the text leaves the file's bytes, and a receipt can be checked again later
(real SQLite; the deterministic HashEmbedder stand-in)."""

from __future__ import annotations

from typing import Callable

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engramdb import DeletionReceipt, HashEmbedder, Memory, NotFoundError
from engramdb.cli import main
from conftest import table_names


def _fill(m: Memory) -> None:
    m.add([{"role": "user", "name": "Dana", "content": "My locker code is Vexhollow77 at the Zentrix gym."},
           {"role": "user", "name": "Dana", "content": "I moved to Lisbon last spring."}],
          user_id="dana", session_id="s1", timestamp="2023-01-10T10:00:00")
    m.add([{"role": "user", "name": "Dana", "content": "My sister Quillbeth lives in Porto now."}],
          user_id="dana", session_id="s2", timestamp="2023-06-10T10:00:00")
    m.add("I moved to Lisbon last spring too, says Eli.", user_id="eli", session_id="e1")


def _everywhere(m: Memory, path: Path, token: str) -> bool:
    rows = any(token in repr(r) for t in table_names(path) for r in m.store.query(f"SELECT * FROM {t}"))
    data = any(token.encode() in f.read_bytes() for f in m.store.data_files() if f.exists())
    return rows or data


def test_forget_a_session_then_before_a_time_then_the_user(store_at: Callable[[str], str], tmp_path: Path) -> None:
    path = store_at("f")
    with Memory(path, embedder=HashEmbedder()) as m:
        _fill(m)
        m.search("locker code", user_id="dana")
        r = m.forget(user_id="dana", session_id="s2")
        assert r.clean and len(r.episode_ids) == 1 and r.removed["episodes"] == 1 and r.probes
        assert not _everywhere(m, path, "Quillbeth")
        assert [e.session_id for e in m.list(user_id="dana")] == ["s1", "s1"]
        r = m.forget(user_id="dana", before="2023-02-01")
        assert r.clean and r.removed["episodes"] == 2 and r.removed["units"] >= 2 and r.removed["vectors"] >= 1
        assert not _everywhere(m, path, "Vexhollow77") and not _everywhere(m, path, "Zentrix")
        m.add("Back again with a new code Plimbrat9.", user_id="dana")
        r = m.forget(user_id="dana")  # the whole user: facts, changes, segments, entities too
        assert r.clean and not _everywhere(m, path, "Plimbrat9")
        for table in ("facts", "changes", "segments", "entities", "episodes", "units"):
            assert m.store.query(f"SELECT COUNT(*) FROM {table} WHERE user_id = 'dana'") == [(0,)], table
        assert [e.text for e in m.list(user_id="eli")] == ["I moved to Lisbon last spring too, says Eli."]
        assert m.verify_deleted(r) == {"episodes_present": 0, "probes": len(r.probes), "in_rows": 0, "in_file_bytes": 0}


def test_a_query_shows_what_would_go_then_deletes_on_confirmation(store_at: Callable[[str], str], tmp_path: Path) -> None:
    with Memory(store_at("q"), embedder=HashEmbedder()) as m:
        _fill(m)
        preview = m.forget(user_id="dana", query="Vexhollow77 locker code")
        assert preview.dry_run and not preview.clean and preview.episode_ids
        assert len(m.list(user_id="dana")) == 3  # nothing went
        target = preview.episode_ids[0]
        r = m.forget(user_id="dana", episode_ids=[target])
        assert r.clean and r.episode_ids == (target,)
        with pytest.raises(NotFoundError):
            m.get(target)
        with pytest.raises(NotFoundError):
            m.forget(user_id="eli", episode_ids=[m.list(user_id="dana")[0].id])  # not eli's


def test_a_receipt_is_checked_again_later_and_keeps_no_text(store_at: Callable[[str], str], tmp_path: Path) -> None:
    path = store_at("r")
    with Memory(path, embedder=HashEmbedder()) as m:
        _fill(m)
        r = m.delete(m.list(user_id="dana")[0].id, user_id="dana")
    assert r.clean and "Vexhollow77" not in json.dumps(r.to_dict())  # the receipt holds no text
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(r.to_dict()))
    assert DeletionReceipt.from_dict(json.loads(receipt.read_text())) == r
    ok = CliRunner().invoke(main, ["verify-deleted", "--db", str(path), str(receipt)])
    assert ok.exit_code == 0 and json.loads(ok.output)["in_rows"] == 0
    # the same text stored again (say, a restored backup): the check finds it
    with Memory(path, embedder=HashEmbedder()) as m:
        m.add("My locker code is Vexhollow77 at the Zentrix gym.", user_id="dana")
        assert m.verify_deleted(r)["in_rows"] > 0
    bad = CliRunner().invoke(main, ["verify-deleted", "--db", str(path), str(receipt)])
    assert bad.exit_code == 1


def test_cli_forget_prints_the_receipt(store_at: Callable[[str], str], tmp_path: Path) -> None:
    path = store_at("c")
    with Memory(path, embedder=HashEmbedder()) as m:
        _fill(m)
    r = CliRunner().invoke(main, ["forget", "--db", str(path), "--user", "dana", "--session", "s1",
                                  "--receipt", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["clean"] and doc["removed"]["episodes"] == 2 and json.loads((tmp_path / "r.json").read_text()) == doc


def test_a_query_forget_keeps_no_query_text_and_takes_the_top_hits_only(store_at: Callable[[str], str], tmp_path: Path) -> None:
    with Memory(store_at("t"), embedder=HashEmbedder()) as m:
        _fill(m)
        r = m.forget(user_id="dana", query="Vexhollow77 locker", dry_run=False, limit=1)
        assert len(r.episode_ids) == 1 and r.clean
        assert "Vexhollow77" not in json.dumps(r.to_dict()) and "query_sha256" in r.request
        assert len(m.list(user_id="dana")) == 2
