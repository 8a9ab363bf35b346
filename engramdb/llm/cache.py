"""Answers of a chat model kept on disk, so that the same prompt is never paid for twice.

An LLM extractor reads every message of a benchmark (LongMemEval's dev split alone is ~50,000
turns): a second run, another configuration, or a run resumed after the endpoint failed then
asks only what it has not asked before. Keyed by the endpoint's model, the messages and the
sampling settings; one SQLite file that worker processes share.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from .client import Chat


class CachedChat:
    """A :class:`Chat` whose answers are stored in ``path`` (made if missing) and read back for
    the same model, messages, temperature and token limit. Only answers are stored: a failed
    call (``LLMError``) is raised, and asked again next time. Picklable (for worker processes):
    each process opens its own connection."""

    def __init__(self, chat: Chat, path: str | Path) -> None:
        self.inner = chat
        self.path = str(path)
        self.asked = 0  # calls that reached the model
        self.answered_from_cache = 0
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_conn"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
            self._conn = conn
        return self._conn

    def key(self, messages: list[dict[str, str]], temperature: float, max_tokens: int) -> str:
        model = getattr(self.inner, "model", type(self.inner).__name__)
        raw = json.dumps([model, messages, temperature, max_tokens], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def chat(self, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 256) -> str:
        key = self.key(messages, temperature, max_tokens)
        with self._lock:
            row = self._db().execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is not None:
            self.answered_from_cache += 1
            return str(row[0])
        answer = self.inner.chat(messages, temperature=temperature, max_tokens=max_tokens)
        self.asked += 1
        with self._lock:
            db = self._db()
            with db:
                db.execute("INSERT OR REPLACE INTO answers (key, answer) VALUES (?, ?)", (key, answer))
        return answer

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
