"""The Discord adapter: discord.py events in, the core's replies and commands out."""

from adapters.discord_bot.app import run_discord

__all__ = ["run_discord"]
