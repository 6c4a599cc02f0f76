"""The /gemini commands: validation at each range edge, permissions, show, reset, usage."""

from __future__ import annotations

import pytest

from bot.commands import CommandContext, Commands
from bot.conversation import Author, ConversationKey, Role, TextPart, Turn, Usage
from bot.model.parameters import ChannelSettings
from bot.storage.store import Store

KEY = ConversationKey("test", "w", "c", "t")
ADMIN = CommandContext(KEY, Author("a1", "Admin", can_configure=True))
MEMBER = CommandContext(KEY, Author("u1", "Member"))

# (parameter, accepted edge values, values one step outside, the range named in the error)
RANGES = [
    ("temperature", ["0", "2", "0.7"], ["-0.01", "2.01"], "0 to 2"),
    ("top_p", ["0", "1"], ["-0.01", "1.01"], "0 to 1"),
    ("max_completion_tokens", ["1", "65536"], ["0", "65537"], "1 to 65536"),
    ("frequency_penalty", ["-2", "2"], ["-2.01", "2.01"], "-2 to 2"),
    ("presence_penalty", ["-2", "2"], ["-2.01", "2.01"], "-2 to 2"),
    ("seed", ["-2147483648", "2147483647"], ["-2147483649", "2147483648"],
     "-2147483648 to 2147483647"),
    ("reasoning_effort", ["low", "medium", "high"], ["none", "max"], "low, medium, high"),
    ("response_format", ["json", "text"], ["xml"], "json, text"),
    ("stop", ["END", '["a", "b", "c", "d", "e"]'], ['["a", "b", "c", "d", "e", "f"]', "[]"],
     "1 to 5 strings"),
    ("model", ["gemini-3.1-flash-lite-preview"], ["bad model!"], "a model name"),
]


@pytest.fixture
def commands(store: Store) -> Commands:
    return Commands(store, "gemini-3.1-flash-lite-preview", "")


@pytest.mark.parametrize(("name", "accepted", "refused", "allowed"), RANGES)
async def test_each_parameter_accepts_its_edges_and_refuses_one_step_outside(
    commands: Commands, store: Store, name: str, accepted: list[str], refused: list[str],
    allowed: str,
) -> None:
    for value in accepted:
        reply = await commands.run(ADMIN, f"set {name} {value}")
        assert reply.startswith(f"`{name}` set to"), reply
    before = await store.channel_settings(KEY.channel_key)

    for value in refused:
        reply = await commands.run(ADMIN, f"set {name} {value}")
        assert f"allowed: {allowed}" in reply, reply
        assert "Nothing changed" in reply

    assert await store.channel_settings(KEY.channel_key) == before


async def test_integers_refuse_fractions(commands: Commands) -> None:
    reply = await commands.run(ADMIN, "set max_completion_tokens 10.5")
    assert "'10.5' is not a whole number" in reply


@pytest.mark.parametrize("value", ["nan", "inf", "abc"])
async def test_numbers_refuse_non_finite_and_words(commands: Commands, value: str) -> None:
    assert "is not a number" in await commands.run(ADMIN, f"set temperature {value}")


async def test_unknown_setting_lists_the_known_ones(commands: Commands) -> None:
    reply = await commands.run(ADMIN, "set warmth 3")
    assert "There is no setting 'warmth'" in reply and "temperature" in reply


async def test_a_member_without_rights_may_look_but_not_change(
    commands: Commands, store: Store
) -> None:
    for line in ("set temperature 1", "unset temperature", "system Be rude.", "system reset"):
        assert "Only people who manage this channel" in await commands.run(MEMBER, line)
    assert await store.channel_settings(KEY.channel_key) == ChannelSettings()
    assert "Settings for this channel" in await commands.run(MEMBER, "show")


async def test_show_lists_prompt_settings_and_warns_about_temperature_with_top_p(
    commands: Commands,
) -> None:
    await commands.run(ADMIN, "system You answer in French.")
    await commands.run(ADMIN, "set temperature 0.5")
    reply = await commands.run(ADMIN, "set top_p 0.9")

    shown = await commands.run(MEMBER, "show")

    assert "temperature and top_p are both set" in reply
    assert "System prompt: You answer in French." in shown
    assert "`temperature`: 0.5" in shown and "`top_p`: 0.9" in shown
    assert "`model`: gemini-3.1-flash-lite-preview (default)" in shown


async def test_unset_and_system_reset_return_to_defaults(
    commands: Commands, store: Store
) -> None:
    await commands.run(ADMIN, "system Pirate voice.")
    await commands.run(ADMIN, "set seed 42")

    assert "unset" in await commands.run(ADMIN, "unset seed")
    assert "reset to the bot's default" in await commands.run(ADMIN, "system reset")
    assert await store.channel_settings(KEY.channel_key) == ChannelSettings()
    assert "was not set" in await commands.run(ADMIN, "unset seed")


async def test_empty_and_oversized_system_prompts_are_refused(commands: Commands) -> None:
    assert "empty" in await commands.run(ADMIN, "system    ")
    assert "the limit is 20,000" in await commands.run(ADMIN, "system " + "x" * 20_001)


async def test_reset_forgets_only_this_conversation(commands: Commands, store: Store) -> None:
    other = ConversationKey("test", "w", "c", "other")
    for key in (KEY, other):
        await store.add_turn(key, Turn(Role.USER, (TextPart("hi"),)))

    assert "Forgot this conversation (1 messages)" in await commands.run(MEMBER, "reset")

    assert await store.history(KEY, 1000, 1) == []
    assert len(await store.history(other, 1000, 1)) == 1


async def test_usage_reports_this_channels_totals(commands: Commands, store: Store) -> None:
    await store.add_turn(KEY, Turn(Role.ASSISTANT, (TextPart("a"),), usage=Usage(1200, 300, 50),
                                   model="m"))
    await store.add_turn(ConversationKey("test", "w", "elsewhere", "t"),
                         Turn(Role.ASSISTANT, (TextPart("b"),), usage=Usage(9, 9, 9), model="m"))

    reply = await commands.run(MEMBER, "usage")

    assert "Last 24 hours: 1 replies, 1,200 prompt tokens, 300 answer tokens (50 reasoning)" \
        in reply
    assert "All time: 1 replies" in reply


async def test_help_and_unknown_commands(commands: Commands) -> None:
    assert "/gemini commands" in await commands.run(MEMBER, "")
    assert "Unknown command 'frobnicate'" in await commands.run(MEMBER, "frobnicate")
