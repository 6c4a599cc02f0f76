"""Interactions: slash commands, button clicks and modal submits sent to the bot, and the
routes it answers them on (the callback, within the ack deadline, and followups)."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.discord import messages
from tests.fakes.discord.models import (
    EPHEMERAL,
    JSON,
    Call,
    FakeUser,
    Interaction,
    InteractionResponse,
)
from tests.fakes.discord.payloads import render
from tests.fakes.discord.wire import ApiError, form_error, json_response, route

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

CHAT_INPUT, COMPONENT, MODAL_SUBMIT = 2, 3, 5
MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, MODAL = 4, 5, 6, 9  # the answers the bot gives


# ---------------------------------------------------------------------- what a person does


def _new_interaction(
    fake: FakeDiscord,
    itype: int,
    channel_id: int,
    user: FakeUser,
    data: JSON,
    *,
    message_id: int | None = None,
) -> JSON:
    ch = fake.channel(channel_id)
    iid = fake.next_id()
    token = "aW50ZXJhY3Rpb24." + secrets.token_urlsafe(48)
    gid = fake.channel_guild_id(channel_id)
    payload: JSON = {
        "id": str(iid),
        "application_id": str(fake.application_id),
        "type": itype,
        "data": data,
        "token": token,
        "version": 1,
        "channel_id": str(channel_id),
        "channel": copy.deepcopy(ch),
        "locale": "en-US",
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": 26_214_400,
        "app_permissions": str(fake.permissions_in(channel_id, fake.bot_user)),
    }
    if gid is not None:
        payload["guild_id"] = str(gid)
        payload["guild"] = {"id": str(gid), "locale": "en-US", "features": []}
        payload["guild_locale"] = "en-US"
        payload["member"] = {
            **user.member_payload(),
            "permissions": str(fake.permissions_in(channel_id, user)),
        }
        payload["context"] = 0
        payload["authorizing_integration_owners"] = {"0": str(gid)}
    else:
        payload["user"] = user.payload()
        payload["context"] = 1
        payload["authorizing_integration_owners"] = {"0": str(user.id)}
    if message_id is not None:
        payload["message"] = render(fake, fake.messages[message_id], gateway=False)
    fake.interactions[iid] = Interaction(
        iid, token, itype, channel_id, user, fake.clock(), message_id=message_id
    )
    return payload


def _find_command(fake: FakeDiscord, name: str, guild_id: int | None) -> JSON | None:
    synced = [*fake.guild_commands.get(guild_id or 0, []), *fake.commands]
    return next((c for c in synced if c["name"] == name and c.get("type", 1) == 1), None)


def slash_command(
    fake: FakeDiscord,
    channel_id: int,
    user: FakeUser | int,
    name: str,
    options: Mapping[str, Any] | None = None,
) -> JSON:
    """The INTERACTION_CREATE payload of a synced chat-input command with string options.

    ``name`` may contain the subcommand path (``"gemini system set"``).
    """
    path = name.split()
    cmd = _find_command(fake, path[0], fake.channel_guild_id(channel_id))
    if cmd is None:
        known = [c["name"] for c in fake.commands] + [
            c["name"] for cs in fake.guild_commands.values() for c in cs
        ]
        raise LookupError(f"/{path[0]} is not registered (synced: {known}); sync the tree first")
    data: JSON = {"id": cmd["id"], "name": cmd["name"], "type": 1}
    if cmd.get("guild_id"):
        data["guild_id"] = cmd["guild_id"]
    container = data
    schema: list[JSON] = cmd.get("options") or []
    for part in path[1:]:
        sub = next((o for o in schema if o["name"] == part and o["type"] in (1, 2)), None)
        if sub is None:
            raise LookupError(f"no subcommand {part!r} in /{name}")
        node: JSON = {"name": part, "type": sub["type"], "options": []}
        container.setdefault("options", []).append(node)
        container = node
        schema = sub.get("options") or []
    if any(o["type"] in (1, 2) for o in schema):
        raise ValueError(f"/{name} needs a subcommand")
    given = dict(options or {})
    values: list[JSON] = []
    for key, value in given.items():
        option = next((o for o in schema if o["name"] == key), None)
        if option is None or option["type"] != 3:
            raise ValueError(f"no string option {key!r} for /{name}")
        allowed = [c["value"] for c in option.get("choices") or []]
        if allowed and str(value) not in allowed:
            raise ValueError(f"option {key!r}={value!r} not in choices {allowed}")
        values.append({"name": key, "type": 3, "value": str(value)})
    missing = [o["name"] for o in schema if o.get("required") and o["name"] not in given]
    if missing:
        raise ValueError(f"missing required options {missing} for /{name}")
    container["options"] = values
    return _new_interaction(fake, CHAT_INPUT, channel_id, fake.user(user), data)


def _walk(components: Sequence[JSON]) -> Iterator[JSON]:
    for comp in components:
        yield comp
        yield from _walk(comp.get("components") or [])


def click_button(
    fake: FakeDiscord, message_id: int | str, custom_id: str, user: FakeUser | int
) -> JSON:
    """The INTERACTION_CREATE payload of a click on a button of a stored message."""
    mid = int(message_id)
    if mid not in fake.messages:
        raise LookupError(f"unknown message {mid}")
    msg = fake.messages[mid]
    button = next((c for c in _walk(msg["components"]) if c.get("custom_id") == custom_id), None)
    if button is None:
        raise LookupError(f"message {mid} has no component with custom_id {custom_id!r}")
    if button.get("disabled"):
        raise ValueError(f"component {custom_id!r} is disabled")
    data = {"custom_id": custom_id, "component_type": button["type"]}
    return _new_interaction(
        fake, COMPONENT, int(msg["channel_id"]), fake.user(user), data, message_id=mid
    )


def submit_modal(
    fake: FakeDiscord, custom_id: str, user: FakeUser | int, fields: Mapping[str, str]
) -> JSON:
    """The INTERACTION_CREATE payload of the latest modal shown with ``custom_id``, submitted
    with ``fields`` (text input custom_id → value) in the modal's component structure."""
    shown = [
        r for r in fake.interaction_responses
        if r.type == MODAL and (r.data or {}).get("custom_id") == custom_id
    ]
    if not shown:
        raise LookupError(f"no modal with custom_id {custom_id!r} was shown")
    origin = fake.interactions[shown[-1].interaction_id]
    remaining = dict(fields)

    def answer(comp: JSON) -> JSON | None:
        ctype = comp.get("type")
        if ctype == 1:  # action row
            return {"type": 1, "components": [c for c in map(answer, comp["components"]) if c]}
        if ctype == 18:  # label
            out: JSON = {"type": 18, "component": answer(comp["component"])}
        elif ctype == 4:  # text input
            value = remaining.pop(comp["custom_id"], None)
            if value is None and comp.get("required", True):
                raise ValueError(f"modal field {comp['custom_id']!r} is required")
            out = {"type": 4, "custom_id": comp["custom_id"], "value": value or ""}
        else:
            return {"type": ctype, "id": comp["id"]} if "id" in comp else None
        if "id" in comp:
            out["id"] = comp["id"]
        return out

    components = [c for c in map(answer, (shown[-1].data or {}).get("components", [])) if c]
    if remaining:
        raise ValueError(f"modal {custom_id!r} has no fields {sorted(remaining)}")
    data = {"custom_id": custom_id, "components": components}
    return _new_interaction(
        fake, MODAL_SUBMIT, origin.channel_id, fake.user(user), data,
        message_id=origin.message_id,
    )


# ---------------------------------------------------------------------- how the bot answers


async def callback(fake: FakeDiscord, call: Call, iid: str, token: str) -> web.StreamResponse:
    """The one answer to an interaction: a message, a deferral ("thinking…"), a modal, or
    for a click (or a form opened by one) a deferred update, which shows nothing.

    Later than ``interaction_ack_timeout`` it is ``404 Unknown interaction``, a second answer
    ``400`` (40060), as on Discord.
    """
    rec = fake.interactions.get(int(iid))
    if rec is None or rec.token != token:
        raise ApiError(404, "Unknown interaction", 10062)
    timeout = fake.interaction_ack_timeout
    if timeout is not None and fake.clock() - rec.created > timeout:
        raise ApiError(404, "Unknown interaction", 10062)
    if rec.response_type is not None:
        raise ApiError(400, "Interaction has already been acknowledged.", 40060)
    body = call.json or {}
    rtype = body.get("type")
    data: JSON = body.get("data") or {}
    valid = {MESSAGE, DEFERRED_MESSAGE} | ({MODAL} if rec.type != MODAL_SUBMIT else set())
    if rec.type == COMPONENT or (rec.type == MODAL_SUBMIT and rec.message_id is not None):
        valid.add(DEFERRED_UPDATE)
    if rtype not in valid:
        raise form_error(
            "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
        )
    message = None
    if rtype == MESSAGE:
        message = messages.post(fake, rec.channel_id, data, interaction=rec)
    elif rtype == DEFERRED_MESSAGE:
        flags = {"flags": data.get("flags", 0)}
        message = messages.post(fake, rec.channel_id, flags, interaction=rec, loading=True)
        rec.loading_pending = True
    if message is not None:
        rec.original_id = int(message["id"])
        await fake.dispatch_message("MESSAGE_CREATE", message)
    rec.response_type = rtype
    fake.interaction_responses.append(
        InteractionResponse(rec.id, rtype, copy.deepcopy(body.get("data")), rec.original_id)
    )
    resource: JSON = {"type": rtype}
    if message is not None:
        resource["message"] = render(fake, message, gateway=False)
    return json_response({
        "interaction": {
            "id": str(rec.id),
            "type": rec.type,
            "activity_instance_id": None,
            "response_message_id": str(rec.original_id) if rec.original_id else None,
            "response_message_loading": rtype == DEFERRED_MESSAGE,
            "response_message_ephemeral": bool(message and message["flags"] & EPHEMERAL),
        },
        "resource": resource,
    })


async def followup(fake: FakeDiscord, call: Call, app: str, token: str) -> web.StreamResponse:
    """A followup message; the first after a deferral replaces the "thinking…" message."""
    rec = next((r for r in fake.interactions.values() if r.token == token), None)
    if int(app) != fake.application_id or rec is None or rec.response_type is None:
        raise ApiError(404, "Unknown Webhook", 10015)
    body = call.json or {}
    if rec.loading_pending and rec.original_id is not None:
        rec.loading_pending = False
        msg = fake.messages[rec.original_id]
        messages.edit(fake, msg, {k: v for k, v in body.items() if k != "flags"})
        await fake.dispatch_message("MESSAGE_UPDATE", msg)
    else:
        msg = messages.post(fake, rec.channel_id, body, interaction=rec)
        await fake.dispatch_message("MESSAGE_CREATE", msg)
    if call.query.get("wait") in ("1", "true", "True"):
        return json_response(render(fake, msg, gateway=False))
    return web.Response(status=204)


ROUTES = [
    route("POST", "/interactions/{iid}/{token}/callback", callback, auth=False),
    route("POST", "/webhooks/{app}/{token}", followup, auth=False),
]
