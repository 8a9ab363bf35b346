"""An extractor that asks an LLM (any OpenAI-compatible endpoint) for the same fact schema."""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from ..encode.quantity import find_quantities
from ..errors import LLMError
from ..llm.client import Chat
from ..semantic import CATEGORY, STATEMENT, FactDraft
from .extract import statement_drafts

PROMPT = """Extract facts that the speaker states as true about themselves or people they name.
Skip questions, hypotheticals, plans phrased as wishes, and anything said by the assistant.
Speaker: {speaker}
Message: {text}

Answer with a JSON list only. Each item: {{"subject": "{speaker}" or "{speaker}'s <relation>",
"predicate": one of {predicates}, "object": short phrase, "qualifier": "" or what a favorite is of /
the pet kind / the relation, "negated": true if the statement ends or denies it, "amount": the price,
duration, weight, distance or count told with it as written (e.g. "$300", "2 hours") or ""}}.
Answer [] when there is nothing."""

SUMMARY_PROMPT = """Summarise these notes from a person's memory as one {level} summary: {what}
Keep names, places, dates and amounts; at most {words} words; no preamble.

{parts}"""
_LEVELS = {
    "session": ("what this conversation was about", 60),
    "topic": ("what is known about this topic across conversations", 60),
    "person": ("what is known about this person", 90),
}


class LLMExtractor:
    """Fact extraction by an LLM, validated into :class:`FactDraft`s (bad items are dropped).

    Statements (sentences kept verbatim, :func:`.extract.statement_drafts`) need no model: they are
    added as the rules find them, unless ``statements=False``.
    """

    name = "llm"

    def __init__(self, llm: Chat, *, fallback: Any | None = None, statements: bool = True) -> None:
        self.llm = llm
        self.fallback = fallback  # e.g. RuleExtractor(): used when the endpoint fails
        self.statements = statements

    def extract(self, text: str, speaker: str, role: str | None) -> list[FactDraft]:
        if role == "assistant":
            return []
        prompt = PROMPT.format(speaker=speaker, text=text, predicates=", ".join(sorted(set(CATEGORY) - {STATEMENT})))
        try:
            answer = self.llm.chat([{"role": "user", "content": prompt}], max_tokens=512)
        except LLMError:
            if self.fallback is not None:
                return list(self.fallback.extract(text, speaker, role))
            raise
        return parse(answer, speaker) + (statement_drafts(text, speaker) if self.statements else [])

    def summarise(self, level: str, parts: Sequence[str]) -> str:
        """A node of the summary tree written from the texts under it (see consolidate.tree);
        raises LLMError when the endpoint fails (the tree keeps its extract then)."""
        what, words = _LEVELS.get(level, ("what these notes say", 60))
        prompt = SUMMARY_PROMPT.format(level=level, what=what, words=words, parts="\n".join(f"- {p}" for p in parts[:40]))
        return self.llm.chat([{"role": "user", "content": prompt}], max_tokens=256).strip()


def parse(answer: str, speaker: str) -> list[FactDraft]:
    """Read the model's JSON (possibly inside a code fence) into drafts; ignore malformed items."""
    m = re.search(r"\[.*\]", answer, flags=re.S)
    if not m:
        return []
    try:
        items = json.loads(m.group(0))
    except ValueError:
        return []
    out = []
    for it in items if isinstance(items, list) else []:
        if not isinstance(it, dict):
            continue
        subj, pred, obj = str(it.get("subject") or speaker), str(it.get("predicate") or ""), str(it.get("object") or "")
        if pred not in CATEGORY or pred == STATEMENT or not obj.strip() or len(obj) > 80:
            continue
        qual = str(it.get("qualifier") or "")
        neg = bool(it.get("negated"))
        text = f"{subj} {'no longer ' if neg else ''}{pred.replace('_', ' ')} {obj}".strip()
        told = find_quantities(str(it.get("amount") or ""))
        q = told[0] if told else None
        out.append(FactDraft(subj, pred, obj.strip(), text, neg, 0.9, qual, q.value if q else None, q.unit if q else ""))
    return out
