"""The Discord check: the token logs in (users/@me), the application has the Message Content
intent enabled, and the invite URL that adds the bot to a server."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
from discord.http import HTTPClient, Route

from adapters.discord_bot.app import discord_endpoints, invite_url
from launcher.checks.result import Context, Result

NAME = "Discord"
GATEWAY_MESSAGE_CONTENT = 1 << 18
"""Application flag: the Message Content intent, approved for a bot in 100 or more servers."""
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
"""Application flag: the Message Content intent, switched on for a bot in under 100 servers."""
PORTAL = "https://discord.com/developers/applications"


async def check_discord(context: Context) -> list[Result]:
    """Log in with DISCORD_BOT_TOKEN over REST (DISCORD_API_URL when set) and read the
    application; skipped without a token."""
    settings = context.config.discord
    if settings.bot_token is None:
        return [Result.skipped(NAME, "DISCORD_BOT_TOKEN is not set")]
    token = settings.bot_token.get_secret_value()
    with discord_endpoints(settings.api_url, None):
        base = Route.BASE
        http = HTTPClient(asyncio.get_running_loop(), max_ratelimit_timeout=context.timeout)
        try:
            async with asyncio.timeout(context.timeout):
                user = await http.static_login(token)
                application = await http.application_info()
        except discord.LoginFailure:
            return [Result.failed(f"{NAME} token", "DISCORD_BOT_TOKEN was refused (401)",
                                  f"reset the token on the Bot page at {PORTAL} and put it in "
                                  "DISCORD_BOT_TOKEN")]
        except discord.HTTPException as exc:
            return [Result.failed(NAME, f"{base} answered HTTP {exc.status}: {exc.text}",
                                  "check DISCORD_API_URL, or try again later")]
        except (aiohttp.ClientError, OSError) as exc:
            return [Result.failed(NAME, f"cannot reach {base}: {exc}",
                                  "check DISCORD_API_URL and that this machine can reach it")]
        except TimeoutError:
            return [Result.failed(NAME, f"{base} did not answer within {context.timeout:g} s",
                                  "check DISCORD_API_URL and that this machine can reach it")]
        finally:
            await http.close()
    application_id = int(application["id"])
    return [
        Result.passed(f"{NAME} token", f"valid: the bot is {user['username']} (id {user['id']})"),
        _message_content(application_id, int(application.get("flags") or 0)),
        Result.passed(f"{NAME} invite URL", invite_url(application_id)),
    ]


def _message_content(application_id: int, flags: int) -> Result:
    name = f"{NAME} Message Content intent"
    if flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED):
        return Result.passed(name, "enabled")
    return Result.failed(name, "not enabled for this application (the bot stops at start-up "
                         "without it)", "enable Message Content Intent under Bot → Privileged "
                         f"Gateway Intents at {PORTAL}/{application_id}/bot")
