"""The Discord client wired to the core: intents, message tasks (new and edited messages,
Regenerate clicks), button clicks, commands, start-up and URLs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.common import PlatformTuning, download_cap
from adapters.discord_bot.access import Access
from adapters.discord_bot.api_calls import api_call_trace
from adapters.discord_bot.commands import GeminiCommands
from adapters.discord_bot.controls import BUTTONS
from adapters.discord_bot.events import edited_by_a_person
from adapters.discord_bot.files import DiscordFiles
from adapters.discord_bot.replies import Replies
from adapters.discord_bot.settings import DiscordSettings
from adapters.discord_bot.surface import DISCORD_TUNING
from bot import BackgroundWork, ConfigError, ConversationKey, Core

log = logging.getLogger(__name__)

INVITE_SCOPES = ("bot", "applications.commands")
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
)
"""What the bot does: read and answer messages, start threads and answer in them."""
MAX_RATELIMIT_WAIT = 30.0
"""A rate limit longer than this reaches the renderer as RateLimited instead of blocking."""


def intents() -> discord.Intents:
    """Servers, their messages and DMs, with message content (a privileged intent)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    return wanted


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot to a server with the scopes and permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES
    )


class GeminiClient(discord.AutoShardedClient):
    """discord.py's sharded client with the bot's handlers: each message, each edit of one
    and each Regenerate click is answered in its own task (tracked: `idle` waits for them,
    `close` cancels them); the answers' buttons (`controls`) reach `stop_answer`,
    `regenerate_answer` and `rate_answer`.

    It runs the shards DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT, or every shard of the count
    Discord recommends. `options` go to discord.Client (tests pass a short
    `guild_ready_timeout`). `connected` hears whether every shard is connected (True once
    they are all ready, False while one is reconnecting); each REST call is counted in the
    core's metrics.
    """

    def __init__(self, core: Core, settings: DiscordSettings,
                 tuning: PlatformTuning = DISCORD_TUNING, *,
                 connected: Callable[[bool], None] = lambda _: None, **options: Any) -> None:
        if settings.shards:
            options["shard_ids"] = settings.shards
        options.setdefault("http_trace", api_call_trace(
            lambda route, status: core.metrics.platform_call("discord", route, status)))
        super().__init__(
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT,
            shard_count=settings.shard_count,
            **options,
        )
        access = Access.from_settings(settings)
        files = DiscordFiles(core.http, download_cap(core.settings), settings.api_url)
        self._replies = Replies(core.service, files, access, tuning,
                                tuning.edit_budgets(core, "discord"))
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(GeminiCommands(core.service.commands, access))
        self._guild_ids = [int(g) for g in settings.guild_ids]
        self._work = BackgroundWork()
        self._connected = connected
        self._shards_down: set[int] = set()

    async def launch_shards(self) -> None:
        """Connect the shards to the configured gateway; without DISCORD_SHARD_COUNT, take the
        count Discord recommends (discord.py alone would also take the gateway URL Discord
        names, passing by DISCORD_GATEWAY_URL)."""
        if self.shard_count is None:
            self.shard_count, _, _ = await self.http.get_bot_gateway()
        log.info("discord: running shards %s of %d",
                 ",".join(map(str, self.shard_ids or range(self.shard_count))), self.shard_count)
        await super().launch_shards()

    async def setup_hook(self) -> None:
        """After login: listen for the answers' buttons, sync the commands, log the invite
        URL."""
        self.add_dynamic_items(*BUTTONS)
        await self._sync_commands()
        if self.application_id is not None:
            log.info("discord: invite the bot with %s", invite_url(self.application_id))

    async def on_ready(self) -> None:
        """Log who the bot is once the gateway has delivered the servers: it is connected."""
        user = self.user
        log.info("discord: connected as %s (id %s) in %d servers", user,
                 user.id if user else "?", len(self.guilds))
        self._report_connection()

    async def on_shard_disconnect(self, shard_id: int) -> None:
        """A shard lost its gateway connection (discord.py reconnects it)."""
        self._shards_down.add(shard_id)
        self._report_connection()

    async def on_shard_ready(self, shard_id: int) -> None:
        """A shard is connected again, with a new session."""
        self._shards_down.discard(shard_id)
        self._report_connection()

    async def on_shard_resumed(self, shard_id: int) -> None:
        """A shard is connected again, resuming its session."""
        self._shards_down.discard(shard_id)
        self._report_connection()

    def _report_connection(self) -> None:
        self._connected(self.is_ready() and not self._shards_down)

    async def on_message(self, message: discord.Message) -> None:
        """Answer in the background so the gateway keeps flowing."""
        if self.user is None:
            return
        self._work.spawn(self._replies.answer(message, self.user),
                         f"discord: answer to message {message.id}")

    async def on_raw_message_edit(self, update: discord.RawMessageUpdateEvent) -> None:
        """A message was edited (cached or not): a person's edit goes to the core in the
        background; other updates are dropped here (see `edited_by_a_person`)."""
        if self.user is None or not edited_by_a_person(update):
            return
        message = update.message
        self._work.spawn(self._replies.answer_edit(message, self.user),
                         f"discord: edit of message {message.id}")

    async def stop_answer(self, key: ConversationKey | None,
                          interaction: discord.Interaction[Any]) -> None:
        """A Stop click on a reply in conversation `key` (None: an old button without one)."""
        await self._replies.stop(key, interaction)

    async def regenerate_answer(self, key: ConversationKey,
                                interaction: discord.Interaction[Any]) -> None:
        """A Regenerate click on an answer in conversation `key`, answered in its own task."""
        self._work.spawn(self._replies.regenerate(key, interaction),
                         f"discord: regenerate in {key}")

    async def rate_answer(self, value: int, interaction: discord.Interaction[Any]) -> None:
        """A 👍 (1) or 👎 (-1) click on an answer."""
        await self._replies.rate(value, interaction)

    async def idle(self) -> None:
        """Wait until every message being answered has its answer."""
        await self._work.idle()

    async def close(self) -> None:
        """Cancel the answers in progress, then disconnect."""
        await self._work.cancel()
        await super().close()

    async def _sync_commands(self) -> None:
        try:
            synced = await self.tree.sync()
            log.info("discord: synced %d global commands", len(synced))
        except discord.HTTPException as exc:
            log.warning("discord: could not sync the global commands: %s", exc)
        for guild_id in self._guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                await self.tree.sync(guild=guild)
                log.info("discord: synced the commands to guild %s", guild_id)
            except discord.HTTPException as exc:
                log.warning("discord: could not sync the commands to guild %s: %s", guild_id, exc)


@contextmanager
def discord_endpoints(api_url: str | None, gateway_url: str | None) -> Iterator[None]:
    """Point discord.py's REST base (webhooks and interactions too) and gateway at the given
    URLs while the bot runs; None keeps Discord's own."""
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    if api_url:
        Route.BASE = api_url
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


async def run_discord(core: Core, settings: DiscordSettings, *,
                      connected: Callable[[bool], None] = lambda _: None) -> None:
    """Serve Discord with DISCORD_BOT_TOKEN until cancelled, telling `connected` whether the
    gateway connection is up."""
    if settings.bot_token is None:
        raise ConfigError("DISCORD_BOT_TOKEN is not set")
    with discord_endpoints(settings.api_url, settings.gateway_url):
        async with GeminiClient(core, settings, connected=connected) as client:
            try:
                await client.start(settings.bot_token.get_secret_value())
            except discord.LoginFailure:
                raise ConfigError("DISCORD_BOT_TOKEN was refused by Discord") from None
            except discord.PrivilegedIntentsRequired:
                raise ConfigError(
                    "Discord refused the Message Content intent: enable it for the bot in the "
                    "Developer Portal (Bot, Privileged Gateway Intents)"
                ) from None
