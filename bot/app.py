"""Building the platform-free core from settings: store, HTTP client, model client, service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from bot.config import Settings
from bot.database import create_engine, migrate
from bot.llm import ModelClient, create_http_client
from bot.service import Service, ServiceConfig
from bot.store import Store

EVENT_MEMORY = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Core:
    """Everything adapters need from the core, opened together and closed together."""

    settings: Settings
    store: Store
    http: httpx.AsyncClient
    service: Service


def service_config(settings: Settings) -> ServiceConfig:
    """The service's defaults and limits, from the bot-wide settings."""
    return ServiceConfig(
        default_model=settings.bot_model,
        default_system_prompt=settings.bot_system_prompt,
        history_tokens=settings.bot_history_tokens,
        max_images=settings.bot_max_images,
        max_attachment_bytes=settings.bot_max_attachment_bytes,
        max_text_attachment_bytes=settings.bot_max_text_attachment_bytes,
    )


@asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    """Migrate and open the database, start the shared HTTP client, build the service."""
    api_key = settings.api_key()
    engine = create_engine(settings.database_url)
    await migrate(engine)
    store = Store(engine)
    await store.forget_events_before(datetime.now(UTC) - EVENT_MEMORY)
    http = create_http_client(settings.bot_connect_timeout, settings.bot_read_timeout)
    model = ModelClient(
        http, api_key, settings.evolink_direct_url, settings.evolink_api_url,
        rate_limit_retries=settings.bot_rate_limit_retries,
    )
    try:
        yield Core(settings, store, http, Service(store, model, service_config(settings)))
    finally:
        await http.aclose()
        await store.close()
