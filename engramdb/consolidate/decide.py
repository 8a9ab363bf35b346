"""Supersession decisions — pure: what a new fact draft does to the facts already known.

- the same slot and object as a current fact: **merge** (add the source, strengthen); a
  statement only merges with the same sentence;
- a negation ("I don't live in Paris anymore"): **retract** the matching current facts;
  a negated like with nothing to retract becomes a dislike;
- a new value of a single-valued slot (lives_in, works_at…): **add** and supersede the old;
- a like that contradicts a current dislike of the same thing (or the reverse): add and
  supersede it;
- anything else: **add**.
Nothing is ever deleted here: superseded facts keep their history with closed validity.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..semantic import SINGLE_VALUED, STATEMENT, Decision, FactDraft, Known

_OPPOSITE = {"likes": "dislikes", "dislikes": "likes"}


_ARTICLE = re.compile(r"^(?:the|a|an|my|our)\s+")
_SPACES = re.compile(r"\s+")


def norm(obj: str) -> str:
    """Normalise an object for comparison: case, articles, spaces, trailing punctuation."""
    return _SPACES.sub(" ", _ARTICLE.sub("", obj.lower().strip())).strip(" .,!")


def _same_object(a: str, b: str) -> bool:
    na, nb = norm(a), norm(b)
    return na == nb or (len(min(na, nb, key=len)) >= 3 and (na in nb or nb in na))


def _same_amount(k: Known, d: FactDraft) -> bool:
    """Two tellings of one thing unless both carry an amount and the amounts differ: "$50 on
    groceries" is not "$30 on groceries"; "a bike" and "a bike for $300" are one purchase."""
    return k.amount is None or d.amount is None or (k.amount == d.amount and (k.unit or "") == d.unit)


def decide(current: list[Known], draft: FactDraft) -> Decision:
    subj = draft.subject.lower()
    same_slot = [
        k for k in current
        if k.subject.lower() == subj and k.predicate == draft.predicate and k.qualifier.lower() == draft.qualifier.lower()
    ]
    if draft.negated:
        targets = [k.id for k in same_slot if _same_object(k.object, draft.object)]
        if targets:
            return Decision("retract", draft, closes=targets)
        if draft.predicate == "likes":
            flipped = FactDraft(
                draft.subject, "dislikes", draft.object, f"{draft.subject} dislikes {draft.object}",
                False, draft.confidence, draft.qualifier, draft.amount, draft.unit,
            )
            return decide(current, flipped)
        return Decision("ignore", draft)
    for k in same_slot:
        # a statement is its words: only the same sentence again merges ("I went hiking." is not
        # "I went hiking with my dad."); its object is the sentence as said_key() left it
        same = k.object == draft.object if draft.predicate == STATEMENT else _same_object(k.object, draft.object)
        if same and _same_amount(k, draft):
            return Decision("merge", draft, merge_into=k.id)
    closes = []
    if draft.predicate in SINGLE_VALUED or draft.predicate == "favorite":
        closes = [k.id for k in same_slot]
    opposite = _OPPOSITE.get(draft.predicate)
    if opposite:
        closes += [
            k.id for k in current
            if k.subject.lower() == subj and k.predicate == opposite and _same_object(k.object, draft.object)
        ]
    return Decision("add", draft, closes=closes)


class Current:
    """The current facts a run of decisions sees, kept by subject and predicate (a statement by
    its sentence), so each decision reads only the facts it could touch — not every statement of
    a long history."""

    def __init__(self, known: Iterable[Known] = ()) -> None:
        self._slots: dict[tuple[str, str], dict[str, Known]] = {}
        self._where: dict[str, tuple[str, str]] = {}
        for k in known:
            self.add(k)

    @staticmethod
    def _slot(subject: str, predicate: str, obj: str) -> tuple[str, str]:
        return subject.lower(), (f"{STATEMENT}\0{obj}" if predicate == STATEMENT else predicate)

    def add(self, k: Known) -> None:
        slot = self._slot(k.subject, k.predicate, k.object)
        self._slots.setdefault(slot, {})[k.id] = k
        self._where[k.id] = slot

    def remove(self, ids: Iterable[str]) -> None:
        for i in ids:
            slot = self._where.pop(i, None)
            if slot is not None:
                self._slots[slot].pop(i, None)

    def for_draft(self, draft: FactDraft) -> list[Known]:
        """Every current fact :func:`decide` may merge into, retract or supersede for ``draft``:
        its slot and the opposite one (a negated like turns into a dislike)."""
        preds = [draft.predicate]
        if draft.predicate in _OPPOSITE:
            preds.append(_OPPOSITE[draft.predicate])
        out: list[Known] = []
        for p in preds:
            out += self._slots.get(self._slot(draft.subject, p, draft.object), {}).values()
        return out
