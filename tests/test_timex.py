"""The time-expression resolver on the hand-written test set (tests/fixtures/timex_cases.json)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from engramdb.encode.timex import annotate, find_times

CASES = json.loads((Path(__file__).parent / "fixtures" / "timex_cases.json").read_text())


def _check(case: dict) -> bool:
    found = find_times(case["text"], date.fromisoformat(case["anchor"]))
    if case["expect"] is None:
        return not found
    if not found:
        return False
    t = found[0]
    want_start, want_end = case["expect"]
    return t.start.isoformat() == want_start and t.end.isoformat() == want_end


def test_case_set_is_large_and_covers_every_category() -> None:
    assert len(CASES) >= 150
    cats = Counter(c["category"] for c in CASES)
    for needed in ("deictic", "ago", "weekday", "named-period", "month", "year", "calendar-date", "future", "locomo-style", "negative"):
        assert cats[needed] >= 5, needed


def test_resolver_accuracy_at_least_95_percent_per_category() -> None:
    by_cat: dict[str, list[bool]] = {}
    for c in CASES:
        by_cat.setdefault(c["category"], []).append(_check(c))
    overall = sum(sum(v) for v in by_cat.values()) / len(CASES)
    report = {k: round(sum(v) / len(v), 3) for k, v in by_cat.items()}
    failures = [c for c in CASES if not _check(c)]
    assert overall >= 0.95, (report, failures[:10])


@pytest.mark.parametrize("case", [c for c in CASES if c["category"] == "negative"], ids=lambda c: c["text"][:30])
def test_negatives_are_not_times(case: dict) -> None:
    assert find_times(case["text"], date.fromisoformat(case["anchor"])) == []


def test_annotate_inserts_resolved_dates() -> None:
    text = "I went to a support group yesterday and will go again next Friday."
    out = annotate(text, find_times(text, date(2023, 5, 8)))
    assert out == "I went to a support group yesterday [2023-05-07] and will go again next Friday [2023-05-19]."


@pytest.mark.parametrize(
    "text", ["The pyramids were built 5000 years ago.", "99999999 days ago", "in 99999999 weeks", "3000 decades ago"]
)
def test_unrepresentable_dates_are_skipped_not_raised(text: str) -> None:
    assert find_times(text, date(2023, 5, 8)) == []


def test_long_text_is_fast() -> None:
    import time

    text = ("I went to the market yesterday and met Anna. " * 2000)[:100_000]
    t0 = time.perf_counter()
    found = find_times(text, date(2023, 5, 8))
    assert len(found) > 1000 and time.perf_counter() - t0 < 5.0
