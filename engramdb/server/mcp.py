"""``engramdb mcp``: the memory as MCP tools, for Claude Desktop/Code, Cursor and any MCP host.

A thin adapter over one :class:`~engramdb.Memory` (the official ``mcp`` SDK's FastMCP), over
stdio or streamable HTTP. One server may serve several people: every tool takes ``user_id``,
defaulting to the one given at start (``--user``) for single-person hosts. Results are the
records in their one serialisation (:mod:`engramdb.wire`), as the CLI and REST API give them.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, MissingDependencyError
from ..memory import Memory
from ..wire import dump

try:
    from mcp.server.fastmcp import FastMCP
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependencyError("the MCP server needs its extra: pip install 'engramdb[server]'") from exc

INSTRUCTIONS = (
    "Long-term memory of the people you talk with. Call `recall` (or `context`) before answering "
    "anything that may depend on what they told you before; call `remember` with what they say "
    "that is worth keeping (facts about themselves, plans, preferences, events, with the date when "
    "known). `core_memory_*` edit a short working memory that is always shown first."
)


def create_server(memory: Memory, *, default_user: str | None = None, host: str = "127.0.0.1", port: int = 8766) -> FastMCP:
    mcp = FastMCP("engramdb", instructions=INSTRUCTIONS, host=host, port=port)

    def who(user_id: str | None) -> str:
        user = user_id or default_user
        if not user:
            raise InputError("user_id is required (this server was started without a default --user)", field="user_id")
        return user

    @mcp.tool()
    def remember(content: str, user_id: str | None = None, role: str = "user", name: str | None = None,
                 session_id: str | None = None, timestamp: str | None = None) -> dict[str, Any]:
        """Store something a person said or did, verbatim, in their long-term memory.

        content: the message or event, as said. role: who said it (user, assistant, tool).
        name: the speaker's name, if known. timestamp: when it happened (ISO 8601), default now.
        Returns the new episode ids."""
        msg: dict[str, Any] = {"content": content, "role": role}
        if name:
            msg["name"] = name
        return {"ids": memory.add(msg, user_id=who(user_id), session_id=session_id, timestamp=timestamp)}

    @mcp.tool()
    def recall(query: str, user_id: str | None = None, limit: int = 5) -> dict[str, Any]:
        """Search a person's long-term memory: what they said that bears on `query`, best first.
        Returns `hits` (each with its `text`, `score`, `signals` and the `episodes` it cites: id,
        timestamp, speaker name or role, session) and `relevance`: `relevant` is false when none
        of them seems to bear on the question (then say you do not know rather than guess),
        with a `confidence`."""
        hits = memory.search(query, user_id=who(user_id), limit=limit)
        return dump({"hits": hits, "relevance": hits.relevance})  # type: ignore[no-any-return]

    @mcp.tool()
    def context(query: str, user_id: str | None = None, budget_tokens: int = 800, group: str = "auto") -> str:
        """A block of memories for your prompt: working memory first, then what bears on `query`,
        oldest first, each line dated and attributed, within `budget_tokens`. `group`: "entity"
        puts the lines in groups by whom or what they are about, "time" keeps one list, "auto"
        groups when the pieces of the question are spread over conversations."""
        return str(memory.context(query, user_id=who(user_id), budget_tokens=budget_tokens, group=group))

    @mcp.tool()
    def timeline(user_id: str | None = None, query: str | None = None, start: str | None = None,
                 end: str | None = None, limit: int = 20, place: str | None = None) -> list[dict[str, Any]]:
        """Episodes in the order things happened (optionally only what `query` finds, between
        `start` and `end`, ISO dates, or at `place`): for "what came first?", "what happened in
        May?" and "what did I do at the gym?"."""
        return dump(memory.timeline(user_id=who(user_id), query=query, start=start, end=end, limit=limit, place=place))  # type: ignore[no-any-return]

    @mcp.tool()
    def query_memory(user_id: str | None = None, subject: str | None = None, predicate: str | None = None,
                     object: str | None = None, entity: str | None = None, start: str | None = None,
                     end: str | None = None, unit: str | None = None) -> dict[str, Any]:
        """Ask the facts like a database, for counts, totals and latest values: rows (text,
        subject, predicate, object, amount, unit, dates, episodes) with `count`, `total` (the
        amounts summed per unit, or in `unit`) and `latest`. `predicate`: bought, spent, raised,
        lives_in, works_at, likes, visited, owns, attended, does, says…; `object`: words to match."""
        between = (start, end) if start or end else None
        rows = memory.query(user_id=who(user_id), subject=subject, predicate=predicate, object=object,
                            entity=entity, between=between)
        return dump({"rows": list(rows), "count": len(rows), "total": rows.total(unit), "latest": rows.latest})  # type: ignore[no-any-return]

    @mcp.tool()
    def summary(user_id: str | None = None, level: str = "person", query: str | None = None) -> list[dict[str, Any]]:
        """The memory summarised as a tree: `person` (what is known of each speaker), `topic`
        (what recurs across sessions), `session` or `segment`; `query` picks the nodes about it."""
        return dump(memory.summary(user_id=who(user_id), level=level, query=query, limit=20))  # type: ignore[no-any-return]

    @mcp.tool()
    def profile(user_id: str | None = None) -> dict[str, Any]:
        """What is known about a person and the people they named: current facts by subject and
        category (where they live and work, family, likes…), each citing its episodes."""
        return dump(memory.profile(user_id=who(user_id)))  # type: ignore[no-any-return]

    @mcp.tool()
    def forget(episode_id: str, user_id: str | None = None) -> dict[str, Any]:
        """Delete one episode and everything drawn from it, when a person asks you to forget it.
        Returns what was removed."""
        return dump(memory.delete(episode_id, user_id=who(user_id)))  # type: ignore[no-any-return]

    @mcp.tool()
    def core_memory_read(user_id: str | None = None) -> dict[str, Any]:
        """The working memory blocks (e.g. `persona`, `human`): label -> text and size limit."""
        return dump(memory.core(user_id=who(user_id)))  # type: ignore[no-any-return]

    @mcp.tool()
    def core_memory_append(label: str, text: str, user_id: str | None = None) -> dict[str, Any]:
        """Add a line to a working memory block (created if missing), e.g. label `human`,
        text "Prefers short answers". Fails if the block would exceed its limit."""
        return dump(memory.core_append(label, text, user_id=who(user_id)))  # type: ignore[no-any-return]

    @mcp.tool()
    def core_memory_replace(label: str, old: str, new: str, user_id: str | None = None) -> dict[str, Any]:
        """Replace the text `old` in a working memory block with `new` (use an empty `new` to
        remove it): to correct or shorten what you keep."""
        return dump(memory.core_replace(label, old, new, user_id=who(user_id)))  # type: ignore[no-any-return]

    return mcp
