"""A fake Slack for end-to-end tests, driven by the real ``slack_sdk`` / ``slack_bolt``
clients on 127.0.0.1: the Web API methods the bot calls, Socket Mode, the ``url_private``
file host, ``response_url``, and signed HTTP-mode requests with Slack's 3-second ack deadline.

It implements only what the bot uses and keeps Slack's rules where the bot depends on them:
``markdown_text`` at most 12,000 characters and never with ``text`` or ``blocks``, tokens
by kind and their scopes, each method's rate-limit tier per workspace (429 with
``Retry-After``), streams that need a recipient outside DMs, expire when idle or old and
cannot be updated while they stream, the events and behaviour of the app's manifest (agent
or assistant view, interactivity), a sign-in page for unauthenticated downloads, Block Kit
rules (``blocks``; only chat.stopStream of the stream methods takes blocks; chat.update keeps
blocks it is not given). People click the buttons stored messages show (``push_click``,
``click_request``) and edit messages (``edit``). Everything is recorded (``calls``,
``texts()``, ``streams``, ``downloads``, ``responses``, ``ephemerals``, ``deleted``,
``envelopes``, ``missed_acks`` ...).

Modules: ``workspace`` (ids, tokens, limits), ``manifest`` (the app as Slack reads it),
``records``, ``state`` (the workspace and what people do in it), ``payloads`` (event,
command and click payloads, signing), ``blocks`` (Block Kit rules, buttons), ``web_api``
(the method table, tiers and scopes), ``faults`` (injected errors, rate limits, holds),
``socket_mode`` and ``server``.
"""

from tests.fakes.slack.manifest import AppManifest
from tests.fakes.slack.payloads import (
    event_callback_body,
    event_callback_payload,
    signed_headers,
    slash_command_body,
    slash_command_payload,
)
from tests.fakes.slack.records import (
    ApiCall,
    Download,
    Envelope,
    PostedResponse,
    SocketConnection,
    StoredMessage,
    Stream,
)
from tests.fakes.slack.server import SIGN_IN_PAGE, FakeSlack, NotSubscribed
from tests.fakes.slack.workspace import (
    ACK_DEADLINE,
    ADMIN_USER_ID,
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_SIGNING_SECRET,
    MAX_MARKDOWN_CHARS,
    OWNER_USER_ID,
    PLAIN_USER_ID,
    TEAM_ID,
)

__all__ = [
    "ACK_DEADLINE",
    "ADMIN_USER_ID",
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_APP_TOKEN",
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_SIGNING_SECRET",
    "MAX_MARKDOWN_CHARS",
    "OWNER_USER_ID",
    "PLAIN_USER_ID",
    "SIGN_IN_PAGE",
    "TEAM_ID",
    "ApiCall",
    "AppManifest",
    "Download",
    "Envelope",
    "FakeSlack",
    "NotSubscribed",
    "PostedResponse",
    "SocketConnection",
    "StoredMessage",
    "Stream",
    "event_callback_body",
    "event_callback_payload",
    "signed_headers",
    "slash_command_body",
    "slash_command_payload",
]
