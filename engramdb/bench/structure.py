"""Structured memory measured on a labelled set: what ``Memory.query`` answers with amounts,
and the places ``Memory.places`` reports, against what each statement tells.

The set (``engramdb/data/structure.jsonl``) has one statement per line: ``text``, ``rows``
(``[predicate, amount, unit]`` for each amount it tells, normal units as in
:mod:`engramdb.encode.quantity`; predicate ``says`` accepts any predicate) and ``places``
(the common places it says someone was at). A statement goes into its own user scope of an
offline memory (rules, no embedder), as the user would say it; then ``query(amounts=True)``
and ``places()`` are read back. Precision: rows (places) returned that are right; recall:
rows (places) labelled that came back. The halves (``tune``: where the rules were written;
``report``) are fixed by a hash of the text; both were in view when the rules were fixed. The
``heldout`` lines (``split`` in the line) were written after the rules were frozen and scored
once: that is the figure to quote.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..io.datasets import json_objects
from ..memory import Memory

LABELLED = Path(__file__).resolve().parent.parent / "data" / "structure.jsonl"


def load(path: str | Path = LABELLED) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"no labelled set at {p}", path=str(p))
    out = []
    for n, row in json_objects(p):
        if not isinstance(row.get("text"), str) or not isinstance(row.get("rows"), list):
            raise DatasetError(f"{p}:{n}: needs 'text' and 'rows'", path=str(p), line=n)
        out.append(row)
    return out


def split_of(text: str) -> str:
    return "tune" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0 else "report"


def _same(row: Any, gold: list[Any]) -> bool:
    predicate, amount, unit = gold
    return (
        row.amount is not None and abs(row.amount - float(amount)) <= 1e-6 * max(1.0, abs(float(amount)))
        and row.unit == unit and (predicate == "says" or row.predicate == predicate)
    )


def score(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision and recall of amounts and places, per half and overall, with the errors."""
    per: dict[str, dict[str, Any]] = {}
    with Memory(":memory:", embedder=None) as mem:
        for i, case in enumerate(cases):
            user = f"case{i}"
            mem.add([{"role": "user", "content": case["text"]}], user_id=user, timestamp="2024-06-01T12:00:00")
            rows = mem.query(user_id=user, amounts=True)
            places = {p.name.lower() for p in mem.places(user_id=user)}
            gold_places = {p.lower() for p in case.get("places", [])}
            for split in (case.get("split") or split_of(case["text"]), "all"):
                s = per.setdefault(split, {"statements": 0, "rows": [0, 0, 0], "places": [0, 0, 0], "errors": []})
                s["statements"] += 1
                used: set[int] = set()
                right = 0
                for r in rows:
                    j = next((j for j, g in enumerate(case["rows"]) if j not in used and _same(r, g)), None)
                    if j is not None:
                        used.add(j)
                        right += 1
                s["rows"][0] += right
                s["rows"][1] += len(rows)
                s["rows"][2] += len(case["rows"])
                s["places"][0] += len(places & gold_places)
                s["places"][1] += len(places)
                s["places"][2] += len(gold_places)
                wrong = (right, len(rows)) != (len(case["rows"]), len(case["rows"])) or places != gold_places
                if wrong and split != "all":
                    s["errors"].append({
                        "text": case["text"], "expected": case["rows"], "places_expected": sorted(gold_places),
                        "got": [[r.predicate, r.amount, r.unit] for r in rows], "places_got": sorted(places),
                    })
    out = {}
    for split in ("tune", "report", "heldout", "all"):
        if split not in per:
            continue
        s = per[split]
        (rt, rp, rg), (pt, pp, pg) = s["rows"], s["places"]
        both_t, both_p, both_g = rt + pt, rp + pp, rg + pg
        out[split] = {
            "statements": s["statements"],
            "amounts": {"precision": rt / rp if rp else None, "recall": rt / rg if rg else None, "returned": rp, "labelled": rg},
            "places": {"precision": pt / pp if pp else None, "recall": pt / pg if pg else None, "returned": pp, "labelled": pg},
            "precision": both_t / both_p if both_p else None,
            "recall": both_t / both_g if both_g else None,
            "errors": s["errors"],
        }
    return out
