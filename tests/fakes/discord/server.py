"""FakeDiscord: the guild served on 127.0.0.1 (REST under ``/api/v10``, the gateway websocket,
attachment downloads) to the real discord.py client, and what a person does in it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.discord import interactions, messages, rest
from tests.fakes.discord.gateway import Gateway, HandshakeHold
from tests.fakes.discord.models import (
    API_VERSION,
    EPHEMERAL,
    JSON,
    Call,
    FakeUser,
    InteractionResponse,
)
from tests.fakes.discord.payloads import guild_payload, render
from tests.fakes.discord.ratelimits import RateLimits
from tests.fakes.discord.state import DiscordState
from tests.fakes.discord.wire import ApiError, Route, json_response

if TYPE_CHECKING:
    import discord

ROUTES: list[Route] = [*rest.ROUTES, *interactions.ROUTES]


class FakeDiscord(DiscordState):
    """An in-memory Discord guild the real discord.py client logs in to and talks with.

    Typical use::

        async with FakeDiscord() as fake:
            with fake.patch_discord():
                client = discord.Client(intents=intents, guild_ready_timeout=0.05)
                async with fake.client_running(client):
                    await fake.send_message(fake.text_channel_id, fake.plain_user, "hi")

    Args:
        token: the bot token accepted (REST ``Authorization: Bot <token>`` and IDENTIFY).
        edit_limit / edit_window: edits allowed per channel per window (``None``: no limit).
        ratelimit_headers: send ``X-RateLimit-*`` headers, as Discord does; discord.py then
            paces itself. ``False`` drives discord.py into the 429-and-retry path.
        interaction_ack_timeout: an interaction answered later than this many seconds gets
            ``404 Unknown interaction``, as on Discord (3 s). ``None``: no deadline.
        clock: the monotonic clock that deadline is measured with (tests pass a virtual one).
        recommended_shards: the shard count ``GET /gateway/bot`` recommends (the gateway
            routes events by the shard each connection identified with).
        message_content_allowed: ``False`` closes an IDENTIFY asking for MESSAGE_CONTENT with
            4014 and leaves the intent out of the application's flags, as when the privileged
            intent is not enabled for the bot.
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        edit_limit: int | None = 5,
        edit_window: float = 5.0,
        ratelimit_headers: bool = True,
        interaction_ack_timeout: float | None = 3.0,
        clock: Callable[[], float] = time.monotonic,
        message_content_allowed: bool = True,
        recommended_shards: int = 1,
    ) -> None:
        super().__init__(clock=clock)
        self.token = token
        self.recommended_shards = recommended_shards
        self.interaction_ack_timeout = interaction_ack_timeout
        self.edit_limits = RateLimits(
            self, limit=edit_limit, window=edit_window, headers=ratelimit_headers
        )
        self.gateway = Gateway(self, token=token, message_content_allowed=message_content_allowed)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start serving."""
        app = web.Application()
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._api)
        app.router.add_get("/attachments/{channel}/{aid:\\d+}/{filename}", self._attachment)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close gateway connections and stop the server (close clients first)."""
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Value for ``discord.http.Route.BASE`` (``http://127.0.0.1:PORT/api/v10``)."""
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """Value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (``ws://127.0.0.1:PORT/gateway``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py's REST (webhooks and interactions too) and gateway at the fake."""
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route as DiscordRoute

        old_base, old_gateway = DiscordRoute.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        DiscordRoute.BASE = self.api_url
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            DiscordRoute.BASE = old_base
            DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    @contextlib.asynccontextmanager
    async def client_running(
        self, client: discord.Client, *, within: float = 5.0
    ) -> AsyncIterator[discord.Client]:
        """Run ``client.start(token)`` in a task until it is ready; close it on exit.

        discord.py's 5 s sleep before a repeated IDENTIFY (``before_identify_hook``) is skipped.
        """

        async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
            return None

        client.before_identify_hook = no_identify_delay  # type: ignore[method-assign]
        task = asyncio.create_task(client.start(self.token), name="fake-discord-client")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while not client.is_ready():
                if task.done():
                    task.result()
                    raise RuntimeError("discord client stopped before becoming ready")
                if loop.time() > deadline:
                    raise TimeoutError("discord client did not become ready")
                await asyncio.sleep(0.01)
            yield client
        finally:
            await client.close()
            done, _ = await asyncio.wait({task}, timeout=5.0)
            if not done:
                task.cancel()
            elif not task.cancelled():
                task.exception()  # mark retrieved; an exception from the body takes precedence

    # ------------------------------------------------------------------ HTTP

    async def _api(self, request: web.Request) -> web.StreamResponse:
        """Record the call, then answer it from the route table (404/405 when no route)."""
        path = "/" + request.match_info["tail"]
        call = Call(method=request.method, path=path, query=dict(request.query))
        self.calls.append(call)
        response: web.StreamResponse
        try:
            raw = await request.read()
            if raw and request.content_type == "application/json":
                call.json = json.loads(raw)
            elif raw:
                call.form = {"_raw": raw.decode("utf-8", "replace")}
            response = await self._route(request, call)
        except ApiError as exc:
            response = exc.response()
        call.status = response.status
        self.notify()
        return response

    async def _route(self, request: web.Request, call: Call) -> web.StreamResponse:
        other_method = False
        for entry in ROUTES:
            match = entry.pattern.fullmatch(call.path)
            if match is None:
                continue
            if entry.method != call.method:
                other_method = True
                continue
            if entry.auth and request.headers.get("Authorization") != f"Bot {self.token}":
                raise ApiError(401, "401: Unauthorized", 0)
            self.edit_limits.check_injected(call)
            return await entry.handler(self, call, **match.groupdict())
        call.known = False
        if other_method:
            raise ApiError(405, "405: Method Not Allowed", 0)
        raise ApiError(404, "404: Not Found", 0)

    async def _attachment(self, request: web.Request) -> web.StreamResponse:
        call = Call(method=request.method, path=request.path, api=False)
        self.calls.append(call)
        found = self.attachment(int(request.match_info["aid"]), request.match_info["filename"])
        call.status = 200 if found else 404
        self.notify()
        if found is None:
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=found[0], content_type=found[1])

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        call = Call(request.method, request.path, dict(request.query), status=404, known=False,
                    api=False)
        self.calls.append(call)
        self.notify()
        return json_response({"message": "404: Not Found", "code": 0}, 404)

    def rate_limit_next(
        self, method: str, path_pattern: str, retry_after: float, *, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests matching (method, ``re.fullmatch`` on path) with
        a 429 asking to wait ``retry_after`` seconds, as Discord does for a long limit.
        discord.py waits out at most its ``max_ratelimit_timeout`` and raises
        ``discord.RateLimited`` for a longer wait."""
        self.edit_limits.inject(method, path_pattern, retry_after, times)

    # ------------------------------------------------------------------ gateway

    @property
    def connected_sessions(self) -> int:
        """Number of identified, currently connected gateway sessions."""
        return self.gateway.connected_sessions

    async def wait_for_identify(self, count: int = 1, within: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.identifies) >= count, within)

    @property
    def resumes(self) -> list[JSON]:
        """Each RESUME received (``session_id`` and ``seq``), answered or not."""
        return self.gateway.resumes

    async def drop_connection(self, shard_id: int = 0, *, code: int = 4000,
                              resumable: bool = True) -> None:
        """Close shard ``shard_id``'s gateway connection (an unsharded client's is shard 0)
        with ``code``, as Discord does when it moves a session. discord.py RESUMEs on a code
        other than 1000 and 4004/4010-4014: it gets the events sent meanwhile, then RESUMED;
        unless ``resumable``, it gets INVALID_SESSION and IDENTIFYs anew. LookupError when no
        connection serves the shard."""
        await self.gateway.drop(shard_id, code=code, resumable=resumable)

    def hold_handshakes(self, *, identify: bool = True, resume: bool = True) -> HandshakeHold:
        """Leave each IDENTIFY (unless ``identify`` is false) and RESUME (unless ``resume`` is)
        from now on unanswered until ``release()`` of the returned hold (``arrived`` is set
        once one waits); stopping the fake releases it."""
        return self.gateway.hold_handshakes(identify=identify, resume=resume)

    async def dispatch_message(self, event: str, msg: JSON) -> None:
        """MESSAGE_CREATE / MESSAGE_UPDATE for a stored message (none for an ephemeral one)."""
        if not msg["flags"] & EPHEMERAL:
            await self.gateway.dispatch(event, render(self, msg, gateway=True))

    # ------------------------------------------------------------------ what people do

    async def add_guild(self, name: str, *, shard: tuple[int, int] | None = None
                        ) -> tuple[int, int]:
        """Add the bot to another guild, on shard ``(id, count)`` when given (GUILD_CREATE to
        the connections that serve it); returns the guild's id and its ``general`` channel's."""
        guild_id, channel_id = self._add_guild(name, shard)
        await self.gateway.dispatch("GUILD_CREATE", guild_payload(self, guild_id))
        return guild_id, channel_id

    async def add_channel(self, name: str) -> int:
        """Add a text channel under the category (CHANNEL_CREATE to connected clients)."""
        cid = self._add_channel(name, parent_id=self.category_id)
        await self.gateway.dispatch("CHANNEL_CREATE", copy.deepcopy(self.channels[cid]))
        return cid

    async def set_overwrite(self, channel_id: int, role_id: int, *, allow: int = 0, deny: int = 0
                            ) -> None:
        """Set a role's permission overwrite on a channel (CHANNEL_UPDATE)."""
        channel = self._set_overwrite(channel_id, role_id, allow, deny)
        await self.gateway.dispatch("CHANNEL_UPDATE", copy.deepcopy(channel))

    async def add_thread(self, parent_id: int, name: str, *, owner: FakeUser | int | None = None
                         ) -> int:
        """Add an active thread (listed in GUILD_CREATE; THREAD_CREATE if connected)."""
        owner_id = self.user(owner).id if owner is not None else self.plain_user.id
        thread = self.make_thread(parent_id, name, owner_id=owner_id)
        created = {**copy.deepcopy(thread), "newly_created": True}
        await self.gateway.dispatch("THREAD_CREATE", created)
        return int(thread["id"])

    async def send_message(
        self,
        channel_id: int,
        author: FakeUser | int,
        content: str = "",
        *,
        attachments: Sequence[JSON | tuple[str, bytes] | tuple[str, bytes, str]] = (),
        mentions_bot: bool = False,
        reference_message_id: int | str | None = None,
        forward: bool = False,
    ) -> JSON:
        """A person posts a message: stored, MESSAGE_CREATE dispatched; returns that payload.

        ``attachments``: payloads from ``add_attachment_file`` or ``(filename, data[, ctype])``.
        ``mentions_bot`` prepends ``<@botid>``; ``<@id>`` in ``content`` also becomes a mention.
        A reply (``reference_message_id``) pings the replied-to author, as the Discord client
        does. ``forward=True`` forwards the referenced message instead (a FORWARD reference and
        a ``message_snapshots`` copy, pinging no one).
        """
        user = self.user(author)
        self.channel(channel_id)
        if mentions_bot and self.bot_user.mention not in content:
            content = f"{self.bot_user.mention} {content}".rstrip()
        files = [
            copy.deepcopy(a) if isinstance(a, dict)
            else self.add_attachment_file(*a, channel_id=channel_id)
            for a in attachments
        ]
        reference, pinged = None, []
        if reference_message_id is not None:
            target = self.messages[int(reference_message_id)]
            kind = 1 if forward else 0
            reference = messages.reference(self, {"message_id": reference_message_id, "type": kind})
            if not forward and (replied := self.users.get(int(target["author"]["id"]))):
                pinged.append(replied)
        msg = messages.store(
            self, channel_id, user, content, attachments=files, reference=reference,
            extra_mentions=pinged,
        )
        if forward:
            msg["message_snapshots"] = [{"message": {
                key: copy.deepcopy(target[key]) for key in (
                    "type", "content", "embeds", "attachments", "timestamp", "edited_timestamp",
                    "flags", "mentions", "mention_roles", "components")
            }}]
        payload = render(self, msg, gateway=True)
        await self.gateway.dispatch("MESSAGE_CREATE", payload)
        return payload

    async def edit_message(self, message_id: int | str, content: str, *,
                           mentions_bot: bool = False) -> JSON:
        """The author edits their message's text (``mentions_bot`` prepends ``<@botid>``):
        stored with a new ``edited_timestamp``, MESSAGE_UPDATE dispatched with the whole
        message, as Discord sends it; returns that payload."""
        msg = self.messages[int(message_id)]
        if int(msg["author"]["id"]) == self.bot_user.id:
            raise ValueError("the bot's messages are edited over REST")
        if mentions_bot and self.bot_user.mention not in content:
            content = f"{self.bot_user.mention} {content}".rstrip()
        messages.revise(self, msg, content)
        payload = render(self, msg, gateway=True)
        await self.gateway.dispatch("MESSAGE_UPDATE", payload)
        return payload

    async def add_link_preview(self, message_id: int | str, url: str) -> JSON:
        """Discord unfurls a link in a message: MESSAGE_UPDATE with an embed added and the
        text and ``edited_timestamp`` as they were; returns that payload."""
        msg = self.messages[int(message_id)]
        msg["embeds"].append({"type": "link", "url": url, "title": url})
        self.notify()
        payload = render(self, msg, gateway=True)
        await self.gateway.dispatch("MESSAGE_UPDATE", payload)
        return payload

    async def slash_command(
        self,
        channel_id: int,
        user: FakeUser | int,
        name: str,
        options: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Use a synced slash command (``"gemini system set"``) with string ``options``;
        dispatches INTERACTION_CREATE. LookupError if the command was never synced."""
        payload = interactions.slash_command(self, channel_id, user, name, options)
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def click_button(self, message_id: int | str, custom_id: str, user: FakeUser | int
                           ) -> JSON:
        """Click a button on a stored message (INTERACTION_CREATE); LookupError if none."""
        payload = interactions.click_button(self, message_id, custom_id, user)
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def submit_modal(self, custom_id: str, user: FakeUser | int, fields: Mapping[str, str]
                           ) -> JSON:
        """Submit the latest modal shown with ``custom_id`` (INTERACTION_CREATE)."""
        payload = interactions.submit_modal(self, custom_id, user, fields)
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def wait_for_interaction_response(
        self, interaction: JSON | int, within: float = 5.0
    ) -> InteractionResponse:
        """The bot's answer to ``interaction`` (its payload or id), once it has come."""
        iid = int(interaction["id"]) if isinstance(interaction, dict) else int(interaction)

        def answered() -> InteractionResponse | None:
            return next((r for r in self.interaction_responses if r.interaction_id == iid), None)

        response: InteractionResponse = await self.wait_until(answered, within)
        return response
