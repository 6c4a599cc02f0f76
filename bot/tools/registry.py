"""Which tools a reply may use: those the bot has (the built-ins BOT_TOOLS names, and the MCP
tools it allows by `SERVER__TOOL` or `SERVER__*`), less those a channel switched off.

A channel's switches map a tool's name, or `SERVER__*`, to on or off; a tool's own switch
wins over its server's, and a tool with neither is on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from bot import defaults
from bot.documents import DocumentReader
from bot.errors import InvalidSetting
from bot.tools.base import Tool
from bot.tools.calculate import Calculate
from bot.tools.channel import ReadChannel
from bot.tools.clock import CurrentTime
from bot.tools.fetch import FetchUrl, WebFetcher
from bot.tools.mcp_config import McpServerConfig
from bot.tools.mcp_servers import SEPARATOR, McpServers
from bot.tools.web import AddressPolicy

WHOLE_SERVER = f"{SEPARATOR}*"


@dataclass(frozen=True, slots=True)
class ToolListing:
    """A tool as `/gemini tools` lists it."""

    name: str
    on: bool
    description: str


def _server_of(name: str) -> str | None:
    server, separator, _ = name.partition(SEPARATOR)
    return server if separator else None


class Toolbox:
    """The tools this bot has, and which of them a channel offers."""

    def __init__(self, builtins: Sequence[Tool] = (), allowed: Sequence[str] = defaults.TOOLS,
                 mcp: McpServers | None = None,
                 closers: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        self._allowed = frozenset(allowed)
        self._builtins = [t for t in builtins if t.spec.name in self._allowed]
        self.mcp = mcp
        self._closers = list(closers)

    async def aclose(self) -> None:
        """Release what the tools hold (connections, MCP servers)."""
        for close in self._closers:
            await close()
        if self.mcp is not None:
            await self.mcp.close()

    def _allows(self, name: str) -> bool:
        server = _server_of(name)
        return name in self._allowed or (
            server is not None and f"{server}{WHOLE_SERVER}" in self._allowed)

    def available(self) -> list[Tool]:
        """Every tool the bot offers anywhere now (an MCP server's only while connected)."""
        tools = list(self._builtins)
        if self.mcp is not None:
            tools.extend(t for t in self.mcp.tools() if self._allows(t.spec.name))
        return tools

    def offered(self, switches: Mapping[str, bool], *, can_read_channel: bool
                ) -> dict[str, Tool]:
        """The tools a reply in a channel with these switches may use, by name; read_channel
        only where the surface can read its channel."""
        return {
            tool.spec.name: tool for tool in self.available()
            if is_on(tool.spec.name, switches) and (can_read_channel or not tool.needs_reader)
        }

    def listing(self, switches: Mapping[str, bool]) -> list[ToolListing]:
        """Every available tool with its state in a channel."""
        return [ToolListing(t.spec.name, is_on(t.spec.name, switches), t.spec.description)
                for t in self.available()]

    def switch_name(self, name: str) -> str:
        """`name` if a channel may switch it (an available tool, or `SERVER__*` / a tool of a
        configured server the bot allows), else InvalidSetting listing what may be."""
        name = name.strip()
        if any(tool.spec.name == name for tool in self.available()):
            return name
        server = _server_of(name)
        servers = self.mcp.server_names() if self.mcp is not None else []
        if server in servers and (self._allows(name) or (
                name == f"{server}{WHOLE_SERVER}" and any(
                    a.startswith(f"{server}{SEPARATOR}") for a in self._allowed))):
            return name
        names = [tool.spec.name for tool in self.available()]
        names += [f"{s}{WHOLE_SERVER}" for s in servers
                  if any(a.startswith(f"{s}{SEPARATOR}") for a in self._allowed)]
        raise InvalidSetting(
            f"There is no tool {name[:80]!r} on this bot. Tools: {', '.join(names) or 'none'}."
        )


def is_on(name: str, switches: Mapping[str, bool]) -> bool:
    """Whether a tool is on in a channel: its own switch, else its server's, else on."""
    if name in switches:
        return switches[name]
    server = _server_of(name)
    if server is not None and f"{server}{WHOLE_SERVER}" in switches:
        return switches[f"{server}{WHOLE_SERVER}"]
    return True


async def open_toolbox(allowed: Sequence[str], *, allow_private: Sequence[str] = (),
                       mcp_servers: Sequence[McpServerConfig] = (),
                       tool_timeout: float = defaults.TOOL_TIMEOUT,
                       documents: DocumentReader | None = None) -> Toolbox:
    """The bot's tools: the built-ins (fetch_url under the address rule, with
    `allow_private`'s exemptions) and the MCP servers, each connected (or logged and skipped)
    before this returns."""
    fetcher = WebFetcher(AddressPolicy.allowing(allow_private), documents=documents)
    builtins: list[Tool] = [FetchUrl(fetcher), ReadChannel(), CurrentTime(), Calculate()]
    mcp = None
    if mcp_servers:
        mcp = McpServers(mcp_servers, call_timeout=tool_timeout)
        await mcp.start()
    return Toolbox(builtins, allowed, mcp, closers=[fetcher.aclose])
