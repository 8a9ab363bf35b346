"""The store's SQL, written once, in SQLite's dialect: every backend runs the same statements
(SQLite as they are, PostgreSQL through :func:`engramdb.store.postgres.translate`). A backend
supplies what depends on where the bytes live: connections, transactions, migrations, and the
files (or not) behind them.
"""

from __future__ import annotations

import json
import time as time_
import uuid
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Sequence

import numpy as np

from ..encode.timex import TimeMention
from ..ids import new_id
from ..index.lexical import encode_terms
from ..lifecycle import DAY, gist, initial_stability, reinforced, retrievability, sign_code
from ..model import Episode, StoreStats
from ..timeutil import iso, now_utc, to_utc
from .base import PERSISTENT_INDEX, SEMANTIC, NewEpisode, ScopeRows, SegmentRows, SemanticStore, Stale
from .schema import schema_version

EPISODE_COLS = (
    "rowid, id, user_id, agent_id, session_id, role, name, content, occurred_at, recorded_at, "
    "place, metadata, importance, strength, status, seq, source, writer, stability, last_used_ts, occurred_ts, uses, "
    "sightings"
)


def _day_ts(d: date, end: bool = False) -> float:
    """Epoch seconds of the start (or the last second) of a UTC day."""
    return datetime.combine(d, time(23, 59, 59) if end else time(0), tzinfo=timezone.utc).timestamp()


def _episode(row: tuple[Any, ...], times: tuple[TimeMention, ...] = ()) -> Episode:
    return Episode(
        id=row[1],
        user_id=row[2],
        agent_id=row[3],
        session_id=row[4],
        role=row[5],
        name=row[6],
        text=row[7],
        timestamp=datetime.fromisoformat(row[8]),
        recorded_at=datetime.fromisoformat(row[9]),
        place=row[10],
        metadata=json.loads(row[11]),
        importance=row[12],
        strength=float(retrievability((time_.time() - (row[19] if row[19] is not None else row[20])) / DAY, _stability(row))),
        status=row[14],
        seq=row[15],
        source=row[16],
        writer=row[17],
        times=times,
        stability=_stability(row),
        last_used=None if row[19] is None else datetime.fromtimestamp(row[19], tz=timezone.utc),
        uses=row[21],
        sightings=row[22],
    )


def _stability(row: Any) -> float:
    return float(row[18]) if row[18] is not None else initial_stability(float(row[12]))



class SQLStore:
    """Everything a backend does in SQL, scoped by user. Subclasses provide the plumbing below
    (the methods that raise NotImplementedError) and set ``dialect``."""

    dialect: str
    capabilities = frozenset({SEMANTIC, PERSISTENT_INDEX})
    _NO_LIMIT: int | None = -1  # what LIMIT takes for "no limit"
    path: str
    read_only: str | None

    # -- plumbing, per backend ------------------------------------------------------------

    def _tx(self, user_id: str | None = None) -> ContextManager[Any]:
        """A write transaction yielding a connection with ``execute``/``executemany`` (sqlite3's
        interface) that runs the shared SQL. ``user_id``: it writes only that user's rows (and
        what users share without conflict); a backend with concurrent writers locks just that user."""
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one read; database errors become :class:`StoreError`."""
        raise NotImplementedError

    def read_transaction(self) -> ContextManager[None]:
        raise NotImplementedError

    def checkpoint(self) -> bool:
        raise NotImplementedError

    def data_files(self) -> list[Path]:
        raise NotImplementedError

    @property
    def index_dir(self) -> Path | None:
        raise NotImplementedError

    def _size_bytes(self) -> int:
        """Bytes the memory takes where it is stored."""
        return 0

    def record_uses(self, user_id: str, uses: dict[str, tuple[float, float]]) -> int:
        """Reinforce the user's episodes: id -> (when used in epoch seconds, weight 0..1).
        Returns how many."""
        return self._record_uses(user_id, uses) if uses else 0

    def transaction(self, user_id: str | None = None) -> Any:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT) as a context manager yielding the
        connection: the semantic layer writes its rows in the same transaction as the store's."""
        return self._tx(user_id)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query; database errors become :class:`StoreError`."""
        return self._q(sql, params)

    @staticmethod
    def record_change(c: Any, user_id: str, kind: str) -> int:
        """Bump the user's version and journal the write (inside the caller's transaction).

        ``kind``: ``add`` (episodes and units appended), ``consolidate`` (facts, keys and
        segments appended, facts' states changed), ``delete`` or ``undo`` (rows removed)."""
        c.execute("UPDATE users SET version = version + 1 WHERE user_id = ?", (user_id,))
        seq = int(c.execute("SELECT version FROM users WHERE user_id = ?", (user_id,)).fetchone()[0])
        c.execute("INSERT INTO journal(user_id, seq, kind, at) VALUES (?, ?, ?, ?)", (user_id, seq, kind, iso(now_utc())))
        return seq

    def semantic(self) -> SemanticStore:
        from .facts import FactStore  # the semantic tables' SQL lives there, on this connection

        return FactStore(self)

    def store_id(self) -> str:
        """A random id this database keeps for life: what was derived from it says so."""
        rows = self._q("SELECT value FROM meta WHERE key = 'store_id'")
        if rows:
            return str(rows[0][0])
        if self.read_only:  # an old file never given one: nothing saved from it can be trusted
            return "read-only-" + uuid.uuid4().hex
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
        return str(self._q("SELECT value FROM meta WHERE key = 'store_id'")[0][0])

    def embedder_model(self) -> str | None:
        """The model this file's vectors were made with: recorded on the first add with a
        model; for a file from before that record, the one model its vectors have, if one."""
        rows = self._q("SELECT value FROM meta WHERE key = 'embedder'")
        if rows:
            return str(rows[0][0])
        models = [r[0] for r in self._q("SELECT DISTINCT model FROM vectors LIMIT 2")]
        return models[0] if len(models) == 1 else None

    def embed_texts(self) -> list[tuple[str, str]]:
        """(vector hash, text that was embedded) of every unit with a vector: passages as
        ``Memory.passages`` embeds them, keys as consolidation does (a named speaker's statement
        with the name in front)."""
        rows = self._q(
            "SELECT DISTINCT u.vector_hash, u.text, e.name, u.fact_rowid IS NULL, f.kind FROM units u "
            "JOIN episodes e ON e.rowid = u.episode_rowid AND e.user_id = u.user_id "
            "LEFT JOIN facts f ON f.rowid = u.fact_rowid AND f.user_id = u.user_id WHERE u.vector_hash IS NOT NULL"
        )
        out: dict[str, str] = {}
        for vhash, text, name, passage, kind in rows:
            named = bool(name) and (passage or kind == "statement")
            out[vhash] = f"{name}: {text}" if named else text
        return list(out.items())

    def replace_vectors(self, old_model: str | None, model: str, vectors: dict[str, np.ndarray]) -> None:
        """Store ``model``'s vectors, record it as the file's model and drop the old model's."""
        with self._tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO vectors(model, hash, vector) VALUES (?, ?, ?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()],
            )
            if old_model is not None and old_model != model:
                c.execute("DELETE FROM vectors WHERE model = ?", (old_model,))
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('embedder', ?)", (model,))
            for (user,) in c.execute("SELECT user_id FROM users").fetchall():
                self.record_change(c, user, "rebuild")  # every index holds the old vectors

    def journal(self, user_id: str, after: int) -> list[tuple[int, str]]:
        """(seq, kind) of the user's writes after ``after``, in order."""
        return [(int(r[0]), r[1]) for r in self._q(
            "SELECT seq, kind FROM journal WHERE user_id = ? AND seq > ? ORDER BY seq", (user_id, after)
        )]

    def hidden_episodes(self, user_id: str) -> list[int]:
        return [int(r[0]) for r in self._q("SELECT rowid FROM episodes WHERE user_id = ? AND status = 'quarantined'", (user_id,))]

    def _record_uses(self, user_id: str, uses: dict[str, tuple[float, float]]) -> int:
        with self._tx(user_id) as c:
            done = 0
            for i in range(0, len(uses), 500):
                chunk = list(uses)[i : i + 500]
                marks = ",".join("?" * len(chunk))
                # By id alone (ids are unique), the owner checked here: given the user as well,
                # SQLite's planner reads every episode of the user through its index.
                rows = c.execute(
                    f"SELECT id, stability, importance, COALESCE(last_used_ts, occurred_ts), user_id FROM episodes "
                    f"WHERE id IN ({marks})",
                    chunk,
                ).fetchall()
                updates = []
                for eid, stab, imp, last, owner in rows:
                    if owner != user_id:
                        continue
                    at, weight = uses[eid]
                    s0 = float(stab) if stab is not None else initial_stability(float(imp))
                    if at < last:  # a use dated before the last one (replayed history): no gain
                        continue
                    updates.append((reinforced(s0, (at - last) / DAY, weight), at, eid))
                c.executemany("UPDATE episodes SET stability = ?, last_used_ts = ?, uses = uses + 1 WHERE id = ?", updates)
                done += len(updates)
        return done

    def strengths(self, user_id: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """The user's active episodes: ids (by seq), stability (days), last use or forming
        (epoch seconds), importance."""
        rows = self._q(
            "SELECT id, stability, importance, COALESCE(last_used_ts, occurred_ts) FROM episodes "
            "WHERE user_id = ? AND status = 'active' ORDER BY seq",
            (user_id,),
        )
        imp = np.array([r[2] for r in rows], dtype=np.float64)
        stab = np.array([initial_stability(r[2]) if r[1] is None else r[1] for r in rows], dtype=np.float64)
        return [r[0] for r in rows], stab, np.array([r[3] for r in rows], dtype=np.float64), imp

    def set_tier(self, user_id: str, episode_ids: Sequence[str], tier: str) -> list[str]:
        """Move the user's episodes between ``active`` and ``archived``; journals it (the index
        is rebuilt). Returns the ids that moved."""
        source = "archived" if tier == "active" else "active"
        moved: list[str] = []
        with self._tx(user_id) as c:
            for i in range(0, len(episode_ids), 500):
                chunk = list(episode_ids[i : i + 500])
                marks = ",".join("?" * len(chunk))
                found = {r[0] for r in c.execute(  # by id alone, as in _record_uses
                    f"SELECT id, user_id, status FROM episodes WHERE id IN ({marks})", chunk
                ) if r[1] == user_id and r[2] == source}
                these = [i for i in dict.fromkeys(chunk) if i in found]  # in the order asked
                c.executemany("UPDATE episodes SET status = ? WHERE id = ?", [(tier, i) for i in these])
                moved += these
            if moved:
                self.record_change(c, user_id, "archive" if tier == "archived" else "restore")
        return moved

    def gists(self, user_id: str, archived_only: bool = True) -> tuple[list[int], list[bytes], list[bytes | None]]:
        """(rowid, gist, code) of the user's archived episodes (or of all not quarantined)."""
        status = "status = 'archived'" if archived_only else "status <> 'quarantined'"
        rows = self._q(f"SELECT rowid, gist, code FROM episodes WHERE user_id = ? AND {status} ORDER BY seq", (user_id,))
        return [r[0] for r in rows], [r[1] or b"" for r in rows], [r[2] for r in rows]

    def archive_bytes(self, user_id: str) -> tuple[int, int]:
        """Bytes recognition reads for the user's archived episodes (gists and codes), and bytes
        the recall index would hold for them (their units' vectors and full-text terms)."""
        trace = self._q(
            "SELECT COALESCE(SUM(LENGTH(gist)), 0) + COALESCE(SUM(LENGTH(code)), 0) FROM episodes "
            "WHERE user_id = ? AND status = 'archived'",
            (user_id,),
        )[0][0]
        index = self._q(
            "SELECT COALESCE(SUM(LENGTH(v.vector)), 0) + COALESCE(SUM(LENGTH(u.terms)), 0) FROM units u "
            "JOIN episodes e ON e.rowid = u.episode_rowid AND e.user_id = u.user_id LEFT JOIN vectors v ON v.hash = u.vector_hash "
            "WHERE e.user_id = ? AND e.status = 'archived'",
            (user_id,),
        )[0][0]
        return int(trace), int(index)

    def make_codes(self, user_id: str, model: str) -> int:
        """Give archived episodes without one their code: the sign bits of their first passage's
        vector (48 bytes for 384 dimensions). Returns how many were made."""
        rows = self._q(
            "SELECT e.rowid, v.vector FROM episodes e JOIN units u ON u.episode_rowid = e.rowid AND u.user_id = e.user_id AND u.ord = 0 "
            "JOIN vectors v ON v.model = ? AND v.hash = u.vector_hash "
            "WHERE e.user_id = ? AND e.status = 'archived' AND e.code IS NULL",
            (model, user_id),
        )
        if not rows:
            return 0
        with self._tx(user_id) as c:
            c.executemany(
                "UPDATE episodes SET code = ? WHERE rowid = ?",
                [(sign_code(np.frombuffer(blob, dtype=np.float32)), rowid) for rowid, blob in rows],
            )
        return len(rows)

    def core_blocks(self, user_id: str) -> list[tuple[str, str, int, str]]:
        """(label, value, max chars, updated at) of the user's blocks, by label."""
        return [tuple(r) for r in self._q(
            "SELECT label, value, max_chars, updated_at FROM core_blocks WHERE user_id = ? ORDER BY label", (user_id,)
        )]

    def core_write(self, user_id: str, label: str, op: str, edit: Callable[[str | None, int | None], tuple[str | None, int]]) -> str:
        """Change one block in a transaction: ``edit(current value or None, its max chars or None)``
        returns (new value or None to remove, max chars); the change is logged. Returns its id."""
        with self._tx(user_id) as c:
            row = c.execute("SELECT value, max_chars FROM core_blocks WHERE user_id = ? AND label = ?", (user_id, label)).fetchone()
            before, limit = (row[0], row[1]) if row else (None, None)
            after, new_limit = edit(before, limit)
            now = iso(now_utc())
            c.execute(
                "INSERT INTO users(user_id, created_at, version) VALUES (?, ?, 0) ON CONFLICT(user_id) DO NOTHING",
                (user_id, now),
            )
            if after is None:
                c.execute("DELETE FROM core_blocks WHERE user_id = ? AND label = ?", (user_id, label))
            else:
                c.execute(
                    "INSERT INTO core_blocks(user_id, label, value, max_chars, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(user_id, label) DO UPDATE SET value = excluded.value, max_chars = excluded.max_chars, "
                    "updated_at = excluded.updated_at",
                    (user_id, label, after, new_limit, now),
                )
            change_id = new_id("core_")
            c.execute(
                "INSERT INTO core_changes(id, user_id, label, op, before, after, max_chars, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (change_id, user_id, label, op, before, after, new_limit, now),
            )
        return change_id

    def core_changes(self, user_id: str, label: str | None, limit: int) -> list[tuple[Any, ...]]:
        """(id, label, op, before, after, max chars, at, undone at), newest first."""
        sql = "SELECT id, label, op, before, after, max_chars, at, undone_at FROM core_changes WHERE user_id = ?"
        params: list[Any] = [user_id]
        if label is not None:
            sql += " AND label = ?"
            params.append(label)
        return [tuple(r) for r in self._q(sql + " ORDER BY rowid DESC LIMIT ?", (*params, limit))]

    def core_mark_undone(self, user_id: str, change_id: str) -> tuple[str, str | None, str | None] | None:
        """Mark a change undone: (label, before, after), or None if the user has no such change
        not undone yet."""
        with self._tx(user_id) as c:
            row = c.execute(
                "SELECT label, before, after FROM core_changes WHERE id = ? AND user_id = ? AND undone_at IS NULL",
                (change_id, user_id),
            ).fetchone()
            if row is None:
                return None
            c.execute("UPDATE core_changes SET undone_at = ? WHERE id = ?", (iso(now_utc()), change_id))
        return str(row[0]), row[1], row[2]

    def put_key(self, key_id: str, tenant: str, name: str, key_hash: str) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO api_keys(id, tenant, name, hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (key_id, tenant, name, key_hash, iso(now_utc())),
            )

    def find_key(self, key_hash: str) -> tuple[str, str, str] | None:
        """(key id, tenant, name) of an active key with this hash."""
        rows = self._q("SELECT id, tenant, name FROM api_keys WHERE hash = ? AND revoked_at IS NULL", (key_hash,))
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def list_keys(self) -> list[dict[str, Any]]:
        cols = ("id", "tenant", "name", "created_at", "revoked_at")
        return [dict(zip(cols, r)) for r in self._q(f"SELECT {', '.join(cols)} FROM api_keys ORDER BY created_at")]

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as c:
            return bool(c.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (iso(now_utc()), key_id)
            ).rowcount > 0)

    def get_policy(self, user_id: str) -> str | None:
        rows = self._q("SELECT policy FROM policies WHERE user_id = ?", (user_id,))
        return str(rows[0][0]) if rows else None

    def set_policy(self, user_id: str, policy: str | None) -> None:
        with self._tx(user_id) as c:
            if policy is None:
                c.execute("DELETE FROM policies WHERE user_id = ?", (user_id,))
            else:
                c.execute(
                    "INSERT INTO policies(user_id, policy, set_at) VALUES (?, ?, ?) ON CONFLICT(user_id) DO UPDATE "
                    "SET policy = excluded.policy, set_at = excluded.set_at",
                    (user_id, policy, iso(now_utc())),
                )

    def set_importance(self, updates: Sequence[tuple[int, float]]) -> None:
        """Estimated importance of episodes (rowid, importance) not used yet: their stability follows."""
        with self._tx() as c:
            self.update_importance(c, updates)

    @staticmethod
    def update_importance(c: Any, updates: Sequence[tuple[int, float]]) -> None:
        """:meth:`set_importance` in the caller's transaction."""
        c.executemany(
            "UPDATE episodes SET importance = ? WHERE rowid = ? AND importance_given = 0 AND uses = 0",
            [(imp, rowid) for rowid, imp in updates],
        )

    def set_status(
        self, user_id: str, episode_id: str, status: str, flag: tuple[float, tuple[str, ...]] | None = None
    ) -> tuple[int, Episode] | None:
        with self._tx(user_id) as c:
            row = c.execute("SELECT rowid, status FROM episodes WHERE id = ? AND user_id = ?", (episode_id, user_id)).fetchone()
            if row is None:
                return None
            if row[1] != status:
                c.execute("UPDATE episodes SET status = ? WHERE rowid = ?", (status, row[0]))
                now = iso(now_utc())
                if status == "active":
                    c.execute("UPDATE flags SET released_at = ? WHERE episode_rowid = ?", (now, row[0]))
                else:
                    score, reasons = flag or (0.0, ("manual",))
                    c.execute(
                        "INSERT INTO flags(episode_rowid, user_id, score, reasons, flagged_at) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT(episode_rowid) DO UPDATE SET score = excluded.score, reasons = excluded.reasons, "
                        "flagged_at = excluded.flagged_at, released_at = NULL",
                        (row[0], user_id, score, json.dumps(list(reasons)), now),
                    )
                self.record_change(c, user_id, "status")
            rows = c.execute(f"SELECT {EPISODE_COLS} FROM episodes WHERE rowid = ?", (row[0],)).fetchall()
        return int(row[0]), self.episodes_of_rows(rows)[0]

    def flagged(self, user_id: str, limit: int) -> list[tuple[Episode, float, tuple[str, ...], datetime]]:
        rows = self._q(
            f"SELECT {', '.join('e.' + c.strip() for c in EPISODE_COLS.split(','))}, f.score, f.reasons, f.flagged_at "
            "FROM episodes e JOIN flags f ON f.episode_rowid = e.rowid AND f.user_id = e.user_id "
            "WHERE e.user_id = ? AND e.status = 'quarantined' "
            "ORDER BY e.seq LIMIT ?",
            (user_id, limit),
        )
        n = len(EPISODE_COLS.split(","))
        eps = self.episodes_of_rows([r[:n] for r in rows])
        return [(ep, float(r[n]), tuple(json.loads(r[n + 1])), datetime.fromisoformat(r[n + 2])) for ep, r in zip(eps, rows)]

    def user_version(self, user_id: str) -> int | None:
        rows = self._q("SELECT version FROM users WHERE user_id = ?", (user_id,))
        return int(rows[0][0]) if rows else None

    def add_episodes(
        self, user_id: str, episodes: Sequence[NewEpisode], model: str | None, vectors: dict[str, np.ndarray]
    ) -> dict[str, str]:
        merged: dict[str, str] = {}
        with self._tx(user_id) as c:
            c.execute(
                "INSERT INTO users(user_id, created_at, version) VALUES (?, ?, 0) ON CONFLICT(user_id) DO NOTHING",
                (user_id, iso(now_utc())),
            )
            self.record_change(c, user_id, "add")
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) FROM episodes WHERE user_id = ?", (user_id,)).fetchone()[0]
            if model:  # the model the file's vectors are made with (see Memory: one per file)
                c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('embedder', ?)", (model,))
            if model and vectors:
                c.executemany(
                    "INSERT OR IGNORE INTO vectors(model, hash, vector) VALUES (?, ?, ?)",
                    [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()],
                )
            # The same message stored again (a retried add, a re-import without ids): one episode
            # seen twice. Same text, speaker, session, time and metadata; looked up for the whole
            # batch, which may repeat a message itself.
            stored = self._by_content(
                lambda sql, params: c.execute(sql, params).fetchall(), user_id,
                [ep.content_hash for ep in episodes if ep.same_as is None],
            )
            for ep in episodes:
                if ep.same_as is not None:  # known to repeat one, before any analysis of it
                    if c.execute(
                        "UPDATE episodes SET sightings = sightings + 1 WHERE id = ? AND user_id = ?", (ep.same_as, user_id)
                    ).rowcount != 1:
                        raise Stale(ep.same_as)
                    merged[ep.id] = ep.same_as
                    continue
                meta = json.dumps(ep.metadata, ensure_ascii=False)
                key = (ep.content_hash, ep.session_id, ep.role, ep.name, iso(ep.occurred_at), meta)
                same = stored.get(key)
                if same is not None:
                    c.execute("UPDATE episodes SET sightings = sightings + 1 WHERE id = ?", (same,))
                    merged[ep.id] = same
                    continue
                stored[key] = ep.id
                seq += 1
                cur = c.execute(
                    "INSERT INTO episodes(id, user_id, agent_id, session_id, seq, role, name, content, "
                    "occurred_at, occurred_ts, recorded_at, recorded_ts, place, metadata, importance, content_hash, "
                    "source, writer, status, importance_given, gist) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ep.id, user_id, ep.agent_id, ep.session_id, seq, ep.role, ep.name, ep.content,
                        iso(ep.occurred_at), to_utc(ep.occurred_at).timestamp(),
                        iso(ep.recorded_at), to_utc(ep.recorded_at).timestamp(),
                        ep.place, meta, ep.importance, ep.content_hash,
                        ep.source, ep.writer, "quarantined" if ep.flag is not None else "active",
                        int(ep.importance_given), ep.gist if ep.gist is not None else gist(ep.content, ep.name),
                    ),
                )
                ep_rowid = cur.lastrowid
                if ep.flag is not None:
                    c.execute(
                        "INSERT INTO flags(episode_rowid, user_id, score, reasons, flagged_at) VALUES (?, ?, ?, ?, ?)",
                        (ep_rowid, user_id, ep.flag[0], json.dumps(list(ep.flag[1])), iso(ep.recorded_at)),
                    )
                if ep.times:
                    c.executemany(
                        "INSERT INTO episode_times(episode_rowid, user_id, start_char, end_char, text, start_date, "
                        "end_date, start_ts, end_ts, grain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (ep_rowid, user_id, t.start_char, t.end_char, t.text, t.start.isoformat(),
                             t.end.isoformat(), _day_ts(t.start), _day_ts(t.end, end=True), t.grain)
                            for t in ep.times
                        ],
                    )
                c.executemany(
                    "INSERT INTO units(episode_rowid, user_id, ord, start_char, end_char, text, speaker, scope, "
                    "vector_hash, terms) VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?)",
                    [
                        (ep_rowid, user_id, u.ord, u.start, u.end, u.text, u.speaker, u.vector_hash,
                         u.terms if u.terms is not None else encode_terms(u.text))
                        for u in ep.units
                    ],
                )
        return merged

    def same_episodes(
        self, user_id: str, keys: Sequence[tuple[str, str | None, str | None, str | None, str, str]]
    ) -> list[str | None]:
        found = self._by_content(self._q, user_id, [k[0] for k in keys])
        return [found.get(tuple(k)) for k in keys]

    @staticmethod
    def _by_content(
        run: Callable[[str, Sequence[Any]], list[Any]], user_id: str, hashes: Sequence[str]
    ) -> dict[tuple[Any, ...], str]:
        """The user's episodes with one of these content hashes, by (content hash, session, role,
        name, occurred_at, metadata): the first one's id. ``run`` runs a read query."""
        found: dict[tuple[Any, ...], str] = {}
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            for row in run(
                "SELECT content_hash, session_id, role, name, occurred_at, metadata, id FROM episodes "
                f"WHERE user_id = ? AND content_hash IN ({','.join('?' * len(chunk))}) ORDER BY rowid",
                (user_id, *chunk),
            ):
                found.setdefault(tuple(row[:6]), row[6])
        return found

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for h, blob in self._q(f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN ({marks})", [model, *chunk]):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def vector_hashes(self, model: str, hashes: Sequence[str]) -> set[str]:
        out: set[str] = set()
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(h for (h,) in self._q(f"SELECT hash FROM vectors WHERE model = ? AND hash IN ({marks})", [model, *chunk]))
        return out

    def put_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        with self._tx() as c:
            c.executemany(
                "INSERT OR IGNORE INTO vectors(model, hash, vector) VALUES (?, ?, ?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()],
            )

    def delete_episode(
        self, user_id: str | None, episode_id: str, before: Callable[[Any, int, str], None] | None = None
    ) -> bool:
        """Delete one episode (see :meth:`delete_episodes`); False if there is none (for the user)."""
        row = self._q("SELECT user_id FROM episodes WHERE id = ?", (episode_id,))
        if not row or (user_id is not None and row[0][0] != user_id):
            return False
        return bool(self.delete_episodes(row[0][0], [episode_id], before)["episodes"])

    def delete_episodes(
        self, user_id: str, episode_ids: Sequence[str], before: Callable[[Any, int, str], None] | None = None
    ) -> dict[str, int]:
        """Delete the user's episodes among ``episode_ids`` with their units, time mentions and the
        vectors no other unit uses, in one transaction; returns counts removed per table.
        ``before(connection, episode rowid, owner)`` runs first for each, in it: the layers above
        repair what they derived (semantic memory: facts, entities, segments)."""
        tables = ("episodes", "units", "episode_times", "vectors", "facts", "entities", "segments", "fact_sources")
        with self._tx() as c:
            counts_before = {t: int(c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}
            rows = []
            for i in range(0, len(episode_ids), 500):
                chunk = list(episode_ids[i : i + 500])
                marks = ",".join("?" * len(chunk))
                rows += [(r[0],) for r in c.execute(  # by id alone, as in _record_uses
                    f"SELECT rowid, user_id FROM episodes WHERE id IN ({marks})", chunk
                ) if r[1] == user_id]
            for (ep_rowid,) in rows:
                # Every vector made from its text, keys of the facts drawn from it included (the
                # repair may drop those keys before the episode's own units go).
                hashes = {r[0] for r in c.execute(
                    "SELECT vector_hash FROM units WHERE episode_rowid = ? AND vector_hash IS NOT NULL", (ep_rowid,)
                )}
                if before is not None:
                    before(c, ep_rowid, user_id)
                c.execute("DELETE FROM units WHERE episode_rowid = ?", (ep_rowid,))
                c.execute("DELETE FROM episode_times WHERE episode_rowid = ?", (ep_rowid,))
                c.execute("DELETE FROM episodes WHERE rowid = ?", (ep_rowid,))
                # A vector is derived from the deleted text: drop it unless other units still use it.
                for h in hashes:
                    c.execute(
                        "DELETE FROM vectors WHERE hash = ? AND NOT EXISTS (SELECT 1 FROM units WHERE vector_hash = ?)",
                        (h, h),
                    )
            if rows:
                self.record_change(c, user_id, "delete")
            removed = {t: counts_before[t] - int(c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}
        # The deleted text must leave the file, not only the tables: secure_delete zeroes the
        # freed pages, and a checkpoint moves them out of the WAL (which still holds the old
        # pages until then) and truncates it. A busy checkpoint (readers elsewhere) is retried by
        # the next write's automatic checkpoint.
        if rows:
            self.checkpoint()
        return removed

    def episode_texts(self) -> Iterator[tuple[str, str]]:
        """(episode id, content) of every episode, in chunks."""
        last = 0
        while True:
            rows = self._q("SELECT rowid, id, content FROM episodes WHERE rowid > ? ORDER BY rowid LIMIT 2000", (last,))
            if not rows:
                return
            last = rows[-1][0]
            yield from ((r[1], r[2]) for r in rows)

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Remove what is left of a user once their episodes are deleted: facts, the change log,
        segments, entities and the consolidation pointer. The user's row and journal stay (ids
        and counters, no content): other processes learn from them that the user was emptied."""
        out: dict[str, int] = {}
        with self._tx() as c:
            for table in ("facts", "changes", "segments", "entities", "consolidation", "core_blocks", "core_changes"):
                out[table] = c.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,)).rowcount
            # entities went: whoever keeps them in memory reads them again (FactStore.entity_state)
            c.execute("UPDATE users SET entity_version = entity_version + 1 WHERE user_id = ?", (user_id,))
            self.record_change(c, user_id, "delete")
        self.checkpoint()
        return out

    def text_rows(self) -> Iterator[str]:
        """Every stored text value of the database (for a residue check), in chunks of rows."""
        for table, cols in (
            ("episodes", "content, name, role, place, metadata, session_id, user_id"),
            ("units", "text, speaker"), ("facts", "subject, object, text, qualifier"), ("segments", "summary"),
            ("entities", "name, aliases"), ("episode_times", "text"), ("changes", "before, created"),
            ("core_blocks", "value"), ("core_changes", "before, after"),
        ):
            last = 0
            while True:
                rows = self._q(f"SELECT rowid, {cols} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 2000", (last,))
                if not rows:
                    break
                last = rows[-1][0]
                yield "\n".join(str(v) for r in rows for v in r[1:] if v is not None)

    def episode_owners(self, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(dict(self._q(f"SELECT id, user_id FROM episodes WHERE id IN ({marks})", chunk)))
        return out

    def get_episode(self, episode_id: str) -> Episode | None:
        rows = self._q(f"SELECT {EPISODE_COLS} FROM episodes WHERE id = ?", (episode_id,))
        return self.episodes_of_rows(rows)[0] if rows else None

    def episodes_by_rowid(self, rowids: Sequence[int]) -> dict[int, Episode]:
        out: dict[int, Episode] = {}
        ids = list(dict.fromkeys(int(r) for r in rowids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._q(f"SELECT {EPISODE_COLS} FROM episodes WHERE rowid IN ({marks})", chunk)
            for row, ep in zip(rows, self.episodes_of_rows(rows)):
                out[row[0]] = ep
        return out

    def list_episodes(
        self,
        user_id: str,
        *,
        session_id: str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Episode]:
        sql = f"SELECT {EPISODE_COLS} FROM episodes WHERE user_id = ?"
        params: list[Any] = [user_id]
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
        if agent_id is not None:
            sql += " AND agent_id = ?"
            params.append(agent_id)
        sql += " ORDER BY seq LIMIT ? OFFSET ?"
        params += [self._NO_LIMIT if limit is None else limit, offset]
        return self.episodes_of_rows(self._q(sql, params))

    def iter_episodes(self, user_id: str | None = None) -> Iterator[Episode]:
        last = 0
        while True:
            sql = f"SELECT {EPISODE_COLS} FROM episodes WHERE rowid > ?"
            params: list[Any] = [last]
            if user_id is not None:
                sql += " AND user_id = ?"
                params.append(user_id)
            rows = self._q(sql + " ORDER BY rowid LIMIT 1000", params)
            if not rows:
                return
            yield from self.episodes_of_rows(rows)
            last = rows[-1][0]

    def episodes_of_rows(self, rows: list[Any]) -> list[Episode]:
        """Episodes for rows of EPISODE_COLS, with their resolved time mentions."""
        if not rows:
            return []
        times: dict[int, list[TimeMention]] = {}
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for t in self._q(
                "SELECT episode_rowid, text, start_char, end_char, start_date, end_date, grain FROM episode_times "
                f"WHERE episode_rowid IN ({marks}) ORDER BY episode_rowid, start_char",
                chunk,
            ):
                times.setdefault(t[0], []).append(
                    TimeMention(t[1], t[2], t[3], date.fromisoformat(t[4]), date.fromisoformat(t[5]), t[6])
                )
        return [_episode(r, tuple(times.get(r[0], ()))) for r in rows]

    def timeline(
        self, user_id: str, start_ts: float | None, end_ts: float | None, limit: int, place: str | None = None
    ) -> list[Episode]:
        lo = -1e18 if start_ts is None else start_ts
        hi = 1e18 if end_ts is None else end_ts
        where, params = "", []
        if place is not None:  # the place its writer gave, or a place it is tagged with
            where = (
                " AND (lower(e.place) = lower(?) OR EXISTS (SELECT 1 FROM entity_links l JOIN entities en "
                "ON en.rowid = l.entity_rowid AND en.user_id = l.user_id WHERE l.user_id = e.user_id "
                "AND l.episode_rowid = e.rowid AND en.kind = 'place' AND lower(en.name) = lower(?)))"
            )
            params = [place, place]
        rows = self._q(
            f"SELECT {EPISODE_COLS} FROM episodes e WHERE user_id = ? AND status = 'active' AND ("
            "(occurred_ts BETWEEN ? AND ?) OR EXISTS (SELECT 1 FROM episode_times t WHERE t.episode_rowid = e.rowid "
            f"AND t.start_ts <= ? AND t.end_ts >= ?)){where} ORDER BY seq",
            (user_id, lo, hi, hi, lo, *params),
        )
        eps = self.episodes_of_rows(rows)
        eps.sort(key=lambda e: (e.event_time, e.seq))
        return eps[:limit]

    def scope_rows(
        self, user_id: str, model: str | None, after_unit: int = 0, after_seq: int = 0, archived: bool = False,
        unit_limit: int | None = None, episodes: bool = True,
    ) -> ScopeRows:
        tier = "" if archived else "AND e.status <> 'archived' "
        units = self._q(
            "SELECT u.rowid, u.episode_rowid, v.vector, u.fact_rowid IS NOT NULL, u.terms, u.speaker, "
            "f.kind IS 'statement', f.kind IS 'preference' FROM units u "
            "JOIN episodes e ON e.rowid = u.episode_rowid AND e.user_id = u.user_id "
            "LEFT JOIN vectors v ON v.model = ? AND v.hash = u.vector_hash "
            "LEFT JOIN facts f ON f.rowid = u.fact_rowid AND f.user_id = u.user_id "
            f"WHERE u.user_id = ? AND u.rowid > ? {tier}ORDER BY u.rowid"
            + ("" if unit_limit is None else f" LIMIT {int(unit_limit)}"),
            (model or "", user_id, after_unit),
        )
        vec, has = _vector_matrix([r[2] for r in units])
        eps = self._q(
            "SELECT e.rowid, e.session_id, e.occurred_ts, e.recorded_ts, e.seq, MIN(t.start_ts), MAX(t.end_ts), "
            "COALESCE(NULLIF(e.name, ''), NULLIF(e.role, ''), ''), e.role IS 'assistant' "
            "FROM episodes e LEFT JOIN episode_times t ON t.episode_rowid = e.rowid AND t.user_id = e.user_id "
            f"WHERE e.user_id = ? AND e.seq > ? {tier}GROUP BY e.rowid ORDER BY e.seq",
            (user_id, after_seq),
        ) if episodes else []
        return ScopeRows(
            unit_rowid=np.array([r[0] for r in units], dtype=np.int64),
            unit_episode=np.array([r[1] for r in units], dtype=np.int64),
            unit_is_key=np.array([bool(r[3]) for r in units], dtype=bool),
            unit_is_statement=np.array([bool(r[6]) for r in units], dtype=bool),
            unit_is_preference=np.array([bool(r[7]) for r in units], dtype=bool),
            unit_terms=[r[4] for r in units],
            unit_speaker=[r[5] for r in units],
            unit_vector=vec,
            has_vector=has,
            episode_rowid=np.array([r[0] for r in eps], dtype=np.int64),
            episode_session=[r[1] for r in eps],
            episode_speaker=[r[7] for r in eps],
            episode_by_assistant=np.array([bool(r[8]) for r in eps], dtype=bool),
            episode_ts=np.array([r[2] for r in eps], dtype=np.float64),
            episode_recorded_ts=np.array([r[3] for r in eps], dtype=np.float64),
            episode_seq=np.array([r[4] for r in eps], dtype=np.int64),
            episode_event_lo=np.array([np.nan if r[5] is None else r[5] for r in eps], dtype=np.float64),
            episode_event_hi=np.array([np.nan if r[6] is None else r[6] for r in eps], dtype=np.float64),
        )

    def segment_rows(self, user_id: str, after_segment: int = 0, archived: bool = False) -> SegmentRows:
        segs = self._q(
            "SELECT rowid FROM segments WHERE user_id = ? AND rowid > ? ORDER BY rowid", (user_id, after_segment)
        )
        seg_rowid = np.array([r[0] for r in segs], dtype=np.int64)
        # Members: the segment's session's episodes in its seq range (a deleted episode drops out).
        members = self._q(
            "SELECT s.rowid, e.rowid FROM segments s JOIN episodes e ON e.user_id = s.user_id "
            "AND e.session_id IS s.session_id AND e.seq BETWEEN s.first_seq AND s.last_seq "
            + ("" if archived else "AND e.status <> 'archived' ")
            + "WHERE s.user_id = ? AND s.rowid > ? ORDER BY s.rowid, e.seq",
            (user_id, after_segment),
        )
        return SegmentRows(
            segment_rowid=seg_rowid,
            member_segment=np.searchsorted(seg_rowid, np.array([r[0] for r in members], dtype=np.int64)),
            member_episode=np.array([r[1] for r in members], dtype=np.int64),
        )

    def episode_vectors(self, user_id: str, model: str, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        """First-passage vector of each episode (for segmentation)."""
        hashes: dict[int, str] = {}
        ids = list(rowids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for r, h in self._q(
                f"SELECT episode_rowid, vector_hash FROM units WHERE episode_rowid IN ({marks}) "
                "AND ord = 0 AND vector_hash IS NOT NULL",
                chunk,
            ):
                hashes[int(r)] = h
        vectors = self.get_vectors(model, list(hashes.values()))
        return {r: vectors[h] for r, h in hashes.items() if h in vectors}

    def unit_spans(self, rowids: Sequence[int]) -> dict[int, tuple[int, int, int, int]]:
        out: dict[int, tuple[int, int, int, int]] = {}
        ids = list(dict.fromkeys(int(r) for r in rowids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT rowid, episode_rowid, ord, start_char, end_char FROM units WHERE rowid IN ({marks})"
            for r in self._q(sql, chunk):
                out[int(r[0])] = (int(r[1]), int(r[2]), int(r[3]), int(r[4]))
        return out

    def users(self) -> list[str]:
        return [r[0] for r in self._q("SELECT user_id FROM users ORDER BY user_id")]

    def stats(self, user_id: str | None = None) -> StoreStats:
        where, params = ("WHERE user_id = ?", [user_id]) if user_id else ("", [])
        episodes = self._q(f"SELECT COUNT(*) FROM episodes {where}", params)[0][0]
        quarantined = self._q(
            f"SELECT COUNT(*) FROM episodes {where} {'AND' if where else 'WHERE'} status = 'quarantined'", params
        )[0][0]
        # a session is a (user, session id) pair: two users' "session_1" are two sessions
        sessions = self._q(
            f"SELECT COUNT(*) FROM (SELECT DISTINCT user_id, session_id FROM episodes {where} "
            f"{'AND' if where else 'WHERE'} session_id IS NOT NULL) AS s",
            params,
        )[0][0]
        passages = f"{where} {'AND' if where else 'WHERE'} fact_rowid IS NULL"
        units, with_vec = self._q(f"SELECT COUNT(*), COUNT(vector_hash) FROM units {passages}", params)[0]
        facts = self._q(f"SELECT COUNT(*) FROM facts {where} {'AND' if where else 'WHERE'} status = 'current'", params)[0][0]
        size = self._size_bytes()
        return StoreStats(
            users=1 if user_id else int(self._q("SELECT COUNT(*) FROM users")[0][0]),
            episodes=int(episodes),
            sessions=int(sessions),
            units=int(units),
            vectors=int(with_vec),
            cached_embeddings=int(self._q("SELECT COUNT(*) FROM vectors")[0][0]),
            size_bytes=size,
            schema_version=schema_version(),
            facts=int(facts),
            embedder=", ".join(r[0] for r in self._q("SELECT DISTINCT model FROM vectors")) or None,
            quarantined=int(quarantined),
        )


def _vector_matrix(blobs: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Stored float32 vector blobs -> (matrix with zero rows where missing, which rows are set)."""
    dim = next((len(b) // 4 for b in blobs if b is not None), 0)
    has = np.fromiter((b is not None and len(b) == 4 * dim for b in blobs), dtype=bool, count=len(blobs))
    vec = np.zeros((len(blobs), dim), dtype=np.float32)
    if has.any():
        joined = b"".join(b for b, ok in zip(blobs, has.tolist()) if ok and b is not None)
        vec[has] = np.frombuffer(joined, dtype=np.float32).reshape(-1, dim)
    return vec, has
