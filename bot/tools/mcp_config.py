"""The MCP servers file (BOT_MCP_CONFIG), in the common `mcpServers` format:

    {"mcpServers": {
        "tickets": {"command": "python", "args": ["tickets_server.py"], "env": {"KEY": "..."}},
        "wiki": {"url": "https://wiki.example.com/mcp", "headers": {"Authorization": "..."}}
    }}

A server with a `command` runs as a subprocess spoken to over stdio (it inherits only a few
harmless variables such as PATH and HOME, plus its own `env`); one with a `url` is reached over
streamable HTTP with its `headers`. Names are letters, digits, `-` and single `_`, since the
bot offers a server's tools as `NAME__TOOL`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from bot.errors import ConfigError

SERVER_NAME = re.compile(r"^(?!.*__)[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
MAX_CONFIG_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """How to reach one server: a command (stdio) or a URL (streamable HTTP)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict, repr=False)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def secrets(self) -> list[str]:
        """Values to mask in logs: the env values and header values given for it."""
        return [*self.env.values(), *self.headers.values()]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    url: str | None = None
    headers: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_transport(self) -> _Entry:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either a command (stdio) or a url (streamable HTTP)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    mcpServers: dict[str, _Entry]  # the format's own name


def load_mcp_config(path: str) -> list[McpServerConfig]:
    """The servers named in the file at `path`; ConfigError (one line) when it cannot be used."""
    where = f"BOT_MCP_CONFIG: {path}"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"configuration error: {where} cannot be read ({exc.strerror})"
                          ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"configuration error: {where} is larger than 1 MB")
    try:
        parsed = _File.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        problem = (str(exc.errors(include_url=False)[0]["msg"])
                   if isinstance(exc, ValidationError) else "it is not JSON")
        raise ConfigError(f"configuration error: {where}: expected "
                          f'{{"mcpServers": {{"NAME": {{...}}}}}}: {problem}') from None
    servers = []
    for name, entry in parsed.mcpServers.items():
        if not SERVER_NAME.match(name):
            raise ConfigError(f"configuration error: {where}: the server name {name[:40]!r} "
                              "must be up to 32 letters, digits, - and single _")
        servers.append(McpServerConfig(name, entry.command, tuple(entry.args), dict(entry.env),
                                       entry.url, dict(entry.headers)))
    return servers
