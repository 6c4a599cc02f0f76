"""Limits on what one person, one channel and one process may ask of the model.

The service consults them before a model call: a per-person message rate, daily token quotas
read from stored usage, a bound on replies written at once, and a bound on messages waiting
in one conversation. Each refusal is a `LimitReached` whose message says when to try again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import defaults
from bot.conversation import Author, ConversationKey
from bot.drawing.pacing import Clock
from bot.errors import LimitReached
from bot.storage.store import Store

WallClock = Callable[[], datetime]

RATE_WINDOW = 60.0
MAX_TRACKED_PEOPLE = 100_000


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """The limits, as the operator set them (0 turns a rate or quota off)."""

    user_messages_per_minute: int = defaults.USER_MESSAGES_PER_MINUTE
    user_daily_tokens: int = 0
    channel_daily_tokens: int = 0
    max_concurrent_replies: int = defaults.MAX_CONCURRENT_REPLIES
    max_waiting_per_conversation: int = defaults.MAX_WAITING_PER_CONVERSATION


class MessageRate:
    """At most `per_minute` messages from one person in any 60 seconds (a sliding window)."""

    def __init__(self, per_minute: int, *, clock: Clock = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._told_until: dict[str, float] = {}

    def admit(self, person: str) -> None:
        """Count a message from `person`, or raise LimitReached when over the rate."""
        if self._per_minute <= 0:
            return
        now = self._clock()
        times = self._seen.get(person)
        if times is None:
            times = self._seen[person] = deque()
            if len(self._seen) > MAX_TRACKED_PEOPLE:
                forgotten, _ = self._seen.popitem(last=False)
                self._told_until.pop(forgotten, None)
        self._seen.move_to_end(person)
        while times and times[0] <= now - RATE_WINDOW:
            times.popleft()
        if len(times) >= self._per_minute:
            wait = times[0] + RATE_WINDOW - now
            quiet = self._told_until.get(person, float("-inf")) > now
            self._told_until[person] = now + wait
            raise LimitReached(
                f"You are sending me messages faster than I may answer them (the limit is "
                f"{self._per_minute} a minute). Please try again in {_seconds(wait)}.",
                quiet=quiet,
            )
        self._told_until.pop(person, None)
        times.append(now)


class Limits:
    """Every limit the service checks before asking the model."""

    def __init__(self, store: Store, settings: LimitSettings, *, clock: Clock = time.monotonic,
                 wall_clock: WallClock = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self.settings = settings
        self._rate = MessageRate(settings.user_messages_per_minute, clock=clock)
        self._wall_clock = wall_clock
        self._slots = asyncio.Semaphore(settings.max_concurrent_replies)
        self.waiting_for_slot = 0
        self.writing = 0
        self._in_conversation: dict[ConversationKey, int] = {}

    def admit_message(self, platform: str, author: Author) -> None:
        """Count a message towards its author's rate; LimitReached when over it."""
        self._rate.admit(f"{platform}:{author.id}")

    @contextmanager
    def queued(self, key: ConversationKey) -> Iterator[None]:
        """Hold a place in the conversation's queue (the answer being written plus those
        waiting); LimitReached when the queue is full."""
        count = self._in_conversation.get(key, 0)
        if count > self.settings.max_waiting_per_conversation:
            raise LimitReached(
                f"I am still answering {count} earlier messages in this conversation. Please "
                "ask again when they are done."
            )
        self._in_conversation[key] = count + 1
        try:
            yield
        finally:
            left = self._in_conversation[key] - 1
            if left:
                self._in_conversation[key] = left
            else:
                del self._in_conversation[key]

    @property
    def waiting(self) -> int:
        """Messages waiting for their turn: queued in a conversation, not yet writing."""
        return max(0, sum(self._in_conversation.values()) - self.writing)

    @asynccontextmanager
    async def reply_slot(self) -> AsyncIterator[None]:
        """Wait for one of the process's reply slots (counted in `waiting_for_slot` while
        waiting) and hold it (counted in `writing`)."""
        self.waiting_for_slot += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting_for_slot -= 1
        self.writing += 1
        try:
            yield
        finally:
            self.writing -= 1
            self._slots.release()

    def day_start(self) -> datetime:
        """The start of the current quota day (midnight UTC)."""
        return self._wall_clock().astimezone(UTC).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)

    async def check_quotas(self, key: ConversationKey, author: Author) -> None:
        """LimitReached when the author or the channel has used its tokens for today."""
        since = self.day_start()
        user_quota = self.settings.user_daily_tokens
        if user_quota and await self._store.tokens_used_by_user(
            key.platform, author.id, since
        ) >= user_quota:
            raise LimitReached(
                f"You have used your {user_quota:,} tokens for today. The quota resets at "
                f"00:00 UTC, {self._until_reset(since)}."
            )
        channel_quota = self.settings.channel_daily_tokens
        if channel_quota and await self._store.tokens_used_in_channel(
            key.channel_key, since
        ) >= channel_quota:
            raise LimitReached(
                f"This channel has used its {channel_quota:,} tokens for today. The quota "
                f"resets at 00:00 UTC, {self._until_reset(since)}."
            )

    def _until_reset(self, day_start: datetime) -> str:
        left = day_start + timedelta(days=1) - self._wall_clock()
        return f"in {_seconds(left.total_seconds())}"


def _seconds(seconds: float) -> str:
    whole = max(1, int(seconds + 0.999))
    if whole < 60:
        return f"{whole} s"
    minutes = -(-whole // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
