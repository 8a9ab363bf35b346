"""Schema migrations on real SQLite files: upgrades keep data and recall, newer files are refused."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from engramdb import HashEmbedder, Memory
from engramdb.errors import MigrationError
from engramdb.index.lexical import encode_terms
from engramdb.store.schema import MIGRATIONS, schema_version


def _old_file(path: Path, upto: str) -> None:
    """A file as an older engramdb left it: migrations up to ``upto`` and rows written then."""
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for m in MIGRATIONS:
        for stmt in m.statements("sqlite"):
            c.execute(stmt)
        c.execute("INSERT INTO schema_migrations VALUES (?, '2026-01-01T00:00:00+00:00')", (m.name,))
        if m.name == upto:
            break
    c.execute("INSERT INTO users VALUES ('u', '2026-01-01T00:00:00+00:00', 1)")
    for i, text in enumerate(["I keep bees on the roof", "The weather was grey all week"], start=1):
        c.execute(
            "INSERT INTO episodes(rowid, id, user_id, seq, content, occurred_at, occurred_ts, recorded_at, recorded_ts, "
            "content_hash) VALUES (?, ?, 'u', ?, ?, '2026-01-01T00:00:00+00:00', 1767225600, "
            "'2026-01-01T00:00:00+00:00', 1767225600, 'h')",
            (i, f"ep_{i}", i, text),
        )
        c.execute(
            "INSERT INTO units(rowid, episode_rowid, user_id, ord, start_char, end_char, text, scope) "
            "VALUES (?, ?, 'u', 0, 0, ?, ?, 'utoken')",
            (i, i, len(text), text),
        )
        if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'units_fts'").fetchone():
            c.execute("INSERT INTO units_fts(rowid, text, speaker, scope) VALUES (?, ?, '', 'utoken')", (i, text))
        else:  # full-text terms live in the units since 0004
            c.execute("UPDATE units SET terms = ? WHERE rowid = ?", (encode_terms(text), i))
    c.commit()
    c.close()


def test_upgrade_from_fts5_schema_backfills_terms_and_recalls(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _old_file(db, "0003_semantic")
    with Memory(db, embedder=None) as m:
        assert m.stats().schema_version == schema_version() == "0016_ingest_reads"
        [hit] = m.search("who keeps bees?", user_id="u", limit=1)
        assert hit.episodes[0].id == "ep_1" and hit.signals["bm25"] > 0
        m.add("Bees again: the hive swarmed", user_id="u")
        assert m.search("hive", user_id="u")[0].text == "Bees again: the hive swarmed"
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM units WHERE terms IS NULL").fetchone()[0] == 0
        assert c.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'units_fts'").fetchone()[0] == 0


def test_upgrade_to_sources_backfills_who_wrote_each_episode(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _old_file(db, "0007_journal")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE episodes SET role = 'tool' WHERE id = 'ep_2'")
    with Memory(db, embedder=None) as m:
        assert [(e.id, e.source, e.status) for e in m.list(user_id="u")] == [
            ("ep_1", "user", "active"), ("ep_2", "tool", "active"),
        ]
        assert m.quarantined(user_id="u") == [] and m.stats().quarantined == 0


def test_file_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with Memory(db, embedder=HashEmbedder()) as m:
        m.add("hello", user_id="u")
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO schema_migrations VALUES ('9999_future', '2030-01-01T00:00:00+00:00')")
    before = db.read_bytes()
    with pytest.raises(MigrationError, match="newer engramdb"):
        Memory(db, embedder=HashEmbedder())
    assert db.read_bytes() == before


def test_a_failing_migration_leaves_the_file_at_its_last_good_version(tmp_path: Path) -> None:
    db = tmp_path / "half.db"
    _old_file(db, "0003_semantic")
    with sqlite3.connect(db) as c:
        c.execute("ALTER TABLE units ADD COLUMN terms BLOB")  # makes 0004's first statement fail
    with pytest.raises(MigrationError, match="0004_unit_terms"):
        Memory(db, embedder=None)
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT MAX(name) FROM schema_migrations").fetchone()[0] == "0003_semantic"
        assert c.execute("SELECT COUNT(*) FROM units_fts").fetchone()[0] == 2  # not dropped


def test_every_write_is_journaled_per_user(tmp_path: Path) -> None:
    # Other processes learn what changed from the journal: one entry per write, numbered by the
    # user's version; an upgraded file starts each user with a "rebuild" entry.
    db = tmp_path / "old.db"
    _old_file(db, "0003_semantic")
    with Memory(db, embedder=None) as m:
        store = m.store
        assert [k for _, k in store.journal("u", 0)] == ["rebuild"]
        start = store.user_version("u")
        [eid] = m.add("I live in Lisbon.", user_id="u")  # an add, then its consolidation
        m.delete(eid, user_id="u")
        entries = store.journal("u", start)
        assert [k for _, k in entries] == ["add", "consolidate", "delete"]
        assert [s for s, _ in entries] == list(range(start + 1, start + 4)) and store.user_version("u") == start + 3
        assert store.journal("someone else", 0) == []


def test_upgrade_to_link_users_backfills_the_owner_of_every_link(tmp_path: Path) -> None:
    # 0012 puts user_id on the two link tables (so a database can be distributed by user):
    # rows written before it get their fact's and entity's owner.
    db = tmp_path / "old.db"
    _old_file(db, "0011_core_memory")
    with sqlite3.connect(db) as c:
        c.execute(
            "INSERT INTO facts(rowid, id, user_id, subject, predicate, object, text, kind, category, confidence, "
            "recorded_at, extractor) VALUES (1, 'fact_1', 'u', 'user', 'keeps', 'bees', 'user keeps bees', 'fact', "
            "'hobbies', 0.8, '2026-01-01T00:00:00+00:00', 'rules')"
        )
        c.execute("INSERT INTO fact_sources VALUES (1, 1)")
        c.execute("INSERT INTO entities(rowid, id, user_id, name, kind) VALUES (1, 'ent_1', 'u', 'bees', 'thing')")
        c.execute("INSERT INTO entity_links(entity_rowid, episode_rowid, fact_rowid) VALUES (1, 1, 1)")
    with Memory(db, embedder=None) as m:
        assert [f.sources for f in m.facts(user_id="u")] == [("ep_1",)]
        assert [(e.name, e.facts) for e in m.entities(user_id="u")] == [("bees", 1)]
        m.add("I also keep two goats.", user_id="u")
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT DISTINCT user_id FROM fact_sources").fetchall() == [("u",)]
        assert c.execute("SELECT DISTINCT user_id FROM entity_links").fetchall() == [("u",)]


def test_lookups_by_episode_read_those_episodes_not_every_row_of_the_user(tmp_path: Path) -> None:
    """Asked for some episodes of a user, SQLite's planner (no statistics) preferred a
    ``(user_id, ...)`` index and read every row of the user: 0.1-0.4 s per search at 100k
    episodes. Every statement these lookups run must go through the ids asked for."""
    with Memory(tmp_path / "m.db", embedder=HashEmbedder()) as mem:
        mem.add([{"role": "user", "content": f"I met Dana at the gym in Lisbon and bought {i} apples for ${i}"}
                 for i in range(1, 31)], user_id="u", session_id="s1")
        mem.add([{"role": "user", "content": "I bought a lamp for $40"}], user_id="other")
        ids = [e.id for h in mem.search("where did I meet Dana?", user_id="u", limit=10) for e in h.episodes]
        assert ids
        store = mem.store
        conn = store._conn  # type: ignore[attr-defined]
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        try:
            store.record_uses("u", {i: (1.0e9, 1.0) for i in ids})
            facts = store.semantic().facts("u", status=None, episode_ids=ids)
            rowids = [int(r[0]) for r in store.query(f"SELECT rowid FROM episodes WHERE id IN ({','.join('?' * len(ids))})", ids)]
            places = store.semantic().place_links("u", rowids)
            texts = store.semantic().texts_of("u", ids)
        finally:
            conn.set_trace_callback(None)
        assert facts and places and len(texts) == len(ids)
        assert not store.semantic().facts("other", status=None, episode_ids=ids)  # another's: none
        assert not store.semantic().place_links("other", rowids)
        plans = []
        for sql in seen:
            if sql.lstrip().upper().startswith(("SELECT", "UPDATE")):
                plans += [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        assert plans
        by_user = [p for p in plans if re.search(r"INDEX \w+ \(user_id=\?\)$", p)]
        assert not by_user, by_user
