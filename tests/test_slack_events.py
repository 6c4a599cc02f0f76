"""Reading Slack payloads: which messages are for the bot, their conversation, their text."""

from __future__ import annotations

from typing import Any

from adapters.slack_bot.events import (
    parse_command,
    parse_home_opened,
    parse_message,
    plain_text,
)
from adapters.slack_bot.mrkdwn import to_mrkdwn
from bot.conversation import ConversationKey
from tests.fakes.slack import BOT_USER_ID, FakeSlack, event_callback_payload

slack = FakeSlack()  # only its event builders: no server is started


def body(event: dict[str, Any], event_id: str = "Ev1") -> dict[str, Any]:
    return event_callback_payload(event, event_id=event_id)


def test_a_channel_mention_starts_a_thread_on_its_message() -> None:
    event = slack.app_mention(text="what is this?", channel="C1")
    message = parse_message(body(event), BOT_USER_ID)
    assert message is not None
    assert message.text == "what is this?" and message.mentions_bot and not message.is_dm
    assert message.reply_thread == event["ts"]
    assert message.key == ConversationKey("slack", "T1", "C1", event["ts"])
    assert (message.event_id, message.ts, message.user_team) == ("Ev1", event["ts"], "T1")


def test_a_reply_in_a_thread_belongs_to_the_thread() -> None:
    event = slack.message(text="more", channel="C1", thread_ts="1700000000.000001")
    message = parse_message(body(event), BOT_USER_ID)
    assert message is not None and not message.mentions_bot and message.text == "more"
    assert message.key == ConversationKey("slack", "T1", "C1", "1700000000.000001")
    assert message.reply_thread == "1700000000.000001"


def test_a_top_level_direct_message_starts_a_thread_on_itself() -> None:
    top = parse_message(body(slack.message(text="hi", channel="D1", channel_type="im")),
                        BOT_USER_ID)
    assert top is not None and top.is_dm and top.text == "hi"
    assert top.reply_thread == top.ts
    assert top.key == ConversationKey("slack", "T1", "D1", top.ts), "its own conversation"
    threaded = parse_message(body(slack.message(text="hi", channel="D1", channel_type="im",
                                                thread_ts="1700000000.000002")), BOT_USER_ID)
    assert threaded is not None and threaded.key.thread == "1700000000.000002"


def test_bots_edits_deletions_and_joins_are_not_messages() -> None:
    noise = [
        slack.message(text="beep", bot_id="B2"),
        slack.message(text="beep", subtype="bot_message"),
        slack.message(user=BOT_USER_ID, text="my own"),
        slack.message(text="x", subtype="message_changed"),
        slack.message(text="x", subtype="message_deleted"),
        slack.message(text="joined", subtype="channel_join"),
        {"type": "reaction_added", "user": "U1"},
    ]
    assert [parse_message(body(e), BOT_USER_ID) for e in noise] == [None] * len(noise)
    shared = parse_message(body(slack.message(text="a file", files=[{"id": "F1"}])),
                           BOT_USER_ID)
    assert shared is not None
    assert (shared.text, shared.files) == ("a file", ({"id": "F1"},))
    assert shared.key == ConversationKey("slack", "T1", "C1", shared.ts), "its own thread"
    broadcast = parse_message(body(slack.message(text="also to channel", thread_ts="1.2",
                                                 subtype="thread_broadcast")), BOT_USER_ID)
    assert broadcast is not None and broadcast.text == "also to channel"
    assert broadcast.key == ConversationKey("slack", "T1", "C1", "1.2"), "the thread it is in"


def test_slack_markup_becomes_plain_text() -> None:
    raw = ("<@UBOT|gemini> compare <@U2|ann> in <#C9|general> and <!here>: "
           "<https://a.example/x?y=1&amp;z=2|the doc>, <https://b.example> &lt;tag&gt; &amp;amp;")
    assert plain_text(raw, BOT_USER_ID) == (
        " compare @ann in #general and @here: the doc (https://a.example/x?y=1&z=2), "
        "https://b.example <tag> &amp;")


def test_home_opened_and_command_payloads() -> None:
    opened = parse_home_opened(body(slack.app_home_opened(channel="D1"), "EvH"))
    assert opened is not None
    assert (opened.team_id, opened.channel, opened.user, opened.tab, opened.event_id) == (
        "T1", "D1", "UUSER", "messages", "EvH")
    assert opened.greeting_id == "greeting:T1:UUSER"
    assert parse_home_opened(body({"type": "app_home_opened", "tab": "messages"})) is None
    assert parse_home_opened(body(slack.message(text="hi"))) is None

    command = parse_command({"team_id": "T1", "channel_id": "D1", "user_id": "U1",
                             "text": " system Use &lt;b&gt; tags "})
    assert command.text == "system Use <b> tags"
    assert command.key == ConversationKey("slack", "T1", "D1", "")
    in_channel = parse_command({"team_id": "T1", "channel_id": "C1", "user_id": "U1"})
    assert in_channel.key.channel_key.channel == "C1"


def test_command_replies_in_mrkdwn() -> None:
    markdown = ("# Title\n**Settings** for [docs](https://x.example/a?b=1&c=2): a < b\n"
                "`**not bold**` and\n```\n**code** <x>\n```")
    assert to_mrkdwn(markdown) == (
        "*Title*\n*Settings* for <https://x.example/a?b=1&amp;c=2|docs>: a &lt; b\n"
        "`**not bold**` and\n```\n**code** &lt;x&gt;\n```")
