"""The bot's core, platform-free: what the adapters may use is exported here, and adapters
import only from here (`from bot import Service`).

Layers, each importing only from those below it:

    app                      opens the core from settings (store, HTTP client, service)
    service, commands        one reply end to end; the /gemini commands
    limits, attachments      rates, quotas and queues; files made into turn parts
    storage/                 tables, store, migrations, one reply per conversation
    model/                   the streaming model client, requests, parameters, tokens
    drawing/                 the Surface contract, renderers, pages, edit pacing
    conversation, errors,    the shared model, every exception, defaults, settings,
    defaults, config, logs,  logging, background tasks
    background
"""

from bot.app import Core, open_core
from bot.background import BackgroundWork
from bot.commands import CommandContext, Commands
from bot.config import BaseUrl, CommaList, EnvironmentSettings, Settings, load_settings
from bot.conversation import (
    Attachment,
    Author,
    ChannelKey,
    ConversationKey,
    ImagePart,
    Incoming,
    Part,
    Role,
    TextPart,
    Turn,
    TurnStatus,
    Usage,
)
from bot.drawing.pacing import Clock, EditBudget, EditBudgets, Sleep
from bot.drawing.retry import retry_until_done
from bot.drawing.surface import StreamingSurface, Surface, SurfaceLimits, TextStream
from bot.errors import (
    ConfigError,
    DeliveryFailed,
    DownloadRefused,
    RateLimited,
    UserFacingError,
)
from bot.logs import configure_logging
from bot.model.parameters import MAX_SYSTEM_PROMPT_CHARS, PARAMETERS, Parameter
from bot.service import WARNING, ReplyOutcome, Service
from bot.storage.database import create_engine, migrate

__all__ = [
    "MAX_SYSTEM_PROMPT_CHARS",
    "PARAMETERS",
    "WARNING",
    "Attachment",
    "Author",
    "BackgroundWork",
    "BaseUrl",
    "ChannelKey",
    "Clock",
    "CommaList",
    "CommandContext",
    "Commands",
    "ConfigError",
    "ConversationKey",
    "Core",
    "DeliveryFailed",
    "DownloadRefused",
    "EditBudget",
    "EditBudgets",
    "EnvironmentSettings",
    "ImagePart",
    "Incoming",
    "Parameter",
    "Part",
    "RateLimited",
    "ReplyOutcome",
    "Role",
    "Service",
    "Settings",
    "Sleep",
    "StreamingSurface",
    "Surface",
    "SurfaceLimits",
    "TextPart",
    "TextStream",
    "Turn",
    "TurnStatus",
    "Usage",
    "UserFacingError",
    "configure_logging",
    "create_engine",
    "load_settings",
    "migrate",
    "open_core",
    "retry_until_done",
]
