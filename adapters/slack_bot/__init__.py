"""The Slack adapter: mentions, threads, files, streamed answers and the /gemini command."""

from adapters.slack_bot.app import run_slack

__all__ = ["run_slack"]
