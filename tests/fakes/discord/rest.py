"""The REST routes the bot uses (login, command sync, messages, typing, threads), as a table."""

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


async def get_me(fake: FakeDiscord, call: Call) -> web.StreamResponse:
    return json_response(me_payload(fake))


async def get_application(fake: FakeDiscord, call: Call) -> web.StreamResponse:
    return json_response(application_payload(fake))


async def put_commands(
    fake: FakeDiscord, call: Call, app: str, gid: str | None = None
) -> web.StreamResponse:
    """Replace the global (or the guild's) application commands; ids survive a re-sync."""
    if int(app) != fake.application_id or (gid is not None and int(gid) != fake.guild_id):
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
    route("PUT", "/applications/{app}/commands", put_commands),
    route("PUT", "/applications/{app}/guilds/{gid}/commands", put_commands),
    route("GET", "/channels/{cid}", get_channel),
    route("POST", "/channels/{cid}/messages", create_message),
    route("PATCH", "/channels/{cid}/messages/{mid}", edit_message),
    route("POST", "/channels/{cid}/typing", typing),
    route("POST", "/channels/{cid}/messages/{mid}/threads", start_thread),
]
