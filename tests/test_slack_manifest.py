"""The app manifest (adapters/slack_bot/manifest.yml) keeps the rules of Slack's manifest
schema the bot relies on, makes an agent app, and subscribes to exactly the events the bot
handles, with the scope each needs.

The schema rules are those of slackapi/manifest-schema (schemas/manifest.schema.1.0.0.json,
`features.agent_view` added in June 2026). The events the bot handles are found by asking the
real bolt app: it answers 200 to an event it has a listener for and 404 to any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.config import Settings
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack import FakeSlack, event_callback_body, signed_headers, slash_command_body
from tests.fakes.slack.manifest import MANIFEST_PATH
from tests.test_slack_adapter import running

FEATURES = {"app_home", "bot_user", "functions", "shortcuts", "slash_commands",
            "workflow_steps", "unfurl_domains", "assistant_view", "agent_view"}
AGENT_VIEW = {"agent_description", "suggested_prompts", "actions"}
APP_HOME = {"home_tab_enabled", "messages_tab_enabled", "messages_tab_read_only_enabled"}
MAX_AGENT_DESCRIPTION = 300
MAX_SUGGESTED_PROMPTS = 4
MAX_BOT_EVENTS = 100
MAX_EVENT_NAME = 50

SUBSCRIPTIONS: dict[str, tuple[dict[str, Any], str | None]] = {
    "app_mention": ({"type": "app_mention", "user": "UUSER", "text": "<@UBOT> hi",
                     "ts": "1700000001.000100", "channel": "C1"}, "app_mentions:read"),
    "message.channels": ({"type": "message", "channel_type": "channel", "user": "UUSER",
                          "text": "hi", "ts": "1700000001.000200", "channel": "C1"},
                         "channels:history"),
    "message.groups": ({"type": "message", "channel_type": "group", "user": "UUSER",
                        "text": "hi", "ts": "1700000001.000300", "channel": "G1"},
                       "groups:history"),
    "message.im": ({"type": "message", "channel_type": "im", "user": "UUSER", "text": "hi",
                    "ts": "1700000001.000400", "channel": "D1"}, "im:history"),
    "message.mpim": ({"type": "message", "channel_type": "mpim", "user": "UUSER",
                      "text": "hi", "ts": "1700000001.000500", "channel": "G2"},
                     "mpim:history"),
    "app_home_opened": ({"type": "app_home_opened", "user": "UUSER", "channel": "D1",
                         "tab": "messages", "event_ts": "1700000001.000600"}, None),
    "assistant_thread_started": ({"type": "assistant_thread_started", "assistant_thread": {
        "user_id": "UUSER", "channel_id": "D1", "thread_ts": "1700000001.000700"}},
        "assistant:write"),
    "assistant_thread_context_changed": ({"type": "assistant_thread_context_changed",
                                          "assistant_thread": {
                                              "user_id": "UUSER", "channel_id": "D1",
                                              "thread_ts": "1700000001.000700"}},
                                         "assistant:write"),
    "reaction_added": ({"type": "reaction_added", "user": "UUSER", "reaction": "wave",
                        "item": {"type": "message", "channel": "C1",
                                 "ts": "1700000001.000100"}}, "reactions:read"),
    "member_joined_channel": ({"type": "member_joined_channel", "user": "UUSER",
                               "channel": "C1"}, "channels:read"),
    "app_uninstalled": ({"type": "app_uninstalled"}, None),
}
"""Bot event subscriptions the app could have: an event each brings, and the bot scope it
needs (docs.slack.dev/reference/events)."""


def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_manifest_makes_an_agent_app_within_the_schema() -> None:
    features = manifest()["features"]
    assert set(features) <= FEATURES
    assert "agent_view" in features and "assistant_view" not in features
    agent = features["agent_view"]
    assert set(agent) <= AGENT_VIEW
    assert 0 < len(agent["agent_description"]) <= MAX_AGENT_DESCRIPTION
    prompts = agent.get("suggested_prompts", [])
    assert len(prompts) <= MAX_SUGGESTED_PROMPTS
    assert all(set(prompt) == {"title", "message"} for prompt in prompts)
    app_home = features["app_home"]
    assert set(app_home) <= APP_HOME
    assert app_home["messages_tab_enabled"] and not app_home["messages_tab_read_only_enabled"]
    assert [c["command"] for c in features["slash_commands"]] == ["/gemini"]


def test_interactivity_brings_the_clicks_in_both_modes() -> None:
    """The answers' buttons need interactivity; in HTTP mode its request URL is the same
    /slack/events as the events' (both commented out for Socket Mode)."""
    settings = manifest()["settings"]
    assert settings["interactivity"] == {"is_enabled": True}
    assert settings["socket_mode_enabled"] is True
    text = MANIFEST_PATH.read_text()
    assert text.count("# request_url: https://bot.example.com/slack/events") == 2


def test_the_bot_events_are_unique_and_known() -> None:
    events = manifest()["settings"]["event_subscriptions"]["bot_events"]
    assert len(events) == len(set(events)) <= MAX_BOT_EVENTS
    assert all(len(event) <= MAX_EVENT_NAME for event in events)
    assert set(events) <= set(SUBSCRIPTIONS)


async def test_every_event_the_bot_handles_has_its_subscription_and_scope(
        make_settings: Callable[..., Settings], model_api: FakeModelServer) -> None:
    async with FakeSlack(tier_window=1.0) as fake, running(make_settings, fake) as (_, bot):
        handled = set()
        for name, (event, _) in SUBSCRIPTIONS.items():
            body = event_callback_body(event, event_id=f"Ev{len(handled)}{name}")
            response = await bot.app.async_dispatch(AsyncBoltRequest(
                body=body, headers=signed_headers(body, fake.signing_secret)))
            assert response.status in (200, 404), name
            if response.status == 200:
                handled.add(name)
        command = slash_command_body(text="help", response_url=fake.response_url())
        answered = await bot.app.async_dispatch(AsyncBoltRequest(
            body=command, headers=signed_headers(command, fake.signing_secret)))
        await bot.idle()

    subscribed = set(manifest()["settings"]["event_subscriptions"]["bot_events"])
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    assert handled == subscribed, "each handled event subscribed, none subscribed in vain"
    needed = {SUBSCRIPTIONS[name][1] for name in handled} - {None}
    assert needed <= scopes, f"missing scopes: {needed - scopes}"
    assert answered.status == 200 and "commands" in scopes
