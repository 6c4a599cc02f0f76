"""What a reply costs the database on SQLite, counted by SQLite itself (a trace of the
statements each connection runs), so it does not depend on the machine's speed or load: the
question (with the conversation's summary) is one transaction, as is a question answered
again, each save of the answer another, and a known conversation is not looked up again."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.conversation import ConversationKey, Role, TextPart, Turn, TurnStatus, Usage
from bot.storage.database import migrate
from bot.storage.sqlite import SQLiteDatabase
from bot.storage.store import Store

KEY = ConversationKey("test", "team", "general", "thread-1")


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[Store, list[str]]]:
    """A store on a SQLite file whose connections note every statement they run."""
    database = SQLiteDatabase(str(tmp_path / "bot.db"), pool_size=2, busy_timeout_ms=10_000)
    statements: list[str] = []

    def trace(connection: sqlite3.Connection) -> None:
        connection.set_trace_callback(statements.append)

    await migrate(database)
    database.on_connect(trace)
    await database.dispose()
    store = Store(database)
    yield store, statements
    await store.close()


def commits(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


def lookups(statements: list[str]) -> int:
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT CONVERSATIONS.ID"))


def answer(text: str, status: TurnStatus, usage: Usage | None = None) -> Turn:
    return Turn(Role.ASSISTANT, (TextPart(text),), message_ids=("m1",), status=status,
                usage=usage)


async def test_a_reply_is_one_transaction_for_the_question_and_one_per_save(
    traced: tuple[Store, list[str]],
) -> None:
    store, statements = traced
    question = Turn(Role.USER, (TextPart("hello"),), author_id="u1", author_name="Ann")

    context = await store.add_question(KEY, question, 32_000, 8)
    assert [t.text for t in context.history] == ["hello"]
    assert context.settings.system_prompt is None and context.summary is None
    assert commits(statements) == 1 and lookups(statements) == 1

    statements.clear()
    turn_id = await store.save_answer(KEY, answer("so far", TurnStatus.INTERRUPTED),
                                      turn_id=None, billed_to="u1")
    await store.save_answer(KEY, answer("so far, and the end", TurnStatus.COMPLETE,
                                        Usage(10, 5, 0)), turn_id=turn_id, billed_to="u1")
    assert commits(statements) == 2 and lookups(statements) == 0

    stored = await store.history(KEY, 32_000, 8)
    assert [(t.text, t.status) for t in stored] == [
        ("hello", TurnStatus.COMPLETE), ("so far, and the end", TurnStatus.COMPLETE)]



async def test_the_summary_and_a_regenerated_question_are_read_in_that_one_transaction(
    traced: tuple[Store, list[str]],
) -> None:
    store, statements = traced
    first = await store.add_question(
        KEY, Turn(Role.USER, (TextPart("hello"),), author_id="u1"), 32_000, 8)
    await store.save_answer(KEY, answer("hi", TurnStatus.COMPLETE), turn_id=None,
                            billed_to="u1")
    assert await store.save_summary(KEY, "they said hello", 5, first.turn_ids[0]) is not None

    statements.clear()
    question = Turn(Role.USER, (TextPart("and then?"),), author_id="u1")
    context = await store.add_question(KEY, question, 32_000, 8)
    assert context.summary is not None and context.summary.text == "they said hello"
    assert [t.text for t in context.history] == ["hi", "and then?"]
    assert commits(statements) == 1 and lookups(statements) == 0

    await store.save_answer(KEY, answer("first try", TurnStatus.COMPLETE), turn_id=None,
                            billed_to="u1")
    statements.clear()
    again = await store.answer_again(KEY, context.turn_ids[-1], 32_000, 8)
    assert again.summary is not None
    assert [t.text for t in again.history] == ["hi", "and then?"]
    assert commits(statements) == 1 and lookups(statements) == 0
