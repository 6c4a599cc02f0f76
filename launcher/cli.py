"""`python -m bot`: run the bot, migrate the database, or chat in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from bot import (
    ConfigError,
    Core,
    Settings,
    configure_logging,
    create_engine,
    load_settings,
    migrate,
    open_core,
)

log = logging.getLogger("bot")


async def _run(settings: Settings) -> None:
    async with open_core(settings) as core:
        platforms: list[Coroutine[Any, Any, None]] = []
        if settings.discord_enabled:
            from adapters.discord_bot import run_discord

            platforms.append(run_discord(core))
        if settings.slack_enabled:
            from adapters.slack_bot import run_slack

            platforms.append(run_slack(core))
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


async def _serve(settings: Settings) -> None:
    """Run the platforms until SIGTERM or SIGINT, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main.cancel)
    try:
        await _run(settings)
    except asyncio.CancelledError:
        log.info("shut down")


async def _chat(core: Core, conversation: str) -> None:
    from adapters.console import ConsoleChat

    await ConsoleChat(core.service, conversation).run()


async def _chat_command(settings: Settings, conversation: str) -> None:
    async with open_core(settings) as core:
        await _chat(core, conversation)


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="serve Discord and Slack (the default)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    chat = commands.add_parser("chat", help="chat with the model in the terminal")
    chat.add_argument("--conversation", default="default",
                      help="conversation name; it persists across runs (default: default)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.bot_log_level if args.command != "chat" else "WARNING",
                          settings.secrets())
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "chat":
            asyncio.run(_chat_command(settings, args.conversation))
        else:
            asyncio.run(_serve(settings))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
