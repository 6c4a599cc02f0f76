"""The Slack check: the bot token works (auth.test), it has every bot scope the app's manifest
asks for, and the bot has a way to receive events (a Socket Mode token that works, or a
signing secret for HTTP mode)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

import aiohttp
import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack_bot.client import SLACK_API_URL, web_client
from adapters.slack_bot.settings import SlackSettings
from launcher.checks.result import Context, Result

NAME = "Slack"
MANIFEST = "adapters/slack_bot/manifest.yml"
REINSTALL = (f"add the missing scopes to the app (or paste {MANIFEST} again) and reinstall it "
             "to the workspace")


async def check_slack(context: Context) -> list[Result]:
    """Call auth.test with SLACK_BOT_TOKEN (at SLACK_API_URL when set) and compare the granted
    scopes, which Slack sends in the `x-oauth-scopes` header, with the manifest's; skipped
    when no SLACK_* token or secret is set."""
    settings = context.config.slack
    if not (settings.bot_token or settings.app_token or settings.signing_secret):
        return [Result.skipped(NAME, "SLACK_BOT_TOKEN is not set")]
    events = await _events(context, settings)
    if settings.bot_token is None:
        return [Result.failed(f"{NAME} token", "SLACK_BOT_TOKEN is not set",
                              "put the app's Bot User OAuth Token (xoxb-…) in SLACK_BOT_TOKEN"),
                events]
    client = web_client(settings.bot_token.get_secret_value(), settings.api_url)
    answer = await _call(context, settings, f"{NAME} token", "SLACK_BOT_TOKEN",
                         "auth.test", client.auth_test)
    if isinstance(answer, Result):
        return [answer, events]
    token = Result.passed(f"{NAME} token", f"valid: the bot is {answer['user']} "
                          f"({answer['user_id']}) in {answer['team']} ({answer['team_id']})")
    return [token, _scopes(answer.headers), events]


def manifest_bot_scopes() -> set[str]:
    """The bot scopes the app's manifest asks for, read from the installed manifest."""
    text = resources.files("adapters.slack_bot").joinpath("manifest.yml").read_text("utf-8")
    scopes = yaml.safe_load(text)["oauth_config"]["scopes"]["bot"]
    return {str(scope) for scope in scopes}


def _scopes(headers: Mapping[str, Any]) -> Result:
    name = f"{NAME} scopes"
    wanted = manifest_bot_scopes()
    header = headers.get("x-oauth-scopes")
    if header is None:
        return Result.failed(name, "the answer to auth.test did not say the token's scopes "
                             "(no x-oauth-scopes header)",
                             "check SLACK_API_URL: a proxy there may drop Slack's headers")
    granted = {scope.strip() for scope in str(header).split(",") if scope.strip()}
    missing = sorted(wanted - granted)
    if missing:
        return Result.failed(name, f"the bot token lacks {', '.join(missing)}", REINSTALL)
    return Result.passed(name, f"the bot token has all {len(wanted)} scopes of {MANIFEST}")


async def _events(context: Context, settings: SlackSettings) -> Result:
    """How Slack reaches the bot: Socket Mode when SLACK_APP_TOKEN is set (and Slack opens a
    connection for it), else HTTP mode with SLACK_SIGNING_SECRET."""
    name = f"{NAME} events"
    if settings.app_token is not None:
        app_token = settings.app_token.get_secret_value()
        client = web_client(app_token, settings.api_url)

        def connections_open() -> Awaitable[AsyncSlackResponse]:
            return client.apps_connections_open(app_token=app_token)

        answer = await _call(context, settings, name, "SLACK_APP_TOKEN",
                             "apps.connections.open", connections_open)
        if isinstance(answer, Result):
            return answer
        return Result.passed(name, "Socket Mode: SLACK_APP_TOKEN opens a connection")
    if settings.signing_secret is not None:
        return Result.passed(name, "HTTP mode: SLACK_SIGNING_SECRET is set; Slack must reach "
                             f"/slack/events on port {context.config.core.bot_http_port}")
    return Result.failed(name, "neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET is set",
                         "set SLACK_APP_TOKEN (xapp-…, Socket Mode) or SLACK_SIGNING_SECRET "
                         "(HTTP mode)")


async def _call(context: Context, settings: SlackSettings, name: str, variable: str,
                method: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
                ) -> AsyncSlackResponse | Result:
    """The answer of one Web API call made with the token in `variable`, or the failed Result
    saying what went wrong."""
    base = settings.api_url or SLACK_API_URL
    try:
        async with asyncio.timeout(context.timeout):
            return await call()
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        return Result.failed(name, f"{method} answered {error or exc}",
                             f"check {variable} (and SLACK_API_URL if set)")
    except (aiohttp.ClientError, OSError) as exc:
        return Result.failed(name, f"cannot reach {base}: {exc}",
                             "check SLACK_API_URL and that this machine can reach it")
    except TimeoutError:
        return Result.failed(name, f"{base} did not answer {method} within "
                             f"{context.timeout:g} s",
                             "check SLACK_API_URL and that this machine can reach it")

