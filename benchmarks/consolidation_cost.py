"""Consolidation cost: seconds per 1,000 turns on LongMemEval histories, offline extractor.

    python benchmarks/consolidation_cost.py [--shared ../shared] [--limit 98]

Each question's history is ingested with consolidation deferred (``consolidate_on_add=False``;
episode embeddings come from the shared bench cache), then ``Memory.consolidate`` is timed:
rule extraction, supersession decisions, segmentation, embedding the new fact and statement keys,
storing.
Also prints the extractor's precision/recall and supersession accuracy on the labelled set.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from engramdb import Memory, RuleExtractor, default_embedder
from engramdb.bench.facts import load_cases, score_extraction, score_statements, score_supersession
from engramdb.bench.runner import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--limit", type=int, default=98)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/engramdb/embeddings.sqlite"))
    args = ap.parse_args()
    convs = load_dataset("longmemeval", args.shared / "data/longmemeval/longmemeval_s_dev.json.gz")[: args.limit]
    embedder = default_embedder()
    turns = facts = said = 0
    seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        with Memory(Path(tmp) / "c.db", embedder=embedder, embedding_cache=args.cache, consolidate_on_add=False) as mem:
            for conv in convs:
                for s in conv.sessions:
                    if s.messages:
                        mem.add(s.messages, user_id=conv.user_id, session_id=s.id)
                t0 = time.perf_counter()
                report = mem.consolidate(user_id=conv.user_id)
                seconds += time.perf_counter() - t0
                turns += report.episodes
                facts += report.facts_added
                said += report.statements
    cases = load_cases(Path(__file__).parent.parent / "tests" / "fixtures" / "facts_cases.json")
    ext = score_extraction(cases, RuleExtractor())
    st_precision, st_recall, _ = score_statements(cases, RuleExtractor())
    with tempfile.TemporaryDirectory() as tmp:
        n = iter(range(100_000))
        sup, _ = score_supersession(cases, lambda: Memory(Path(tmp) / f"{next(n)}.db", embedder=None))
    print(json.dumps({
        "histories": len(convs),
        "turns": turns,
        "facts_added": facts,
        "statements_added": said,
        "consolidation_seconds": round(seconds, 2),
        "seconds_per_1000_turns": round(seconds / turns * 1000, 2) if turns else None,
        "labelled_set": {"cases": len(cases), "precision": round(ext.precision, 3), "recall": round(ext.recall, 3),
                         "supersession_accuracy": round(sup, 3),
                         "statements": {"precision": round(st_precision, 3), "recall": round(st_recall, 3)}},
    }, indent=1))


if __name__ == "__main__":
    main()
