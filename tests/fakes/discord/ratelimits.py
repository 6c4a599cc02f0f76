"""Discord's rate limits on message edits (a fixed window per channel) and 429s a test asks
for, answered as Discord does: a JSON body with ``retry_after`` and ``X-RateLimit-*`` headers."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from tests.fakes.discord.models import Call, RateLimitHit
from tests.fakes.discord.state import DiscordState
from tests.fakes.discord.wire import ApiError


@dataclass(eq=False)
class _Injected:
    method: str
    path: re.Pattern[str]
    retry_after: float
    times: int


@dataclass(eq=False)
class _Bucket:
    start: float
    count: int = 0


def _too_many(retry_after: float, headers: dict[str, str]) -> ApiError:
    return ApiError(
        429,
        "You are being rate limited.",
        None,
        extra={"retry_after": retry_after, "global": False},
        headers={
            **headers,
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Scope": "user",
            "Via": "1.1 google",
        },
    )


class RateLimits:
    """``limit`` requests per ``window`` seconds per key; with ``headers`` successful requests
    carry ``X-RateLimit-Remaining`` etc., so discord.py paces itself and rarely sees a 429."""

    def __init__(self, state: DiscordState, *, limit: int | None, window: float, headers: bool
                 ) -> None:
        self.state = state
        self.limit = limit
        self.window = window
        self.headers = headers
        self._buckets: dict[str, _Bucket] = {}
        self._injected: list[_Injected] = []

    def inject(self, method: str, path_pattern: str, retry_after: float, times: int) -> None:
        self._injected.append(_Injected(method, re.compile(path_pattern), retry_after, times))

    def check_injected(self, call: Call) -> None:
        """Answer ``call`` with 429 if a test asked for it (see FakeDiscord.rate_limit_next)."""
        for injected in self._injected:
            if injected.method == call.method and injected.path.fullmatch(call.path):
                injected.times -= 1
                if injected.times <= 0:
                    self._injected.remove(injected)
                hit = RateLimitHit(call.method, call.path, injected.retry_after)
                self.state.rate_limited.append(hit)
                raise _too_many(injected.retry_after, {})

    def count(self, key: str, call: Call) -> dict[str, str]:
        """Count one request in ``key``'s window: the headers to send, or a 429 if over."""
        if self.limit is None:
            return {}
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.start + self.window - 0.002:
            bucket = self._buckets[key] = _Bucket(now)
        reset_after = max(bucket.start + self.window - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{math.ceil(reset_after * 1000) / 1000:.3f}",
            "X-RateLimit-Bucket": f"fake-{key.split(':')[0]}-bucket",
        }
        if bucket.count >= self.limit:
            retry_after = math.ceil(reset_after * 1000) / 1000 + 0.001
            self.state.rate_limited.append(RateLimitHit(call.method, call.path, retry_after))
            raise _too_many(retry_after, {**headers, "X-RateLimit-Remaining": "0"})
        bucket.count += 1
        if not self.headers:
            return {}
        return {**headers, "X-RateLimit-Remaining": str(self.limit - bucket.count)}
