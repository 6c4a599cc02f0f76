"""FakeSlack: the workspace served on 127.0.0.1 to the real slack_sdk / slack_bolt clients
(Web API, Socket Mode, file host, ``response_url``), and Slack's side of HTTP mode."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import ClientSession, web
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack.blocks import buttons
from tests.fakes.slack.faults import Faults
from tests.fakes.slack.manifest import AppManifest
from tests.fakes.slack.payloads import (
    block_actions_payload,
    event_callback_body,
    event_callback_payload,
    interactive_body,
    signed_headers,
    slash_command_body,
    slash_command_payload,
)
from tests.fakes.slack.records import (
    ApiCall,
    Download,
    JSONDict,
    PostedResponse,
    SlackError,
    SocketConnection,
)
from tests.fakes.slack.socket_mode import Delivery, DeliveryPolicy, SocketMode
from tests.fakes.slack.state import SlackState
from tests.fakes.slack.web_api import (
    METHODS,
    TIERS,
    bearer,
    check_scope,
    manifest_bot_scopes,
    read_params,
    scope_headers,
)
from tests.fakes.slack.workspace import (
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_SIGNING_SECRET,
    PLAIN_USER_ID,
    TEAM_NAME,
)

SIGN_IN_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    f"<title>Sign in | {TEAM_NAME} | Slack</title></head><body>"
    "<h1>Sign in to your workspace</h1>"
    '<form action="/signin" method="post"><input type="email" name="email">'
    '<button type="submit">Sign in</button></form></body></html>'
)
"""What Slack answers a ``url_private`` download without a valid bot token."""


class NotSubscribed(AssertionError):
    """A test asked the fake to deliver an event Slack would not send to this app."""


class FakeSlack(SlackState):
    """Fake Slack workspace ``T1`` with bot ``UBOT``/``BBOT`` on 127.0.0.1.

    Routes: ``/api/<method>`` (the Web API), ``/link/?ticket=`` (Socket Mode),
    ``/files-pri/T1-F0001/<name>`` (``url_private``), ``/respond/<id>`` (``response_url``).
    People press the buttons of stored messages (``push_click``, ``click_request``) and edit
    messages (``edit``, for ``message_changed`` events).
    Typical use::

        async with FakeSlack() as fake:
            app = AsyncApp(client=fake.client(), signing_secret=fake.signing_secret)
            envelope_id = await fake.push_event(fake.app_mention(text="hi"))

    Args:
        bot_token: accepted for Web API methods and file downloads.
        app_token: app-level token, only accepted by ``apps.connections.open``.
        signing_secret: signs the HTTP-mode requests (``event_request`` ...).
        update_limit / update_window: ``chat.update`` calls allowed per window (Slack: Tier 3,
            about 50 a minute); ``None`` disables the limit.
        tier_window: the window of every other method's tier limit (``web_api.TIERS``):
            Tier 2 takes 20 calls in it, Tier 3 50 and Tier 4 100, each after a small burst.
            Slack's is a minute; tests shrink it to run fast.
        retry_after: ``Retry-After`` seconds of a 429 (default: until the next call would be
            allowed).
        stream_idle_timeout / stream_max_age: seconds after which Slack ends a stream that
            had no call / that started (both undocumented; streams end after about five
            minutes in practice); afterwards its calls get ``message_not_in_streaming_state``.
        manifest: the app as created from a manifest (default: the repository's,
            adapters/slack_bot/manifest.yml): its view, events and scopes.
        clock: the monotonic clock of the 3-second ack deadline, the rate limits and stream
            expiry (tests pass a virtual one).
        socket_delivery: with several Socket Mode connections open, which one gets each
            envelope: each in turn (``round_robin``, as Slack spreads them) or the newest.
        socket_retry_after: seconds (real time) after which Slack sends an unacknowledged
            ``events_api`` envelope again on another connection (``redeliver``); ``None``:
            only when a test asks.
    """

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        signing_secret: str = DEFAULT_SIGNING_SECRET,
        update_limit: int | None = 50,
        update_window: float = 60.0,
        tier_window: float = 60.0,
        retry_after: int | None = None,
        stream_idle_timeout: float = 120.0,
        stream_max_age: float = 300.0,
        manifest: AppManifest | None = None,
        clock: Callable[[], float] = time.monotonic,
        socket_delivery: DeliveryPolicy = "round_robin",
        socket_retry_after: float | None = None,
    ) -> None:
        super().__init__(clock=clock, stream_idle_timeout=stream_idle_timeout,
                         stream_max_age=stream_max_age)
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.manifest = manifest or AppManifest.load()
        self.bot_scopes = manifest_bot_scopes()  # granted to bot_token; tests take some away
        limits = {} if update_limit is None else {"chat.update": (update_limit, update_window)}
        self.faults = Faults(self, limits, retry_after, dict(TIERS), tier_window)
        self.socket_mode = SocketMode(self, policy=socket_delivery,
                                      retry_after=socket_retry_after)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeSlack:
        """Bind a free port on 127.0.0.1 and start serving."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self.socket_mode.handle)
        app.router.add_get("/files-pri/{team_file}/{tail:.*}", self._file)
        app.router.add_post("/respond/{rid}", self._response_url)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Close websockets, fail pending ack waiters and shut the server down."""
        await self.socket_mode.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}/"

    @property
    def api_url(self) -> str:
        """Pass as ``AsyncWebClient(base_url=...)`` (has the trailing slash)."""
        return self.base_url + "api/"

    @property
    def socket_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "link/"

    @property
    def files_url(self) -> str:
        return self.base_url + "files-pri/"

    def response_url(self) -> str:
        """A fresh ``response_url``; POSTs to it are recorded in ``fake.responses``."""
        return f"{self.base_url}respond/{uuid.uuid4().hex}"

    def client(self, **kwargs: Any) -> AsyncWebClient:
        """An ``AsyncWebClient`` pointed at the fake (bot token unless ``token=``)."""
        kwargs.setdefault("token", self.bot_token)
        return AsyncWebClient(base_url=self.api_url, **kwargs)

    # ------------------------------------------------------------------ HTTP

    async def _api(self, request: web.Request) -> web.StreamResponse:
        """Record the call, hold it if asked, then answer it from the method table."""
        method = request.match_info["method"]
        try:
            params = await read_params(request)
        except ValueError:
            params = {"_invalid_body": True}
        token = bearer(request.headers.get("Authorization"))
        body_token = params.pop("token", None)
        if token is None and isinstance(body_token, str) and body_token:
            token = body_token
        call = ApiCall(method, params, token)
        self.calls.append(call)
        if (held := self.faults.holds.get(method)) is not None:
            await self.notify()
            await held.wait()
        try:
            if params.get("_invalid_body") is True:
                raise SlackError("invalid_json")
            call.response = {"ok": True, **self._answer(method, params, token)}
            response = web.json_response(call.response, headers=scope_headers(self, token))
        except SlackError as err:
            call.status = err.status
            call.response = {"ok": False, "error": err.error, **err.extra}
            response = web.json_response(call.response, status=err.status, headers=err.headers)
        await self.notify()
        return response

    def _answer(self, method: str, params: JSONDict, token: str | None) -> JSONDict:
        if method not in METHODS:
            raise SlackError("unknown_method")
        kind, handler = METHODS[method]
        if not token:
            raise SlackError("not_authed")
        if token not in (self.bot_token, self.app_token):
            raise SlackError("invalid_auth")
        if token != (self.app_token if kind == "app" else self.bot_token):
            raise SlackError("not_allowed_token_type")
        if kind == "bot":
            check_scope(self, method)
        self.faults.check(method, self.team_id)
        return handler(self, params)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """``url_private``: the file with the bot token, Slack's sign-in page without."""
        file_id = request.match_info["team_file"].split("-", 1)[-1]
        authorized = bearer(request.headers.get("Authorization")) == self.bot_token
        stored = self.file(file_id)
        self.downloads.append(Download(file_id, authorized and stored is not None))
        await self.notify()
        if not authorized:
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html", charset="utf-8")
        if stored is None:
            return web.Response(status=404, text="file not found")
        data, obj = stored
        headers = {}
        if request.match_info["tail"].startswith("download/"):
            headers["Content-Disposition"] = f'attachment; filename="{obj["name"]}"'
        return web.Response(body=data, content_type=obj["mimetype"], headers=headers)

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        self.responses.append(PostedResponse(str(request.url), await request.json()))
        await self.notify()
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ trouble

    def fail_next(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error`` (after auth)."""
        self.faults.fail_next(method, error, status, dict(headers or {}), times)

    def set_rate_limit(self, method: str, limit: int | None, window: float = 60.0) -> None:
        """Limit ``method`` to ``limit`` calls per ``window`` seconds (``None`` removes)."""
        self.faults.set_rate_limit(method, limit, window)

    def hold(self, method: str) -> asyncio.Event:
        """Make calls of ``method`` wait (recorded, not yet answered) until the returned event
        is set: a test can keep the app mid-work and see what it did before."""
        return self.faults.holds.setdefault(method, asyncio.Event())

    # ------------------------------------------------------------------ Socket Mode

    @property
    def active_sockets(self) -> list[SocketConnection]:
        return self.socket_mode.active

    @property
    def deliveries(self) -> list[Delivery]:
        """Every Socket Mode envelope sent, with the connection it went to and the one its
        ack came back on."""
        return self.socket_mode.deliveries

    async def redeliver(self, envelope_id: str, *, reason: str = "timeout") -> str:
        """Send an envelope again as Slack retries one (``retry_attempt`` + 1, a new
        envelope_id), on another connection when one is open; return its envelope_id."""
        return await self.socket_mode.redeliver(envelope_id, reason=reason)

    async def wait_socket_connected(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SocketConnection:
        """The newest open Socket Mode connection, once there is one."""
        return await self.socket_mode.wait_connected(timeout)

    def sends(self, event: Mapping[str, Any]) -> None:
        """Check that Slack would send ``event`` to this app (its manifest subscribes to it)."""
        refusal = self.manifest.refusal(event)
        if refusal is not None:
            raise NotSubscribed(f"Slack sends no {event.get('type')} event to this app: {refusal}")

    async def push_event(self, event: Mapping[str, Any], *, event_id: str | None = None) -> str:
        """Push an ``events_api`` envelope (``retry_attempt`` 0, as Slack sends a first try);
        return its envelope_id. Only events the app's manifest subscribes to (``sends``)."""
        self.sends(event)
        payload = event_callback_payload(event, event_id=event_id)
        return await self.socket_mode.push(
            "events_api", payload, accepts_response_payload=False, retry_attempt=0
        )

    async def push_slash_command(self, text: str = "", user_id: str = PLAIN_USER_ID,
                                 channel_id: str = "C1") -> str:
        """Push a ``slash_commands`` envelope for ``/gemini`` (response_url is the fake's)."""
        payload = slash_command_payload(
            text=text,
            user_id=user_id,
            user_name=str(self.users.get(user_id, {}).get("name", "someone")),
            channel_id=channel_id,
            channel_name=str(self.channels.get(channel_id, {}).get("name", "directmessage")),
            response_url=self.response_url(),
        )
        return await self.socket_mode.push(
            "slash_commands", dict(payload), accepts_response_payload=True
        )

    def click_payload(self, channel: str, ts: str, action_id: str,
                      user: str = PLAIN_USER_ID) -> JSONDict:
        """The ``block_actions`` payload of ``user`` pressing the button ``action_id`` that
        the stored message ``ts`` shows: Slack sends it only for a button really there, and
        only to an app whose manifest enables interactivity (else ``NotSubscribed``)."""
        if not self.manifest.interactive:
            raise NotSubscribed("Slack sends no clicks to this app: its manifest does not "
                                "enable interactivity")
        try:
            message = self.stored(channel, ts)
        except SlackError:
            raise AssertionError(f"there is no message {ts} in {channel} to click") from None
        shown = [(block_id, b) for block_id, b in buttons(message.blocks)
                 if b["action_id"] == action_id]
        if not shown:
            raise AssertionError(f"message {ts} shows no button {action_id}")
        block_id, button = shown[0]
        channel_name = str(self.channels[channel].get("name", "directmessage"))
        return block_actions_payload(message, block_id, button, user=self.users[user],
                                     channel_name=channel_name,
                                     response_url=self.response_url())

    async def push_click(self, channel: str, ts: str, action_id: str,
                         user: str = PLAIN_USER_ID) -> str:
        """Push the ``interactive`` envelope of a click (``click_payload``); return its id."""
        payload = self.click_payload(channel, ts, action_id, user)
        return await self.socket_mode.push("interactive", payload,
                                           accepts_response_payload=False)

    async def wait_ack(
        self,
        envelope_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JSONDict | None:
        """Wait for the app's ack of ``envelope_id``; return its ``payload`` (or None).

        bolt sends no ack at all when the app's response status is not 200 (e.g. no
        listener matched: 404), so this then times out.
        """
        ack = await self.socket_mode.wait_ack(envelope_id, timeout)
        payload = ack.get("payload")
        return payload if isinstance(payload, dict) else None

    # ------------------------------------------------------------------ HTTP mode

    def event_request(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        signing_secret: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        """``(body, headers)`` of a signed Events API POST carrying ``event``; only for events
        the app's manifest subscribes to (``sends``)."""
        self.sends(event)
        body = event_callback_body(event, event_id=event_id)
        headers = signed_headers(body, signing_secret or self.signing_secret, retry_num=retry_num)
        return body, headers

    def slash_command_request(
        self, *, text: str = "", user_id: str = PLAIN_USER_ID, channel_id: str = "C1"
    ) -> tuple[str, dict[str, str]]:
        """``(body, headers)`` of a signed ``/gemini`` POST; response_url is the fake's."""
        body = slash_command_body(
            text=text,
            user_id=user_id,
            user_name=str(self.users.get(user_id, {}).get("name", "someone")),
            channel_id=channel_id,
            channel_name=str(self.channels.get(channel_id, {}).get("name", "directmessage")),
            response_url=self.response_url(),
        )
        return body, signed_headers(body, self.signing_secret)

    def click_request(self, channel: str, ts: str, action_id: str,
                      user: str = PLAIN_USER_ID) -> tuple[str, dict[str, str]]:
        """``(body, headers)`` of the signed form POST (``payload=``) of a click
        (``click_payload``), as Slack sends it to the interactivity request URL."""
        body = interactive_body(self.click_payload(channel, ts, action_id, user))
        return body, signed_headers(body, self.signing_secret)

    async def deliver(
        self, url: str, request: tuple[str, Mapping[str, str]], *, label: str | None = None
    ) -> tuple[int, str]:
        """POST an HTTP-mode request (``event_request``, ``slash_command_request``) to the app
        at ``url`` as Slack does; return the answer's status and body. An answer later than
        3 seconds is noted in :attr:`missed_acks` under ``label`` (default: a count)."""
        body, headers = request
        key = label or f"http-{len(self._ack_due) + 1}"
        self.expect_ack(key)
        async with ClientSession() as session, session.post(
            url, data=body.encode(), headers=dict(headers)
        ) as response:
            self.acked(key)
            return response.status, await response.text()
