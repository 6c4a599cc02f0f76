"""Stop clicks relayed between replicas through Redis, so Stop works whichever replica gets it.

A replica that is asked to stop an answer it is not writing publishes the request (a request
id, the conversation key, the clicker's id and whether they manage the channel) on one
channel that every replica listens to. Each listening replica runs the request through its
own local Stop (the same permission rule) and pushes what to tell the clicker, or null when
it writes no answer there, to a list named by the request id (expiring soon after). The
clicker's replica knows from PUBLISH how many replicas heard the request, pops that many
replies, and gives the first text; it gives up after `RELAY_WAIT` seconds.

Redis' pub/sub channels span its numbered databases, so the channel names the database: bots
sharing one Redis through different databases never hear each other. Everything read from
Redis is parsed strictly and bounded; a malformed message is logged and ignored. Redis
failing never breaks a local Stop: it is logged once per outage, and a relayed Stop then
tells the clicker it could not reach the other replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.conversation import Author, ConversationKey
from bot.drawing.pacing import Clock, Sleep
from bot.metrics import Metrics

log = logging.getLogger(__name__)

STOP_KEY_PREFIX = "gemini-bot:stop:"
RELAY_WAIT = 2.0
"""Seconds a relayed Stop waits for the replicas' replies."""
REPLY_EXPIRY_SECONDS = 10
"""Seconds a reply list lives, should its asker have gone."""
RETRY_LISTENING_AFTER = 5.0
"""Seconds between attempts to listen again after Redis failed."""
POP_SLICE = 0.5
"""The longest single BLPOP, shorter than the client's socket timeout."""
POLL_SECONDS = 0.5
"""The longest single wait for a request, shorter than the client's socket timeout (which some
redis-py versions apply to a blocking `listen()`)."""
MAX_MESSAGE_BYTES = 8192
MAX_FIELD_CHARS = 256
MAX_REPLY_CHARS = 1000
UNREACHABLE = ("I could not reach the bot's other instances to stop this answer. If it is "
               "still being written, try Stop again in a moment.")

StopHere = Callable[[ConversationKey, Author], str | None]
"""A replica's local Stop: what to tell the clicker, or None when it writes no answer there."""

_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_REQUEST_FIELDS = {"id", "key", "user", "can_configure"}

# Outcomes of a relayed Stop, as counted.
ANSWERED = "answered"
NOBODY = "nobody"
UNANSWERED = "unanswered"
FAILED = "failed"


class Malformed(ValueError):
    """A message read from Redis that is not what a replica sends."""


class StopRelay:
    """One replica's end of the relay: asks the others to stop an answer, and answers them."""

    def __init__(self, redis: Redis, *, prefix: str = STOP_KEY_PREFIX,
                 wait: float = RELAY_WAIT, metrics: Metrics | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._redis = redis
        database = redis.connection_pool.connection_kwargs.get("db", 0)
        self._prefix = f"{prefix}{database}:"
        self.channel = f"{self._prefix}requests"
        """The pub/sub channel requests go out on."""
        self._wait = wait
        self._clock = clock
        self._sleep = sleep
        self._stop_here: StopHere = lambda key, user: None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.listening = False
        """Whether this replica is subscribed now (and so answers the others)."""
        self._metrics = metrics

    def answer_with(self, stop_here: StopHere) -> None:
        """Answer the other replicas' requests with this replica's local Stop."""
        self._stop_here = stop_here

    def start(self) -> None:
        """Start listening for the other replicas' requests (in the background, retrying
        while Redis fails)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="stop relay")

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.listening = False

    async def ask(self, key: ConversationKey, user: Author) -> str | None:
        """Have the replica writing the answer in `key` stop it if `user` may; what to tell
        `user`, or None when no replica writes one there."""
        if not _fits(key, user):
            return None
        request_id = uuid.uuid4().hex
        replies = f"{self._prefix}reply:{request_id}"
        request = json.dumps({"id": request_id, "key": [key.platform, key.workspace,
                                                        key.channel, key.thread],
                              "user": user.id, "can_configure": user.can_configure})
        try:
            async with asyncio.timeout(self._wait + POP_SLICE + 1.0):
                heard = await self._redis.publish(self.channel, request)
                text, outcome = await self._first_text(replies, int(heard))
        except (RedisError, OSError) as exc:
            self._failed("relaying a Stop", exc)
            self._count(FAILED)
            return UNREACHABLE
        self._recovered()
        self._count(outcome)
        if outcome == UNANSWERED:
            log.warning("%s: a replica did not answer a relayed Stop within %.1f s", key,
                        self._wait)
        return text

    async def _first_text(self, replies: str, expected: int) -> tuple[str | None, str]:
        """Pop up to `expected` replies until one carries a text, within the wait."""
        deadline = self._clock() + self._wait
        heard = 0
        try:
            while heard < expected:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return None, UNANSWERED
                popped = await self._redis.blpop([replies], timeout=round(
                    max(0.01, min(remaining, POP_SLICE)), 3))
                if popped is None:
                    continue
                heard += 1
                try:
                    text = parse_reply(popped[1])
                except Malformed as exc:
                    log.warning("ignored a malformed reply to a relayed Stop: %s", exc)
                    continue
                if text is not None:
                    return text, ANSWERED
            return None, NOBODY
        finally:
            with contextlib.suppress(RedisError, OSError):  # else it expires soon
                await self._redis.delete(replies)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    while True:
                        message = await pubsub.get_message(timeout=POLL_SECONDS)
                        if message is not None:
                            await self._on_message(message)
            except (RedisError, OSError) as exc:
                self._failed("listening for Stop requests", exc)
            self.listening = False
            await self._sleep(RETRY_LISTENING_AFTER)

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == "subscribe":
            self.listening = True
            self._recovered()
            return
        if message.get("type") != "message":
            return
        try:
            request_id, key, user = parse_request(message.get("data"))
        except Malformed as exc:
            log.warning("ignored a malformed Stop request: %s", exc)
            return
        try:
            text = self._stop_here(key, user)
        except Exception:
            log.exception("%s: a relayed Stop failed here", key)
            return
        if text is not None:
            log.info("%s: stop request relayed by another replica answered here", key)
        reply = json.dumps({"text": None if text is None else text[:MAX_REPLY_CHARS]})
        replies = f"{self._prefix}reply:{request_id}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(replies, reply)  # queued: the pipeline sends both at once
                pipe.expire(replies, REPLY_EXPIRY_SECONDS)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed("replying to a relayed Stop", exc)

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.stop_relayed(outcome)

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self._failing:
            log.warning("stop relay: %s failed (%s); Stop reaches only the answers this "
                        "replica writes until Redis answers again", what, _describe(exc))
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            log.info("stop relay: Redis answers again; Stop reaches every replica again")
        self._failing = False


def parse_request(data: object) -> tuple[str, ConversationKey, Author]:
    """A Stop request read from Redis: its id, the conversation, and the clicker (their id
    and whether they manage the channel). Raises Malformed for anything else."""
    fields = _json_object(data)
    if set(fields) != _REQUEST_FIELDS:
        raise Malformed(f"fields {sorted(fields)[:8]!r}")
    request_id, parts, user, can_configure = (fields["id"], fields["key"], fields["user"],
                                              fields["can_configure"])
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise Malformed("a bad request id")
    if not isinstance(parts, list) or len(parts) != 4 or not all(
            _bounded(part) for part in parts):
        raise Malformed("a bad conversation key")
    if not _bounded(user) or not user:
        raise Malformed("a bad user id")
    if not isinstance(can_configure, bool):
        raise Malformed("a bad can_configure")
    return request_id, ConversationKey(*parts), Author(user, "", can_configure=can_configure)


def parse_reply(data: object) -> str | None:
    """A reply read from Redis: the text for the clicker, or None from a replica writing no
    answer there. Raises Malformed for anything else."""
    fields = _json_object(data)
    text = fields.get("text", False)
    if set(fields) != {"text"} or not (text is None or isinstance(text, str)):
        raise Malformed("not a reply")
    if text is not None and not 0 < len(text) <= MAX_REPLY_CHARS:
        raise Malformed("a reply text out of bounds")
    return text


def _json_object(data: object) -> dict[str, Any]:
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes):
        raise Malformed(f"a {type(data).__name__}, not bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise Malformed(f"{len(data)} bytes")
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Malformed("not JSON") from exc
    if not isinstance(parsed, dict):
        raise Malformed("not a JSON object")
    return parsed


def _bounded(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_FIELD_CHARS


def _fits(key: ConversationKey, user: Author) -> bool:
    """Whether a request for `key` by `user` is one the replicas accept (a key too long for
    the database cannot have an answer being written anyway)."""
    return bool(user.id) and all(_bounded(part) for part in (
        key.platform, key.workspace, key.channel, key.thread, user.id))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
