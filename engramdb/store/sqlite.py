"""SQLite backend: one file (or ``:memory:``), WAL; vectors and each unit's full-text terms as
BLOBs. The SQL itself is :class:`engramdb.store.sql.SQLStore`'s."""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

from ..errors import MigrationError, StoreError
from ..timeutil import iso, now_utc
from .schema import MIGRATIONS
from .sql import SQLStore


class SQLiteStore(SQLStore):
    """The embedded default. Thread-safe through one connection guarded by a lock."""

    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, timeout: float = 30.0, read_only: bool = False) -> None:
        self.path = str(path)
        #: Why writes are refused (None: they are not). A file this process may not write (or
        #: whose folder it may not write: SQLite keeps the WAL beside it) is opened read-only.
        self.read_only: str | None = "opened read-only" if read_only else None
        if self.path != ":memory:":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(f"directory {parent} does not exist", path=self.path)
            self.path = str(Path(self.path).expanduser())
            if not read_only and os.path.exists(self.path):
                eff = os.access in os.supports_effective_ids  # what this process may do, as it runs
                if not os.access(self.path, os.W_OK, effective_ids=eff):
                    self.read_only = "the file is read-only"
                elif not os.access(parent, os.W_OK, effective_ids=eff):
                    self.read_only = f"its folder {parent} is read-only"
        elif read_only:
            raise StoreError("an in-memory store cannot be read-only", path=self.path)
        try:
            self._conn = self._connect(timeout) if self.read_only else sqlite3.connect(
                self.path, timeout=timeout, check_same_thread=False, isolation_level=None
            )
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise MigrationError(f"{self.path} is not an engramdb database: {exc}", path=self.path) from exc
        if tables and "schema_migrations" not in tables:  # someone else's database: touch nothing
            self._conn.close()
            raise MigrationError(
                f"{self.path} is a SQLite database but not an engramdb one (tables: "
                f"{', '.join(sorted(tables)[:5])}); it was left untouched",
                path=self.path,
            )
        try:
            if not self.read_only:
                self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged add survives power loss, not only a process crash.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA secure_delete=ON")  # deleted memories are zeroed in the file
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")  # waits for another writer
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}", path=self.path) from exc
        self._lock = threading.RLock()
        self.migrate()

    def _connect(self, timeout: float) -> sqlite3.Connection:
        """A read-only connection. SQLite reads a WAL file through its shared-memory index, which
        a reader who may not write the folder cannot create; then the file is read as immutable,
        which is exact only when no writes wait in the WAL (checked)."""
        if not os.path.exists(self.path):
            raise StoreError(f"no database at {self.path} to open read-only", path=self.path)
        uri = "file:" + quote(str(Path(self.path).resolve())) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
            return conn
        except sqlite3.OperationalError:
            conn.close()
        wal = self.path + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            raise StoreError(
                f"{self.path} is read-only ({self.read_only}) and has writes waiting in {wal}: open it once "
                "where it can be written (that applies them), or read a copy",
                path=self.path,
            )
        return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout, check_same_thread=False, isolation_level=None)

    @contextmanager
    def _tx(self, user_id: str | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction (``user_id``: it writes only that user's rows, and what any user
        may share without conflict; a backend with concurrent writers locks just that user)."""
        if self.read_only:
            raise StoreError(f"cannot write to {self.path}: {self.read_only}", path=self.path)
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot start a transaction on {self.path}: {exc}") from exc
            try:
                yield self._conn
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise StoreError(f"write failed on {self.path}: {exc}", path=self.path) from exc
            except BaseException:
                self._rollback()
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    self._rollback()
                    raise StoreError(f"commit failed on {self.path}: {exc}", path=self.path) from exc

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (a full disk or an I/O error ends
        it on its own, and a ROLLBACK then fails with a message that would hide the cause)."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass

    @contextmanager
    def read_transaction(self) -> Iterator[None]:
        """Reads inside see one state of the database: no write of this process (other threads
        share the connection and wait) or of another (WAL snapshot) lands between them."""
        with self._lock:
            if self._conn.in_transaction:  # already inside one
                yield
                return
            try:
                self._conn.execute("BEGIN")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot start a read on {self.path}: {exc}") from exc
            try:
                yield
            finally:
                self._conn.execute("COMMIT")

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except (sqlite3.Error, OverflowError) as exc:  # a value SQLite cannot take is no crash either
                raise StoreError(f"query failed on {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def applied(self) -> list[str]:
        with self._lock:
            if not self.read_only:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
                )
            return [r[0] for r in self._conn.execute("SELECT name FROM schema_migrations ORDER BY name")]

    def pending(self) -> list[str]:
        done = set(self.applied())
        return [m.name for m in MIGRATIONS if m.name not in done]

    def migrate(self) -> None:
        try:
            done = set(self.applied())
        except sqlite3.DatabaseError as exc:
            raise MigrationError(f"{self.path} is not an engramdb database: {exc}", path=self.path) from exc
        unknown = done - {m.name for m in MIGRATIONS}
        if unknown:
            raise MigrationError(
                f"{self.path} was written by a newer engramdb (migrations {sorted(unknown)}); upgrade engramdb",
                path=self.path,
            )
        missing = [m.name for m in MIGRATIONS if m.name not in done]
        if missing and self.read_only:
            raise MigrationError(
                f"{self.path} needs upgrading to schema {MIGRATIONS[-1].name}, but {self.read_only}: open it "
                "once where it can be written",
                path=self.path,
            )
        for m in MIGRATIONS:
            if m.name in done:
                continue
            try:
                with self._tx() as c:
                    for stmt in m.statements(self.dialect):
                        c.execute(stmt)
                    if m.backfill is not None:
                        m.backfill(c, self.dialect)
                    c.execute("INSERT INTO schema_migrations VALUES (?, ?)", (m.name, iso(now_utc())))
            except (sqlite3.DatabaseError, StoreError) as exc:
                cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ else exc
                raise MigrationError(f"migration {m.name} failed on {self.path}: {cause}", path=self.path) from exc

    @property
    def index_dir(self) -> Path | None:
        """Where recall indexes of this file are saved (beside it), or None (in memory)."""
        return None if self.path == ":memory:" else Path(self.path + ".idx")

    def record_uses(self, user_id: str, uses: dict[str, tuple[float, float]]) -> int:
        """Reinforce the user's episodes: id -> (when used in epoch seconds, weight 0..1).
        Returns how many."""
        if not uses:
            return 0
        with self._lock:
            # A use is a hint, not a memory: its commit does not wait for the disk (WAL, NORMAL);
            # a crash may lose the last few, and the memories' own writes stay FULL.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                return self._record_uses(user_id, uses)
            finally:
                self._conn.execute("PRAGMA synchronous=FULL")

    def data_files(self) -> list[Path]:
        """The files that hold this database's bytes (none in memory)."""
        return [] if self.path == ":memory:" else [Path(self.path), Path(self.path + "-wal")]

    def checkpoint(self) -> bool:
        """Write the WAL into the database file and truncate it; False if readers kept it busy."""
        with self._lock:
            try:
                busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.DatabaseError:
                return False
            return not (busy and busy[0])

    def _size_bytes(self) -> int:
        if self.path == ":memory:":
            return 0
        return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))
