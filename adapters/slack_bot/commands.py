"""The /gemini slash command mapped onto the core's commands, answered in Slack's mrkdwn."""

from __future__ import annotations

from adapters.slack_bot.access import People
from adapters.slack_bot.events import SlashCommand
from adapters.slack_bot.mrkdwn import to_mrkdwn
from bot import CommandContext, Commands

RESET = (
    "Slash commands cannot see threads, and each thread is its own conversation: send a new "
    "message (in a channel, mention me) to start afresh."
)


class SlashCommands:
    """Runs `/gemini <text>` for a user; settings apply to the channel it was typed in.

    `reset`, which would need to name a thread, explains how to start afresh instead.
    """

    def __init__(self, commands: Commands, people: People) -> None:
        self._commands = commands
        self._people = people

    async def reply(self, command: SlashCommand) -> str:
        """What to tell the user, in mrkdwn."""
        verb = command.text.split(maxsplit=1)[0].lower() if command.text else ""
        if verb == "reset":
            return to_mrkdwn(RESET)
        author = await self._people.author(command.user, command.team_id)
        context = CommandContext(command.key, author)
        return to_mrkdwn(await self._commands.run(context, command.text))
