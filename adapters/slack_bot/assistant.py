"""Slack's agent messaging experience: a greeting and suggested prompts in the Messages tab."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.budgets import WorkspaceBudgets
from adapters.slack_bot.errors import as_surface_errors, describe
from adapters.slack_bot.events import HomeOpened
from bot import DeliveryFailed, RateLimited

log = logging.getLogger(__name__)

GREETING = "Hi! Ask me anything, or attach an image and ask about it."
SUGGESTED_PROMPTS = (
    {"title": "Explain something", "message": "Explain how HTTPS keeps a connection private, "
                                              "in plain words."},
    {"title": "Improve my writing", "message": "Make this paragraph clearer and shorter:"},
    {"title": "Describe an image", "message": "What is in this picture?"},
)


async def welcome(client: AsyncWebClient, opened: HomeOpened, budgets: WorkspaceBudgets, *,
                  first_visit: bool) -> None:
    """Greet a person in their DM with the bot on their first visit, and offer a few prompts
    on every visit.

    An agent app sets its prompts without `thread_ts` (they go with the channel's latest
    message); with one, Slack would silently ignore them.
    """
    try:
        if first_visit:
            with as_surface_errors():
                await client.chat_postMessage(channel=opened.channel, markdown_text=GREETING)
        async with budgets.slot("assistant.threads.setSuggestedPrompts"):
            await client.assistant_threads_setSuggestedPrompts(
                channel_id=opened.channel, prompts=[dict(prompt) for prompt in SUGGESTED_PROMPTS],
            )
    except (SlackApiError, RateLimited, DeliveryFailed) as exc:
        log.warning("slack:%s:%s: welcoming %s failed: %s", opened.team_id, opened.channel,
                    opened.user, describe(exc))
