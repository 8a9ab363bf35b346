"""The Memory facade on a real SQLite file with the real default embedding model."""

from __future__ import annotations

from typing import Callable

import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engramdb import (
    ContentError,
    EngramError,
    HashEmbedder,
    Hit,
    InputError,
    LimitError,
    Memory,
    NotFoundError,
    RecallOptions,
    ScopeError,
    StoreError,
    TimestampError,
    UnknownUserError,
    Weights,
)
from engramdb.index.lexical import decode_terms, query_keys
from engramdb.store.schema import schema_version
from engramdb.validate import MAX_CONTENT_CHARS, MAX_MESSAGES_PER_ADD
from conftest import sql_rows


def _count(path: Path | str, table: str) -> int:
    return int(sql_rows(path, f"SELECT COUNT(*) FROM {table}")[0][0])  # type: ignore[call-overload]


def test_add_returns_ids_and_keeps_everything_verbatim(mem: Memory) -> None:
    ids = mem.add(
        [
            {
                "role": "user",
                "name": "Caroline",
                "content": "I went to a support group yesterday",
                "timestamp": "2023-05-08T13:56:00",
                "metadata": {"turn_id": "D1:3", "nested": {"a": [1, 2]}},
            }
        ],
        user_id="u1",
        session_id="s1",
        agent_id="bot",
    )
    assert len(ids) == 1
    ep = mem.get(ids[0])
    assert ep.text == "I went to a support group yesterday"
    assert ep.name == "Caroline" and ep.role == "user" and ep.speaker == "Caroline"
    assert ep.session_id == "s1" and ep.agent_id == "bot" and ep.user_id == "u1"
    assert ep.timestamp == datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)
    assert ep.metadata == {"turn_id": "D1:3", "nested": {"a": [1, 2]}}
    assert ep.recorded_at > ep.timestamp


def test_add_accepts_string_dict_and_list(mem: Memory) -> None:
    assert len(mem.add("plain string", user_id="u")) == 1
    assert len(mem.add({"content": "one dict"}, user_id="u")) == 1
    assert len(mem.add(["a list item", {"content": "and a dict"}], user_id="u")) == 2
    assert [e.text for e in mem.list(user_id="u")] == ["plain string", "one dict", "a list item", "and a dict"]


def test_call_timestamp_and_metadata_are_defaults(mem: Memory) -> None:
    [a, b] = mem.add(
        [{"content": "first"}, {"content": "second", "timestamp": "2024-01-02T00:00:00", "metadata": {"k": 2}}],
        user_id="u",
        timestamp="2023-01-01T00:00:00",
        metadata={"k": 1, "src": "call"},
    )
    assert mem.get(a).timestamp.year == 2023 and mem.get(a).metadata == {"k": 1, "src": "call"}
    assert mem.get(b).timestamp.year == 2024 and mem.get(b).metadata == {"k": 2, "src": "call"}


def test_a_message_may_name_its_own_session_and_agent(mem: Memory) -> None:
    a, b, c = mem.add(
        ["in the call's session", {"content": "in its own", "session_id": "s2", "agent_id": "bot"}, "call's again"],
        user_id="u", session_id="s1", agent_id="main",
    )
    assert [(mem.get(i).session_id, mem.get(i).agent_id) for i in (a, b, c)] == [("s1", "main"), ("s2", "bot"), ("s1", "main")]
    assert [e.id for e in mem.list(user_id="u", session_id="s2")] == [b]
    assert {s.session_id for s in mem.segments(user_id="u")} == {"s1", "s2"}
    with pytest.raises(ScopeError) as bad:
        mem.add(["fine", {"content": "x", "session_id": " "}], user_id="u")
    assert bad.value.field == "session_id" and bad.value.index == 1


def test_search_finds_the_right_turn_with_provenance(demo_mem: Memory) -> None:
    hits = demo_mem.search("When did Nadia go to the support group?", user_id="demo", limit=5, now="2023-08-01")
    assert hits, "expected hits"
    top = hits[0]
    turn_ids = [e.metadata["turn_id"] for e in top.episodes]
    assert "s1:2" in turn_ids
    assert top.signals["lexical"] > 0 and top.signals["dense"] > 0
    # provenance is exact: each passage is text of its episode
    for h in hits:
        assert len(h.passages) == len(h.episodes)
        for ep, passage in zip(h.episodes, h.passages):
            for piece in passage.split(" … "):
                assert piece in ep.text
        assert h.text == "\n".join(h.passages)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_dense_recall_finds_paraphrase_without_shared_words(demo_mem: Memory) -> None:
    hits = demo_mem.search("Which pet does Tom have?", user_id="demo", limit=3)
    texts = " ".join(h.text for h in hits)
    assert "golden retriever" in texts or "Biscuit" in texts


def test_now_anchors_time_expressions_in_the_question(mem: Memory) -> None:
    # a few months of other chats, so "last week" singles out a small part of memory
    for i, text in enumerate(["The train was late again.", "Booked a dentist appointment.",
                              "Tried a new ramen place downtown.", "My laptop needs a new battery."]):
        mem.add(text, user_id="u", session_id=f"x{i}", timestamp=f"2022-{9 + i:02d}-05T12:00:00")
    mem.add("I went to a pottery class with Jo", user_id="u", session_id="a", timestamp="2023-01-10T18:00:00")
    mem.add("I went to a pottery class with Sam", user_id="u", session_id="b", timestamp="2023-03-20T18:00:00")
    q = "Who came to the pottery class last week?"
    assert "Sam" in mem.search(q, user_id="u", now="2023-03-25")[0].text
    assert "Jo" in mem.search(q, user_id="u", now="2023-01-15")[0].text


def test_explicit_year_filters(mem: Memory) -> None:
    mem.add("We went skiing in the Alps", user_id="u", session_id="a", timestamp="2021-02-01")
    mem.add("We went skiing in Norway", user_id="u", session_id="b", timestamp="2022-02-01")
    hits = mem.search("Where did we go skiing in 2021?", user_id="u", now="2023-01-01")
    assert [e.text for h in hits for e in h.episodes] == ["We went skiing in the Alps"]


def test_latest_intent_prefers_the_newer_update(mem: Memory) -> None:
    mem.add("My favourite running shoes are the Pegasus", user_id="u", session_id="a", timestamp="2022-01-01")
    mem.add("My favourite running shoes are now the Vaporfly", user_id="u", session_id="b", timestamp="2023-01-01")
    hits = mem.search("What are my current favourite running shoes?", user_id="u", now="2023-02-01")
    assert "Vaporfly" in hits[0].text and hits[0].signals["order"] > 0
    hits = mem.search("What were my first favourite running shoes?", user_id="u", now="2023-02-01")
    assert "Pegasus" in hits[0].text


def test_time_mentions_are_resolved_and_stored(mem: Memory) -> None:
    [eid] = mem.add("I went to a support group yesterday", user_id="u", timestamp="2023-05-08T13:56:00")
    ep = mem.get(eid)
    assert [(t.text, t.start.isoformat(), t.grain) for t in ep.times] == [("yesterday", "2023-05-07", "day")]
    assert ep.event_time.date().isoformat() == "2023-05-07"


def test_as_of_hides_episodes_recorded_later(mem: Memory) -> None:
    mem.add("I live in Berlin", user_id="u", timestamp="2023-01-01")
    cut = datetime.now(timezone.utc)
    mem.add("I moved to Munich", user_id="u", timestamp="2023-06-01")
    before = mem.search("where do I live", user_id="u", as_of=cut)
    assert {e.text for h in before for e in h.episodes} == {"I live in Berlin"}


def test_context_is_budgeted_time_ordered_and_cited(demo_mem: Memory) -> None:
    ctx = demo_mem.context("What is Tom painting?", user_id="demo", budget_tokens=120, now="2023-08-01")
    assert 0 < ctx.tokens <= 120
    lines = str(ctx).splitlines()[1:]
    assert lines and all(line.startswith("[2023-") and "Tom:" in line or "Nadia:" in line for line in lines)
    stamps = [line[1:17] for line in lines]
    assert stamps == sorted(stamps)
    assert len(set(lines)) == len(lines)
    assert len(ctx.episode_ids) == len(lines)
    big = demo_mem.context("What is Tom painting?", user_id="demo", budget_tokens=5000)
    assert set(ctx.episode_ids) <= set(big.episode_ids)
    assert demo_mem.context("painting", user_id="demo", budget_tokens=3) == ""


def test_long_message_is_recalled_by_its_relevant_passage(mem: Memory) -> None:
    filler = " ".join(f"Paragraph {i} discusses general gardening advice about soil and water." for i in range(40))
    needle = "The secret ingredient in my grandmother's soup was smoked paprika."
    [eid] = mem.add(filler + " " + needle + " " + filler, user_id="u", session_id="s")
    [hit] = mem.search("secret ingredient grandmother soup", user_id="u", limit=1)
    assert hit.episodes[0].id == eid
    assert needle in hit.text
    assert len(hit.text) < len(hit.episodes[0].text) / 4  # a passage, not the whole message


def test_scoping_isolates_users(mem: Memory) -> None:
    mem.add("Alice's secret: the safe code is 4711", user_id="alice")
    mem.add("Bob likes tea", user_id="bob")
    hits = mem.search("safe code secret", user_id="bob", limit=10)
    assert all(e.user_id == "bob" for h in hits for e in h.episodes)
    [alice_ep] = mem.list(user_id="alice")
    with pytest.raises(NotFoundError):
        mem.get(alice_ep.id, user_id="bob")
    with pytest.raises(NotFoundError):
        mem.delete(alice_ep.id, user_id="bob")
    assert mem.get(alice_ep.id, user_id="alice").text.startswith("Alice")


@pytest.mark.parametrize("call", ["search", "context", "list"])
def test_unknown_user_is_typed_error(mem: Memory, call: str) -> None:
    mem.add("hello", user_id="known")
    with pytest.raises(UnknownUserError):
        if call == "search":
            mem.search("hello", user_id="nobody")
        elif call == "context":
            mem.context("hello", user_id="nobody", budget_tokens=100)
        else:
            mem.list(user_id="nobody")


@pytest.mark.parametrize(
    "messages, kwargs, error",
    [
        ("hello", {"user_id": None}, ScopeError),
        ("hello", {"user_id": ""}, ScopeError),
        ("hello", {"user_id": 42}, ScopeError),
        ("", {"user_id": "u"}, ContentError),
        ("   \n", {"user_id": "u"}, ContentError),
        ({"content": 42}, {"user_id": "u"}, ContentError),
        ({"content": None}, {"user_id": "u"}, ContentError),
        ({"role": "user"}, {"user_id": "u"}, ContentError),
        (b"\xff\xfe bad bytes", {"user_id": "u"}, ContentError),
        ("lone surrogate \ud800", {"user_id": "u"}, ContentError),
        ("x" * (MAX_CONTENT_CHARS + 1), {"user_id": "u"}, ContentError),
        ({"content": "hi", "timestamp": "not a date"}, {"user_id": "u"}, TimestampError),
        ("hi", {"user_id": "u", "timestamp": "31/31/2023"}, TimestampError),
        ({"content": "hi", "colour": "red"}, {"user_id": "u"}, InputError),
        ({"content": "hi", "metadata": "nope"}, {"user_id": "u"}, InputError),
        ({"content": "hi", "metadata": {"f": object()}}, {"user_id": "u"}, InputError),
        ({"content": "hi", "session_id": ""}, {"user_id": "u"}, ScopeError),
        ({"content": "hi", "session_id": 7}, {"user_id": "u"}, ScopeError),
        ({"content": "hi", "agent_id": "a\x00b"}, {"user_id": "u"}, ScopeError),
        ([], {"user_id": "u"}, InputError),
        (["x"] * (MAX_MESSAGES_PER_ADD + 1), {"user_id": "u"}, LimitError),
        (42, {"user_id": "u"}, InputError),
    ],
)
def test_bad_input_is_typed_and_leaves_store_unchanged(store_at: Callable[[str], str], 
    tmp_path: Path, messages: object, kwargs: dict, error: type[EngramError]
) -> None:
    db = store_at("m")
    with Memory(db, embedder=HashEmbedder()) as m:  # fake embedder: this test is about validation
        m.add("already here", user_id="u")
        before = (_count(db, "episodes"), _count(db, "units"), _count(db, "vectors"))
        with pytest.raises(error):
            m.add(messages, **kwargs)  # type: ignore[arg-type]
        # a batch with one bad message in the middle is rejected whole
        with pytest.raises(EngramError):
            m.add(["good one", messages if isinstance(messages, (str, dict)) else {"content": ""}, "good two"], **kwargs)  # type: ignore[list-item]
        assert (_count(db, "episodes"), _count(db, "units"), _count(db, "vectors")) == before


@pytest.mark.parametrize(
    "query",
    ['"unbalanced', "NEAR(a b)", "a AND OR NOT b", "col:value", "*", "^start", "(((", "-minus +plus", "emoji 🎉 ü"],
)
def test_query_syntax_is_plain_text(mem: Memory, query: str) -> None:
    [eid] = mem.add("unbalanced near col value start minus plus emoji ü", user_id="u")
    mem.add("something else entirely", user_id="u")
    hits = mem.search(query, user_id="u", options=RecallOptions(weights=Weights(dense=0.0)))
    mem.context(query, user_id="u", budget_tokens=50)
    words_in_query = query not in ("*", "(((", "a AND OR NOT b")
    if words_in_query:
        assert hits[0].episodes[0].id == eid and hits[0].signals["lexical"] == 1.0
    else:
        assert hits == []


@pytest.mark.parametrize("bad", ["", "   ", 42, None, "x" * 20_000])
def test_bad_query_is_typed_error(mem: Memory, bad: object) -> None:
    mem.add("hello", user_id="u")
    with pytest.raises(InputError):
        mem.search(bad, user_id="u")  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [0, -1, 1001, 2.5, True])
def test_bad_limit_is_typed_error(mem: Memory, limit: object) -> None:
    mem.add("hello", user_id="u")
    with pytest.raises(LimitError):
        mem.search("hello", user_id="u", limit=limit)  # type: ignore[arg-type]


def test_delete_removes_from_every_index(store_at: Callable[[str], str], tmp_path: Path, real_embedder: object) -> None:
    db = store_at("m")
    with Memory(db, embedder=real_embedder) as m:  # type: ignore[arg-type]
        [keep] = m.add("The zebra crossing near the school was repainted", user_id="u")
        [gone] = m.add("My passport number is X1234567 and it expires in 2030", user_id="u")
        assert any(e.id == gone for h in m.search("passport number", user_id="u") for e in h.episodes)
        m.delete(gone)
        with pytest.raises(NotFoundError):
            m.get(gone)
        with pytest.raises(NotFoundError):
            m.delete(gone)
        assert all(e.id != gone for h in m.search("passport number expires", user_id="u") for e in h.episodes)
        assert [e.id for e in m.list(user_id="u")] == [keep]
    _, keys, _, _ = decode_terms([r[0] for r in sql_rows(db, "SELECT terms FROM units")])  # type: ignore[misc]
    assert query_keys("passport")[0] not in set(keys.tolist())
    assert sql_rows(db, "SELECT COUNT(*) FROM units")[0][0] == 1
    assert sql_rows(db, "SELECT COUNT(*) FROM vectors")[0][0] == 1  # the deleted text's vector is gone
    assert sql_rows(db, "SELECT COUNT(*) FROM episodes WHERE content LIKE '%passport%'")[0][0] == 0


def test_index_stays_current_across_instances(store_at: Callable[[str], str], tmp_path: Path, real_embedder: object) -> None:
    db = store_at("m")
    with Memory(db, embedder=real_embedder) as a, Memory(db, embedder=real_embedder) as b:  # type: ignore[arg-type]
        a.add("I play the cello in an orchestra", user_id="u")
        assert b.search("cello", user_id="u")
        [eid] = b.add("My sister plays the violin", user_id="u")
        assert any(e.id == eid for h in a.search("violin sister", user_id="u") for e in h.episodes)
        a.delete(eid)
        assert all(e.id != eid for h in b.search("violin sister", user_id="u") for e in h.episodes)


def test_embeddings_are_cached_by_content(store_at: Callable[[str], str], tmp_path: Path, real_embedder: object) -> None:
    with Memory(store_at("m"), embedder=real_embedder) as m:  # type: ignore[arg-type]
        m.add(["The sky was grey all day", "Trains were late again"], user_id="u1")
        assert m.embedded_texts == 2
        m.add(["I like green tea"], user_id="u1")  # the message and its fact key ("user likes green tea")
        assert m.embedded_texts == 4
        m.add(["The sky was grey all day", "Trains were late again", "I like green tea"], user_id="u2")
        assert m.embedded_texts == 4  # same texts, other user: all from the cache


def test_shared_embedding_cache_across_files(tmp_path: Path, real_embedder: object) -> None:
    cache = tmp_path / "cache" / "emb.sqlite"
    with Memory(tmp_path / "a.db", embedder=real_embedder, embedding_cache=cache) as a:  # type: ignore[arg-type]
        a.add("Shared sentence about mountains", user_id="u")
        assert a.embedded_texts == 1
    with Memory(tmp_path / "b.db", embedder=real_embedder, embedding_cache=cache) as b:  # type: ignore[arg-type]
        b.add("Shared sentence about mountains", user_id="u")
        assert b.embedded_texts == 0
        assert b.search("mountains", user_id="u")[0].signals["dense"] > 0


def test_lexical_only_memory_needs_no_model(store_at: Callable[[str], str], tmp_path: Path) -> None:
    with Memory(store_at("m"), embedder=None) as m:
        m.add(["The red bicycle is in the garage", "I bought apples"], user_id="u")
        [hit, *_] = m.search("where is the bicycle", user_id="u")
        assert "bicycle" in hit.text and hit.signals["dense"] == 0


def test_reopen_keeps_data_and_schema(store_at: Callable[[str], str], tmp_path: Path, real_embedder: object) -> None:
    db = store_at("m")
    with Memory(db, embedder=real_embedder) as m:  # type: ignore[arg-type]
        m.add("persisted across opens", user_id="u")
    with Memory(db, embedder=real_embedder) as m:  # type: ignore[arg-type]
        assert m.search("persisted", user_id="u")[0].text == "persisted across opens"
        assert m.stats().schema_version == schema_version() == "0016_ingest_reads"


def test_acknowledged_add_survives_a_killed_process(store_at: Callable[[str], str], tmp_path: Path) -> None:
    db = store_at("crash")
    script = textwrap.dedent(
        f"""
        import os, sys
        from engramdb import Memory, HashEmbedder
        m = Memory({str(db)!r}, embedder=HashEmbedder())
        m.add(["first durable message", "second durable message"], user_id="u", session_id="s")
        print("ACK", flush=True)
        os._exit(9)  # die without closing anything
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "ACK" in out.stdout, out.stderr
    with Memory(db, embedder=HashEmbedder()) as m:
        assert [e.text for e in m.list(user_id="u")] == ["first durable message", "second durable message"]
        assert m.search("durable", user_id="u")


def test_stats_counts(demo_mem: Memory) -> None:
    s = demo_mem.stats()
    assert (s.users, s.episodes, s.sessions) == (1, 20, 3)
    assert s.units == 20 and s.vectors == 20
    assert s.embedder and "MiniLM" in s.embedder


def test_export_yields_every_episode(demo_mem: Memory) -> None:
    exported = list(demo_mem.export(user_id="demo"))
    assert len(exported) == 20
    assert exported[0].to_dict()["metadata"] == {"turn_id": "s1:0"}


def test_an_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError, match="PostgreSQL") as info:
        Memory("postgresql://ann:s3cret@127.0.0.1:1/db?connect_timeout=2")
    assert "s3cret" not in str(info.value) and "ann:***@127.0.0.1:1" in str(info.value)


def test_a_postgres_schema_name_must_be_an_identifier() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError, match="schema"):
        Memory("postgresql://ann@127.0.0.1:1/db?schema=x;drop")


def test_missing_directory_is_store_error(tmp_path: Path) -> None:
    with pytest.raises(EngramError, match="does not exist"):
        Memory(tmp_path / "nope" / "m.db", embedder=None)


def test_not_a_database_is_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EngramError):
        Memory(bad, embedder=None)


def test_a_speakers_next_turn_is_recalled_with_their_last(store_at: Callable[[str], str], tmp_path: Path) -> None:
    # In a dialogue a person's next turn goes on from their last, with the other's reply in
    # between: it gains from it ("thread"), across separate writes and only within a session.
    turns = [
        ("Ana", "I signed up for a pottery class at the community center."),
        ("Ben", "Nice, when does it start?"),
        ("Ana", "Every Tuesday evening, the teacher is a retired sculptor."),
    ]
    with Memory(store_at("t"), embedder=None) as m:
        m.add([{"role": "user", "name": n, "content": c} for n, c in turns], user_id="u", session_id="s1")
        m.add([{"role": "user", "name": "Ben", "content": "Cool."},
               {"role": "user", "name": "Ana", "content": "Anyway, my car broke down again yesterday."}],
              user_id="u", session_id="s1")
        m.add([{"role": "user", "name": "Ana", "content": "Tuesday is bin day."}], user_id="u", session_id="s2")

        def by_first_word(q: str, **kw: object) -> dict[str, Hit]:
            return {h.text.split()[0]: h for h in m.search(q, user_id="u", limit=10, **kw)}  # type: ignore[arg-type]

        hits = by_first_word("Which class did Ana sign up for?")
        signed, tuesday, ben = hits["I"], hits["Every"], hits["Nice,"]
        assert signed.signals["relevance"] > 0
        assert tuesday.signals["thread"] == pytest.approx(signed.signals["relevance"])
        assert ben.signals["thread"] == 0  # Ben's turn is Ana's next-door neighbour, not her thread
        assert "Tuesday" not in hits or hits["Tuesday"].signals["thread"] == 0  # another session
        off = by_first_word("Which class did Ana sign up for?", options=RecallOptions(weights=Weights(thread=0)))
        assert tuesday.score == pytest.approx(off["Every"].score + Weights().thread * tuesday.signals["thread"])
        # The later write linked Ana's last turn of the first write to her next one.
        car = by_first_word("What broke down again?")
        assert car["Anyway,"].signals["relevance"] > 0
        assert car["Every"].signals["thread"] == pytest.approx(car["Anyway,"].signals["relevance"])
        # Talking with an assistant, the user's next turn answers its reply: no thread.
        m.add([{"role": "user", "content": "I adopted a puppy called Rex."},
               {"role": "assistant", "content": "Congratulations on the new family member!"},
               {"role": "user", "content": "He chews every shoe in the house."}], user_id="u", session_id="s3")
        rex = by_first_word("What did I call the puppy I adopted?")
        assert rex["I"].signals["relevance"] > 0 and rex["He"].signals["thread"] == 0
