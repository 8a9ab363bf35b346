"""Query analysis — pure: time constraints, ordering intent and "when"-questions.

Time expressions in the question are resolved against ``now`` (when it is asked) with the same
resolver used on memories, so "what did I do last week?" asked on 2023-05-08 means the week of
2023-05-01. Absolute expressions ("in 2022", "May 2021") are *explicit* and filter; relative
ones ("a week ago", "last month") are *soft* and boost what falls in or near them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone

import numpy as np

from ..encode.text import STOPWORDS, query_terms, words
from ..encode.timex import find_times

_EARLIEST = re.compile(r"\b(first|earliest|initially|originally|to begin with|at the start)\b", re.I)
_LATEST = re.compile(
    r"\b(current(ly)?|now|latest|most recent(ly)?|recently|these days|nowadays|still|anymore|"
    r"the last time|last (?:one|thing|time)|newest|so far|at the moment|present(ly)?)\b",
    re.I,
)
_COMPARE = re.compile(r"\b(first|earlier|before|after|later|order)\b.*\bor\b|\border of\b|\bwhich .* first\b", re.I)
_WHEN = re.compile(
    r"\b(when|what (date|day|time|year|month)|which (date|day|year|month)|how long ago|how (many|much) "
    r"(days?|weeks?|months?|years?|time)|how long|since when|what age)\b",
    re.I,
)
# Asking for advice ("can you suggest…", "any tips…?", "what should I…"): the answer should fit
# what the asker likes, so their stated preferences are evidence.
_ADVICE = re.compile(
    r"\b(?:can|could|would) you (?:\w+ ){0,2}?(?:suggest|recommend|give me|help me (?:find|choose|pick|decide))|"
    r"\bany (?:\w+ )?(?:suggestions|recommendations|tips|advice|ideas)\b|\bwhat (?:should|could|can) I\b|"
    r"\b(?:suggest|recommend) (?:me|some|a|an|any)\b",
    re.I,
)
_YEAR = re.compile(r"\b(19|20)\d\d\b")
# "in two weeks" is a date ahead only in a question about what lies ahead; otherwise it is a
# duration ("how many followers did I gain in two weeks?").
_IN_SPAN = re.compile(r"^(?:in|within)\s+.+\s+(?:day|week|weekend|month|year|decade)s?$", re.I)
_FUTURE = re.compile(
    r"\b(will|going to|gonna|plan(ning|ned)? (to|on)|upcoming|scheduled|coming up|next|tomorrow|"
    r"later this|in the future|ahead)\b",
    re.I,
)
# "before I moved to Berlin", "after the trip to Japan": a constraint relative to an event.
_ANCHOR = re.compile(
    r"\b(?P<rel>before|after|since|prior to)\s+(?P<event>(?:I|we|my|our|the|he|she|they|you)\b[^?.,;!]{3,80}(?!\w))",
    re.I,
)
_OPEN = 1e12  # seconds: an open end of a half-open range
# Words that name one thing exactly: a code or id (letters with digits), a long number (not a
# year), a name (capitalised where a sentence does not begin). Calendar names are time words.
_RAW_WORD = re.compile(r"[^\W_]+")
_YEAR_LIKE = re.compile(r"(1[89]|20)\d\d")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n\"(]\s*)$")
_CALENDAR = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)


@dataclass(frozen=True)
class TimeRange:
    lo: float  # epoch seconds, start of the first day
    hi: float  # epoch seconds, end of the last day
    explicit: bool


@dataclass(frozen=True)
class QueryAnalysis:
    ranges: tuple[TimeRange, ...] = ()
    order: str | None = None  # "earliest" | "latest" | "compare"
    asks_when: bool = False
    time_words: tuple[str, ...] = field(default_factory=tuple)
    anchor: tuple[str, str] | None = None  # ("before" | "after", event text)
    core: str = ""  # the question without the anchor clause: what is asked about
    asks_advice: bool = False  # "can you suggest…": the asker's preferences are evidence

    def relative_to(self, pivot: float) -> QueryAnalysis:
        """This analysis plus the half-open range before/after an event at ``pivot``."""
        if self.anchor is None:
            return self
        day = 86400.0  # the event's own day is neither before nor after it
        r = TimeRange(-_OPEN, pivot - day, False) if self.anchor[0] == "before" else TimeRange(pivot + day, _OPEN, False)
        return QueryAnalysis(
            self.ranges + (r,), self.order, self.asks_when, self.time_words, None, self.core, self.asks_advice
        )


# Questions that need several pieces, each to be recalled on its own (see :func:`facets`).
_QUOTED = re.compile(r"[\"'‘“](?P<q>[^\"'’”]{4,}?)[\"'’”](?=[\s,.;:?!)]|$)")
_BETWEEN = re.compile(r"\bbetween (?P<a>[^?,;]+?) and (?P<b>[^?,;]+)", re.I)
_EITHER = re.compile(r"(?:[,:–—-]|\bfirst)\s+(?P<a>[^,?:]+?),?\s+or\s+(?P<b>[^?]+)", re.I)
_SPAN_TO = re.compile(r"\bhow (?:many \w+|long|much time)\b(?P<a>.+?)\b(?:before|after|until|since)\b(?P<b>[^?]+)", re.I)
_PAIR = re.compile(r"\b(?P<a>[A-Z][\w-]+)(?:'s)? and (?P<b>[A-Z][\w-]+)(?:'s)?(?P<both>\s+both)?\b")
_BOTH = re.compile(r"\bboth\b", re.I)
_FIRST = re.compile(r"\b(first|earlier|later|last)\b", re.I)


def facets(query: str, now: datetime | None = None) -> tuple[str, ...]:
    """The pieces a question needs each of, to be recalled one by one, or ``()``.

    - the events it relates: "how many days between X and Y", "which came first, X or Y",
      "how long did X before Y", "the order of 'X', 'Y' and 'Z'";
    - the people it asks about together: "what do Jon and Gina both like?" needs what Jon
      likes and what Gina likes ("what do Jon both like?", "what do Gina both like?").

    A span of dates ("between May 1 and May 9") is a time range, not two events.
    """
    quoted = [m.group("q").strip() for m in _QUOTED.finditer(query)]
    if len(quoted) >= 2:
        return tuple(dict.fromkeys(quoted))
    for pattern in (_BETWEEN, _EITHER, _SPAN_TO):
        m = pattern.search(query)
        if m:
            a, b = (m.group(k).strip(" ,.-") for k in ("a", "b"))
            if len(query_terms(a)) and len(query_terms(b)) and not (now is not None and (find_times(a, now) or find_times(b, now))):
                # a bare option ("first, Rachel or Alex?") is asked about in the words before it
                stem = _FIRST.sub("", query[: m.start()]).strip(" ,:-") if pattern is _EITHER else ""
                return tuple(f"{stem} {x}" if stem and len(query_terms(x)) <= 2 else x for x in (a, b))
    m = _PAIR.search(query)
    if m and (m.group("both") or _BOTH.search(query) or " in common" in query):
        def one(name: str) -> str:
            return _BOTH.sub("", query[: m.start()] + name + query[m.end() :]).replace("  ", " ").strip()
        return (one(m.group("a")), one(m.group("b")))
    return ()


@dataclass(frozen=True)
class Aggregate:
    """A question that asks about every instance of something (ChatDB's aggregate queries)."""

    kind: str  # count | sum | list | most
    focus: str  # what is counted or summed, as asked ("doctor's appointments"), may be ""
    first_person: bool = False  # about the asker's own life ("how many … have I …")


_TIME_UNIT = r"(?:seconds?|minutes?|hours?|days?|nights?|weeks?|weekends?|months?|years?)"
_AGG_COUNT = re.compile(
    r"\b(?:how many(?: times)?|(?<!highest )(?<!lowest )(?<!largest )(?<!biggest )number of|how often)\b(?:\s+(?P<focus>[^?,.;]+))?", re.I
)
_AGG_SUM = re.compile(r"\b(?:how much|in total|total(?: amount| number| cost| of)?|altogether|combined|sum of)\b(?:\s+(?P<focus>[^?,.;]+))?", re.I)
_AGG_LIST = re.compile(
    r"\b(?:list|name|what are|which are|tell me)\s+(?:all|every|each)\b(?:\s+(?:of\s+)?(?:the\s+)?(?P<focus>[^?,.;]+))?|"
    r"\ball (?:the|of the|of my|my)\s+(?P<focus2>[^?,.;]+)",
    re.I,
)
_AGG_MOST = re.compile(
    r"\b(?:which|what|who|where)\s+(?P<focus>[^?,.;]*?)\s*(?:\w+\s+){0,4}(?:the )?(?:most|least) (?:often|frequently|times)\b", re.I
)
# A count of time between events ("how many days ago", "how many days between X and Y", "how
# many days did it take") is a date difference, not an aggregate (see :func:`facets`).
_TIME_SPAN = re.compile(
    r"\bhow (?:many|much) " + _TIME_UNIT + r"\b.*\b(?:ago|between|passed|since|before|after|until|take|took|old)\b|"
    r"\bhow (?:much|many) (?:time|longer|older|younger)\b.*\b(?:ago|between|since|before|after|until)\b|\bhow long\b",
    re.I,
)
# Where the counted phrase ends: at the verb or the asker ("weddings | have I attended").
_FOCUS_END = re.compile(
    r"\s+(?:did|do|does|have|has|had|are|is|was|were|will|would|can|could|I|we|you|he|she|they|in|on|at|"
    r"for|during|from|since|this|that|last|so|through|across|to|with|per)\b.*$",
    re.I,
)


_ASKER = re.compile(r"\b(?:I|I've|I'm|I'd|me|my|mine|myself)\b")


def _focus(text: str | None) -> str:
    if not text:
        return ""
    return _FOCUS_END.sub("", " " + text.strip()).strip(" ,")


def aggregate_of(query: str) -> Aggregate | None:
    """The aggregate a question asks for — a count ("how many weddings…"), a total ("how much
    did I spend in total…"), a list ("list all the books…") or the most frequent ("which
    restaurant did I go to most often?") — or None. A count of days between two events is not
    one: it needs the two events (:func:`facets`)."""
    if _TIME_SPAN.search(query):
        return None
    mine = bool(_ASKER.search(query))
    m = _AGG_MOST.search(query)
    if m:
        return Aggregate("most", _focus(m.group("focus")), mine)
    m = _AGG_COUNT.search(query)
    if m:
        focus = _focus(m.group("focus"))
        unit = re.match(_TIME_UNIT + r"\b|dollars|euros|pounds|miles|kilometers|km|kg", focus, re.I)
        return Aggregate("sum" if unit else "count", focus, mine)
    m = _AGG_SUM.search(query)
    if m:
        return Aggregate("sum", _focus(m.group("focus")), mine)
    m = _AGG_LIST.search(query)
    if m:
        return Aggregate("list", _focus(m.group("focus") or m.group("focus2")), mine)
    return None


def exact_words(query: str) -> tuple[str, ...]:
    """The words of a question that name one thing exactly, as full-text search sees them
    (lower-cased, accents removed): codes and ids ("A7X", "tok3x9"), numbers of 4 or more digits
    other than years, and names (capitalised, not where a sentence begins: "Who is Varkelin?").
    A question of one content word is a lookup of that word, whatever it is."""
    terms = query_terms(query)
    if len(terms) == 1:
        return (terms[0],)
    found: list[str] = []
    for m in _RAW_WORD.finditer(query):
        raw = m.group(0)
        for w in words(raw):
            if w in STOPWORDS or w in _CALENDAR or len(w) < 2:
                continue
            has_digit, has_alpha = any(c.isdigit() for c in w), any(c.isalpha() for c in w)
            if has_digit and has_alpha:
                found.append(w)
            elif has_digit:
                if len(w) >= 4 and not _YEAR_LIKE.fullmatch(w):
                    found.append(w)
            elif raw[0].isupper() and not _SENTENCE_START.search(query[: m.start()]):
                found.append(w)
    return tuple(dict.fromkeys(found))


def _ts(d: date, end: bool = False) -> float:
    return datetime.combine(d, time(23, 59, 59) if end else time(0), tzinfo=timezone.utc).timestamp()


def analyse(query: str, now: datetime | None) -> QueryAnalysis:
    ranges = []
    words: list[str] = []
    if now is not None:
        future_ok = bool(_FUTURE.search(query))
        for t in find_times(query, now):
            if t.start > now.date() and _IN_SPAN.match(t.text) and not future_ok:
                continue
            ranges.append(TimeRange(_ts(t.start), _ts(t.end, end=True), bool(_YEAR.search(t.text))))
            words.append(t.text)
    if _COMPARE.search(query):
        order: str | None = "compare"
    elif _LATEST.search(query):
        order = "latest"
    elif _EARLIEST.search(query):
        order = "earliest"
    else:
        order = None
    anchor = None
    m = _ANCHOR.search(query)
    if m and not (now is not None and find_times(m.group(0), now)):  # "before May" is a time range
        anchor = ("before" if m.group("rel").lower() in ("before", "prior to") else "after", m.group("event").strip())
        core = (query[: m.start()] + query[m.end() :]).strip()
    else:
        core = query
    return QueryAnalysis(
        tuple(ranges), order, bool(_WHEN.search(query)), tuple(words), anchor, core, bool(_ADVICE.search(query))
    )


def range_closeness(ep_ts: np.ndarray, ev_lo: np.ndarray, ev_hi: np.ndarray, r: TimeRange) -> np.ndarray:
    """1 for episodes said or mentioning a time inside ``r``, fading to 0 over a margin outside.

    The margin (half the range, at least 3 days) absorbs the slack of relative expressions:
    "two weeks ago" said on a Wednesday may well mean the Sunday before that week.
    """
    day = 86400.0
    half_open = r.hi - r.lo > _OPEN / 2  # before/after an event: a hard edge, no margin
    margin = 0.0 if half_open else max(3 * day, 0.5 * (r.hi - r.lo))

    def closeness(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        gap = np.maximum(0.0, np.maximum(r.lo - hi, lo - r.hi))
        if margin == 0:
            return np.asarray(gap == 0, dtype=np.float64)
        return np.clip(1.0 - gap / margin, 0.0, 1.0)

    said = closeness(ep_ts, ep_ts)
    mentioned = np.where(np.isnan(ev_lo), 0.0, closeness(np.nan_to_num(ev_lo), np.nan_to_num(ev_hi)))
    return np.asarray(np.maximum(said, mentioned), dtype=np.float64)


def range_touches(ep_ts: np.ndarray, ev_lo: np.ndarray, ev_hi: np.ndarray, r: TimeRange) -> np.ndarray:
    """``range_closeness(...) > 0``, without the closeness itself: which episodes the range (and
    its margin) reaches. Cheaper over every episode, where only the range's share is wanted."""
    half_open = r.hi - r.lo > _OPEN / 2
    margin = 0.0 if half_open else max(3 * 86400.0, 0.5 * (r.hi - r.lo))

    def touches(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:  # (NaN: never)
        gap = np.maximum(0.0, np.maximum(r.lo - hi, lo - r.hi))
        return np.asarray(gap == 0 if margin == 0 else gap / margin < 1.0, dtype=bool)

    return np.asarray(touches(ep_ts, ep_ts) | touches(ev_lo, ev_hi), dtype=bool)


def in_range(ep_ts: np.ndarray, ev_lo: np.ndarray, ev_hi: np.ndarray, r: TimeRange) -> np.ndarray:
    said = (ep_ts >= r.lo) & (ep_ts <= r.hi)
    mentioned = ~np.isnan(ev_lo) & (np.nan_to_num(ev_lo) <= r.hi) & (np.nan_to_num(ev_hi) >= r.lo)
    return np.asarray(said | mentioned, dtype=bool)
