"""`python -m bot`: run the bot, migrate the database, or chat in the terminal.

The composition root: it reads the core's settings and each adapter's, decides which
platforms run, and hands each adapter the core and its own settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from adapters.discord_bot.settings import DiscordSettings
from adapters.slack_bot.settings import SlackSettings
from bot import (
    ConfigError,
    Core,
    Settings,
    configure_logging,
    create_engine,
    migrate,
    open_core,
)

log = logging.getLogger("bot")


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
async def _core(config: Configuration) -> AsyncIterator[Core]:
    async with open_core(config.core, secrets=config.adapter_secrets()) as core:
        yield core


async def _run(config: Configuration) -> None:
    async with _core(config) as core:
        platforms: list[Coroutine[Any, Any, None]] = []
        if config.discord.enabled:
            from adapters.discord_bot.app import run_discord

            platforms.append(run_discord(core, config.discord))
        if config.slack.enabled:
            from adapters.slack_bot.app import run_slack

            platforms.append(run_slack(core, config.slack))
        if not platforms:
            log.warning("no DISCORD_BOT_TOKEN or SLACK_BOT_TOKEN is set: starting the "
                        "terminal chat instead")
            await _chat(core, "default")
            return
        await _until_one_fails(platforms)


async def _until_one_fails(platforms: list[Coroutine[Any, Any, None]]) -> None:
    """Serve every platform; the first to fail stops the others and its error is raised."""
    tasks = [asyncio.create_task(p) for p in platforms]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


async def _serve(config: Configuration) -> None:
    """Run the platforms until SIGTERM or SIGINT, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main.cancel)
    try:
        await _run(config)
    except asyncio.CancelledError:
        log.info("shut down")


async def _chat(core: Core, conversation: str) -> None:
    from adapters.console import ConsoleChat

    await ConsoleChat(core.service, conversation).run()


async def _chat_command(config: Configuration, conversation: str) -> None:
    async with _core(config) as core:
        await _chat(core, conversation)


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen command."""
    summary = (__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m bot", description=summary)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="serve Discord and Slack (the default)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    chat = commands.add_parser("chat", help="chat with the model in the terminal")
    chat.add_argument("--conversation", default="default",
                      help="conversation name; it persists across runs (default: default)")
    args = parser.parse_args(argv)
    try:
        config = Configuration.load()
        configure_logging(config.core.bot_log_level if args.command != "chat" else "WARNING",
                          config.secrets())
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
