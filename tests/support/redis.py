"""The machine's Redis for tests that need it: they fail under CI, whose machine must run it,
and are skipped elsewhere when it does not answer."""

from __future__ import annotations

import os

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError


async def reachable_redis(url: str, runs: str) -> Redis:
    """A client of the Redis at `url` that answered a ping; `runs` names the tests skipped
    when it does not."""
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = f"Redis at {url} is not reachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI this run must include Redis")
        pytest.skip(f"{reason}: {runs} skipped")
    return client
