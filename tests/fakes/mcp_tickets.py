"""A ticket-desk MCP server built with the official `mcp` package (its MCPServer, formerly
FastMCP), for the bot's MCP client: run this file to serve it over stdio, or use
`McpHttpServer` to serve it over streamable HTTP on 127.0.0.1 behind a required header.

Tools: `lookup(ticket)` answers with the ticket (prefixed by the TICKETS_PREFIX variable the
server was started with, to show its `env` arrived), `failing()` reports an error, and
`crash()` ends the server's process at once (a server that drops).
"""

from __future__ import annotations

import asyncio
import os
import socket
from types import TracebackType
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

TOKEN = "Bearer mcp-test-secret"


def tickets_server() -> MCPServer[Any]:
    """The server and its tools."""
    server: MCPServer[Any] = MCPServer("tickets")

    @server.tool()
    def lookup(ticket: str) -> str:
        """Look up a support ticket by its id."""
        return f"{os.environ.get('TICKETS_PREFIX', '')}Ticket {ticket}: open, assigned to Ann"

    @server.tool()
    def failing() -> str:
        """A tool that always fails."""
        raise ToolError("the ticket database is down")

    @server.tool()
    def crash() -> str:
        """End the server's process at once."""
        os._exit(3)

    return server


class McpHttpServer:
    """The ticket server over streamable HTTP (uvicorn, in this process) at `url`; requests
    without `Authorization: TOKEN` get 401."""

    def __init__(self) -> None:
        self.port = 0
        self.unauthorized = 0
        self._task: asyncio.Task[None] | None = None
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def __aenter__(self) -> McpHttpServer:
        import uvicorn
        from starlette.responses import PlainTextResponse

        from tests.support.waiting import until

        app = tickets_server().streamable_http_app(host="127.0.0.1")

        async def guarded(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and dict(scope["headers"]).get(
                    b"authorization") != TOKEN.encode():
                self.unauthorized += 1
                await PlainTextResponse("unauthorized", 401)(scope, receive, send)
                return
            await app(scope, receive, send)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(guarded, log_level="warning",
                                                     lifespan="on"))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        await until(lambda: bool(self._server.started), what="the MCP HTTP server's start")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=10)


if __name__ == "__main__":
    tickets_server().run("stdio")
