"""Time grounding end to end: resolved dates on write, timeline order, dated context lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engramdb import InputError, Memory
from engramdb.cli import main

# Said on the dates given; the events they tell happened earlier ("yesterday", "last week"...).
CONVERSATION = [
    ("2023-03-06T10:00:00", "s1", "I adopted a beagle puppy named Max yesterday!"),
    ("2023-03-06T10:01:00", "s1", "I also signed up for a pottery course last week."),
    ("2023-04-20T09:00:00", "s2", "Two weeks ago I ran my first half marathon in Leiden."),
    ("2023-04-20T09:01:00", "s2", "Max chewed my running shoes the day before yesterday."),
    ("2023-06-01T18:00:00", "s3", "I bought a new car, a blue hatchback, on the 28th."),
    ("2023-06-01T18:01:00", "s3", "Back in 2019 I lived in Madrid for a year."),
]


@pytest.fixture
def tmem(mem: Memory) -> Memory:
    for ts, sid, text in CONVERSATION:
        mem.add({"role": "user", "name": "Sam", "content": text}, user_id="sam", session_id=sid, timestamp=ts)
    return mem


def test_which_came_first(tmem: Memory) -> None:
    events = tmem.timeline(user_id="sam", query="adopted puppy, half marathon, new car", now="2023-06-10")
    order = [e.text for e in events]
    puppy = order.index("I adopted a beagle puppy named Max yesterday!")
    marathon = order.index("Two weeks ago I ran my first half marathon in Leiden.")
    car = order.index("I bought a new car, a blue hatchback, on the 28th.")
    assert puppy < marathon < car
    madrid = tmem.timeline(user_id="sam", query="Madrid", now="2023-06-10")
    assert madrid[0].event_time.year == 2019


def test_timeline_orders_by_event_time_not_by_when_said(tmem: Memory) -> None:
    # said on 2023-06-01, happened in 2019: it comes first
    events = tmem.timeline(user_id="sam")
    assert events[0].text.startswith("Back in 2019")
    assert [e.event_time for e in events] == sorted(e.event_time for e in events)
    shoes = next(e for e in events if "shoes" in e.text)
    assert shoes.times[0].start.isoformat() == "2023-04-18"


def test_timeline_period_bounds(tmem: Memory) -> None:
    april = tmem.timeline(user_id="sam", start="2023-04-01", end="2023-04-30")
    texts = {e.text for e in april}
    # the marathon was two weeks before 2023-04-20 and the shoes two days before: both in April
    assert "Two weeks ago I ran my first half marathon in Leiden." in texts
    assert "Max chewed my running shoes the day before yesterday." in texts
    assert "I adopted a beagle puppy named Max yesterday!" not in texts
    with pytest.raises(InputError):
        tmem.timeline(user_id="sam", start="2023-05-01", end="2023-04-01")


def test_context_states_resolved_dates(tmem: Memory) -> None:
    ctx = tmem.context("When did I adopt Max?", user_id="sam", budget_tokens=200, now="2023-06-10")
    assert "Max yesterday [2023-03-05]!" in ctx
    ctx = tmem.context("When did I buy the car?", user_id="sam", budget_tokens=200, now="2023-06-10")
    assert "on the 28th [2023-05-28]" in ctx


def test_when_question_prefers_the_dated_mention(mem: Memory) -> None:
    mem.add("I love going to the climbing gym with friends.", user_id="u", session_id="a", timestamp="2023-01-02")
    mem.add("I went to the climbing gym last Saturday.", user_id="u", session_id="b", timestamp="2023-02-06")
    hit = mem.search("When did I go to the climbing gym?", user_id="u", now="2023-03-01")[0]
    assert "last Saturday" in hit.text and hit.signals["relevance"] > 0


def test_cli_timeline(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    runner = CliRunner()
    for ts, sid, text in CONVERSATION:
        r = runner.invoke(main, ["add", "--db", db, "--user", "sam", "--session", sid, "--time", ts, text])
        assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["timeline", "--db", db, "--user", "sam"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert r.output.index("Madrid") < r.output.index("beagle") < r.output.index("hatchback")
    assert "yesterday → 2023-03-05" in r.output


def test_before_and_after_an_event(mem: Memory) -> None:
    # Two purchases alike in all but their date, around a move: the question's side wins.
    mem.add("I bought a red tent for camping.", user_id="u", session_id="a", timestamp="2023-01-05")
    mem.add("I moved to Berlin, the flat is lovely.", user_id="u", session_id="b", timestamp="2023-03-01")
    mem.add("I bought a blue tent for camping.", user_id="u", session_id="c", timestamp="2023-04-10")
    for question, answer, other in (("before", "red tent", "blue tent"), ("after", "blue tent", "red tent")):
        hits = mem.search(f"What did I buy {question} I moved to Berlin?", user_id="u", now="2023-06-01")
        texts = [h.text for h in hits]
        right = next(i for i, t in enumerate(texts) if answer in t)
        wrong = next(i for i, t in enumerate(texts) if other in t)
        assert right < wrong, texts
        assert hits[right].signals["time"] > 0 and hits[wrong].signals["time"] == 0
        assert any(h.signals.get("anchor") == 1.0 and "moved to Berlin" in h.text for h in hits)


def test_the_anchor_event_is_cited_with_the_answer(mem: Memory) -> None:
    mem.add("I bought hiking boots for the Alps.", user_id="u", session_id="z", timestamp="2022-12-01")
    mem.add("I bought a red tent for camping.", user_id="u", session_id="a", timestamp="2023-01-05")
    mem.add("I moved to Berlin, the flat is lovely.", user_id="u", session_id="b", timestamp="2023-03-01")
    hits = mem.search("What did I buy before I moved to Berlin?", user_id="u", now="2023-06-01", limit=2)
    assert "bought" in hits[0].text
    assert "moved to Berlin" in hits[1].text and hits[1].signals["anchor"] == 1.0
    assert hits[1].score <= hits[0].score
    [only] = mem.search("What did I buy before I moved to Berlin?", user_id="u", now="2023-06-01", limit=1)
    assert "bought" in only.text


def test_query_analysis_anchor() -> None:
    from datetime import datetime, timezone

    from engramdb.recall.query import analyse

    now = datetime(2023, 6, 1, tzinfo=timezone.utc)
    assert analyse("What did I buy before I moved to Berlin?", now).anchor == ("before", "I moved to Berlin")
    assert analyse("What did I do after the trip to Japan", now).anchor == ("after", "the trip to Japan")
    a = analyse("What did I do before May 2023?", now)
    assert a.anchor is None and a.ranges
    # an event clause longer than the cap ends at a word's end: neither it nor the rest halves a word
    long = ("How many days had passed since I bought my new running shoes when I realized that one of the "
            "laces on my old leather sneakers had snapped?")
    a = analyse(long, now)
    words = set(long.split()) | {"?"}
    assert a.anchor is not None and set(a.anchor[1].split()) <= words and set(a.core.split()) <= words


def test_future_range_only_for_questions_about_the_future() -> None:
    from datetime import datetime, timezone

    from engramdb.recall.query import analyse

    now = datetime(2023, 5, 30, 20, tzinfo=timezone.utc)
    assert analyse("How many followers did I gain in two weeks?", now).ranges == ()
    [r] = analyse("What will I be doing in two weeks?", now).ranges
    assert datetime.fromtimestamp(r.lo, timezone.utc).date().isoformat() == "2023-06-12"
    assert len(analyse("What did I do two weeks ago?", now).ranges) == 1
    assert len(analyse("What is on my calendar for June 12?", now).ranges) == 1  # a date stays a date


def test_a_range_covering_most_of_memory_boosts_little(mem: Memory) -> None:
    # Asked about "last week": in ten days of chats that week is most of memory, so the range
    # tells little and must not reshuffle recall; in two months of chats it singles out a few.
    for user, days in (("short", range(50, 61)), ("long", range(1, 61))):
        for n in days:
            month, day = (4, n) if n <= 30 else (5, n - 30)
            mem.add(f"Notes from day {n}: groceries and errands", user_id=user, session_id=f"s{n}",
                    timestamp=f"2023-{month:02d}-{day:02d}T12:00:00")
    def boost(user: str) -> float:
        hits = mem.search("errands last week", user_id=user, now="2023-05-30T20:00:00", limit=50)
        return max(h.signals["time"] for h in hits)
    assert boost("short") < 0.35
    assert boost("long") > 0.7


def test_a_first_person_anchor_is_the_users_own_statement(mem: Memory) -> None:
    said = ("Lots to tell: the cat is fine, work is busy with the quarterly report, my sister visited, "
            "and I moved to Berlin last week; the flat is lovely.")
    mem.add([{"role": "user", "content": said},
             {"role": "assistant", "content": "You moved to Berlin! I had moved to Berlin too, once."}],
            user_id="u", session_id="b", timestamp="2023-03-08")
    mem.add("I bought a red tent for camping.", user_id="u", session_id="a", timestamp="2023-02-20")
    for i in range(5):
        mem.add(f"I bought paint number {i} for the new Berlin flat.", user_id="u", session_id=f"c{i}",
                timestamp=f"2023-04-1{i}")
    hits = mem.search("What did I buy before I moved to Berlin?", user_id="u", now="2023-06-01", limit=3)
    assert "red tent" in hits[0].text
    [event] = [h for h in hits if h.signals.get("anchor")]
    assert event.episodes[0].role == "user" and event.text == said


def test_range_touches_is_where_closeness_is_above_zero() -> None:
    """The share of memory a time range covers is counted with ``range_touches`` over every
    episode: it must be exactly where ``range_closeness`` is above 0 (said or mentioned times,
    margins, missing event times, ranges open on one side)."""
    import numpy as np

    from engramdb.recall.query import _OPEN, TimeRange, range_closeness, range_touches

    rng = np.random.default_rng(1)
    n = 50_000
    ts = rng.uniform(0, 1e8, n)
    lo = np.where(rng.random(n) < 0.3, rng.uniform(0, 1e8, n), np.nan)
    hi = lo + rng.uniform(0, 1e6, n)
    day = 86400.0
    edges = np.concatenate([ts[:50], lo[:50][~np.isnan(lo[:50])]])  # ranges starting on an episode's time
    for start in np.concatenate([rng.uniform(0, 1e8, 60), edges]):
        for width in (day, 7 * day, 30 * day, _OPEN):
            r = TimeRange(float(start), float(start + width), False)
            touched = range_touches(ts, lo, hi, r)
            assert np.array_equal(touched, range_closeness(ts, lo, hi, r) > 0)
    assert range_touches(ts, lo, hi, TimeRange(5e7, 5e7 + 7 * day, False)).any()
