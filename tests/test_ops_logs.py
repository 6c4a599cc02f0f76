"""Log lines: `BOT_LOG_FORMAT=json` prints one JSON object per line with the conversation,
platform and event of the work being done, text stays the default, and secrets are masked in
both."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest

from bot.app import open_core
from bot.config import Settings
from bot.conversation import Author, ConversationKey, Incoming
from bot.logs import configure_logging, log_context
from tests.fakes.model_server import FakeModelServer, Status
from tests.support.surfaces import RecordingSurface

SECRET = "xoxb-not-for-your-eyes-1234"


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers; put pytest's back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def json_lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_json_lines_carry_time_level_logger_message_and_the_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", [SECRET], "json")
    log = logging.getLogger("bot.test")

    with log_context(conversation="slack:T1:C1:1.0", platform="slack", event_id="Ev1"):
        log.warning("token %s refused", SECRET)
    log.info("outside any message")

    inside, outside = json_lines(capsys.readouterr().err)
    assert {k: v for k, v in inside.items() if k != "time"} == {
        "level": "WARNING", "logger": "bot.test", "message": "token [secret] refused",
        "conversation": "slack:T1:C1:1.0", "platform": "slack", "event_id": "Ev1",
    }
    assert str(inside["time"]).endswith("+00:00")
    assert "conversation" not in outside and outside["message"] == "outside any message"


def test_json_tracebacks_and_extra_fields_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", [SECRET], "json")
    log = logging.getLogger("bot.test")

    try:
        raise RuntimeError(f"the server echoed {SECRET}")
    except RuntimeError:
        log.exception("request failed", extra={"detail": f"header was Bearer {SECRET}"})

    err = capsys.readouterr().err
    (line,) = json_lines(err)
    assert SECRET not in err
    assert "RuntimeError: the server echoed [secret]" in str(line["exc_info"])
    assert line["detail"] == "header was Bearer [secret]"


def test_text_stays_the_default_and_masks_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", [SECRET])
    with log_context(conversation="slack:T1:C1:1.0", platform="slack"):
        logging.getLogger("bot.test").warning("token %s refused", SECRET)

    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" WARNING bot.test: token [secret] refused")
    assert not line.startswith("{")


async def test_lines_logged_while_a_message_is_answered_name_its_conversation_and_event(
    make_settings: Callable[..., Settings], model_api: FakeModelServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_api.script("direct", Status(503))
    key = ConversationKey("slack", "T1", "C1", "1700000000.0001")
    async with open_core(make_settings()) as core:
        configure_logging("INFO", [], "json")
        await core.service.handle(Incoming(key, Author("U1", "Ann"), "hi", event_id="Ev42"),
                                  RecordingSurface())

    lines = json_lines(capsys.readouterr().err)
    (fallback,) = [line for line in lines if "trying" in str(line["message"])]
    assert fallback["logger"] == "bot.model.llm"
    assert (fallback["conversation"], fallback["platform"], fallback["event_id"]) == (
        "slack:T1:C1:1700000000.0001", "slack", "Ev42")
