"""The bot's core, platform-free: what the adapters may use is exported here, and adapters
import only from here (`from bot import Service`).

Layers, each importing only from those below it:

    app                      opens the core from settings (store, HTTP client, service)
    service, commands        one reply end to end; the /gemini commands
    limits, attachments,     rates, quotas and queues; files made into turn parts;
    documents, tools         documents read as text; the tools the model may call
    storage/                 tables, store, migrations, one reply per conversation
    model/                   the streaming model client, requests, parameters, tokens
    drawing/                 the Surface contract, renderers, pages, edit pacing
    conversation, errors,    the shared model, every exception, defaults, settings,
    defaults, config, logs,  logging, background tasks, metrics
    background, metrics
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
from bot.drawing.pacing import Clock, EditBudget, EditBudgets, Sleep, TimedEditBudget
from bot.drawing.retry import retry_until_done
from bot.drawing.surface import (
    AnswerControlsSurface,
    StatusSurface,
    StreamingSurface,
    Surface,
    SurfaceLimits,
    TextStream,
)
from bot.errors import (
    ApiKeyRejected,
    ConfigError,
    DeliveryFailed,
    DownloadRefused,
    RateLimited,
    RequestRejected,
    UserFacingError,
)
from bot.logs import SecretMask, configure_logging, log_context
from bot.metrics import Metrics
from bot.model.llm import ChatRequest, ModelClient, StreamEnd, create_http_client
from bot.model.parameters import MAX_SYSTEM_PROMPT_CHARS, PARAMETERS, Parameter
from bot.service import WARNING, ReplyOutcome, Service
from bot.storage.database import Database, alembic_config, migrate, open_database
from bot.tools.base import ChannelMessage, ChannelReader
from bot.tools.mcp_config import McpServerConfig, load_mcp_config
from bot.tools.mcp_servers import McpServers, McpServerStatus
from bot.tools.registry import Toolbox

__all__ = [
    "MAX_SYSTEM_PROMPT_CHARS",
    "PARAMETERS",
    "WARNING",
    "AnswerControlsSurface",
    "ApiKeyRejected",
    "Attachment",
    "Author",
    "BackgroundWork",
    "BaseUrl",
    "ChannelKey",
    "ChannelMessage",
    "ChannelReader",
    "ChatRequest",
    "Clock",
    "CommaList",
    "CommandContext",
    "Commands",
    "ConfigError",
    "ConversationKey",
    "Core",
    "Database",
    "DeliveryFailed",
    "DownloadRefused",
    "EditBudget",
    "EditBudgets",
    "EnvironmentSettings",
    "ImagePart",
    "Incoming",
    "McpServerConfig",
    "McpServerStatus",
    "McpServers",
    "Metrics",
    "ModelClient",
    "Parameter",
    "Part",
    "RateLimited",
    "ReplyOutcome",
    "RequestRejected",
    "Role",
    "SecretMask",
    "Service",
    "Settings",
    "Sleep",
    "StatusSurface",
    "StreamEnd",
    "StreamingSurface",
    "Surface",
    "SurfaceLimits",
    "TextPart",
    "TextStream",
    "TimedEditBudget",
    "Toolbox",
    "Turn",
    "TurnStatus",
    "Usage",
    "UserFacingError",
    "alembic_config",
    "configure_logging",
    "create_http_client",
    "load_mcp_config",
    "load_settings",
    "log_context",
    "migrate",
    "open_core",
    "open_database",
    "retry_until_done",
]
