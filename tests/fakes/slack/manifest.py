"""The app's manifest as Slack reads it: the messaging experience the app chose (the agent
view, or the older assistant view), the events it subscribes to and the scopes it asks for.

Slack sends an app only the events its manifest subscribes to, and the ``assistant_thread_*``
events only to an app with ``assistant_view``; an app with ``agent_view`` gets
``app_home_opened`` instead (docs.slack.dev/ai/migrating-to-agent-messaging). Clicks on the
app's buttons reach it only with ``settings.interactivity.is_enabled``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

import adapters.slack_bot

MANIFEST_PATH = Path(adapters.slack_bot.__file__).with_name("manifest.yml")
"""The repository's manifest: what a person pastes into Slack to create the app."""

View = Literal["agent", "assistant", "none"]

MESSAGE_SUBSCRIPTIONS = {
    "channel": "message.channels",
    "group": "message.groups",
    "im": "message.im",
    "mpim": "message.mpim",
}
"""The subscription a ``message`` event needs, by its ``channel_type``."""
ASSISTANT_EVENTS = frozenset({"assistant_thread_started", "assistant_thread_context_changed"})


@dataclass(frozen=True)
class AppManifest:
    """What Slack takes from a manifest: the view, the bot events and the bot scopes, and
    whether clicks are sent (interactivity)."""

    view: View
    bot_events: frozenset[str]
    bot_scopes: frozenset[str]
    interactive: bool = False

    @classmethod
    def parse(cls, text: str) -> AppManifest:
        """Read a manifest's YAML (or JSON) text."""
        data = _mapping(yaml.safe_load(text))
        features = _mapping(data.get("features"))
        view: View = ("agent" if "agent_view" in features
                      else "assistant" if "assistant_view" in features else "none")
        settings = _mapping(data.get("settings"))
        subscriptions = _mapping(settings.get("event_subscriptions"))
        scopes = _mapping(_mapping(data.get("oauth_config")).get("scopes"))
        return cls(view, frozenset(map(str, subscriptions.get("bot_events") or ())),
                   frozenset(map(str, scopes.get("bot") or ())),
                   _mapping(settings.get("interactivity")).get("is_enabled") is True)

    @classmethod
    def load(cls, path: Path = MANIFEST_PATH) -> AppManifest:
        """The manifest in the file at `path` (the repository's by default)."""
        return cls.parse(path.read_text())

    def refusal(self, event: Mapping[str, Any]) -> str | None:
        """Why Slack would not send `event` to this app; None if it would."""
        needed = subscription(event)
        if needed not in self.bot_events:
            return f"the manifest does not subscribe to {needed}"
        if needed in ASSISTANT_EVENTS and self.view != "assistant":
            return f"{needed} goes only to apps with assistant_view (this one has {self.view})"
        return None


def subscription(event: Mapping[str, Any]) -> str:
    """The bot event subscription that brings `event` (``message.im`` for a DM message)."""
    kind = str(event.get("type"))
    if kind == "message":
        return MESSAGE_SUBSCRIPTIONS.get(str(event.get("channel_type")), "message.channels")
    return kind


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
