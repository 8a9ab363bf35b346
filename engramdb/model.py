"""Typed records that cross the public API: episodes, hits and store statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from .encode.timex import TimeMention


@dataclass(frozen=True)
class Episode:
    """One message or event, kept verbatim, with who, when and where.

    ``timestamp`` is when it happened (event time, UTC); ``recorded_at`` is when this store
    learned it. ``metadata`` is the caller's dict, returned exactly as given.
    """

    id: str
    user_id: str
    text: str
    timestamp: datetime
    recorded_at: datetime
    session_id: str | None = None
    agent_id: str | None = None
    role: str | None = None
    name: str | None = None
    place: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    importance: float = 0.5
    strength: float = field(default=1.0, compare=False)  # at the time it was read: not part of equality
    status: str = "active"
    seq: int = 0  # position in the user's memory (insertion order)
    times: tuple[TimeMention, ...] = ()  # time expressions in text, resolved against timestamp
    source: str = "user"  # who wrote it: user, assistant, system, tool or document
    writer: str | None = None  # through what it came: e.g. "import:chats.jsonl", an API key's name
    stability: float = 10.5  # days (engramdb.lifecycle); ``strength`` is exp(-days unused / stability), now
    last_used: datetime | None = None  # the last recall that used it (None: never)
    uses: int = 0
    sightings: int = 1  # times the same message was stored (merged into this one)

    @property
    def event_time(self) -> datetime:
        """When what it tells happened: its first resolved time expression, else its timestamp."""
        if self.times:
            d = self.times[0].start
            return datetime(d.year, d.month, d.day, tzinfo=self.timestamp.tzinfo)
        return self.timestamp

    @property
    def speaker(self) -> str | None:
        """The speaker's name if given, else the role."""
        return self.name or self.role

    def to_dict(self) -> dict[str, Any]:
        """The one serialisation (:mod:`engramdb.wire`), as the CLI, REST API and Client use it."""
        return _dump(self)


@dataclass(frozen=True)
class Hit:
    """One recalled item: the text to hand an LLM, how it scored, and where it came from.

    ``episodes`` are exactly the episodes ``text`` was taken from, in conversation order, and
    ``passages`` the text taken from each (a long message contributes only its passages that
    bear on the query); ``text`` joins them. ``signals`` is the score breakdown: ``lexical``
    and ``dense`` normalised to 0..1 (``bm25``, ``cosine`` raw), ``relevance`` (their
    fusion), ``neighbours`` and ``session`` (support from the surrounding conversation),
    ``time`` and ``order`` (fit to a time named in the question, first/latest intent), and
    ``anchor`` = 1 on the event a "before/after <event>" question hangs on.
    """

    text: str
    score: float
    episodes: tuple[Episode, ...]
    passages: tuple[str, ...] = ()
    signals: dict[str, float] = field(default_factory=dict)
    kind: str = "episode"

    @property
    def timestamp(self) -> datetime:
        return self.episodes[0].timestamp

    @property
    def session_id(self) -> str | None:
        return self.episodes[0].session_id

    @property
    def metadata(self) -> dict[str, Any]:
        """Metadata of the first source episode (all of them are in ``episodes``)."""
        return self.episodes[0].metadata

    @property
    def episode_ids(self) -> list[str]:
        return [e.id for e in self.episodes]

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)


@dataclass(frozen=True)
class Relevance:
    """Is anything recalled relevant to the question at all? (see :mod:`engramdb.recall.relevance`)

    ``confidence`` in [0, 1]; ``relevant`` when it reaches the threshold; ``coverage`` the
    rarity-weighted share of the question's words the top hits hold; ``closeness`` the best
    cosine of the question to a passage of the top hits.
    """

    confidence: float
    relevant: bool
    coverage: float
    closeness: float

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)


class Hits(list[Hit]):
    """What ``search()`` returns: the hits, best first (a list), and ``relevance``: whether
    any of them bears on the question (``relevant``, ``confidence``).

    For a question about every instance of something ("how many weddings…", "how much did I
    spend in total…"), ``aggregate`` names it (count, sum, list, most) and ``instances`` are
    the hits that each tell one instance, one per telling (the same thing told twice is one
    hit citing both), gathered across sessions; each is among the first 10 hits.
    """

    relevance: Relevance
    aggregate: str | None
    instances: tuple[Hit, ...]

    def __init__(
        self, hits: Iterable[Hit] = (), relevance: Relevance | None = None, aggregate: str | None = None,
        instances: Iterable[Hit] = (),
    ) -> None:
        super().__init__(hits)
        self.relevance = relevance if relevance is not None else Relevance(float(bool(self)), bool(self), 0.0, 0.0)
        self.aggregate = aggregate
        self.instances = tuple(instances)

    @property
    def relevant(self) -> bool:
        return self.relevance.relevant

    @property
    def confidence(self) -> float:
        return self.relevance.confidence


@dataclass(frozen=True)
class Fact:
    """A semantic statement derived from episodes, bi-temporal and traceable.

    ``valid_from``/``valid_to``: when it held in the world; ``recorded_at``/``superseded_at``:
    when memory learned and retired it. ``status`` is current, superseded or retracted;
    ``superseded_by`` names the fact that replaced it. ``sources`` are episode ids.
    ``strength``: as strong as its strongest source episode now (0..1, :mod:`engramdb.lifecycle`):
    it decays with time since they were last used and grows when they are recalled (a hit made
    by the fact's key cites its source). ``sightings``: how many times it was told.
    """

    id: str
    user_id: str
    subject: str
    predicate: str
    object: str
    text: str
    kind: str
    category: str
    confidence: float
    recorded_at: datetime
    status: str = "current"
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    superseded_at: datetime | None = None
    superseded_by: str | None = None
    strength: float = 1.0
    qualifier: str = ""
    sources: tuple[str, ...] = ()
    sightings: int = 1
    amount: float | None = None  # a quantity the fact carries, in ``unit`` (see engramdb.encode.quantity)
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)


@dataclass(frozen=True)
class Change:
    """One consolidation step (add, merge, supersede, retract), which ``Memory.undo`` reverts."""

    id: str
    user_id: str
    kind: str
    fact_id: str | None
    created_at: datetime
    undone_at: datetime | None = None


@dataclass(frozen=True)
class Entity:
    """A person, place, organisation, pet or product named in a user's memory."""

    id: str
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    facts: int = 0
    episodes: int = 0


@dataclass(frozen=True)
class Related:
    """``Memory.related(episode_id)``: an episode linked to the one asked about, how strongly
    (``weight``), and why (``reasons``: "mentions Deborah", "same fact: …", "same segment")."""

    episode: Episode
    weight: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class GraphNode:
    """A node of the memory graph: an ``entity`` (``label`` its name, ``detail`` its kind and
    aliases), an ``episode`` (its text, shortened) or a ``fact``."""

    id: str
    kind: str
    label: str
    detail: str = ""


@dataclass(frozen=True)
class GraphEdge:
    """An edge of the memory graph and its reason: ``mentions`` (episode → entity), ``names``
    (fact → entity), ``source`` (fact → the episode it was drawn from)."""

    source: str
    target: str
    reason: str


@dataclass(frozen=True)
class MemoryGraph:
    """``Memory.graph()``: entities, episodes and facts, and the edges between them."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)


@dataclass(frozen=True)
class Segment:
    """A run of episodes of one session about one topic, with an extractive summary."""

    id: str
    session_id: str | None
    episode_ids: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class Summary:
    """A node of the summary tree (``Memory.summary``): its ``level`` (segment, session, topic,
    person), ``key`` (the segment id, session id, topic name or person), ``title``, ``text``,
    the keys of its ``children`` one level down and the ids of the ``episodes`` under it."""

    level: str
    key: str
    title: str
    text: str
    children: tuple[str, ...] = ()
    episodes: tuple[str, ...] = ()
    last_seq: int = 0
    id: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)


@dataclass(frozen=True)
class StoreStats:
    users: int
    episodes: int
    sessions: int
    units: int
    vectors: int
    cached_embeddings: int
    size_bytes: int
    schema_version: str
    facts: int = 0  # current facts
    embedder: str | None = None
    quarantined: int = 0  # episodes held back for review (see Memory.quarantined)

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)


@dataclass(frozen=True)
class Flagged:
    """A quarantined episode: held back from recall until a reviewer releases it.

    ``score`` and ``reasons`` are the poisoning check's (:mod:`engramdb.guard`); an episode
    quarantined by hand has reason ``"manual"``."""

    episode: Episode
    score: float
    reasons: tuple[str, ...]
    flagged_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)


@dataclass(frozen=True)
class CoreBlock:
    """A block of working memory the agent edits (``persona``, ``human``…): always placed first
    in ``context()``; ``limit`` is its size in characters."""

    label: str
    value: str
    limit: int
    updated_at: datetime


@dataclass(frozen=True)
class CoreChange:
    """One edit of a working-memory block (``set``, ``append``, ``replace``, ``delete``, ``undo``),
    with the text before and after; ``Memory.core_undo`` reverts it."""

    id: str
    label: str
    op: str
    before: str | None
    after: str | None
    limit: int
    at: datetime
    undone_at: datetime | None = None


@dataclass(frozen=True)
class Explanation:
    """``Memory.why(hit)``: the hit, the facts drawn from its episodes, and readable lines."""

    hit: Hit
    facts: tuple[Fact, ...]
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _dump(record: Any) -> dict[str, Any]:
    from .wire import dump  # wire knows every record; imported late (it imports this module)

    out: dict[str, Any] = dump(record)
    return out
