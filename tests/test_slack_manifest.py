"""The app manifest asks for every event, scope and command the adapter relies on."""

from __future__ import annotations

from pathlib import Path

import adapters.slack_bot

MANIFEST = Path(adapters.slack_bot.__file__).with_name("manifest.yml")


def listed(section: str) -> set[str]:
    """The `- item` entries under `section:` in the manifest, comments left out."""
    items: set[str] = set()
    inside, indent = False, 0
    for line in MANIFEST.read_text().splitlines():
        text = line.split("#", 1)[0].rstrip()
        if not text:
            continue
        depth = len(text) - len(text.lstrip())
        if text.strip() == f"{section}:":
            inside, indent = True, depth
        elif inside and depth <= indent and not text.lstrip().startswith("-"):
            inside = False
        elif inside and text.lstrip().startswith("- "):
            items.add(text.lstrip()[2:].strip())
    return items


def test_events_and_scopes() -> None:
    assert listed("bot_events") == {
        "app_mention", "assistant_thread_started", "assistant_thread_context_changed",
        "message.channels", "message.groups", "message.im", "message.mpim",
    }
    assert listed("bot") == {
        "app_mentions:read", "assistant:write", "channels:history", "chat:write", "commands",
        "files:read", "groups:history", "im:history", "mpim:history", "users:read",
    }


def test_slash_command_and_messages_tab() -> None:
    text = MANIFEST.read_text()
    assert "- command: /gemini" in text
    assert "messages_tab_enabled: true" in text
    assert "messages_tab_read_only_enabled: false" in text
    assert "socket_mode_enabled: true" in text
