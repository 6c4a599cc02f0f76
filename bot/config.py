"""The core's configuration, and the rules every settings class of the bot follows.

Settings come from environment variables and an optional `.env` file. A settings class
subclasses `EnvironmentSettings` and is read with its `load`, which turns any bad value into
one ConfigError line naming the variable (`configuration error: VAR: expected ...`). The core
reads `Settings` (BOT_*, EVOLINK_*, DATABASE_URL); each adapter has its own class with its
own prefix (DISCORD_, SLACK_), and the launcher reads them all at start-up.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot import defaults
from bot.errors import ConfigError
from bot.logs import LogFormat


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _base_url(value: str) -> str:
    if not value.startswith(("http://", "https://", "ws://", "wss://")):
        raise ValueError("a URL starting with http:// or https://")
    return value.rstrip("/")


TOOL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*__(\*|[A-Za-z0-9_-]+)$")
"""An MCP tool in BOT_TOOLS: `SERVER__TOOL`, or `SERVER__*` for all of a server's tools."""

CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_commas)]
"""A list written in one variable as `a, b,c` (blanks dropped)."""
BaseUrl = Annotated[str, AfterValidator(_base_url)]
"""An http(s):// or ws(s):// URL, kept without its trailing slash."""


class EnvironmentSettings(BaseSettings):
    """Settings read from the environment and `.env`: empty values count as unset, unknown
    variables are ignored, and the values are frozen. Field names are the variable names
    after the class's `env_prefix`, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore",
        frozen=True,
    )

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Read the settings (`overrides` by field name win), turning any validation failure
        into one ConfigError line that names each bad variable."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(cls._describe(exc)) from None

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of a field (`bot_token` of DISCORD_ is DISCORD_BOT_TOKEN)."""
        return (cls.model_config.get("env_prefix", "") + field).upper()

    def secrets(self) -> list[str]:
        """Every secret value set (SecretStr fields), to mask in logs, errors and replies."""
        values = (getattr(self, name) for name in type(self).model_fields)
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]

    @classmethod
    def _describe(cls, exc: ValidationError) -> str:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            name = cls.variable(str(error["loc"][0])) if error["loc"] else "configuration"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: expected {message[0].lower()}{message[1:]}"
                            if error["type"] == "value_error" else f"{name}: {message}")
        return "configuration error: " + "; ".join(problems)


class Settings(EnvironmentSettings):
    """The core's settings: the model API, the database, and the BOT_* limits."""

    evolink_api_key: SecretStr | None = None
    evolink_direct_url: BaseUrl = "https://direct.evolink.ai"
    evolink_api_url: BaseUrl = "https://api.evolink.ai"
    bot_model: str = Field(defaults.MODEL, min_length=1)
    database_url: str = "sqlite+aiosqlite:///data/bot.db"
    redis_url: SecretStr | None = None

    bot_system_prompt: str = ""
    bot_history_tokens: int = Field(defaults.HISTORY_TOKENS, ge=1_000, le=1_000_000)
    bot_summary_tokens: int = Field(defaults.SUMMARY_TOKENS, ge=0, le=65_536)
    bot_max_images: int = Field(defaults.MAX_IMAGES, ge=0, le=64)
    bot_max_attachment_bytes: int = Field(defaults.MAX_ATTACHMENT_BYTES, ge=1)
    bot_max_text_attachment_bytes: int = Field(defaults.MAX_TEXT_ATTACHMENT_BYTES, ge=0)
    bot_max_document_chars: int = Field(defaults.MAX_DOCUMENT_CHARS, ge=1, le=4_000_000)
    bot_connect_timeout: float = Field(defaults.CONNECT_TIMEOUT, gt=0)
    bot_read_timeout: float = Field(defaults.READ_TIMEOUT, gt=0)
    bot_rate_limit_retries: int = Field(defaults.RATE_LIMIT_RETRIES, ge=0, le=10)
    bot_log_level: str = "INFO"
    bot_log_format: LogFormat = "text"
    bot_http_host: str = Field(defaults.HTTP_HOST, min_length=1)
    bot_http_port: int = Field(3000, ge=1, le=65535)
    bot_shutdown_grace: float = Field(defaults.SHUTDOWN_GRACE, ge=0, le=3600)

    bot_user_messages_per_minute: int = Field(defaults.USER_MESSAGES_PER_MINUTE, ge=0, le=10_000)
    bot_user_daily_tokens: int = Field(0, ge=0)
    bot_channel_daily_tokens: int = Field(0, ge=0)
    bot_max_concurrent_replies: int = Field(defaults.MAX_CONCURRENT_REPLIES, ge=1, le=10_000)
    bot_max_waiting_per_conversation: int = Field(
        defaults.MAX_WAITING_PER_CONVERSATION, ge=0, le=100
    )
    bot_allowed_models: CommaList = ()
    bot_max_completion_tokens: int = Field(defaults.MAX_COMPLETION_TOKENS, ge=1, le=65_536)
    bot_max_answer_chars: int = Field(defaults.MAX_ANSWER_CHARS, ge=100, le=1_000_000)
    bot_reply_timeout: float = Field(defaults.REPLY_TIMEOUT, gt=0)
    bot_max_request_bytes: int = Field(defaults.MAX_REQUEST_BYTES, ge=100_000)

    bot_tools: CommaList = defaults.TOOLS
    bot_max_tool_rounds: int = Field(defaults.MAX_TOOL_ROUNDS, ge=0, le=20)
    bot_tool_timeout: float = Field(defaults.TOOL_TIMEOUT, gt=0, le=600)
    bot_tool_result_chars: int = Field(defaults.TOOL_RESULT_CHARS, ge=500, le=1_000_000)
    bot_fetch_allow_private: CommaList = ()
    bot_mcp_config: str | None = None

    @field_validator("bot_log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("bot_summary_tokens")
    @classmethod
    def _summary_tokens(cls, value: int, info: ValidationInfo) -> int:
        history = info.data.get("bot_history_tokens")
        if history is not None and value > history // 4:
            raise ValueError(f"at most a quarter of BOT_HISTORY_TOKENS ({history // 4}), or 0")
        return value

    @field_validator("bot_tools")
    @classmethod
    def _tools(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value == ("none",):
            return ()
        for name in value:
            if name not in defaults.TOOLS and not TOOL_PATTERN.match(name):
                raise ValueError(
                    f"tool names: {', '.join(defaults.TOOLS)}, SERVER__TOOL or SERVER__* for "
                    f"an MCP server's tools, or none (not {name[:40]!r})"
                )
        return value

    @field_validator("bot_fetch_allow_private")
    @classmethod
    def _host_ports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"host:port entries such as 127.0.0.1:8080 (not {entry[:60]!r})")
        return value

    @property
    def allowed_models(self) -> tuple[str, ...]:
        """The models `/gemini set model` accepts: BOT_ALLOWED_MODELS, always with BOT_MODEL."""
        return tuple(dict.fromkeys((self.bot_model, *self.bot_allowed_models)))

    def api_key(self) -> str:
        """The model API key, or a ConfigError naming the variable when it is not set."""
        if self.evolink_api_key is None or not self.evolink_api_key.get_secret_value():
            raise ConfigError(
                "EVOLINK_API_KEY is not set: put your Evolink API key in the environment or .env"
            )
        return self.evolink_api_key.get_secret_value()


def load_settings(**overrides: Any) -> Settings:
    """Read the core's settings, turning any validation failure into one ConfigError line."""
    return Settings.load(**overrides)
