"""Slack's assistant threads (Agents & AI Apps): a greeting and suggested prompts."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.errors import describe
from adapters.slack_bot.events import AssistantThread

log = logging.getLogger(__name__)

GREETING = "Hi! Ask me anything, or attach an image and ask about it."
SUGGESTED_PROMPTS = (
    {"title": "Explain something", "message": "Explain how HTTPS keeps a connection private, "
                                              "in plain words."},
    {"title": "Improve my writing", "message": "Make this paragraph clearer and shorter:"},
    {"title": "Describe an image", "message": "What is in this picture?"},
)


async def greet(client: AsyncWebClient, thread: AssistantThread) -> None:
    """Say hello in a new assistant thread and offer a few prompts to start with."""
    try:
        await client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread_ts,
                                      markdown_text=GREETING)
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=thread.channel, thread_ts=thread.thread_ts,
            prompts=[dict(prompt) for prompt in SUGGESTED_PROMPTS],
        )
    except SlackApiError as exc:
        log.warning("slack:%s:%s:%s: greeting the assistant thread failed: %s", thread.team_id,
                    thread.channel, thread.thread_ts, describe(exc))
