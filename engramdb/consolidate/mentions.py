"""Who and what an episode mentions: the entity nodes of the memory graph, offline.

A mention is a name as people write one: a run of capitalised words where a sentence does not
begin ("I met Deborah at St. Mary's Church"), or where it does when the name is already known.
Each gets a kind from the words around it: a place after "in/at/to/from" or with a place word
("Church", "Park", "Street"), an organisation with an organisation word ("Inc", "University"),
else a person when it is one word, a thing otherwise.

Not names: words this memory also writes in lower case ("Keep", "Use" beginning a tip), titles
("**Features to Consider:**", "### Getting Started"), and the first word of a sentence unless it
is a name already known ("Deborah called", once Deborah is known). At 100k LongMemEval turns the
rules without these made "Use", "Consider" and "Keep" the most mentioned people.

Aliases are merged the way a listener merges them:

- a kin word said with a name ("my sister Deborah", "Deborah, my sister") makes "<speaker>'s
  sister" an alias of Deborah, and later "my sister" alone means her;
- a short form that begins exactly one known person's name ("Deb" of "Deborah") is that person
  (at the start of a sentence only for someone known by a relation: "Use" is not "Usenet").
"""

from __future__ import annotations

import bisect
import re
import sys
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from ..encode.text import SENTENCE as _SENTENCE, STOPWORDS

KIN = (
    "sister|brother|mom|mum|mother|dad|father|wife|husband|son|daughter|friend|best friend|boss|partner|"
    "girlfriend|boyfriend|cousin|aunt|uncle|grandma|grandmother|grandpa|grandfather|niece|nephew|colleague|"
    "coworker|roommate|neighbor|neighbour|fiance|fiancee|therapist|doctor|coach|teacher|manager"
)
_NAME = r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?"
_KIN_NAME = re.compile(rf"\b[Mm]y (?P<kin>{KIN}),? (?P<name>{_NAME})\b")
_NAME_KIN = re.compile(rf"\b(?P<name>{_NAME}),? (?:is )?my (?P<kin>{KIN})\b")
_KIN_ALONE = re.compile(rf"\b[Mm]y (?P<kin>{KIN})\b")
# A run of capitalised words, joined by "of", "the", "de", "&" or a possessive ("St. Mary's Church").
_WORD = r"(?:(?:St|Mt|Ft|Dr|Mr|Mrs|Ms|Jr|Sr)\.|[A-Z][\w'’-]*)"
_RUN = re.compile(rf"\b{_WORD}(?:\s+(?:(?:of|the|de|da|von|van|&)\s+)?{_WORD})*")
# What may stand between a sentence's boundary and its first word: spaces, quotes, brackets and
# markdown (bullets, "**bold**", "### ", "1. ").
_MARKUP = r"[\s*_`#>\"'(\[•\u2022\\-]*"
_AFTER_BOUNDARY = re.compile(rf"(?:[.!?:;\n\"(\[]|\d[.)]){_MARKUP}$")
_TEXT_START = re.compile(rf"^{_MARKUP}$")
_LOWER = re.compile(r"(?<![\w'-])[a-z][a-z'-]+")
# A markdown heading or a short title line: "### Getting Started", "**Features to Consider:**",
# "Other Options:" — Title Case there is typography, not names.
_HEADING = re.compile(r"^[ \t]*(?:#{1,6}[ \t].*|\*\*[^*\n]{1,80}\*\*:?[ \t]*|[^\n.!?]{1,60}:[ \t]*(?:\*\*)?[ \t]*)$", re.M)
_PLACE_BEFORE = re.compile(r"\b(?:in|at|to|from|near|visit(?:ed|ing)?|around)\s+(?:the\s+)?$", re.I)
_WORKS_AT = re.compile(r"\b(?:work(?:s|ed|ing)?|job|employed|intern(?:s|ed|ing)?|hired)\s+(?:at|for|by)\s+(?:the\s+)?$", re.I)
_PLACE_WORDS = frozenset(
    "church cathedral park street st avenue ave road lake river mountain mountains beach city town village "
    "county state island bay hotel museum airport station square hall center centre mall market cafe "
    "restaurant bar library gym school college hospital zoo stadium theater theatre garden gardens".split()
)
_ORG_WORDS = frozenset("inc corp corporation company co ltd llc university institute foundation bank group club".split())
_NOT_NAMES = frozenset(
    "i i'm i've i'll i'd ok okay yes no oh hey hi hello thanks thank sure wow yeah yep nope well so and but or "
    "however also please note tip tips step steps example examples overall additionally finally first second "
    "since instead meanwhile otherwise therefore besides mondays tuesdays wednesdays thursdays fridays saturdays sundays "
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december today tomorrow yesterday mr mrs ms dr".split()
)


@dataclass(frozen=True)
class Mention:
    name: str  # the entity's name as known (an alias resolved to it)
    kind: str  # person | place | organisation | thing
    alias: str | None = None  # a new alias of it this mention teaches ("user's sister", "Deb")


def _clean(run: str) -> str:
    run = re.sub(r"['’]s$", "", run.strip().rstrip(".,"))
    return run


def _kind_of(name: str, works_at: bool, place_before: bool) -> str:
    """The kind of a name, by its last word and whether the words before it say someone works
    there or it is a place."""
    last = name.split()[-1].lower().rstrip(".")
    if last in _ORG_WORDS or works_at:
        return "organisation"
    if last in _PLACE_WORDS or place_before:
        return "place"
    return "person" if " " not in name else "thing"


@dataclass
class Names:
    """The entities a memory knows: name -> kind, alias -> name, and the people's names sorted
    (to find the one a short form begins)."""

    kind: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    _people: list[str] = field(default_factory=list)
    #: people known by a relation ("my sister Deborah"): a short form of theirs may begin a sentence
    related: set[str] = field(default_factory=set)
    #: words seen in lower case in this memory ("use", "keep"): written capitalised, still words
    common: set[str] = field(default_factory=set)

    def extend(self, entities: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        """Add stored entities (name, kind, aliases), in the order they were made."""
        people = []
        for name, kind, als in entities:
            if name not in self.kind:
                self.kind[name] = kind
                if kind == "person":
                    people.append(name)
            for a in als:
                self.aliases[a] = name
                if "'s " in a:  # an alias like "user's sister": someone's relation
                    self.related.add(name)
        if people:  # sorted once, not one insertion at a time
            self._people = sorted(self._people + people)

    def copy(self) -> Names:
        """A copy to resolve one batch's mentions with (resolving adds to it)."""
        return Names(dict(self.kind), dict(self.aliases), list(self._people), set(self.related), set(self.common))

    def learn_words(self, text: str | tuple[str, ...]) -> None:
        """Remember the words ``text`` writes in lower case (or those words: :func:`lower_words`)."""
        self.common.update(_LOWER.findall(text) if isinstance(text, str) else text)

    def add(self, name: str, kind: str) -> None:
        if name not in self.kind:
            self.kind[name] = kind
            if kind == "person":
                bisect.insort(self._people, name)

    def people_starting(self, prefix: str) -> list[str]:
        """The known people whose name begins with ``prefix`` and is longer (at most 2)."""
        i = bisect.bisect_right(self._people, prefix)
        out: list[str] = []
        while i < len(self._people) and self._people[i].startswith(prefix) and len(out) < 2:
            out.append(self._people[i])
            i += 1
        return out


def lower_words(text: str) -> tuple[str, ...]:
    """The words ``text`` writes in lower case (what :meth:`Names.learn_words` learns), each
    once. Interned: kept per text, the words texts share are held once."""
    return tuple(map(sys.intern, dict.fromkeys(_LOWER.findall(text))))


class Run(NamedTuple):
    """A run of capitalised words, as the text alone gives it (see :func:`mention_text`)."""

    words: tuple[str, ...]  # its words, those that cannot begin a name dropped from the front
    begins: bool  # it begins a sentence, a line or a list item
    first: str  # its first word as written
    works_at: bool  # the words before it say someone works or studies there
    place_before: bool  # the words before it say it is a place


class MentionText(NamedTuple):
    """What :func:`mentions` reads off a text before it looks at the names known."""

    words: tuple[str, ...]  # the words written in lower case (headings aside)
    kin: tuple[tuple[str, str], ...]  # "my sister Deborah": (name, relation in lower case)
    kin_alone: tuple[str, ...]  # "my sister": the relation in lower case
    runs: tuple[Run, ...]


def mention_text(text: str) -> MentionText:
    """The part of :func:`mentions` that depends on the text alone (it may be kept per text)."""
    text = _HEADING.sub(lambda h: " " * len(h.group(0)), text)  # "**Features to Consider:**" names no one
    kin = tuple((m.group("name"), m.group("kin").lower()) for m in [*_KIN_NAME.finditer(text), *_NAME_KIN.finditer(text)])
    alone = tuple(m.group("kin").lower() for m in _KIN_ALONE.finditer(text))
    runs = []
    for m in _RUN.finditer(text):
        words = _clean(m.group(0)).split()
        while words and (words[0].lower() in _NOT_NAMES or words[0].lower() in STOPWORDS):
            words = words[1:]
        if not words:
            continue
        before = text[max(0, m.start() - 40) : m.start()]
        runs.append(Run(tuple(words), _begins_sentence(text, m.start()), m.group(0).split()[0],
                        bool(_WORKS_AT.search(before)), bool(_PLACE_BEFORE.search(before))))
    return MentionText(lower_words(text), kin, alone, tuple(runs))


def mentions(text: str, speaker: str, names: Names, found: MentionText | None = None) -> list[Mention]:
    """The entities ``text`` (said by ``speaker``) mentions, aliases resolved against ``names``
    (the entities known so far), which learns the new entities and aliases. ``found``:
    :func:`mention_text` of the text, if known."""
    known, aliases = names.kind, names.aliases
    out: dict[str, Mention] = {}
    if found is None:
        found = mention_text(text)
    names.learn_words(found.words)  # words written in lower case here or before are words
    for name, relation in found.kin:
        kin = f"{speaker}'s {relation}"
        if name.lower() in _NOT_NAMES:
            continue
        taught = kin if aliases.get(kin) != name else None
        aliases[kin] = name
        names.add(name, "person")
        names.related.add(name)
        out[name] = Mention(name, known[name], taught)
    for relation in found.kin_alone:
        kin_name = aliases.get(f"{speaker}'s {relation}")
        if kin_name and kin_name not in out:
            out[kin_name] = Mention(kin_name, known.get(kin_name, "person"))
    for r in found.runs:
        words = list(r.words)
        if r.begins and words[0] == r.first and len(words) > 1:
            if aliases.get(" ".join(words), " ".join(words)) not in known:
                words = words[1:]  # "Consider Goodreads": the first word is the sentence's, the rest a name
        run = " ".join(words)
        at_start = r.begins and words[0] == r.first
        if " " not in run and run.lower() in names.common and aliases.get(run, run) not in names.related and (
            at_start or run not in known
        ):
            continue  # "Keep" here, "keep" there: a word, capitalised (a sentence's first, a title's)
        name = aliases.get(run, run)
        alias: str | None = None
        if name not in known and " " not in name and len(name) >= 3:
            longer = names.people_starting(name)
            if at_start:  # "Use" of "Usenet" begins many sentences; "Deb" of my sister Deborah may
                longer = [p for p in longer if p in names.related]
            if len(longer) == 1:  # "Deb" of "Deborah": the one person whose name it begins
                alias, name = name, longer[0]
                aliases[alias] = name
        if at_start and name not in known:
            continue  # "Great, thanks" begins a sentence; a known name there still counts
        if len(name) < 2 or name.lower() in STOPWORDS or name.isupper() and len(name) > 6:
            continue
        if name in out:
            continue
        names.add(name, _kind_of(name, r.works_at, r.place_before))
        out[name] = Mention(name, known[name], alias)
    return list(out.values())


def _begins_sentence(text: str, at: int) -> bool:
    """Whether the word at ``at`` begins a sentence, a line or a list item (markup aside)."""
    window = text[max(0, at - 24) : at]
    return bool(_AFTER_BOUNDARY.search(window) or (at <= 24 and _TEXT_START.match(window)))


def known_from(entities: Iterable[tuple[str, str, Iterable[str]]]) -> Names:
    """The :class:`Names` of stored entities (name, kind, aliases)."""
    names = Names()
    names.extend(entities)
    return names


#: Places named by a common noun: where people say they are or were ("at the gym", "back
#: home"). Named places ("in Lisbon", "St. Mary's Church") are mentions of kind place already.
_COMMON_PLACES = (
    r"gym|office|work|school|university|campus|college|library|park|beach|hospital|clinic|church|"
    r"restaurant|cafe|café|coffee shop|bar|pub|mall|store|shop|supermarket|grocery store|market|farmers market|"
    r"airport|train station|station|hotel|studio|kitchen|garden|backyard|lake|mountains|museum|theater|"
    r"theatre|cinema|movies|stadium|zoo|farm|pool|salon|spa|bakery|concert|club|dentist|doctor's office|"
    r"vet|animal shelter|shelter|camp|campsite|trail|lab|classroom|bookstore|book store|art gallery|gallery|"
    r"community center|rec center|yoga studio|dance studio|office building|church hall|temple|mosque|"
    r"cabin|cottage|countryside|city|downtown|neighborhood|neighbourhood"
)
_PLACE_TAG = re.compile(
    r"\b(?:at|in|to|from|into|inside|near|around|visited|visit)\s+(?:the|my|our|a|an|his|her|their)\s+"
    r"(?:(?:local|new|nearby|favorite|favourite|usual|old|little|neighborhood|neighbourhood|big)\s+)?"
    r"(?:(?P<kind>[a-z]+)\s+(?=(?:store|shop|center|centre|studio|office|park|market|club|hall|gallery)\b))?"
    r"(?P<place>" + _COMMON_PLACES + r")\b(?!\s+(?:of|about)\b)|"
    r"\b(?:at|to|from|in)\s+(?P<bare>school|church|college|university|camp|class|mass|temple)\b",
    re.I,
)
# Where a place is not somewhere anyone was: a question, or what is wished or yet to come.
_NOT_THERE = re.compile(
    r"\b(?:if|would|might|maybe|perhaps|could|should|wish|hope|hoping|want to|wanna|'d love|’d love|would like|"
    r"thinking (?:about|of)|planning|plan to|going to|gonna|will|'ll|’ll|tomorrow|someday|next|sometime|idea of)\b",
    re.I,
)
_HOME = re.compile(r"\b(?:at home|back home|went home|got home|came home|from home|stay(?:ed|ing)? home|work(?:ed|ing)? from home)\b", re.I)
_AT_WORK = re.compile(r"\b(?:at work|to work|from work)\b", re.I)


def place_tags(text: str) -> list[str]:
    """The common places a text says someone is or was at, normalised ("at the local gym" ->
    "gym", "at the pet store" -> "pet store", "back home" -> "home"), each once, in order; not
    in questions, nor where the sentence wishes or plans ("I'd love to visit the museum")."""
    found: list[tuple[int, str]] = []
    for sent in _SENTENCE.finditer(text):
        s = sent.group(0)
        if s.rstrip().endswith("?"):
            continue
        here: list[tuple[int, str]] = []
        for m in _PLACE_TAG.finditer(s):
            name = (m.group("bare") or ((m.group("kind") + " ") if m.group("kind") else "") + m.group("place")).lower()
            here.append((m.start(), name.replace("café", "cafe")))
        here += [(m.start(), "home") for m in _HOME.finditer(s)]
        here += [(m.start(), "work") for m in _AT_WORK.finditer(s)]
        found += [(sent.start() + at, p) for at, p in here if not _NOT_THERE.search(s[:at])]
    return list(dict.fromkeys(p for _, p in sorted(found)))
