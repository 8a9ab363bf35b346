"""An extractor that asks an LLM (any OpenAI-compatible endpoint) for the same fact schema."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import LLMError
from ..llm.client import OpenAICompatible
from ..semantic import CATEGORY, STATEMENT, FactDraft
from .extract import statement_drafts

PROMPT = """Extract facts that the speaker states as true about themselves or people they name.
Skip questions, hypotheticals, plans phrased as wishes, and anything said by the assistant.
Speaker: {speaker}
Message: {text}

Answer with a JSON list only. Each item: {{"subject": "{speaker}" or "{speaker}'s <relation>",
"predicate": one of {predicates}, "object": short phrase, "qualifier": "" or what a favorite is of /
the pet kind / the relation, "negated": true if the statement ends or denies it}}.
Answer [] when there is nothing."""


class LLMExtractor:
    """Fact extraction by an LLM, validated into :class:`FactDraft`s (bad items are dropped).

    Statements (sentences kept verbatim, :func:`.extract.statement_drafts`) need no model: they are
    added as the rules find them, unless ``statements=False``.
    """

    name = "llm"

    def __init__(self, llm: OpenAICompatible, *, fallback: Any | None = None, statements: bool = True) -> None:
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
        out.append(FactDraft(subj, pred, obj.strip(), text, neg, 0.9, qual))
    return out
