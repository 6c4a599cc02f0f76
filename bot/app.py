"""Building the platform-free core from settings: store, HTTP client, model client, service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from bot.config import Settings
from bot.documents import DocumentReader
from bot.drawing.pacing import EditBudgets, LocalEditBudgets, Sleep
from bot.errors import UserFacingError
from bot.limits import LimitSettings
from bot.metrics import Metrics
from bot.model.llm import ModelClient, create_http_client
from bot.service import Service, ServiceConfig
from bot.storage.database import migrate, open_database
from bot.storage.store import Store
from bot.tools.mcp_config import load_mcp_config
from bot.tools.registry import open_toolbox

if TYPE_CHECKING:  # redis is loaded only when REDIS_URL is set
    from redis.asyncio import Redis

    from bot.stop_relay import StopRelay

log = logging.getLogger(__name__)

EVENT_MEMORY = timedelta(days=7)
EVENT_PRUNE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Core:
    """Everything adapters need from the core, opened together and closed together."""

    settings: Settings
    store: Store
    http: httpx.AsyncClient
    service: Service
    redis: Redis | None = None
    metrics: Metrics = field(default_factory=Metrics)

    def edit_budgets(self, platform: str, rate: int, period: float, burst: int) -> EditBudgets:
        """Budgets for one platform's scopes (`rate` calls per `period` seconds, bursts of
        `burst`): shared by every replica through Redis when REDIS_URL is set, else this
        process's own."""
        if self.redis is None:
            return LocalEditBudgets(rate, period, burst)
        from bot.drawing.shared_budget import BUDGET_KEY_PREFIX, edit_budgets

        return edit_budgets(rate, period, burst, redis=self.redis,
                            prefix=f"{BUDGET_KEY_PREFIX}{platform}:")


def service_config(settings: Settings) -> ServiceConfig:
    """The service's defaults and limits, from the bot-wide settings."""
    return ServiceConfig(
        default_model=settings.bot_model,
        default_system_prompt=settings.bot_system_prompt,
        history_tokens=settings.bot_history_tokens,
        summary_tokens=settings.bot_summary_tokens,
        max_images=settings.bot_max_images,
        max_attachment_bytes=settings.bot_max_attachment_bytes,
        max_text_attachment_bytes=settings.bot_max_text_attachment_bytes,
        max_document_chars=settings.bot_max_document_chars,
        allowed_models=settings.allowed_models,
        max_completion_tokens=settings.bot_max_completion_tokens,
        max_request_bytes=settings.bot_max_request_bytes,
        max_tool_rounds=settings.bot_max_tool_rounds,
        tool_timeout=settings.bot_tool_timeout,
        tool_result_chars=settings.bot_tool_result_chars,
        limits=LimitSettings(
            user_messages_per_minute=settings.bot_user_messages_per_minute,
            user_daily_tokens=settings.bot_user_daily_tokens,
            channel_daily_tokens=settings.bot_channel_daily_tokens,
            max_concurrent_replies=settings.bot_max_concurrent_replies,
            max_waiting_per_conversation=settings.bot_max_waiting_per_conversation,
        ),
    )


@asynccontextmanager
async def open_core(settings: Settings, *, secrets: Iterable[str] = (),
                    metrics: Metrics | None = None) -> AsyncIterator[Core]:
    """Migrate and open the database, start the shared HTTP client, build the service.

    The model client masks the core's secrets in its errors, and `secrets` too (the
    adapters' tokens, which the launcher passes). Everything records into `metrics` (the
    launcher's, which /metrics shows; by default a registry of the core's own).
    """
    api_key = settings.api_key()
    mcp_servers = load_mcp_config(settings.bot_mcp_config) if settings.bot_mcp_config else []
    metrics = metrics or Metrics()
    database = open_database(settings.database_url)
    database.on_error(metrics.database_error)
    await migrate(database)
    store = Store(database)
    pruning = asyncio.create_task(prune_events(store))
    http = create_http_client(settings.bot_connect_timeout, settings.bot_read_timeout)
    model = ModelClient(
        http, api_key, settings.evolink_direct_url, settings.evolink_api_url,
        rate_limit_retries=settings.bot_rate_limit_retries,
        max_answer_chars=settings.bot_max_answer_chars,
        reply_timeout=settings.bot_reply_timeout,
        idle_timeout=settings.bot_read_timeout,
        secrets=[*settings.secrets(), *secrets],
        metrics=metrics,
    )
    redis = _redis_client(settings)
    tools = await open_toolbox(settings.bot_tools, allow_private=settings.bot_fetch_allow_private,
                               mcp_servers=mcp_servers, tool_timeout=settings.bot_tool_timeout,
                               documents=DocumentReader())
    stop_relay = _stop_relay(redis, metrics)
    service = Service(store, model, service_config(settings), metrics=metrics, tools=tools,
                      stop_relay=stop_relay)
    if stop_relay is not None:
        stop_relay.start()
    try:
        yield Core(settings, store, http, service, redis, metrics)
    finally:
        pruning.cancel()
        await asyncio.gather(pruning, return_exceptions=True)
        if stop_relay is not None:
            await stop_relay.close()
        await http.aclose()
        await tools.aclose()
        if redis is not None:
            await redis.aclose()
        await store.close()


def _redis_client(settings: Settings) -> Redis | None:
    """The Redis client replicas share budgets through, if REDIS_URL is set (the URL is never
    logged: it may carry a password). On PostgreSQL without Redis, say once that budgets are
    this process's own."""
    if settings.redis_url is None:
        if not settings.database_url.startswith("sqlite"):
            log.warning("REDIS_URL is not set: each replica spends the platforms' rate budgets "
                        "on its own; set REDIS_URL to share them")
        return None
    from redis.asyncio import Redis

    return Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=1,
                          socket_timeout=1)


def _stop_relay(redis: Redis | None, metrics: Metrics) -> StopRelay | None:
    """With Redis, the relay that lets a Stop clicked on any replica reach the one writing
    the answer."""
    if redis is None:
        return None
    from bot.stop_relay import StopRelay

    return StopRelay(redis, metrics=metrics)


async def prune_events(store: Store, *, every: float = EVENT_PRUNE_SECONDS,
                       sleep: Sleep = asyncio.sleep) -> None:
    """Forget processed-event records older than EVENT_MEMORY, at start-up and then every
    `every` seconds, for as long as the bot runs."""
    while True:
        try:
            removed = await store.forget_events_before(datetime.now(UTC) - EVENT_MEMORY)
            if removed:
                log.info("forgot %d processed-event records", removed)
        except UserFacingError:
            log.warning("pruning processed-event records failed; trying again later")
        await sleep(every)
