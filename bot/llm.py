"""The streaming model client: OpenAI chat-completions over httpx, events parsed by httpx-sse."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import httpx
from httpx_sse import EventSource, aconnect_sse
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.conversation import Usage
from bot.errors import UserFacingError

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
MAX_ERROR_CHARS = 300


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
    """One message of a chat-completions request."""

    role: Literal["system", "user", "assistant"]
    content: str | list[TextContent | ImageContent]


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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ChunkDelta(_Strict):
    """The new part of the answer in one chunk."""

    role: str | None = None
    content: str | None = None


class ChunkChoice(_Strict):
    """One choice of a chunk (a chat bot asks for one)."""

    index: int = 0
    delta: ChunkDelta = ChunkDelta()
    finish_reason: str | None = None


class CompletionTokensDetails(_Strict):
    """The breakdown of completion tokens."""

    reasoning_tokens: int | None = 0


class ChunkUsage(_Strict):
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


class ApiError(_Strict):
    """The error object of an error response or a mid-stream error event."""

    message: str = ""
    type: str | None = None
    code: int | str | None = None


class ChatChunk(_Strict):
    """One `data:` event of the stream."""

    id: str = ""
    model: str | None = None
    choices: list[ChunkChoice] = []
    usage: ChunkUsage | None = None
    error: ApiError | None = None


class ModelError(UserFacingError):
    """The model API could not give a (complete) answer; the message is for the chat."""


class ApiKeyRejected(ModelError):
    """401/403: the key is wrong, expired or not allowed this model."""


class RequestRejected(ModelError):
    """400 and other 4xx: the API refused the request and said why."""


class ModelRateLimited(ModelError):
    """429 after the allowed retries."""


class ModelUnavailable(ModelError):
    """Connection failures, timeouts and 5xx before any answer arrived."""


class StreamInterrupted(ModelError):
    """The stream stopped before `[DONE]`: cut, timed out, or an error event."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The end of a stream: how it finished, the usage, and the error that cut it if any."""

    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    error: ModelError | None = None


StreamEvent = TextDelta | StreamEnd


class _NothingReceived(Exception):
    """A failure before the first chunk, so another endpoint may be tried."""

    def __init__(self, error: ModelError) -> None:
        super().__init__(str(error))
        self.error = error


class ModelClient:
    """Streams chat completions, routing by content and retrying what may be retried."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str,
        direct_url: str,
        api_url: str,
        *,
        rate_limit_retries: int = 3,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._direct_url = direct_url.rstrip("/")
        self._api_url = api_url.rstrip("/")
        self._rate_limit_retries = rate_limit_retries
        self._max_retry_after = max_retry_after
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"ModelClient(direct={self._direct_url!r}, api={self._api_url!r})"

    def endpoints_for(self, request: ChatRequest) -> list[str]:
        """Images go to the api endpoint; text goes to direct, falling back to api."""
        if request.has_images or self._direct_url == self._api_url:
            return [self._api_url]
        return [self._direct_url, self._api_url]

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield the answer's text deltas, then exactly one StreamEnd."""
        body = request.body()
        endpoints = self.endpoints_for(request)
        for index, base in enumerate(endpoints):
            try:
                async for event in self._attempt(base, body):
                    yield event
                return
            except _NothingReceived as failure:
                if index + 1 < len(endpoints):
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
                    status = source.response.status_code
                    if status == 200:
                        async for event in self._read(source):
                            yield event
                        return
                    error, retry_after = await self._error_from(source.response)
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

    async def _read(self, source: EventSource) -> AsyncIterator[StreamEvent]:
        finish: str | None = None
        usage: Usage | None = None
        model: str | None = None
        received = False
        try:
            async for sse in source.aiter_sse():
                if sse.data == "[DONE]":
                    yield StreamEnd(finish, usage, model)
                    return
                if not sse.data:
                    continue
                try:
                    chunk = ChatChunk.model_validate_json(sse.data)
                except ValidationError:
                    log.warning("skipping a malformed stream event (%d bytes)", len(sse.data))
                    continue
                received = True
                if chunk.error is not None:
                    reason = _clip(chunk.error.message) or "no details given"
                    yield StreamEnd(finish, usage, model, StreamInterrupted(
                        f"The model API reported an error mid-answer: {reason}"
                    ))
                    return
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage.to_usage()
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except httpx.TimeoutException as exc:
            if not received:
                raise _NothingReceived(ModelUnavailable(
                    "The model API did not start answering in time. Please try again."
                )) from exc
            error: ModelError = StreamInterrupted(
                "The model stopped sending in the middle of the answer (timed out)."
            )
        except httpx.TransportError as exc:
            if not received:
                raise _NothingReceived(ModelUnavailable(
                    "The connection to the model API failed. Please try again."
                )) from exc
            error = StreamInterrupted("The connection to the model was lost mid-answer.")
        else:
            error = StreamInterrupted("The answer was cut off: the model's stream ended early.")
        yield StreamEnd(finish, usage, model, error)

    async def _error_from(self, response: httpx.Response) -> tuple[ModelError, float | None]:
        await response.aread()
        status = response.status_code
        detail = _error_detail(response)
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
        reason = f": {detail}" if detail else "."
        return RequestRejected(f"The model API refused the request (HTTP {status}){reason}"), None


def _error_detail(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return _clip(response.text.strip())
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _clip(error["message"])
        if isinstance(error, str):
            return _clip(error)
        if isinstance(payload.get("message"), str):
            return _clip(payload["message"])
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


def create_http_client(connect_timeout: float, read_timeout: float) -> httpx.AsyncClient:
    """The one shared HTTP client: connect and idle-read timeouts, no total timeout."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0,
                              pool=connect_timeout),
        limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
        follow_redirects=False,
    )
