"""A fake Discord for end-to-end tests: the real discord.py client logs in to it, connects
to its gateway, receives events and makes REST calls, all on 127.0.0.1 and in memory.

``FakeDiscord.patch_discord()`` points discord.py at it::

    discord.http.Route.BASE = fake.api_url                  # REST, webhooks, interactions
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

It implements only what the bot uses, and mirrors Discord where the bot depends on it: JSON
served as ``application/json`` without a charset, 429s with a JSON body and ``X-RateLimit-*``
headers, the bot's own messages echoed over the gateway, content blanked without the
MESSAGE_CONTENT intent, content over 2000 characters refused (50035), an interaction answered
once and within 3 seconds. A request no route answers is a 404 noted in ``unknown_calls``.

Modules: ``models`` (permission bits, records), ``state`` (the guild), ``messages`` (storing,
posting and editing them), ``payloads`` (wire shapes), ``wire`` (routes, answers, errors),
``rest`` and ``interactions`` (the route tables), ``ratelimits``, ``gateway``, and ``server``
(FakeDiscord, the front door).
"""

from tests.fakes.discord.models import (
    Call,
    Edit,
    FakeUser,
    InteractionResponse,
    Perm,
    RateLimitHit,
)
from tests.fakes.discord.server import FakeDiscord

__all__ = ["Call", "Edit", "FakeDiscord", "FakeUser", "InteractionResponse", "Perm",
           "RateLimitHit"]
