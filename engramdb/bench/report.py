"""Present benchmark results: terminal tables, JSON, a Markdown report with plots, comparisons."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from ..errors import DatasetError, MissingDependencyError
from .runner import iter_metric_pairs

HEADLINE = (
    "turn_all@10hits",
    "turn_recall_all@10",
    "turn_ndcg_any@10",
    "sess_recall_all@5",
    "sess_ndcg_any@5",
    "er@1000",
    "ans@1000",
    "ctx@1000",
)
#: Budgeted measures shown at every budget. ``cite@B`` (a hit cites the turn, whatever it
#: shows of it) is in the JSON results but never a headline: it credits text not shown.
_BUDGETED = ("er@", "ans@", "ctx@")


def _budget_key(metric: str) -> tuple[int, int]:
    prefix, _, b = metric.partition("@")
    return _BUDGETED.index(prefix + "@"), int(b)


def headline_metrics(doc: dict[str, Any]) -> list[str]:
    present = {k for row in doc["summary"].values() for k in row}
    return [m for m in HEADLINE if m in present] + sorted(
        (m for m in present if m.startswith(_BUDGETED) and m not in HEADLINE), key=_budget_key
    )


def summary_table(doc: dict[str, Any], metrics: Sequence[str] | None = None) -> Table:
    """Metrics as rows, categories as columns (fits a terminal: few categories, many metrics)."""
    metrics = list(metrics or headline_metrics(doc))
    meta = doc["meta"]
    scope = " · ".join(f"{k} {meta[k]}" for k in ("corpus", "split") if meta.get(k, "all") != "all")
    t = Table(title=f"{meta['dataset']} · config {meta['config']}{' · ' + scope if scope else ''} · engramdb {meta['engramdb']}")
    t.add_column("metric")
    cats = list(doc["summary"])
    for cat in cats:
        t.add_column(cat[:18], justify="right")
    t.add_row("n", *[str(int(doc["summary"][c]["n"])) for c in cats])
    t.add_row("n_ans (ans@, ctx@)", *[str(int(doc["summary"][c].get("n_ans", 0))) for c in cats])
    for m in metrics:
        t.add_row(m, *[_fmt(doc["summary"][c].get(m)) for c in cats])
    return t


def cost_table(doc: dict[str, Any]) -> Table:
    t = Table(title="cost")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in doc["cost"].items():
        t.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
    return t


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def print_summary(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(summary_table(doc))
    if "qa" in doc:
        t = Table(title="end-to-end QA accuracy (LLM judge)")
        for col in ("category", "n", "accuracy"):
            t.add_column(col)
        for cat, row in doc["qa"].items():
            t.add_row(cat, str(int(row["n"])), f"{row['accuracy']:.3f}")
        console.print(t)
    console.print(cost_table(doc))


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    return p


def read_json(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read benchmark result {path}: {exc}", path=str(path)) from exc
    if not isinstance(doc, dict) or "questions" not in doc or "summary" not in doc:
        raise DatasetError(f"{path} is not an engramdb bench result", path=str(path))
    return doc


def write_report(doc: dict[str, Any], folder: str | Path, name: str = "run") -> Path:
    """A folder with ``<name>.json``, ``<name>-summary.md`` and ``<name>-*.png`` plots (matplotlib).

    Names are prefixed so several runs (datasets, configs) can share one report folder.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    write_json(doc, out / f"{name}.json")
    plots = _plots(doc, out, name)
    meta, cost = doc["meta"], doc["cost"]
    metrics = headline_metrics(doc)
    lines = [
        f"# engramdb bench — {meta['dataset']} ({meta['config']})",
        "",
        f"engramdb {meta['engramdb']} · Python {meta['python']} · {meta['machine']} · {meta['date']}",
        f"file: `{meta['file']}` · corpus {meta.get('corpus', 'all')} · split {meta.get('split', 'all')}",
        f"not scored: {json.dumps(meta.get('excluded', {}))}",
        "",
        "| category | n | n_ans | " + " | ".join(metrics) + " |",
        "|---|---:|---:|" + "---:|" * len(metrics),
    ]
    for cat, row in doc["summary"].items():
        lines.append(
            f"| {cat} | {int(row['n'])} | {int(row.get('n_ans', 0))} | " + " | ".join(_fmt(row.get(m)) for m in metrics) + " |"
        )
    lines += ["", "## Cost", "", "| measure | value |", "|---|---:|"]
    lines += [f"| {k} | {json.dumps(v) if isinstance(v, dict) else v} |" for k, v in cost.items()]
    lines += [
        "",
        "Abstention questions (LongMemEval `_abs`, LoCoMo category 5) are excluded from recall. "
        "er@B: every evidence turn is shown whole by a hit inside the first B tokens; ans@B / ctx@B: the "
        "gold answer (when it appears verbatim in the evidence, n_ans) is in the first B tokens of the "
        "hits' shown text / in context(budget_tokens=B).",
    ]
    for p in plots:
        lines += ["", f"![{p.stem}]({p.name})"]
    (out / f"{name}-summary.md").write_text("\n".join(lines) + "\n")
    return out


def _plots(doc: dict[str, Any], out: Path, name: str) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError.for_extra("matplotlib", "bench", "The benchmark report's plots") from exc
    budgets = doc["meta"]["budgets"]
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for cat, row in doc["summary"].items():
        ys = [row.get(f"er@{b}", float("nan")) for b in budgets]
        ax.plot(budgets, ys, marker="o", label=f"{cat} (n={int(row['n'])})", linewidth=2.5 if cat == "all" else 1.2)
    if any("ans@" + str(b) in doc["summary"].get("all", {}) for b in budgets):
        ys = [doc["summary"]["all"].get(f"ans@{b}", float("nan")) for b in budgets]
        ax.plot(budgets, ys, marker="s", linestyle="--", color="black", label="all: answer shown (ans@B)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_xlabel("token budget")
    ax.set_ylabel("all evidence shown whole inside budget (er@B)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{doc['meta']['dataset']}: recall vs budget")
    fig.tight_layout()
    paths.append(out / f"{name}-recall_vs_budget.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist([q["latency_ms"] for q in doc["questions"]], bins=40)
    ax.set_xlabel("search latency (ms)")
    ax.set_ylabel("questions")
    ax.set_title(f"p50 {doc['cost']['search_ms_p50']} ms · p95 {doc['cost']['search_ms_p95']} ms")
    fig.tight_layout()
    paths.append(out / f"{name}-latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


# -- comparison -----------------------------------------------------------------------------


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar test on discordant pairs (b: only A right, c: only B right)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def bootstrap_p(diffs: Sequence[float], rounds: int = 2000, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value for mean(diffs) != 0 (deterministic seed)."""
    if not diffs:
        return 1.0
    rng = random.Random(seed)
    n = len(diffs)
    observed = sum(diffs) / n
    centred = [d - observed for d in diffs]
    extreme = sum(
        1 for _ in range(rounds) if abs(sum(centred[rng.randrange(n)] for _ in range(n)) / n) >= abs(observed) - 1e-12
    )
    return (extreme + 1) / (rounds + 1)


def compare(a: dict[str, Any], b: dict[str, Any], metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per-category deltas (B - A) with paired significance, on questions both runs share."""
    metrics = list(metrics or headline_metrics(a))
    rows = []
    for metric in metrics:
        by_cat: dict[str, list[tuple[float, float]]] = {}
        for cat, va, vb in iter_metric_pairs(a, b, metric):
            by_cat.setdefault(cat, []).append((va, vb))
            by_cat.setdefault("all", []).append((va, vb))
        for cat in sorted(by_cat, key=lambda c: (c == "all", c)):
            pairs = by_cat[cat]
            binary = all(v in (0.0, 1.0) for p in pairs for v in p)
            if binary:
                only_a = sum(1 for x, y in pairs if x > y)
                only_b = sum(1 for x, y in pairs if y > x)
                p, test = mcnemar_p(only_a, only_b), "mcnemar"
            else:
                p, test = bootstrap_p([y - x for x, y in pairs]), "bootstrap"
            ma = sum(x for x, _ in pairs) / len(pairs)
            mb = sum(y for _, y in pairs) / len(pairs)
            rows.append({"metric": metric, "category": cat, "n": len(pairs), "a": ma, "b": mb, "delta": mb - ma, "p": p, "test": test})
    return rows


def compare_table(rows: list[dict[str, Any]], a_name: str, b_name: str) -> Table:
    t = Table(title=f"B − A   (A = {a_name}, B = {b_name})")
    for col in ("metric", "category", "n", "A", "B", "Δ", "p", "test"):
        t.add_column(col, justify="left" if col in ("metric", "category", "test") else "right")
    for r in rows:
        delta = f"{r['delta']:+.3f}"
        style = "green" if r["delta"] > 0 and r["p"] < 0.05 else "red" if r["delta"] < 0 and r["p"] < 0.05 else ""
        t.add_row(r["metric"], r["category"], str(r["n"]), f"{r['a']:.3f}", f"{r['b']:.3f}", f"[{style}]{delta}[/]" if style else delta, f"{r['p']:.3g}", r["test"])
    return t
