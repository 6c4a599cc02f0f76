"""The /gemini slash commands: Discord's interactions mapped onto the core's commands."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from adapters.discord_bot.access import Access
from adapters.discord_bot.events import (
    interaction_author,
    interaction_channel,
    interaction_refusal,
    key_of_channel,
)
from bot import (
    MAX_SYSTEM_PROMPT_CHARS,
    PARAMETERS,
    CommandContext,
    Commands,
    Parameter,
    UserFacingError,
)

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 2_000
FIELD_CHARS = 4_000
"""Discord's limit for one text field of a form; long prompts span several fields."""
FORM_TIMEOUT = 15 * 60.0
"""An unanswered form is forgotten after the interaction token's lifetime."""
FAILED = "Something went wrong on my side; nothing was changed. Please try again."

Action = Callable[[CommandContext], Awaitable[str]]


def _choice(spec: Parameter) -> app_commands.Choice[str]:
    return app_commands.Choice(name=f"{spec.name} ({spec.allowed})"[:100], value=spec.name)


SETTING_CHOICES = [_choice(spec) for spec in PARAMETERS.values()]


class SystemPromptForm(discord.ui.Modal):
    """A form for the system prompt: one field holds 4,000 characters, so it has several."""

    def __init__(self, current: str,
                 on_prompt: Callable[[discord.Interaction, str], Awaitable[None]]) -> None:
        super().__init__(title="System prompt for this channel", timeout=FORM_TIMEOUT)
        self._on_prompt = on_prompt
        self._parts: list[discord.ui.TextInput[SystemPromptForm]] = [
            discord.ui.TextInput(
                label="System prompt" if index == 0 else f"System prompt, continued ({index + 1})",
                style=discord.TextStyle.paragraph,
                max_length=FIELD_CHARS,
                required=index == 0,
                custom_id=f"prompt-{index + 1}",
                default=current[index * FIELD_CHARS : (index + 1) * FIELD_CHARS] or None,
            )
            for index in range(math.ceil(MAX_SYSTEM_PROMPT_CHARS / FIELD_CHARS))
        ]
        for part in self._parts:
            self.add_item(part)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Hand the fields, joined as they were typed, to the caller."""
        await self._on_prompt(interaction, "".join(part.value for part in self._parts))


class GeminiCommands(app_commands.Group):
    """`/gemini ...`: show and change this channel's settings, forget a conversation, usage.

    Every answer is ephemeral. Changing settings needs Manage Channels (or an admin ID; in a
    DM only an admin ID): the core refuses everyone else, and the system-prompt form is not
    even offered to them. Servers off the allow-list, and DMs when they are off, get a note.
    """

    system = app_commands.Group(name="system", description="This channel's system prompt")
    tools = app_commands.Group(name="tools", description="The tools Gemini may use here")

    def __init__(self, commands: Commands, access: Access) -> None:
        super().__init__(name="gemini", description="Gemini's settings for this channel")
        self._commands = commands
        self._access = access

    @app_commands.command(name="show", description="Show this channel's system prompt and settings")
    async def show(self, interaction: discord.Interaction) -> None:
        """Anyone may look."""
        await self._run(interaction, self._commands.show)

    @system.command(name="set", description="Set this channel's system prompt (opens a form)")
    async def system_set(self, interaction: discord.Interaction) -> None:
        """Open the form, filled with the current prompt; only for people who may change it."""
        refusal = interaction_refusal(interaction, self._access)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        try:
            current = await self._commands.system_prompt_for_editing(self._context(interaction))
        except UserFacingError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        await interaction.response.send_modal(SystemPromptForm(current, self._prompt_submitted))

    @system.command(name="reset", description="Go back to the bot's default system prompt")
    async def system_reset(self, interaction: discord.Interaction) -> None:
        """Drop the channel's own prompt."""
        await self._run(interaction, self._commands.reset_system_prompt)

    @app_commands.command(name="set", description="Change one setting for this channel")
    @app_commands.describe(name="The setting", value="Its new value (the range is in the list)")
    @app_commands.choices(name=SETTING_CHOICES)
    async def set_(self, interaction: discord.Interaction, name: str, value: str) -> None:
        """Validate and set one parameter."""
        await self._run(interaction, lambda ctx: self._commands.set_parameter(ctx, name, value))

    @app_commands.command(name="unset", description="Return one setting to its default")
    @app_commands.describe(name="The setting")
    @app_commands.choices(name=SETTING_CHOICES)
    async def unset(self, interaction: discord.Interaction, name: str) -> None:
        """Remove one parameter."""
        await self._run(interaction, lambda ctx: self._commands.unset_parameter(ctx, name))

    @app_commands.command(name="reset", description="Forget this conversation (thread or DM)")
    async def reset(self, interaction: discord.Interaction) -> None:
        """Forget the history of the thread (or DM) the command is used in."""
        await self._run(interaction, self._commands.reset_conversation)

    @app_commands.command(name="usage", description="Tokens used in this channel")
    async def usage(self, interaction: discord.Interaction) -> None:
        """Token totals for the last day and all time."""
        await self._run(interaction, self._commands.usage)

    @tools.command(name="list", description="The bot's tools, on or off in this channel")
    async def tools_list(self, interaction: discord.Interaction) -> None:
        """Anyone may look."""
        await self._run(interaction, self._commands.tools)

    @tools.command(name="enable", description="Let Gemini use a tool in this channel")
    @app_commands.describe(name="The tool's name, or SERVER__* for an MCP server's tools")
    async def tools_enable(self, interaction: discord.Interaction, name: str) -> None:
        """Switch a tool on here."""
        await self._run(interaction, lambda ctx: self._commands.switch_tool(ctx, name, True))

    @tools.command(name="disable", description="Stop Gemini using a tool in this channel")
    @app_commands.describe(name="The tool's name, or SERVER__* for an MCP server's tools")
    async def tools_disable(self, interaction: discord.Interaction, name: str) -> None:
        """Switch a tool off here."""
        await self._run(interaction, lambda ctx: self._commands.switch_tool(ctx, name, False))

    @app_commands.command(name="help", description="What the /gemini commands do")
    async def help_(self, interaction: discord.Interaction) -> None:
        """The command list."""
        text = interaction_refusal(interaction, self._access) or Commands.help()
        await interaction.response.send_message(text, ephemeral=True)

    async def _prompt_submitted(self, interaction: discord.Interaction, prompt: str) -> None:
        await self._run(interaction, lambda ctx: self._commands.set_system_prompt(ctx, prompt))

    async def _run(self, interaction: discord.Interaction, action: Action) -> None:
        refusal = interaction_refusal(interaction, self._access)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        ctx = self._context(interaction)
        try:
            text = await action(ctx)
        except UserFacingError as exc:
            text = str(exc)
        except Exception:
            log.exception("%s: /gemini %s by %s failed", ctx.conversation, _name(interaction),
                          ctx.user.id)
            text = FAILED
        else:
            log.info("%s: /gemini %s by %s", ctx.conversation, _name(interaction), ctx.user.id)
        await interaction.followup.send(text[:MAX_ANSWER_CHARS], ephemeral=True)

    def _context(self, interaction: discord.Interaction) -> CommandContext:
        key = key_of_channel(interaction_channel(interaction), interaction.guild_id)
        return CommandContext(key, interaction_author(interaction, self._access))


def _name(interaction: discord.Interaction) -> str:
    command = interaction.command
    return command.qualified_name if command is not None else "form"
