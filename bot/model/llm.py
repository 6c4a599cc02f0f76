"""The streaming model client: OpenAI chat-completions over httpx, events parsed by httpx-sse.

The client splits the body into lines itself (httpx-sse's decoder parses them into events)
so that a misbehaving API cannot make it hold an endless line, and it bounds every answer:
its length, its total time, and the silence between two events.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import hashlib
import json
import logging
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse
from httpx_sse._decoders import SSEDecoder
from pydantic import BaseModel, ConfigDict, ValidationError

from bot import defaults
from bot.conversation import ToolCall, Usage
from bot.errors import (
    AnswerTooLong,
    AnswerTooSlow,
    ApiKeyRejected,
    MalformedStream,
    ModelError,
    ModelRateLimited,
    ModelUnavailable,
    RequestRejected,
    StreamInterrupted,
)
from bot.metrics import Metrics

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
MAX_ERROR_CHARS = 300
MAX_EVENT_BYTES = 1_000_000  # one SSE line or event; the message below says "1 MB"
MAX_ERROR_BODY_BYTES = 64 * 1024  # read of a body that is not an event stream
LOG_PREVIEW_BYTES = 200
MASK = "***"
MIN_SECRET_CHARS = 4  # shorter "secrets" would mask ordinary words
MAX_TOOL_CALLS = 16  # calls assembled from one answer; the model is told the rest were not run
MAX_CALL_ID_CHARS = 128


class TextContent(TypedDict):
    """A text part of a user message."""

    type: Literal["text"]
    text: str


class ImageURL(TypedDict):
    """Where an image part's bytes are: here always a data: URL."""

    url: str


class ImageContent(TypedDict):
    """An image part of a user message."""

    type: Literal["image_url"]
    image_url: ImageURL


class ChatMessage(TypedDict):
    """One message of a chat-completions request. An assistant message that called tools
    carries `tool_calls` (each with the fields the API sent, verbatim) and may carry fields
    of its own the bot does not know; a tool message answers the call `tool_call_id`."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[TextContent | ImageContent] | None
    tool_calls: NotRequired[list[dict[str, Any]]]
    tool_call_id: NotRequired[str]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to ask the model: the messages and the body parameters (model, temperature, ...)."""

    messages: list[ChatMessage]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def has_images(self) -> bool:
        """Whether any message carries an image part."""
        return any(
            isinstance(m["content"], list)
            and any(part["type"] == "image_url" for part in m["content"])
            for m in self.messages
        )

    def body(self) -> dict[str, Any]:
        """The JSON body of a streaming request that reports usage in its last chunk."""
        return {
            **self.parameters,
            "messages": self.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }


class _ApiObject(BaseModel):
    """An object the API sends: fields we do not know are ignored, so new ones break nothing."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ChunkDelta(_ApiObject):
    """The new part of the answer in one chunk: text, pieces of tool calls, and any fields
    we do not know (kept in `model_extra`, to be sent back verbatim)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(_ApiObject):
    """One choice of a chunk (a chat bot asks for one)."""

    index: int = 0
    delta: ChunkDelta = ChunkDelta()
    finish_reason: str | None = None


class CompletionTokensDetails(_ApiObject):
    """The breakdown of completion tokens."""

    reasoning_tokens: int | None = 0


class ChunkUsage(_ApiObject):
    """Token usage, sent in the last chunk when asked for with include_usage."""

    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    total_tokens: int | None = 0
    completion_tokens_details: CompletionTokensDetails | None = None

    def to_usage(self) -> Usage:
        """The core's usage record."""
        details = self.completion_tokens_details
        return Usage(
            prompt_tokens=self.prompt_tokens or 0,
            completion_tokens=self.completion_tokens or 0,
            reasoning_tokens=(details.reasoning_tokens or 0) if details else 0,
        )


class ApiError(_ApiObject):
    """The error object of an error response or a mid-stream error event."""

    message: str = ""
    type: str | None = None
    code: int | str | None = None


class ChatChunk(_ApiObject):
    """One `data:` event of the stream."""

    id: str = ""
    model: str | None = None
    choices: list[ChunkChoice] = []
    usage: ChunkUsage | None = None
    error: ApiError | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The end of a stream: how it finished, the usage, and the error that cut it if any.

    An answer that asks for tools ends with its `tool_calls`, and `extra` holds the fields
    of the assistant message the bot does not know; both go back to the API verbatim.
    """

    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    error: ModelError | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


StreamEvent = TextDelta | StreamEnd


class _NothingReceived(Exception):
    """A failure before the first chunk, so another endpoint may be tried."""

    def __init__(self, error: ModelError) -> None:
        super().__init__(str(error))
        self.error = error


class ModelClient:
    """Streams chat completions, routing by content and retrying what may be retried.

    Every answer is bounded: `max_answer_chars` characters, `reply_timeout` seconds from the
    first byte of the response, and at most `idle_timeout` seconds between two data events
    (keep-alive comments do not count). The API key and any `secrets` are masked in every
    error message and log line built from what the API sent.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str,
        direct_url: str,
        api_url: str,
        *,
        rate_limit_retries: int = defaults.RATE_LIMIT_RETRIES,
        max_retry_after: float = 30.0,
        max_answer_chars: int = defaults.MAX_ANSWER_CHARS,
        reply_timeout: float = defaults.REPLY_TIMEOUT,
        idle_timeout: float = defaults.READ_TIMEOUT,
        secrets: Sequence[str] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept-Encoding": "identity"}
        self._direct_url = direct_url.rstrip("/")
        self._api_url = api_url.rstrip("/")
        self._rate_limit_retries = rate_limit_retries
        self._max_retry_after = max_retry_after
        self._max_answer_chars = max_answer_chars
        self._reply_timeout = reply_timeout
        self._idle_timeout = idle_timeout
        self._secrets = sorted(
            {s for s in (api_key, *secrets) if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True
        )
        self._sleep = sleep
        self._metrics = metrics or Metrics()

    def __repr__(self) -> str:
        return f"ModelClient(direct={self._direct_url!r}, api={self._api_url!r})"

    def endpoints_for(self, request: ChatRequest) -> list[str]:
        """Images go to the api endpoint; text goes to direct, falling back to api."""
        if request.has_images or self._direct_url == self._api_url:
            return [self._api_url]
        return [self._direct_url, self._api_url]

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield the answer's text deltas, then exactly one StreamEnd (recording the time to
        the first text, the tokens, the errors and the fallbacks in the metrics)."""
        body = request.body()
        endpoints = self.endpoints_for(request)
        meter = _Meter(self._metrics)
        for index, base in enumerate(endpoints):
            endpoint = "api" if base == self._api_url else "direct"
            try:
                async for event in self._attempt(base, body):
                    meter.saw(endpoint, event)
                    yield event
                return
            except _NothingReceived as failure:
                self._metrics.model_error(endpoint, failure.error)
                if index + 1 < len(endpoints):
                    self._metrics.model_fallback()
                    log.warning("model endpoint %s failed (%s); trying %s", base,
                                failure.error, endpoints[index + 1])
                    continue
                yield StreamEnd(error=failure.error)
                return

    async def _attempt(self, base: str, body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        url = base + CHAT_PATH
        retries = 0
        while True:
            started = time.monotonic()
            try:
                async with aconnect_sse(
                    self._http, "POST", url, json=body, headers=dict(self._headers)
                ) as source:
                    response = source.response
                    status = response.status_code
                    if status == 200:
                        if _content_type(response) != "text/event-stream":
                            raise _NothingReceived(await self._not_a_stream(base, response))
                        async for event in self._read(response):
                            yield event
                        return
                    error, retry_after = await self._error_from(base, response)
            except httpx.TimeoutException as exc:
                raise _NothingReceived(ModelUnavailable(
                    "The model API did not answer in time. Please try again."
                )) from exc
            except httpx.TransportError as exc:
                raise _NothingReceived(ModelUnavailable(
                    "The model API could not be reached. Please try again in a moment."
                )) from exc
            log.info("model API %s answered %d after %.2fs", base, status,
                     time.monotonic() - started)
            if status == 429 and retries < self._rate_limit_retries:
                wait = retry_after if retry_after is not None else float(2**retries)
                if wait <= self._max_retry_after:
                    retries += 1
                    await self._sleep(wait)
                    continue
            if status >= 500:
                raise _NothingReceived(error)
            yield StreamEnd(error=error)
            return

    async def _read(self, response: httpx.Response) -> AsyncIterator[StreamEvent]:
        """Yield the text of a 200 event stream within the bot's limits, then one StreamEnd,
        after closing the response.

        A failure before the first chunk raises _NothingReceived so that another endpoint
        may be tried; the reply timeout does not: the bot's time for this answer is spent.
        """
        clock = asyncio.get_running_loop().time
        reply_deadline = clock() + self._reply_timeout
        idle_deadline = clock() + self._idle_timeout
        finish: str | None = None
        usage: Usage | None = None
        model: str | None = None
        received = False
        length = 0
        error: ModelError | None = None
        calls = _ToolCallAssembly()
        async with contextlib.aclosing(_server_sent_events(response)) as events:
            try:
                while True:
                    if clock() >= reply_deadline:
                        error = self._too_slow()
                        break
                    async with asyncio.timeout_at(min(reply_deadline, idle_deadline)):
                        sse = await anext(events, None)
                    if sse is None:
                        error = StreamInterrupted(
                            "The answer was cut off: the model's stream ended early."
                        )
                        break
                    if sse.data == "[DONE]":
                        break
                    if not sse.data:
                        continue
                    idle_deadline = clock() + self._idle_timeout
                    chunk = self._parse(sse.data)
                    if chunk is None:
                        continue
                    received = True
                    if chunk.error is not None:
                        error = self._error_event(chunk.error)
                        break
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = chunk.usage.to_usage()
                    text = ""
                    for choice in chunk.choices:
                        text += choice.delta.content or ""
                        length += calls.add(choice.delta)
                        finish = choice.finish_reason or finish
                    room = self._max_answer_chars - length
                    if len(text) > room:
                        if room:
                            yield TextDelta(text[:room])
                        error = self._too_long()
                        break
                    if text:
                        length += len(text)
                        yield TextDelta(text)
            except (TimeoutError, httpx.TimeoutException) as exc:
                if clock() >= reply_deadline:
                    error = self._too_slow()
                elif not received:
                    raise _NothingReceived(ModelUnavailable(
                        "The model API did not start answering in time. Please try again."
                    )) from exc
                else:
                    error = StreamInterrupted(
                        "The model stopped sending in the middle of the answer (timed out)."
                    )
            except httpx.TransportError as exc:
                if not received:
                    raise _NothingReceived(ModelUnavailable(
                        "The connection to the model API failed. Please try again."
                    )) from exc
                error = StreamInterrupted("The connection to the model was lost mid-answer.")
            except MalformedStream as exc:
                if not received:
                    raise _NothingReceived(exc) from exc
                error = exc
        await response.aclose()
        if error is not None:
            yield StreamEnd(finish, usage, model, error)
        else:
            yield StreamEnd(finish, usage, model, None, calls.calls(), calls.extra)

    def _too_long(self) -> AnswerTooLong:
        return AnswerTooLong(
            f"The answer passed {self._max_answer_chars:,} characters, this bot's limit, so it "
            "was cut here."
        )

    def _too_slow(self) -> AnswerTooSlow:
        return AnswerTooSlow(
            f"The answer took longer than {self._reply_timeout:g} s, this bot's limit, so it "
            "was cut here."
        )

    def _parse(self, data: str) -> ChatChunk | None:
        """The chunk of a `data:` event; None for JSON of another shape (skipped, as an API
        may add events of its own). Text that is not JSON at all ends the answer."""
        try:
            return ChatChunk.model_validate_json(data)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                log.warning("model API sent an event that is not JSON: %r", self._preview(data))
                raise MalformedStream(
                    "The model API sent an event that is not JSON; the answer was cut here."
                ) from None
            log.warning("skipping a stream event of an unknown shape (%d bytes)", len(data))
            return None

    def _error_event(self, error: ApiError) -> StreamInterrupted:
        log.warning("model API sent an error event (code %s): %r", error.code,
                    self._preview(error.message))
        reason = self._detail(error.message) or "no details given"
        return StreamInterrupted(f"The model API reported an error mid-answer: {reason}")

    async def _not_a_stream(self, base: str, response: httpx.Response) -> MalformedStream:
        """The error for a 200 whose body is an HTML page, JSON or anything but events."""
        head = await _read_head(response, MAX_ERROR_BODY_BYTES)
        status = response.status_code
        content_type = _content_type(response)
        log.warning("model API %s answered %d with %s instead of an event stream: %r", base,
                    status, content_type or "no Content-Type", self._preview(head))
        start = head.lstrip()[:1]
        if "html" in content_type or start == b"<":
            return MalformedStream(
                f"The model API answered with an HTML page instead of an answer stream "
                f"(HTTP {status})."
            )
        if "json" in content_type or start in (b"{", b"["):
            detail = self._detail(_error_detail(head))
            reason = f": {detail}" if detail else "."
            return MalformedStream(
                f"The model API answered with JSON instead of an answer stream "
                f"(HTTP {status}){reason}"
            )
        kind = content_type or "a body without a Content-Type"
        return MalformedStream(
            f"The model API answered with {kind} instead of an answer stream (HTTP {status})."
        )

    async def _error_from(
        self, base: str, response: httpx.Response
    ) -> tuple[ModelError, float | None]:
        head = await _read_head(response, MAX_ERROR_BODY_BYTES)
        status = response.status_code
        log.warning("model API %s answered %d: %r", base, status, self._preview(head))
        if status in (401, 403):
            return ApiKeyRejected(
                f"The model API key was rejected (HTTP {status}). An operator needs to "
                "check EVOLINK_API_KEY."
            ), None
        if status == 429:
            retry_after = _retry_after(response.headers.get("retry-after"))
            when = f" Try again in {retry_after:.0f} s." if retry_after else ""
            return ModelRateLimited(
                f"The model API is rate-limiting this bot right now.{when}"
            ), retry_after
        if status >= 500:
            return ModelUnavailable(
                f"The model API is having trouble (HTTP {status}). Please try again shortly."
            ), None
        detail = self._detail(_error_detail(head))
        reason = f": {detail}" if detail else "."
        return RequestRejected(f"The model API refused the request (HTTP {status}){reason}"), None

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _detail(self, text: str) -> str:
        """API text made fit for the chat: secrets masked, then clipped."""
        return _clip(self._mask(text.strip()))

    def _preview(self, raw: bytes | str) -> str:
        """The first LOG_PREVIEW_BYTES of a body or event for the log, secrets masked (a
        secret cut by the preview's end is masked too)."""
        window = raw[: LOG_PREVIEW_BYTES + max(map(len, self._secrets), default=0)]
        text = window.decode("utf-8", errors="replace") if isinstance(window, bytes) else window
        return self._mask(text)[:LOG_PREVIEW_BYTES]


class _ToolCallAssembly:
    """Tool calls put together from the pieces streamed in deltas (`delta.tool_calls[i]`
    with an `index`; the id and name once, the arguments in pieces), and the fields of the
    message and of each call the bot does not know, merged as they arrive (see `_merge`)."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}

    def add(self, delta: ChunkDelta) -> int:
        """Take one delta's pieces; return how many characters of arguments it added."""
        for name, value in (delta.model_extra or {}).items():
            if value is not None:
                _merge(self.extra, name, value)
        added = 0
        for position, piece in enumerate(delta.tool_calls or ()):
            if not isinstance(piece, dict):
                continue
            index = piece.get("index", position)
            if not isinstance(index, int) or (
                index not in self._calls and len(self._calls) >= MAX_TOOL_CALLS
            ):
                continue
            call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": "",
                                                  "extra": {}})
            function = piece.get("function")
            function = function if isinstance(function, dict) else {}
            if isinstance(piece.get("id"), str) and piece["id"] and not call["id"]:
                call["id"] = piece["id"]
            if isinstance(function.get("name"), str) and function["name"] and not call["name"]:
                call["name"] = function["name"]
            if isinstance(function.get("arguments"), str):
                call["arguments"] += function["arguments"]
                added += len(function["arguments"])
            for name, value in piece.items():
                if name not in ("index", "id", "type", "function") and value is not None:
                    _merge(call["extra"], name, value)
            for name, value in function.items():
                if name not in ("name", "arguments") and value is not None:
                    _merge(call["extra"].setdefault("function", {}), name, value)
        return added

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls, in index order; a call without an id gets one made up."""
        return tuple(
            ToolCall(_call_id(call["id"], index), call["name"], call["arguments"],
                     call["extra"])
            for index, call in sorted(self._calls.items())
        )


def _merge(into: dict[str, Any], name: str, value: Any) -> None:
    """Merge a streamed field: objects field by field, text pieces joined, others replaced."""
    current = into.get(name)
    if isinstance(current, dict) and isinstance(value, dict):
        for key, item in value.items():
            if item is not None:
                _merge(current, key, item)
    elif isinstance(current, str) and isinstance(value, str):
        into[name] = current + value
    else:
        into[name] = value


def _call_id(given: str, index: int) -> str:
    """The call's id, fit for storing (a long one becomes a hash of itself)."""
    if not given:
        return f"call_{index}"
    if len(given) <= MAX_CALL_ID_CHARS:
        return given
    return "call_" + hashlib.sha256(given.encode()).hexdigest()[:32]


class _Meter:
    """Records one request's answer in the metrics as its events pass."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._started = time.monotonic()
        self._texted = False

    def saw(self, endpoint: str, event: StreamEvent) -> None:
        """Note one event from `endpoint` ("direct" or "api")."""
        if isinstance(event, TextDelta):
            if not self._texted:
                self._texted = True
                self._metrics.model_first_token(endpoint, time.monotonic() - self._started)
            return
        if event.usage is not None:
            self._metrics.model_tokens(event.usage.prompt_tokens, event.usage.completion_tokens)
        if event.error is not None:
            self._metrics.model_error(endpoint, event.error)


class _LineSplitter:
    """Cuts a body into SSE lines (ended by CRLF, LF or CR), refusing a line or an event
    longer than `limit` bytes as soon as the bytes held pass it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._partial = bytearray()  # the start of a line whose end has not arrived
        self._event_bytes = 0  # the field lines of the event being built (not comments)
        self._after_cr = False  # the last line ended with CR: a leading LF is its CRLF

    def feed(self, data: bytes) -> list[bytes]:
        """The lines that `data` completes, without their line ends."""
        if self._after_cr and data.startswith(b"\n"):
            data = data[1:]
        self._after_cr = data.endswith(b"\r")
        lines = data.splitlines()  # bytes split at CRLF, LF and CR only
        rest = lines.pop() if lines and not data.endswith((b"\n", b"\r")) else b""
        if lines and self._partial:
            lines[0] = bytes(self._partial) + lines[0]
            self._partial.clear()
        for line in lines:
            if not line:
                self._event_bytes = 0
            elif not line.startswith(b":"):
                self._event_bytes += len(line)
            self._check(max(len(line), self._event_bytes))
        self._partial += rest
        self._check(self._event_bytes + len(self._partial))
        return lines

    def _check(self, size: int) -> None:
        if size > self._limit:
            log.warning("model API sent a line or event over %d bytes; closing the stream",
                        self._limit)
            raise MalformedStream(
                f"The model API sent an event over {self._limit / 1_000_000:g} MB; the answer "
                "was cut here."
            )


async def _server_sent_events(response: httpx.Response) -> AsyncGenerator[ServerSentEvent, None]:
    """The events of a body: our bounded lines, parsed into events by httpx-sse."""
    lines = _LineSplitter(MAX_EVENT_BYTES)
    decoder = SSEDecoder()
    async for data in response.aiter_bytes():
        for line in lines.feed(data):
            event = decoder.decode(line.decode("utf-8", errors="replace"))
            if event is not None:
                yield event


def _content_type(response: httpx.Response) -> str:
    """The media type of a response, lower-case, without its parameters ("" if none)."""
    header: str = response.headers.get("content-type", "")
    return header.partition(";")[0].strip().lower()


async def _read_head(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of a body: enough to explain it, never all of a huge one."""
    head = bytearray()
    async for data in response.aiter_bytes():
        head += data
        if len(head) >= limit:
            break
    return bytes(head[:limit])


def _error_detail(body: bytes) -> str:
    """The API's own words in an error body: its error message, or the body's text."""
    text = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(payload.get("message"), str):
            return str(payload["message"])
    return ""


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The TLS settings every HTTP client of the core uses (httpx's defaults: certifi's
    certificates, or SSL_CERT_FILE / SSL_CERT_DIR when set); one context, because each holds
    its own parsed copy of the certificates (about 0.8 MiB)."""
    return httpx.create_ssl_context()


def create_http_client(connect_timeout: float, read_timeout: float) -> httpx.AsyncClient:
    """The one shared HTTP client: connect and idle-read timeouts, no total timeout."""
    return httpx.AsyncClient(
        verify=shared_ssl_context(),
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0,
                              pool=connect_timeout),
        limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
        follow_redirects=False,
    )
