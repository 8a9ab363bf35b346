"""Ask semantic memory like a database (RET-LLM, ChatDB): rows with provenance, and the
aggregates people ask for — counts, lists, totals of amounts, the latest or earliest value.

Pure: :func:`rows_of` turns facts into :class:`Row` s (a fact and a statement of one telling are
one row), :func:`object_matches` is the object pattern language, and :class:`Rows` aggregates.
:meth:`engramdb.Memory.query` filters and calls these; no SQL is ever taken from a caller.

The object pattern: words, matched as words of the object in any order, singular or plural
("wedding" matches "I went to 3 weddings"); ``*`` is a wildcard inside a word or phrase
("*shop" matches "workshop"); ``"quoted words"`` must appear together; ``a|b`` matches either.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from .encode.quantity import convert, singular
from .model import Fact
from .semantic import STATEMENT

__all__ = ["Row", "Rows", "rows_of", "object_matches", "AGGREGATES"]

#: What :meth:`engramdb.Memory.query` can compute over its rows (``aggregate=``).
AGGREGATES = ("list", "count", "sum", "latest", "earliest")


@dataclass(frozen=True)
class Row:
    """One thing known: a fact (or a statement, a sentence said) with where it came from."""

    text: str
    subject: str
    predicate: str
    object: str
    amount: float | None
    unit: str
    valid_from: datetime | None
    valid_to: datetime | None
    episodes: tuple[str, ...]
    fact_id: str
    qualifier: str = ""
    status: str = "current"
    recorded_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("valid_from", "valid_to", "recorded_at"):
            d[k] = d[k].isoformat() if d[k] else None
        d["episodes"] = list(self.episodes)
        return d


class Rows(list[Row]):
    """The rows of a query (a list: ``len(rows)`` counts the things, each told once or more),
    with their aggregates."""

    def total(self, unit: str | None = None) -> dict[str, float]:
        """The sum of the rows' amounts per unit ({"USD": 720.0, "hours": 3.5}); with ``unit``,
        every amount that converts to it ("minutes", "kg", "miles"…) as one sum under it."""
        out: dict[str, float] = {}
        for r in self:
            if r.amount is None:
                continue
            if unit is not None:
                v = convert(r.amount, r.unit, unit)
                if v is not None:
                    out[unit] = out.get(unit, 0.0) + v
                continue
            out[r.unit] = out.get(r.unit, 0.0) + r.amount
        return {k: round(v, 6) for k, v in out.items()}

    @property
    def latest(self) -> Row | None:
        """The row of the most recent event (valid_from), then the last recorded."""
        dated = [r for r in self if r.valid_from is not None]
        return max(dated, key=lambda r: (r.valid_from, r.recorded_at or r.valid_from)) if dated else None

    @property
    def earliest(self) -> Row | None:
        dated = [r for r in self if r.valid_from is not None]
        return min(dated, key=lambda r: (r.valid_from, r.recorded_at or r.valid_from)) if dated else None

    def episodes(self) -> list[str]:
        """Every episode the rows cite, once, in row order."""
        return list(dict.fromkeys(e for r in self for e in r.episodes))


_WORD = re.compile(r"[\w'*-]+")


def _norm_words(text: str) -> list[str]:
    return [singular(w.strip("'")) for w in _WORD.findall(text.lower()) if w.strip("'")]


def _term_matches(term: str, words: list[str], joined: str) -> bool:
    if " " in term:  # a quoted phrase: its words together
        return f" {' '.join(_norm_words(term))} " in f" {joined} "
    t = singular(term.lower())
    if "*" in t:
        rx = re.compile("^" + ".*".join(re.escape(p) for p in t.split("*")) + "$")
        return any(rx.match(w) for w in words)
    return t in words


def object_matches(pattern: str, text: str) -> bool:
    """Whether ``text`` (an object, a statement) matches the object pattern (see module doc)."""
    words = _norm_words(text)
    joined = " ".join(words)
    terms = re.findall(r'"[^"]+"|[^\s"]+', pattern.strip())
    if not terms:
        return True
    for term in terms:
        alts = [a.strip('"') for a in term.split("|") if a.strip('"')]
        if alts and not any(_term_matches(a, words, joined) for a in alts):
            return False
    return True


def pattern_words(pattern: str) -> list[str]:
    """Words of a pattern that every match holds (for a coarse pre-filter in the store): the
    stem of each single-alternative, wildcard-free term (a plural's ``s`` off)."""
    out = []
    for term in re.findall(r'"[^"]+"|[^\s"]+', pattern.strip()):
        if "|" in term or "*" in term:
            continue
        for w in _norm_words(term.strip('"')):
            out.append(w[:-1] if w.endswith("e") and len(w) > 4 else w)
    return out


def rows_of(facts: Iterable[Fact]) -> Rows:
    """Facts as rows, oldest event first. A statement told in the same episodes as a typed fact
    with the same amount is that fact said in words: it is dropped, so nothing counts twice."""
    facts = list(facts)
    typed: dict[frozenset[str], list[Fact]] = {}
    for f in facts:
        if f.predicate != STATEMENT:
            typed.setdefault(frozenset(f.sources), []).append(f)
    out = []
    for f in facts:
        if f.predicate == STATEMENT:
            src = frozenset(f.sources)
            twins = [t for s, ts in typed.items() if s & src for t in ts]
            if any((t.amount, t.unit) == (f.amount, f.unit) or f.amount is None for t in twins):
                continue
        out.append(
            Row(f.text, f.subject, f.predicate, f.object, f.amount, f.unit, f.valid_from, f.valid_to,
                f.sources, f.id, f.qualifier, f.status, f.recorded_at)
        )
    out.sort(key=lambda r: (r.valid_from.timestamp() if r.valid_from else float("-inf"), r.fact_id))
    return Rows(out)


def valid_at(f: Fact, t: datetime) -> bool:
    """Whether the fact held in the world at ``t`` (bi-temporal: valid time)."""
    return (f.valid_from is None or f.valid_from <= t) and (f.valid_to is None or f.valid_to > t)


def known_at(f: Fact, t: datetime) -> bool:
    """Whether memory held the fact as current at ``t`` (transaction time)."""
    return f.recorded_at <= t and (f.superseded_at is None or f.superseded_at > t)


def within(f: Fact, lo: datetime | None, hi: datetime | None) -> bool:
    """Whether what the fact tells began inside [lo, hi]."""
    if f.valid_from is None:
        return False
    return (lo is None or f.valid_from >= lo) and (hi is None or f.valid_from <= hi)


def describe(rows: Sequence[Row], aggregate: str, unit: str | None = None) -> str:
    """One line that states an aggregate, for people and for an LLM's context."""
    if aggregate == "count":
        return f"{len(rows)} found"
    if aggregate == "sum":
        tot = Rows(rows).total(unit)
        return "total: " + (", ".join(f"{v:g} {u}" for u, v in tot.items()) or "no amounts")
    if aggregate in ("latest", "earliest"):
        r = getattr(Rows(rows), aggregate)
        return f"{aggregate}: {r.text}" if r else f"{aggregate}: none"
    return f"{len(rows)} rows"
