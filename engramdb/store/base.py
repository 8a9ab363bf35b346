"""The narrow storage protocol ``Memory`` talks to, and the records that cross it.

A backend stores episodes, their recall units, vectors and a full-text index, and answers a
handful of scoped queries. Ranking happens above it, in :mod:`engramdb.recall`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from ..encode.timex import TimeMention
from ..model import Episode, StoreStats


@dataclass
class NewUnit:
    ord: int
    start: int
    end: int
    text: str
    speaker: str
    vector_hash: str | None


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
    units: list[NewUnit] = field(default_factory=list)
    times: list[TimeMention] = field(default_factory=list)


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


class Store(Protocol):
    """What a storage backend implements. All reads and writes are scoped by user_id."""

    dialect: str

    def close(self) -> None: ...

    def user_version(self, user_id: str) -> int | None:
        """A counter bumped by every write for the user; None if the user is unknown."""

    def add_episodes(
        self, user_id: str, episodes: Sequence[NewEpisode], model: str | None, vectors: dict[str, np.ndarray]
    ) -> None:
        """Persist episodes, units, new vectors and index entries in one transaction."""

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None: ...

    def get_episode(self, episode_id: str) -> Episode | None: ...

    def episodes_by_rowid(self, rowids: Sequence[int]) -> dict[int, Episode]: ...

    def timeline(
        self, user_id: str, start_ts: float | None, end_ts: float | None, limit: int
    ) -> list[Episode]:
        """Episodes that happened or mention a time within [start_ts, end_ts], by event time."""

    def list_episodes(
        self,
        user_id: str,
        *,
        session_id: str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Episode]: ...

    def delete_episode(self, user_id: str | None, episode_id: str) -> bool: ...

    def scope_rows(self, user_id: str, model: str | None, after_unit: int = 0, after_seq: int = 0) -> ScopeRows:
        """Units with rowid > after_unit and episodes with seq > after_seq, in order."""

    def unit_count(self, user_id: str) -> int: ...

    def segment_rows(self, user_id: str, after_segment: int = 0) -> SegmentRows:
        """Segments with rowid > after_segment and their member episodes."""

    def segment_count(self, user_id: str) -> int: ...

    def episode_vectors(self, user_id: str, model: str, rowids: Sequence[int]) -> dict[int, np.ndarray]: ...

    def unit_spans(self, rowids: Sequence[int]) -> dict[int, tuple[int, int, int, int]]:
        """unit rowid -> (episode rowid, ord, start char, end char) of passages (not keys)."""

    def users(self) -> list[str]: ...

    def iter_episodes(self, user_id: str | None = None) -> Iterator[Episode]: ...

    def stats(self, user_id: str | None = None) -> StoreStats: ...
