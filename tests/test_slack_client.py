"""The Web API client: the configured host, 429s waited out except on the paced methods."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError

from adapters.slack_bot.budgets import PACED_METHODS
from adapters.slack_bot.client import SLACK_API_URL, web_client
from tests.fakes.slack import FakeSlack


def test_the_api_host_is_configurable() -> None:
    assert web_client("xoxb").base_url == SLACK_API_URL + "/"
    assert web_client("xoxb", "https://slack-gov.com/api").base_url == "https://slack-gov.com/api/"


async def test_rate_limits_are_retried_except_for_the_paced_methods() -> None:
    """The methods with a workspace budget (chat.update, the stream methods, ...) get their
    429 back, to pause the budget for every reply; other methods are retried here."""
    async with FakeSlack() as fake:
        client = web_client(fake.bot_token, fake.api_url)
        wait = {"Retry-After": "0"}
        fake.fail_next("chat.postMessage", "ratelimited", status=429, headers=wait)
        posted = await client.chat_postMessage(channel="C1", markdown_text="hi")
        assert [c.status for c in fake.calls_of("chat.postMessage")] == [429, 200]

        fake.fail_next("chat.update", "ratelimited", status=429, headers=wait)
        with pytest.raises(SlackApiError) as refused:
            await client.chat_update(channel="C1", ts=posted["ts"], markdown_text="edit")
        assert refused.value.response.status_code == 429
        assert len(fake.calls_of("chat.update")) == 1

        fake.fail_next("chat.startStream", "ratelimited", status=429, headers=wait)
        with pytest.raises(SlackApiError):
            await client.chat_startStream(channel="C1", thread_ts=posted["ts"],
                                          recipient_user_id="UUSER", recipient_team_id="T1")
        assert len(fake.calls_of("chat.startStream")) == 1
        assert "chat.startStream" in PACED_METHODS and "chat.postMessage" not in PACED_METHODS
