"""Database tables (SQLAlchemy Core); portable between SQLite and PostgreSQL.

Core tables, not ORM classes: the store runs Core statements only, and a process that never
loads `sqlalchemy.orm` is about 6 MiB smaller."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def _stamp(name: str = "created_at") -> Column[datetime]:
    """A NOT NULL timestamp column set to the current time when a row is written."""
    return Column(name, DateTime(timezone=True), nullable=False, default=utcnow)


METADATA = MetaData(naming_convention=NAMING)
"""Every table, with the constraint naming convention Alembic relies on."""

CONVERSATIONS = Table(
    "conversations", METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("workspace", String(64), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("thread", String(128), nullable=False),
    _stamp(),
    UniqueConstraint("platform", "workspace", "channel", "thread"),
)
"""A thread (or DM) the bot remembers."""

TURNS = Table(
    "turns", METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("author_id", String(64), default="", nullable=False),
    Column("author_name", String(128), default="", nullable=False),
    Column("parts", JSON, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("status", String(16), default="complete", nullable=False),
    Column("error", Text),
    Column("model", String(128)),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("reasoning_tokens", Integer),
    Column("tool_calls", JSON),
    Column("tool_call_id", String(128)),
    Column("extra", JSON),
    Column("superseded", Boolean, default=False, server_default="0", nullable=False),
    _stamp(),
    Index(None, "conversation_id", "id"),
)
"""One message of a conversation; `parts` is the ordered list of text and image parts.

An assistant turn that called tools keeps the calls in `tool_calls`; a tool turn (role
"tool") is one call's result, naming the call in `tool_call_id`. `extra` holds the fields of
an assistant message the bot does not know (sent back to the API verbatim). A `superseded`
turn was replaced by a regenerated answer (or an edited question's new answer): kept, never
sent as history again."""

PLATFORM_MESSAGES = Table(
    "platform_messages", METADATA,
    Column("platform", String(32), primary_key=True),
    Column("message_id", String(128), primary_key=True),
    Column("turn_id", ForeignKey("turns.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"),
              index=True, nullable=False),
)
"""A platform message id that a turn came from or produced, for finding its conversation."""

IMAGES = Table(
    "images", METADATA,
    Column("sha256", String(64), primary_key=True),
    Column("mime_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("refused", Boolean, default=False, server_default="0", nullable=False),
    _stamp(),
)
"""An image's bytes, stored once however many turns refer to it."""

TURN_IMAGES = Table(
    "turn_images", METADATA,
    Column("turn_id", ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True),
    Column("sha256", String(64), primary_key=True, index=True),
)
"""Which turn shows which image, so images no turn refers to any more can be deleted."""

CHANNEL_SETTINGS = Table(
    "channel_settings", METADATA,
    Column("platform", String(32), primary_key=True),
    Column("workspace", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("system_prompt", Text),
    Column("parameters", JSON, default=dict, nullable=False),
    Column("tools", JSON),
    Column("updated_by", String(64), default="", nullable=False),
    _stamp("updated_at"),
)
"""A channel's system prompt, model parameters and tool switches (tool name or `SERVER__*`
to on/off)."""

USAGE = Table(
    "usage", METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("workspace", String(64), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("thread", String(128), nullable=False),
    Column("user_id", String(64), default="", nullable=False),
    Column("model", String(128), nullable=False),
    Column("prompt_tokens", Integer, default=0, nullable=False),
    Column("completion_tokens", Integer, default=0, nullable=False),
    Column("reasoning_tokens", Integer, default=0, nullable=False),
    _stamp(),
    Index(None, "platform", "workspace", "channel", "created_at"),
    Index(None, "platform", "user_id", "created_at"),
)
"""Tokens used by one reply, billed to the person who asked; kept when a conversation is
reset (quotas and `/gemini usage` read them)."""

CONVERSATION_LEASES = Table(
    "conversation_leases", METADATA,
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"),
           primary_key=True, autoincrement=False),
    Column("holder", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
"""Which bot process is answering in a conversation now, until when (several replicas)."""

PROCESSED_EVENTS = Table(
    "processed_events", METADATA,
    Column("platform", String(32), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    _stamp(),
)
"""A platform event already handled, so a redelivery gets no second answer."""

SUMMARIES = Table(
    "summaries", METADATA,
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"),
           primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("covers_turn_id", Id, nullable=False),
    _stamp("updated_at"),
)
"""A conversation's running summary: the model's summary of every turn up to and including
`covers_turn_id`, sent ahead of the newer turns that still fit the history."""

RATINGS = Table(
    "ratings", METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("workspace", String(64), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("turn_id", Id, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("value", Integer, nullable=False),
    _stamp("updated_at"),
    UniqueConstraint("turn_id", "user_id"),
    Index(None, "platform", "workspace", "channel", "updated_at"),
)
"""One person's 👍 (+1) or 👎 (-1) on one answer; kept, like usage, when a conversation is
reset (`/gemini usage` counts them per channel)."""
