"""The Discord adapter's pure parts: keys, mentions, thread names, allow-lists, file hosts."""

from __future__ import annotations

import httpx
import pytest

from adapters.discord_bot.access import Access
from adapters.discord_bot.events import (
    THREAD_NAME_MAX,
    conversation_key,
    mentions_bot,
    strip_mentions,
    thread_name,
)
from adapters.discord_bot.files import DiscordFiles
from bot.conversation import ConversationKey
from bot.errors import DownloadRefused

BOT, ROLE = 1111, 2222


def test_conversation_keys_use_the_parent_channel_of_a_thread() -> None:
    assert conversation_key(7, 300, 30) == ConversationKey("discord", "7", "30", "300")
    assert conversation_key(7, 30, None) == ConversationKey("discord", "7", "30", "30")
    assert conversation_key(None, 55, None) == ConversationKey("discord", "dm", "55", "55")


@pytest.mark.parametrize("content", [f"<@{BOT}> hi", f"hi <@!{BOT}>", f"<@&{ROLE}> hi"])
def test_a_mention_of_the_bot_or_its_role_counts(content: str) -> None:
    assert mentions_bot(content, BOT, ROLE)
    assert strip_mentions(content, BOT, ROLE) == "hi"


def test_other_mentions_do_not_count_and_stay_in_the_text() -> None:
    content = "ask <@999> about <@&333>"
    assert not mentions_bot(content, BOT, ROLE)
    assert not mentions_bot(f"<@&{ROLE}>", BOT, None)
    assert strip_mentions(f"<@{BOT}>  {content}\n  next line", BOT, ROLE) == (
        "ask <@999> about <@&333>\n next line")


def test_thread_names_come_from_the_first_words() -> None:
    assert thread_name("  what is\nthe capital of France?  ") == "what is the capital of France?"
    long = thread_name("word " * 100)
    assert long.endswith("…") and len(long) <= 61 and not long.startswith(" ")
    assert len(thread_name("x" * 500)) <= THREAD_NAME_MAX
    assert thread_name("<@123> <#456>", fallback="photo.png") == "photo.png"
    assert thread_name("") == "Gemini"


def test_allow_lists() -> None:
    open_to_all = Access()
    assert open_to_all.allows(1, 10, None) and open_to_all.allows(1, None, None)

    channels = Access(channel_ids=frozenset({10}))
    assert channels.allows(1, 10, []) and not channels.allows(1, 11, [])
    assert channels.allows(1, None, None)  # DMs are not server channels

    roles = Access(role_ids=frozenset({5}), admin_ids=frozenset({9}))
    assert roles.allows(1, 10, [4, 5]) and not roles.allows(1, 10, [4])
    assert not roles.allows(1, None, None)  # a DM carries no roles
    assert roles.allows(9, None, None) and roles.allows(9, 10, [])


def test_who_may_configure() -> None:
    access = Access(admin_ids=frozenset({9}))
    assert access.can_configure(1, 7, manage_channels=True)
    assert not access.can_configure(1, 7, manage_channels=False)
    assert access.can_configure(9, 7, manage_channels=False)
    assert not access.can_configure(1, None, manage_channels=True)  # in a DM only admins
    assert access.can_configure(9, None, manage_channels=False)


async def test_files_come_only_from_discord_hosts_or_the_configured_api() -> None:
    async with httpx.AsyncClient() as http:
        files = DiscordFiles(http, 100, "http://127.0.0.1:8080/api/v10")
        assert files.allowed("https://cdn.discordapp.com/attachments/1/2/a.png?ex=1&hm=2")
        assert files.allowed("https://media.discordapp.net/attachments/1/2/a.png")
        assert files.allowed("http://127.0.0.1:8080/attachments/1/2/a.png")
        for url in ("http://cdn.discordapp.com/attachments/1/2/a.png",
                    "https://cdn.discordapp.com:8443/a.png",
                    "https://cdn.discordapp.com.evil.example/a.png",
                    "http://127.0.0.1:8081/attachments/a.png",
                    "file:///etc/passwd", "not a url"):
            assert not files.allowed(url), url
        with pytest.raises(DownloadRefused, match=r"evil\.example"):
            await files.download("https://evil.example/a.png")
        assert not DiscordFiles(http, 100).allowed("http://127.0.0.1:8080/attachments/a.png")
