"""The /gemini slash command mapped onto the core's commands, answered in Slack's mrkdwn."""

from __future__ import annotations

from adapters.slack_bot.access import People
from adapters.slack_bot.events import SlashCommand
from adapters.slack_bot.mrkdwn import to_mrkdwn
from bot import CommandContext, Commands

CHANNEL_RESET = (
    "Slash commands cannot see threads, and in a channel each thread is its own conversation: "
    "mention me in a new message to start afresh. (In a direct message with me, "
    "`/gemini reset` forgets our conversation there.)"
)


class SlashCommands:
    """Runs `/gemini <text>` for a user; settings apply to the channel it was typed in.

    `reset` forgets the top-level conversation of a direct message; in a channel, where
    the command cannot name a thread, it explains how to start afresh instead.
    """

    def __init__(self, commands: Commands, people: People) -> None:
        self._commands = commands
        self._people = people

    async def reply(self, command: SlashCommand) -> str:
        """What to tell the user, in mrkdwn."""
        verb = command.text.split(maxsplit=1)[0].lower() if command.text else ""
        if verb == "reset" and not command.is_dm:
            return to_mrkdwn(CHANNEL_RESET)
        author = await self._people.author(command.user, command.team_id)
        context = CommandContext(command.key, author)
        return to_mrkdwn(await self._commands.run(context, command.text))
