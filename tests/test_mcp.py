"""The MCP server as a host uses it: `engramdb mcp` over stdio in a subprocess, driven by the
official SDK's client; real SQLite file and the real model."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

TOOLS = {"remember", "recall", "context", "timeline", "profile", "forget", "core_memory_read",
         "core_memory_append", "core_memory_replace"}


def _payload(result) -> object:  # type: ignore[no-untyped-def]
    assert not result.isError, result.content
    if getattr(result, "structuredContent", None):
        data = result.structuredContent
        return data.get("result", data) if isinstance(data, dict) else data
    return json.loads(result.content[0].text)


async def _session(db: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "engramdb.cli", "mcp", "--db", str(db), "--user", "alice"])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert TOOLS <= set(tools)
        assert all(tools[n].description and tools[n].inputSchema["properties"] for n in TOOLS)
        added = _payload(await s.call_tool("remember", {"content": "I adopted a cat named Pixel", "timestamp": "2024-05-02T10:00:00"}))
        [eid] = added["ids"]  # type: ignore[index]
        found = _payload(await s.call_tool("recall", {"query": "what is my cat called?"}))
        assert [e["id"] for e in found["hits"][0]["episodes"]] == [eid]  # type: ignore[index]
        assert found["relevance"]["relevant"] is True  # type: ignore[index]
        unknown = _payload(await s.call_tool("recall", {"query": "which airline did I fly to Peru with?"}))
        assert unknown["relevance"]["relevant"] is False  # type: ignore[index]  # so the agent can say it does not know
        await s.call_tool("core_memory_append", {"label": "human", "text": "Name: Alice"})
        block = _payload(await s.call_tool("core_memory_replace", {"label": "human", "old": "Alice", "new": "Alice Moreau"}))
        assert block["value"] == "Name: Alice Moreau"  # type: ignore[index]
        ctx = await s.call_tool("context", {"query": "cat"})
        text = ctx.content[0].text
        assert text.startswith("Core memory:") and "Pixel" in text
        other = await s.call_tool("recall", {"query": "cat", "user_id": "bob"})
        assert other.isError and "bob" in other.content[0].text  # bob has no memories: a typed error, told
        gone = _payload(await s.call_tool("forget", {"episode_id": eid}))
        assert gone["episode_ids"] == [eid] and gone["clean"]  # type: ignore[index]


def test_mcp_tools_over_stdio_with_the_sdk_client(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_session(tmp_path / "m.db"), timeout=120))


async def _over_http(url: str) -> None:
    from mcp.client.streamable_http import streamable_http_client

    for _ in range(100):  # the server process is starting: the model loads
        try:
            async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as s:
                await s.initialize()
                assert TOOLS <= {t.name for t in (await s.list_tools()).tools}
                [eid] = _payload(await s.call_tool("remember", {"content": "I keep bees on the roof"}))["ids"]  # type: ignore[index]
                found = _payload(await s.call_tool("recall", {"query": "who keeps bees?"}))
                assert [e["id"] for e in found["hits"][0]["episodes"]] == [eid]  # type: ignore[index]
                return
        except (OSError, ExceptionGroup) as exc:  # not listening yet
            last = exc
            await asyncio.sleep(0.3)
    raise AssertionError(f"the MCP server never answered: {last!r}")


def test_mcp_over_streamable_http(tmp_path: Path) -> None:
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "engramdb.cli", "mcp", "--db", str(tmp_path / "h.db"), "--user", "alice", "--http", f":{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(asyncio.wait_for(_over_http(f"http://127.0.0.1:{port}/mcp"), timeout=120))
    finally:
        proc.terminate()
        proc.wait(10)
