"""Memory over a lifetime: strength and its reinforcement, policies that archive and delete,
recognition of what was archived, restore, and repeats merged (real SQLite, real model)."""

from __future__ import annotations

from typing import Callable

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from engramdb import Episode, Fact, InputError, Memory, NotFoundError, OnnxEmbedder, Policy
from engramdb.cli import main
from engramdb.lifecycle import estimate_importance, initial_stability, reinforced, retrievability

from conftest import fingerprint

STORY = [
    ("2024-01-05T10:00:00", "I adopted a greyhound named Biscuit from the shelter."),
    ("2024-01-20T10:00:00", "ok thanks"),
    ("2024-02-02T10:00:00", "My sister Deb got engaged to Marco in Porto."),
    ("2024-02-15T10:00:00", "I started cello lessons with a teacher called Ines."),
    ("2024-03-01T10:00:00", "We repainted the kitchen a pale green colour."),
    ("2024-03-10T10:00:00", "I ran the Lisbon half marathon in 1 hour 52 minutes."),
]


def _story(m: Memory, user: str = "u") -> list[str]:
    return [m.add({"content": text, "timestamp": ts}, user_id=user, session_id=ts[:7])[0] for ts, text in STORY]


# -- the formulas (pure) ----------------------------------------------------------------------


def test_strength_decays_and_a_late_use_adds_more_than_an_early_one() -> None:
    s = initial_stability(0.5)
    assert retrievability(0.0, s) == 1.0 and math.isclose(retrievability(s, s), math.exp(-1))
    assert initial_stability(0.9) > initial_stability(0.5) > initial_stability(0.1)
    soon, late = reinforced(s, 0.1), reinforced(s, 3 * s)
    assert s < soon < late  # spacing: a recall after a long gap strengthens more
    assert reinforced(s, 3 * s, weight=0.25) < late  # a hit ranked lower was used less


def test_importance_estimate_prefers_disclosure_over_small_talk() -> None:
    told = estimate_importance("I moved to Lisbon last spring with my partner.", "user")
    assert told > estimate_importance("Lisbon is a city in Portugal.", "user") > estimate_importance("ok thanks!", "user")
    assert estimate_importance("I moved to Lisbon last spring.", "assistant") < told


@pytest.mark.parametrize("bad", [dict(archive_below=2), dict(max_active=-1), dict(ttl=0), dict(ttl="x"),
                                 dict(max_active=True), dict(horizon_days=-3)])
def test_a_bad_policy_is_a_typed_error(bad: dict) -> None:
    with pytest.raises(InputError):
        Policy(**bad)


# -- through the memory -------------------------------------------------------------------------


def test_given_importance_is_kept_and_estimates_vary(mem: Memory) -> None:
    [given] = mem.add({"content": "ok thanks", "importance": 0.9}, user_id="u")
    ids = _story(mem)
    eps = {e.id: e for e in mem.list(user_id="u")}
    assert eps[given].importance == 0.9
    assert eps[ids[0]].importance > eps[ids[1]].importance  # adoption > small talk
    assert eps[ids[0]].stability > eps[ids[1]].stability


def test_search_and_context_record_use_and_reinforce_counts(store_at: Callable[[str], str], tmp_path: Path, real_embedder: OnnxEmbedder) -> None:
    with Memory(store_at("m"), embedder=real_embedder) as m:
        ids = _story(m)
        [hit] = m.search("what is the name of the greyhound I adopted?", user_id="u", limit=1, now="2024-04-01")
        assert hit.episode_ids == [ids[0]] and 0 < hit.signals["strength"] < 1
        m.context("who did my sister get engaged to?", user_id="u", budget_tokens=60, now="2024-04-02")
        m.reinforce([ids[3]], user_id="u", at="2024-04-03")
    with Memory(store_at("m"), embedder=real_embedder) as m:  # batched uses were written on close
        eps = {e.id: e for e in m.list(user_id="u")}
        assert eps[ids[0]].uses == 1 and eps[ids[3]].uses >= 1 and eps[ids[2]].uses >= 1
        assert eps[ids[0]].stability > initial_stability(eps[ids[0]].importance)
        with pytest.raises(NotFoundError):
            m.reinforce(["ep_nope"], user_id="u")
    with Memory(store_at("n"), embedder=real_embedder, track_use=False) as m:
        _story(m)
        m.search("what is the name of the greyhound I adopted?", user_id="u")
    with Memory(store_at("n"), embedder=real_embedder) as m:
        assert all(e.uses == 0 for e in m.list(user_id="u"))


def test_a_fact_is_as_strong_as_its_strongest_source(store_at: Callable[[str], str]) -> None:
    said = "I adopted a greyhound named Rex."

    def fact(m: Memory) -> Fact:
        [f] = [f for f in m.facts(user_id="u", kinds=["statement"]) if f.object == said.rstrip(".")]
        return f

    with Memory(store_at("f"), embedder=None) as m:
        [old] = m.add(said, user_id="u", timestamp="2025-01-01T10:00:00")
        episode = m.get(old)
        assert fact(m).sources == (old,) and fact(m).sightings == 1
        assert fact(m).strength == pytest.approx(episode.strength, abs=1e-6) and fact(m).strength < 0.5  # long unused
        m.reinforce([old], user_id="u")  # recalled now: stronger, and so is what it says
        assert fact(m).strength > 0.99 and fact(m).strength == pytest.approx(m.get(old).strength, abs=1e-6)
    with Memory(store_at("g"), embedder=None) as m:
        [old] = m.add(said, user_id="u", timestamp="2025-01-01T10:00:00")
        weak = fact(m).strength
        [again] = m.add(said, user_id="u")  # told again, now: a second, fresh source
        assert fact(m).sources == (old, again) and fact(m).sightings == 2
        assert fact(m).strength > 0.99 > weak


def test_capacity_archives_the_weakest_recognise_and_restore(store_at: Callable[[str], str], tmp_path: Path, real_embedder: OnnxEmbedder) -> None:
    db = store_at("m")
    with Memory(db, embedder=real_embedder) as m, Memory(db, embedder=real_embedder) as other:
        ids = _story(m)
        assert ids[0] in other.search("greyhound", user_id="u")[0].episode_ids  # other holds an index
        for day in ("2024-03-20", "2024-04-25", "2024-06-01"):  # the dog comes up again and again
            m.search("what is the name of the greyhound I adopted?", user_id="u", limit=1, now=day)
        report = m.maintain(user_id="u", policy=Policy(max_active=2), now="2024-06-02")
        assert report.active_before == 6 and report.active_after == 2 and len(report.archived) == 4
        assert ids[0] not in report.archived  # used often: kept, though it is the oldest
        assert list(report.archived) == [i for i in ids if i in report.archived]  # oldest first
        gone = ids[3]  # the cello lessons ("ok thanks" says too little to be recognised by)
        assert gone in report.archived
        text = m.get(gone).text
        assert m.get(gone).status == "archived"
        # archived: not recalled, in this process or another, unless asked for
        for mm in (m, other):
            assert gone not in {e for h in mm.search(text, user_id="u") for e in h.episode_ids}
        assert gone in {e for h in m.search(text, user_id="u", include_archived=True) for e in h.episode_ids}
        # ... but recognised, from the gist, with a pointer to restore
        rec = other.recognise(text, user_id="u")
        assert rec.known and rec.episode_ids[0] == gone and rec.when[0] == m.get(gone).timestamp
        assert not other.recognise("quantum chromodynamics lecture on gluons", user_id="u").known
        assert other.restore([gone], user_id="u") == [gone]
        assert gone in {e for h in m.search(text, user_id="u") for e in h.episode_ids}
        with pytest.raises(NotFoundError):
            m.restore([gone], user_id="someone-else")


def test_archive_below_ttl_dry_run_and_kept_policies(store_at: Callable[[str], str], tmp_path: Path, real_embedder: OnnxEmbedder) -> None:
    db = store_at("m")
    with Memory(db, embedder=real_embedder) as m:
        ids = _story(m)
        assert m.maintain(user_id="u").policy is None  # no policy: nothing happens
        before = fingerprint(db)
        dry = m.maintain(user_id="u", policy=Policy(archive_below=0.5, ttl=timedelta(days=45)), now="2024-03-12", dry_run=True)
        assert dry.deleted == (ids[0], ids[1]) and dry.archived and fingerprint(db) == before
        m.set_policy(Policy(max_active=100), user_id=None)  # everyone's default
        m.set_policy(Policy(ttl=45), user_id="u")  # this user's own
        assert m.policy(user_id="u") == Policy(ttl=45) and m.policy(user_id="v") == Policy(max_active=100)
        report = m.maintain(user_id="u", now="2024-03-12")
        assert report.deleted == (ids[0], ids[1]) and report.receipt is not None and report.receipt.clean
        assert [e.id for e in m.list(user_id="u")] == ids[2:]
        report = m.maintain(user_id="u", policy=Policy(archive_below=0.5), now="2024-03-12")
        at = datetime(2024, 3, 12, tzinfo=timezone.utc)

        def strength(e: Episode) -> float:
            return float(retrievability((at - (e.last_used or e.timestamp)).total_seconds() / 86400, e.stability))

        eps = {e.id: e for e in m.list(user_id="u")}
        assert report.archived and ids[-1] not in report.archived  # two days old: still strong
        assert all((strength(e) < 0.5) == (i in report.archived) for i, e in eps.items())
        m.set_policy(None, user_id="u")
        assert m.policy(user_id="u") == Policy(max_active=100)


def test_a_namespace_policy_covers_its_users_the_nearest_one_wins(store_at: Callable[[str], str]) -> None:
    with Memory(store_at("n"), embedder=None) as m:
        m.set_policy(Policy(max_active=100))  # everyone's default
        m.set_policy(Policy(max_active=10), namespace="acme")
        m.set_policy(Policy(max_active=5), namespace="acme/support")
        m.set_policy(Policy(max_active=1), user_id="acme/support/ann")
        assert m.policy(user_id="acme/support/ann") == Policy(max_active=1)
        assert m.policy(user_id="acme/support/bob") == Policy(max_active=5)
        assert m.policy(user_id="acme/bob") == m.policy(namespace="acme") == Policy(max_active=10)
        assert m.policy(user_id="acme") == m.policy(user_id="acmeX/bob") == Policy(max_active=100)
        for i in range(3):
            m.add(f"Note {i} about the billing ticket.", user_id="acme/carl")
        report = m.maintain(user_id="acme/carl", policy=None)  # the namespace's kept policy applies
        assert report.policy == Policy(max_active=10) and not report.archived
        m.set_policy(Policy(max_active=2), namespace="acme")
        assert len(m.maintain(user_id="acme/carl").archived) == 1
        for bad in ("acme/", "acme/*", ""):
            with pytest.raises(InputError):
                m.set_policy(Policy(max_active=1), namespace=bad)
        with pytest.raises(InputError):
            m.policy(user_id="u", namespace="acme")


def test_the_same_message_stored_twice_is_one_episode_seen_twice(mem: Memory) -> None:
    msg = {"content": "I keep bees on the roof.", "timestamp": "2024-05-01T09:00:00", "metadata": {"turn": 1}}
    [a] = mem.add(msg, user_id="u", session_id="s")
    [b] = mem.add(msg, user_id="u", session_id="s")  # a retried add
    assert a == b and mem.get(a).sightings == 2 and len(mem.list(user_id="u")) == 1
    [c] = mem.add({**msg, "metadata": {"turn": 2}}, user_id="u", session_id="s")  # said again, another turn
    assert c != a and len(mem.search("bees", user_id="u")) == 2


def test_history_sent_again_with_each_turn_adds_only_the_new_turn(mem: Memory) -> None:
    history = [{"role": "user", "content": "My sister Deborah lives in Lisbon.", "timestamp": "2024-05-01T09:00:00"},
               {"role": "assistant", "content": "Lisbon is lovely in May.", "timestamp": "2024-05-01T09:00:05"}]
    first = mem.add(history, user_id="u", session_id="s")
    facts = mem.facts(user_id="u")
    turn = {"role": "user", "content": "Deborah adopted a cat called Miso.", "timestamp": "2024-05-01T09:01:00"}
    again = mem.add(history + [turn], user_id="u", session_id="s")  # the whole history, as chat APIs send it
    assert again[:2] == first and again[2] not in first
    assert [e.sightings for e in map(mem.get, first)] == [2, 2] and len(mem.list(user_id="u")) == 3
    assert {f.id for f in facts} <= {f.id for f in mem.facts(user_id="u")}  # nothing redrawn twice
    assert mem.search("cat called Miso", user_id="u")[0].episodes[0].id == again[2]


def test_a_known_message_deleted_meanwhile_is_stored_anew_with_a_faked_lookup(mem: Memory) -> None:
    msg = {"content": "I keep bees on the roof.", "timestamp": "2024-05-01T09:00:00"}
    [a] = mem.add(msg, user_id="u", session_id="s")
    mem.delete(a, user_id="u")
    mem.store.same_episodes = lambda user_id, keys: [a] * len(keys)  # type: ignore[method-assign]  # looked up before the delete
    [b] = mem.add(msg, user_id="u", session_id="s")
    assert b != a and mem.get(b).sightings == 1 and mem.search("bees", user_id="u")[0].episodes[0].id == b


def test_cli_policy_maintain_recognise_restore(store_at: Callable[[str], str], tmp_path: Path) -> None:
    db = store_at("c")
    env = {"ENGRAMDB_PATH": db, "COLUMNS": "200"}

    def run(*args: str) -> str:
        res = CliRunner().invoke(main, list(args), env=env)
        assert res.exit_code == 0, res.output
        return res.output

    for ts, text in STORY:
        run("add", "--user", "u", "--time", ts, text)
    assert json.loads(run("policy", "--user", "u", "--max-active", "2"))["max_active"] == 2
    [r] = json.loads(run("maintain", "--now", "2024-06-01", "--json"))  # every user with a policy
    assert r["active_after"] == 2 and len(r["archived"]) == 4
    rec = json.loads(run("recognise", "--user", "u", "--json", STORY[0][1]))
    assert rec["known"] and rec["episodes"][0]["status"] == "archived"
    assert "restored 1" in run("restore", "--user", "u", rec["episodes"][0]["id"])
