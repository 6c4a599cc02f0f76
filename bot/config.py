"""Bot-wide configuration read from environment variables and an optional `.env` file."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot import defaults
from bot.errors import ConfigError

IdList = Annotated[tuple[str, ...], NoDecode]
NameList = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    """Every setting the bot reads; field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore",
        frozen=True,
    )

    evolink_api_key: SecretStr | None = None
    evolink_direct_url: str = "https://direct.evolink.ai"
    evolink_api_url: str = "https://api.evolink.ai"
    bot_model: str = Field(defaults.MODEL, min_length=1)
    database_url: str = "sqlite+aiosqlite:///data/bot.db"

    bot_system_prompt: str = ""
    bot_history_tokens: int = Field(defaults.HISTORY_TOKENS, ge=1_000, le=1_000_000)
    bot_max_images: int = Field(defaults.MAX_IMAGES, ge=0, le=64)
    bot_max_attachment_bytes: int = Field(defaults.MAX_ATTACHMENT_BYTES, ge=1)
    bot_max_text_attachment_bytes: int = Field(defaults.MAX_TEXT_ATTACHMENT_BYTES, ge=0)
    bot_connect_timeout: float = Field(defaults.CONNECT_TIMEOUT, gt=0)
    bot_read_timeout: float = Field(defaults.READ_TIMEOUT, gt=0)
    bot_rate_limit_retries: int = Field(defaults.RATE_LIMIT_RETRIES, ge=0, le=10)
    bot_log_level: str = "INFO"
    bot_http_port: int = Field(3000, ge=1, le=65535)

    bot_user_messages_per_minute: int = Field(defaults.USER_MESSAGES_PER_MINUTE, ge=0, le=10_000)
    bot_user_daily_tokens: int = Field(0, ge=0)
    bot_channel_daily_tokens: int = Field(0, ge=0)
    bot_max_concurrent_replies: int = Field(defaults.MAX_CONCURRENT_REPLIES, ge=1, le=10_000)
    bot_max_waiting_per_conversation: int = Field(
        defaults.MAX_WAITING_PER_CONVERSATION, ge=0, le=100
    )
    bot_allowed_models: NameList = ()
    bot_max_completion_tokens: int = Field(defaults.MAX_COMPLETION_TOKENS, ge=1, le=65_536)
    bot_max_answer_chars: int = Field(defaults.MAX_ANSWER_CHARS, ge=100, le=1_000_000)
    bot_reply_timeout: float = Field(defaults.REPLY_TIMEOUT, gt=0)
    bot_max_request_bytes: int = Field(defaults.MAX_REQUEST_BYTES, ge=100_000)

    discord_bot_token: SecretStr | None = None
    discord_api_url: str | None = None
    discord_gateway_url: str | None = None
    discord_guild_ids: IdList = ()
    discord_admin_ids: IdList = ()
    discord_channel_ids: IdList = ()
    discord_role_ids: IdList = ()
    discord_guild_allowlist: IdList = ()
    discord_allow_dms: bool = True

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str | None = None
    slack_admin_ids: IdList = ()

    @field_validator(
        "discord_guild_ids",
        "discord_admin_ids",
        "discord_channel_ids",
        "discord_role_ids",
        "discord_guild_allowlist",
        "slack_admin_ids",
        "bot_allowed_models",
        mode="before",
    )
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("discord_guild_ids", "discord_admin_ids", "discord_channel_ids",
                     "discord_role_ids", "discord_guild_allowlist")
    @classmethod
    def _numeric_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not item.isdigit():
                raise ValueError(f"a comma-separated list of numeric IDs, not {item!r}")
        return value

    @field_validator(
        "evolink_direct_url", "evolink_api_url", "discord_api_url", "discord_gateway_url",
        "slack_api_url",
    )
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("a URL starting with http:// or https://")
        return value.rstrip("/")

    @field_validator("bot_log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def allowed_models(self) -> tuple[str, ...]:
        """The models `/gemini set model` accepts: BOT_ALLOWED_MODELS, always with BOT_MODEL."""
        return tuple(dict.fromkeys((self.bot_model, *self.bot_allowed_models)))

    @property
    def discord_enabled(self) -> bool:
        """Whether a Discord bot token is configured."""
        return self.discord_bot_token is not None

    @property
    def slack_enabled(self) -> bool:
        """Whether a Slack bot token and a way to receive events are configured."""
        return self.slack_bot_token is not None and (
            self.slack_app_token is not None or self.slack_signing_secret is not None
        )

    def secrets(self) -> list[str]:
        """Every secret value configured (to mask in logs, errors and replies)."""
        values = (self.evolink_api_key, self.discord_bot_token, self.slack_bot_token,
                  self.slack_app_token, self.slack_signing_secret)
        return [v.get_secret_value() for v in values if v is not None]

    def api_key(self) -> str:
        """The model API key, or a ConfigError naming the variable when it is not set."""
        if self.evolink_api_key is None or not self.evolink_api_key.get_secret_value():
            raise ConfigError(
                "EVOLINK_API_KEY is not set: put your Evolink API key in the environment or .env"
            )
        return self.evolink_api_key.get_secret_value()


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning any validation failure into one ConfigError line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}: expected {message[0].lower()}{message[1:]}"
                        if error["type"] == "value_error" else f"{name}: {message}")
    return "configuration error: " + "; ".join(problems)
