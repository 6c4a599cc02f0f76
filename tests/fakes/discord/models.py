"""Discord's vocabulary (permission and intent bits, message flags) and the records tests read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

API_VERSION = 10
MAX_CONTENT = 2000
EPHEMERAL = 1 << 6
LOADING = 1 << 7
THREAD_TYPES = (10, 11, 12)
DM_TYPES = (1, 3)


class Perm:
    """Discord permission bits (the ones the fake's roles and tests use)."""

    CREATE_INSTANT_INVITE = 1 << 0
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 51) - 1

    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE | ADD_REACTIONS | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS
        | ATTACH_FILES | READ_MESSAGE_HISTORY | USE_EXTERNAL_EMOJIS | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS | CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS
    )
    BOT_DEFAULT = EVERYONE_DEFAULT | MANAGE_MESSAGES | MANAGE_THREADS | CREATE_PRIVATE_THREADS
    DM = (
        VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | EMBED_LINKS | ATTACH_FILES
        | ADD_REACTIONS | USE_APPLICATION_COMMANDS
    )


class Intent:
    """Gateway intent bits the fake filters events by."""

    GUILDS = 1 << 0
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a guild's events to (a DM's go to shard 0)."""
    return (guild_id >> 22) % shard_count


@dataclass
class FakeUser:
    """A Discord user, a member of the guild; ``roles`` are role ids (without @everyone)."""

    id: int
    username: str
    bot: bool = False
    global_name: str | None = None
    roles: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=now_iso)

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
        }

    def member_payload(self, *, with_user: bool = True) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in self.roles],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.payload()
        return data


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    bot_id: int | None = None

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.bot_id is not None,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class Call:
    """One HTTP request received by the fake.

    ``path`` is relative to the API base (``/channels/1/messages``) for API calls; other requests
    (attachment downloads, unknown paths) keep their full path and have ``api=False``.
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None
    status: int = 0
    known: bool = True
    api: bool = True
    at: float = field(default_factory=time.monotonic)


@dataclass
class Edit:
    """A successful edit of a message (``at`` is ``time.monotonic()``)."""

    message_id: int
    content: str | None
    at: float
    payload: JSON


@dataclass
class RateLimitHit:
    """A request answered with 429."""

    method: str
    path: str
    retry_after: float


@dataclass
class InteractionResponse:
    """An interaction callback (``type``: 4 message, 5 deferred message, 9 modal)."""

    interaction_id: int
    type: int
    data: JSON | None
    message_id: int | None

    @property
    def ephemeral(self) -> bool:
        return bool((self.data or {}).get("flags", 0) & EPHEMERAL)


@dataclass(eq=False)
class Interaction:
    """An interaction the fake sent, and how the bot has answered it so far."""

    id: int
    token: str
    type: int
    channel_id: int
    user: FakeUser
    created: float
    message_id: int | None = None  # the message of a clicked component or submitted modal
    response_type: int | None = None
    original_id: int | None = None
    loading_pending: bool = False
