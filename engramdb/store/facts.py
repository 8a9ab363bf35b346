"""Semantic-memory storage in the shared SQL (SQLite or PostgreSQL): facts with sources, change
log with undo, entities, segments."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, Sequence

import numpy as np

from ..encode.text import first_sentence
from ..errors import InputError, NotFoundError
from ..ids import new_id as make_id
from ..index.lexical import encode_terms
from ..lifecycle import DAY, initial_stability, retrievability
from ..model import Change, Entity, Episode, Fact, Segment
from ..model import Summary as Node
from ..semantic import STATEMENT, Decision, FactDraft, Known, SegmentInfo
from ..timeutil import iso, now_utc
from .base import ROLES
from .sql import EPISODE_COLS, SQLStore

_FACT_COLS = (
    "rowid, id, user_id, subject, predicate, qualifier, object, text, kind, category, confidence, valid_from, "
    "valid_to, recorded_at, superseded_at, superseded_by, status, strength, amount, unit"
)
_STATE_COLS = ("status", "valid_to", "superseded_at", "superseded_by", "strength")
#: Entities named by a role, not a name (a fact's subject "user"): in every episode, in no graph.
_ROLES = "(" + ", ".join(f"'{r}'" for r in ROLES) + ")"


_OBJECT_KIND = {
    "lives_in": "place", "from": "place", "visited": "place", "works_at": "organisation",
    "has_pet": "pet", "has_relation": "person", "owns": "product",
}


def _entities_of(d: FactDraft) -> list[tuple[str, str, str | None]]:
    """(name, kind, alias) of the entities a fact names: its subject and typed objects."""
    out: list[tuple[str, str, str | None]] = []
    if d.kind == "statement":  # a sentence as said: its names are not typed, the speaker is no news
        return out
    if "'s " not in d.subject:
        out.append((d.subject, "person", None))
    kind = _OBJECT_KIND.get(d.predicate)
    if kind:
        alias = f"{d.subject}'s {d.qualifier}" if d.predicate == "has_relation" and d.qualifier else None
        out.append((d.object, kind, alias))
    return out


def _dt(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


class FactStore:
    """Facts, changes and segments of a :class:`SQLStore` (same file, same transactions)."""

    def __init__(self, store: SQLStore) -> None:
        self.s = store

    # -- reads -------------------------------------------------------------------------------

    def last_seq(self, user_id: str) -> int:
        rows = self.s.query("SELECT last_seq FROM consolidation WHERE user_id = ?", (user_id,))
        return int(rows[0][0]) if rows else 0

    def pending(self, user_id: str, limit: int = 5000) -> list[tuple[int, int, Episode]]:
        """Episodes not consolidated yet: (rowid, seq, episode), in order."""
        rows = self.s.query(
            f"SELECT {EPISODE_COLS} FROM episodes WHERE user_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (user_id, self.last_seq(user_id), limit),
        )
        return [(r[0], r[15], ep) for r, ep in zip(rows, self.s.episodes_of_rows(rows))]

    def consolidated(self, user_id: str, after_seq: int, limit: int = 5000) -> list[tuple[int, int, Episode]]:
        """Episodes consolidated already, past ``after_seq``: (rowid, seq, episode), in order."""
        rows = self.s.query(
            f"SELECT {EPISODE_COLS} FROM episodes WHERE user_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (user_id, after_seq, self.last_seq(user_id), limit),
        )
        return [(r[0], r[15], ep) for r, ep in zip(rows, self.s.episodes_of_rows(rows))]

    def replace_mentions(self, user_id: str, mentions: Sequence[tuple[int, str, str, str | None]]) -> int:
        """Replace the user's mention edges (not the facts' links) with ``mentions``, in one
        transaction; entities left without links go. Returns how many edges were written."""
        with self.s.transaction(user_id) as c:
            c.execute("DELETE FROM entity_links WHERE user_id = ? AND fact_rowid IS NULL", (user_id,))
            known = {
                r[1]: (int(r[0]), json.loads(r[2]))
                for r in c.execute("SELECT rowid, name, aliases FROM entities WHERE user_id = ?", (user_id,)).fetchall()
            }
            taught: set[int] = set()
            links = []
            for ep_rowid, name, kind, alias in mentions:
                if name not in known:
                    cur = c.execute(
                        "INSERT INTO entities(id, user_id, name, kind, aliases) VALUES (?, ?, ?, ?, ?)",
                        (make_id("ent_"), user_id, name, kind, "[]"),
                    )
                    known[name] = (int(cur.lastrowid or 0), [])
                erow, aliases = known[name]
                if alias and alias not in aliases:
                    aliases.append(alias)
                    taught.add(erow)
                links.append((erow, ep_rowid, user_id))
            for i in range(0, len(links), 5000):
                c.executemany(
                    "INSERT INTO entity_links(entity_rowid, episode_rowid, fact_rowid, user_id) VALUES (?, ?, NULL, ?)",
                    links[i : i + 5000],
                )
            for erow, aliases in known.values():
                if erow in taught:
                    c.execute("UPDATE entities SET aliases = ? WHERE rowid = ?", (json.dumps(aliases), erow))
            if taught:
                _entities_changed(c, user_id, "alias_version")
            c.execute(
                "DELETE FROM entities WHERE user_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM entity_links l WHERE l.entity_rowid = entities.rowid)",
                (user_id,),
            )
            _entities_changed(c, user_id)
            self.s.record_change(c, user_id, "consolidate")
        return len(mentions)

    def current(self, user_id: str, said: Sequence[str]) -> list[Known]:
        """The user's current facts a consolidation can touch: all facts, and the statements whose
        sentence is one of ``said`` (a statement merges only with the same sentence; a long
        history holds tens of thousands of them, so a consolidation must not read them all)."""
        cols = "SELECT id, subject, predicate, qualifier, object, amount, unit FROM facts WHERE user_id = ? AND status = 'current'"
        rows = list(self.s.query(f"{cols} AND predicate <> '{STATEMENT}'", (user_id,)))
        unique = list(dict.fromkeys(said))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += self.s.query(f"{cols} AND predicate = '{STATEMENT}' AND object IN ({marks})", (user_id, *chunk))
        return [Known(*r) for r in rows]

    def _facts(self, rows: list[Any]) -> list[Fact]:
        sources: dict[int, list[str]] = {}
        strength: dict[int, float] = {}
        ids = [r[0] for r in rows]
        now = time.time()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for fr, eid, stab, imp, last in self.s.query(
                "SELECT fs.fact_rowid, e.id, e.stability, e.importance, COALESCE(e.last_used_ts, e.occurred_ts) "
                "FROM fact_sources fs JOIN episodes e ON e.rowid = fs.episode_rowid AND e.user_id = fs.user_id "
                f"WHERE fs.fact_rowid IN ({marks}) ORDER BY e.seq",
                chunk,
            ):
                sources.setdefault(fr, []).append(eid)
                s = float(stab) if stab is not None else initial_stability(float(imp))
                strength[fr] = max(strength.get(fr, 0.0), float(retrievability((now - last) / DAY, s)))
        return [
            Fact(
                id=r[1], user_id=r[2], subject=r[3], predicate=r[4], qualifier=r[5], object=r[6], text=r[7],
                kind=r[8], category=r[9], confidence=r[10], valid_from=_dt(r[11]), valid_to=_dt(r[12]),
                recorded_at=datetime.fromisoformat(r[13]), superseded_at=_dt(r[14]), superseded_by=r[15],
                status=r[16], strength=round(strength.get(r[0], 0.0), 6), sightings=int(r[17]),
                sources=tuple(sources.get(r[0], ())), amount=None if r[18] is None else float(r[18]), unit=r[19] or "",
            )
            for r in rows
        ]

    def facts(self, user_id: str, *, status: str | None = "current", subject: str | None = None,
              predicate: str | None = None, episode_ids: Sequence[str] | None = None,
              kinds: Sequence[str] | None = None, object_like: Sequence[str] = (),
              amounts_only: bool = False) -> list[Fact]:
        """The user's facts by status, subject, predicate, source episodes and kind.
        ``object_like``: words every object holds (case aside; a pre-filter for patterns);
        ``amounts_only``: only facts that carry an amount."""
        sql = f"SELECT {_FACT_COLS} FROM facts WHERE user_id = ?"
        params: list[Any] = [user_id]
        if episode_ids is not None:
            # The facts drawn from these episodes, found from the episodes. Given the user as well
            # as a list of ids, SQLite's planner (no statistics) reads every row of the user
            # through a (user_id, ...) index instead: 0.1-0.3 s at 100k episodes, not 1 ms. Here
            # and in the lookups like it, the owner is checked on the rows found.
            rowids = self._fact_rowids_of(user_id, episode_ids)
            if not rowids:
                return []
            sql = f"SELECT {_FACT_COLS} FROM facts WHERE rowid IN ({','.join('?' * len(rowids))})"
            params = list(rowids)
        for w in object_like:
            sql += " AND lower(object) LIKE ?"
            params.append("%" + w.lower().replace("%", "").replace("_", "") + "%")
        if amounts_only:
            sql += " AND amount IS NOT NULL"
        if kinds is not None:
            sql += f" AND kind IN ({','.join('?' * len(kinds)) or 'NULL'})"
            params += list(kinds)
        if status:
            sql += " AND status = ?"
            params.append(status)
        if subject:
            sql += " AND lower(subject) = lower(?)"
            params.append(subject)
        if predicate:
            sql += " AND predicate = ?"
            params.append(predicate)
        # A fact stands on the episodes it was drawn from: one drawn only from quarantined
        # episodes is not known until a reviewer releases one of them.
        sql += (
            " AND EXISTS (SELECT 1 FROM fact_sources fs JOIN episodes e ON e.rowid = fs.episode_rowid AND e.user_id = fs.user_id"
            " WHERE fs.fact_rowid = facts.rowid AND fs.user_id = facts.user_id AND e.status <> 'quarantined')"
        )
        return self._facts([r for r in self.s.query(sql + " ORDER BY rowid", params) if r[2] == user_id])

    def _fact_rowids_of(self, user_id: str, episode_ids: Sequence[str]) -> list[int]:
        """Rowids of the facts drawn from the user's episodes among ``episode_ids``."""
        ids = list(dict.fromkeys(episode_ids))
        eps: list[int] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            eps += [int(r[0]) for r in self.s.query(
                f"SELECT rowid, user_id FROM episodes WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ) if r[1] == user_id]
        found: set[int] = set()
        for i in range(0, len(eps), 500):
            chunk2 = eps[i : i + 500]
            found.update(int(r[0]) for r in self.s.query(
                f"SELECT fact_rowid, user_id FROM fact_sources WHERE episode_rowid IN ({','.join('?' * len(chunk2))})",
                chunk2,
            ) if r[1] == user_id)
        return sorted(found)

    def get(self, fact_id: str, user_id: str | None = None) -> Fact:
        """A fact by id; with ``user_id``, only that user's (another's is not found)."""
        rows = self.s.query(f"SELECT {_FACT_COLS} FROM facts WHERE id = ?", (fact_id,))
        if not rows or (user_id is not None and rows[0][2] != user_id):
            raise NotFoundError(f"no fact {fact_id!r}", id=fact_id)
        return self._facts(rows)[0]

    def history(self, fact_id: str, user_id: str | None = None) -> list[Fact]:
        """Every fact of the same slot (subject, predicate, qualifier), oldest first."""
        f = self.get(fact_id, user_id)
        rows = self.s.query(
            f"SELECT {_FACT_COLS} FROM facts WHERE user_id = ? AND lower(subject) = lower(?) AND predicate = ? "
            "AND qualifier = ? ORDER BY rowid",
            (f.user_id, f.subject, f.predicate, f.qualifier),
        )
        return self._facts(rows)

    def changes(self, user_id: str, limit: int = 100) -> list[Change]:
        rows = self.s.query(
            "SELECT id, user_id, kind, fact_id, created_at, undone_at FROM changes WHERE user_id = ? "
            "ORDER BY rowid DESC LIMIT ?",
            (user_id, limit),
        )
        return [Change(r[0], r[1], r[2], r[3], datetime.fromisoformat(r[4]), _dt(r[5])) for r in rows]

    def segments(self, user_id: str, session_id: str | None = None) -> list[Segment]:
        sql = "SELECT rowid, id, session_id, first_seq, last_seq, summary FROM segments WHERE user_id = ?"
        params: list[Any] = [user_id]
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
        out = []
        for r in self.s.query(sql + " ORDER BY first_seq", params):
            ids = [x[0] for x in self.s.query(
                "SELECT id FROM episodes WHERE user_id = ? AND seq BETWEEN ? AND ? AND session_id IS ? ORDER BY seq",
                (user_id, r[3], r[4], r[2]),
            )]
            out.append(Segment(r[1], r[2], tuple(ids), r[5]))
        return out

    # -- writes ------------------------------------------------------------------------------

    def apply(
        self,
        user_id: str,
        steps: Sequence[tuple[Decision, int, Episode]],
        last_seq: int,
        vectors: dict[str, np.ndarray],
        model: str | None,
        fact_hashes: dict[str, str],
        segments: Sequence[tuple[str | None, int, int, str, int | None]] = (),
        first_seq: int | None = 0,
        mentions: Sequence[tuple[int, str, str, str | None]] = (),
        importance: Sequence[tuple[int, float]] = (),
    ) -> list[str] | None:
        """Apply decisions (each with its source episode rowid and episode) in one transaction.

        ``fact_hashes``: new fact id -> the vector hash of its key (``vectors`` holds those the
        store lacks). ``first_seq``: the first episode these decisions consolidate; if another
        thread or process consolidated it meanwhile, nothing is written and None is returned
        (the caller reads what is pending again). ``first_seq=None``: episodes consolidated
        out of order (a released one), no check."""
        change_ids: list[str] = []
        now = iso(now_utc())
        with self.s.transaction(user_id) as c:
            done = c.execute("SELECT last_seq FROM consolidation WHERE user_id = ?", (user_id,)).fetchone()
            if first_seq is not None and done is not None and int(done[0]) >= first_seq:
                return None
            if model and vectors:
                c.executemany(
                    "INSERT OR IGNORE INTO vectors(model, hash, vector) VALUES (?, ?, ?)",
                    [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()],
                )
            for d, ep_rowid, ep in steps:
                if d.action == "ignore":
                    continue
                before = []
                for fid in d.closes + ([d.merge_into] if d.merge_into else []):
                    row = c.execute(f"SELECT id, {', '.join(_STATE_COLS)} FROM facts WHERE id = ?", (fid,)).fetchone()
                    if row:
                        before.append(dict(zip(("id", *_STATE_COLS), row)))
                created: list[str] = []
                sources_added: list[str] = []
                valid_from = iso(ep.event_time)
                if d.action == "merge":
                    assert d.merge_into
                    frow = c.execute("SELECT rowid FROM facts WHERE id = ?", (d.merge_into,)).fetchone()[0]
                    cur = c.execute(
                        "INSERT OR IGNORE INTO fact_sources(fact_rowid, episode_rowid, user_id) VALUES (?, ?, ?)",
                        (frow, ep_rowid, user_id),
                    )
                    if cur.rowcount:
                        sources_added.append(d.merge_into)
                        # The restatement is keyed too: the key must not recall only the first mention.
                        c.execute(
                            "INSERT INTO units(episode_rowid, user_id, ord, start_char, end_char, text, speaker, scope, "
                            "vector_hash, fact_rowid, terms) SELECT ?, user_id, -1, 0, 0, text, ?, '', vector_hash, "
                            "fact_rowid, terms FROM units WHERE fact_rowid = ? ORDER BY rowid LIMIT 1",
                            (ep_rowid, ep.speaker or "", frow),
                        )
                    c.execute("UPDATE facts SET strength = strength + 1 WHERE rowid = ?", (frow,))
                    kind, fact_id = "merge", d.merge_into
                    fact_id_opt: str | None = fact_id
                else:
                    new_id = None
                    if d.action == "add":
                        dr = d.draft
                        new_id = d.new_id or make_id("fact_")
                        cur = c.execute(
                            "INSERT INTO facts(id, user_id, subject, predicate, qualifier, object, text, kind, category, "
                            "confidence, valid_from, recorded_at, extractor, amount, unit) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (new_id, user_id, dr.subject, dr.predicate, dr.qualifier, dr.object, dr.text, dr.kind,
                             dr.category, dr.confidence, valid_from, now, "rules", dr.amount, dr.unit or None),
                        )
                        frow = int(cur.lastrowid or 0)
                        c.execute(
                            "INSERT INTO fact_sources(fact_rowid, episode_rowid, user_id) VALUES (?, ?, ?)",
                            (frow, ep_rowid, user_id),
                        )
                        created.append(new_id)
                        for name, kind, alias in _entities_of(dr):
                            self._link_entity(c, user_id, name, kind, alias, ep_rowid, frow)
                        vh = fact_hashes.get(new_id)
                        c.execute(
                            "INSERT INTO units(episode_rowid, user_id, ord, start_char, end_char, text, speaker, scope, "
                            "vector_hash, fact_rowid, terms) VALUES (?, ?, -1, 0, 0, ?, ?, '', ?, ?, ?)",
                            (ep_rowid, user_id, dr.text, ep.speaker or "", vh if model else None, frow,
                             encode_terms(dr.text)),
                        )
                    status = "retracted" if d.action == "retract" else "superseded"
                    for fid in d.closes:
                        c.execute(
                            "UPDATE facts SET status = ?, valid_to = ?, superseded_at = ?, superseded_by = ? "
                            "WHERE id = ? AND status = 'current'",
                            (status, valid_from, now, new_id, fid),
                        )
                    kind = "retract" if d.action == "retract" else ("supersede" if d.closes else "add")
                    fact_id_opt = new_id or (d.closes[0] if d.closes else None)
                cid = make_id("chg_")
                c.execute(
                    "INSERT INTO changes(id, user_id, kind, fact_id, created_at, before, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (cid, user_id, kind, fact_id_opt, now, json.dumps(before),
                     json.dumps({"facts": created, "sources": [[f, ep_rowid] for f in sources_added]})),
                )
                change_ids.append(cid)
            self._link_mentions(c, user_id, mentions)
            if importance:
                self.s.update_importance(c, importance)
            for session_id, first, last, summary, summary_rowid in segments:
                c.execute(
                    "INSERT INTO segments(id, user_id, session_id, first_seq, last_seq, summary, summary_episode_rowid) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (make_id("seg_"), user_id, session_id, first, last, summary, summary_rowid),
                )
            c.execute(
                "INSERT INTO consolidation(user_id, last_seq) VALUES (?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET last_seq = MAX(consolidation.last_seq, excluded.last_seq)",
                (user_id, last_seq),
            )
            self.s.record_change(c, user_id, "consolidate")
        return change_ids

    def undo(self, change_id: str, user_id: str | None = None) -> Change:
        with self.s.transaction() as c:
            row = c.execute(
                "SELECT id, user_id, kind, fact_id, created_at, undone_at, before, created FROM changes WHERE id = ?",
                (change_id,),
            ).fetchone()
            if row is None or (user_id is not None and row[1] != user_id):
                raise NotFoundError(f"no change {change_id!r}", id=change_id)
            if row[5]:
                raise InputError(f"change {change_id} was already undone at {row[5]}", id=change_id)
            created = json.loads(row[7])
            touched = set(created["facts"]) | {b["id"] for b in json.loads(row[6])} | ({row[3]} if row[3] else set())
            later = [
                r for r in c.execute(
                    "SELECT fact_id, before, created FROM changes WHERE user_id = ? AND undone_at IS NULL "
                    "AND rowid > (SELECT rowid FROM changes WHERE id = ?)",
                    (row[1], change_id),
                )
                if r[0] in touched
                or touched & {b["id"] for b in json.loads(r[1])}
                or touched & {f for f, _ in json.loads(r[2])["sources"]}
            ]
            if later:
                raise InputError(
                    f"change {change_id} has later changes that depend on it; undo those first", id=change_id
                )
            for st in json.loads(row[6]):
                c.execute(
                    "UPDATE facts SET status = ?, valid_to = ?, superseded_at = ?, superseded_by = ?, strength = ? WHERE id = ?",
                    (st["status"], st["valid_to"], st["superseded_at"], st["superseded_by"], st["strength"], st["id"]),
                )
            for fid, ep_rowid in created["sources"]:
                for table in ("fact_sources", "units"):
                    c.execute(
                        f"DELETE FROM {table} WHERE episode_rowid = ? AND fact_rowid = (SELECT rowid FROM facts WHERE id = ?)",
                        (ep_rowid, fid),
                    )
            for fid in created["facts"]:
                self._drop_fact(c, fid)
            now = iso(now_utc())
            c.execute("UPDATE changes SET undone_at = ? WHERE id = ?", (now, change_id))
            self.s.record_change(c, row[1], "undo")
        return Change(row[0], row[1], row[2], row[3], datetime.fromisoformat(row[4]), datetime.fromisoformat(now))

    @staticmethod
    def _link_entity(c: Any, user_id: str, name: str, kind: str, alias: str | None, ep_rowid: int, frow: int | None) -> None:
        row = c.execute("SELECT rowid, aliases FROM entities WHERE user_id = ? AND name = ?", (user_id, name)).fetchone()
        if row is None:
            cur = c.execute(
                "INSERT INTO entities(id, user_id, name, kind, aliases) VALUES (?, ?, ?, ?, ?)",
                (make_id("ent_"), user_id, name, kind, json.dumps([alias] if alias else [])),
            )
            erow = cur.lastrowid
        else:
            erow, aliases = row[0], json.loads(row[1])
            if alias and alias not in aliases:
                c.execute("UPDATE entities SET aliases = ? WHERE rowid = ?", (json.dumps(aliases + [alias]), erow))
                _entities_changed(c, user_id, "alias_version")
        c.execute(
            "INSERT INTO entity_links(entity_rowid, episode_rowid, fact_rowid, user_id) VALUES (?, ?, ?, ?)",
            (erow, ep_rowid, frow, user_id),
        )

    @staticmethod
    def _link_mentions(c: Any, user_id: str, mentions: Sequence[tuple[int, str, str, str | None]]) -> None:
        """:meth:`_link_entity` for each of the mention edges (episode rowid, name, kind, a new
        alias or None), in order, with a read of their entities and a write of their links."""
        if not mentions:
            return
        names = list(dict.fromkeys(m[1] for m in mentions))
        known: dict[str, tuple[int, list[str]]] = {}
        for i in range(0, len(names), 500):
            chunk = names[i : i + 500]
            for erow, name, aliases in c.execute(
                f"SELECT rowid, name, aliases FROM entities WHERE user_id = ? AND name IN ({','.join('?' * len(chunk))})",
                (user_id, *chunk),
            ).fetchall():
                known[name] = (int(erow), json.loads(aliases))
        links, taught = [], False
        for ep_rowid, name, kind, alias in mentions:
            found = known.get(name)
            if found is None:
                cur = c.execute(
                    "INSERT INTO entities(id, user_id, name, kind, aliases) VALUES (?, ?, ?, ?, ?)",
                    (make_id("ent_"), user_id, name, kind, json.dumps([alias] if alias else [])),
                )
                known[name] = found = (int(cur.lastrowid or 0), [alias] if alias else [])
            elif alias and alias not in found[1]:
                found[1].append(alias)
                c.execute("UPDATE entities SET aliases = ? WHERE rowid = ?", (json.dumps(found[1]), found[0]))
                taught = True
            links.append((found[0], ep_rowid, user_id))
        if taught:
            _entities_changed(c, user_id, "alias_version")
        c.executemany(
            "INSERT INTO entity_links(entity_rowid, episode_rowid, fact_rowid, user_id) VALUES (?, ?, NULL, ?)", links
        )

    def entity_names(self, user_id: str, facts_only: bool = False) -> list[tuple[str, str, list[str]]]:
        sql = "SELECT name, kind, aliases FROM entities WHERE user_id = ?"
        if facts_only:
            sql += (" AND EXISTS (SELECT 1 FROM entity_links l WHERE l.entity_rowid = entities.rowid "
                    "AND l.user_id = entities.user_id AND l.fact_rowid IS NOT NULL)")
        rows = self.s.query(sql, (user_id,))
        return [(r[0], r[1], _aliases(r[2])) for r in rows]

    def entities_after(self, user_id: str, after_rowid: int = 0) -> list[tuple[int, str, str, list[str]]]:
        """(rowid, name, kind, aliases) of the user's entities past ``after_rowid``, in order."""
        if after_rowid <= 0:
            rows = self.s.query(
                "SELECT rowid, name, kind, aliases, user_id FROM entities WHERE user_id = ? ORDER BY rowid", (user_id,)
            )
        else:  # the few new ones, found by rowid (see facts(): the owner is checked here)
            rows = self.s.query(
                "SELECT rowid, name, kind, aliases, user_id FROM entities WHERE rowid > ? ORDER BY rowid", (after_rowid,)
            )
        return [(int(r[0]), r[1], r[2], _aliases(r[3])) for r in rows if r[4] == user_id]

    def entity_state(self, user_id: str) -> tuple[str, str, int, int] | None:
        """(this database's id, when the user was created, a counter deletions of the user's
        entities bump, one new aliases bump); None for a user not seen. While the first three
        stand, the entities are those read before plus any added since (higher rowids); when
        only the last moved, some of them also have a new alias."""
        rows = self.s.query("SELECT created_at, entity_version, alias_version FROM users WHERE user_id = ?", (user_id,))
        return (self.s.store_id(), str(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None

    def aliased_entities(self, user_id: str) -> list[tuple[int, str, str, list[str]]]:
        """(rowid, name, kind, aliases) of the user's entities that have aliases, in order."""
        return [(int(r[0]), r[1], r[2], _aliases(r[3])) for r in self.s.query(
            "SELECT rowid, name, kind, aliases FROM entities WHERE user_id = ? AND aliases <> '[]' ORDER BY rowid",
            (user_id,),
        )]

    def graph_links_after(self, user_id: str, after_rowid: int = 0) -> list[tuple[int, int, int, bool]]:
        """(link rowid, entity rowid, episode rowid, whether the entity is a role: "user"…) of the
        user's links to episodes past ``after_rowid``, in rowid order."""
        return [(int(r[0]), int(r[1]), int(r[2]), bool(r[3])) for r in self.s.query(
            f"SELECT l.rowid, l.entity_rowid, l.episode_rowid, CASE WHEN en.name IN {_ROLES} THEN 1 ELSE 0 END "
            "FROM entity_links l JOIN entities en ON en.rowid = l.entity_rowid AND en.user_id = l.user_id "
            "WHERE l.user_id = ? AND l.rowid > ? AND l.episode_rowid IS NOT NULL ORDER BY l.rowid",
            (user_id, after_rowid),
        )]

    def related_rows(self, user_id: str, episode_id: str) -> list[tuple[int, str, str, int]]:
        """(other episode rowid, reason, detail, entity degree or 0) of the episodes linked to one:
        ``entity`` (they mention the same one, named in detail, with how many episodes do),
        ``fact`` (a fact drawn from both, its text) and ``segment`` (the same topic segment)."""
        found = self.s.query("SELECT rowid FROM episodes WHERE id = ? AND user_id = ?", (episode_id, user_id))
        if not found:
            return []
        ep_rowid = int(found[0][0])
        out: list[tuple[int, str, str, int]] = []
        for other, name, degree in self.s.query(
            "SELECT DISTINCT l2.episode_rowid, en.name, (SELECT COUNT(DISTINCT l3.episode_rowid) FROM entity_links l3 "
            "WHERE l3.entity_rowid = en.rowid AND l3.user_id = en.user_id) FROM entity_links l1 "
            "JOIN entity_links l2 ON l2.entity_rowid = l1.entity_rowid AND l2.user_id = l1.user_id "
            "JOIN entities en ON en.rowid = l1.entity_rowid AND en.user_id = l1.user_id "
            "WHERE l1.user_id = ? AND l1.episode_rowid = ? AND l2.episode_rowid IS NOT NULL AND l2.episode_rowid <> ? "
            f"AND en.name NOT IN {_ROLES}",
            (user_id, ep_rowid, ep_rowid),
        ):
            out.append((int(other), "entity", name, int(degree)))
        for other, text in self.s.query(
            "SELECT s2.episode_rowid, f.text FROM fact_sources s1 "
            "JOIN fact_sources s2 ON s2.fact_rowid = s1.fact_rowid AND s2.user_id = s1.user_id "
            "JOIN facts f ON f.rowid = s1.fact_rowid AND f.user_id = s1.user_id "
            "WHERE s1.user_id = ? AND s1.episode_rowid = ? AND s2.episode_rowid <> ?",
            (user_id, ep_rowid, ep_rowid),
        ):
            out.append((int(other), "fact", text, 0))
        for other, summary in self.s.query(
            "SELECT e2.rowid, sg.summary FROM episodes e1 JOIN segments sg ON sg.user_id = e1.user_id "
            "AND sg.session_id IS e1.session_id AND e1.seq BETWEEN sg.first_seq AND sg.last_seq "
            "JOIN episodes e2 ON e2.user_id = e1.user_id AND e2.session_id IS e1.session_id "
            "AND e2.seq BETWEEN sg.first_seq AND sg.last_seq WHERE e1.rowid = ? AND e1.user_id = ? AND e2.rowid <> e1.rowid",
            (ep_rowid, user_id),
        ):
            out.append((int(other), "segment", summary, 0))
        return out

    def graph_rows(
        self, user_id: str, around: str | None, limit: int
    ) -> tuple[list[tuple[int, str, str, str, list[str]]], list[tuple[int, int | None, int | None]]]:
        """The entities (rowid, id, name, kind, aliases) and links (entity rowid, episode rowid,
        fact rowid) of the user's graph: around the entity named or aliased ``around`` (its links,
        and the other entities its episodes mention), else the ``limit`` entities most episodes
        mention; at most ``limit`` links per entity."""
        ents = {
            int(r[0]): (int(r[0]), r[1], r[2], r[3], json.loads(r[4]))
            for r in self.s.query(
                "SELECT rowid, id, name, kind, aliases FROM entities WHERE user_id = ? "
                f"AND name NOT IN {_ROLES}", (user_id,)
            )
        }
        if around is not None:
            key = around.strip().lower()
            focus = [e for e, (_, _, name, _, aliases) in ents.items() if key == name.lower() or key in (a.lower() for a in aliases)]
        else:
            focus = [int(r[0]) for r in self.s.query(
                "SELECT entity_rowid FROM entity_links WHERE user_id = ? GROUP BY entity_rowid "
                "ORDER BY COUNT(DISTINCT episode_rowid) DESC, entity_rowid LIMIT ?", (user_id, limit)
            ) if int(r[0]) in ents]
        links: list[tuple[int, int | None, int | None]] = []
        for e in focus:
            links += [(e, r[0], r[1]) for r in self.s.query(
                "SELECT episode_rowid, fact_rowid FROM entity_links WHERE user_id = ? AND entity_rowid = ? "
                "ORDER BY episode_rowid DESC LIMIT ?", (user_id, e, limit)
            )]
        if around is not None and links:
            eps = sorted({ep for _, ep, _ in links if ep is not None})
            for i in range(0, len(eps), 500):
                chunk = eps[i : i + 500]
                links += [(int(r[0]), r[1], r[2]) for r in self.s.query(
                    f"SELECT entity_rowid, episode_rowid, fact_rowid FROM entity_links WHERE user_id = ? AND episode_rowid IN "
                    f"({', '.join('?' * len(chunk))})", (user_id, *chunk)
                ) if int(r[0]) in ents and int(r[0]) not in focus]
        used = {e for e, _, _ in links} | set(focus)
        return [ents[e] for e in sorted(used) if e in ents], sorted(set(links), key=lambda t: (t[0], t[1] or 0, t[2] or 0))

    def fact_labels(self, user_id: str, rowids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """Fact rowid -> (id, text) of the user's facts ``rowids``."""
        out: dict[int, tuple[str, str]] = {}
        ids = list(dict.fromkeys(rowids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for r in self.s.query(
                f"SELECT rowid, id, text FROM facts WHERE user_id = ? AND rowid IN ({', '.join('?' * len(chunk))})",
                (user_id, *chunk),
            ):
                out[int(r[0])] = (r[1], r[2])
        return out

    def place_links(self, user_id: str, episode_rowids: Sequence[int]) -> dict[int, set[str]]:
        """The places (lower case) each episode is tagged with: named places it mentions, the
        common places it says someone was at, the place its writer gave, and the organisations
        it names (where one works or studies: the answer to "where does she work?"). Not an
        assistant's episodes: the places in its replies are advice, not where anything happened."""
        out: dict[int, set[str]] = {}
        ids = list(dict.fromkeys(episode_rowids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            # Found from the episodes, the owner checked here (see _fact_rowids_of).
            for r, name, owner in self.s.query(
                "SELECT l.episode_rowid, en.name, l.user_id FROM entity_links l JOIN entities en ON en.rowid = "
                "l.entity_rowid AND en.user_id = l.user_id JOIN episodes e ON e.rowid = l.episode_rowid AND e.user_id "
                "= l.user_id WHERE en.kind IN ('place', 'organisation') AND COALESCE(e.role, '') <> 'assistant' "
                f"AND l.episode_rowid IN ({marks})",
                chunk,
            ):
                if owner == user_id:
                    out.setdefault(int(r), set()).add(str(name).lower())
        return out

    def episode_entities(self, user_id: str, episode_ids: Sequence[str]) -> dict[str, list[tuple[str, str, list[str]]]]:
        """Episode id -> (name, kind, aliases) of the entities it mentions or a fact drawn from
        it names, in the order first linked; not the roles ("user", "assistant")."""
        out: dict[str, list[tuple[str, str, list[str]]]] = {}
        seen: set[tuple[str, str]] = set()
        ids = list(dict.fromkeys(episode_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            # Found from the episodes by id, the owner checked here (see _fact_rowids_of).
            for eid, name, kind, aliases, owner in self.s.query(
                "SELECT e.id, en.name, en.kind, en.aliases, e.user_id FROM episodes e JOIN entity_links l ON "
                "l.episode_rowid = e.rowid AND l.user_id = e.user_id JOIN entities en ON en.rowid = l.entity_rowid "
                f"AND en.user_id = l.user_id WHERE e.id IN ({','.join('?' * len(chunk))}) AND en.name NOT IN {_ROLES} "
                "ORDER BY l.rowid",
                chunk,
            ):
                if owner == user_id and (eid, name) not in seen:
                    seen.add((eid, name))
                    out.setdefault(str(eid), []).append((str(name), str(kind), _aliases(aliases)))
        return out

    def placed_episodes(self, user_id: str, place: str) -> set[str]:
        """Ids of the user's episodes tagged with ``place`` (case aside) or given it."""
        rows = self.s.query(
            "SELECT e.id FROM episodes e WHERE e.user_id = ? AND (lower(e.place) = lower(?) OR EXISTS (SELECT 1 FROM "
            "entity_links l JOIN entities en ON en.rowid = l.entity_rowid AND en.user_id = l.user_id WHERE "
            "l.user_id = e.user_id AND l.episode_rowid = e.rowid AND en.kind = 'place' AND lower(en.name) = lower(?)))",
            (user_id, place, place),
        )
        return {str(r[0]) for r in rows}

    # -- the summary tree (see consolidate.tree) ---------------------------------------------------

    def tree_segments(self, user_id: str, sessions: Sequence[str | None] | None = None) -> list[SegmentInfo]:
        """Segments with their member episode ids, in order; ``sessions``: only theirs."""
        sql = (
            "SELECT s.id, s.session_id, s.summary, s.first_seq, s.last_seq, e.id FROM segments s JOIN episodes e "
            "ON e.user_id = s.user_id AND e.session_id IS s.session_id AND e.seq BETWEEN s.first_seq AND s.last_seq "
            "WHERE s.user_id = ?"
        )
        if sessions is None:
            parts: list[tuple[str, tuple[Any, ...]]] = [(sql, (user_id,))]
        else:
            named = [x for x in dict.fromkeys(sessions) if x is not None]
            parts = [
                (sql + f" AND s.session_id IN ({','.join('?' * len(named[i : i + 500]))})", (user_id, *named[i : i + 500]))
                for i in range(0, len(named), 500)
            ]
            if None in sessions:
                parts.append((sql + " AND s.session_id IS NULL", (user_id,)))
        rows = [r for q, params in parts for r in self.s.query(q + " ORDER BY s.first_seq, e.seq", params)]
        rows.sort(key=lambda r: int(r[3]))  # chunks read apart: in order again (stable within a segment)
        out: dict[str, tuple[Any, list[str]]] = {}
        for sid, session, summary, first, last, eid in rows:
            out.setdefault(sid, ((sid, session, summary, int(first), int(last)), []))[1].append(eid)
        return [SegmentInfo(h[0], h[1], tuple(eids), h[2], h[3], h[4]) for h, eids in out.values()]

    def session_spans(self, user_id: str) -> dict[str | None, tuple[str, str, int]]:
        """Session -> (first and last time said, last seq) of its episodes."""
        return {
            r[0]: (str(r[1]), str(r[2]), int(r[3]))
            for r in self.s.query(
                "SELECT session_id, MIN(occurred_at), MAX(occurred_at), MAX(seq) FROM episodes WHERE user_id = ? "
                "GROUP BY session_id",
                (user_id,),
            )
        }

    def topic_mentions(self, user_id: str, limit: int, exclude: Sequence[str] = ()) -> list[tuple[str, str, str | None, str, int]]:
        """(entity, kind, session, episode id, seq) of every mention of the ``limit`` entities
        named in the most sessions (at least two; ``exclude``: names left out, the speakers)."""
        skip = [n.lower() for n in exclude] or [""]
        marks = ",".join("?" * len(skip))
        top = self.s.query(
            "SELECT en.rowid FROM entities en JOIN entity_links l ON l.entity_rowid = en.rowid AND l.user_id = en.user_id "
            "JOIN episodes e ON e.rowid = l.episode_rowid AND e.user_id = l.user_id "
            f"WHERE en.user_id = ? AND e.status = 'active' AND lower(en.name) NOT IN ({marks}) AND en.name NOT IN {_ROLES} "
            "GROUP BY en.rowid HAVING COUNT(DISTINCT e.session_id) >= 2 "
            "ORDER BY COUNT(DISTINCT e.session_id) DESC, en.rowid LIMIT ?",
            (user_id, *skip, limit),
        )
        ids = [int(r[0]) for r in top]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return [
            (str(r[0]), str(r[1]), r[2], str(r[3]), int(r[4]))
            for r in self.s.query(
                "SELECT DISTINCT en.name, en.kind, e.session_id, e.id, e.seq FROM entities en JOIN entity_links l "
                "ON l.entity_rowid = en.rowid AND l.user_id = en.user_id JOIN episodes e ON e.rowid = l.episode_rowid "
                f"AND e.user_id = l.user_id WHERE en.user_id = ? AND en.rowid IN ({marks}) AND e.status = 'active' "
                "ORDER BY e.seq",
                (user_id, *ids),
            )
        ]

    def texts_of(self, user_id: str, episode_ids: Sequence[str]) -> dict[str, str]:
        """Episode id -> its text, for the user's episodes among ``episode_ids``."""
        out: dict[str, str] = {}
        ids = list(dict.fromkeys(episode_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            out.update({str(r[0]): str(r[1]) for r in self.s.query(  # by id alone (see SQLStore._record_uses)
                f"SELECT id, content, user_id FROM episodes WHERE id IN ({','.join('?' * len(chunk))})", chunk,
            ) if r[2] == user_id})
        return out

    def speakers(self, user_id: str) -> list[str]:
        """The names speakers have in the user's episodes."""
        return [str(r[0]) for r in self.s.query(
            "SELECT DISTINCT name FROM episodes WHERE user_id = ? AND name IS NOT NULL", (user_id,)
        )]

    def speakers_after(self, user_id: str, after_seq: int = 0) -> tuple[list[str], int]:
        """The names speakers have in the user's episodes past ``after_seq``, and the last seq
        (read by the user's seq index: only the episodes added since)."""
        rows = self.s.query(
            "SELECT name, MAX(seq) FROM episodes WHERE user_id = ? AND seq > ? GROUP BY name", (user_id, after_seq)
        )
        return [str(r[0]) for r in rows if r[0] is not None], max((int(r[1]) for r in rows), default=after_seq)

    def summaries(self, user_id: str, level: str | None = None) -> list[Node]:
        sql = ("SELECT id, level, key, title, text, children, episodes, last_seq, updated_at FROM summaries "
               "WHERE user_id = ? AND level <> 'root'")
        params: list[Any] = [user_id]
        if level is not None:
            sql += " AND level = ?"
            params.append(level)
        return [
            Node(r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), tuple(json.loads(r[6])), int(r[7]), r[0], r[8])
            for r in self.s.query(sql + " ORDER BY level, key", params)
        ]

    def tree_seq(self, user_id: str) -> int | None:
        """The consolidated seq the tree was last brought up to; None if never built, or if a
        delete took nodes away since (the next read builds the upper levels again)."""
        rows = self.s.query("SELECT last_seq, text FROM summaries WHERE user_id = ? AND level = 'root'", (user_id,))
        return int(rows[0][0]) if rows and rows[0][1] != "stale" else None

    def stale_sessions(self, user_id: str, after_seq: int) -> list[str | None]:
        """Sessions with episodes consolidated past ``after_seq``, or with segments but no node
        (repaired after a delete)."""
        rows = self.s.query(
            "SELECT DISTINCT session_id FROM episodes WHERE user_id = ? AND seq > ? AND seq <= ? "
            "UNION SELECT DISTINCT s.session_id FROM segments s WHERE s.user_id = ? AND NOT EXISTS (SELECT 1 FROM "
            "summaries m WHERE m.user_id = s.user_id AND m.level = 'session' AND m.key = COALESCE(s.session_id, ''))",
            (user_id, after_seq, self.last_seq(user_id), user_id),
        )
        return [r[0] for r in rows]

    def save_tree(self, user_id: str, nodes: Sequence[Node], sessions: Sequence[str | None], up_to: int) -> None:
        """Replace the nodes of ``sessions`` and every topic and person node with ``nodes``, in
        one transaction, and record that the tree is up to ``up_to``."""
        now = iso(now_utc())
        with self.s.transaction(user_id) as c:
            keys = [s or "" for s in sessions]
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                c.execute(
                    f"DELETE FROM summaries WHERE user_id = ? AND level = 'session' AND key IN ({','.join('?' * len(chunk))})",
                    (user_id, *chunk),
                )
            c.execute("DELETE FROM summaries WHERE user_id = ? AND level IN ('topic', 'person', 'root')", (user_id,))
            rows = [
                (make_id("sum_"), user_id, n.level, n.key, n.title, n.text, json.dumps(list(n.children)),
                 json.dumps(list(n.episodes)), n.last_seq, now)
                for n in [*nodes, Node("root", "", "", "", last_seq=up_to)]
            ]
            c.executemany(
                "INSERT INTO summaries(id, user_id, level, key, title, text, children, episodes, last_seq, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def entities(self, user_id: str) -> list[Entity]:
        rows = self.s.query(
            "SELECT en.id, en.name, en.kind, en.aliases, COUNT(DISTINCT l.fact_rowid), COUNT(DISTINCT l.episode_rowid) "
            "FROM entities en LEFT JOIN entity_links l ON l.entity_rowid = en.rowid AND l.user_id = en.user_id WHERE en.user_id = ? "
            "GROUP BY en.rowid ORDER BY en.name",
            (user_id,),
        )
        return [Entity(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows]

    def forget_episode(self, c: Any, ep_rowid: int, owner: str) -> None:
        """Repair what was derived from an episode about to be deleted (inside the delete's
        transaction, :meth:`SQLStore.delete_episode`'s ``before``)."""
        # Semantic memory: facts drawn only from this episode go (reopening what they
        # superseded); facts with other sources keep those, and keep a key on one of them.
        for frow, fid in c.execute(
            "SELECT f.rowid, f.id FROM facts f JOIN fact_sources fs ON fs.fact_rowid = f.rowid AND fs.user_id = f.user_id "
            "WHERE fs.user_id = ? AND fs.episode_rowid = ?",
            (owner, ep_rowid),
        ).fetchall():
            other = c.execute(
                "SELECT episode_rowid FROM fact_sources WHERE fact_rowid = ? AND episode_rowid != ? LIMIT 1",
                (frow, ep_rowid),
            ).fetchone()
            if other is None:
                self._drop_fact(c, fid)
            else:
                c.execute(
                    "UPDATE units SET episode_rowid = ? WHERE fact_rowid = ? AND episode_rowid = ? AND NOT EXISTS "
                    "(SELECT 1 FROM units WHERE fact_rowid = ? AND episode_rowid != ?)",
                    (other[0], frow, ep_rowid, frow, ep_rowid),
                )
        # The summary tree: nodes that cite the episode go, and are built again from what is
        # left on the next read (consolidate.tree.refresh); its segment is repaired below.
        eid = c.execute("SELECT id FROM episodes WHERE rowid = ?", (ep_rowid,)).fetchone()
        if eid is not None:
            gone = c.execute(
                "DELETE FROM summaries WHERE user_id = ? AND level <> 'root' AND episodes LIKE ?",
                (owner, f'%"{eid[0]}"%'),
            )
            if gone.rowcount:  # the upper levels are drawn from all sessions: built again in full
                c.execute("UPDATE summaries SET text = 'stale' WHERE user_id = ? AND level = 'root'", (owner,))
        # Entities named only by what goes: their links go with the episode, and then they do.
        # Either moves the entity counter (recall keeps the links in memory until it moves).
        linked = c.execute("DELETE FROM entity_links WHERE episode_rowid = ?", (ep_rowid,)).rowcount
        if c.execute(
            "DELETE FROM entities WHERE user_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM entity_links l WHERE l.entity_rowid = entities.rowid)",
            (owner,),
        ).rowcount or linked:
            _entities_changed(c, owner)
        # A segment summarised by this episode gets its summary from the next member left
        # (the summary quotes the deleted text); a segment with no member left goes.
        for srow, sid, first, last in c.execute(
            "SELECT rowid, session_id, first_seq, last_seq FROM segments WHERE summary_episode_rowid = ?", (ep_rowid,)
        ).fetchall():
            nxt = c.execute(
                "SELECT rowid, content FROM episodes WHERE user_id = ? AND session_id IS ? AND seq BETWEEN ? AND ? "
                "AND rowid != ? ORDER BY seq LIMIT 1",
                (owner, sid, first, last, ep_rowid),
            ).fetchone()
            if nxt is None:
                c.execute("DELETE FROM segments WHERE rowid = ?", (srow,))
            else:
                c.execute(
                    "UPDATE segments SET summary = ?, summary_episode_rowid = ? WHERE rowid = ?",
                    (first_sentence(nxt[1]), nxt[0], srow),
                )

    @staticmethod
    def _drop_fact(c: Any, fact_id: str) -> None:
        """Delete a fact and its key units, and reopen what it superseded."""
        frow = c.execute("SELECT rowid, user_id FROM facts WHERE id = ?", (fact_id,)).fetchone()
        if frow is None:
            return
        if c.execute("SELECT 1 FROM entity_links WHERE fact_rowid = ? LIMIT 1", (frow[0],)).fetchone():
            _entities_changed(c, frow[1])  # its links go with it (see forget_episode)
        c.execute("DELETE FROM units WHERE fact_rowid = ?", (frow[0],))
        c.execute(
            "UPDATE facts SET status = 'current', valid_to = NULL, superseded_at = NULL, superseded_by = NULL "
            "WHERE superseded_by = ?",
            (fact_id,),
        )
        c.execute("DELETE FROM facts WHERE rowid = ?", (frow[0],))


def _aliases(stored: str) -> list[str]:
    """An entity's aliases from their JSON. Consolidation reads every entity of the user at each
    add; most have none, and decoding "[]" 50k times was most of an add's cost at 100k episodes."""
    if stored == "[]":
        return []
    out: list[str] = json.loads(stored)
    return out


def _entities_changed(c: Any, user_id: str, counter: str = "entity_version") -> None:
    """Bump one of the user's entity counters (see ``entity_state``), in the caller's
    transaction: ``entity_version`` for deletions, ``alias_version`` for a new alias."""
    assert counter in ("entity_version", "alias_version")
    c.execute(f"UPDATE users SET {counter} = {counter} + 1 WHERE user_id = ?", (user_id,))
