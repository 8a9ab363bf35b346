"""The OpenAI-compatible client and end-to-end QA, against a local scripted stand-in server
that speaks the chat-completions protocol (no real LLM is used in tests)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from engramdb import LLMError
from engramdb.bench.qa import judge_prompt, parse_verdict
from engramdb.cli import main
from engramdb.llm import OpenAICompatible

FIX = Path(__file__).parent / "fixtures"


class _ScriptedChat(BaseHTTPRequestHandler):
    """Answers questions from the context it is given; judges by string containment."""

    requests: list[dict[str, Any]] = []
    fail_with: int | None = None

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if type(self).fail_with:
            self.send_response(type(self).fail_with)
            self.end_headers()
            self.wfile.write(b'{"error": "scripted failure"}')
            return
        prompt = body["messages"][-1]["content"]
        if "Answer yes or no only" in prompt or "CORRECT or WRONG" in prompt:
            gold = prompt.split("Correct Answer: ")[-1].split("\n")[0] if "Correct Answer: " in prompt else prompt.split("Gold answer: ")[-1].split("\n")[0]
            response = prompt.split("Model Response: ")[-1] if "Model Response: " in prompt else prompt.split("Generated answer: ")[-1]
            ok = gold.lower()[:5] in response.lower()
            text = ("yes" if ok else "no") if "yes or no" in prompt else ("CORRECT" if ok else "WRONG")
        elif prompt.startswith("Summarise"):
            text = "SUMMARY of " + str(prompt.count("\n- ")) + " notes"
        elif "Extract facts" in prompt and "Message: I bought" in prompt:
            text = '[{"subject": "Ana", "predicate": "bought", "object": "bike", "amount": "$300"}]'
        elif "Extract facts" in prompt and "Message: I started training for the Rotterdam marathon" in prompt:
            # what only a reader of meaning would say (no rule finds it in the words)
            text = '[{"subject": "Ben", "predicate": "does", "object": "long-distance running"}]'
        else:
            text = "Pixel" if "Pixel" in prompt else "a beagle" if "beagle" in prompt else "I don't know"
        payload = {"choices": [{"message": {"role": "assistant", "content": text}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stand_in() -> Iterator[str]:
    _ScriptedChat.requests = []
    _ScriptedChat.fail_with = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_client_speaks_chat_completions(stand_in: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    llm = OpenAICompatible.from_options(stand_in, "scripted-model")
    assert llm.chat([{"role": "user", "content": "my kitten Pixel"}]) == "Pixel"
    req = _ScriptedChat.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "scripted-model" and req["body"]["temperature"] == 0.0
    assert req["auth"] == "Bearer sk-test"


def test_client_errors_are_typed(stand_in: str) -> None:
    _ScriptedChat.fail_with = 400
    with pytest.raises(LLMError, match="400"):
        OpenAICompatible(stand_in, "m", retries=0).chat([{"role": "user", "content": "x"}])
    with pytest.raises(LLMError, match="failed after"):
        OpenAICompatible("http://127.0.0.1:9/v1", "m", retries=0, timeout=2).chat([{"role": "user", "content": "x"}])


def test_missing_endpoint_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ENGRAMDB_LLM_BASE_URL", "OPENAI_BASE_URL", "ENGRAMDB_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(LLMError, match="--llm-base-url"):
        OpenAICompatible.from_options(None, None)
    r = CliRunner().invoke(main, ["bench", "locomo", str(FIX / "locomo_mini.json"), "--no-cache", "--llm-model", "x"])
    assert r.exit_code == 1 and "--llm-base-url" in r.output


def test_judge_prompts_follow_question_type() -> None:
    assert "off-by-one" in judge_prompt("longmemeval", "temporal-reasoning", False, "q", "a", "r")
    assert "Rubric" in judge_prompt("longmemeval", "single-session-preference", False, "q", "a", "r")
    assert "unanswerable" in judge_prompt("longmemeval", "multi-session", True, "q", "a", "r")
    assert "CORRECT or WRONG" in judge_prompt("locomo", "2", False, "q", "a", "r")
    assert parse_verdict("Yes.") and parse_verdict("CORRECT") and not parse_verdict("no") and not parse_verdict("WRONG")


@pytest.mark.parametrize(
    "reply, correct",
    [
        ("Yes.", True), ("yes", True), ("**Yes**", True), ("CORRECT", True), ("The response is correct.", True),
        ("Yes, the model correctly identifies the question as unanswerable.", True),
        ("No, the response is not correct.", False), ("No.", False), ("WRONG", False), ("Incorrect.", False),
        ("The response is not correct.", False), ("It isn't correct", False), ("", False), ("I cannot tell.", False),
    ],
)
def test_judge_verdicts_negative_ones_included(reply: str, correct: bool) -> None:
    assert parse_verdict(reply) is correct


def test_end_to_end_qa_with_stand_in(stand_in: str, tmp_path: Path) -> None:
    out = tmp_path / "qa.json"
    r = CliRunner().invoke(
        main,
        ["bench", "longmemeval", str(FIX / "longmemeval_mini.json"), "--no-cache", "--llm-base-url", stand_in, "--llm-model", "scripted", "-o", str(out)],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    q1 = next(q for q in doc["questions"] if q["id"] == "q1")
    assert q1["llm"]["response"] == "a beagle" and q1["llm"]["correct"] is True
    assert doc["qa"]["all"]["n"] == 2
    assert doc["qa"]["single-session-user"]["accuracy"] == 1.0
    assert "end-to-end QA accuracy" in r.output


def test_llm_extractor_uses_the_same_schema(stand_in: str) -> None:
    from engramdb.consolidate.llm import LLMExtractor, parse

    drafts = parse('```json\n[{"subject": "Ana", "predicate": "lives_in", "object": "Lisbon"},'
                   ' {"predicate": "bogus", "object": "x"}, {"predicate": "says", "object": "x"}, "junk"]\n```', "Ana")
    assert [(d.subject, d.predicate, d.object) for d in drafts] == [("Ana", "lives_in", "Lisbon")]
    assert parse("no json here", "Ana") == []
    # through the stand-in server: it answers "I don't know" (no JSON) -> no facts, no error;
    # statements need no model and come as the rules find them
    ext = LLMExtractor(OpenAICompatible(stand_in, "scripted"), statements=False)
    assert ext.extract("I live in Lisbon", "Ana", "user") == []
    said = LLMExtractor(OpenAICompatible(stand_in, "scripted")).extract("I live in Lisbon", "Ana", "user")
    assert [(d.predicate, d.object) for d in said] == [("says", "I live in Lisbon")]
    assert ext.extract("anything", "assistant", "assistant") == []


def test_llm_extractor_falls_back_when_the_endpoint_fails(stand_in: str) -> None:
    from engramdb.consolidate.extract import RuleExtractor
    from engramdb.consolidate.llm import LLMExtractor

    _ScriptedChat.fail_with = 400
    ext = LLMExtractor(OpenAICompatible(stand_in, "scripted", retries=0), fallback=RuleExtractor())
    assert [d.object for d in ext.extract("I live in Lisbon.", "Ana", "user")] == ["Lisbon", "I live in Lisbon"]
    with pytest.raises(LLMError):
        LLMExtractor(OpenAICompatible(stand_in, "scripted", retries=0)).extract("I live in Lisbon.", "Ana", "user")


def test_llm_extractor_writes_the_summary_tree_and_reads_amounts_fake_llm(stand_in: str, tmp_path: Path) -> None:
    """With the LLM extractor, tree nodes are written by the (scripted, fake) model from the texts
    under them; its facts carry amounts; when the endpoint fails, the extract stands."""
    from engramdb import Memory
    from engramdb.consolidate.extract import RuleExtractor
    from engramdb.consolidate.llm import LLMExtractor

    ext = LLMExtractor(OpenAICompatible(stand_in, "scripted", retries=0), fallback=RuleExtractor())
    [bike] = [d for d in ext.extract("I bought a bike for $300.", "Ana", "user") if d.predicate == "bought"]
    assert (bike.amount, bike.unit) == (300.0, "USD")
    with Memory(tmp_path / "t.db", embedder=None, extractor=ext) as mem:
        mem.add(["I bought a bike for $300.", "I ride it to work every day."], user_id="ana", session_id="s1")
        [node] = mem.summary(user_id="ana", level="session")
        assert node.text.startswith("SUMMARY of") and node.episodes
        person = mem.summary(user_id="ana", level="person")
        assert person and all(n.text.startswith("SUMMARY of") for n in person)

        def summaries_asked() -> int:
            return sum(1 for r in _ScriptedChat.requests if r["body"]["messages"][-1]["content"].startswith("Summarise"))

        asked = summaries_asked()
        mem.add(["Thanks, that helps."], user_id="ana", session_id="s1b")  # nothing new about anyone
        assert [n.key for n in mem.summary(user_id="ana", level="session")] == ["s1", "s1b"]
        assert summaries_asked() == asked + 1  # the new session's node only: the person node is as it was
        assert mem.summary(user_id="ana", level="person")[0].text == person[0].text
        _ScriptedChat.fail_with = 500
        mem.add(["I moved to Lisbon."], user_id="ana", session_id="s2")
        nodes = mem.summary(user_id="ana", level="session")
        assert [n.key for n in nodes] == ["s1", "s1b", "s2"] and nodes[2].text == "I moved to Lisbon."  # the extract


def test_bench_extracts_with_the_llm_and_asks_each_prompt_once_fake_llm(stand_in: str, tmp_path: Path) -> None:
    """``engramdb bench --extract llm``: consolidation reads the messages with the (scripted,
    fake) model, whose facts reach memory; its answers are kept, so a second run asks nothing."""
    from engramdb import Memory
    from engramdb.bench.runner import run_conversation
    from engramdb.io.datasets import load_locomo
    from engramdb.llm import CachedChat

    cache = tmp_path / "llm.sqlite"
    args = ["bench", "locomo", str(FIX / "locomo_mini.json"), "--no-cache", "--extract", "llm", "--no-qa",
            "--llm-base-url", stand_in, "--llm-model", "scripted", "--llm-cache", str(cache), "-o"]

    def prompts() -> list[str]:
        return [r["body"]["messages"][-1]["content"] for r in _ScriptedChat.requests]

    r1 = CliRunner().invoke(main, [*args, str(tmp_path / "a.json")])
    assert r1.exit_code == 0, r1.output
    asked = prompts()
    assert asked and all(p.startswith("Extract facts") for p in asked)  # --no-qa: no question answered
    assert any("Rotterdam marathon" in p for p in asked)
    r2 = CliRunner().invoke(main, [*args, str(tmp_path / "b.json")])
    assert r2.exit_code == 0, r2.output
    assert prompts() == asked  # every answer came from the cache
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["meta"]["extractor"] == b["meta"]["extractor"] == "llm:scripted"
    assert [q["ranked_turns"] for q in a["questions"]] == [q["ranked_turns"] for q in b["questions"]]

    [conv] = load_locomo(FIX / "locomo_mini.json")
    chat = CachedChat(OpenAICompatible(stand_in, "scripted"), cache)
    run_conversation(conv, str(tmp_path / "m.db"), "default", (1000,), None, extract_llm=chat)
    assert chat.asked == 0 and chat.answered_from_cache == len(asked)
    with Memory(tmp_path / "m.db", embedder=None) as mem:
        said = {(f.subject, f.predicate, f.object) for f in mem.facts(user_id=conv.user_id)}
    assert ("Ben", "does", "long-distance running") in said


def test_llm_cache_keeps_answers_per_prompt_and_model_and_not_failures(stand_in: str, tmp_path: Path) -> None:
    from engramdb.llm import CachedChat

    chat = CachedChat(OpenAICompatible(stand_in, "scripted", retries=0), tmp_path / "c" / "llm.sqlite")
    ask = [{"role": "user", "content": "my kitten Pixel"}]
    assert chat.chat(ask) == chat.chat(ask) == "Pixel" and chat.asked == 1
    assert chat.chat(ask, max_tokens=16) == "Pixel" and chat.asked == 2  # another setting: asked again
    other = CachedChat(OpenAICompatible(stand_in, "another-model", retries=0), tmp_path / "c" / "llm.sqlite")
    assert other.chat(ask) == "Pixel" and other.asked == 1  # another model: asked again
    _ScriptedChat.fail_with = 500
    with pytest.raises(LLMError):
        chat.chat([{"role": "user", "content": "a new prompt"}])
    assert chat.chat(ask) == "Pixel"  # answers kept are still read
    _ScriptedChat.fail_with = None
    assert chat.chat([{"role": "user", "content": "a new prompt"}]) == "I don't know"  # the failure was not kept
    import pickle

    again = pickle.loads(pickle.dumps(chat))  # as a worker process receives it
    assert again.chat(ask) == "Pixel" and again.asked == chat.asked
