"""Associative recall, each mechanism on its own, on small synthetic conversations with the real
embedding model: aliases merged into one entity, a two-hop question answered through an entity
the question does not name, a note that evolves when a new episode arrives, the pieces of a
question about two events gathered one by one, an exact token ranked first, and knowing when
nothing in memory is relevant. Plus the pure parts: mention finding and Personalized PageRank."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from engramdb import InputError, Memory, NotFoundError, OnnxEmbedder, RecallOptions, Weights
from engramdb.consolidate.mentions import Names, mentions
from engramdb.recall.graph import GraphIndex, names_in, ppr
from engramdb.recall.packing import GROUPED_HEADER, HEADER, OTHER, group_by_entity
from engramdb.recall.query import exact_words, facets
from engramdb.store.base import ROLES


def _add(mem: Memory, texts: list[str], session: str = "s1", user: str = "u") -> list[str]:
    return mem.add([{"role": "user", "content": t} for t in texts], user_id=user, session_id=session)


def _rank(hits: list, needle: str) -> int | None:
    return next((i + 1 for i, h in enumerate(hits) if needle in h.text), None)


# -- the graph -------------------------------------------------------------------------------


def test_aliases_merge_into_one_entity(mem: Memory) -> None:
    first = _add(mem, ["I had lunch with my sister Deborah at St. Mary's Church."])[0]
    deb = _add(mem, ["Deb called me yesterday, she sounded happy."], "s2")[0]
    sister = _add(mem, ["My sister wants to visit Lisbon in May."], "s3")[0]
    people = {e.name: e for e in mem.entities(user_id="u")}
    assert "Deb" not in people  # the short form is her, not someone new
    assert {"user's sister", "Deb"} <= set(people["Deborah"].aliases)
    assert people["St. Mary's Church"].kind == "place" and people["Lisbon"].kind == "place"
    g = mem.graph(user_id="u", around="deb")  # found by an alias, case aside
    around = {e.source for e in g.edges if e.reason == "mentions" and e.target == people["Deborah"].id}
    assert {first, deb, sister} <= around  # "my sister" alone meant her too
    with pytest.raises(NotFoundError):
        mem.graph(user_id="u", around="Nobody")
    edges = len([e for e in g.edges if e.reason == "mentions"])
    assert mem.rebuild_graph(user_id="u") >= edges  # found again from the episodes, the same
    assert {(e.name, e.episodes) for e in mem.entities(user_id="u")} == {(e.name, e.episodes) for e in people.values()}


def test_entities_written_elsewhere_are_known_to_the_next_add(store_at: Callable[[str], str]) -> None:
    """Consolidation keeps the entities it resolves mentions against in memory and reads what
    changed: another writer's new entity, its new alias for an entity already kept, a
    deletion, and a user made again are all seen."""
    at = store_at("shared")
    with Memory(at, embedder=None) as one, Memory(at, embedder=None) as two:
        _add(one, ["I met Marisol at the climbing gym."])  # one reads (and keeps) the entities
        _add(two, ["I had lunch with Deborah at the harbour."], "s2")  # a new entity, elsewhere
        deb = _add(one, ["Yesterday Deb called me, she sounded happy."], "s3")[0]
        people = {e.name: e for e in one.entities(user_id="u")}
        assert "Deb" not in people and "Deb" in people["Deborah"].aliases  # one saw two's Deborah
        _add(two, ["My sister Deborah is visiting in May."], "s4")  # a new alias of a kept entity
        sis = _add(one, ["My sister is coming over on Sunday."], "s5")[0]
        assert deb in {r.episode.id for r in one.related(sis, user_id="u")}  # "my sister": Deborah
        assert "user's sister" not in {e.name for e in one.entities(user_id="u")}
        one.forget(user_id="u")  # the user goes, and comes back
        from engramdb.consolidate import engine

        assert not [k for k in engine._NAMES if k[1] == "u"]  # nothing of them kept in memory
        _add(two, ["My sister Ana moved to Porto."], "t1")
        again = _add(one, ["My sister is coming over on Sunday."], "t2")[0]
        names = {e.name for e in one.entities(user_id="u")}
        assert "Deborah" not in names and "Marisol" not in names  # nothing of before resolves
        assert {r.episode.id for r in one.related(again, user_id="u")}  # "my sister": Ana now


def test_two_hop_question_through_an_entity_it_does_not_name(mem: Memory) -> None:
    _add(mem, ["My sister Deborah finally married Tomasz last spring.", "I want to visit Lisbon next summer."]
         + [f"Random note number {i} about gardening and tomatoes." for i in range(8)])
    _add(mem, [  # months later, among others who work somewhere
        "My friend Priya works at a bakery downtown.",
        "Jonas works at the city library, he loves it.",
        "Work has been hectic for me lately.",
        "Tomasz works at Acme Robotics as an engineer.",
        "My neighbour works at the hospital on night shifts.",
        "Marta works at a bank in the old town.",
    ], "s2")
    q = "Where does Deborah's husband work?"
    with_graph = mem.search(q, user_id="u", limit=5, options=RecallOptions(weights=Weights(graph=0.2)))
    without = mem.search(q, user_id="u", limit=5)  # the walk is off by default
    # the answer names Tomasz, whom only the wedding links to Deborah
    assert (_rank(with_graph, "Acme Robotics") or 99) <= 3
    assert (_rank(without, "Acme Robotics") or 99) > 3
    hit = with_graph[_rank(with_graph, "Acme Robotics") - 1]  # type: ignore[operator]
    assert hit.signals["graph"] > 0 and "graph" in str(mem.why(hit))


def test_context_groups_the_pieces_of_a_question_by_entity(mem: Memory) -> None:
    _add(mem, ["My sister Deborah started a pottery class.", "Tomasz fixed my bike on Saturday.",
               "I planted tomatoes in the garden."])
    _add(mem, ["Deborah sent me a photo of her first vase.", "Tomasz is training for a marathon.",
               "The tomatoes are finally ripe."], "s2")
    _add(mem, ["Deborah wants to sell her pottery at the market.", "Tomasz ran the marathon in under four hours."], "s3")
    q = "What has Deborah been doing with her pottery?"
    grouped = mem.context(q, user_id="u", budget_tokens=400)  # auto: the question names her
    plain = mem.context(q, user_id="u", budget_tokens=400, group="time")
    assert plain.startswith(HEADER) and grouped.startswith(GROUPED_HEADER)
    assert set(grouped.episode_ids) == set(plain.episode_ids)  # the same lines, in another order
    lines = grouped.splitlines()
    heads = [line for line in lines if line.startswith("About ") or line == OTHER]
    assert heads[0] == "About Deborah:"  # the one the question names leads
    section = lines[lines.index("About Deborah:") + 1 :]
    section = section[: next((i for i, line in enumerate(section) if line in heads), len(section))]
    assert len(section) == 3 and all("Deborah" in line for line in section)
    said = ["started a pottery class", "sent me a photo", "sell her pottery"]  # oldest first within the group
    assert [next(i for i, t in enumerate(said) if t in line) for line in section] == [0, 1, 2]
    assert sum(line.count("Deborah sent me a photo") for line in lines) == 1  # each line once
    with pytest.raises(InputError):
        mem.context(q, user_id="u", group="people")


def test_group_by_entity_unit() -> None:
    about = {"a": ["Ann"], "b": ["Ann", "Bo"], "c": ["Bo"], "d": ["Bo"], "e": []}
    groups = group_by_entity(["a", "b", "c", "d", "e"], about, first=["Ann"])
    assert groups == [("Ann", ["a", "b"]), ("Bo", ["c", "d"]), ("", ["e"])]  # the question's first, each once
    assert group_by_entity(["a", "b", "c", "d", "e"], about)[0] == ("Bo", ["b", "c", "d"])  # most named first
    assert group_by_entity(["a", "b"], about, first=["Ann"]) is None  # one group, nothing else: no grouping
    assert group_by_entity(["b", "c", "d", "e"], about, first=["Ann"], led=True) is None  # Ann heads nothing
    assert group_by_entity(["a", "e"], about) is None


def test_a_note_evolves_when_a_new_episode_arrives(mem: Memory) -> None:
    wedding = _add(mem, ["My sister Deborah married Tomasz last spring.", "I live in Porto."])[0]
    before = next(e for e in mem.entities(user_id="u") if e.name == "Deborah")
    assert "Deb" not in before.aliases and before.episodes == 1
    later = _add(mem, ["Deb visited me last week.", "I live in Porto, still."], "s2")
    after = next(e for e in mem.entities(user_id="u") if e.name == "Deborah")
    assert "Deb" in after.aliases and after.episodes == 2  # a new alias, a new mention
    linked = {r.episode.id: r for r in mem.related(wedding, user_id="u")}
    assert later[0] in linked and "mentions Deborah" in linked[later[0]].reasons
    porto = [f for f in mem.facts(user_id="u") if "Porto" in f.text]
    assert len(porto) == 1 and len(porto[0].sources) == 2  # the fact has its second source
    with pytest.raises(NotFoundError):
        mem.related(wedding, user_id="someone-else")


# -- gathering the pieces of a question ------------------------------------------------------


def test_a_question_about_two_events_recalls_each(mem: Memory) -> None:
    sessions = [
        ["The kitchen renovation is finally done, new cabinets and all!", "I baked bread in the new oven right away."],
        ["I'm reading a novel about sailors.", "My cat knocked over a plant again."],
        ["Work was busy, lots of meetings about the budget.", "I watched a documentary on volcanoes."],
        ["We took a road trip to the coast last weekend, the cliffs were stunning.", "We stopped at a fish restaurant."],
        ["Thinking about which renovation comes first: bathroom or hallway?", "Did the first trip or the second trip cost more?"],
        ["Which came first, the chicken or the egg? My nephew asked me that.", "I started learning Spanish on an app."],
    ]
    for i, texts in enumerate(sessions):
        mem.add([{"role": "user", "content": t, "timestamp": f"2024-0{i + 1}-10T10:00:00"} for t in texts],
                user_id="u", session_id=f"s{i}")
    q = "Which happened first, the kitchen renovation or the road trip to the coast?"
    hits = mem.search(q, user_id="u", limit=3)
    assert _rank(hits, "kitchen renovation is") and _rank(hits, "road trip to the coast")
    assert any(h.signals.get("facet") for h in hits)
    alone = mem.search(q, user_id="u", limit=3, options=RecallOptions(facets=False))
    assert not (_rank(alone, "kitchen renovation is") and _rank(alone, "road trip to the coast"))


def test_facets_of_questions() -> None:
    assert facets("How many days passed between the wedding and the move to Porto?") == ("the wedding", "the move to Porto")
    assert facets("Who became a parent first, Rachel or Alex?") == ("Who became a parent Rachel", "Who became a parent Alex")
    assert facets("What do Jon and Gina both like?") == ("What do Jon like?", "What do Gina like?")
    assert len(facets("What is the order of: 'I signed up', 'I paid the fee' and 'I got the card'?")) == 3
    from datetime import datetime

    assert facets("Where was John between August 11 and August 15?", datetime(2023, 9, 1)) == ()  # a time range
    assert facets("What did Caroline paint?") == ()


# -- exact lookups ---------------------------------------------------------------------------


def test_exact_tokens_come_first_among_near_identical_memories(tmp_path: Path, real_embedder: OnnxEmbedder) -> None:
    # 500 tickets told in the same words: similarity cannot tell them apart, the code can
    rng = random.Random(0)
    codes = []
    with Memory(tmp_path / "m.db", embedder=real_embedder) as mem:
        texts = []
        for _ in range(500):
            code = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(2, 4))) + f"-{rng.randint(1000, 99999)}"
            codes.append(code)
            texts.append(f"The ticket {code} is about the login bug in the {rng.choice(['gym', 'office', 'pool'])} app.")
        for s in range(0, 500, 25):
            _add(mem, texts[s : s + 25], f"s{s}")
        plain = RecallOptions(weights=Weights(exact=0))
        first = missed = 0
        for code in codes:
            q = f"What is the ticket {code} about?"
            hits = mem.search(q, user_id="u", limit=5)
            first += _rank(hits, code) == 1 and hits[0].signals["exact"] == 1.0
            missed += _rank(mem.search(q, user_id="u", limit=5, options=plain), code) != 1
    assert first == 500
    assert missed >= 1  # without the rule, similarity puts another ticket first at least once


def test_exact_words_of_questions() -> None:
    assert exact_words("Which order was AB-4821?") == ("ab", "4821")
    assert exact_words("Who is Varkelin?") == ("varkelin",)
    assert exact_words("tok3x5q12345") == ("tok3x5q12345",)
    assert exact_words("What did I buy in May 2023?") == ()  # a month and a year are times, not codes
    assert exact_words("Where did we go for dinner?") == ()


# -- knowing when nothing is relevant --------------------------------------------------------


def test_a_question_about_something_never_said_is_not_relevant(mem: Memory) -> None:
    _add(mem, [
        "I practise the guitar for an hour every morning before work.",
        "My favourite band is Radiohead, I saw them live in 2019.",
        "I've been baking sourdough bread on Sundays.",
        "We adopted a rescue dog called Biscuit in March.",
    ])
    asked = mem.search("How much time do I spend practising the guitar every day?", user_id="u")
    never = mem.search("How much time do I spend practising the violin every day?", user_id="u")
    assert asked.relevant and not never.relevant
    assert asked.confidence > never.confidence
    ctx = mem.context("How much time do I spend practising the violin every day?", user_id="u", budget_tokens=400)
    assert str(ctx).startswith("Nothing in memory seems relevant")
    full = mem.context("How much time do I spend practising the guitar every day?", user_id="u", budget_tokens=400)
    assert "guitar" in str(full) and "Nothing in memory" not in str(full)


def test_relevance_with_the_common_words_kept_is_relevance_counted_afresh(mem: Memory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from engramdb.recall import relevance

    rng = random.Random(3)
    pets, places = ["dog", "cat", "parrot", "hamster"], ["Lisbon", "Porto", "Madrid", "Oslo"]
    verbs = ["walked", "fed", "washed", "brushed"]
    _add(mem, [f"I {verbs[i % 4]} my {rng.choice(pets)} in {rng.choice(places)} on day {i}." for i in range(60)])
    questions = ["Where did I walk my dog?", "Did I ever walk a parrot in Oslo?", "What about my violin?"]

    def verdicts() -> list[tuple[float, bool]]:
        return [(h.relevance.coverage, h.relevant) for h in (mem.search(q, user_id="u") for q in questions)]

    monkeypatch.setattr(relevance, "KEEP_ABOVE", 10**9)  # counted afresh every time
    fresh = verdicts()
    monkeypatch.setattr(relevance, "KEEP_ABOVE", 0)  # every word kept, and read back the second time
    assert verdicts() == fresh and verdicts() == fresh
    _add(mem, ["I walked my violin teacher's dog in Oslo."], "s2")  # the scope changed: counted again
    kept = verdicts()
    monkeypatch.setattr(relevance, "KEEP_ABOVE", 10**9)
    relevance._kept.clear()
    assert kept == verdicts() and kept != fresh


# -- pure parts ------------------------------------------------------------------------------


def test_mentions_and_aliases_unit() -> None:
    names = Names()
    first = mentions("My colleague Aurelio works at Google in Zurich.", "user", names)
    assert {(m.name, m.kind) for m in first} == {("Aurelio", "person"), ("Google", "organisation"), ("Zurich", "place")}
    assert names.aliases["user's colleague"] == "Aurelio"
    assert [m.name for m in mentions("Great, thanks! Aur is funny.", "user", names)] == ["Aurelio"]
    assert [m.name for m in mentions("My colleague is late again.", "user", names)] == ["Aurelio"]
    assert mentions("Sure. Yes, I will.", "user", names) == []  # sentence starts are not names
    names.add("Aurelia", "person")
    assert [m.name for m in mentions("I saw Aurel today.", "user", names)] == ["Aurel"]  # two it may be: neither
    assert names_in("Where does my sister's friend Deb live?")[-1] == "user's sister"


def test_graph_index_answers_as_the_links_do_unit() -> None:
    rng = random.Random(11)
    links: list[tuple[int, int, int, bool]] = []
    graph = GraphIndex()
    roles = {1}
    for batch in range(40):  # small adds (the tail), and now and then a merge
        new = [(len(links) + i + 1, rng.randint(1, 60), rng.randint(1, 400), False) for i in range(rng.randint(1, 120))]
        new = [(r, e, p, e in roles) for r, e, p, _ in new] + [(len(links) + 500, new[0][1], new[0][2], False)]  # a repeat
        links += new
        graph = graph.extend(new)
        pairs = {(e, p) for _, e, p, _ in links}
        eps = rng.sample(range(1, 400), 5)
        ents = rng.sample(range(1, 61), 4) + [1]
        def listed(got: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, int]]:
            return list(zip(got[0].tolist(), got[1].tolist()))

        assert listed(graph.edges(episodes=eps)) == sorted((e, p) for e, p in pairs if p in eps and e not in roles)
        assert listed(graph.edges(entities=ents)) == sorted((e, p) for e, p in pairs if e in ents and e not in roles)
        both = listed(graph.edges(episodes=eps, entities=ents))
        assert both == sorted((e, p) for e, p in pairs if (p in eps or e in ents) and e not in roles)
        assert graph.degree_array(np.asarray(ents)).tolist() == [sum(1 for x, _ in pairs if x == e) for e in ents]
    assert graph.last == max(r for r, _, _, _ in links)
    every = [GraphIndex().extend(links).edges(entities=range(61)), graph.edges(entities=range(61))]
    assert all(np.array_equal(a, b) for a, b in zip(*every))


def test_walk_goes_through_the_most_named_entities_and_keeps_the_most_associated_unit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engramdb.recall import graph as G

    # entity 1 is asked about; it is named in episodes 1-10. Entity 10+j is named in episodes
    # 1..j beside it (j = 1..10) and in three episodes of its own, 100j+1..100j+3.
    links = [(0, 1, p, False) for p in range(1, 11)]
    for j in range(1, 11):
        links += [(0, 10 + j, p, False) for p in range(1, j + 1)]
        links += [(0, 10 + j, 100 * j + k, False) for k in (1, 2, 3)]
    graph = GraphIndex().extend([(i + 1, e, p, r) for i, (_, e, p, r) in enumerate(links)])

    def walk() -> dict[int, float]:
        rowids, mass = G.associations(graph, [], [], {1}, 1000)
        return dict(zip(rowids.tolist(), mass.tolist()))

    monkeypatch.setattr(G, "AROUND_MAX", 10**9)
    monkeypatch.setattr(G, "WALK_KEEP", 10**9)
    every = walk()
    assert {r // 100 for r in every if r > 100} == set(range(1, 11))  # every entity's own episodes
    monkeypatch.setattr(G, "AROUND_MAX", 3)
    through = walk()
    assert {r // 100 for r in through if r > 100} == {8, 9, 10}  # those named most beside entity 1
    monkeypatch.setattr(G, "WALK_KEEP", 4)
    kept = walk()
    assert kept == dict(sorted(through.items(), key=lambda x: (-x[1], x[0]))[:4])


def test_entities_and_aliases_added_later_are_found_by_the_kept_index(mem: Memory) -> None:
    on = RecallOptions(weights=Weights(graph=0.2))
    _add(mem, ["My sister Deborah married Tomasz last spring."])
    mem.search("Where does Deborah's husband work?", user_id="u", options=on)  # the index is kept
    _add(mem, ["Deb called me yesterday.", "My neighbour Ingrid works at the harbour."], "s2")
    kept = mem._recall._entity_index("u")
    mem._recall._entities.clear()
    fresh = mem._recall._entity_index("u")
    names = [n for e in mem.entities(user_id="u") if e.name not in ROLES for n in (e.name, *e.aliases)]
    assert {"Deb", "Ingrid"} <= set(names)
    assert all(kept.find([n]) == fresh.find([n]) and fresh.find([n]) for n in names)
    assert kept.find(["deb"]) == kept.find(["Deborah"])


def test_graph_index_knows_its_links_with_small_and_huge_rowids_unit() -> None:
    from engramdb.recall.graph import _contains, _unique_sorted

    rng = random.Random(5)
    for big in (0, 2**40):  # a 64-bit key of two rowids, and the slow path past 2**31
        base = _unique_sorted(*(np.asarray([rng.randint(1, 50) + big for _ in range(300)], dtype=np.int64) for _ in range(2)))
        asked = (np.asarray([rng.randint(1, 50) + big for _ in range(200)], dtype=np.int64),
                 np.asarray([rng.randint(1, 50) + big for _ in range(200)], dtype=np.int64))
        held = set(zip(base[0].tolist(), base[1].tolist()))
        assert _contains(base, asked).tolist() == [(a, b) in held for a, b in zip(asked[0].tolist(), asked[1].tolist())]


def test_deleting_a_linked_episode_moves_the_entity_counter(mem: Memory) -> None:
    a, b = _add(mem, ["My colleague Tomasz works at Acme Robotics.", "I play chess with Tomasz on Fridays."])
    semantic = mem.store.semantic()
    before = semantic.entity_state("u")
    linked = {p for _, _, p, _ in semantic.graph_links_after("u")}
    mem.delete(b, user_id="u")  # Tomasz stays, named by the other one: only links go
    assert semantic.entity_state("u")[2] > before[2]  # type: ignore[index]
    assert {p for _, _, p, _ in semantic.graph_links_after("u")} < linked
    g = mem.graph(user_id="u", around="Tomasz")
    assert b not in {e.source for e in g.edges} and a in {e.source for e in g.edges}


def test_personalized_pagerank_matches_the_dense_solution() -> None:
    rng = np.random.default_rng(1)
    n = 12
    edges = np.array(sorted({tuple(sorted(rng.choice(n, 2, replace=False))) for _ in range(25)}), dtype=np.int64)
    restart = np.zeros((n, 2))
    restart[0, 0], restart[[3, 5], 1] = 1.0, 0.5
    got = ppr(edges, n, restart, alpha=0.3, iterations=200)
    adj = np.zeros((n, n))
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1.0
    deg = adj.sum(axis=1)
    walk = np.divide(adj, deg[:, None], out=np.zeros_like(adj), where=deg[:, None] > 0)
    for j in range(2):
        p = restart[:, j]
        dangling = np.outer(p / p.sum(), (deg == 0).astype(float))  # a stuck walker restarts
        want = np.linalg.solve(np.eye(n) - 0.7 * (walk.T + dangling), 0.3 * p)
        assert np.allclose(got[:, j], want, atol=1e-9)
    assert np.isclose(got.sum(), restart.sum())  # mass is kept
