"""``engramdb bench``: measure recall on public benchmarks or your own data in their format."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .. import clikit as _cli
from ..errors import InputError
from . import report as R
from . import runner


def _default_cache(name: str = "embeddings.sqlite") -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "engramdb", name)


def _default_llm_cache() -> str:
    return _default_cache("llm.sqlite")


def _run(kind: str, path: str, config: str, corpus: str, split: str, budgets: tuple[int, ...], report: str | None, output: str | None,
         limit: int | None, jobs: int, cache: str, no_cache: bool, llm_base_url: str | None, llm_model: str | None,
         db: str | None = None, extract: str = "rules", qa: bool = True, llm_cache: str | None = None) -> None:
    budgets = tuple(sorted(set(budgets))) or runner.DEFAULT_BUDGETS
    if any(b < 1 for b in budgets):
        raise InputError("--budget must be positive", field="budget")
    if jobs < 1:
        raise InputError("--jobs must be at least 1", field="jobs")
    llm = extract_llm = None
    if llm_base_url or llm_model or extract == "llm":
        from ..llm import CachedChat, OpenAICompatible

        endpoint = OpenAICompatible.from_options(llm_base_url, llm_model)  # LLMError without one
        llm = endpoint if qa else None
        if extract == "llm":  # every message is read: answers are kept, a second run asks nothing again
            extract_llm = CachedChat(endpoint, llm_cache or _default_llm_cache())
    with _cli.progress_bar() as prog:
        task = prog.add_task(f"{kind} · {config}", total=None)
        doc = runner.run(
            kind,
            path,
            config=config,
            corpus=corpus,
            split=split,
            budgets=budgets,
            limit=limit,
            jobs=jobs,
            cache=None if no_cache else cache,
            progress=lambda done, total: prog.update(task, completed=done, total=total),
            llm=llm,
            db=db,
            extract_llm=extract_llm,
        )
    R.print_summary(doc, _cli.console)
    if output:
        R.write_json(doc, output)
        _cli.err_console.print(f"results: {output}")
    if report:
        name = "-".join([kind, config] + [v for v in (corpus, split) if v != "all"] + (["llm-extract"] if extract_llm else []))
        folder = R.write_report(doc, report, name)
        _cli.err_console.print(f"report: {folder / (name + '-summary.md')} (per-question results: {folder / (name + '.json')})")


def _bench_command(kind: str, help_text: str) -> click.Command:
    @click.command(name=kind, help=help_text)
    @click.argument("path", type=_cli.SafePath(exists=True, dir_okay=False))
    @click.option("--config", default="default", show_default=True, type=click.Choice(list(runner.CONFIGS)),
                  help="Engine configuration: default, the bm25 baseline, or an ablation.")
    @click.option("--corpus", default="all", show_default=True, type=click.Choice(["all", "official"]),
                  help="LongMemEval only: 'official' indexes user turns only and takes gold as LongMemEval's "
                  "scorer does, so recall/ndcg compare with the paper's tables.")
    @click.option("--split", default="all", show_default=True, type=click.Choice(list(runner.SPLITS)),
                  help="Half of the file's conversations: 'tune' (the first half; choose rules there) or "
                  "'report' (the second; judge them there).")
    @click.option("--budget", "budgets", multiple=True, type=int,
                  help="Token budget B for er@B, cite@B, ans@B, ctx@B (repeatable). Default: 500 1000 2000 4000.")
    @click.option("--report", default=None, type=_cli.SafePath(file_okay=False), help="Folder for <dataset>-<config>-summary.md, plots and the JSON results.")
    @click.option("--output", "-o", default=None, type=_cli.SafePath(dir_okay=False), help="Write per-question results as JSON here.")
    @click.option("--limit", default=None, type=int, help="Only the first N questions.")
    @click.option("--jobs", "-j", default=1, show_default=True, help="Parallel worker processes.")
    @click.option("--db", default=None, help="Run on this backend: a PostgreSQL URL (each worker gets a schema of it, "
                  "dropped afterwards). Default: SQLite files in a temporary folder.")
    @click.option("--cache", default=_default_cache, show_default="~/.cache/engramdb/embeddings.sqlite", help="Shared embedding cache file.")
    @click.option("--no-cache", is_flag=True, help="Do not use the shared embedding cache (cold run).")
    @click.option("--llm-base-url", default=None, envvar="ENGRAMDB_LLM_BASE_URL", help="OpenAI-compatible endpoint: end-to-end QA, and --extract llm.")
    @click.option("--llm-model", default=None, envvar="ENGRAMDB_LLM_MODEL", help="Model name at that endpoint (key from OPENAI_API_KEY).")
    @click.option("--extract", default="rules", show_default=True, type=click.Choice(["rules", "llm"]),
                  help="What extracts facts during ingest: the offline rules, or the LLM at --llm-base-url (its "
                  "answers are cached, so a second run or another --config asks nothing again).")
    @click.option("--qa/--no-qa", default=True, show_default=True,
                  help="With an endpoint, answer and judge every question end to end (--no-qa: extraction only).")
    @click.option("--llm-cache", default=_default_llm_cache, show_default="~/.cache/engramdb/llm.sqlite",
                  type=_cli.SafePath(dir_okay=False), help="Where --extract llm keeps the model's answers.")
    @_cli.handle_errors
    def command(**kw: Any) -> None:
        _run(kind, **kw)

    return command


@click.group()
def bench() -> None:
    """Measure recall quality and cost (LongMemEval's official retrieval metrics, LoCoMo evidence recall)."""


bench.add_command(_bench_command("locomo", "Run LoCoMo-format conversations (evidence recall by category)."))
bench.add_command(_bench_command("longmemeval", "Run LongMemEval (S, M or oracle; .json or .json.gz)."))


@bench.command(name="compare")
@click.argument("a", type=_cli.SafePath(exists=True, dir_okay=False))
@click.argument("b", type=_cli.SafePath(exists=True, dir_okay=False))
@click.option("--metric", "metrics", multiple=True, help="Metric to compare (repeatable). Default: the headline metrics.")
@_cli.handle_errors
def compare_cmd(a: str, b: str, metrics: tuple[str, ...]) -> None:
    """Per-category deltas B − A with paired significance (McNemar for 0/1 metrics, bootstrap otherwise)."""
    da, db = R.read_json(a), R.read_json(b)
    rows = R.compare(da, db, metrics or None)
    _cli.console.print(R.compare_table(rows, Path(a).name, Path(b).name))


@bench.command(name="poisoning")
@click.option("--labelled", default=None, type=_cli.SafePath(exists=True, dir_okay=False),
              help="Labelled set (JSONL: text, label attack|benign, source, split). Default: the bundled one.")
@click.option("--chats", "chats", multiple=True, type=(click.Choice(["locomo", "longmemeval", "jsonl"]), _cli.SafePath(exists=True, dir_okay=False)),
              help="Also count flags on ordinary chat: KIND FILE (repeatable); every message is taken as benign.")
@click.option("--output", "-o", default=None, type=_cli.SafePath(dir_okay=False), help="Write the results as JSON here.")
@_cli.handle_errors
def poisoning_cmd(labelled: str | None, chats: tuple[tuple[str, str], ...], output: str | None) -> None:
    """The poisoning check: detection and false-positive rates on the labelled set (tune and
    report halves), and how often it flags ordinary chat."""
    import json

    from rich.table import Table

    from ..io.datasets import load_jsonl, load_locomo, load_longmemeval
    from . import poisoning

    doc: dict[str, Any] = {"labelled": poisoning.score(poisoning.load(labelled or poisoning.LABELLED)), "chats": {}}
    t = Table(title="poisoning check: labelled set")
    for col in ("split", "attacks", "benign", "detection", "false-positive rate"):
        t.add_column(col, justify="right")
    for split, r in doc["labelled"].items():
        t.add_row(split, str(r["attacks"]), str(r["benign"]), f"{r['detection']:.3f}", f"{r['false_positive_rate']:.3f}")
    _cli.console.print(t)
    for r in doc["labelled"].get("report", {}).get("missed", []):
        _cli.console.print(f"  missed (report half): {r[:100]}", markup=False)
    for kind, path in chats:
        if kind == "jsonl":
            msgs: Any = ((m.get("content", ""), m.get("role")) for _, _, m in load_jsonl(path, default_user="-"))
        else:
            convs = load_locomo(path) if kind == "locomo" else load_longmemeval(path)
            msgs = ((m["content"], m.get("role")) for c in convs for s in c.sessions for m in s.messages)
        with _cli.progress_bar() as prog:
            task = prog.add_task(f"checking {kind} messages", total=None)
            res = poisoning.chat_false_positives(msgs, progress=lambda n: prog.update(task, completed=n))
        doc["chats"][f"{kind}:{Path(path).name}"] = res
        _cli.console.print(
            f"{kind} {Path(path).name}: {res['flagged']} of {res['messages']:,} distinct messages flagged "
            f"({res['us_per_message']} µs per message)", markup=False,
        )
        for ex in res["examples"][:10]:
            _cli.console.print(f"  {ex['role']} [{', '.join(ex['reasons'])}] {ex['text'][:100]}", markup=False)
    if output:
        Path(output).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
        _cli.err_console.print(f"results: {output}")


@bench.command(name="structure")
@click.option("--labelled", default=None, type=_cli.SafePath(exists=True, dir_okay=False),
              help="Labelled set (JSONL: text, rows [[predicate, amount, unit]], places, split?). Default: the bundled one.")
@click.option("--output", "-o", default=None, type=_cli.SafePath(dir_okay=False), help="Write the results as JSON here.")
@_cli.handle_errors
def structure_cmd(labelled: str | None, output: str | None) -> None:
    """Structured memory on a labelled set: the amounts query() returns and the places
    places() reports, against what each statement tells (precision and recall per half;
    ``heldout`` was written after the rules and is the figure to quote)."""
    import json

    from rich.table import Table

    from . import structure

    with _cli.progress_bar() as prog:
        prog.add_task("reading the labelled statements into memory", total=None)
        doc = structure.score(structure.load(labelled or structure.LABELLED))
    t = Table(title="structured memory: labelled set")
    for col in ("split", "statements", "amounts P / R", "places P / R", "precision", "recall"):
        t.add_column(col, justify="right")

    def pr(d: dict[str, Any]) -> str:
        return " / ".join("-" if d[k] is None else f"{d[k]:.3f}" for k in ("precision", "recall"))

    for split, r in doc.items():
        t.add_row(split, str(r["statements"]), pr(r["amounts"]), pr(r["places"]),
                  "-" if r["precision"] is None else f"{r['precision']:.3f}", "-" if r["recall"] is None else f"{r['recall']:.3f}")
    _cli.console.print(t)
    for e in doc.get("heldout", {}).get("errors", []):
        _cli.console.print(f"  heldout: {e['text'][:80]} → rows {e['got']} places {e['places_got']}", markup=False)
    if output:
        Path(output).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
        _cli.err_console.print(f"results: {output}")


@bench.command(name="forgetting")
@click.argument("path", type=_cli.SafePath(exists=True, dir_okay=False))
@click.option("--keep", default=0.3, show_default=True, type=float, help="Share of episodes the capacity policy keeps active.")
@click.option("--seed", default=0, show_default=True, help="Seed choosing which questions are asked along the way.")
@click.option("--split", default="all", show_default=True, type=click.Choice(list(runner.SPLITS)), help="Half of the conversations.")
@click.option("--limit", default=None, type=int, help="Only the first N conversations.")
@click.option("--cache", default=_default_cache, show_default="~/.cache/engramdb/embeddings.sqlite", help="Shared embedding cache file.")
@click.option("--output", "-o", default=None, type=_cli.SafePath(dir_okay=False), help="Write the results as JSON here.")
@_cli.handle_errors
def forgetting_cmd(path: str, keep: float, seed: int, split: str, limit: int | None, cache: str, output: str | None) -> None:
    """Replay LoCoMo-format conversations with questions asked along the way, archive all but
    --keep of the episodes by strength, and measure recall and recognition afterwards."""
    import json

    from . import forgetting

    if not 0 < keep <= 1:
        raise InputError("--keep must be in (0, 1]", field="keep")
    convs = runner.load_dataset("locomo", path, split=split)[:limit]
    Path(cache).expanduser().parent.mkdir(parents=True, exist_ok=True)
    with _cli.progress_bar() as prog:
        task = prog.add_task("forgetting", total=len(convs))
        doc = forgetting.run(convs, cache=str(Path(cache).expanduser()), keep=keep, seed=seed,
                             progress=lambda done, total: prog.update(task, completed=done, total=total))
    s = doc["summary"]
    _cli.console.print(f"episodes {s['episodes']:,}, archived {s['archived']:,} (keep {keep:.0%}); {doc['meta']['wall_seconds']} s")
    for name in ("asked_along_the_way", "never_asked", "all"):
        g = s[name]
        if g["n"]:
            _cli.console.print(f"  {name:20s} n={g['n']:4d}  recall@{forgetting.K} {g['before']:.3f} -> {g['after']:.3f}"
                               f"  (ratio {g['ratio']:.3f})" if g["ratio"] is not None else f"  {name}: n={g['n']}")
    sizes = s["archived_bytes_per_episode"]
    _cli.console.print(f"  per archived episode: recognition reads {sizes['recognition']:.0f} bytes, "
                       f"its recall index entries took {sizes['recall_index']:.0f}")
    if s["archived_evidence_turns"]:
        _cli.console.print(f"  recognition of {s['archived_evidence_turns']} archived evidence turns (the turn as cue): "
                           f"known and pointed@5 {s['item_known_and_recognised@5']:.3f}; "
                           f"false alarms on {s['foils']} foils {s['foil_false_alarms']:.3f}")
    if s["evidence_archived"]:
        _cli.console.print(f"  with the question as cue ({s['evidence_archived']} questions): pointed@5 "
                           f"{s['question_recognised@5']:.3f}, known and pointed {s['question_known_and_recognised@5']:.3f}")
    if output:
        Path(output).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        _cli.err_console.print(f"results: {output}")


@bench.command(name="exact")
@click.option("--n", "n", default=3000, show_default=True, help="Memories, each with one unique token.")
@click.option("--seed", default=0, show_default=True, help="Seed of the generated memories.")
@click.option("--config", default="default", show_default=True, type=click.Choice(list(runner.CONFIGS)), help="Recall configuration.")
@click.option("--cache", default=_default_cache, show_default="~/.cache/engramdb/embeddings.sqlite", help="Shared embedding cache file.")
@click.option("--output", "-o", default=None, type=_cli.SafePath(dir_okay=False), help="Write the results as JSON here.")
@_cli.handle_errors
def exact_cmd(n: int, seed: int, config: str, cache: str, output: str | None) -> None:
    """Exact lookups: N near-identical memories, each with one rare token (a code, an id, a
    name); how often the memory comes first when a question asks for its token."""
    import json

    from . import exact

    if n < 2:
        raise InputError("--n must be at least 2", field="n")
    Path(cache).expanduser().parent.mkdir(parents=True, exist_ok=True)
    with _cli.progress_bar() as prog:
        task = prog.add_task("exact lookups", total=n)
        doc = exact.run(n, seed=seed, cache=str(Path(cache).expanduser()), config=config,
                        progress=lambda done, total: prog.update(task, completed=done, total=total))
    _cli.console.print(f"{doc['first']} of {doc['n']} first, {doc['top3']} in the top 3; worst ranks {doc['worst']}"
                       f" ({doc['seconds']} s)", markup=False)
    for m in doc["misses"][:10]:
        _cli.console.print(f"  rank {m['rank']:4d}  {m['question']!r}  first: {(m['first'] or '')[:70]!r}", markup=False)
    if output:
        Path(output).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        _cli.err_console.print(f"results: {output}")


@bench.command(name="writers")
@click.option("--db", default=None, help="The memory: a SQLite file or a PostgreSQL URL (default: a temporary file).")
@click.option("--writers", "n_writers", default=4, show_default=True, help="Writer processes.")
@click.option("--adds", default=1000, show_default=True, help="Adds per writer.")
@click.option("--readers", default=2, show_default=True, help="Reader processes.")
@click.option("--embedder", default="default", show_default=True, help="default (the real model), hash, or none.")
@click.option("--output", "-o", default=None, type=_cli.SafePath(dir_okay=False), help="Write the results as JSON here.")
@_cli.handle_errors
def writers_cmd(db: str | None, n_writers: int, adds: int, readers: int, embedder: str, output: str | None) -> None:
    """Many processes on one memory: writers add, readers search for what was acknowledged;
    errors, lost writes, and how long until a reader sees a write."""
    import json
    import tempfile

    from . import writers

    if n_writers < 1 or adds < 1 or readers < 0:
        raise InputError("--writers ≥ 1, --adds ≥ 1 and --readers ≥ 0", field="writers")
    emb = None if embedder == "none" else embedder
    with tempfile.TemporaryDirectory() as tmp:
        doc = writers.run(db or str(Path(tmp) / "writers.db"), writers=n_writers, adds=adds, readers=readers, embedder=emb)
    lag = doc["lag_ms"]
    _cli.console.print(
        f"{doc['target']}: {doc['writers']} writers x {doc['adds_each']} adds, {doc['readers']} readers: "
        f"{doc['acknowledged']} acknowledged, {doc['stored']} stored, {doc['lost']} lost, {doc['duplicates']} duplicated, "
        f"{doc['write_errors'] + doc['read_errors']} errors; {doc['adds_per_second']} adds/s; a reader saw a write "
        f"p50 {lag['p50']} ms, p95 {lag['p95']} ms, max {lag['max']} ms after it was acknowledged, "
        f"{doc['lag_within_1s']:.1%} within 1 s "
        f"({doc['lag_checked']} checked; {doc['unseen']} not found by their reader, of which "
        f"{doc['unseen_by_a_fresh_process_too']} not by a fresh process either: {doc['not_visible']} not visible)", markup=False)
    if output:
        Path(output).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        _cli.err_console.print(f"results: {output}")


@bench.command(name="load")
@click.option("--clients", default=16, show_default=True, help="Concurrent clients.")
@click.option("--seconds", default=60.0, show_default=True, help="How long they run.")
@click.option("--users", default=50, show_default=True, help="Users, split between two tenants.")
@click.option("--db", default=None, type=_cli.SafePath(dir_okay=False), help="Memory file (default: a temporary one).")
@click.option("--output", "-o", default=None, type=_cli.SafePath(dir_okay=False), help="Write the results as JSON here.")
@_cli.handle_errors
def load_cmd(clients: int, seconds: float, users: int, db: str | None, output: str | None) -> None:
    """Load and isolation: concurrent clients on `engramdb serve` (loopback), mixed add/search/
    context over users in two tenants; errors, leaks across users or tenants, throughput, latency."""
    import json
    import tempfile

    from . import load

    if clients < 1 or users < 2 or seconds <= 0:
        raise InputError("--clients ≥ 1, --users ≥ 2 and --seconds > 0", field="clients")
    with tempfile.TemporaryDirectory() as tmp:
        doc = load.run(db or Path(tmp) / "load.db", clients=clients, seconds=seconds, users=users)
    lat = doc["latency_ms"]
    _cli.console.print(
        f"{doc['calls']:,} calls in {seconds:.0f} s by {clients} clients ({doc['calls_per_second']}/s): "
        f"{doc['errors']} errors, {doc['leaks']} leaks", markup=False)
    for kind, v in lat.items():
        _cli.console.print(f"  {kind:8s} n={v['n']:6d}  p50 {v['p50']} ms  p95 {v['p95']} ms", markup=False)
    one, direct = doc["one_client_search_ms"], doc["in_process_search_ms"]
    _cli.console.print(f"  one client, one search at a time: p50 {one['p50']} ms, p95 {one['p95']} ms; in-process "
                       f"p50 {direct['p50']} ms, p95 {direct['p95']} ms: server overhead {doc['server_overhead_p50_ms']} ms at p50",
                       markup=False)
    if output:
        Path(output).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        _cli.err_console.print(f"results: {output}")
