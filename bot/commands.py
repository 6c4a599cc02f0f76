"""The /gemini commands, platform-neutral: show and change a channel's settings and tools,
reset, usage."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from datetime import UTC, timedelta

from bot.conversation import Author, ConversationKey
from bot.errors import InvalidSetting, PermissionRefused, UserFacingError
from bot.limits import Limits
from bot.model.parameters import (
    PARAMETERS,
    ChannelSettings,
    parameter,
    parse_value,
    validate_system_prompt,
)
from bot.storage.store import RatingTotals, Store, Summary, UsageTotals
from bot.tools.registry import Toolbox

PROMPT_PREVIEW_CHARS = 500
RATING_PERIODS = (7, 30)
"""The periods, in days, over which `usage` counts the answers' 👍 and 👎."""

HELP = """\
**/gemini commands**
`show`: this channel's system prompt and settings
`system <prompt>`: set the system prompt · `system reset`: back to the default
`set <setting> <value>` · `unset <setting>`: change one setting, or return it to the default
`reset`: forget this conversation · `usage`: tokens used and answers rated in this channel
`tools`: the tools I may use here · `tools enable <name>` · `tools disable <name>`
Changing settings needs channel-manager rights; anyone may look.
**Settings**
{settings}"""


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who runs a command, and in which conversation (its channel holds the settings)."""

    conversation: ConversationKey
    user: Author


class Commands:
    """Runs the settings commands against the store; errors are UserFacingError."""

    def __init__(self, store: Store, default_model: str, default_system_prompt: str, *,
                 allowed_models: tuple[str, ...] = (), max_completion_tokens: int = 65_536,
                 limits: Limits | None = None, tools: Toolbox | None = None) -> None:
        self._store = store
        self._tools = tools or Toolbox()
        self._default_model = default_model
        self._default_system_prompt = default_system_prompt
        self._models = tuple(dict.fromkeys((default_model, *allowed_models)))
        self._max_completion_tokens = max_completion_tokens
        self._limits = limits

    @staticmethod
    def help() -> str:
        """What the commands are."""
        return HELP.format(settings="\n".join(
            f"`{p.name}` ({p.allowed}): {p.about}" for p in PARAMETERS.values()
        ))

    async def show(self, ctx: CommandContext) -> str:
        """The channel's system prompt and every setting, marking defaults, and whether this
        conversation sends a summary of its earlier part."""
        settings = await self._store.channel_settings(ctx.conversation.channel_key)
        if settings.system_prompt is not None:
            prompt = _preview(settings.system_prompt)
        elif self._default_system_prompt:
            prompt = f"(bot default) {_preview(self._default_system_prompt)}"
        else:
            prompt = "(none)"
        lines = ["**Settings for this channel**", f"System prompt: {prompt}"]
        for name in PARAMETERS:
            if name in settings.parameters:
                lines.append(f"`{name}`: {_shown(settings.parameters[name])}")
            elif name == "model":
                lines.append(f"`model`: {self._default_model} (default)")
        if len(lines) == 3:
            lines.append("Other settings: the model's defaults.")
        lines.append(self._tools_line(settings))
        warning = _sampling_warning(settings)
        if warning:
            lines.append(warning)
        summary = await self._store.summary_of(ctx.conversation)
        if summary is not None:
            lines.append(_summary_line(*summary))
        return "\n".join(lines)

    def _tools_line(self, settings: ChannelSettings) -> str:
        listing = self._tools.listing(settings.tools)
        if not listing:
            return "Tools: none on this bot."
        on = [f"`{t.name}`" for t in listing if t.on]
        off = [f"`{t.name}`" for t in listing if not t.on]
        return "Tools: " + (", ".join(on) or "none") + (f" (off: {', '.join(off)})" if off else "")

    async def tools(self, ctx: CommandContext) -> str:
        """Every tool this bot has, on or off in this channel."""
        settings = await self._store.channel_settings(ctx.conversation.channel_key)
        listing = self._tools.listing(settings.tools)
        if not listing:
            return "This bot has no tools."
        lines = ["**Tools in this channel**"]
        lines.extend(f"`{t.name}`: {'on' if t.on else 'off'}: {_first_sentence(t.description)}"
                     for t in listing)
        lines.append("Managers: `tools enable <name>` / `tools disable <name>` (an MCP "
                     "server's tools together: `SERVER__*`).")
        return "\n".join(lines)

    async def switch_tool(self, ctx: CommandContext, name: str, on: bool) -> str:
        """Turn a tool (or `SERVER__*`, every tool of an MCP server) on or off here."""
        _require_configure(ctx)
        name = self._tools.switch_name(name)
        settings = await self._store.channel_settings(ctx.conversation.channel_key)
        switches = dict(settings.tools)
        if name.endswith("__*"):
            prefix = name[:-1]
            switches = {k: v for k, v in switches.items() if not k.startswith(prefix)}
        switches[name] = on
        await self._save(ctx, replace(settings, tools=switches))
        return f"`{name}` is {'on' if on else 'off'} in this channel."

    async def system_prompt_for_editing(self, ctx: CommandContext) -> str:
        """The channel's own system prompt ("" when it uses the default), to edit in a form;
        PermissionRefused for people who may not change it."""
        _require_configure(ctx)
        settings = await self._store.channel_settings(ctx.conversation.channel_key)
        return settings.system_prompt or ""

    async def set_system_prompt(self, ctx: CommandContext, prompt: str) -> str:
        """Replace the channel's system prompt."""
        _require_configure(ctx)
        text = validate_system_prompt(prompt)
        settings = await self._store.channel_settings(ctx.conversation.channel_key)
        await self._save(ctx, replace(settings, system_prompt=text))
        return f"System prompt set ({len(text):,} characters)."

    async def reset_system_prompt(self, ctx: CommandContext) -> str:
        """Return the channel to the bot's default system prompt."""
        _require_configure(ctx)
        settings = await self._store.channel_settings(ctx.conversation.channel_key)
        await self._save(ctx, replace(settings, system_prompt=None))
        return "System prompt reset to the bot's default."

    async def set_parameter(self, ctx: CommandContext, name: str, raw: str) -> str:
        """Validate and set one parameter; a bad value changes nothing."""
        _require_configure(ctx)
        spec = parameter(name)
        value = parse_value(spec.name, raw)
        self._check_bounds(spec.name, value)
        settings = await self._store.channel_settings(ctx.conversation.channel_key)
        if spec.name == "response_format" and value == "text":
            parameters = {k: v for k, v in settings.parameters.items() if k != spec.name}
        else:
            parameters = {**settings.parameters, spec.name: value}
        updated = replace(settings, parameters=parameters)
        await self._save(ctx, updated)
        warning = _sampling_warning(updated)
        return f"`{spec.name}` set to {_shown(value)}." + (f"\n{warning}" if warning else "")

    async def unset_parameter(self, ctx: CommandContext, name: str) -> str:
        """Remove a parameter so the default applies again."""
        _require_configure(ctx)
        spec = parameter(name)
        settings = await self._store.channel_settings(ctx.conversation.channel_key)
        if spec.name not in settings.parameters:
            return f"`{spec.name}` was not set; nothing changed."
        parameters = {k: v for k, v in settings.parameters.items() if k != spec.name}
        await self._save(ctx, replace(settings, parameters=parameters))
        return f"`{spec.name}` unset; the default applies."

    async def reset_conversation(self, ctx: CommandContext) -> str:
        """Forget this conversation's history and summary (settings and usage records
        stay)."""
        summarised = await self._store.summary_of(ctx.conversation) is not None
        removed = await self._store.forget(ctx.conversation)
        if not removed:
            return "There was nothing to forget in this conversation."
        summary = " and the summary of its earlier part" if summarised else ""
        return (f"Forgot this conversation ({removed} messages{summary}). The next message "
                "starts afresh.")

    def _check_bounds(self, name: str, value: object) -> None:
        if name == "model" and value not in self._models:
            raise InvalidSetting(
                f"`model`: {value!r} is not offered by this bot; allowed: "
                f"{', '.join(self._models)}. Nothing changed."
            )
        if name == "max_completion_tokens" and isinstance(value, int) \
                and value > self._max_completion_tokens:
            raise InvalidSetting(
                f"`max_completion_tokens`: {value} is out of range; allowed on this bot: 1 to "
                f"{self._max_completion_tokens}. Nothing changed."
            )

    async def usage(self, ctx: CommandContext) -> str:
        """Token totals for the channel (last day, all time), the asker's own use today
        against any quota, and for channel managers the channel's top users today."""
        channel = ctx.conversation.channel_key
        day = await self._store.usage_totals(channel, since=timedelta(days=1))
        total = await self._store.usage_totals(channel)
        lines = [
            "**Usage in this channel**",
            f"Last 24 hours: {_totals(day)}",
            f"All time: {_totals(total)}",
        ]
        for days in RATING_PERIODS:
            ratings = await self._store.rating_totals(channel, since=timedelta(days=days))
            lines.append(f"Ratings, last {days} days: {_ratings(ratings)}")
        if self._limits is None:
            return "\n".join(lines)
        since = self._limits.day_start()
        quotas = self._limits.settings
        mine = await self._store.tokens_used_by_user(ctx.conversation.platform, ctx.user.id,
                                                     since)
        lines.append(f"You today (UTC): {mine:,} tokens" + (
            f" of your {quotas.user_daily_tokens:,}" if quotas.user_daily_tokens else ""))
        if quotas.channel_daily_tokens:
            used = await self._store.tokens_used_in_channel(channel, since)
            lines.append(f"This channel today: {used:,} of {quotas.channel_daily_tokens:,} "
                         "tokens")
        if ctx.user.can_configure:
            top = await self._store.top_users(channel, since)
            if top:
                lines.append("Top users today: " + ", ".join(
                    f"{_person(user, ctx)} {tokens:,}" for user, tokens in top))
        return "\n".join(lines)

    async def run(self, ctx: CommandContext, line: str) -> str:
        """Run a command written as text (`set temperature 0.3`); errors come back as text."""
        try:
            return await self._dispatch(ctx, line.strip())
        except UserFacingError as exc:
            return str(exc)

    async def _dispatch(self, ctx: CommandContext, line: str) -> str:
        verb, _, rest = line.partition(" ")
        verb, rest = verb.lower(), rest.strip()
        if verb in ("", "help"):
            return self.help()
        if verb == "show":
            return await self.show(ctx)
        if verb == "usage":
            return await self.usage(ctx)
        if verb == "reset":
            return await self.reset_conversation(ctx)
        if verb == "tools":
            action, _, name = rest.partition(" ")
            if action.lower() in ("", "list"):
                return await self.tools(ctx)
            if action.lower() in ("enable", "disable") and name.strip():
                return await self.switch_tool(ctx, name, action.lower() == "enable")
            raise InvalidSetting("Usage: `tools`, `tools enable <name>` or "
                                 "`tools disable <name>`.")
        if verb == "system":
            if rest.lower() == "reset":
                return await self.reset_system_prompt(ctx)
            return await self.set_system_prompt(ctx, rest)
        if verb == "set":
            name, _, value = rest.partition(" ")
            if not name or not value.strip():
                raise InvalidSetting("Usage: `set <setting> <value>`, e.g. `set temperature 0.4`.")
            return await self.set_parameter(ctx, name, _unquote(value.strip()))
        if verb == "unset":
            if not rest:
                raise InvalidSetting("Usage: `unset <setting>`.")
            return await self.unset_parameter(ctx, rest)
        raise InvalidSetting(f"Unknown command {verb!r}.\n{self.help()}")

    async def _save(self, ctx: CommandContext, settings: ChannelSettings) -> None:
        await self._store.save_channel_settings(
            ctx.conversation.channel_key, settings, updated_by=ctx.user.id
        )


def _require_configure(ctx: CommandContext) -> None:
    if not ctx.user.can_configure:
        raise PermissionRefused(
            "Only people who manage this channel (or the bot's admins) can change its "
            "settings. Anyone can use `show`."
        )


def _summary_line(summary: Summary, covered: int) -> str:
    messages = "message" if covered == 1 else "messages"
    return (f"This conversation: its {covered:,} earlier {messages} are sent as a summary "
            f"(about {summary.tokens:,} tokens, updated "
            f"{summary.updated_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC); `reset` forgets it.")


def _sampling_warning(settings: ChannelSettings) -> str:
    if "temperature" in settings.parameters and "top_p" in settings.parameters:
        return "Note: temperature and top_p are both set; the API advises adjusting only one."
    return ""


def _person(user_id: str, ctx: CommandContext) -> str:
    return f"`{user_id}`" + (" (you)" if user_id == ctx.user.id else "")


def _first_sentence(text: str) -> str:
    sentence = text.strip().split(". ")[0].rstrip(".")
    return sentence[:200] + ("…" if len(sentence) > 200 else "")


def _preview(prompt: str) -> str:
    if len(prompt) <= PROMPT_PREVIEW_CHARS:
        return prompt
    return prompt[:PROMPT_PREVIEW_CHARS] + f"… ({len(prompt):,} characters)"


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(repr(v) for v in value)
    return str(value)


def _totals(totals: UsageTotals) -> str:
    reasoning = f" ({totals.reasoning_tokens:,} reasoning)" if totals.reasoning_tokens else ""
    return (f"{totals.replies:,} replies, {totals.prompt_tokens:,} prompt tokens, "
            f"{totals.completion_tokens:,} answer tokens{reasoning}")


def _ratings(totals: RatingTotals) -> str:
    if not totals.answers:
        return "none yet"
    answers = "answer" if totals.answers == 1 else "answers"
    return f"👍 {totals.up:,} · 👎 {totals.down:,} (on {totals.answers:,} {answers})"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        try:
            parts = shlex.split(value)
        except ValueError:
            return value
        return parts[0] if len(parts) == 1 else value
    return value
