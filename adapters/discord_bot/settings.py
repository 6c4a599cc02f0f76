"""The Discord adapter's settings: the DISCORD_* variables (from the environment or `.env`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator
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
    shard_count: int | None = Field(None, ge=1)
    shard_ids: IdList = ()

    @field_validator("shard_ids")
    @classmethod
    def _shards_below_the_count(cls, ids: tuple[str, ...], info: ValidationInfo
                                ) -> tuple[str, ...]:
        if not ids or "shard_count" not in info.data:  # none, or the count itself is wrong
            return ids
        count = info.data["shard_count"]
        if count is None:
            raise ValueError("a DISCORD_SHARD_COUNT set with them")
        if len(set(ids)) != len(ids) or any(int(i) >= count for i in ids):
            raise ValueError(f"distinct shard IDs from 0 to {count - 1} "
                             f"(DISCORD_SHARD_COUNT is {count})")
        return ids

    @property
    def enabled(self) -> bool:
        """Whether a bot token is configured."""
        return self.bot_token is not None

    @property
    def shards(self) -> list[int]:
        """The shards this process runs; empty: every shard of DISCORD_SHARD_COUNT (or of the
        count Discord recommends when that is unset too)."""
        return [int(i) for i in self.shard_ids]
