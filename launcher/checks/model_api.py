"""The model API check: on each base URL, the key is accepted, the model known, and a
1-token answer streams through the bot's own client."""

from __future__ import annotations

import asyncio
import time

import httpx

from bot import (
    ApiKeyRejected,
    ChatRequest,
    ConfigError,
    ModelClient,
    RequestRejected,
    StreamEnd,
    create_http_client,
)
from launcher.checks.result import Context, Result

NAME = "model API"
QUESTION = "Reply with OK."


async def check_model_api(context: Context) -> list[Result]:
    """Ask BOT_MODEL for one token at EVOLINK_DIRECT_URL and at EVOLINK_API_URL, at once."""
    settings = context.config.core
    try:
        api_key = settings.api_key()
    except ConfigError:
        return [Result.failed(NAME, "EVOLINK_API_KEY is not set",
                              "put your Evolink API key in EVOLINK_API_KEY (environment or .env)")]
    connect = min(settings.bot_connect_timeout, context.timeout)
    async with create_http_client(connect, context.timeout) as http:
        probes = (
            _probe(context, http, api_key, variable, url)
            for variable, url in (("EVOLINK_DIRECT_URL", settings.evolink_direct_url),
                                  ("EVOLINK_API_URL", settings.evolink_api_url))
        )
        return list(await asyncio.gather(*probes))


async def _probe(context: Context, http: httpx.AsyncClient, api_key: str, variable: str,
                 url: str) -> Result:
    """One streamed 1-token request to `url`, through the client the bot answers with (no
    fallback to the other URL, no retries)."""
    model = context.config.core.bot_model
    name = f"{NAME} via {variable} ({url})"
    client = ModelClient(http, api_key, url, url, rate_limit_retries=0,
                         reply_timeout=context.timeout, idle_timeout=context.timeout,
                         secrets=context.config.secrets())
    request = ChatRequest([{"role": "user", "content": QUESTION}],
                          {"model": model, "max_completion_tokens": 1})
    started = time.monotonic()
    try:
        async with asyncio.timeout(context.timeout):
            end = await _end_of(client, request)
    except TimeoutError:
        return Result.failed(name, f"no answer within {context.timeout:g} s",
                             f"check {variable} and that this machine can reach it")
    took = time.monotonic() - started
    error = end.error
    if error is None:
        return Result.passed(name, f"key accepted, {model} streamed a 1-token answer in "
                             f"{took:.2f} s")
    if isinstance(error, ApiKeyRejected):
        return Result.failed(name, "the API rejected the key in EVOLINK_API_KEY",
                             "put a valid Evolink API key in EVOLINK_API_KEY")
    if isinstance(error, RequestRejected):
        return Result.failed(name, f"a 1-token request for {model} was refused: {error}",
                             "set BOT_MODEL to a model this API offers")
    return Result.failed(name, str(error),
                         f"check {variable}, or try again if the API is having trouble")


async def _end_of(client: ModelClient, request: ChatRequest) -> StreamEnd:
    """The stream's closing event (every stream ends with exactly one)."""
    return [event async for event in client.stream(request) if isinstance(event, StreamEnd)][-1]
