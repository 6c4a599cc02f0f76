"""The conversation store: conversations, turns, images, channel settings, usage, events."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.conversation import (
    ChannelKey,
    ConversationKey,
    ImagePart,
    Part,
    Role,
    TextPart,
    ToolCall,
    Turn,
    TurnStatus,
    Usage,
)
from bot.errors import StoreUnavailable
from bot.model.parameters import ChannelSettings
from bot.model.tokens import CHARS_PER_TOKEN, estimate_tokens
from bot.storage.database import Body, Database
from bot.storage.schema import (
    CHANNEL_SETTINGS,
    CONVERSATION_LEASES,
    CONVERSATIONS,
    IMAGES,
    PLATFORM_MESSAGES,
    PROCESSED_EVENTS,
    RATINGS,
    SUMMARIES,
    TURN_IMAGES,
    TURNS,
    USAGE,
    utcnow,
)

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

log = logging.getLogger(__name__)

CONVERSATION_CACHE_SIZE = 10_000
FIRST_HISTORY_PAGE = 32
"""Turns read by the first query walking a conversation back from its newest turn; each
further query reads twice as many."""
TRIMMED_RESULT_CHARS = 1_000
TRIMMED_RESULT_TOKENS = 320
"""What an earlier tool result costs in the history budget when it has to be trimmed: its
first TRIMMED_RESULT_CHARS characters and a note fit in TRIMMED_RESULT_TOKENS."""

INSERT_TURN = insert(TURNS).returning(TURNS.c.id)
INSERT_USAGE = insert(USAGE)
USAGE_TOKENS = USAGE.c.prompt_tokens + USAGE.c.completion_tokens
NEWEST_TURNS = (
    select(TURNS.c.id, TURNS.c.tokens, TURNS.c.role)
    .where(TURNS.c.conversation_id == bindparam("conversation"),
           TURNS.c.id < bindparam("before"), TURNS.c.superseded.is_(False))
    .order_by(TURNS.c.id.desc())
    .limit(bindparam("page"))
)
TURNS_FROM = (
    select(TURNS)
    .where(TURNS.c.conversation_id == bindparam("conversation"),
           TURNS.c.id >= bindparam("first"), TURNS.c.id < bindparam("before"),
           TURNS.c.superseded.is_(False))
    .order_by(TURNS.c.id)
)
ABOVE_EVERY_TURN = 2**62
"""An id greater than any turn's: no upper bound on the turns read."""
TURNS_BETWEEN = select(exists().where(
    TURNS.c.conversation_id == bindparam("conversation"), TURNS.c.id > bindparam("after"),
    TURNS.c.id < bindparam("before"), TURNS.c.superseded.is_(False),
))
UPDATE_TURN = update(TURNS).where(TURNS.c.id == bindparam("saved_turn"))
SUPERSEDE_LATER = (
    update(TURNS)
    .where(TURNS.c.conversation_id == bindparam("conversation"),
           TURNS.c.id > bindparam("question"))
    .values(superseded=True)
)
INSERT_TURN_IMAGES = insert(TURN_IMAGES)
DELETE_TURN_IMAGES = delete(TURN_IMAGES).where(TURN_IMAGES.c.turn_id == bindparam("turn"))
CONVERSATION_KEY = ("platform", "workspace", "channel", "thread")
FIND_CONVERSATION = select(CONVERSATIONS.c.id).where(
    *(CONVERSATIONS.c[column] == bindparam(column) for column in CONVERSATION_KEY)
)
CONVERSATION_OF_MESSAGE = (
    select(CONVERSATIONS.c.platform, CONVERSATIONS.c.workspace, CONVERSATIONS.c.channel,
           CONVERSATIONS.c.thread)
    .join(PLATFORM_MESSAGES, PLATFORM_MESSAGES.c.conversation_id == CONVERSATIONS.c.id)
    .where(PLATFORM_MESSAGES.c.platform == bindparam("platform"),
           PLATFORM_MESSAGES.c.message_id == bindparam("message_id"))
)
TURN_OF_MESSAGE = (
    CONVERSATION_OF_MESSAGE.add_columns(TURNS.c.id, TURNS.c.role)
    .join(TURNS, TURNS.c.id == PLATFORM_MESSAGES.c.turn_id)
)
SELECT_SUMMARY = select(
    SUMMARIES.c.text, SUMMARIES.c.tokens, SUMMARIES.c.covers_turn_id, SUMMARIES.c.updated_at
).where(SUMMARIES.c.conversation_id == bindparam("conversation"))
SELECT_SETTINGS = select(
    CHANNEL_SETTINGS.c.system_prompt, CHANNEL_SETTINGS.c.parameters, CHANNEL_SETTINGS.c.tools
).where(
    CHANNEL_SETTINGS.c.platform == bindparam("platform"),
    CHANNEL_SETTINGS.c.workspace == bindparam("workspace"),
    CHANNEL_SETTINGS.c.channel == bindparam("channel"),
)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Token totals for a channel over a period."""

    replies: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True, slots=True)
class RatingTotals:
    """A channel's ratings over a period."""

    up: int
    down: int
    answers: int


@dataclass(frozen=True, slots=True)
class Summary:
    """A conversation's running summary: the model's summary of every turn up to and
    including `covers_turn_id`, what it costs in a request (estimated), when it was written."""

    text: str
    tokens: int
    covers_turn_id: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AnswerContext:
    """What answering a question needs: the channel's settings, the conversation's summary
    and the history to send after it (the turns the summary does not cover, within what the
    budget leaves), with the ids of those turns."""

    settings: ChannelSettings
    history: list[Turn]
    summary: Summary | None = None
    turn_ids: tuple[int, ...] = ()
    fallen: bool = False
    """Whether turns the summary does not cover fell out of the history (time to fold them
    into the summary)."""


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """A stored turn as a platform message finds it: its conversation, id and role."""

    key: ConversationKey
    turn_id: int
    role: Role


@dataclass(frozen=True, slots=True)
class Exchange:
    """A conversation's newest question and the turns of its answer."""

    question_id: int
    question: Turn
    answer_ids: frozenset[int]


P = ParamSpec("P")
R = TypeVar("R")


def _unavailable(exc: DBAPIError) -> StoreUnavailable:
    """What a failed transaction tells the user (the error itself goes to the log)."""
    log.error("database error: %s", exc.orig if exc.orig is not None else exc)
    return StoreUnavailable(
        "The database is unavailable right now (it may be locked or full), so nothing "
        "was changed. Please try again in a moment."
    )


def _runs_to_completion(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
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
    """Reads and writes everything the bot remembers, in a SQLite or PostgreSQL database.

    Every call is one transaction that runs to its end even if the caller is cancelled.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._conversation_ids: OrderedDict[ConversationKey, int] = OrderedDict()

    @property
    def shared(self) -> bool:
        """Whether several bot processes may use this database at once (not SQLite)."""
        return self._database.shared

    @property
    def database(self) -> Database:
        """The database the store runs on."""
        return self._database

    async def close(self) -> None:
        """Release every pooled connection."""
        await self._database.dispose()

    async def _run(
        self, body: Body[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run the synchronous `body` as one transaction: its statements cost one hand-off
        to the database, not several each."""
        try:
            return await self._database.run(body, *args, **kwargs)
        except DBAPIError as exc:
            raise _unavailable(exc) from exc

    def _insert_ignoring_duplicates(
        self, connection: Connection, table: Any, keys: Sequence[str]
    ) -> Any:
        return _ignoring_duplicates(connection.dialect.name, table, tuple(keys))

    def _cached_id(self, key: ConversationKey) -> int | None:
        """The conversation's id if a committed transaction saw it lately."""
        cached = self._conversation_ids.get(key)
        if cached is not None:
            self._conversation_ids.move_to_end(key)
        return cached

    def _remember(self, key: ConversationKey, conversation_id: int | None) -> None:
        """Cache a conversation's id, once the transaction that read or made it committed (an
        id made by a transaction rolled back would be handed to the next new conversation)."""
        if conversation_id is None or key in self._conversation_ids:
            return
        self._conversation_ids[key] = conversation_id
        if len(self._conversation_ids) > CONVERSATION_CACHE_SIZE:
            self._conversation_ids.popitem(last=False)

    def _conversation_id(
        self, connection: Connection, key: ConversationKey, known: int | None, *, create: bool
    ) -> int | None:
        """The conversation's id (`known` if the cache had it), creating its row when
        `create` is set."""
        if known is not None:
            return known
        columns = _key_columns(key)
        found: int | None = connection.scalar(FIND_CONVERSATION, columns)
        if found is None and create:
            statement = _new_conversation(connection.dialect.name)
            found = connection.scalar(statement, {**columns, "created_at": utcnow()})
            if found is None:  # another process made it since
                found = connection.scalar(FIND_CONVERSATION, columns)
        return found

    @_runs_to_completion
    async def add_turn(self, key: ConversationKey, turn: Turn, *, billed_to: str = "") -> int:
        """Store a turn (its images once each, its message ids, its usage billed to
        `billed_to`, else to its author); return its id."""
        conversation_id, turn_id = await self._run(
            self._insert_turn, key, self._cached_id(key), turn, billed_to)
        self._remember(key, conversation_id)
        return turn_id

    @_runs_to_completion
    async def save_answer(
        self, key: ConversationKey, turn: Turn, *, turn_id: int | None, billed_to: str
    ) -> int:
        """Store an answer as it grows: the first call inserts it, later calls (with the id
        it returned) replace its text, status and message ids. Usage is recorded once, by the
        call that carries it. Returns the turn's id."""
        conversation_id, saved_id = await self._run(
            self._save_answer, key, self._cached_id(key), turn, turn_id, billed_to)
        self._remember(key, conversation_id)
        return saved_id

    def _save_answer(self, connection: Connection, key: ConversationKey, known: int | None,
                     turn: Turn, turn_id: int | None, billed_to: str) -> tuple[int, int]:
        if turn_id is None:
            return self._insert_turn(connection, key, known, turn, billed_to)
        conversation_id = self._conversation_id(connection, key, known, create=False)
        if conversation_id is None:
            raise StoreUnavailable("The conversation was forgotten while it was answered.")
        connection.execute(UPDATE_TURN, {"saved_turn": turn_id, **_turn_columns(turn)})
        self._link_messages(connection, key.platform, conversation_id, turn_id,
                            turn.message_ids)
        self._record_usage(connection, key, turn, billed_to)
        return conversation_id, turn_id

    @_runs_to_completion
    async def add_question(
        self, key: ConversationKey, turn: Turn, token_budget: int, max_images: int
    ) -> AnswerContext:
        """Store a user's turn and read what answering it needs, in one transaction: the
        channel's settings and the conversation's history (see `history`), which ends with
        the turn just stored."""
        conversation_id, context = await self._run(
            self._add_question, key, self._cached_id(key), turn, token_budget, max_images)
        self._remember(key, conversation_id)
        return context

    def _add_question(
        self, connection: Connection, key: ConversationKey, known: int | None, turn: Turn,
        token_budget: int, max_images: int,
    ) -> tuple[int, AnswerContext]:
        conversation_id, _ = self._insert_turn(connection, key, known, turn, turn.author_id)
        return conversation_id, self._answer_context(connection, key, conversation_id,
                                                     token_budget, max_images)

    @_runs_to_completion
    async def answer_again(
        self, key: ConversationKey, question_id: int, token_budget: int, max_images: int,
        *, edited: Turn | None = None,
    ) -> AnswerContext:
        """Make question `question_id` the conversation's last turn again, in one
        transaction: every later turn (its answers) is marked superseded, the question's
        content is replaced by `edited` when given, and what answering it needs is read (as
        `add_question` does)."""
        conversation_id, context = await self._run(
            self._answer_again, key, self._cached_id(key), question_id, token_budget,
            max_images, edited)
        self._remember(key, conversation_id)
        return context

    def _answer_again(
        self, connection: Connection, key: ConversationKey, known: int | None,
        question_id: int, token_budget: int, max_images: int, edited: Turn | None,
    ) -> tuple[int, AnswerContext]:
        conversation_id = self._conversation_id(connection, key, known, create=False)
        if conversation_id is None:
            raise StoreUnavailable("The conversation was forgotten meanwhile.")
        connection.execute(SUPERSEDE_LATER,
                           {"conversation": conversation_id, "question": question_id})
        if edited is not None:
            self._replace_parts(connection, question_id, edited)
        return conversation_id, self._answer_context(connection, key, conversation_id,
                                                     token_budget, max_images)

    def _replace_parts(self, connection: Connection, turn_id: int, turn: Turn) -> None:
        for image in turn.images:
            self._save_image(connection, image)
        connection.execute(UPDATE_TURN, {
            "saved_turn": turn_id, "parts": [_part_to_json(p) for p in turn.parts],
            "tokens": _turn_tokens(turn),
        })
        connection.execute(DELETE_TURN_IMAGES, {"turn": turn_id})
        _show_images(connection, turn_id, turn)

    def _answer_context(
        self, connection: Connection, key: ConversationKey, conversation_id: int,
        token_budget: int, max_images: int,
    ) -> AnswerContext:
        """The settings, the summary, and the turns it does not cover that fit what the
        budget leaves after it; when the newest turn alone leaves no room for the summary, the
        history without it."""
        settings = self._channel_settings(connection, key.channel_key)
        summary = self._summary(connection, conversation_id)
        covered = summary.covers_turn_id if summary is not None else 0
        budget = token_budget - (summary.tokens if summary is not None else 0)
        recent = self._history(connection, conversation_id, budget, max_images, after=covered)
        fallen = False
        if summary is not None and not recent:
            log.info("%s: the newest message leaves no room for the summary; sent without it",
                     key)
            summary = None
            recent = self._history(connection, conversation_id, token_budget, max_images)
        elif recent:
            fallen = self._turns_between(connection, conversation_id, covered, recent[0][0])
        return AnswerContext(settings, [turn for _, turn in recent], summary,
                             tuple(turn_id for turn_id, _ in recent), fallen)

    def _summary(self, connection: Connection, conversation_id: int) -> Summary | None:
        row = connection.execute(SELECT_SUMMARY, {"conversation": conversation_id}).first()
        if row is None:
            return None
        return Summary(row.text, int(row.tokens), int(row.covers_turn_id),
                       _aware(row.updated_at))

    def _turns_between(self, connection: Connection, conversation_id: int, after: int,
                       before: int) -> bool:
        """Whether the conversation has turns (not superseded) with ids between the two."""
        return bool(connection.scalar(
            TURNS_BETWEEN, {"conversation": conversation_id, "after": after, "before": before}))

    @_runs_to_completion
    async def turns_to_summarise(
        self, key: ConversationKey, after: int, before: int, token_budget: int
    ) -> list[tuple[int, Turn]]:
        """The turns (not superseded) with ids between `after` and `before`, the newest that
        fit `token_budget`, oldest first, with their ids: tool results trimmed as in
        `history`, images without their bytes."""
        conversation_id, turns = await self._run(
            self._turns_to_summarise, key, self._cached_id(key), after, before, token_budget)
        self._remember(key, conversation_id)
        return turns

    def _turns_to_summarise(
        self, connection: Connection, key: ConversationKey, known: int | None, after: int,
        before: int, token_budget: int,
    ) -> tuple[int | None, list[tuple[int, Turn]]]:
        conversation_id = self._conversation_id(connection, key, known, create=False)
        if conversation_id is None:
            return None, []
        return conversation_id, self._history(connection, conversation_id, token_budget, 0,
                                              after=after, before=before)

    @_runs_to_completion
    async def save_summary(
        self, key: ConversationKey, text: str, tokens: int, covers_turn_id: int, *,
        usage: Usage | None = None, model: str = "", billed_to: str = "",
    ) -> Summary | None:
        """Store the conversation's new summary of every turn up to `covers_turn_id`, and
        the `usage` of the request that wrote it (billed to `billed_to`), in one transaction.
        Returns the summary; None (its usage still recorded) when the conversation was reset
        meanwhile (no turn after `covers_turn_id` is left)."""
        spent = None if usage is None else Turn(
            role=Role.ASSISTANT, parts=(), usage=usage, model=model)
        conversation_id, summary = await self._run(
            self._save_summary, key, self._cached_id(key),
            Summary(clean(text), tokens, covers_turn_id, utcnow()), spent, billed_to)
        self._remember(key, conversation_id)
        return summary

    def _save_summary(
        self, connection: Connection, key: ConversationKey, known: int | None,
        summary: Summary, spent: Turn | None, billed_to: str,
    ) -> tuple[int | None, Summary | None]:
        conversation_id = self._conversation_id(connection, key, known, create=False)
        if spent is not None:
            self._record_usage(connection, key, spent, billed_to)
        if conversation_id is None or not connection.scalar(select(exists().where(
            TURNS.c.conversation_id == conversation_id, TURNS.c.id > summary.covers_turn_id,
        ))):
            return conversation_id, None
        values = {"text": summary.text, "tokens": summary.tokens,
                  "covers_turn_id": summary.covers_turn_id, "updated_at": summary.updated_at}
        statement = _upsert(connection, SUMMARIES).values(conversation_id=conversation_id,
                                                          **values)
        connection.execute(
            statement.on_conflict_do_update(index_elements=["conversation_id"], set_=values)
        )
        return conversation_id, summary

    @_runs_to_completion
    async def summary_of(self, key: ConversationKey) -> tuple[Summary, int] | None:
        """The conversation's summary and how many turns (not superseded) it covers, if it
        has one."""
        conversation_id, found = await self._run(self._summary_of, key, self._cached_id(key))
        self._remember(key, conversation_id)
        return found

    def _summary_of(
        self, connection: Connection, key: ConversationKey, known: int | None
    ) -> tuple[int | None, tuple[Summary, int] | None]:
        conversation_id = self._conversation_id(connection, key, known, create=False)
        summary = (None if conversation_id is None
                   else self._summary(connection, conversation_id))
        if summary is None:
            return conversation_id, None
        covered = connection.scalar(select(func.count()).where(
            TURNS.c.conversation_id == conversation_id,
            TURNS.c.id <= summary.covers_turn_id, TURNS.c.superseded.is_(False),
        ))
        return conversation_id, (summary, int(covered or 0))

    @_runs_to_completion
    async def turn_of_message(self, platform: str, message_id: str) -> StoredTurn | None:
        """The stored turn a platform message came from or shows, if any."""
        return await self._run(_turn_of_message, {
            "platform": bounded(platform, 32), "message_id": key_column(message_id, 128)})

    @_runs_to_completion
    async def latest_exchange(self, key: ConversationKey) -> Exchange | None:
        """The conversation's newest question (not superseded) and the ids of the turns
        after it (its answer's rounds), or None before the first question."""
        conversation_id, exchange = await self._run(
            self._latest_exchange, key, self._cached_id(key))
        self._remember(key, conversation_id)
        return exchange

    def _latest_exchange(
        self, connection: Connection, key: ConversationKey, known: int | None
    ) -> tuple[int | None, Exchange | None]:
        conversation_id = self._conversation_id(connection, key, known, create=False)
        if conversation_id is None:
            return None, None
        live = (TURNS.c.conversation_id == conversation_id) & TURNS.c.superseded.is_(False)
        question = connection.execute(
            select(TURNS).where(live, TURNS.c.role == Role.USER.value)
            .order_by(TURNS.c.id.desc()).limit(1)
        ).first()
        if question is None:
            return conversation_id, None
        answers = connection.execute(
            select(TURNS.c.id).where(live, TURNS.c.id > question.id)
        ).scalars()
        return conversation_id, Exchange(int(question.id), _turn_from_row(question, {}),
                                         frozenset(int(a) for a in answers))

    @_runs_to_completion
    async def rate(self, channel: ChannelKey, turn_id: int, user_id: str, value: int) -> None:
        """Store a person's rating of an answer (1 or -1), replacing their earlier one."""
        values = {"value": value, "updated_at": utcnow()}
        await self._run(_rate, {
            **_channel_columns(channel), "turn_id": turn_id, "user_id": bounded(user_id, 64),
        }, values)

    @_runs_to_completion
    async def rating_totals(self, channel: ChannelKey, since: timedelta) -> RatingTotals:
        """The channel's ratings given in the last `since`: 👍 and 👎 counts, answers rated."""
        columns = _channel_columns(channel)
        query = select(
            func.count().filter(RATINGS.c.value > 0),
            func.count().filter(RATINGS.c.value < 0),
            func.count(func.distinct(RATINGS.c.turn_id)),
        ).where(
            RATINGS.c.platform == columns["platform"],
            RATINGS.c.workspace == columns["workspace"],
            RATINGS.c.channel == columns["channel"],
            RATINGS.c.updated_at >= datetime.now(UTC) - since,
        )
        return await self._run(_rating_totals, query)

    def _insert_turn(self, connection: Connection, key: ConversationKey, known: int | None,
                     turn: Turn, billed_to: str) -> tuple[int, int]:
        conversation_id = self._conversation_id(connection, key, known, create=True)
        assert conversation_id is not None
        for image in turn.images:
            self._save_image(connection, image)
        turn_id = int((
            connection.execute(INSERT_TURN, {
                "conversation_id": conversation_id,
                "author_id": bounded(turn.author_id, 64),
                "created_at": turn.created_at,
                **_turn_columns(turn),
            })
        ).scalar_one())
        _show_images(connection, turn_id, turn)
        self._link_messages(connection, key.platform, conversation_id, turn_id,
                            turn.message_ids)
        self._record_usage(connection, key, turn, billed_to or turn.author_id)
        return conversation_id, turn_id

    def _record_usage(self, connection: Connection, key: ConversationKey, turn: Turn,
                      billed_to: str) -> None:
        usage = turn.usage
        if usage is None:
            return
        connection.execute(INSERT_USAGE, {
            **_key_columns(key), "user_id": bounded(billed_to, 64),
            "model": bounded(turn.model or "", 128),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "created_at": turn.created_at,
        })

    def _link_messages(
        self, connection: Connection, platform: str, conversation_id: int, turn_id: int,
        message_ids: Iterable[str],
    ) -> None:
        rows = [
            {"platform": bounded(platform, 32), "message_id": key_column(m, 128),
             "turn_id": turn_id, "conversation_id": conversation_id}
            for m in dict.fromkeys(message_ids)
        ]
        if rows:
            statement = self._insert_ignoring_duplicates(
                connection, PLATFORM_MESSAGES, ("platform", "message_id")
            )
            connection.execute(statement, rows)

    def _save_image(self, connection: Connection, image: ImagePart) -> None:
        if image.data is None:
            return
        exists = connection.scalar(
            select(IMAGES.c.sha256).where(IMAGES.c.sha256 == image.sha256)
        )
        if exists is None:
            statement = self._insert_ignoring_duplicates(connection, IMAGES, ("sha256",))
            connection.execute(
                statement.values(
                    sha256=image.sha256, mime_type=bounded(image.mime_type, 64),
                    size=len(image.data), data=image.data, created_at=utcnow(),
                )
            )

    @_runs_to_completion
    async def refuse_images(self, hashes: Iterable[str]) -> None:
        """Mark images the model API refused, so later requests leave them out."""
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return
        await self._run(Connection.execute,
                        update(IMAGES).where(IMAGES.c.sha256.in_(wanted)).values(refused=True))

    @_runs_to_completion
    async def history(
        self, key: ConversationKey, token_budget: int, max_images: int
    ) -> list[Turn]:
        """The newest whole turns whose estimated tokens fit `token_budget`, oldest first.

        Tool results are trimmed before turns are left out: each counts at most
        TRIMMED_RESULT_TOKENS, and the budget left over restores the newest ones to whole.
        Only the newest `max_images` images carry their bytes; older image parts, and images
        the API refused, come back with `data=None` for the request builder to leave out.
        """
        conversation_id, history = await self._run(
            self._read_history, key, self._cached_id(key), token_budget, max_images)
        self._remember(key, conversation_id)
        return history

    def _read_history(
        self, connection: Connection, key: ConversationKey, known: int | None,
        token_budget: int, max_images: int,
    ) -> tuple[int | None, list[Turn]]:
        conversation_id = self._conversation_id(connection, key, known, create=False)
        if conversation_id is None:
            return None, []
        turns = self._history(connection, conversation_id, token_budget, max_images)
        return conversation_id, [turn for _, turn in turns]

    def _history(
        self, connection: Connection, conversation_id: int, token_budget: int,
        max_images: int, *, after: int = 0, before: int = ABOVE_EVERY_TURN,
    ) -> list[tuple[int, Turn]]:
        """`history` as (id, turn) pairs, of the turns with ids between `after` and
        `before` only."""
        first_id, spent = self._first_turn_within(connection, conversation_id, token_budget,
                                                  after=after, before=before)
        if first_id is None:
            return []
        rows = connection.execute(
            TURNS_FROM, {"conversation": conversation_id, "first": first_id, "before": before}
        ).all()
        wanted = _newest_image_hashes(rows, max_images)
        images: dict[str, bytes] = {}
        if wanted:
            found = connection.execute(
                select(IMAGES.c.sha256, IMAGES.c.data)
                .where(IMAGES.c.sha256.in_(wanted), IMAGES.c.refused.is_(False))
            )
            images = {sha: data for sha, data in found.all()}
        whole = _whole_tool_results(rows, token_budget - spent)
        return [
            (int(row.id), _turn_from_row(row, images,
                                         trimmed=row.role == Role.TOOL and row.id not in whole))
            for row in rows
        ]

    def _first_turn_within(
        self, connection: Connection, conversation_id: int, token_budget: int, *,
        after: int = 0, before: int = ABOVE_EVERY_TURN,
    ) -> tuple[int | None, int]:
        """The oldest turn id of the newest run of turns before `before` and after `after`
        that fits the budget (tool results counted trimmed), and the tokens they cost: read
        newest first, a page at a time, stopping at the budget (so a long conversation costs
        what a short one does)."""
        first: int | None = None
        spent = 0
        size = FIRST_HISTORY_PAGE
        while True:
            page = connection.execute(
                NEWEST_TURNS, {"conversation": conversation_id, "before": before, "page": size}
            ).all()
            for turn_id, tokens, role in page:
                cost = _history_cost(tokens, role)
                if turn_id <= after or spent + cost > token_budget:
                    return first, spent
                spent += cost
                first = turn_id
            if len(page) < size:
                return first, spent
            before = page[-1][0]
            size *= 2

    @_runs_to_completion
    async def forget(self, key: ConversationKey) -> int:
        """Delete a conversation's turns and summary, and the images no other turn shows
        (usage records stay); return how many turns went."""
        return await self._run(self._forget, key, self._cached_id(key))

    def _forget(self, connection: Connection, key: ConversationKey, known: int | None) -> int:
        conversation_id = self._conversation_id(connection, key, known, create=False)
        if conversation_id is None:
            return 0
        turn_ids = select(TURNS.c.id).where(TURNS.c.conversation_id == conversation_id)
        shown = list(connection.execute(
            select(TURN_IMAGES.c.sha256).where(TURN_IMAGES.c.turn_id.in_(turn_ids)).distinct()
        ).scalars())
        connection.execute(
            delete(PLATFORM_MESSAGES).where(PLATFORM_MESSAGES.c.conversation_id == conversation_id)
        )
        connection.execute(delete(TURN_IMAGES).where(TURN_IMAGES.c.turn_id.in_(turn_ids)))
        connection.execute(delete(SUMMARIES).where(SUMMARIES.c.conversation_id == conversation_id))
        result = connection.execute(
            delete(TURNS).where(TURNS.c.conversation_id == conversation_id)
        )
        if shown:
            connection.execute(delete(IMAGES).where(
                IMAGES.c.sha256.in_(shown),
                ~exists().where(TURN_IMAGES.c.sha256 == IMAGES.c.sha256),
            ))
        return int(result.rowcount or 0)

    @_runs_to_completion
    async def has_conversation(self, key: ConversationKey) -> bool:
        """Whether the bot has ever taken part in this conversation."""
        if self._cached_id(key) is not None:
            return True
        conversation_id = await self._run(self._conversation_id, key, None, create=False)
        self._remember(key, conversation_id)
        return conversation_id is not None

    @_runs_to_completion
    async def conversation_of_message(
        self, platform: str, message_id: str
    ) -> ConversationKey | None:
        """The conversation a platform message belongs to, if the bot stored it."""
        return await self._run(_conversation_of_message, {
            "platform": bounded(platform, 32), "message_id": key_column(message_id, 128)})

    @_runs_to_completion
    async def channel_settings(self, channel: ChannelKey) -> ChannelSettings:
        """The channel's settings, empty when none were ever set."""
        return await self._run(self._channel_settings, channel)

    def _channel_settings(self, connection: Connection, channel: ChannelKey) -> ChannelSettings:
        row = connection.execute(SELECT_SETTINGS, _channel_columns(channel)).first()
        if row is None:
            return ChannelSettings()
        return ChannelSettings(system_prompt=row[0], parameters=dict(row[1] or {}),
                               tools=dict(row[2] or {}))

    @_runs_to_completion
    async def save_channel_settings(
        self, channel: ChannelKey, settings: ChannelSettings, updated_by: str
    ) -> None:
        """Replace the channel's settings."""
        values = {
            "system_prompt": (None if settings.system_prompt is None
                              else clean(settings.system_prompt)),
            "parameters": dict(settings.parameters),
            "tools": dict(settings.tools) or None,
            "updated_by": bounded(updated_by, 64),
            "updated_at": utcnow(),
        }
        await self._run(_save_channel_settings, _channel_columns(channel), values)

    @_runs_to_completion
    async def usage_totals(
        self, channel: ChannelKey, since: timedelta | None = None
    ) -> UsageTotals:
        """Token totals for the channel, over all time or the last `since`."""
        query = select(
            func.count(USAGE.c.id),
            func.coalesce(func.sum(USAGE.c.prompt_tokens), 0),
            func.coalesce(func.sum(USAGE.c.completion_tokens), 0),
            func.coalesce(func.sum(USAGE.c.reasoning_tokens), 0),
        ).where(*_in_channel(channel))
        if since is not None:
            query = query.where(USAGE.c.created_at >= datetime.now(UTC) - since)
        row = await self._run(_one, query)
        return UsageTotals(*(int(value) for value in row))

    @_runs_to_completion
    async def tokens_used_by_user(self, platform: str, user_id: str, since: datetime) -> int:
        """Prompt and answer tokens billed to a person on a platform since `since`."""
        query = select(func.coalesce(func.sum(USAGE_TOKENS), 0)).where(
            USAGE.c.platform == bounded(platform, 32),
            USAGE.c.user_id == bounded(user_id, 64),
            USAGE.c.created_at >= since,
        )
        return int(await self._run(Connection.scalar, query) or 0)

    @_runs_to_completion
    async def tokens_used_in_channel(self, channel: ChannelKey, since: datetime) -> int:
        """Prompt and answer tokens used in a channel since `since`."""
        query = select(func.coalesce(func.sum(USAGE_TOKENS), 0)).where(
            *_in_channel(channel), USAGE.c.created_at >= since,
        )
        return int(await self._run(Connection.scalar, query) or 0)

    @_runs_to_completion
    async def top_users(
        self, channel: ChannelKey, since: datetime, limit: int = 5
    ) -> list[tuple[str, int]]:
        """The people who used the most tokens in a channel since `since`, with their totals."""
        total = func.sum(USAGE_TOKENS).label("total")
        query = (
            select(USAGE.c.user_id, total)
            .where(*_in_channel(channel), USAGE.c.created_at >= since, USAGE.c.user_id != "")
            .group_by(USAGE.c.user_id)
            .order_by(total.desc(), USAGE.c.user_id)
            .limit(limit)
        )
        rows = await self._run(_all, query)
        return [(user, int(tokens)) for user, tokens in rows]

    @_runs_to_completion
    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record an event id; False when it was already recorded (a redelivery)."""
        row = {"platform": bounded(platform, 32), "event_id": key_column(event_id, 128),
               "created_at": utcnow()}
        try:
            return await self._run(self._claim_event, row)
        except IntegrityError:
            return False

    def _claim_event(self, connection: Connection, row: dict[str, Any]) -> bool:
        statement = self._insert_ignoring_duplicates(
            connection, PROCESSED_EVENTS, ("platform", "event_id"))
        return bool(connection.execute(statement, row).rowcount)

    @_runs_to_completion
    async def claim_lease(self, key: ConversationKey, holder: str, seconds: float,
                          now: datetime | None = None) -> bool:
        """Take (or extend) the conversation's lease for `seconds` from `now` (the current
        time by default); False while another holder's lease has not expired."""
        now = utcnow() if now is None else now
        conversation_id, taken = await self._run(
            self._claim_lease, key, self._cached_id(key), holder, now + timedelta(seconds=seconds),
            now)
        self._remember(key, conversation_id)
        return taken

    def _claim_lease(self, connection: Connection, key: ConversationKey, known: int | None,
                     holder: str, expires_at: datetime, now: datetime) -> tuple[int, bool]:
        conversation_id = self._conversation_id(connection, key, known, create=True)
        assert conversation_id is not None
        leases = CONVERSATION_LEASES
        claim = _upsert(connection, leases).values(
            conversation_id=conversation_id, holder=bounded(holder, 64), expires_at=expires_at,
        )
        taking = claim.on_conflict_do_update(
            index_elements=["conversation_id"],
            set_={"holder": claim.excluded.holder, "expires_at": claim.excluded.expires_at},
            where=(leases.c.expires_at < now) | (leases.c.holder == holder),
        ).returning(leases.c.holder)
        taken = connection.execute(taking).scalar_one_or_none()
        return conversation_id, taken == holder

    @_runs_to_completion
    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        """Give the conversation's lease back, if `holder` still has it."""
        await self._run(self._release_lease, key, self._cached_id(key), holder)

    def _release_lease(self, connection: Connection, key: ConversationKey, known: int | None,
                       holder: str) -> None:
        conversation_id = self._conversation_id(connection, key, known, create=False)
        leases = CONVERSATION_LEASES
        connection.execute(delete(leases).where(leases.c.conversation_id == conversation_id,
                                                leases.c.holder == holder))

    @_runs_to_completion
    async def forget_events_before(self, cutoff: datetime) -> int:
        """Drop processed-event records older than `cutoff`; return how many."""
        statement = delete(PROCESSED_EVENTS).where(PROCESSED_EVENTS.c.created_at < cutoff)
        return await self._run(_rowcount, statement)


@functools.cache
def _ignoring_duplicates(dialect: str, table: Any, keys: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (`keys`) DO NOTHING for the dialect, built once."""
    return _dialect_insert(dialect, table).on_conflict_do_nothing(index_elements=keys)


def _conversation_of_message(connection: Connection, message: dict[str, str]
                             ) -> ConversationKey | None:
    row = connection.execute(CONVERSATION_OF_MESSAGE, message).first()
    return ConversationKey(*row) if row is not None else None


def _turn_of_message(connection: Connection, message: dict[str, str]) -> StoredTurn | None:
    row = connection.execute(TURN_OF_MESSAGE, message).first()
    if row is None:
        return None
    return StoredTurn(ConversationKey(*row[:4]), int(row[4]), Role(row[5]))


def _show_images(connection: Connection, turn_id: int, turn: Turn) -> None:
    """Link a stored turn to the images it shows, once each."""
    hashes = dict.fromkeys(image.sha256 for image in turn.images)
    if hashes:
        connection.execute(INSERT_TURN_IMAGES, [
            {"turn_id": turn_id, "sha256": sha} for sha in hashes
        ])


def _save_channel_settings(connection: Connection, channel: dict[str, str],
                           values: dict[str, Any]) -> None:
    statement = _upsert(connection, CHANNEL_SETTINGS).values(**channel, **values)
    connection.execute(statement.on_conflict_do_update(
        index_elements=["platform", "workspace", "channel"], set_=values))


def _one(connection: Connection, query: Any) -> Row[Any]:
    return connection.execute(query).one()


def _all(connection: Connection, query: Any) -> list[Any]:
    return list(connection.execute(query).all())


def _rowcount(connection: Connection, statement: Any) -> int:
    return int(connection.execute(statement).rowcount or 0)


def _rate(connection: Connection, rating: dict[str, Any], values: dict[str, Any]) -> None:
    statement = _upsert(connection, RATINGS).values(**rating, **values)
    connection.execute(
        statement.on_conflict_do_update(index_elements=["turn_id", "user_id"], set_=values)
    )


def _rating_totals(connection: Connection, query: Any) -> RatingTotals:
    row = connection.execute(query).one()
    return RatingTotals(*(int(value or 0) for value in row))


@functools.cache
def _new_conversation(dialect: str) -> Any:
    """INSERT of a conversation returning its id (no row if another process made it)."""
    return _ignoring_duplicates(dialect, CONVERSATIONS, CONVERSATION_KEY).returning(
        CONVERSATIONS.c.id)


def _upsert(connection: Connection, table: Any) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT, which offers ON CONFLICT (SQLite and PostgreSQL only)."""
    return _dialect_insert(connection.dialect.name, table)


def _dialect_insert(dialect: str, table: Any) -> sqlite.Insert | postgresql.Insert:
    # Imported here: a process on SQLite never loads the PostgreSQL dialect (2 MB).
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect}")


def clean(text: str) -> str:
    """`text` without NUL characters, which PostgreSQL refuses in text and JSON."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def bounded(text: str, width: int) -> str:
    """Free text cleaned and clipped to a column's width (a name, a model, a user id)."""
    text = clean(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def key_column(value: str, width: int) -> str:
    """An identifier made to fit its column without colliding with another: one that is too
    long or carries NULs keeps a readable prefix and gains a hash of the whole value."""
    if len(value) <= width and "\x00" not in value:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{clean(value)[: width - 17]}#{digest}"


def _key_columns(key: ConversationKey) -> dict[str, str]:
    return {**_channel_columns(key.channel_key), "thread": key_column(key.thread, 128)}


def _channel_columns(channel: ChannelKey) -> dict[str, str]:
    return {
        "platform": key_column(channel.platform, 32),
        "workspace": key_column(channel.workspace, 64),
        "channel": key_column(channel.channel, 64),
    }


def _in_channel(channel: ChannelKey) -> tuple[Any, ...]:
    columns = _channel_columns(channel)
    return (
        USAGE.c.platform == columns["platform"],
        USAGE.c.workspace == columns["workspace"],
        USAGE.c.channel == columns["channel"],
    )


def _turn_columns(turn: Turn) -> dict[str, Any]:
    """The columns of a turn that an answer's later saves replace."""
    usage = turn.usage
    return {
        "role": turn.role.value,
        "author_name": bounded(turn.author_name, 128),
        "parts": [_part_to_json(p) for p in turn.parts],
        "tokens": _turn_tokens(turn),
        "status": turn.status.value,
        "error": None if turn.error is None else clean(turn.error),
        "model": None if turn.model is None else bounded(turn.model, 128),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
        "tool_calls": [_call_to_json(c) for c in turn.tool_calls] or None,
        "tool_call_id": None if turn.tool_call_id is None else clean(turn.tool_call_id)[:128],
        "extra": _cleaned(dict(turn.extra)) or None,
    }


def _turn_tokens(turn: Turn) -> int:
    """A turn's estimated cost in a request: its parts, and the calls and fields sent with
    an assistant message."""
    sent_with = [_call_to_json(c) for c in turn.tool_calls], dict(turn.extra)
    chars = len(json.dumps(sent_with)) if turn.tool_calls or turn.extra else 0
    return estimate_tokens(turn.parts) + -(-chars // CHARS_PER_TOKEN)


def _history_cost(tokens: int, role: str) -> int:
    """What a stored turn costs in the history budget: a tool result no more than trimmed."""
    return min(tokens, TRIMMED_RESULT_TOKENS) if role == Role.TOOL else tokens


def _whole_tool_results(rows: Sequence[Any], spare: int) -> set[int]:
    """The tool results, newest first, that the `spare` budget lets be sent whole."""
    whole: set[int] = set()
    for row in reversed(rows):
        if row.role == Role.TOOL:
            more = row.tokens - _history_cost(row.tokens, row.role)
            if more <= spare:
                spare -= more
                whole.add(row.id)
    return whole


def _trimmed(text: str) -> str:
    if len(text) <= TRIMMED_RESULT_CHARS:
        return text
    return (f"{text[:TRIMMED_RESULT_CHARS]}\n[trimmed: the result had {len(text):,} characters; "
            "only its start is kept in the history]")


def _call_to_json(call: ToolCall) -> dict[str, Any]:
    return {"id": clean(call.id), "name": clean(call.name), "arguments": clean(call.arguments),
            "extra": _cleaned(dict(call.extra))}


def _call_from_json(data: dict[str, Any]) -> ToolCall:
    return ToolCall(str(data.get("id", "")), str(data.get("name", "")),
                    str(data.get("arguments", "")), dict(data.get("extra") or {}))


def _cleaned(value: Any) -> Any:
    """A JSON value without NUL characters in its strings (PostgreSQL refuses them)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


def _part_to_json(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": clean(part.text)}
    return {"type": "image", "sha256": part.sha256, "mime_type": bounded(part.mime_type, 64)}


def _aware(moment: datetime) -> datetime:
    """A stored time in UTC (SQLite gives it back without its timezone)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _newest_image_hashes(rows: Sequence[Any], limit: int) -> list[str]:
    hashes: list[str] = []
    for row in reversed(rows):
        for part in reversed(row.parts):
            if part["type"] == "image" and len(hashes) < limit:
                hashes.append(part["sha256"])
    return hashes


def _turn_from_row(turn: Row[Any], images: dict[str, bytes], *, trimmed: bool = False) -> Turn:
    """A stored turn; images in `images` carry their bytes, and a `trimmed` tool result keeps
    only its start."""
    parts: list[Part] = []
    for part in turn.parts:
        if part["type"] == "text":
            parts.append(TextPart(_trimmed(part["text"]) if trimmed else part["text"]))
        else:
            parts.append(
                ImagePart(part["sha256"], part["mime_type"], images.get(part["sha256"]))
            )
    usage = None
    if turn.prompt_tokens is not None:
        usage = Usage(
            turn.prompt_tokens, turn.completion_tokens or 0, turn.reasoning_tokens or 0
        )
    return Turn(
        role=Role(turn.role),
        parts=tuple(parts),
        author_id=turn.author_id,
        author_name=turn.author_name,
        created_at=_aware(turn.created_at),
        usage=usage,
        model=turn.model,
        status=TurnStatus(turn.status),
        error=turn.error,
        tool_calls=tuple(_call_from_json(c) for c in turn.tool_calls or ()),
        tool_call_id=turn.tool_call_id,
        extra=dict(turn.extra or {}),
    )
