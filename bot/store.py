"""The conversation store: conversations, turns, images, channel settings, usage, events."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.conversation import (
    ChannelKey,
    ConversationKey,
    ImagePart,
    Part,
    Role,
    TextPart,
    Turn,
    TurnStatus,
    Usage,
)
from bot.errors import StoreUnavailable
from bot.parameters import ChannelSettings
from bot.schema import (
    ChannelSettingsRow,
    ConversationLeaseRow,
    ConversationRow,
    ImageRow,
    PlatformMessageRow,
    ProcessedEventRow,
    TurnRow,
    UsageRow,
    utcnow,
)
from bot.tokens import estimate_tokens

log = logging.getLogger(__name__)

CONVERSATION_CACHE_SIZE = 10_000

TURNS = cast(Table, TurnRow.__table__)
INSERT_TURN = insert(TURNS).returning(TURNS.c.id)
INSERT_USAGE = insert(cast(Table, UsageRow.__table__))
_RUNNING = (
    select(TURNS.c.id, func.sum(TURNS.c.tokens).over(order_by=TURNS.c.id.desc(), rows=(None, 0))
           .label("running"))
    .where(TURNS.c.conversation_id == bindparam("conversation"))
    .subquery()
)
FIRST_TURN_WITHIN_BUDGET = select(func.min(_RUNNING.c.id)).where(
    _RUNNING.c.running <= bindparam("budget")
)
TURNS_FROM = (
    select(TURNS)
    .where(TURNS.c.conversation_id == bindparam("conversation"),
           TURNS.c.id >= bindparam("first"))
    .order_by(TURNS.c.id)
)
SETTINGS = cast(Table, ChannelSettingsRow.__table__)
LEASES = cast(Table, ConversationLeaseRow.__table__)
SELECT_SETTINGS = select(SETTINGS.c.system_prompt, SETTINGS.c.parameters).where(
    SETTINGS.c.platform == bindparam("platform"),
    SETTINGS.c.workspace == bindparam("workspace"),
    SETTINGS.c.channel == bindparam("channel"),
)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Token totals for a channel over a period."""

    replies: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


P = ParamSpec("P")
R = TypeVar("R")


def _whole(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Let a store call finish even when its caller is cancelled (a shutdown, a Stop click).

    A transaction cut half-way can leave a connection holding SQLite's write lock; so the
    call runs to its end (bounded by the busy timeout), then the cancellation goes on.
    """

    @functools.wraps(method)
    async def whole(*args: P.args, **kwargs: P.kwargs) -> R:
        call = asyncio.ensure_future(method(*args, **kwargs))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            await asyncio.wait({call})
            if not call.cancelled() and call.exception() is not None:
                log.warning("a store call failed while its caller was cancelled: %s",
                            call.exception())
            raise

    return whole


class Store:
    """Reads and writes everything the bot remembers, on any SQLAlchemy async engine.

    Every call is one transaction that runs to its end even if the caller is cancelled.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conversation_ids: OrderedDict[ConversationKey, int] = OrderedDict()

    @property
    def shared(self) -> bool:
        """Whether several bot processes may use this database at once (not SQLite)."""
        return self._engine.dialect.name != "sqlite"

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store runs on."""
        return self._engine

    async def close(self) -> None:
        """Release every pooled connection."""
        await self._engine.dispose()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.begin() as connection:
                yield connection
        except DBAPIError as exc:
            log.error("database error: %s", exc.orig if exc.orig is not None else exc)
            raise StoreUnavailable(
                "The database is unavailable right now (it may be locked or full), so nothing "
                "was changed. Please try again in a moment."
            ) from exc

    def _insert_ignoring_duplicates(
        self, connection: AsyncConnection, table: Any, keys: Sequence[str]
    ) -> Any:
        return _upsert(connection, table).on_conflict_do_nothing(index_elements=keys)

    async def _conversation_id(
        self, connection: AsyncConnection, key: ConversationKey, *, create: bool
    ) -> int | None:
        cached = self._conversation_ids.get(key)
        if cached is not None:
            self._conversation_ids.move_to_end(key)
            return cached
        where = (
            (ConversationRow.platform == key.platform)
            & (ConversationRow.workspace == key.workspace)
            & (ConversationRow.channel == key.channel)
            & (ConversationRow.thread == key.thread)
        )
        found = await connection.scalar(select(ConversationRow.id).where(where))
        if found is None and create:
            statement = self._insert_ignoring_duplicates(
                connection, ConversationRow, ("platform", "workspace", "channel", "thread")
            ).values(
                platform=key.platform, workspace=key.workspace, channel=key.channel,
                thread=key.thread, created_at=utcnow(),
            )
            await connection.execute(statement)
            found = await connection.scalar(select(ConversationRow.id).where(where))
        if found is not None:
            self._conversation_ids[key] = found
            if len(self._conversation_ids) > CONVERSATION_CACHE_SIZE:
                self._conversation_ids.popitem(last=False)
        return found

    @_whole
    async def add_turn(self, key: ConversationKey, turn: Turn) -> int:
        """Store a turn (its images once each, its message ids, its usage); return its id."""
        async with self._transaction() as connection:
            return await self._insert_turn(connection, key, turn)

    @_whole
    async def add_question(
        self, key: ConversationKey, turn: Turn, token_budget: int, max_images: int
    ) -> tuple[ChannelSettings, list[Turn]]:
        """Store a user's turn and read what answering it needs, in one transaction.

        Returns the channel's settings and the conversation's history (see `history`), which
        ends with the turn just stored.
        """
        async with self._transaction() as connection:
            await self._insert_turn(connection, key, turn)
            settings = await self._channel_settings(connection, key.channel_key)
            conversation_id = self._conversation_ids[key]
            history = await self._history(connection, conversation_id, token_budget, max_images)
        return settings, history

    async def _insert_turn(self, connection: AsyncConnection, key: ConversationKey,
                           turn: Turn) -> int:
        conversation_id = await self._conversation_id(connection, key, create=True)
        assert conversation_id is not None
        for image in turn.images:
            await self._save_image(connection, image)
        usage = turn.usage
        turn_id = (
            await connection.execute(INSERT_TURN, {
                "conversation_id": conversation_id,
                "role": turn.role.value,
                "author_id": turn.author_id,
                "author_name": turn.author_name[:128],
                "parts": [_part_to_json(p) for p in turn.parts],
                "tokens": estimate_tokens(turn.parts),
                "status": turn.status.value,
                "error": turn.error,
                "model": turn.model,
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "completion_tokens": usage.completion_tokens if usage else None,
                "reasoning_tokens": usage.reasoning_tokens if usage else None,
                "created_at": turn.created_at,
            })
        ).scalar_one()
        await self._link_messages(connection, key.platform, conversation_id, turn_id,
                                  turn.message_ids)
        if usage is not None:
            await connection.execute(INSERT_USAGE, {
                "platform": key.platform, "workspace": key.workspace, "channel": key.channel,
                "thread": key.thread, "user_id": turn.author_id, "model": turn.model or "",
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "created_at": turn.created_at,
            })
        return int(turn_id)

    async def _link_messages(
        self, connection: AsyncConnection, platform: str, conversation_id: int, turn_id: int,
        message_ids: Iterable[str],
    ) -> None:
        rows = [
            {"platform": platform, "message_id": m, "turn_id": turn_id,
             "conversation_id": conversation_id}
            for m in dict.fromkeys(message_ids)
        ]
        if rows:
            statement = self._insert_ignoring_duplicates(
                connection, PlatformMessageRow, ("platform", "message_id")
            )
            await connection.execute(statement, rows)

    async def _save_image(self, connection: AsyncConnection, image: ImagePart) -> None:
        if image.data is None:
            return
        exists = await connection.scalar(
            select(ImageRow.sha256).where(ImageRow.sha256 == image.sha256)
        )
        if exists is None:
            statement = self._insert_ignoring_duplicates(connection, ImageRow, ("sha256",))
            await connection.execute(
                statement.values(
                    sha256=image.sha256, mime_type=image.mime_type, size=len(image.data),
                    data=image.data, created_at=utcnow(),
                )
            )

    @_whole
    async def history(
        self, key: ConversationKey, token_budget: int, max_images: int
    ) -> list[Turn]:
        """The newest whole turns whose estimated tokens fit `token_budget`, oldest first.

        Only the newest `max_images` images carry their bytes; older image parts come back
        with `data=None` for the request builder to leave out.
        """
        async with self._transaction() as connection:
            conversation_id = await self._conversation_id(connection, key, create=False)
            if conversation_id is None:
                return []
            return await self._history(connection, conversation_id, token_budget, max_images)

    async def _history(
        self, connection: AsyncConnection, conversation_id: int, token_budget: int,
        max_images: int,
    ) -> list[Turn]:
        first_id = await connection.scalar(
            FIRST_TURN_WITHIN_BUDGET, {"conversation": conversation_id, "budget": token_budget}
        )
        if first_id is None:
            return []
        rows = (
            await connection.execute(
                TURNS_FROM, {"conversation": conversation_id, "first": first_id}
            )
        ).all()
        wanted = _newest_image_hashes(rows, max_images)
        images: dict[str, bytes] = {}
        if wanted:
            found = await connection.execute(
                select(ImageRow.sha256, ImageRow.data).where(ImageRow.sha256.in_(wanted))
            )
            images = {sha: data for sha, data in found.all()}
        return [_turn_from_row(row, images) for row in rows]

    @_whole
    async def forget(self, key: ConversationKey) -> int:
        """Delete a conversation's turns (usage records stay); return how many went."""
        async with self._transaction() as connection:
            conversation_id = await self._conversation_id(connection, key, create=False)
            if conversation_id is None:
                return 0
            await connection.execute(
                delete(PlatformMessageRow).where(
                    PlatformMessageRow.conversation_id == conversation_id
                )
            )
            result = await connection.execute(
                delete(TurnRow).where(TurnRow.conversation_id == conversation_id)
            )
            return int(result.rowcount or 0)

    @_whole
    async def has_conversation(self, key: ConversationKey) -> bool:
        """Whether the bot has ever taken part in this conversation."""
        async with self._transaction() as connection:
            return await self._conversation_id(connection, key, create=False) is not None

    @_whole
    async def conversation_of_message(
        self, platform: str, message_id: str
    ) -> ConversationKey | None:
        """The conversation a platform message belongs to, if the bot stored it."""
        async with self._transaction() as connection:
            row = (
                await connection.execute(
                    select(
                        ConversationRow.platform, ConversationRow.workspace,
                        ConversationRow.channel, ConversationRow.thread,
                    )
                    .join(
                        PlatformMessageRow,
                        PlatformMessageRow.conversation_id == ConversationRow.id,
                    )
                    .where(
                        PlatformMessageRow.platform == platform,
                        PlatformMessageRow.message_id == message_id,
                    )
                )
            ).first()
        return ConversationKey(*row) if row is not None else None

    @_whole
    async def channel_settings(self, channel: ChannelKey) -> ChannelSettings:
        """The channel's settings, empty when none were ever set."""
        async with self._transaction() as connection:
            return await self._channel_settings(connection, channel)

    async def _channel_settings(
        self, connection: AsyncConnection, channel: ChannelKey
    ) -> ChannelSettings:
        row = (
            await connection.execute(SELECT_SETTINGS, {
                "platform": channel.platform, "workspace": channel.workspace,
                "channel": channel.channel,
            })
        ).first()
        if row is None:
            return ChannelSettings()
        return ChannelSettings(system_prompt=row[0], parameters=dict(row[1] or {}))

    @_whole
    async def save_channel_settings(
        self, channel: ChannelKey, settings: ChannelSettings, updated_by: str
    ) -> None:
        """Replace the channel's settings."""
        values = {
            "system_prompt": settings.system_prompt,
            "parameters": dict(settings.parameters),
            "updated_by": updated_by,
            "updated_at": utcnow(),
        }
        async with self._transaction() as connection:
            statement = _upsert(connection, ChannelSettingsRow).values(
                platform=channel.platform, workspace=channel.workspace, channel=channel.channel,
                **values,
            )
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["platform", "workspace", "channel"], set_=values
                )
            )

    @_whole
    async def usage_totals(
        self, channel: ChannelKey, since: timedelta | None = None
    ) -> UsageTotals:
        """Token totals for the channel, over all time or the last `since`."""
        query = select(
            func.count(UsageRow.id),
            func.coalesce(func.sum(UsageRow.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRow.completion_tokens), 0),
            func.coalesce(func.sum(UsageRow.reasoning_tokens), 0),
        ).where(
            UsageRow.platform == channel.platform,
            UsageRow.workspace == channel.workspace,
            UsageRow.channel == channel.channel,
        )
        if since is not None:
            query = query.where(UsageRow.created_at >= datetime.now(UTC) - since)
        async with self._transaction() as connection:
            row = (await connection.execute(query)).one()
        return UsageTotals(*(int(value) for value in row))

    @_whole
    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record an event id; False when it was already recorded (a redelivery)."""
        try:
            async with self._transaction() as connection:
                statement = self._insert_ignoring_duplicates(
                    connection, ProcessedEventRow, ("platform", "event_id")
                ).values(platform=platform, event_id=event_id, created_at=utcnow())
                result = await connection.execute(statement)
                return bool(result.rowcount)
        except IntegrityError:
            return False

    @_whole
    async def claim_lease(self, key: ConversationKey, holder: str, seconds: float) -> bool:
        """Take (or extend) the conversation's lease for `seconds`; False while another
        holder's lease has not expired."""
        now = utcnow()
        async with self._transaction() as connection:
            conversation_id = await self._conversation_id(connection, key, create=True)
            statement = _upsert(connection, LEASES).values(
                conversation_id=conversation_id, holder=holder,
                expires_at=now + timedelta(seconds=seconds),
            )
            statement = statement.on_conflict_do_update(
                index_elements=["conversation_id"],
                set_={"holder": statement.excluded.holder,
                      "expires_at": statement.excluded.expires_at},
                where=(LEASES.c.expires_at < now) | (LEASES.c.holder == holder),
            ).returning(LEASES.c.holder)
            taken = (await connection.execute(statement)).scalar_one_or_none()
        return bool(taken == holder)

    @_whole
    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        """Give the conversation's lease back, if `holder` still has it."""
        async with self._transaction() as connection:
            conversation_id = await self._conversation_id(connection, key, create=False)
            await connection.execute(
                delete(LEASES).where(LEASES.c.conversation_id == conversation_id,
                                     LEASES.c.holder == holder)
            )

    @_whole
    async def forget_events_before(self, cutoff: datetime) -> int:
        """Drop processed-event records older than `cutoff`; return how many."""
        async with self._transaction() as connection:
            result = await connection.execute(
                delete(ProcessedEventRow).where(ProcessedEventRow.created_at < cutoff)
            )
            return int(result.rowcount or 0)


def _upsert(connection: AsyncConnection, table: Any) -> Any:
    """The dialect's INSERT, which offers ON CONFLICT (SQLite and PostgreSQL only)."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect}")


def _part_to_json(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {"type": "image", "sha256": part.sha256, "mime_type": part.mime_type}


def _newest_image_hashes(rows: Sequence[Any], limit: int) -> list[str]:
    hashes: list[str] = []
    for row in reversed(rows):
        for part in reversed(row.parts):
            if part["type"] == "image" and len(hashes) < limit:
                hashes.append(part["sha256"])
    return hashes


def _turn_from_row(row: Any, images: dict[str, bytes]) -> Turn:
    turn = row
    parts: list[Part] = []
    for part in turn.parts:
        if part["type"] == "text":
            parts.append(TextPart(part["text"]))
        else:
            parts.append(
                ImagePart(part["sha256"], part["mime_type"], images.get(part["sha256"]))
            )
    usage = None
    if turn.prompt_tokens is not None:
        usage = Usage(
            turn.prompt_tokens, turn.completion_tokens or 0, turn.reasoning_tokens or 0
        )
    created = turn.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return Turn(
        role=Role(turn.role),
        parts=tuple(parts),
        author_id=turn.author_id,
        author_name=turn.author_name,
        created_at=created,
        usage=usage,
        model=turn.model,
        status=TurnStatus(turn.status),
        error=turn.error,
    )
