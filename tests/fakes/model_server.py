"""A scriptable fake of the Evolink OpenAI-compatible chat-completions API.

The server is a real aiohttp.web HTTP server on 127.0.0.1 that speaks Server-Sent
Events exactly like the gateway serving ``gemini-3.1-flash-lite-preview``:

    POST {base}/v1/chat/completions   Authorization: Bearer <key>
    -> 200 text/event-stream
       data: {"id": "chatcmpl-…", "object": "chat.completion.chunk", …}\\n\\n   (content)
       data: {… "finish_reason": "stop"}\\n\\n                                   (last content)
       data: {… "choices": [], "usage": {…}}\\n\\n              (if include_usage was asked)
       data: [DONE]\\n\\n

One server exposes two "hosts" by path prefix (``fake.direct_url`` and ``fake.api_url``)
so a client with a primary and a fallback base URL can be tested against one process.
Responses are written with a low-level ``StreamResponse`` so every network write is
under the test's control (split events, coalesced events, stalls, dropped connections).

What an httpx + httpx-sse client observes for each failure behaviour:

* ``Cut(graceful=False)`` (default): the TCP connection is closed in the middle of the
  chunked body; iterating ``aiter_sse()`` raises ``httpx.RemoteProtocolError``
  ("peer closed connection without sending complete message body (incomplete chunked
  read)") after the chunks that were sent.
* ``Cut(graceful=True)``: the chunked body is terminated properly; ``aiter_sse()`` simply
  ends, without a finish_reason chunk, usage chunk or ``[DONE]``.
* ``ErrorEvent``: the chunks, then ``data: {"error": {...}}``, then the body ends cleanly
  (no ``[DONE]``, like real gateways) unless ``send_done=True``.
* ``Hang``: headers (and ``after_chunks`` chunks) arrive, then nothing for ``seconds``; a
  client with a shorter read timeout gets ``httpx.ReadTimeout`` while iterating. If the
  client waits long enough the rest of the answer follows normally.
* ``HangBeforeHeaders``: no status line for ``seconds``; ``client.stream(...)`` /
  ``aconnect_sse(...)`` raises ``httpx.ReadTimeout`` on entry. Afterwards the default
  answer is streamed.

Misbehaviours of a broken gateway or model, for the client's limits:

* ``HtmlPage`` / ``JsonPage``: a 200 that is not an event stream (``aiter_sse()`` raises
  ``httpx_sse.SSEError`` on the Content-Type).
* ``NotJsonEvent``: a ``data:`` event that is not JSON in the middle of a normal answer.
* ``HugeDelta``: one content chunk of ``size`` characters (10 MB by default) in one event.
* ``LongLine``: ``size`` bytes of one ``data:`` line that never ends, then silence.
* ``Endless``: content chunks forever; ``KeepAlive``: ``: keepalive`` comments forever
  (or for ``seconds``), which reset an httpx read timeout but carry no event.

A behaviour that writes until the client leaves records the endpoint in ``hangups``
when the client closes the connection (so is a client that gave up on a ``Hang``).

Every content chunk repeats ``"role": "assistant"`` in its delta (as Gemini's
OpenAI-compatible endpoint does) and, when ``include_usage`` was asked, carries
``"usage": null`` (as OpenAI does). The ``model`` field echoes the requested model.
Non-streaming requests (``"stream"`` absent or false) get a ``chat.completion`` JSON
body for ``Reply``; every other behaviour always answers as an event stream.

``ToolCalls`` answers with function calls (see tests/fakes/tool_calls.py), and a request whose
tool messages or thought signatures do not match what the fake gave gets a 400, as from the
real API.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

from aiohttp import web

from tests.fakes.tool_calls import FakeCall, SignatureBook, ToolCalls, encoded, tool_call_chunks

MODEL = "gemini-3.1-flash-lite-preview"
Endpoint: TypeAlias = Literal["direct", "api"]
ENDPOINTS: tuple[Endpoint, ...] = ("direct", "api")

# Pause between the pieces of a split event, long enough for the reader (even one
# running in the same event loop) to receive each piece as a separate read.
SPLIT_PAUSE = 0.002

_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "Invalid API key provided."),
    403: ("permission_error", "You do not have access to this model."),
    404: ("not_found_error", "Not found."),
    429: ("rate_limit_error", "Rate limit exceeded, please retry later."),
    500: ("server_error", "Internal server error."),
    502: ("server_error", "Bad gateway."),
    503: ("server_error", "The model is overloaded. Please try again later."),
}

_WORDS = [
    "the",
    "quick",
    "model",
    "streams",
    "tokens",
    "over",
    "server",
    "sent",
    "events",
    "while",
    "the",
    "client",
    "reassembles",
    "every",
    "delta",
    "into",
    "a",
    "single",
    "answer",
    "and",
    "counts",
    "usage",
    "at",
    "the",
    "end",
]
LONG_ANSWER = " ".join(_WORDS[i % len(_WORDS)] for i in range(600)) + "."


# ---------------------------------------------------------------------------
# Behaviours
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A normal answer.

    ``text`` None and ``chunks`` None means the server's default answer. If ``chunks`` is
    given it is used verbatim (``text`` is ignored). ``usage`` is ``(prompt, completion)``
    tokens, or None to estimate from lengths (about 4 characters per token).
    ``include_usage_chunk`` False suppresses the usage-only chunk even if the request
    asked for it. ``split_writes`` writes each event in several network writes (cut in
    the middle of the JSON, inside the first multi-byte UTF-8 character if any, and
    between the two ``\\n``); ``coalesce`` > 1 puts that many
    events in one write (combined with ``split_writes`` the cuts then straddle events).
    """

    text: str | None = None
    chunks: Sequence[str] | None = None
    finish_reason: str = "stop"
    usage: tuple[int, int] | None = None
    include_usage_chunk: bool = True
    delay_between_chunks: float = 0.0
    split_writes: bool = False
    coalesce: int = 1
    split_pause: float = SPLIT_PAUSE


def Slow(text: str | None, delay_between_chunks: float) -> Reply:
    """A Reply that sleeps ``delay_between_chunks`` seconds between events."""
    return Reply(text=text, delay_between_chunks=delay_between_chunks)


@dataclass(frozen=True)
class Status:
    """A plain JSON error: ``{"error": {"message", "type", "code"}}`` with ``code`` status.

    ``retry_after`` (seconds) adds a ``Retry-After`` header; integral values are sent as
    integers, others as decimals (non-standard but handy for fast tests). ``error_code``
    defaults to the HTTP status. A scripted Status is answered even if the key is wrong.
    ``echo_key`` appends ``Key received: <the request's bearer token>`` to the message, as
    careless gateways do.
    """

    code: int
    message: str | None = None
    retry_after: float | None = None
    error_type: str | None = None
    error_code: int | str | None = None
    echo_key: bool = False


@dataclass(frozen=True)
class Cut:
    """Stream ``after_chunks`` chunks of ``text`` (no finish_reason), then end abruptly.

    ``graceful=False`` closes the TCP connection mid-body (client: RemoteProtocolError);
    ``graceful=True`` terminates the chunked body cleanly (client: stream just ends).
    """

    text: str
    after_chunks: int
    graceful: bool = False


@dataclass(frozen=True)
class ErrorEvent:
    """Stream ``after_chunks`` chunks of ``text``, then ``data: {"error": {...}}``, then end.

    The body ends cleanly after the error event; ``send_done=True`` adds ``[DONE]``.
    ``echo_key`` appends the request's bearer token to the message.
    """

    text: str
    after_chunks: int
    message: str
    code: int | str = 500
    error_type: str = "server_error"
    send_done: bool = False
    echo_key: bool = False


@dataclass(frozen=True)
class Hang:
    """Send headers and ``after_chunks`` chunks, stall ``seconds``, then finish normally.

    ``text`` None means the default answer.
    """

    seconds: float
    after_chunks: int = 0
    text: str | None = None


@dataclass(frozen=True)
class HangBeforeHeaders:
    """Stall ``seconds`` before sending the status line, then stream the default answer."""

    seconds: float


@dataclass(frozen=True)
class HtmlPage:
    """A 200 ``text/html`` page where the event stream should be (a proxy's or CDN's page)."""

    body: str = (
        "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
        "<body><h1>Checking your browser</h1></body></html>"
    )


@dataclass(frozen=True)
class JsonPage:
    """A 200 ``application/json`` body where the event stream should be.

    ``payload`` None sends the non-streamed ``chat.completion`` of the default answer (a
    gateway that ignored ``"stream": true``).
    """

    payload: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class NotJsonEvent:
    """Stream ``after_chunks`` chunks of ``text``, then ``data: <data>`` (not JSON), then the
    rest of the answer and ``[DONE]``. ``text`` None means the default answer."""

    after_chunks: int = 1
    text: str | None = None
    data: str = "<html><body>502 Bad Gateway</body></html>"


@dataclass(frozen=True)
class HugeDelta:
    """Stream the chunks of ``text``, then one chunk whose content is ``size`` characters,
    then ``[DONE]``. The event is written in one go; the client may leave during it."""

    text: str = ""
    size: int = 10_000_000


@dataclass(frozen=True)
class LongLine:
    """Stream the chunks of ``text``, then ``data: `` and ``size`` bytes with no line end,
    then nothing until the client leaves.

    ``line_bytes`` sends the ``size`` bytes instead as ``data:`` lines of that length each,
    all in one event whose closing blank line never comes.
    """

    text: str = ""
    size: int = 2_000_000
    line_bytes: int | None = None


@dataclass(frozen=True)
class Endless:
    """Content chunks of ``delta`` every ``interval`` seconds until the client leaves."""

    delta: str = "word "
    interval: float = 0.001


@dataclass(frozen=True)
class KeepAlive:
    """Stream ``after_chunks`` chunks, then a ``: keepalive`` comment every ``interval``
    seconds, for ``seconds`` (None: until the client leaves), then the rest of the answer.
    ``text`` None means the default answer."""

    after_chunks: int = 0
    text: str | None = None
    interval: float = 0.05
    seconds: float | None = None


Behaviour: TypeAlias = (
    Reply | Status | Cut | ErrorEvent | Hang | HangBeforeHeaders | HtmlPage | JsonPage
    | NotJsonEvent | HugeDelta | LongLine | Endless | KeepAlive | ToolCalls
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it (``time`` is ``time.monotonic()``)."""

    endpoint: Endpoint
    headers: Mapping[str, str]
    body: dict[str, Any]
    time: float
    raw: bytes = field(repr=False, default=b"")

    @property
    def api_key(self) -> str | None:
        """The bearer token, or None if there is no ``Authorization: Bearer`` header."""
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def message_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of text/image_url parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_text(body: Mapping[str, Any]) -> str:
    """Text of the last ``role == "user"`` message of a request body ("" if none)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return message_text(message.get("content"))
    return ""


def echo_answer(body: Mapping[str, Any]) -> str:
    """The stock default answer: ``"echo: " + last user text``."""
    return "echo: " + last_user_text(body)


def split_text(text: str, words_per_chunk: int = 2) -> list[str]:
    """Split ``text`` into deltas of a few words each, whitespace kept (``[""]`` if empty)."""
    words = re.findall(r"\s*\S+\s*", text) or [text]
    if "".join(words) != text:  # whitespace-only text
        words = [text]
    return ["".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 1
    chars = sum(len(message_text(m.get("content"))) for m in messages if isinstance(m, dict))
    return max(1, math.ceil(chars / 4))


def _error_body(status: int, message: str | None, etype: str | None, code: Any) -> dict[str, Any]:
    default_type, default_message = _ERROR_TYPES.get(status, ("api_error", "Error."))
    return {
        "error": {
            "message": message if message is not None else default_message,
            "type": etype or default_type,
            "code": code if code is not None else status,
        }
    }


def _endpoint_of(request: web.Request) -> Endpoint:
    return "direct" if request.path.startswith("/direct/") else "api"


def _with_key(message: str, request: web.Request) -> str:
    """``message`` followed by the bearer token ``request`` carried, as a careless API does."""
    auth = request.headers.get("Authorization", "")
    return f"{message} Key received: {auth.removeprefix('Bearer ')}"


def _sse(payload: Mapping[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def _cut_points(event: bytes) -> list[int]:
    """Offsets splitting ``data: {json}\\n\\n`` mid-payload and between the two newlines.

    If the event holds a multi-byte UTF-8 character, one cut also falls inside it.
    """
    payload_start = len(b"data: ")
    payload_len = len(event) - payload_start - 2
    cuts = {payload_start + max(1, payload_len // 2), len(event) - 1}
    multibyte = next((i for i, b in enumerate(event) if b >= 0xC0), None)
    if multibyte is not None:
        cuts.add(multibyte + 1)
    return sorted(cuts)


def unused_url() -> str:
    """``http://127.0.0.1:<port>/direct`` for a port nothing listens on (connect errors)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/direct"


class _Stream:
    """Builds the chunks of one streamed completion and writes them as SSE events."""

    def __init__(self, resp: web.StreamResponse, body: Mapping[str, Any]) -> None:
        self.resp = resp
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        model = body.get("model")
        self.model = model if isinstance(model, str) else MODEL
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def chunk(self, content: str, finish_reason: str | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
        }
        if self.include_usage:
            obj["usage"] = None  # as OpenAI does on every chunk but the last
        return _sse(obj)

    def usage_chunk(self, prompt: int, completion: int) -> bytes:
        return _sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            }
        )

    async def write(self, data: bytes) -> None:
        # One write() is one transport.write(); aiohttp itself waits for the socket to
        # drain when its buffer grows (StreamResponse.drain() is deprecated).
        await self.resp.write(data)

    async def write_events(
        self,
        events: Sequence[bytes],
        *,
        delay: float = 0.0,
        split: bool = False,
        coalesce: int = 1,
        pause: float = SPLIT_PAUSE,
    ) -> None:
        step = max(1, coalesce)
        for start in range(0, len(events), step):
            if start and delay:
                await asyncio.sleep(delay)
            group = events[start : start + step]
            data = b"".join(group)
            if not split:
                await self.write(data)
                continue
            cuts: list[int] = []
            offset = 0
            for event in group:
                cuts.extend(offset + c for c in _cut_points(event))
                offset += len(event)
            bounds = [0, *cuts, len(data)]
            for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
                if i:
                    await asyncio.sleep(pause)
                await self.write(data[lo:hi])


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------


class FakeModelServer:
    """Fake OpenAI-compatible chat-completions server on 127.0.0.1 (see module doc).

    ``api_key`` None disables the bearer check; a request with another key gets 401, as
    from the real API. ``long_answers`` makes the built-in default answer ``echo: …``
    followed by a ~600-word text (for benchmarks). ``models``, when set, are the models the
    API serves: a request for another gets 400 ``model_not_found`` (None: any model).
    """

    def __init__(self, api_key: str | None = "test-key", *, long_answers: bool = False,
                 models: Collection[str] | None = None) -> None:
        self.api_key = api_key
        self.long_answers = long_answers
        self.models = models
        self.default_answer: Callable[[dict[str, Any]], str] = self._builtin_answer
        self.requests: list[RecordedRequest] = []
        self.hangups: list[Endpoint] = []
        self.signatures = SignatureBook()
        self._stopping = False
        self._queues: dict[Endpoint, deque[Behaviour]] = {e: deque() for e in ENDPOINTS}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Bind an ephemeral port on 127.0.0.1 and start serving."""
        if self._runner is not None:
            return
        app = web.Application()
        for endpoint in ENDPOINTS:
            app.router.add_post(f"/{endpoint}/v1/chat/completions", self._handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._stopping = False

    async def stop(self) -> None:
        """Cancel in-flight handlers (e.g. hangs) and close the server."""
        self._stopping = True
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- addresses ----------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._port is None:
            raise RuntimeError("FakeModelServer is not started")
        return self._port

    def url(self, endpoint: Endpoint) -> str:
        """Base URL of ``endpoint``; requests go to ``{url}/v1/chat/completions``."""
        return f"http://127.0.0.1:{self.port}/{endpoint}"

    @property
    def direct_url(self) -> str:
        """Base URL of the 'direct' host."""
        return self.url("direct")

    @property
    def api_url(self) -> str:
        """Base URL of the 'api' host."""
        return self.url("api")

    # -- scripting ----------------------------------------------------------

    def script(self, endpoint: Endpoint, *behaviours: Behaviour) -> None:
        """Queue behaviours for ``endpoint``; each request pops one, then default Reply."""
        if endpoint not in self._queues:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        self._queues[endpoint].extend(behaviours)

    def pending(self, endpoint: Endpoint) -> int:
        """How many scripted behaviours are still queued for ``endpoint``."""
        return len(self._queues[endpoint])

    def requests_to(self, endpoint: Endpoint) -> list[RecordedRequest]:
        """Recorded requests that arrived at ``endpoint``."""
        return [r for r in self.requests if r.endpoint == endpoint]

    async def hung_up(self, endpoint: Endpoint, within: float = 2.0) -> bool:
        """Whether a client of ``endpoint`` closed its connection mid-answer, waiting up to
        ``within`` seconds for it."""
        deadline = time.monotonic() + within
        while endpoint not in self.hangups:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def reset(self) -> None:
        """Forget recorded requests, hang-ups and queued behaviours."""
        self.requests.clear()
        self.hangups.clear()
        for queue in self._queues.values():
            queue.clear()

    def _builtin_answer(self, body: dict[str, Any]) -> str:
        answer = echo_answer(body)
        return f"{answer} {LONG_ANSWER}" if self.long_answers else answer

    # -- request handling ---------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            return await self._serve(request)
        except asyncio.CancelledError:  # the client left (or the server is stopping)
            if not self._stopping:
                self.hangups.append(_endpoint_of(request))
            raise
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        endpoint = _endpoint_of(request)
        raw = await request.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        self.requests.append(
            RecordedRequest(endpoint, request.headers.copy(), body, time.monotonic(), raw)
        )

        queue = self._queues[endpoint]
        if queue and isinstance(head := queue[0], Status):
            queue.popleft()  # a scripted Status is answered before the key check
            return self._status(head, request)
        if self.api_key is not None and (
            request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return self._status(Status(401), request)
        if not isinstance(parsed, dict) or not isinstance(body.get("messages"), list):
            message = "Request body must be JSON with a 'messages' list."
            return self._status(Status(400, message), request)
        if self.models is not None and body.get("model") not in self.models:
            message = f"The model {body.get('model')!r} does not exist or is not available."
            return self._status(Status(400, message, error_code="model_not_found"), request)
        if (problem := self.signatures.problem(body)) is not None:
            return self._status(Status(400, problem), request)

        behaviour: Behaviour = queue.popleft() if queue else Reply()
        match behaviour:
            case Status():
                return self._status(behaviour, request)
            case Reply():
                return await self._reply(request, body, behaviour)
            case ToolCalls():
                stream = await self._open_stream(request, body)
                chunks = tool_call_chunks(stream, behaviour, self.signatures)
                await stream.write_events([*map(encoded, chunks), _sse("[DONE]")])
                await stream.resp.write_eof()
                return stream.resp
            case Cut():
                return await self._cut(request, body, behaviour)
            case ErrorEvent():
                return await self._error_event(request, body, behaviour)
            case Hang():
                return await self._hang(request, body, behaviour)
            case HangBeforeHeaders():
                await asyncio.sleep(behaviour.seconds)
                return await self._reply(request, body, Reply())
            case HtmlPage():
                return web.Response(text=behaviour.body, content_type="text/html")
            case JsonPage():
                if behaviour.payload is not None:
                    return web.json_response(dict(behaviour.payload))
                return await self._reply(request, {**body, "stream": False}, Reply())
            case NotJsonEvent():
                return await self._not_json_event(request, body, behaviour)
            case HugeDelta() | LongLine() | Endless() | KeepAlive():
                return await self._until_hangup(request, body, behaviour)

    @staticmethod
    def _status(status: Status, request: web.Request) -> web.StreamResponse:
        headers: dict[str, str] = {}
        if status.retry_after is not None:
            ra = status.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        payload = _error_body(status.code, status.message, status.error_type, status.error_code)
        if status.echo_key:
            payload["error"]["message"] = _with_key(payload["error"]["message"], request)
        return web.json_response(payload, status=status.code, headers=headers)

    async def _open_stream(self, request: web.Request, body: Mapping[str, Any]) -> _Stream:
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        await resp.prepare(request)  # StreamResponse sends headers immediately
        return _Stream(resp, body)

    def _answer_chunks(self, body: dict[str, Any], text: str | None) -> list[str]:
        return split_text(self.default_answer(body) if text is None else text)

    async def _reply(
        self, request: web.Request, body: dict[str, Any], reply: Reply
    ) -> web.StreamResponse:
        if reply.chunks is not None:
            chunks = list(reply.chunks) or [""]
        else:
            chunks = self._answer_chunks(body, reply.text)
        text = "".join(chunks)
        prompt, completion = reply.usage or (_prompt_tokens(body), _tokens(text))

        if not body.get("stream"):
            return web.json_response(
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model") or MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            )

        stream = await self._open_stream(request, body)
        last = len(chunks) - 1
        events = [
            stream.chunk(c, reply.finish_reason if i == last else None)
            for i, c in enumerate(chunks)
        ]
        if stream.include_usage and reply.include_usage_chunk:
            events.append(stream.usage_chunk(prompt, completion))
        events.append(_sse("[DONE]"))
        await stream.write_events(
            events,
            delay=reply.delay_between_chunks,
            split=reply.split_writes,
            coalesce=reply.coalesce,
            pause=reply.split_pause,
        )
        await stream.resp.write_eof()
        return stream.resp

    async def _cut(
        self, request: web.Request, body: dict[str, Any], cut: Cut
    ) -> web.StreamResponse:
        stream = await self._open_stream(request, body)
        for piece in split_text(cut.text)[: cut.after_chunks]:
            await stream.write(stream.chunk(piece))
        if cut.graceful:
            await stream.resp.write_eof()
        else:
            # Flush what was written, then FIN mid chunked body; aiohttp's own final
            # write_eof on the closed transport is swallowed by its handler.
            stream.resp.force_close()
            if request.transport is not None:
                request.transport.close()
        return stream.resp

    async def _error_event(
        self, request: web.Request, body: dict[str, Any], err: ErrorEvent
    ) -> web.StreamResponse:
        stream = await self._open_stream(request, body)
        for piece in split_text(err.text)[: err.after_chunks]:
            await stream.write(stream.chunk(piece))
        message = _with_key(err.message, request) if err.echo_key else err.message
        error = {"error": {"message": message, "type": err.error_type, "code": err.code}}
        await stream.write(_sse(error))
        if err.send_done:
            await stream.write(_sse("[DONE]"))
        await stream.resp.write_eof()
        return stream.resp

    async def _hang(
        self, request: web.Request, body: dict[str, Any], hang: Hang
    ) -> web.StreamResponse:
        chunks = self._answer_chunks(body, hang.text)
        stream = await self._open_stream(request, body)
        last = len(chunks) - 1
        events = [stream.chunk(c, "stop" if i == last else None) for i, c in enumerate(chunks)]
        if stream.include_usage:
            events.append(stream.usage_chunk(_prompt_tokens(body), _tokens("".join(chunks))))
        events.append(_sse("[DONE]"))
        split_at = min(hang.after_chunks, len(chunks))
        head, tail = events[:split_at], events[split_at:]
        await stream.write_events(head)
        await asyncio.sleep(hang.seconds)
        await stream.write_events(tail)
        await stream.resp.write_eof()
        return stream.resp

    async def _not_json_event(
        self, request: web.Request, body: dict[str, Any], bad: NotJsonEvent
    ) -> web.StreamResponse:
        chunks = self._answer_chunks(body, bad.text)
        stream = await self._open_stream(request, body)
        last = len(chunks) - 1
        events = [stream.chunk(c, "stop" if i == last else None) for i, c in enumerate(chunks)]
        events.insert(min(bad.after_chunks, len(events)), _sse(bad.data))
        events.append(_sse("[DONE]"))
        await stream.write_events(events)
        await stream.resp.write_eof()
        return stream.resp

    async def _until_hangup(
        self, request: web.Request, body: dict[str, Any],
        behaviour: HugeDelta | LongLine | Endless | KeepAlive,
    ) -> web.StreamResponse:
        """Stream a behaviour that may outlast the client; record it if the client leaves."""
        stream = await self._open_stream(request, body)
        try:
            match behaviour:
                case HugeDelta():
                    head = split_text(behaviour.text) if behaviour.text else []
                    await stream.write_events([stream.chunk(c) for c in head])
                    await stream.write(stream.chunk("x" * behaviour.size, "stop"))
                    await stream.write(_sse("[DONE]"))
                case LongLine():
                    head = split_text(behaviour.text) if behaviour.text else []
                    await stream.write_events([stream.chunk(c) for c in head])
                    piece = behaviour.line_bytes or 64 * 1024
                    if behaviour.line_bytes is None:
                        await stream.write(b"data: ")
                    for start in range(0, behaviour.size, piece):
                        data = b"x" * min(piece, behaviour.size - start)
                        await stream.write(data if behaviour.line_bytes is None
                                           else b"data: " + data + b"\n")
                    await asyncio.Event().wait()  # until the client leaves
                case Endless():
                    while True:
                        await stream.write(stream.chunk(behaviour.delta))
                        await asyncio.sleep(behaviour.interval)
                case KeepAlive():
                    chunks = self._answer_chunks(body, behaviour.text)
                    last = len(chunks) - 1
                    events = [stream.chunk(c, "stop" if i == last else None)
                              for i, c in enumerate(chunks)] + [_sse("[DONE]")]
                    await stream.write_events(events[: behaviour.after_chunks])
                    forever = behaviour.seconds is None
                    until = time.monotonic() + (behaviour.seconds or 0.0)
                    while forever or time.monotonic() < until:
                        await stream.write(b": keepalive\n\n")
                        await asyncio.sleep(behaviour.interval)
                    await stream.write_events(events[behaviour.after_chunks :])
        except ConnectionResetError:  # written to a connection the client closed
            self.hangups.append(_endpoint_of(request))
            return stream.resp
        await stream.resp.write_eof()
        return stream.resp


__all__ = [
    "ENDPOINTS",
    "LONG_ANSWER",
    "MODEL",
    "Behaviour",
    "Cut",
    "Endless",
    "Endpoint",
    "ErrorEvent",
    "FakeCall",
    "FakeModelServer",
    "Hang",
    "HangBeforeHeaders",
    "HtmlPage",
    "HugeDelta",
    "JsonPage",
    "KeepAlive",
    "LongLine",
    "NotJsonEvent",
    "RecordedRequest",
    "Reply",
    "Slow",
    "Status",
    "ToolCalls",
    "echo_answer",
    "last_user_text",
    "message_text",
    "split_text",
    "unused_url",
]
