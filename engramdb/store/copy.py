"""Copy a memory between backends (``engramdb migrate SRC DST``), row for row, and prove it.

Every table is copied with its row ids, in row-id order, inside one transaction of the
destination, and verified before that transaction commits: a copy that fails, or does not
match its source, leaves the destination as it was. Ids, timestamps, recorded-at
times, facts with their history, change logs, journals, keys and policies all travel, because
all of them are rows. The copy is then verified: each table's row count and a checksum of its
rows, computed the same way on both sides from values normalised across backends.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import InputError, StoreError

#: Tables in an order that satisfies their references (parents first). schema_migrations is
#: not copied: both sides must already be at the same schema.
TABLES = (
    "meta", "users", "journal", "policies", "api_keys", "consolidation",
    "episodes", "episode_times", "flags", "facts", "units", "fact_sources",
    "entities", "entity_links", "segments", "changes", "vectors", "core_blocks", "core_changes", "summaries",
)
#: Tables without a row id (their key orders them).
_KEYED = {"vectors": "model, hash"}
_BATCH = 1000


@dataclass
class TableCheck:
    table: str
    rows: int
    checksum: str


@dataclass
class CopyReport:
    source: str
    destination: str
    tables: list[TableCheck] = field(default_factory=list)
    verified: bool = False

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def columns(store: Any, table: str) -> list[str]:
    """The table's columns in the store, ``rowid`` first where it has one."""
    if store.dialect == "sqlite":
        cols = [r[1] for r in store.query(f"PRAGMA table_info({table})")]
    else:
        cols = [r[0] for r in store.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            (store.schema, table),
        )]
    cols = [c for c in cols if c != "rowid"]
    return cols if table in _KEYED else ["rowid", *cols]


def _order(table: str) -> str:
    return _KEYED.get(table, "rowid")


def _norm(v: Any) -> bytes:
    """One value as both backends agree on it: SQLite's REAL and PostgreSQL's double are the
    same float, its BLOB and bytea (or pgvector, read back as bytes) the same bytes."""
    if v is None:
        return b"N"
    if isinstance(v, bool):
        return b"i%d" % int(v)
    if isinstance(v, int):
        return b"i%d" % v
    if isinstance(v, float):
        return b"f" + repr(v).encode()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return b"b" + bytes(v)
    return b"s" + str(v).encode("utf-8", "surrogatepass")


def rows_of(store: Any, table: str, cols: list[str]) -> Any:
    """The table's rows in order, a batch at a time."""
    sel = ", ".join(cols)
    if table in _KEYED:  # small tables without a row id: paged by their key
        last: tuple[Any, ...] | None = None
        while True:
            where, params = ("", ()) if last is None else ("WHERE (model > ? OR (model = ? AND hash > ?))", (last[0], last[0], last[1]))
            batch = store.query(f"SELECT {sel} FROM {table} {where} ORDER BY {_order(table)} LIMIT {_BATCH}", params)
            if not batch:
                return
            yield batch
            last = (batch[-1][cols.index("model")], batch[-1][cols.index("hash")])
    after = -(2**62)
    while True:
        batch = store.query(f"SELECT {sel} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT {_BATCH}", (after,))
        if not batch:
            return
        yield batch
        after = batch[-1][0]


def check(store: Any, on_rows: Callable[[str, int], None] | None = None) -> list[TableCheck]:
    """Each table's row count and checksum (columns both backends have, by name)."""
    out = []
    for table in TABLES:
        cols = sorted(columns(store, table))
        h = hashlib.sha256()
        n = 0
        for batch in rows_of(store, table, _ordered(cols, table)):
            for row in batch:
                for v in row:
                    h.update(_norm(v))
                    h.update(b"\x1f")
                h.update(b"\x1e")
            n += len(batch)
            if on_rows:
                on_rows(table, len(batch))
        out.append(TableCheck(table, n, h.hexdigest()))
    return out


def _ordered(cols: list[str], table: str) -> list[str]:
    return cols if table in _KEYED else ["rowid", *[c for c in cols if c != "rowid"]]


def copy(src: Any, dst: Any, on_rows: Callable[[str, str, int], None] | None = None) -> CopyReport:
    """Copy every row of ``src`` into the empty ``dst`` (both :class:`Store` s at the same
    schema), then verify counts and checksums; ``on_rows(stage, table, n)`` follows progress
    (stages ``copying`` and ``verifying``). Raises :class:`InputError` if ``dst`` holds
    memories or the schemas differ, :class:`StoreError` if the copy does not verify."""
    if src.applied() != dst.applied():
        raise InputError(
            "source and destination are at different schemas; open both with this engramdb first", field="dst"
        )
    held = [t for t in ("users", "episodes", "api_keys") if dst.query(f"SELECT COUNT(*) FROM {t}")[0][0]]
    if held:
        raise InputError(f"the destination is not empty ({', '.join(held)}); copy into a new one", field="dst")
    report = CopyReport(src.path, dst.path)
    with dst.transaction() as c:
        c.execute("DELETE FROM meta")  # a store id a fresh destination may have made: the source's travels
        for table in TABLES:
            src_cols = columns(src, table)
            dst_cols = set(columns(dst, table))
            cols = [col for col in src_cols if col in dst_cols]
            sql = f"INSERT INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for batch in rows_of(src, table, cols):
                c.executemany(sql, [tuple(r) for r in batch])
                if on_rows:
                    on_rows("copying", table, len(batch))
        if dst.dialect == "postgresql":  # new rows after the copy get ids after the copied ones
            for table in TABLES:
                if table not in _KEYED:
                    c.raw.execute(
                        f"SELECT setval(pg_get_serial_sequence('\"{dst.schema}\".{table}', 'rowid'), "
                        f"COALESCE((SELECT MAX(rowid) FROM {table}), 0) + 1, false)"
                    )
        # Verified before it commits (the destination's reads see this transaction): a copy that
        # does not match its source is rolled back, not left behind.
        step = None if on_rows is None else (lambda table, n: on_rows("verifying", table, n))
        a, b = check(src, step), check(dst, step)
        bad = [f"{x.table} ({x.rows} rows vs {y.rows})" for x, y in zip(a, b) if (x.rows, x.checksum) != (y.rows, y.checksum)]
        if bad:
            raise StoreError(f"the copy does not match its source in: {', '.join(bad)}; nothing was written", path=dst.path)
    if dst.dialect == "postgresql":
        # Fresh statistics: until autovacuum gets to a million new rows, the planner guesses,
        # and the first index build of a user joined by nested loops (86 s instead of 13 s at 100k).
        dst.analyze()
    report.tables = b
    report.verified = True
    return report
