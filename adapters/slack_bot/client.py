"""The Slack Web API client: the configured API host, and retries that leave the methods the
adapter paces (chat.update, the stream methods, ...) alone."""

from __future__ import annotations

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.budgets import PACED_METHODS
from bot import Metrics

SLACK_API_URL = "https://slack.com/api"
RATE_LIMIT_RETRIES = 2
MAX_RETRY_AFTER = 30.0
"""The longest Retry-After the client waits out itself; a longer one reaches the renderer."""


class RetryRateLimitsExceptPaced(AsyncRateLimitErrorRetryHandler):
    """Waits out a short 429 (Retry-After up to MAX_RETRY_AFTER) and retries, except for the
    methods the adapter paces with shared workspace budgets (`budgets.PACED_METHODS`).

    A refused paced call, and any 429 asking for a longer wait, goes back to the adapter as
    RateLimited: it pauses the method's shared budget for every reply and sends the newest
    text later instead of holding the reply inside the library.
    """

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        if request.url.rstrip("/").rsplit("/", 1)[-1] in PACED_METHODS:
            return False
        if response is not None and _retry_after(response) > MAX_RETRY_AFTER:
            return False
        return await super()._can_retry_async(state=state, request=request, response=response,
                                              error=error)


def _retry_after(response: HttpResponse) -> float:
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            try:
                return float(values[0])
            except ValueError:
                return 0.0
    return 0.0


class CountCalls(AsyncRetryHandler):
    """Counts every answer to a Web API call, by method, in `metrics` (a 429 as rate
    limited); it never retries (the handlers after it decide)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=0)
        self._metrics = metrics

    async def can_retry_async(self, *, state: RetryState, request: HttpRequest,
                              response: HttpResponse | None = None,
                              error: Exception | None = None) -> bool:
        method = request.url.rstrip("/").rsplit("/", 1)[-1]
        self._metrics.platform_call("slack", method, response.status_code if response else None)
        return False


def web_client(token: str, api_url: str | None = None, *,
               metrics: Metrics | None = None) -> AsyncWebClient:
    """A client for `api_url` (SLACK_API_URL; Slack's own by default) with the bot token,
    counting its calls in `metrics` when given."""
    retries: list[AsyncRetryHandler] = [
        *([CountCalls(metrics)] if metrics is not None else []),
        AsyncConnectionErrorRetryHandler(),
        RetryRateLimitsExceptPaced(max_retry_count=RATE_LIMIT_RETRIES),
    ]
    base_url = (api_url or SLACK_API_URL).rstrip("/") + "/"
    return AsyncWebClient(token=token, base_url=base_url, retry_handlers=retries)
