"""Score fact extraction and supersession on a labelled set of short exchanges.

A case is ``{"category", "messages": [{"role", "speaker", "text", "statements"}], "facts":
[[subject, predicate, object, negated?]], "current"?: [...], "superseded"?: [...]}``. Extraction
is scored by precision/recall over (subject, predicate, object, negated) with objects equal after
normalisation (case, articles, spaces, end punctuation: "the Alps" is "Alps", "Alps hiking" is
not). Statements (sentences kept verbatim) are not atomic facts and are scored apart against each
message's labelled ``statements`` (:func:`score_statements`). Supersession runs the
messages through a real ``Memory`` and checks which facts end current and which superseded.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..consolidate.decide import norm
from ..consolidate.extract import Extractor
from ..semantic import FactDraft
from ..memory import Memory


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    per_category: dict[str, tuple[int, int, int]]  # category -> (true pos, predicted, gold)
    errors: list[dict[str, Any]]


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    return list(json.loads(Path(path).read_text()))


def _match(pred: FactDraft, gold: list[Any]) -> bool:
    subj, predicate, obj = gold[0], gold[1], gold[2]
    neg = bool(gold[3]) if len(gold) > 3 else False
    if pred.subject.lower() != subj.lower() or pred.predicate != predicate or pred.negated != neg:
        return False
    return norm(pred.object) == norm(obj)


def score_extraction(cases: list[dict[str, Any]], extractor: Extractor) -> Scores:
    tp = pred_n = gold_n = 0
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    errors = []
    for case in cases:
        preds = [
            f for m in case["messages"] for f in extractor.extract(m["text"], m["speaker"], m["role"])
            if f.kind != "statement"
        ]
        gold = list(case["facts"])
        used: set[int] = set()
        hits = 0
        for p in preds:
            j = next((j for j, g in enumerate(gold) if j not in used and _match(p, g)), None)
            if j is not None:
                used.add(j)
                hits += 1
        tp += hits
        pred_n += len(preds)
        gold_n += len(gold)
        row = per[case["category"]]
        row[0] += hits
        row[1] += len(preds)
        row[2] += len(gold)
        if hits != len(preds) or hits != len(gold):
            errors.append({"messages": [m["text"] for m in case["messages"]], "gold": gold,
                           "predicted": [(p.subject, p.predicate, p.object, p.negated) for p in preds]})
    return Scores(
        precision=tp / pred_n if pred_n else 1.0,
        recall=tp / gold_n if gold_n else 1.0,
        per_category={k: (v[0], v[1], v[2]) for k, v in sorted(per.items())},
        errors=errors,
    )


def score_statements(cases: list[dict[str, Any]], extractor: Extractor) -> tuple[float, float, list[str]]:
    """(precision, recall, errors) of statements against each message's labelled sentences.

    A message's ``statements`` are the sentences in it a person says of themselves as so:
    first person, not a question, a request, a hypothetical, a wish or plan the set labels so
    (category ``hypothetical``), nor an assistant's words. Sentences are compared after
    normalisation (:func:`norm`)."""
    made = right = gold_n = 0
    errors = []
    for case in cases:
        for m in case["messages"]:
            got = [norm(f.text) for f in extractor.extract(m["text"], m["speaker"], m["role"]) if f.kind == "statement"]
            gold = [norm(g) for g in m["statements"]]
            made += len(got)
            gold_n += len(gold)
            right += sum(1 for g in got if g in gold)
            errors += [f"not a statement: {g}" for g in got if g not in gold]
            errors += [f"missed: {g}" for g in gold if g not in got]
    return (right / made if made else 1.0), (right / gold_n if gold_n else 1.0), errors


def score_supersession(cases: list[dict[str, Any]], make_memory: Callable[[], Memory]) -> tuple[float, list[dict[str, Any]]]:
    """Fraction of update cases whose end state (current / superseded facts) is right."""
    checked = correct = 0
    errors = []
    for i, case in enumerate(cases):
        if "current" not in case:
            continue
        checked += 1
        with make_memory() as mem:
            user = f"case-{i}"
            for k, m in enumerate(case["messages"]):
                msg = {"role": m["role"], "content": m["text"]}
                if m["speaker"] not in ("user", "assistant"):
                    msg["name"] = m["speaker"]
                mem.add(msg, user_id=user, session_id="s", timestamp=f"2023-01-{k + 1:02d}T10:00:00")
            facts = mem.facts(user_id=user, status=None)
            current = {(f.subject.lower(), f.predicate, norm(f.object)) for f in facts if f.status == "current"}
            closed = {(f.subject.lower(), f.predicate, norm(f.object)) for f in facts if f.status != "current"}
            want_current = {(s.lower(), p, norm(o)) for s, p, o, *_ in case["current"]}
            want_closed = {(s.lower(), p, norm(o)) for s, p, o, *_ in case["superseded"]}
            ok = current == want_current and want_closed <= closed
            correct += ok
            if not ok:
                errors.append({"messages": [m["text"] for m in case["messages"]], "current": sorted(current),
                               "closed": sorted(closed), "want_current": sorted(want_current)})
    return (correct / checked if checked else 1.0), errors
