"""Compare time-expression resolvers on engramdb's hand-labelled test set.

    pip install dateparser ctparse      # the candidates (not engramdb dependencies)
    python benchmarks/timex_compare.py

Each case is a sentence, the moment it was said (anchor) and the expected date range of its
first time expression (or none, for negatives like "May I ask"). A resolver scores a case when
its first found expression resolves to the expected range (for dateparser and ctparse, which
return an instant, when that instant lies in the expected range), or when it finds nothing in
a negative. Prints accuracy per category and the time per 1,000 sentences.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from engramdb.encode.timex import find_times

CASES = json.loads((Path(__file__).parent.parent / "tests" / "fixtures" / "timex_cases.json").read_text())

Span = tuple[date, date] | None


def engramdb_resolver(text: str, anchor: date) -> Span:
    found = find_times(text, anchor)
    return (found[0].start, found[0].end) if found else None


def dateparser_resolver(text: str, anchor: date) -> Span:
    from dateparser.search import search_dates

    base = datetime(anchor.year, anchor.month, anchor.day, 12)
    found = search_dates(text, languages=["en"], settings={"RELATIVE_BASE": base, "PREFER_DATES_FROM": "past"})
    if not found:
        return None
    d = found[0][1].date()
    return d, d


def ctparse_resolver(text: str, anchor: date) -> Span:
    import ctparse

    base = datetime(anchor.year, anchor.month, anchor.day, 12)
    res = ctparse.ctparse(text, ts=base, timeout=1.0)
    if res is None or res.resolution is None:
        return None
    r = res.resolution
    start = getattr(r, "start", r)
    end = getattr(r, "end", r)
    try:
        a = date(start.year, start.month or 1, start.day or 1)
        b = date(end.year, end.month or a.month, end.day or a.day)
    except (TypeError, ValueError, AttributeError):
        return None
    return a, b


def score(resolver: Callable[[str, date], Span], exact: bool) -> tuple[dict[str, float], float, float]:
    per: dict[str, list[bool]] = defaultdict(list)
    t0 = time.perf_counter()
    for c in CASES:
        try:
            got = resolver(c["text"], date.fromisoformat(c["anchor"]))
        except Exception:  # a candidate crashing on a sentence scores that sentence as wrong
            got = ("error",)  # type: ignore[assignment]
        want = c["expect"]
        if want is None:
            ok = got is None
        elif not got or got == ("error",):
            ok = False
        else:
            lo, hi = date.fromisoformat(want[0]), date.fromisoformat(want[1])
            ok = (got[0] == lo and got[1] == hi) if exact else (lo <= got[0] <= hi)
        per[c["category"]].append(ok)
    seconds = time.perf_counter() - t0
    acc = {k: sum(v) / len(v) for k, v in sorted(per.items())}
    overall = sum(sum(v) for v in per.values()) / len(CASES)
    return acc, overall, seconds / len(CASES) * 1000


def main() -> None:
    rows = [("engramdb (exact range)", engramdb_resolver, True), ("engramdb (instant in range)", engramdb_resolver, False)]
    for name, fn in (("dateparser", dateparser_resolver), ("ctparse", ctparse_resolver)):
        try:
            fn("yesterday", date(2023, 1, 2))
            rows.append((f"{name} (instant in range)", fn, False))
        except ImportError:
            print(f"{name} not installed: pip install {name}")
    cats = sorted({c["category"] for c in CASES})
    print(f"{len(CASES)} cases\n")
    print(f"{'resolver':30} {'all':>6} {'ms/1k':>8} " + " ".join(f"{c[:10]:>10}" for c in cats))
    for name, fn, exact in rows:
        acc, overall, ms = score(fn, exact)
        print(f"{name:30} {overall:6.3f} {ms * 1000:8.0f} " + " ".join(f"{acc.get(c, 0):10.3f}" for c in cats))


if __name__ == "__main__":
    main()
