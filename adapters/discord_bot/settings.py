"""The Discord adapter's settings: the DISCORD_* variables (from the environment or `.env`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, SecretStr
from pydantic_settings import SettingsConfigDict

from bot import BaseUrl, CommaList, EnvironmentSettings


def _numeric(ids: tuple[str, ...]) -> tuple[str, ...]:
    for item in ids:
        if not item.isdigit():
            raise ValueError(f"a comma-separated list of numeric IDs, not {item!r}")
    return ids


IdList = Annotated[CommaList, AfterValidator(_numeric)]
"""Discord IDs (snowflakes), comma-separated."""


class DiscordSettings(EnvironmentSettings):
    """DISCORD_BOT_TOKEN enables the adapter; the rest point it elsewhere or limit it."""

    model_config = SettingsConfigDict(env_prefix="DISCORD_")

    bot_token: SecretStr | None = None
    api_url: BaseUrl | None = None
    gateway_url: BaseUrl | None = None
    guild_ids: IdList = ()
    admin_ids: IdList = ()
    channel_ids: IdList = ()
    role_ids: IdList = ()
    guild_allowlist: IdList = ()
    allow_dms: bool = True

    @property
    def enabled(self) -> bool:
        """Whether a bot token is configured."""
        return self.bot_token is not None
