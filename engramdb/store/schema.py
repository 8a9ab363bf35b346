"""The one schema source: named migrations, applied in order, each in one transaction.

Backends differ only in dialect; a migration gives its SQL per dialect where they differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

MigrationFn = Callable[[str], list[str]]
#: A data step run after the statements, in the same transaction: (connection, dialect).
BackfillFn = Callable[[Any, str], None]


@dataclass(frozen=True)
class Migration:
    name: str
    statements: MigrationFn  # dialect -> SQL statements
    backfill: BackfillFn | None = None


MIGRATIONS: list[Migration] = []


def migration(name: str, backfill: BackfillFn | None = None) -> Callable[[MigrationFn], MigrationFn]:
    def decorate(fn: MigrationFn) -> MigrationFn:
        if any(m.name == name for m in MIGRATIONS):
            raise ValueError(f"duplicate migration {name}")  # programming error, import time
        MIGRATIONS.append(Migration(name, fn, backfill))
        return fn

    return decorate


@migration("0001_episodes")
def _m0001(dialect: str) -> list[str]:
    return [
        """CREATE TABLE users (
            user_id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE episodes (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL REFERENCES users(user_id),
            agent_id TEXT,
            session_id TEXT,
            seq INTEGER NOT NULL,
            role TEXT,
            name TEXT,
            content TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            occurred_ts REAL NOT NULL,
            recorded_at TEXT NOT NULL,
            recorded_ts REAL NOT NULL,
            place TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            importance REAL NOT NULL DEFAULT 0.5,
            strength REAL NOT NULL DEFAULT 1.0,
            status TEXT NOT NULL DEFAULT 'active',
            content_hash TEXT NOT NULL
        )""",
        "CREATE INDEX episodes_user_seq ON episodes(user_id, seq)",
        "CREATE INDEX episodes_user_session ON episodes(user_id, session_id, seq)",
        # A unit is what recall indexes: a passage of one episode (short episodes are one unit).
        """CREATE TABLE units (
            rowid INTEGER PRIMARY KEY,
            episode_rowid INTEGER NOT NULL REFERENCES episodes(rowid) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            ord INTEGER NOT NULL,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            text TEXT NOT NULL,
            speaker TEXT NOT NULL DEFAULT '',
            scope TEXT NOT NULL,
            vector_hash TEXT
        )""",
        "CREATE INDEX units_user ON units(user_id)",
        "CREATE INDEX units_episode ON units(episode_rowid)",
        "CREATE INDEX units_vector_hash ON units(vector_hash)",
        # Vectors by (model, hash of the embedded text): the unit vectors and the embedding cache.
        """CREATE TABLE vectors (
            model TEXT NOT NULL,
            hash TEXT NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (model, hash)
        ) WITHOUT ROWID""",
        # scope: one token per user (see store.sqlite.scope_token), so a MATCH is restricted to
        # one user's rows inside the index instead of filtering every user's matches after.
        """CREATE VIRTUAL TABLE units_fts USING fts5(
            text, speaker, scope, content='units', content_rowid='rowid',
            tokenize='porter unicode61 remove_diacritics 2'
        )""",
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
    ]


def schema_version() -> str:
    return MIGRATIONS[-1].name


@migration("0002_episode_times")
def _m0002(dialect: str) -> list[str]:
    # Time expressions found in an episode, resolved against its own time (encode.timex).
    return [
        """CREATE TABLE episode_times (
            episode_rowid INTEGER NOT NULL REFERENCES episodes(rowid) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            text TEXT NOT NULL,
            start_date TEXT NOT NULL,
            end_date TEXT NOT NULL,
            start_ts REAL NOT NULL,
            end_ts REAL NOT NULL,
            grain TEXT NOT NULL
        )""",
        "CREATE INDEX episode_times_episode ON episode_times(episode_rowid)",
        "CREATE INDEX episode_times_user_start ON episode_times(user_id, start_ts)",
    ]


@migration("0003_semantic")
def _m0003(dialect: str) -> list[str]:
    # Semantic memory derived from episodes: facts (bi-temporal, with sources), entities,
    # segments, and a log of consolidation changes that can be undone.
    return [
        """CREATE TABLE facts (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            subject TEXT NOT NULL,
            predicate TEXT NOT NULL,
            qualifier TEXT NOT NULL DEFAULT '',
            object TEXT NOT NULL,
            text TEXT NOT NULL,
            kind TEXT NOT NULL,
            category TEXT NOT NULL,
            confidence REAL NOT NULL,
            valid_from TEXT,
            valid_to TEXT,
            recorded_at TEXT NOT NULL,
            superseded_at TEXT,
            superseded_by TEXT,
            status TEXT NOT NULL DEFAULT 'current',
            strength REAL NOT NULL DEFAULT 1.0,
            extractor TEXT NOT NULL
        )""",
        "CREATE INDEX facts_user_slot ON facts(user_id, subject, predicate, status)",
        """CREATE TABLE fact_sources (
            fact_rowid INTEGER NOT NULL REFERENCES facts(rowid) ON DELETE CASCADE,
            episode_rowid INTEGER NOT NULL REFERENCES episodes(rowid) ON DELETE CASCADE,
            PRIMARY KEY (fact_rowid, episode_rowid)
        )""",
        "CREATE INDEX fact_sources_episode ON fact_sources(episode_rowid)",
        """CREATE TABLE entities (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            aliases TEXT NOT NULL DEFAULT '[]',
            UNIQUE (user_id, name)
        )""",
        """CREATE TABLE entity_links (
            entity_rowid INTEGER NOT NULL REFERENCES entities(rowid) ON DELETE CASCADE,
            episode_rowid INTEGER REFERENCES episodes(rowid) ON DELETE CASCADE,
            fact_rowid INTEGER REFERENCES facts(rowid) ON DELETE CASCADE
        )""",
        "CREATE INDEX entity_links_entity ON entity_links(entity_rowid)",
        "CREATE INDEX entity_links_episode ON entity_links(episode_rowid)",
        """CREATE TABLE segments (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            session_id TEXT,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            summary TEXT NOT NULL,
            summary_episode_rowid INTEGER REFERENCES episodes(rowid) ON DELETE SET NULL
        )""",
        "CREATE INDEX segments_user ON segments(user_id, session_id, first_seq)",
        """CREATE TABLE changes (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            fact_id TEXT,
            created_at TEXT NOT NULL,
            undone_at TEXT,
            before TEXT NOT NULL DEFAULT '[]',
            created TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX changes_user ON changes(user_id, rowid)",
        """CREATE TABLE consolidation (
            user_id TEXT PRIMARY KEY,
            last_seq INTEGER NOT NULL DEFAULT 0
        )""",
        # A unit may be a fact used as a recall key for its source episode.
        "ALTER TABLE units ADD COLUMN fact_rowid INTEGER REFERENCES facts(rowid) ON DELETE CASCADE",
    ]


def _backfill_terms(conn: Any, dialect: str) -> None:
    from ..index.lexical import encode_terms  # the index format lives with the index

    rows = conn.execute("SELECT rowid, text FROM units WHERE terms IS NULL").fetchall()
    conn.executemany("UPDATE units SET terms = ? WHERE rowid = ?", [(encode_terms(t), r) for r, t in rows])


@migration("0004_unit_terms", backfill=_backfill_terms)
def _m0004(dialect: str) -> list[str]:
    # Full text moves from FTS5 to an in-memory BM25 index (engramdb.index.lexical) built from
    # each unit's terms, stored beside it; the FTS5 table goes (units.scope, its per-user token,
    # stays as a dead column: SQLite before 3.35 cannot drop columns).
    return [
        "ALTER TABLE units ADD COLUMN terms BLOB",
        "DROP TABLE IF EXISTS units_fts",
    ]


@migration("0005_fact_key_index")
def _m0005(dialect: str) -> list[str]:
    # Fact keys are found by their fact (a merge copies the key to a new source; dropping a fact
    # drops its keys): index only the key units, not every passage.
    return ["CREATE INDEX units_fact ON units(fact_rowid) WHERE fact_rowid IS NOT NULL"]


@migration("0006_statement_index")
def _m0006(dialect: str) -> list[str]:
    # A statement merges only with the same sentence, looked up by its text: a history holds
    # tens of thousands of statements, and a consolidation must not read them all.
    return ["CREATE INDEX facts_said ON facts(user_id, object) WHERE predicate = 'says' AND status = 'current'"]


def _backfill_journal(conn: Any, dialect: str) -> None:
    # Readers that knew a user before the journal existed cannot tell what changed: one
    # "rebuild" entry at the user's current version tells them to load it afresh.
    conn.execute(
        "INSERT INTO journal(user_id, seq, kind, at) SELECT user_id, version, 'rebuild', created_at FROM users"
    )


@migration("0007_journal", backfill=_backfill_journal)
def _m0007(dialect: str) -> list[str]:
    # A per-user change log: every write appends (user, seq, kind), seq being the user's new
    # version. A process that holds a user's recall index at seq S reads the entries after S to
    # learn what other processes did: only appends (extend the index) or a removal (rebuild).
    return [
        """CREATE TABLE journal (
            user_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (user_id, seq)
        )""",
    ]


def _backfill_sources(conn: Any, dialect: str) -> None:
    # Episodes stored before sources were recorded: the role says who wrote them.
    conn.execute(
        "UPDATE episodes SET source = CASE WHEN role IN ('assistant', 'system') THEN role "
        "WHEN role IN ('tool', 'function') THEN 'tool' ELSE 'user' END"
    )


@migration("0008_sources", backfill=_backfill_sources)
def _m0008(dialect: str) -> list[str]:
    # Who wrote each episode (user, assistant, system, tool, document) and through what
    # (``writer``: an import, an API key); episodes the poisoning check flagged keep their
    # score and reasons in ``flags`` until a reviewer releases them. Quarantined episodes are
    # few: a partial index finds a user's in a glance.
    return [
        "ALTER TABLE episodes ADD COLUMN source TEXT NOT NULL DEFAULT 'user'",
        "ALTER TABLE episodes ADD COLUMN writer TEXT",
        """CREATE TABLE flags (
            episode_rowid INTEGER PRIMARY KEY REFERENCES episodes(rowid) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            score REAL NOT NULL,
            reasons TEXT NOT NULL,
            flagged_at TEXT NOT NULL,
            released_at TEXT
        )""",
        "CREATE INDEX flags_user ON flags(user_id)",
        "CREATE INDEX episodes_hidden ON episodes(user_id) WHERE status <> 'active'",
    ]


def _backfill_gists(conn: Any, dialect: str) -> None:
    # Every episode gets its gist (see engramdb.lifecycle.gist): recognition needs it for the
    # archived ones, which no index holds.
    from ..lifecycle import gist

    rows = conn.execute("SELECT rowid, content, name FROM episodes WHERE gist IS NULL").fetchall()
    conn.executemany("UPDATE episodes SET gist = ? WHERE rowid = ?", [(gist(text, name), rowid) for rowid, text, name in rows])


@migration("0009_lifecycle", backfill=_backfill_gists)
def _m0009(dialect: str) -> list[str]:
    # Strength (engramdb.lifecycle): a stability in days and the last time the episode was used
    # (NULL: never; its forming counts), how often it was used, whether its importance was given
    # or estimated; sightings of the same message stored again; the gist recognition reads.
    # Tiers live in ``status``: active, quarantined, archived. Policies per user ('*': default).
    return [
        "ALTER TABLE episodes ADD COLUMN stability REAL",
        "ALTER TABLE episodes ADD COLUMN last_used_ts REAL",
        "ALTER TABLE episodes ADD COLUMN uses INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE episodes ADD COLUMN importance_given INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE episodes ADD COLUMN sightings INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE episodes ADD COLUMN gist BLOB",
        "ALTER TABLE episodes ADD COLUMN code BLOB",
        "CREATE INDEX episodes_content ON episodes(user_id, content_hash)",
        "DROP INDEX episodes_hidden",
        "CREATE INDEX episodes_quarantined ON episodes(user_id) WHERE status = 'quarantined'",
        "CREATE INDEX episodes_archived ON episodes(user_id) WHERE status = 'archived'",
        """CREATE TABLE policies (
            user_id TEXT PRIMARY KEY,
            policy TEXT NOT NULL,
            set_at TEXT NOT NULL
        )""",
    ]


@migration("0010_keys")
def _m0010(dialect: str) -> list[str]:
    # API keys of `engramdb serve`: each belongs to a tenant, whose user ids are its own
    # namespace. Only a SHA-256 of the key is kept.
    return [
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )""",
    ]


@migration("0011_core_memory")
def _m0011(dialect: str) -> list[str]:
    # Working memory the agent edits (MemGPT/Letta's core memory): per user, named text blocks
    # with a size limit, every edit logged with the text before and after, so it can be undone.
    return [
        """CREATE TABLE core_blocks (
            user_id TEXT NOT NULL,
            label TEXT NOT NULL,
            value TEXT NOT NULL,
            max_chars INTEGER NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (user_id, label)
        )""",
        """CREATE TABLE core_changes (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            label TEXT NOT NULL,
            op TEXT NOT NULL,
            before TEXT,
            after TEXT,
            max_chars INTEGER NOT NULL,
            at TEXT NOT NULL,
            undone_at TEXT
        )""",
        "CREATE INDEX core_changes_user ON core_changes(user_id, label)",
    ]


def _backfill_link_users(conn: Any, dialect: str) -> None:
    conn.execute(
        "UPDATE fact_sources SET user_id = (SELECT f.user_id FROM facts f WHERE f.rowid = fact_sources.fact_rowid)"
    )
    conn.execute(
        "UPDATE entity_links SET user_id = (SELECT en.user_id FROM entities en WHERE en.rowid = entity_links.entity_rowid)"
    )


@migration("0012_link_users", backfill=_backfill_link_users)
def _m0012(dialect: str) -> list[str]:
    # Every table of a user's data carries the user id, and every join matches it: a database
    # distributed by user id (Citus) then finds each query's rows on one node. The two link
    # tables were the last without it.
    return [
        "ALTER TABLE fact_sources ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE entity_links ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
    ]


@migration("0013_structure")
def _m0013(dialect: str) -> list[str]:
    # Structured memory: a fact may carry an amount (money, a duration, a weight, a distance, a
    # count) in a normal unit, so queries can sum and count; and the summary tree (MemTree):
    # nodes of a level (segment, session, topic, person), each citing its children and episodes.
    return [
        "ALTER TABLE facts ADD COLUMN amount REAL",
        "ALTER TABLE facts ADD COLUMN unit TEXT",
        """CREATE TABLE summaries (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            level TEXT NOT NULL,
            key TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            children TEXT NOT NULL DEFAULT '[]',
            episodes TEXT NOT NULL DEFAULT '[]',
            last_seq INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            UNIQUE (user_id, level, key)
        )""",
        "CREATE INDEX summaries_user ON summaries(user_id, level)",
    ]


@migration("0014_entity_version")
def _m0014(dialect: str) -> list[str]:
    # Counters per user: one bumped when their entities are deleted, one when an entity gets a
    # new alias. Consolidation keeps the entities it resolves mentions against in memory and
    # reads only what changed (those added since, by rowid; the aliased ones when an alias was
    # added; all after a deletion), instead of every entity of the user at every add (most of
    # an add's cost at 100k episodes).
    return [
        "ALTER TABLE users ADD COLUMN entity_version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE users ADD COLUMN alias_version INTEGER NOT NULL DEFAULT 0",
    ]


@migration("0015_graph_links")
def _m0015(dialect: str) -> list[str]:
    # Recall keeps a user's entity-episode links in memory for the graph walk and reads only
    # the links added since (by rowid; all again when the user's entity_version moves: every
    # deletion of a link moves it). That read goes by user, then rowid.
    if dialect == "sqlite":  # an SQLite index holds the rowid after its columns, in order
        return ["CREATE INDEX entity_links_user ON entity_links(user_id)"]
    return ["CREATE INDEX entity_links_user ON entity_links(user_id, rowid)"]


@migration("0016_ingest_reads")
def _m0016(dialect: str) -> list[str]:
    # What each add reads, in a user of tens of thousands of entities and statements:
    # - which of its passages' vectors the file has already (the same text in another scope):
    #   in SQLite the vectors' own table holds 1.5 kB per row, two to a page, so looking up
    #   100 hashes read ~100 pages (0.9 ms); an index of the hashes reads a few (0.06 ms);
    # - the aliased entities, again whenever an entity got an alias (see 0014: a few hundred);
    # - the current facts other than statements (a few hundred; statements are read by sentence).
    # Partial indexes read just those, where the user's indexes read every entity or fact of
    # the user at each add.
    rowid = "" if dialect == "sqlite" else ", rowid"  # an SQLite index holds the rowid already
    return [
        *(["CREATE INDEX vectors_hash ON vectors(hash)"] if dialect == "sqlite" else []),
        f"CREATE INDEX entities_aliased ON entities(user_id{rowid}) WHERE aliases <> '[]'",
        f"CREATE INDEX facts_current ON facts(user_id{rowid}) WHERE status = 'current' AND predicate <> 'says'",
    ]
