"""The operator's MCP servers (BOT_MCP_CONFIG), connected with the official `mcp` package.

Each server has a supervisor task: it connects (a subprocess over stdio, or streamable HTTP),
lists the server's tools, and then checks every `check_every` seconds that the server still
answers (listing its tools again, which also picks up new ones). A server that drops, fails a
check, or whose connection a call finds closed is connected again after a pause that grows
from 1 s to a minute; a server that fails to start is logged and skipped meanwhile. Its tools
are offered as `NAME__TOOL` with their JSON schemas. The `mcp` package is loaded only when a
server is configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot import defaults
from bot.tools.base import ToolContext, ToolFailed, ToolResult, ToolSpec
from bot.tools.mcp_config import McpServerConfig

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult

log = logging.getLogger(__name__)

SEPARATOR = "__"
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1_000
MAX_SCHEMA_CHARS = 20_000
CHECK_EVERY = 30.0
CONNECT_TIMEOUT = 30.0
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
INVALID_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class McpServerStatus:
    """One server as the bot sees it now (for `python -m bot doctor`)."""

    name: str
    connected: bool
    tools: tuple[str, ...]
    error: str | None


class McpTool:
    """One tool of an MCP server, offered as `SERVER__TOOL`."""

    needs_reader = False

    def __init__(self, server: _Server, tool: str, spec: ToolSpec) -> None:
        self._server = server
        self._tool = tool
        self.spec = spec

    def status(self, arguments: Mapping[str, Any]) -> str:
        """What the person sees while it runs."""
        return f"Using {self._server.name}: {self._tool[:60]}…"

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        """The server's answer as text."""
        return ToolResult(await self._server.call(self._tool, dict(arguments)))


class _Server:
    """One configured server: its connection, kept up by `supervise`, and its tools."""

    def __init__(self, config: McpServerConfig, *, call_timeout: float, check_every: float,
                 retry_delays: Sequence[float]) -> None:
        self.config = config
        self.name = config.name
        self.tools: dict[str, McpTool] = {}
        self.error: str | None = None
        self.tried = asyncio.Event()
        self._client: Client | None = None
        self._dropped = asyncio.Event()
        self._call_timeout = call_timeout
        self._check_every = check_every
        self._retry_delays = retry_delays

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def supervise(self) -> None:
        """Connect, watch, and reconnect after a pause, for as long as the bot runs."""
        failures = 0
        while True:
            try:
                async with AsyncExitStack() as stack:
                    client = await self._connect(stack)
                    failures = 0
                    await self._watch(client, self._dropped)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = _describe(exc)
                log.warning("MCP server %s: %s", self.name, self.error)
            finally:
                self._client = None
                self.tools = {}
                self.tried.set()
            delay = self._retry_delays[min(failures, len(self._retry_delays) - 1)]
            failures += 1
            log.info("MCP server %s: connecting again in %.0f s", self.name, delay)
            await asyncio.sleep(delay)

    async def _connect(self, stack: AsyncExitStack) -> Client:
        from mcp import Client

        client = await stack.enter_async_context(Client(
            _target(self.config), read_timeout_seconds=max(CONNECT_TIMEOUT, self._call_timeout),
            cache=None, mode="auto",
        ))
        await self._list_tools(client)
        self._dropped = asyncio.Event()
        self._client = client
        self.error = None
        self.tried.set()
        log.info("MCP server %s connected: %d tools (%s)", self.name, len(self.tools),
                 ", ".join(self.tools) or "none")
        return client

    async def _watch(self, client: Client, dropped: asyncio.Event) -> None:
        """Return when the server has dropped: a call found it closed, or a check failed.

        The waits are anyio's, whose cancel scopes nest inside the client's task groups (an
        asyncio.wait_for here can hang when the bot stops)."""
        import anyio

        while True:
            with anyio.move_on_after(self._check_every):
                await dropped.wait()
                raise ConnectionError("the connection closed")
            with anyio.fail_after(CONNECT_TIMEOUT):
                await self._list_tools(client)

    async def _list_tools(self, client: Client) -> None:
        listed = await client.list_tools()
        tools: dict[str, McpTool] = {}
        for tool in listed.tools:
            spec = _spec(self.name, tool.name, tool.description or tool.title or "",
                         tool.input_schema)
            if spec is None or spec.name in tools:
                log.warning("MCP server %s: tool %r is not offered (its name or schema cannot "
                            "be used)", self.name, tool.name[:100])
                continue
            tools[spec.name] = McpTool(self, tool.name, spec)
        self.tools = tools

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """Call `tool`; ToolFailed when the server cannot answer or answers with an error."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        client, dropped = self._client, self._dropped
        if client is None:
            raise ToolFailed(f"the MCP server {self.name} is not connected right now")
        try:
            result = await client.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                dropped.set()
                raise ToolFailed(f"the MCP server {self.name} disconnected; it is being "
                                 "connected again") from None
            raise ToolFailed(f"the MCP server {self.name} refused the call: "
                             f"{exc.error.message[:300]}") from None
        text = _result_text(result)
        if getattr(result, "is_error", False):
            raise ToolFailed(f"the tool reported an error: {text[:2_000]}")
        return text


def _target(config: McpServerConfig) -> Any:
    """What `mcp.Client` connects to: the command's parameters, or an HTTP transport that
    sends the configured headers."""
    if config.command is not None:
        from mcp import StdioServerParameters

        return StdioServerParameters(command=config.command, args=list(config.args),
                                     env=dict(config.env) or None)
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    assert config.url is not None
    http = httpx2.AsyncClient(headers=dict(config.headers),
                              timeout=httpx2.Timeout(CONNECT_TIMEOUT, read=300.0))
    return _OwningTransport(streamable_http_client(config.url, http_client=http), http)


class _OwningTransport:
    """The streamable HTTP transport, closing its HTTP client after it."""

    def __init__(self, transport: Any, http: Any) -> None:
        self._transport = transport
        self._http = http

    async def __aenter__(self) -> Any:
        return await self._transport.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._transport.__aexit__(*exc)
        finally:
            await self._http.aclose()


def _spec(server: str, tool: str, description: str, schema: Any) -> ToolSpec | None:
    """How a server's tool is offered, or None when its name or schema cannot be used."""
    local = INVALID_NAME_CHARACTERS.sub("_", tool)[: MAX_NAME_CHARS - len(server) - 2]
    if not local or not isinstance(schema, dict) or schema.get("type", "object") != "object" \
            or len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        return None
    return ToolSpec(f"{server}{SEPARATOR}{local}", description[:MAX_DESCRIPTION_CHARS],
                    {"type": "object", "properties": {}, **schema})


def _result_text(result: CallToolResult) -> str:
    """A result's content as text: text blocks as they are, other blocks named."""
    pieces: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            pieces.append(str(getattr(block, "text", "")))
        elif kind == "resource":
            resource = getattr(block, "resource", None)
            text = getattr(resource, "text", None)
            pieces.append(str(text) if text is not None else
                          f"[a resource: {getattr(resource, 'uri', '')}]")
        elif kind == "resource_link":
            pieces.append(f"[a link: {getattr(block, 'uri', '')}]")
        else:
            pieces.append(f"[{kind or 'a'} content the bot does not read]")
    if not pieces and result.structured_content is not None:
        pieces.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(pieces) or "(no content)"


def _describe(exc: BaseException) -> str:
    """A failure in one line (an exception group by its first leaf)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class McpServers:
    """Every configured server, connected at start-up and kept connected until `close`."""

    def __init__(self, configs: Sequence[McpServerConfig], *,
                 call_timeout: float = defaults.TOOL_TIMEOUT,
                 check_every: float = CHECK_EVERY,
                 retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self._servers = [_Server(c, call_timeout=call_timeout, check_every=check_every,
                                 retry_delays=retry_delays) for c in configs]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, *, wait: float = CONNECT_TIMEOUT) -> None:
        """Start every server and wait (up to `wait` seconds) until each has connected or
        failed once; those still failing go on trying in the background."""
        self._tasks = [asyncio.create_task(s.supervise(), name=f"mcp:{s.name}")
                       for s in self._servers]
        tried = [asyncio.create_task(s.tried.wait()) for s in self._servers]
        if tried:
            _, pending = await asyncio.wait(tried, timeout=wait)
            for task in pending:
                task.cancel()
        for server in self._servers:
            if not server.connected:
                log.warning("MCP server %s is not connected (%s); its tools are not offered "
                            "until it is", server.name, server.error or "still starting")

    async def close(self) -> None:
        """Disconnect every server (stopping stdio subprocesses)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def tools(self) -> list[McpTool]:
        """The tools of the servers connected now."""
        return [tool for server in self._servers for tool in server.tools.values()]

    def server_names(self) -> list[str]:
        """Every configured server's name."""
        return [server.name for server in self._servers]

    def statuses(self) -> list[McpServerStatus]:
        """Each server: connected or not, its tools' offered names, its last error."""
        return [McpServerStatus(s.name, s.connected, tuple(s.tools), s.error)
                for s in self._servers]
