"""The poisoning check measured: detection and false positives on a labelled set, and how
often it flags ordinary chat (LoCoMo, LongMemEval turns: every one of them is benign).

The labelled set (``engramdb/data/poisoning.jsonl``) has one text per line with ``label``
(``attack`` or ``benign``), ``source`` (who wrote it; ``import`` means an imported file),
``kind``, ``split`` (``tune``: rules were chosen there; ``report``: judged there) and ``origin``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import DatasetError
from ..guard import Guard
from ..io.datasets import json_objects

LABELLED = Path(__file__).resolve().parent.parent / "data" / "poisoning.jsonl"


def load(path: str | Path = LABELLED) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"no labelled set at {p}", path=str(p))
    rows = []
    for n, row in json_objects(p):
        if row.get("label") not in ("attack", "benign") or not isinstance(row.get("text"), str):
            raise DatasetError(f"{p}:{n}: needs 'text' and 'label' (attack or benign)", path=str(p), line=n)
        rows.append(row)
    return rows


def _check(guard: Guard, row: dict[str, Any]) -> Any:
    source = row.get("source", "user")
    imported = source == "import"
    return guard.check(row["text"], "user" if imported else source, imported=imported)


def score(rows: list[dict[str, Any]], guard: Guard | None = None) -> dict[str, Any]:
    """Detection rate and false-positive rate per split (and all), with the misses and false alarms."""
    guard = guard or Guard()
    out: dict[str, Any] = {}
    for split in ("tune", "report", "all"):
        part = [r for r in rows if split == "all" or r.get("split") == split]
        if not part:
            continue
        attacks = [r for r in part if r["label"] == "attack"]
        benign = [r for r in part if r["label"] == "benign"]
        caught = [r for r in attacks if _check(guard, r).flagged]
        alarms = [r for r in benign if _check(guard, r).flagged]
        by_kind: dict[str, list[int]] = {}
        for r in attacks:
            by_kind.setdefault(r.get("kind", "?"), [0, 0])
            by_kind[r.get("kind", "?")][1] += 1
            by_kind[r.get("kind", "?")][0] += r in caught
        out[split] = {
            "attacks": len(attacks),
            "benign": len(benign),
            "detection": len(caught) / len(attacks) if attacks else None,
            "false_positive_rate": len(alarms) / len(benign) if benign else None,
            "by_kind": {k: {"caught": c, "n": n} for k, (c, n) in sorted(by_kind.items())},
            "missed": [r["text"] for r in attacks if r not in caught],
            "false_alarms": [r["text"] for r in benign if r in alarms],
        }
    return out


def chat_false_positives(
    messages: Iterable[tuple[str, str | None]], guard: Guard | None = None, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Flags on ordinary chat, every message taken as benign: (text, role) pairs, each distinct
    text once. The speed is the check's own, per message."""
    guard = guard or Guard()
    seen: set[str] = set()
    n = 0
    flagged: list[tuple[str | None, tuple[str, ...], str]] = []
    elapsed = 0.0
    for text, role in messages:
        if text in seen:
            continue
        seen.add(text)
        t = time.perf_counter()
        v = guard.check(text, "assistant" if role == "assistant" else "user")
        elapsed += time.perf_counter() - t
        n += 1
        if v.flagged:
            flagged.append((role, v.reasons, text[:160]))
        if progress is not None and n % 1000 == 0:
            progress(n)
    return {
        "messages": n,
        "flagged": len(flagged),
        "rate": len(flagged) / n if n else None,
        "reasons": dict(Counter(", ".join(r) for _, r, _ in flagged).most_common()),
        "examples": [{"role": role, "reasons": list(r), "text": t} for role, r, t in flagged[:20]],
        "us_per_message": round(elapsed / n * 1e6, 1) if n else None,
    }
