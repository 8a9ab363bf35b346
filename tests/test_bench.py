"""The benchmark: metrics cross-checked against an independent transcription of LongMemEval's
scorer, dataset loaders, and a full run through the CLI on small bundled fixtures."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from engramdb import DatasetError
from engramdb.bench import metrics as M
from engramdb.bench.report import bootstrap_p, compare, mcnemar_p
from engramdb.bench.runner import question_metrics, summarise
from engramdb.cli import main
from engramdb.io.datasets import load_locomo, load_longmemeval

FIX = Path(__file__).parent / "fixtures"


# -- an independent implementation: LongMemEval's eval_utils, transcribed (numpy style) ------


def lme_dcg(relevances: list[float], k: int) -> float:
    r = np.asarray(relevances, dtype=float)[:k]
    if r.size:
        return float(r[0] + np.sum(r[1:] / np.log2(np.arange(2, r.size + 1))))
    return 0.0


def lme_ndcg(rankings: list[int], correct_docs: list[str], corpus_ids: list[str], k: int) -> float:
    relevances = [1 if doc_id in correct_docs else 0 for doc_id in corpus_ids]
    sorted_relevances = [relevances[idx] for idx in rankings[:k]]
    ideal_relevance = sorted(relevances, reverse=True)
    ideal_dcg = lme_dcg(ideal_relevance, k)
    actual_dcg = lme_dcg(sorted_relevances, k)
    return 0.0 if ideal_dcg == 0 else actual_dcg / ideal_dcg


def lme_evaluate(rankings: list[int], correct_docs: list[str], corpus_ids: list[str], k: int) -> tuple[float, float, float]:
    recalled = set(corpus_ids[idx] for idx in rankings[:k])
    recall_any = float(any(doc in recalled for doc in correct_docs))
    recall_all = float(all(doc in recalled for doc in correct_docs))
    return recall_any, recall_all, lme_ndcg(rankings, correct_docs, corpus_ids, k)


def test_metrics_match_longmemeval_scorer_on_random_rankings() -> None:
    rng = random.Random(7)
    for _ in range(500):
        corpus = [f"d{i}" for i in range(rng.randint(3, 40))]
        gold = rng.sample(corpus, rng.randint(1, min(5, len(corpus))))
        rankings = list(range(len(corpus)))
        rng.shuffle(rankings)
        ranked = [corpus[i] for i in rankings]
        for k in (1, 5, 10, 50):
            any_, all_, ndcg = lme_evaluate(rankings, gold, corpus, k)
            assert M.recall_any(ranked, gold, k) == any_
            assert M.recall_all(ranked, gold, k) == all_
            assert M.ndcg_any(ranked, gold, k) == pytest.approx(ndcg, abs=1e-9)


def test_metric_values_known_by_construction() -> None:
    ranked = ["a", "x", "b", "y"]
    assert M.recall_all(ranked, ["a", "b"], 2) == 0.0
    assert M.recall_all(ranked, ["a", "b"], 3) == 1.0
    assert M.recall_any(ranked, ["b"], 2) == 0.0
    # DCG as LongMemEval computes it: ranks 1 and 2 weigh 1, rank 3 weighs 1/log2(3)
    assert M.ndcg_any(ranked, ["a", "b"], 3) == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert M.ndcg_any(["x", "a"], ["a"], 2) == 1.0
    items = [(["a"], 400), (["x"], 500), (["b"], 200)]
    assert M.covered_within_budget(items, ["a", "b"], 1100) == 1.0
    assert M.covered_within_budget(items, ["a", "b"], 1000) == 0.0  # b starts after token 900
    assert M.covered_within_budget(items, ["a"], 400) == 1.0
    assert M.percentile([1, 2, 3, 4], 0.5) == 2.5


def test_question_metrics_from_hits() -> None:
    hits = [(["t1", "t2"], ["s1", "s1"], 30), (["t9"], ["s3"], 10), (["t5"], ["s2"], 10)]
    m, turns, sessions = question_metrics(["t2", "t5"], ["s1", "s2"], hits, [40, 50])
    assert turns == ["t1", "t2", "t9", "t5"] and sessions == ["s1", "s3", "s2"]
    assert m["turn_all@10hits"] == 1.0
    assert m["turn_recall_all@5"] == 1.0 and m["sess_recall_all@5"] == 1.0
    assert m["er@40"] == 0.0 and m["er@50"] == 1.0


def test_significance_tests() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 2**10)
    assert mcnemar_p(5, 5) == 1.0
    assert bootstrap_p([0.5] * 30) < 0.01
    assert bootstrap_p([1, -1] * 20) > 0.5


def test_loaders_parse_times_and_evidence() -> None:
    [conv] = load_locomo(FIX / "locomo_mini.json")
    assert conv.user_id == "mini-1" and [s.id for s in conv.sessions] == ["session_1", "session_2"]
    first = conv.sessions[0].messages[0]
    assert first["name"] == "Ana" and first["metadata"] == {"turn_id": "D1:1"}
    assert first["timestamp"].isoformat() == "2023-03-03T10:00:00+00:00"
    assert "[shares an image: a black kitten sitting on a keyboard]" in conv.sessions[1].messages[1]["content"]
    q = conv.questions[2]
    assert q.evidence_turns == ["D2:2", "D2:4"] and q.evidence_sessions == ["session_2"]
    assert conv.questions[4].abstention
    lme = list(load_longmemeval(FIX / "longmemeval_mini.json"))
    assert [c.user_id for c in lme] == ["q1", "q2_abs"]
    assert lme[0].questions[0].evidence_turns == ["s_b:0"] and lme[1].questions[0].abstention
    assert lme[0].questions[0].asked_at and lme[0].questions[0].asked_at.day == 30


def test_loader_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        load_locomo(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError):
        load_locomo(bad)
    bad.write_text(json.dumps([{"no": "conversation"}]))
    with pytest.raises(DatasetError):
        load_locomo(bad)
    bad.write_text(json.dumps([{"question_id": "x"}]))
    with pytest.raises(DatasetError):
        list(load_longmemeval(bad))


@pytest.mark.parametrize("kind, fixture", [("locomo", "locomo_mini.json"), ("longmemeval", "longmemeval_mini.json")])
def test_bench_cli_end_to_end(tmp_path: Path, kind: str, fixture: str) -> None:
    out = tmp_path / "report"
    res = CliRunner().invoke(
        main,
        ["bench", kind, str(FIX / fixture), "--report", str(out), "--cache", str(tmp_path / "cache.sqlite"), "--budget", "50", "--budget", "1000"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / f"{kind}-default.json").read_text())
    assert (out / f"{kind}-default-summary.md").read_text().startswith("# engramdb bench")
    assert (out / f"{kind}-default-recall_vs_budget.png").stat().st_size > 1000
    assert (out / f"{kind}-default-latency.png").exists()
    assert doc["meta"]["budgets"] == [50, 1000]
    # the summary agrees with the independent scorer applied to the stored rankings
    for q in doc["questions"]:
        if q["abstention"] or not q["evidence_turns"]:
            continue
        corpus = list(dict.fromkeys(q["ranked_turns"] + q["evidence_turns"]))
        rankings = [corpus.index(t) for t in q["ranked_turns"]]
        _, all10, ndcg10 = lme_evaluate(rankings, q["evidence_turns"], corpus, 10)
        assert q["metrics"]["turn_recall_all@10"] == all10
        assert q["metrics"]["turn_ndcg_any@10"] == pytest.approx(ndcg10)
    assert doc["summary"] == summarise(doc["questions"])
    # abstention questions are excluded from recall
    assert all(not q["abstention"] for q in doc["questions"] if q["metrics"]) or doc["summary"]["all"]["n"] < len(doc["questions"])
    # tiny conversations fit in 1000 tokens: every non-abstention question has its evidence there
    assert doc["summary"]["all"]["er@1000"] == 1.0
    assert doc["cost"]["turns"] > 0 and doc["cost"]["search_ms_p95"] > 0


def test_bench_second_run_hits_the_embedding_cache(tmp_path: Path) -> None:
    args = ["bench", "locomo", str(FIX / "locomo_mini.json"), "--cache", str(tmp_path / "c.sqlite"), "-o"]
    r1 = CliRunner().invoke(main, [*args, str(tmp_path / "a.json")])
    r2 = CliRunner().invoke(main, [*args, str(tmp_path / "b.json")])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["cost"]["embedded_texts"] > 0 and b["cost"]["embedded_texts"] == 0
    # deterministic: same inputs, same rankings
    assert [q["ranked_turns"] for q in a["questions"]] == [q["ranked_turns"] for q in b["questions"]]


def test_bench_configs_and_compare(tmp_path: Path) -> None:
    runner = CliRunner()
    for config in ("bm25", "default"):
        r = runner.invoke(
            main, ["bench", "locomo", str(FIX / "locomo_mini.json"), "--config", config, "--no-cache", "-o", str(tmp_path / f"{config}.json")]
        )
        assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["bench", "compare", str(tmp_path / "bm25.json"), str(tmp_path / "default.json")])
    assert r.exit_code == 0, r.output
    assert "turn_all@10hits" in r.output and "mcnemar" in r.output
    rows = compare(json.loads((tmp_path / "bm25.json").read_text()), json.loads((tmp_path / "default.json").read_text()))
    assert {r["category"] for r in rows} >= {"all"}


def test_bm25_baseline_is_plain_full_text_over_turns(tmp_path: Path) -> None:
    # No consolidation: fact and statement keys would sit in the same full-text index and shift
    # its term statistics, so the "plain BM25" baseline would not be plain.
    from engramdb import Memory
    from engramdb.bench.runner import memory_kwargs

    with Memory(tmp_path / "b.db", **memory_kwargs("bm25")) as m:
        m.add([{"role": "user", "content": "I live in Berlin and I love hiking."}], user_id="u")
        assert m.facts(user_id="u", kinds=["fact", "preference", "statement"]) == []
        assert m.search("hiking", user_id="u", limit=1)[0].signals["facts"] == 0


def test_bench_jobs_give_same_results(tmp_path: Path) -> None:
    runner = CliRunner()
    for jobs in ("1", "2"):
        r = runner.invoke(
            main, ["bench", "longmemeval", str(FIX / "longmemeval_mini.json"), "--jobs", jobs, "--cache", str(tmp_path / "c.sqlite"), "-o", str(tmp_path / f"j{jobs}.json")]
        )
        assert r.exit_code == 0, r.output
    one = json.loads((tmp_path / "j1.json").read_text())
    two = json.loads((tmp_path / "j2.json").read_text())
    assert one["summary"] == two["summary"]


def test_bench_rejects_bad_options(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["bench", "locomo", str(FIX / "locomo_mini.json"), "--config", "nope"])
    assert r.exit_code != 0 and "nope" in r.output
    r = CliRunner().invoke(main, ["bench", "locomo", str(FIX / "longmemeval_mini.json"), "--no-cache"])
    assert r.exit_code != 0
