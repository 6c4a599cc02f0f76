"""What Slack sends an app: event and slash-command payloads, and the signature over them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from tests.fakes.slack.records import JSONDict, StoredMessage
from tests.fakes.slack.workspace import (
    APP_ID,
    BOT_USER_ID,
    PLAIN_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    VERIFICATION_TOKEN,
)


def signed_headers(
    body: str | bytes,
    signing_secret: str,
    timestamp: int | str | None = None,
    *,
    content_type: str | None = None,
    retry_num: int | None = None,
) -> dict[str, str]:
    """Headers Slack would send with ``body``: signature, timestamp and content type.

    Same format as :class:`slack_sdk.signature.SignatureVerifier`:
    ``v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}"))``. The content type is guessed
    from the body (JSON if it starts with ``{``, else form-urlencoded) unless given.
    """
    ts = str(int(time.time())) if timestamp is None else str(timestamp)
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    base = f"v0:{ts}:{text}".encode()
    signature = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if content_type is None:
        is_json = text.lstrip().startswith("{")
        content_type = "application/json" if is_json else "application/x-www-form-urlencoded"
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


def event_callback_payload(event: Mapping[str, Any], *, event_id: str | None = None
                           ) -> JSONDict:
    """Wrap ``event`` in an ``event_callback`` envelope (the Events API body)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "context_team_id": TEAM_ID,
        "context_enterprise_id": None,
        "api_app_id": APP_ID,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + uuid.uuid4().hex,
    }


def event_callback_body(event: Mapping[str, Any], *, event_id: str | None = None) -> str:
    """JSON text of :func:`event_callback_payload` (what Slack POSTs to /slack/events)."""
    return json.dumps(event_callback_payload(event, event_id=event_id))


def slash_command_payload(
    *,
    text: str = "",
    user_id: str = PLAIN_USER_ID,
    user_name: str = "bob",
    channel_id: str = "C1",
    channel_name: str = "general",
    response_url: str = "",
) -> dict[str, str]:
    """The fields of a ``/gemini`` request (all strings, as Slack sends them)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": "/gemini",
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex[:16]}",
    }


def slash_command_body(
    *,
    text: str = "",
    user_id: str = PLAIN_USER_ID,
    user_name: str = "bob",
    channel_id: str = "C1",
    channel_name: str = "general",
    response_url: str = "",
) -> str:
    """Form-urlencoded ``/gemini`` request body. Use ``fake.response_url()`` for response_url."""
    return urlencode(
        slash_command_payload(
            text=text,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            channel_name=channel_name,
            response_url=response_url,
        )
    )


def block_actions_payload(message: StoredMessage, block_id: str, button: Mapping[str, Any], *,
                          user: Mapping[str, Any], channel_name: str, response_url: str
                          ) -> JSONDict:
    """The ``block_actions`` payload Slack sends when ``user`` (a users.info user) presses
    ``button`` (in actions block ``block_id``) on ``message``."""
    now = f"{time.time():.6f}"
    container: JSONDict = {"type": "message", "message_ts": message.ts,
                           "channel_id": message.channel, "is_ephemeral": False}
    if message.thread_ts is not None:
        container["thread_ts"] = message.thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user["id"], "username": user["name"], "name": user["name"],
                 "team_id": user["team_id"]},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex[:16]}",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": channel_name},
        "message": message.to_api(),
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{
            "action_id": button["action_id"],
            "block_id": block_id,
            "text": dict(button["text"]),
            "value": button.get("value", ""),
            "type": "button",
            "action_ts": now,
        }],
    }


def interactive_body(payload: Mapping[str, Any]) -> str:
    """The form body of an interaction in HTTP mode: ``payload=<the JSON>``."""
    return urlencode({"payload": json.dumps(payload)})
