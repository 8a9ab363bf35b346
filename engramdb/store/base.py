"""The narrow storage protocol ``Memory`` talks to, and the records that cross it.

A backend stores episodes, their recall units, vectors and a full-text index, and answers a
handful of scoped queries. Ranking happens above it, in :mod:`engramdb.recall`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Protocol, Sequence

import numpy as np

from ..encode.timex import TimeMention
from ..model import Change, Entity, Episode, Fact, Segment, StoreStats, Summary
from ..semantic import Decision, Known, SegmentInfo


@dataclass
class NewUnit:
    ord: int
    start: int
    end: int
    text: str
    speaker: str
    vector_hash: str | None
    terms: bytes | None = None  # encode_terms(text), if the caller has it


#: Entity names that are a role, not a person or thing: no walk goes through them.
ROLES = ("user", "assistant", "system", "tool")


class Stale(Exception):
    """An episode an add counted on was deleted meanwhile: nothing was written, do it again."""


@dataclass
class NewEpisode:
    id: str
    agent_id: str | None
    session_id: str | None
    role: str | None
    name: str | None
    content: str
    occurred_at: datetime
    recorded_at: datetime
    place: str | None
    metadata: dict[str, Any]
    importance: float
    content_hash: str
    units: Sequence[NewUnit] = ()  # shared, not copied: treated as read-only
    times: list[TimeMention] = field(default_factory=list)
    source: str = "user"  # who wrote it (engramdb.guard.SOURCES)
    writer: str | None = None  # through what: an import, an API key…
    flag: tuple[float, tuple[str, ...]] | None = None  # (score, reasons): stored quarantined
    importance_given: bool = True  # False: estimated (consolidation may refine it)
    same_as: str | None = None  # the id of the episode it repeats, found before (see Store.same_episodes)
    gist: bytes | None = None  # lifecycle.gist(content, name), if the caller has it


@dataclass
class ScopeRows:
    """Everything recall keeps in memory for one user: one row per unit and per episode."""

    unit_rowid: np.ndarray  # int64 [U]
    unit_episode: np.ndarray  # int64 [U], episode rowid
    unit_is_key: np.ndarray  # bool [U], a derived key (a fact) rather than a passage of the text
    unit_is_statement: np.ndarray  # bool [U], a key that is a statement (a sentence as said)
    unit_is_preference: np.ndarray  # bool [U], a key of a preference (likes, dislikes, habits…)
    unit_vector: np.ndarray  # float32 [U, D], zero rows where has_vector is False
    has_vector: np.ndarray  # bool [U]
    unit_terms: list[bytes]  # [U], full-text terms (engramdb.index.lexical.encode_terms)
    unit_speaker: list[str]  # [U]
    episode_rowid: np.ndarray  # int64 [E], ordered by seq
    episode_session: list[str | None]
    episode_speaker: list[str]  # [E], name or role (as the units' speaker)
    episode_by_assistant: np.ndarray  # bool [E], the role is "assistant"
    episode_ts: np.ndarray  # float64 [E], occurred_at as epoch seconds
    episode_recorded_ts: np.ndarray  # float64 [E]
    episode_seq: np.ndarray  # int64 [E]
    episode_event_lo: np.ndarray  # float64 [E], earliest resolved time mentioned (NaN: none)
    episode_event_hi: np.ndarray  # float64 [E], latest (end of day)


@dataclass
class SegmentRows:
    """Segments (runs of episodes about one topic, from consolidation) and their member
    episodes; recall pools the members' passages (terms, vectors) from what it already holds."""

    segment_rowid: np.ndarray  # int64 [S], ascending
    member_segment: np.ndarray  # int64 [M], index into segment_rowid
    member_episode: np.ndarray  # int64 [M], episode rowid


#: Capabilities a store may declare (``Store.capabilities``), instead of callers checking its class.
SEMANTIC = "semantic"  # keeps semantic memory: ``Store.semantic()`` gives its SemanticStore
PERSISTENT_INDEX = "persistent_index"  # recall indexes can be saved at ``Store.index_dir``


class SemanticStore(Protocol):
    """Semantic memory's storage: facts (bi-temporal, with sources) and statements, the change
    log with undo, entities and segments. Reads and writes are scoped by user_id."""

    def last_seq(self, user_id: str) -> int:
        """The last episode (seq) consolidated for the user."""

    def pending(self, user_id: str, limit: int = 5000) -> list[tuple[int, int, Episode]]:
        """Episodes not consolidated yet: (rowid, seq, episode), in order."""

    def consolidated(self, user_id: str, after_seq: int, limit: int = 5000) -> list[tuple[int, int, Episode]]:
        """Episodes consolidated already, past ``after_seq``: (rowid, seq, episode), in order."""

    def replace_mentions(self, user_id: str, mentions: Sequence[tuple[int, str, str, str | None]]) -> int:
        """Replace the user's mention edges with ``mentions`` in one transaction."""

    def current(self, user_id: str, said: Sequence[str]) -> list[Known]:
        """Current facts a consolidation can touch (all facts; the statements in ``said``)."""

    def facts(
        self, user_id: str, *, status: str | None = "current", subject: str | None = None,
        predicate: str | None = None, episode_ids: Sequence[str] | None = None, kinds: Sequence[str] | None = None,
        object_like: Sequence[str] = (), amounts_only: bool = False,
    ) -> list[Fact]: ...

    def get(self, fact_id: str, user_id: str | None = None) -> Fact: ...

    def history(self, fact_id: str, user_id: str | None = None) -> list[Fact]: ...

    def changes(self, user_id: str, limit: int = 100) -> list[Change]: ...

    def segments(self, user_id: str, session_id: str | None = None) -> list[Segment]: ...

    def entities(self, user_id: str) -> list[Entity]: ...

    def graph_links_after(self, user_id: str, after_rowid: int = 0) -> list[tuple[int, int, int, bool]]:
        """(link rowid, entity rowid, episode rowid, is a role) of the user's links to episodes
        past ``after_rowid``, in rowid order. Every deletion of a link moves ``entity_state``."""
        ...

    def place_links(self, user_id: str, episode_rowids: Sequence[int]) -> dict[int, set[str]]:
        """Episode rowid -> the places (lower case) it is tagged with."""
        ...

    def episode_entities(self, user_id: str, episode_ids: Sequence[str]) -> dict[str, list[tuple[str, str, list[str]]]]:
        """Episode id -> (name, kind, aliases) of the entities it mentions, first linked first."""
        ...

    def placed_episodes(self, user_id: str, place: str) -> set[str]:
        """Ids of the user's episodes tagged with ``place`` or given it."""
        ...

    # the summary tree (engramdb.consolidate.tree)
    def tree_segments(self, user_id: str, sessions: Sequence[str | None] | None = None) -> list[SegmentInfo]:
        """Segments with their member episode ids, in order; ``sessions``: only theirs."""
        ...

    def session_spans(self, user_id: str) -> dict[str | None, tuple[str, str, int]]:
        """Session -> (first and last time said, last seq)."""
        ...

    def topic_mentions(self, user_id: str, limit: int, exclude: Sequence[str] = ()) -> list[tuple[str, str, str | None, str, int]]:
        """(entity, kind, session, episode id, seq) of the mentions of the entities named in the most sessions."""
        ...

    def speakers(self, user_id: str) -> list[str]: ...

    def speakers_after(self, user_id: str, after_seq: int = 0) -> tuple[list[str], int]:
        """The names speakers have in the user's episodes past ``after_seq``, and the last seq."""
        ...

    def texts_of(self, user_id: str, episode_ids: Sequence[str]) -> dict[str, str]: ...

    def summaries(self, user_id: str, level: str | None = None) -> list[Summary]: ...

    def tree_seq(self, user_id: str) -> int | None:
        """The consolidated seq the tree was brought up to, None if never built."""
        ...

    def stale_sessions(self, user_id: str, after_seq: int) -> list[str | None]: ...

    def save_tree(self, user_id: str, nodes: Sequence[Summary], sessions: Sequence[str | None], up_to: int) -> None:
        """Replace the nodes of ``sessions`` and all topic and person nodes, in one transaction."""
        ...

    def entity_state(self, user_id: str) -> tuple[str, str, int, int] | None:
        """(database id, user's creation date, deletions counter, new aliases counter) of the
        user's entities (None: no such user)."""
        ...

    def aliased_entities(self, user_id: str) -> list[tuple[int, str, str, list[str]]]:
        """(rowid, name, kind, aliases) of the user's entities that have aliases, in order."""
        ...

    def entities_after(self, user_id: str, after_rowid: int = 0) -> list[tuple[int, str, str, list[str]]]:
        """(rowid, name, kind, aliases) of the user's entities past ``after_rowid``, in order."""
        ...

    def entity_names(self, user_id: str, facts_only: bool = False) -> list[tuple[str, str, list[str]]]:
        """(name, kind, aliases) of the user's entities: what a consolidation resolves mentions
        against (``facts_only``: those a fact names, what a rebuild of the mentions starts from)."""

    def related_rows(self, user_id: str, episode_id: str) -> list[tuple[int, str, str, int]]:
        """(other episode rowid, reason, detail, entity degree) of the episodes linked to one."""

    def graph_rows(
        self, user_id: str, around: str | None, limit: int
    ) -> tuple[list[tuple[int, str, str, str, list[str]]], list[tuple[int, int | None, int | None]]]:
        """Entities and (entity, episode, fact) links of the user's graph, around one entity or its busiest."""

    def fact_labels(self, user_id: str, rowids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """Fact rowid -> (id, text)."""

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
        """Store a consolidation's decisions in one transaction (None: another did it first;
        ``first_seq=None``: episodes released from quarantine, consolidated out of order);
        ``mentions``: (episode rowid, entity name, kind, a new alias or None) edges of the graph;
        ``importance``: (episode rowid, estimated importance) as ``set_importance`` sets it."""

    def undo(self, change_id: str, user_id: str | None = None) -> Change: ...

    def forget_episode(self, c: Any, ep_rowid: int, owner: str) -> None:
        """Repair what was derived from an episode, inside the transaction that deletes it."""


class Store(Protocol):
    """What a storage backend implements. All reads and writes are scoped by user_id."""

    dialect: str
    capabilities: frozenset[str]
    read_only: str | None  # why writes are refused (e.g. "the file is read-only"); None: they are not

    def semantic(self) -> SemanticStore:
        """The semantic-memory store sharing this store's database (capability ``semantic``)."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query written in the stores' shared SQL (SQLite's dialect; a backend
        translates it): for tools that read every table (``engramdb migrate``), never for callers' SQL."""

    def transaction(self, user_id: str | None = None) -> ContextManager[Any]:
        """A write transaction yielding a connection that runs the shared SQL."""

    def applied(self) -> list[str]:
        """Names of the schema migrations applied."""

    def close(self) -> None: ...

    def read_transaction(self) -> ContextManager[None]:
        """Reads made inside see one state of the store (a refresh reads several tables)."""

    def user_version(self, user_id: str) -> int | None:
        """A counter bumped by every write for the user; None if the user is unknown."""

    @property
    def index_dir(self) -> Path | None:
        """Where recall indexes may be saved for this store (None: nowhere, rebuilt per process)."""

    def store_id(self) -> str:
        """A random id the store keeps for life (a saved index names the store it came from)."""

    def embedder_model(self) -> str | None:
        """The model the store's vectors were made with (None: no vectors yet)."""

    def embed_texts(self) -> list[tuple[str, str]]:
        """(vector hash, embedded text) of every unit with a vector (to re-embed them)."""

    def replace_vectors(self, old_model: str | None, model: str, vectors: dict[str, np.ndarray]) -> None:
        """Swap the store's vectors for ``model``'s, in one transaction."""

    def journal(self, user_id: str, after: int) -> list[tuple[int, str]]:
        """(seq, kind) of the user's writes after version ``after``: ``add`` and ``consolidate``
        only append rows; ``status`` changes which episodes are quarantined; ``delete``,
        ``undo`` and ``rebuild`` remove or rewrite rows."""

    def add_episodes(
        self, user_id: str, episodes: Sequence[NewEpisode], model: str | None, vectors: dict[str, np.ndarray]
    ) -> dict[str, str]:
        """Persist episodes, units, new vectors and index entries in one transaction. An episode
        that repeats one the user has (same text, speaker, session, time, metadata) is stored as
        a second sighting of it: returns {new id: existing id} for those. An episode with
        ``same_as`` is only that sighting (nothing else of it is read); if that episode is gone
        by then, raises :class:`Stale` and writes nothing."""

    def same_episodes(self, user_id: str, keys: Sequence[tuple[str, str | None, str | None, str | None, str, str]]) -> list[str | None]:
        """For each (content hash, session, role, name, occurred at ISO, metadata JSON): the id of
        the user's episode that is the same message, or None."""

    def hidden_episodes(self, user_id: str) -> list[int]:
        """Row ids of the user's episodes recall must not show (quarantined)."""

    def record_uses(self, user_id: str, uses: dict[str, tuple[float, float]]) -> int:
        """Reinforce episodes (id -> (epoch seconds of the use, weight 0..1)): stability grows
        (engramdb.lifecycle)."""

    def strengths(self, user_id: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Active episodes: ids, stability (days), last use or forming (epoch s), importance."""

    def set_tier(self, user_id: str, episode_ids: Sequence[str], tier: str) -> list[str]:
        """Archive (``tier="archived"``) or restore (``"active"``) episodes; journals it."""

    def gists(self, user_id: str, archived_only: bool = True) -> tuple[list[int], list[bytes], list[bytes | None]]:
        """(rowid, gist, code) of the user's archived episodes (or of all not quarantined)."""

    def archive_bytes(self, user_id: str) -> tuple[int, int]:
        """(bytes recognition reads for archived episodes, bytes their recall index entries take)."""

    def make_codes(self, user_id: str, model: str) -> int:
        """Sign-bit codes of archived episodes' first-passage vectors, where missing."""

    def core_blocks(self, user_id: str) -> list[tuple[str, str, int, str]]:
        """Working memory: (label, value, max chars, updated at) of the user's blocks."""

    def core_write(
        self, user_id: str, label: str, op: str, edit: Callable[[str | None, int | None], tuple[str | None, int]]
    ) -> str:
        """Edit one block in a transaction (``edit`` maps the current value to the new); logged."""

    def core_changes(self, user_id: str, label: str | None, limit: int) -> list[tuple[Any, ...]]: ...

    def core_mark_undone(self, user_id: str, change_id: str) -> tuple[str, str | None, str | None] | None: ...

    def put_key(self, key_id: str, tenant: str, name: str, key_hash: str) -> None: ...

    def find_key(self, key_hash: str) -> tuple[str, str, str] | None:
        """(key id, tenant, name) of the active API key with this SHA-256, if any."""

    def list_keys(self) -> list[dict[str, Any]]: ...

    def revoke_key(self, key_id: str) -> bool: ...

    def get_policy(self, user_id: str) -> str | None: ...

    def set_policy(self, user_id: str, policy: str | None) -> None: ...

    def set_importance(self, updates: Sequence[tuple[int, float]]) -> None:
        """Estimated importance (rowid, value) of episodes not used yet."""

    def set_status(
        self, user_id: str, episode_id: str, status: str, flag: tuple[float, tuple[str, ...]] | None = None
    ) -> tuple[int, Episode] | None:
        """Quarantine (with ``flag``: score, reasons) or release one of the user's episodes; journal
        ``status``. Returns its rowid and the episode as it is now; None: the user has no such episode."""

    def flagged(self, user_id: str, limit: int) -> list[tuple[Episode, float, tuple[str, ...], datetime]]:
        """The user's quarantined episodes with their score, reasons and when they were flagged."""

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def vector_hashes(self, model: str, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` the store has a vector of (without reading the vectors)."""

    def put_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None: ...

    def episode_owners(self, ids: Sequence[str]) -> dict[str, str]:
        """episode id -> its user, for those of ``ids`` the store has."""

    def get_episode(self, episode_id: str) -> Episode | None: ...

    def episodes_by_rowid(self, rowids: Sequence[int]) -> dict[int, Episode]: ...

    def timeline(
        self, user_id: str, start_ts: float | None, end_ts: float | None, limit: int, place: str | None = None
    ) -> list[Episode]:
        """Episodes that happened or mention a time within [start_ts, end_ts], by event time;
        ``place``: only those given that place or tagged with it (case aside)."""

    def list_episodes(
        self,
        user_id: str,
        *,
        session_id: str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Episode]: ...

    def delete_episode(
        self, user_id: str | None, episode_id: str, before: Callable[[Any, int, str], None] | None = None
    ) -> bool:
        """Delete an episode and what the store derived from it, in one transaction, after
        ``before(connection, episode rowid, owner)`` (the layers above repair their own)."""

    def delete_episodes(
        self, user_id: str, episode_ids: Sequence[str], before: Callable[[Any, int, str], None] | None = None
    ) -> dict[str, int]:
        """Delete many of the user's episodes in one transaction; counts removed per table."""

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Remove every row left of a user (after their episodes); counts per table."""

    def checkpoint(self) -> bool:
        """Make deletions reach the file's bytes (WAL written back and truncated)."""

    def data_files(self) -> list[Path]:
        """Files holding the store's bytes (a deletion's residue check reads them)."""

    def episode_texts(self) -> Iterator[tuple[str, str]]:
        """(episode id, content) of every episode of every user."""

    def text_rows(self) -> Iterator[str]:
        """Every stored text, in chunks (a deletion's residue check reads them)."""

    def scope_rows(
        self, user_id: str, model: str | None, after_unit: int = 0, after_seq: int = 0, archived: bool = False,
        unit_limit: int | None = None, episodes: bool = True,
    ) -> ScopeRows:
        """Units with rowid > after_unit (the first ``unit_limit`` of them) and, with
        ``episodes``, episodes with seq > after_seq, in order; archived episodes only with
        ``archived``."""

    def segment_rows(self, user_id: str, after_segment: int = 0, archived: bool = False) -> SegmentRows:
        """Segments with rowid > after_segment and their member episodes (archived ones only
        with ``archived``)."""

    def episode_vectors(self, user_id: str, model: str, rowids: Sequence[int]) -> dict[int, np.ndarray]: ...

    def unit_spans(self, rowids: Sequence[int]) -> dict[int, tuple[int, int, int, int]]:
        """unit rowid -> (episode rowid, ord, start char, end char) of passages (not keys)."""

    def users(self) -> list[str]: ...

    def iter_episodes(self, user_id: str | None = None) -> Iterator[Episode]: ...

    def stats(self, user_id: str | None = None) -> StoreStats: ...
