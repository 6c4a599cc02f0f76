"""The MCP check: each server in BOT_MCP_CONFIG starts, and which tools it offers."""

from __future__ import annotations

from bot import ConfigError, McpServers, load_mcp_config
from launcher.checks.result import Context, Result

NAME = "MCP servers"


async def check_mcp(context: Context) -> list[Result]:
    """Start every configured server, wait up to the timeout for it, list its tools, stop it."""
    path = context.config.core.bot_mcp_config
    if path is None:
        return [Result.skipped(NAME, "BOT_MCP_CONFIG is not set")]
    try:
        configs = load_mcp_config(path)
    except ConfigError as exc:
        return [Result.failed(NAME, str(exc).removeprefix("configuration error: "),
                              "fix the file BOT_MCP_CONFIG names")]
    servers = McpServers(configs)
    try:
        await servers.start(wait=context.timeout)
        statuses = servers.statuses()
    finally:
        await servers.close()
    if not statuses:
        return [Result.passed(NAME, "the file names no server")]
    return [
        Result.passed(f"MCP {s.name}", f"connected; tools: {', '.join(s.tools) or 'none'}")
        if s.connected else
        Result.failed(f"MCP {s.name}", f"did not start: {s.error or 'no answer in time'}",
                      "check its command, URL and headers in the BOT_MCP_CONFIG file")
        for s in statuses
    ]
