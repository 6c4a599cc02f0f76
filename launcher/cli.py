"""`python -m bot`: run the bot, migrate the database, chat in the terminal, or check the
set-up (doctor).

The composition root: it reads the core's settings and each adapter's, decides which
platforms run, and hands each adapter the core and its own settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from adapters.discord_bot.settings import DiscordSettings
from adapters.slack_bot.settings import SlackSettings
from bot import (
    ConfigError,
    Core,
    Metrics,
    Settings,
    configure_logging,
    migrate,
    open_core,
    open_database,
)
from launcher.http_server import serve_http
from launcher.readiness import Readiness
from launcher.shutdown import ShutdownSignals, drain

log = logging.getLogger("bot")

SUMMARY = "run the bot, migrate the database, chat in the terminal, or check the set-up"
"""The command line's description (not read from the docstring: under `python -OO`, as the
container runs, docstrings are gone)."""


@dataclass(frozen=True, slots=True)
class Configuration:
    """Every setting the bot reads: the core's and each adapter's."""

    core: Settings
    discord: DiscordSettings
    slack: SlackSettings

    @classmethod
    def load(cls) -> Configuration:
        """Read them all; a bad value stops start-up with one ConfigError line (naming the
        bad variables of the first group, core, Discord or Slack, that has one)."""
        return cls(Settings.load(), DiscordSettings.load(), SlackSettings.load())

    def adapter_secrets(self) -> list[str]:
        """The adapters' tokens and secrets."""
        return [*self.discord.secrets(), *self.slack.secrets()]

    def secrets(self) -> list[str]:
        """Every secret configured, to mask in logs and the model's errors."""
        return [*self.core.secrets(), *self.adapter_secrets()]


@asynccontextmanager
async def _core(config: Configuration, metrics: Metrics | None = None) -> AsyncIterator[Core]:
    async with open_core(config.core, secrets=config.adapter_secrets(),
                         metrics=metrics) as core:
        yield core


async def _run(config: Configuration, signals: ShutdownSignals) -> None:
    """Serve every configured platform and the HTTP server (health, readiness, metrics,
    Slack's events URL) until `signals` ask to stop: then drain and disconnect."""
    readiness = Readiness()
    metrics = Metrics()
    async with serve_http(readiness, metrics, config.core.bot_http_host,
                          config.core.bot_http_port) as server, _core(config, metrics) as core:
        readiness.database_migrated()
        platforms: list[Coroutine[Any, Any, None]] = []
        if config.discord.enabled:
            from adapters.discord_bot.app import run_discord

            platforms.append(run_discord(core, config.discord,
                                         connected=readiness.reporter("discord")))
        if config.slack.enabled:
            from adapters.slack_bot.app import run_slack

            platforms.append(run_slack(core, config.slack, mount=server.mount,
                                       connected=readiness.reporter("slack")))
        await _until_stopped(platforms, signals.requested, lambda: drain(
            core.service, readiness, config.core.bot_shutdown_grace))


async def _until_stopped(platforms: list[Coroutine[Any, Any, None]], stop: asyncio.Event,
                         drain: Callable[[], Awaitable[None]]) -> None:
    """Serve every platform until `stop` is set, then `drain` and disconnect them all; the
    first platform to fail stops the others and its error is raised."""
    tasks = {asyncio.create_task(p) for p in platforms}
    stopping = asyncio.create_task(stop.wait())
    try:
        pending: set[asyncio.Task[Any]] = {*tasks, stopping}
        while stopping in pending and pending & tasks:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done & tasks:
                task.result()
        if stopping.done():
            await drain()
    finally:
        stopping.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _serve(config: Configuration) -> None:
    """Serve the configured platforms until SIGTERM or SIGINT, drain, and shut down cleanly
    (a second signal: at once); with none configured, chat in the terminal."""
    main = asyncio.current_task()
    assert main is not None
    serving = config.discord.enabled or config.slack.enabled
    signals = ShutdownSignals(main, drains=serving)
    signals.install()
    try:
        if serving:
            await _run(config, signals)
        else:
            log.warning("no DISCORD_BOT_TOKEN or SLACK_BOT_TOKEN is set: starting the "
                        "terminal chat instead")
            await _chat_command(config, "default")
    except asyncio.CancelledError:
        pass
    log.info("shut down")


async def _chat(core: Core, conversation: str) -> None:
    from adapters.console import ConsoleChat

    await ConsoleChat(core.service, conversation).run()


async def _chat_command(config: Configuration, conversation: str) -> None:
    async with _core(config) as core:
        await _chat(core, conversation)


async def _migrate(settings: Settings) -> None:
    database = open_database(settings.database_url)
    try:
        await migrate(database)
    finally:
        await database.dispose()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=SUMMARY)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="serve Discord and Slack (the default)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    chat = commands.add_parser("chat", help="chat with the model in the terminal")
    chat.add_argument("--conversation", default="default",
                      help="conversation name; it persists across runs (default: default)")
    doctor = commands.add_parser(
        "doctor", help="check the settings, the database, the model API and the platforms")
    doctor.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                        help="how long each check waits for an answer (default: %(default)g)")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from launcher.doctor import doctor as run_doctor

        raise SystemExit(run_doctor(args.timeout))
    try:
        config = Configuration.load()
        configure_logging(config.core.bot_log_level if args.command != "chat" else "WARNING",
                          config.secrets(), config.core.bot_log_format)
        if args.command == "migrate":
            asyncio.run(_migrate(config.core))
        elif args.command == "chat":
            asyncio.run(_chat_command(config, args.conversation))
        else:
            asyncio.run(_serve(config))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
