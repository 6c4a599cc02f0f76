"""The Slack adapter's settings: the SLACK_* variables (from the environment or `.env`)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from bot import BaseUrl, CommaList, EnvironmentSettings


class SlackSettings(EnvironmentSettings):
    """SLACK_BOT_TOKEN plus SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)
    enable the adapter."""

    model_config = SettingsConfigDict(env_prefix="SLACK_")

    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_url: BaseUrl | None = None
    admin_ids: CommaList = ()

    @property
    def enabled(self) -> bool:
        """Whether a bot token and a way to receive events are configured."""
        return self.bot_token is not None and (
            self.app_token is not None or self.signing_secret is not None
        )
