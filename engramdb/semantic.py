"""The vocabulary of semantic memory, shared by extraction, consolidation and storage.

Predicates and their groups, the kinds of fact, and the records that cross from one layer to
the next: a :class:`FactDraft` (what an extractor read in a message), a :class:`Known` fact
(what a decision sees of current memory) and a :class:`Decision` (what to do with a draft).
Storage imports these, not the layers that make them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Predicates that hold one value at a time: a new value supersedes the old one.
SINGLE_VALUED = frozenset(
    {"lives_in", "works_at", "job_title", "age", "diet", "name", "studies", "relationship_status"}
)
#: Profile group of each predicate.
CATEGORY = {
    "name": "identity", "age": "identity", "from": "identity", "diet": "identity", "birthday": "identity",
    "works_at": "work", "job_title": "work", "studies": "work",
    "lives_in": "places", "visited": "places",
    "has_pet": "relationships", "has_relation": "relationships", "relationship_status": "relationships",
    "likes": "preferences", "dislikes": "preferences", "prefers": "preferences", "favorite": "preferences",
    "allergic_to": "preferences", "habit": "preferences",
    "plans": "plans", "owns": "possessions",
    "does": "activities", "attended": "activities",
    "says": "statements",
}
#: The predicate of a statement: a sentence in which the speaker tells of themselves or their
#: world, kept verbatim (text: the sentence; object: its :func:`said_key`) — see :class:`RuleExtractor`.
STATEMENT = "says"
FACT_KINDS = frozenset({"fact", "preference", "statement"})
PREFERENCE_PREDICATES = frozenset({"likes", "dislikes", "prefers", "favorite", "allergic_to", "habit", "diet"})


@dataclass(frozen=True)
class FactDraft:
    subject: str
    predicate: str
    object: str
    text: str  # the fact as a sentence, e.g. "Ana lives in Munich"
    negated: bool = False
    confidence: float = 0.8
    qualifier: str = ""  # e.g. the thing a favourite is of ("favorite" + "color")

    @property
    def kind(self) -> str:
        if self.predicate == STATEMENT:
            return "statement"
        return "preference" if self.predicate in PREFERENCE_PREDICATES else "fact"

    @property
    def category(self) -> str:
        return CATEGORY.get(self.predicate, "other")

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two facts "the same slot" (object aside)."""
        return (self.subject.lower(), self.predicate, self.qualifier.lower())


@dataclass(frozen=True)
class Known:
    """A current fact as decisions see it."""

    id: str
    subject: str
    predicate: str
    qualifier: str
    object: str


@dataclass
class Decision:
    action: str  # merge | retract | add | ignore
    draft: FactDraft
    merge_into: str | None = None
    closes: list[str] = field(default_factory=list)  # ids of facts this supersedes/retracts
    new_id: str | None = None  # id of the fact an "add" creates (assigned before storing)
