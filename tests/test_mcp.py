"""The operator's MCP servers: a ticket desk built with the `mcp` package's MCPServer, run as
a subprocess over stdio and served over streamable HTTP on 127.0.0.1; the bot's manager
connects, offers the tools as NAME__TOOL, reconnects a server that dropped, and skips one
that fails to start."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.conversation import Author, ConversationKey, Incoming
from bot.errors import ConfigError
from bot.model.llm import ModelClient, create_http_client
from bot.model.parameters import ChannelSettings
from bot.service import Service, ServiceConfig
from bot.storage.store import Store
from bot.tools.base import ToolContext, ToolFailed
from bot.tools.mcp_config import McpServerConfig, load_mcp_config
from bot.tools.mcp_servers import McpServers
from bot.tools.registry import Toolbox, open_toolbox
from tests.conftest import API_KEY, migrated_store
from tests.fakes import mcp_tickets
from tests.fakes.mcp_tickets import TOKEN, McpHttpServer
from tests.fakes.model_server import FakeCall, FakeModelServer, Reply, ToolCalls
from tests.support.surfaces import RecordingSurface
from tests.support.waiting import until

SCRIPT = str(Path(mcp_tickets.__file__))
KEY = ConversationKey("test", "team", "chan", "thread-1")
TOOLS = ("tickets__lookup", "tickets__failing", "tickets__crash")


def stdio(name: str = "tickets", **env: str) -> McpServerConfig:
    return McpServerConfig(name, command=sys.executable, args=(SCRIPT,), env=env)


@pytest.fixture
async def servers() -> AsyncIterator[list[McpServers]]:
    opened: list[McpServers] = []
    yield opened
    for manager in opened:
        await manager.close()


async def started(servers: list[McpServers], *configs: McpServerConfig) -> McpServers:
    manager = McpServers(configs, check_every=0.2, retry_delays=(0.1,))
    servers.append(manager)
    await manager.start()
    return manager


def tool(manager: McpServers, name: str):  # type: ignore[no-untyped-def]
    return next(t for t in manager.tools() if t.spec.name == name)


async def test_a_stdio_server_is_started_and_its_tools_offered_with_their_schemas(
    servers: list[McpServers]
) -> None:
    manager = await started(servers, stdio(TICKETS_PREFIX="[desk] "))

    (status,) = manager.statuses()
    assert status.connected and status.tools == TOOLS and status.error is None
    lookup = tool(manager, "tickets__lookup")
    assert lookup.spec.description == "Look up a support ticket by its id."
    assert lookup.spec.parameters["properties"]["ticket"]["type"] == "string"
    assert lookup.spec.parameters["required"] == ["ticket"]
    result = await lookup.run({"ticket": "T-7"}, ToolContext())
    assert result.text == "[desk] Ticket T-7: open, assigned to Ann"
    with pytest.raises(ToolFailed, match="the ticket database is down"):
        await tool(manager, "tickets__failing").run({}, ToolContext())


async def test_a_server_that_drops_is_connected_again(servers: list[McpServers]) -> None:
    manager = await started(servers, stdio())

    lookup = tool(manager, "tickets__lookup")
    with pytest.raises(ToolFailed, match="disconnected; it is being connected again"):
        await tool(manager, "tickets__crash").run({}, ToolContext())

    async def answers() -> bool:
        try:
            result = await lookup.run({"ticket": "T-8"}, ToolContext())
        except ToolFailed:
            return False
        return result.text == "Ticket T-8: open, assigned to Ann"

    await until(answers, what="the reconnected server's answer")
    assert manager.statuses()[0].connected


async def test_a_server_that_fails_to_start_is_skipped_and_the_others_serve(
    servers: list[McpServers]
) -> None:
    broken = McpServerConfig("broken", command="/nonexistent/mcp-server")
    manager = await started(servers, broken, stdio())

    statuses = {s.name: s for s in manager.statuses()}
    assert not statuses["broken"].connected and statuses["broken"].tools == ()
    assert statuses["broken"].error is not None
    assert statuses["tickets"].connected
    assert [t.spec.name for t in manager.tools()] == list(TOOLS)


async def test_a_streamable_http_server_is_reached_with_its_headers(
    servers: list[McpServers]
) -> None:
    async with McpHttpServer() as http_server:
        manager = await started(
            servers, McpServerConfig("wiki", url=http_server.url,
                                     headers={"Authorization": TOKEN}),
            McpServerConfig("nokey", url=http_server.url))
        statuses = {s.name: s for s in manager.statuses()}
        assert statuses["wiki"].connected
        assert statuses["wiki"].tools == ("wiki__lookup", "wiki__failing", "wiki__crash")
        assert not statuses["nokey"].connected and http_server.unauthorized >= 1

        result = await tool(manager, "wiki__lookup").run({"ticket": "W-1"}, ToolContext())
        assert result.text == "Ticket W-1: open, assigned to Ann"
        await manager.close()


def test_the_config_file_is_the_common_mcp_servers_format(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {
        "tickets": {"command": "python3", "args": ["server.py"], "env": {"KEY": "v"}},
        "wiki": {"url": "https://wiki.example.com/mcp", "headers": {"X-Key": "k"}},
    }}))

    tickets, wiki = load_mcp_config(str(path))

    assert (tickets.name, tickets.command, tickets.args, tickets.env) == (
        "tickets", "python3", ("server.py",), {"KEY": "v"})
    assert (wiki.url, wiki.headers) == ("https://wiki.example.com/mcp", {"X-Key": "k"})
    for bad, problem in [
        ("{", "it is not JSON"),
        ('{"mcpServers": {"a": {}}}', "either a command"),
        ('{"mcpServers": {"a": {"url": "ftp://x"}}}', "http:// or https://"),
        ('{"mcpServers": {"a__b": {"command": "x"}}}', "single _"),
    ]:
        path.write_text(bad)
        with pytest.raises(ConfigError, match=problem):
            load_mcp_config(str(path))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_mcp_config(str(tmp_path / "missing.json"))


async def test_the_model_calls_an_mcp_tool_only_when_bot_tools_allows_it(
    model_api: FakeModelServer, sqlite_url: str
) -> None:
    denied = await open_toolbox(("calculate",), mcp_servers=[stdio()])
    allowed = await open_toolbox(("calculate", "tickets__*"), mcp_servers=[stdio()])
    try:
        assert [t.spec.name for t in denied.available()] == ["calculate"]
        async with migrated_store(sqlite_url) as store, \
                create_http_client(connect_timeout=2.0, read_timeout=5.0) as http:
            service = make_service(store, http, model_api, allowed)
            model_api.script("direct", ToolCalls([FakeCall("tickets__lookup",
                                                           '{"ticket": "T-9"}', "c1")]),
                             Reply(text="T-9 is open."))
            surface = RecordingSurface()

            await service.handle(Incoming(KEY, Author("u1", "Ann"), "status of T-9?"), surface)

            assert [t["function"]["name"] for t in model_api.requests[0].body["tools"]] == [
                "calculate", *TOOLS]
            assert model_api.requests[1].body["messages"][-1]["content"] == \
                "Ticket T-9: open, assigned to Ann"
            assert "🔧 Using tickets: lookup…" in [c[2] for c in surface.calls]
            assert surface.shown == ["T-9 is open."]

            await store.save_channel_settings(
                KEY.channel_key, ChannelSettings(tools={"tickets__*": False}), "u1")
            await service.handle(Incoming(KEY, Author("u1", "Ann"), "again"), surface)
            assert [t["function"]["name"] for t in model_api.requests[-1].body["tools"]] == [
                "calculate"]
    finally:
        await denied.aclose()
        await allowed.aclose()


def make_service(store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
                 toolbox: Toolbox) -> Service:
    model = ModelClient(http, API_KEY, model_api.direct_url, model_api.api_url)
    return Service(store, model, ServiceConfig(default_model="gemini-3.1-flash-lite-preview"),
                   tools=toolbox)
