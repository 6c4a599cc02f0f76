"""How the fake guild looks on the wire: READY's user, the guild, the application, messages."""

from __future__ import annotations

import copy

from tests.fakes.discord.models import JSON, THREAD_TYPES
from tests.fakes.discord.state import DiscordState

GATEWAY_GUILD_MEMBERS_LIMITED = 1 << 15
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
"""The Message Content intent switched on in the Developer Portal (a bot in under 100 servers)."""


def application_flags(message_content: bool) -> int:
    """The application's flags: the Server Members intent, and Message Content if it is on."""
    return GATEWAY_GUILD_MEMBERS_LIMITED | (GATEWAY_MESSAGE_CONTENT_LIMITED if message_content
                                            else 0)


def me_payload(state: DiscordState) -> JSON:
    """``GET /users/@me`` and READY's ``user``."""
    return {
        **state.bot_user.payload(),
        "verified": True,
        "mfa_enabled": False,
        "locale": "en-US",
        "email": None,
    }


def application_payload(state: DiscordState, *, message_content: bool) -> JSON:
    """``GET /oauth2/applications/@me`` (``message_content``: whether the intent is on)."""
    return {
        "id": str(state.application_id),
        "name": state.bot_user.username,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": application_flags(message_content),
        "owner": state.owner_user.payload(),
        "team": None,
        "bot": state.bot_user.payload(),
        "interactions_endpoint_url": None,
        "redirect_uris": [],
        "tags": [],
        "integration_types_config": {"0": {}},
        "approximate_guild_count": 1,
    }


def guild_payload(state: DiscordState, guild_id: int | None = None) -> JSON:
    """The gateway's GUILD_CREATE: the guild (by default the first) with its members,
    channels and active threads."""
    gid = guild_id or state.guild_id
    members = list(state.users.values())
    channels = [c for c in state.channels.values() if c.get("guild_id") == str(gid)]
    everyone_roles = set(state.guild_names) - {gid}  # every other guild's @everyone
    return {
        "id": str(gid),
        "name": state.guild_names[gid],
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(state.owner_user.id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": "en-US",
        "system_channel_id": str(state.text_channel_id) if gid == state.guild_id else None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "features": [],
        "roles": [r.payload() for r in state.roles.values() if r.id not in everyone_roles],
        "emojis": [],
        "stickers": [],
        "unavailable": False,
        "large": False,
        "joined_at": state.bot_user.joined_at,
        "member_count": len(members),
        "members": [u.member_payload() for u in members],
        "channels": [copy.deepcopy(c) for c in channels if c["type"] not in THREAD_TYPES],
        "threads": [
            copy.deepcopy(c)
            for c in channels
            if c["type"] in THREAD_TYPES and not c["thread_metadata"]["archived"]
        ],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def render(state: DiscordState, msg: JSON, *, gateway: bool, nested: bool = False) -> JSON:
    """A stored message as REST returns it, or (``gateway=True``) as MESSAGE_CREATE carries it:
    with ``referenced_message`` for a reply, ``thread`` if one was started from it, and in a
    guild the ``guild_id`` and the author's and mentioned people's ``member``."""
    out = copy.deepcopy(msg)
    ref = msg.get("message_reference")
    if ref is not None and not nested and msg["type"] == 19:
        target = state.messages.get(int(ref["message_id"]))
        out["referenced_message"] = (
            render(state, target, gateway=gateway, nested=True) if target else None
        )
    thread = state.channels.get(int(msg["id"]))
    if thread is not None and thread["type"] in THREAD_TYPES:
        out["thread"] = copy.deepcopy(thread)
    gid = state.channel_guild_id(int(msg["channel_id"]))
    if gateway and gid is not None:
        out["guild_id"] = str(gid)
        author = state.users.get(int(msg["author"]["id"]))
        if author is not None:
            out["member"] = author.member_payload(with_user=False)
        for mention in out["mentions"]:
            person = state.users.get(int(mention["id"]))
            if person is not None:
                mention["member"] = person.member_payload(with_user=False)
    return out
