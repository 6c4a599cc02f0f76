"""Wiring the Slack adapter: the bolt app, HTTP mode or Socket Mode, and the work in flight."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import PlatformTuning, download_cap
from adapters.slack_bot.access import People
from adapters.slack_bot.budgets import SlackBudgets
from adapters.slack_bot.clicks import Clicks
from adapters.slack_bot.client import web_client
from adapters.slack_bot.commands import SlashCommands
from adapters.slack_bot.events import is_ssl_check, payloadless_form, request_problem
from adapters.slack_bot.files import SlackFiles
from adapters.slack_bot.listeners import Listeners
from adapters.slack_bot.replies import Replies
from adapters.slack_bot.settings import SlackSettings
from adapters.slack_bot.surface import SLACK_TUNING
from bot import BackgroundWork, ConfigError, Core

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
Mount = Callable[[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]], None]
"""Serves a route on the bot's HTTP server: `mount(method, path, handler)`."""


class SlackBot:
    """The Slack side of the bot: a bolt app on one Web API client, and its background work.

    Listeners run before the acknowledgement (`process_before_response`) but only parse the
    event and start the answer as a task, so Slack hears back at once and the tasks can be
    awaited (`idle`) or cancelled (`close`). In HTTP mode `receive` screens each request
    before bolt sees it.
    """

    def __init__(self, core: Core, settings: SlackSettings, client: AsyncWebClient,
                 tuning: PlatformTuning = SLACK_TUNING) -> None:
        secret = settings.signing_secret
        signing_secret = secret.get_secret_value() if secret is not None else ""
        self.app = AsyncApp(
            name="gemini",
            client=client,
            signing_secret=signing_secret,
            process_before_response=True,
        )
        self._verifier = SignatureVerifier(signing_secret) if signing_secret.strip() else None
        self._work = BackgroundWork()
        people = People(client, settings.admin_ids)
        files = SlackFiles(core.http, client, client.token or "", download_cap(core.settings),
                           settings.api_url)
        budgets = SlackBudgets(core, tuning)
        replies = Replies(core.service, client, people, files, tuning, budgets)
        commands = SlashCommands(core.service.commands, people)
        clicks = Clicks(core.service, client, people, replies, budgets)
        Listeners(core.service, client, replies, commands, clicks, budgets,
                  self._work.spawn).register(self.app)

    async def receive(self, request: web.Request) -> web.Response:
        """One HTTP request from Slack, handed to bolt once it is signed and well formed.

        A body that is not UTF-8 or not a Slack payload gets 400, a missing or wrong signature
        (or a timestamp that is not a number) 401; each is one log line, not a traceback.
        bolt reads any form whose text contains "payload" as a click's `payload=` form, so a
        slash command that says "payload" would reach it empty: such a form goes to bolt
        read here, its signature already checked (bolt checks none on a read body).
        """
        raw = await request.read()
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _refused(request, 400, "the body is not UTF-8")
        if not is_ssl_check(body) and not self._signed(body, request):
            return _refused(request, 401, "no valid signature")
        problem = request_problem(body, request.headers.get("Content-Type"))
        if problem is not None:
            return _refused(request, 400, problem)
        fields = payloadless_form(body, request.headers.get("Content-Type"))
        try:
            bolt_request = AsyncBoltRequest(
                body=body if fields is None else fields, query=request.query_string,
                headers=dict(request.headers), mode="http" if fields is None else "socket_mode")
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            return _refused(request, 400, f"bolt cannot read it ({type(exc).__name__})")
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    def _signed(self, body: str, request: web.Request) -> bool:
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature")
        if self._verifier is None or not (timestamp.isascii() and timestamp.isdigit()):
            return False
        return self._verifier.is_valid(body, timestamp, signature)

    async def idle(self) -> None:
        """Wait until no answer or command is in progress."""
        await self._work.idle()

    async def close(self) -> None:
        """Cancel the work in progress and wait for it to stop."""
        await self._work.cancel()


def build_slack_app(core: Core, settings: SlackSettings, client: AsyncWebClient | None = None,
                    tuning: PlatformTuning = SLACK_TUNING) -> SlackBot:
    """The Slack bot for `core`; `client` defaults to one for SLACK_API_URL with the bot token."""
    if client is None:
        token = settings.bot_token
        if token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set: Slack needs the bot token (xoxb-...)")
        client = web_client(token.get_secret_value(), settings.api_url, metrics=core.metrics)
    return SlackBot(core, settings, client, tuning)


@asynccontextmanager
async def serve_http(bot: SlackBot, port: int, host: str = "0.0.0.0") -> AsyncIterator[int]:
    """Serve Slack's events and commands on `EVENTS_PATH`, on a server of their own (the bot
    mounts `SlackBot.receive` on its HTTP server instead, in `run_slack`); yields the bound
    port.

    Every request's signature is checked with SLACK_SIGNING_SECRET (401 otherwise), and a
    malformed one is refused with 400 before bolt sees it (`SlackBot.receive`).
    """
    web_app = web.Application()
    web_app.router.add_post(EVENTS_PATH, bot.receive)
    runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def _refused(request: web.Request, status: int, reason: str) -> web.Response:
    log.warning("slack: refused a request to %s from %s (HTTP %d): %s", request.path,
                request.remote, status, reason)
    return web.json_response({"error": reason}, status=status)


@asynccontextmanager
async def socket_mode(bot: SlackBot, app_token: str) -> AsyncIterator[None]:
    """Receive events and commands over Slack's Socket Mode websocket (no public URL)."""
    handler = AsyncSocketModeHandler(bot.app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


async def run_slack(core: Core, settings: SlackSettings, *, mount: Mount,
                    connected: Callable[[bool], None] = lambda _: None) -> None:
    """Serve Slack until cancelled: Socket Mode with SLACK_APP_TOKEN, else HTTP mode, its
    events URL mounted on the bot's HTTP server with `mount`; `connected` hears when events
    can arrive."""
    bot = build_slack_app(core, settings)
    try:
        if settings.app_token is not None:
            async with socket_mode(bot, settings.app_token.get_secret_value()):
                log.info("slack: connected in Socket Mode")
                connected(True)
                await asyncio.Event().wait()
        elif settings.signing_secret is not None:
            mount("POST", EVENTS_PATH, bot.receive)
            log.info("slack: receiving events at %s on the bot's HTTP server", EVENTS_PATH)
            connected(True)
            await asyncio.Event().wait()
        else:
            raise ConfigError("Slack needs SLACK_APP_TOKEN (Socket Mode) or "
                              "SLACK_SIGNING_SECRET (HTTP mode)")
    finally:
        await bot.close()
