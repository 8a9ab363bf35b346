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
    "plans": "plans", "owns": "possessions", "bought": "possessions",
    "spent": "amounts", "raised": "amounts",
    "does": "activities", "attended": "activities",
    "says": "statements",
}
#: The predicates of semantic memory: what :meth:`engramdb.Memory.query` accepts (or an alias of one,
#: see :func:`predicate_of`), with what each says. The object is a thing, a place or a name; a fact
#: may also carry an amount (``amount``/``unit``, see :mod:`engramdb.encode.quantity`).
PREDICATES = {
    "name": "the subject's name", "age": "the subject's age in years", "from": "where the subject comes from",
    "diet": "vegetarian, vegan…", "birthday": "the subject's birthday",
    "lives_in": "where the subject lives now (one at a time)", "visited": "a place the subject went to",
    "works_at": "the subject's employer (one at a time)", "job_title": "the subject's occupation",
    "studies": "what the subject studies",
    "has_pet": "a pet, by name (qualifier: the animal)", "has_relation": "a person, by relation (qualifier)",
    "relationship_status": "married, single…",
    "likes": "a taste", "dislikes": "a distaste", "prefers": "a preference", "favorite": "a favourite (qualifier: of what)",
    "allergic_to": "an allergy", "habit": "something done regularly",
    "plans": "an intention", "owns": "a possession (amount: how many)", "bought": "a purchase (amount: its price)",
    "spent": "money or time spent on the object", "raised": "money raised or donated for the object",
    "does": "a pastime practised", "attended": "an event or class attended",
    "says": "a sentence of the speaker's, verbatim (amount: the first amount in it)",
}
_PREDICATE_ALIASES = {
    "buy": "bought", "buys": "bought", "purchased": "bought", "purchase": "bought", "got": "bought",
    "live_in": "lives_in", "lives": "lives_in", "lived_in": "lives_in", "moved_to": "lives_in",
    "work_at": "works_at", "works_for": "works_at", "employer": "works_at", "job": "job_title",
    "like": "likes", "loves": "likes", "love": "likes", "enjoys": "likes", "dislike": "dislikes", "hates": "dislikes",
    "visit": "visited", "went_to": "visited", "traveled_to": "visited", "travelled_to": "visited", "been_to": "visited",
    "spend": "spent", "paid": "spent", "pay": "spent", "cost": "spent", "raise": "raised", "donated": "raised",
    "own": "owns", "has": "owns", "have": "owns", "attend": "attended", "went": "attended", "do": "does",
    "said": "says", "statement": "says", "say": "says", "pet": "has_pet", "relation": "has_relation",
    "plan": "plans", "study": "studies", "favourite": "favorite",
}


def predicate_of(word: str) -> str | None:
    """The predicate a word names ("lives in", "purchased", "Works-At" -> lives_in, bought,
    works_at), or None if it names none of :data:`PREDICATES`."""
    key = "_".join(word.strip().lower().replace("-", " ").split())
    key = _PREDICATE_ALIASES.get(key, key)
    return key if key in PREDICATES else None


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
    amount: float | None = None  # a quantity the fact carries, in ``unit`` (normalised, see encode.quantity)
    unit: str = ""

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
    amount: float | None = None
    unit: str | None = ""


@dataclass
class Decision:
    action: str  # merge | retract | add | ignore
    draft: FactDraft
    merge_into: str | None = None
    closes: list[str] = field(default_factory=list)  # ids of facts this supersedes/retracts
    new_id: str | None = None  # id of the fact an "add" creates (assigned before storing)


@dataclass(frozen=True)
class SegmentInfo:
    """A segment as the summary tree reads it: its member episode ids and summary."""

    id: str
    session_id: str | None
    episodes: tuple[str, ...]
    summary: str
    first_seq: int
    last_seq: int
