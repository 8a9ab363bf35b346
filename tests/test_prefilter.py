"""The literal-start shortcut of rule patterns (engramdb.encode.prefilter): pure logic, no store.

It may only skip a pattern that cannot match; these tests search every rule pattern on texts made
to match them (the labelled poisoning set, time expressions, random mixtures of their words) and
fail on any match the shortcut would have skipped.
"""

from __future__ import annotations

import json
import random
import re
from datetime import date
from pathlib import Path

from engramdb import guard
from engramdb.encode import timex
from engramdb.encode.prefilter import candidates, finditer, literal_starts, lowered

DATA = Path(guard.__file__).parent / "data" / "poisoning.jsonl"


def test_literal_starts_of_simple_patterns() -> None:
    assert literal_starts(re.compile(r"\b(?:ignore|disregard)\b all")) == ("disre", "ignor")
    assert literal_starts(re.compile(r"(?<!not )\bhi+ there", re.I)) == ("hi",)  # repeats: once is sure
    assert literal_starts(re.compile(r"[ab]c")) == ("ac", "bc")
    assert literal_starts(re.compile(r"(?:a|bb)(?:c|d)")) == ("ac", "ad", "bbc", "bbd")
    assert literal_starts(re.compile(r"x?yz")) == ("xyz", "yz")  # with the optional part and without
    assert literal_starts(re.compile(r"(?:the )?cat|dog|void\b[^.]{0,9}\bprior")) == ("cat", "dog", "the c", "void")
    for anything in (r"\d+ days", r"x*\s*yz", r".foo", r"(?:foo|\w+)", r"[^a]b", r"|foo"):
        assert literal_starts(re.compile(anything)) is None, anything  # may begin anywhere: always run


def test_finditer_tries_the_pattern_only_where_it_may_begin() -> None:
    p = re.compile(r"(?<!not )\bignore\b")
    text = "Do not ignore this; ignore that; signore; IGNORE"
    assert [m.span() for m in finditer(p, ("ignor",), text, lowered(text))] == [m.span() for m in p.finditer(text)]
    assert candidates(("ignor",), lowered(text) or "") == [7, 20, 34, 42]
    assert lowered("ıgnore") is None  # not ASCII: searched whole, as re folds case its own way
    q = re.compile(r"ab|b", re.I)
    assert [m.span() for m in finditer(q, literal_starts(q), "xABbab", "xabbab")] == [(1, 3), (3, 4), (4, 6)]


def _texts() -> list[str]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [r["text"] for r in rows]
    texts += ["the day before yesterday", "on the 3rd of May", "last Friday we met", "Back in 2019 I moved",
              "the week before last", "in early March 2021", "Over the weekend", "5 years ago", "2023-05-07"]
    # Random mixtures of the words the patterns are built of, in every case.
    words = sorted({w for p in [c[2] for c in guard._CUES] + [r[0] for r in timex._RULES]
                    for w in re.findall(r"[A-Za-z']{2,}", p.pattern)})
    rng = random.Random(7)
    for _ in range(3000):
        picked = rng.sample(words, rng.randint(2, 9))
        texts.append(" ".join(w.upper() if rng.random() < 0.2 else w for w in picked))
    return texts


def test_no_rule_pattern_is_skipped_on_a_text_it_matches() -> None:
    patterns = [c[2] for c in guard._CUES] + [r[0] for r in timex._RULES] + list(timex._CUES.values())
    starts = [literal_starts(p) for p in patterns]
    assert sum(s is not None for s in starts) >= len(patterns) // 2  # the shortcut applies to most
    matched = 0
    for text in _texts():
        low = lowered(text)
        for p, s in zip(patterns, starts):
            every = [m.span() for m in p.finditer(text)]
            matched += bool(every)
            assert [m.span() for m in finditer(p, s, text, low)] == every, (p.pattern[:60], text)
    assert matched > 500  # the texts do exercise the patterns


def test_guard_verdicts_are_those_of_searching_every_cue(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    g = guard.Guard()
    texts = _texts()[:600]
    fast = [g.check(t, source) for t in texts for source in ("user", "tool")]
    monkeypatch.setattr(guard, "_STARTS", [None] * len(guard._CUES))  # every cue searched on every text
    assert [g.check(t, source) for t in texts for source in ("user", "tool")] == fast
    assert sum(v.flagged for v in fast) > 50


def test_time_expressions_are_those_of_searching_every_rule(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    texts = _texts()
    day = date(2024, 5, 1)
    fast = [timex.find_times(t, day) for t in texts]
    monkeypatch.setattr(timex, "_CUE_STARTS", dict.fromkeys(timex._CUES))
    monkeypatch.setattr(timex, "_RULE_STARTS", [None] * len(timex._RULES))
    assert [timex.find_times(t, day) for t in texts] == fast
    assert sum(bool(f) for f in fast) > 200
