"""The REST routes the bot uses (login, the gateway, command sync, messages and channel
history, typing, threads), as a table."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakes.discord import messages
from tests.fakes.discord.models import DM_TYPES, JSON, THREAD_TYPES, Call, Perm, now_iso
from tests.fakes.discord.payloads import application_payload, me_payload, render
from tests.fakes.discord.wire import ApiError, form_error, json_response, route

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

DISCORD_GATEWAY = "wss://gateway.discord.gg"


async def get_me(fake: FakeDiscord, call: Call) -> web.StreamResponse:
    return json_response(me_payload(fake))


async def get_application(fake: FakeDiscord, call: Call) -> web.StreamResponse:
    return json_response(
        application_payload(fake, message_content=fake.gateway.message_content_allowed))


async def get_gateway_bot(fake: FakeDiscord, call: Call) -> web.StreamResponse:
    """The recommended shard count, and Discord's own gateway URL (as Discord answers: a bot
    pointed at another gateway must not take this one)."""
    return json_response({
        "url": DISCORD_GATEWAY,
        "shards": fake.recommended_shards,
        "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0,
                                "max_concurrency": 1},
    })


async def put_commands(
    fake: FakeDiscord, call: Call, app: str, gid: str | None = None
) -> web.StreamResponse:
    """Replace the global (or the guild's) application commands; ids survive a re-sync."""
    if int(app) != fake.application_id or (gid is not None and int(gid) not in fake.guild_names):
        raise ApiError(403, "Missing Access", 50001)
    if not isinstance(call.json, list):
        raise form_error("_root", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
    guild_id = int(gid) if gid is not None else None
    result: list[JSON] = []
    for i, cmd in enumerate(call.json):
        ctype = int(cmd.get("type", 1))
        if not cmd.get("name") or (ctype == 1 and not cmd.get("description")):
            raise form_error(str(i), "BASE_TYPE_REQUIRED", "This field is required")
        cid = fake.command_ids.setdefault((guild_id, f"{ctype}:{cmd['name']}"), fake.next_id())
        out: JSON = {
            "id": str(cid),
            "application_id": str(fake.application_id),
            "version": str(fake.next_id()),
            "type": ctype,
            "name": cmd["name"],
            "description": cmd.get("description", ""),
            "options": copy.deepcopy(cmd.get("options") or []),
            "default_member_permissions": cmd.get("default_member_permissions"),
            "dm_permission": cmd.get("dm_permission", True),
            "nsfw": bool(cmd.get("nsfw", False)),
            "contexts": cmd.get("contexts"),
            "integration_types": cmd.get("integration_types") or [0],
            "name_localizations": cmd.get("name_localizations"),
            "description_localizations": cmd.get("description_localizations"),
        }
        if guild_id is not None:
            out["guild_id"] = str(guild_id)
        result.append(out)
    if guild_id is None:
        fake.commands = result
    else:
        fake.guild_commands[guild_id] = result
    return json_response(result)


async def get_channel(fake: FakeDiscord, call: Call, cid: str) -> web.StreamResponse:
    return json_response(fake.channel(cid))


async def create_message(fake: FakeDiscord, call: Call, cid: str) -> web.StreamResponse:
    """Post as the bot: needs SEND_MESSAGES (in threads SEND_MESSAGES_IN_THREADS); a post in
    an archived thread unarchives it."""
    channel_id = int(cid)
    ch = fake.channel(cid)
    if ch["type"] in THREAD_TYPES:
        fake.require(channel_id, Perm.SEND_MESSAGES_IN_THREADS)
        ch["thread_metadata"]["archived"] = False
    elif ch["type"] not in DM_TYPES:
        fake.require(channel_id, Perm.VIEW_CHANNEL)
        fake.require(channel_id, Perm.SEND_MESSAGES)
    msg = messages.post(fake, channel_id, call.json or {})
    await fake.dispatch_message("MESSAGE_CREATE", msg)
    return json_response(render(fake, msg, gateway=False))


async def channel_history(fake: FakeDiscord, call: Call, cid: str) -> web.StreamResponse:
    """The latest messages of a channel or thread, newest first (``limit`` 1 to 100, default
    50, ``before`` a message id); needs VIEW_CHANNEL and READ_MESSAGE_HISTORY outside DMs."""
    channel_id = int(cid)
    ch = fake.channel(cid)
    if ch["type"] not in DM_TYPES:
        fake.require(channel_id, Perm.VIEW_CHANNEL)
        fake.require(channel_id, Perm.READ_MESSAGE_HISTORY)
    limit = int(call.query.get("limit", "50"))
    if not 1 <= limit <= 100:
        raise form_error("limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100.")
    ids = fake.channel_messages.get(channel_id, [])
    if "before" in call.query:
        ids = [m for m in ids if m < int(call.query["before"])]
    newest = list(reversed(ids))[:limit]
    return json_response([render(fake, fake.messages[m], gateway=False) for m in newest])


async def edit_message(fake: FakeDiscord, call: Call, cid: str, mid: str) -> web.StreamResponse:
    """Edit one of the bot's messages, within the per-channel edit rate limit."""
    fake.channel(cid)
    msg = messages.message_in(fake, int(cid), int(mid))
    if int(msg["author"]["id"]) != fake.bot_user.id:
        raise ApiError(403, "Cannot edit a message authored by another user", 50005)
    headers = fake.edit_limits.count(f"edit:{cid}", call)
    messages.edit(fake, msg, call.json or {})
    await fake.dispatch_message("MESSAGE_UPDATE", msg)
    return json_response(render(fake, msg, gateway=False), headers=headers)


async def typing(fake: FakeDiscord, call: Call, cid: str) -> web.StreamResponse:
    fake.channel(cid)
    return web.Response(status=204)


async def start_thread(fake: FakeDiscord, call: Call, cid: str, mid: str) -> web.StreamResponse:
    """A public thread from a message (it gets the message's id); needs CREATE_PUBLIC_THREADS."""
    channel_id = int(cid)
    msg = messages.message_in(fake, channel_id, int(mid))
    fake.require(channel_id, Perm.CREATE_PUBLIC_THREADS)
    if int(mid) in fake.channels:
        raise ApiError(400, "A thread has already been created for this message", 160004)
    body = call.json or {}
    name = str(body.get("name") or "")
    if not 1 <= len(name) <= 100:
        raise form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    thread = fake.make_thread(
        channel_id,
        name,
        owner_id=fake.bot_user.id,
        thread_id=int(msg["id"]),
        auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
    )
    fake.created_threads.append(int(thread["id"]))
    member = {"id": thread["id"], "user_id": str(fake.bot_user.id), "join_timestamp": now_iso(),
              "flags": 0}
    payload = {**copy.deepcopy(thread), "member": member}
    await fake.gateway.dispatch("THREAD_CREATE", {**payload, "newly_created": True})
    return json_response(payload, 201)


ROUTES = [
    route("GET", "/users/@me", get_me),
    route("GET", "/oauth2/applications/@me", get_application),
    route("GET", "/gateway/bot", get_gateway_bot),
    route("PUT", "/applications/{app}/commands", put_commands),
    route("PUT", "/applications/{app}/guilds/{gid}/commands", put_commands),
    route("GET", "/channels/{cid}", get_channel),
    route("POST", "/channels/{cid}/messages", create_message),
    route("GET", "/channels/{cid}/messages", channel_history),
    route("PATCH", "/channels/{cid}/messages/{mid}", edit_message),
    route("POST", "/channels/{cid}/typing", typing),
    route("POST", "/channels/{cid}/messages/{mid}/threads", start_thread),
]
