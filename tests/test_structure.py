"""Structured memory on small synthetic conversations with the real embedding model, on both
backends: a count across five sessions with a duplicate telling, a sum of amounts in mixed
units, the latest value of something that changed, a "where" question answered by a place tag,
and a summary tree that updates when episodes arrive and repairs itself when they go. Plus the
pure parts: amounts, predicates, object patterns, aggregate questions and place tags."""

from __future__ import annotations

import pytest

from engramdb import InputError, Memory, RecallOptions
from engramdb.consolidate.extract import RuleExtractor
from engramdb.consolidate.mentions import place_tags
from engramdb.encode.quantity import convert, find_quantities, singular
from engramdb.recall.query import aggregate_of
from engramdb.semantic import PREDICATES, predicate_of
from engramdb.structured import object_matches

U = "ana"


def _say(mem: Memory, session: str, when: str, *texts: str, user: str = U) -> list[str]:
    return mem.add([{"role": "user", "content": t} for t in texts], user_id=user, session_id=session, timestamp=when)


# -- the pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I paid $1,200 for it", [(1200.0, "USD", "money")]),
        ("we raised 5k dollars", [(5000.0, "USD", "money")]),
        ("it cost £40 and €12.50", [(40.0, "GBP", "money"), (12.5, "EUR", "money")]),
        ("2 hours and 30 minutes", [(2.0, "hours", "duration"), (0.5, "hours", "duration")]),
        ("half an hour", [(0.5, "hours", "duration")]),
        ("70 pounds of feed", [(70 * 0.45359237, "kg", "weight")]),
        ("I ran 5 miles", [(5 * 1.609344, "km", "distance")]),
        ("three online courses", [(3.0, "online course", "count")]),
        ("4 doctor's appointments", [(4.0, "doctor's appointment", "count")]),
        ("a dozen eggs", [(12.0, "egg", "count")]),
        ("I'm 32 years old, in 2019, at 10:30 on 5/7", []),  # an age, a year, a clock, a date
    ],
)
def test_amounts_are_read_and_normalised(text: str, expected: list[tuple[float, str, str]]) -> None:
    got = [(round(q.value, 6), q.unit, q.kind) for q in find_quantities(text)]
    assert got == [(round(v, 6), u, k) for v, u, k in expected]


def test_units_convert_within_a_kind_only() -> None:
    assert convert(1.5, "hours", "minutes") == pytest.approx(90)
    assert convert(1.0, "kg", "lb") == pytest.approx(2.20462, rel=1e-4)
    assert convert(10, "km", "miles") == pytest.approx(6.2137, rel=1e-4)
    assert convert(3, "hours", "kg") is None and convert(3, "USD", "EUR") is None
    assert singular("Online Courses") == "online course" and singular("classes") == "class"


def test_predicates_are_a_vocabulary_with_aliases() -> None:
    assert predicate_of("lives in") == "lives_in" and predicate_of("Purchased") == "bought"
    assert predicate_of("works-at") == "works_at" and predicate_of("nonsense") is None
    assert {"bought", "lives_in", "works_at", "likes", "visited", "spent", "says"} <= set(PREDICATES)


def test_facts_carry_their_amounts() -> None:
    x = RuleExtractor(statements=False)
    got = {(d.predicate, d.object, d.amount, d.unit) for t in (
        "I just bought a new bike for $300.", "I spent 45 minutes on my pottery homework.",
        "We raised $1,500 for the animal shelter.", "I spent 5 days in Hawaii.", "I own 4 guitars.",
    ) for d in x.extract(t, "user", "user")}
    assert got == {
        ("bought", "bike", 300.0, "USD"), ("spent", "pottery homework", 0.75, "hours"),
        ("raised", "animal shelter", 1500.0, "USD"), ("visited", "Hawaii", 120.0, "hours"),
        ("owns", "guitars", 4.0, "guitar"),
    }
    assert x.extract("I might buy a $300 bike.", "user", "user") == []  # a hypothetical: nothing


def test_object_patterns() -> None:
    assert object_matches("wedding", "I went to 3 weddings")  # singular matches plural
    assert object_matches("*shop", "a pottery workshop") and not object_matches("*shop", "pottery class")
    assert object_matches('"pottery class"', "my Pottery Class") and not object_matches('"pottery class"', "class of pottery")
    assert object_matches("bike|car", "a red car") and not object_matches("bike car", "a red car")


@pytest.mark.parametrize(
    "question, kind, focus",
    [
        ("How many weddings have I attended this year?", "count", "weddings"),
        ("How much money did I raise in total through all the charity events?", "sum", "money"),
        ("How many hours of yoga did I do last week?", "sum", "hours of yoga"),
        ("List all the books I read in May", "list", "books"),
        ("Which restaurant did I go to most often?", "most", "restaurant"),
        ("How many days ago did I buy a smoker?", None, None),  # a date difference, not an aggregate
        ("How many days passed between the mass and the service?", None, None),
        ("What is my sister's name?", None, None),
    ],
)
def test_aggregate_questions(question: str, kind: str | None, focus: str | None) -> None:
    agg = aggregate_of(question)
    assert (agg.kind, agg.focus) == (kind, focus) if kind else agg is None


def test_place_tags() -> None:
    assert place_tags("I was at the local gym this morning, then went home.") == ["gym", "home"]
    assert place_tags("Met Sam at the coffee shop and worked from home") == ["coffee shop", "home"]
    assert place_tags("I love the idea of a gym membership.") == []


# -- structured memory in a real store -----------------------------------------------------------


def test_a_count_across_five_sessions_with_a_duplicate_telling(mem: Memory) -> None:
    _say(mem, "s1", "2024-01-06", "I went to my cousin Rachel's wedding on January 5th, it was lovely.")
    _say(mem, "s2", "2024-02-10", "Can you recommend a good lasagna recipe?")
    _say(mem, "s3", "2024-03-07", "I attended my college friend's wedding in Napa yesterday.")
    _say(mem, "s4", "2024-05-20", "Just got back from my colleague Sam's wedding, the band was great.")
    _say(mem, "s5", "2024-06-02", "I bought a new bike for $300.")
    _say(mem, "s6", "2024-07-01", "Remember I went to my cousin Rachel's wedding on January 5th? It was lovely.",
         "I bought a new bike for $300, I told you.")
    # query(): the purchase told twice is one row citing both tellings
    bikes = mem.query(user_id=U, predicate="purchased", object="bike")
    assert len(bikes) == 1 and len(bikes[0].episodes) == 2 and bikes[0].amount == 300.0
    # search(): the weddings of four sessions gathered, the one told twice once, first in the hits
    q = "How many weddings have I attended this year?"
    hits = mem.search(q, user_id=U, now="2024-07-02")
    assert hits.aggregate == "count" and len(hits.instances) == 3
    assert all(h in hits[:10] for h in hits.instances)
    twice = [h for h in hits.instances if len(h.episodes) == 2]
    assert len(twice) == 1 and {e.session_id for e in twice[0].episodes} == {"s1", "s6"}
    assert {e.session_id for h in hits.instances for e in h.episodes} == {"s1", "s3", "s4", "s6"}
    one = mem.search(q, user_id=U, now="2024-07-02", limit=1)
    assert len(one) == 1 and list(one.instances) == list(one)  # the caller's limit holds
    # context(): says how many, and marks each
    ctx = mem.context(q, user_id=U, budget_tokens=400, now="2024-07-02")
    assert "3 possible instances found" in ctx
    assert all(f"#{i} [" in ctx for i in (1, 2, 3)) and "#4 [" not in ctx
    # without aggregating recall: no instances, and a plain list
    plain = mem.search(q, user_id=U, now="2024-07-02", options=RecallOptions(aggregate=False))
    assert plain.aggregate is None and plain.instances == ()


def test_a_sum_of_amounts_in_mixed_units(mem: Memory) -> None:
    _say(mem, "s1", "2024-03-01", "I spent 2 hours on my ocean sculpture today.")
    _say(mem, "s2", "2024-03-08", "I spent 45 minutes on the sculpture this morning.")
    _say(mem, "s3", "2024-03-09", "I spent $120 on sculpting clay.", "I spent €30 on new brushes.")
    time = mem.query(user_id=U, predicate="spent", object="sculpture")
    assert len(time) == 2 and time.total() == {"hours": 2.75} and time.total("minutes") == {"minutes": 165.0}
    money = mem.query(user_id=U, predicate="spent", amounts=True)
    assert money.total() == {"hours": 2.75, "USD": 120.0, "EUR": 30.0}  # a total per unit, never mixed
    assert mem.query(user_id=U, predicate="spent", between=("2024-03-05", "2024-03-08T23:59")).total() == {"hours": 0.75}


def test_the_latest_value_of_something_that_changed(mem: Memory) -> None:
    _say(mem, "s1", "2023-01-10", "I moved to Lisbon.")
    _say(mem, "s2", "2023-09-01", "I moved to Porto for my new job.")
    _say(mem, "s3", "2024-02-01", "I moved to Berlin last week.")
    rows = mem.query(user_id=U, predicate="lives in")
    assert [r.object for r in rows] == ["Berlin"] and rows.latest is not None and rows.latest.object == "Berlin"
    then = mem.query(user_id=U, predicate="lives_in", as_of="2023-10-01")
    assert [r.object for r in then] == ["Porto"] and then[0].valid_to is not None
    history = mem.query(user_id=U, predicate="lives_in", as_of="2023-05-01")
    assert [r.object for r in history] == ["Lisbon"]
    with pytest.raises(InputError):
        mem.query(user_id=U, predicate="flies_to")
    with pytest.raises(InputError):
        mem.query(user_id=U, between=("2024-01-01", "2023-01-01"))


def test_a_where_question_is_answered_by_a_place_tag(mem: Memory) -> None:
    _say(mem, "s1", "2024-04-01", "I lost my blue scarf again, I'm so sad about it.")
    _say(mem, "s2", "2024-04-03", "Good news: I found my blue scarf!", "It was a gift from my grandmother.")
    _say(mem, "s3", "2024-04-03", "I found my blue scarf in the locker room at the gym.")
    _say(mem, "s4", "2024-04-05", "I washed my blue scarf before wearing it again.")
    mem.add([{"role": "user", "content": "Had a long talk about the scarf with Mia.", "place": "Café Central"}],
            user_id=U, session_id="s5", timestamp="2024-04-06")
    q = "Where did I find my blue scarf?"
    hits = mem.search(q, user_id=U)
    assert "at the gym" in hits[0].text and hits[0].signals.get("place")
    blind = mem.search(q, user_id=U, options=RecallOptions(place_where=0, place_named=0))
    assert "at the gym" not in blind[0].text  # without the tag, the closer wording wins
    assert {p.name for p in mem.places(user_id=U)} >= {"gym", "Café Central"}
    assert [e.session_id for e in mem.timeline(user_id=U, place="GYM")] == ["s3"]
    assert [e.session_id for e in mem.timeline(user_id=U, place="Café Central")] == ["s5"]  # the place given
    assert [e.session_id for e in mem.timeline(user_id=U, query="blue scarf", place="gym")] == ["s3"]
    assert mem.timeline(user_id=U, place="the moon") == []


def test_a_summary_tree_updates_and_repairs_itself(mem: Memory) -> None:
    _say(mem, "s1", "2024-01-05", "I started pottery classes at the community center with my friend Deborah.",
         "Deborah says the teacher is great.")
    _say(mem, "s2", "2024-02-05", "Deborah and I made bowls at pottery today.", "I moved to Lisbon last month.")
    sessions = mem.summary(user_id=U, level="session")
    assert [n.key for n in sessions] == ["s1", "s2"]
    assert all(n.children and n.episodes for n in sessions)
    topics = {n.key: n for n in mem.summary(user_id=U, level="topic")}
    assert set(topics["Deborah"].children) == {"s1", "s2"}  # named in both sessions
    person = mem.summary(user_id=U, level="person")
    assert person[0].key == "user" and "Lisbon" in person[0].text and "Deborah" in person[0].children
    segments = mem.summary(user_id=U, level="segment")
    assert {c for n in sessions for c in n.children} == {s.key for s in segments}  # each cites its children
    # a new session: its node appears, Deborah's topic grows, the old nodes stay
    s3 = _say(mem, "s3", "2024-03-05", "I went hiking near Sintra with Deborah.")
    old = {n.key: n.id for n in mem.summary(user_id=U, level="session") if n.key != "s3"}
    assert [n.key for n in mem.summary(user_id=U, level="session")] == ["s1", "s2", "s3"]
    assert {n.key: n.id for n in mem.summary(user_id=U, level="session") if n.key != "s3"} == old  # not rebuilt
    assert set({n.key: n for n in mem.summary(user_id=U, level="topic")}["Deborah"].children) == {"s1", "s2", "s3"}
    # deleting an episode: no node cites it or quotes it, and the tree is whole again
    mem.delete(s3[0], user_id=U)
    nodes = [n for lvl in ("session", "topic", "person") for n in mem.summary(user_id=U, level=lvl)]
    assert all(s3[0] not in n.episodes and "Sintra" not in n.text for n in nodes)
    assert [n.key for n in mem.summary(user_id=U, level="session")] == ["s1", "s2"]
    assert set({n.key: n for n in mem.summary(user_id=U, level="topic")}["Deborah"].children) == {"s1", "s2"}
    assert mem.summary(user_id=U, level="topic", query="pottery bowls")[0].key == "Deborah"
    with pytest.raises(InputError):
        mem.summary(user_id=U, level="galaxy")
