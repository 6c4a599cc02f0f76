"""Discord's HTTP errors in the core's terms: rate limits and places the reply has lost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import discord

from bot import DeliveryFailed, RateLimited


@contextmanager
def as_surface_errors(what: str) -> Iterator[None]:
    """Raise RateLimited for a 429 and DeliveryFailed for a message or channel the bot can no
    longer reach (404, 403); other errors pass as they are. `what` names the call in the
    DeliveryFailed message ("editing")."""
    try:
        yield
    except discord.RateLimited as exc:
        raise RateLimited(exc.retry_after) from exc
    except (discord.NotFound, discord.Forbidden) as exc:
        raise DeliveryFailed(f"{what}: {exc}") from exc
    except discord.HTTPException as exc:
        if exc.status == 429:
            raise RateLimited(1.0) from exc
        raise
