"""The store under failures and hostile values, on SQLite and PostgreSQL: no conversation ever
sees another's turns, every string is stored, images go when no turn shows them, and reading
history costs the same however long the conversation is."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select, text

from bot.conversation import (
    ConversationKey,
    ImagePart,
    Role,
    TextPart,
    Turn,
    TurnStatus,
    Usage,
)
from bot.errors import StoreUnavailable
from bot.storage.database import migrate
from bot.storage.schema import CONVERSATIONS, IMAGES, TURNS
from bot.storage.sqlite import SQLiteDatabase
from bot.storage.store import Store

BUDGET = 32_000

FAIL_ON_BOOM = {
    "sqlite": [
        "CREATE TRIGGER fail_on_boom BEFORE INSERT ON turns WHEN NEW.author_name = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION fail_on_boom() RETURNS trigger AS $$ BEGIN "
        "IF NEW.author_name = 'boom' THEN RAISE EXCEPTION 'simulated write failure'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER fail_on_boom BEFORE INSERT ON turns FOR EACH ROW "
        "EXECUTE FUNCTION fail_on_boom()",
    ],
}


def fail_on_boom(connection: Connection) -> None:
    """Make every insert of a turn by 'boom' fail, as a broken write would."""
    for statement in FAIL_ON_BOOM[connection.dialect.name]:
        connection.execute(text(statement))


def question(text_: str, author: str = "Ann", *parts: ImagePart) -> Turn:
    return Turn(Role.USER, (TextPart(text_), *parts), author_id="u-" + author,
                author_name=author)


def image(seed: str) -> ImagePart:
    data = f"image bytes {seed}".encode()
    return ImagePart(hashlib.sha256(data).hexdigest(), "image/png", data)


async def texts(store: Store, key: ConversationKey) -> list[str]:
    return [t.text for t in await store.history(key, BUDGET, 8)]


async def test_a_rolled_back_first_write_never_mixes_two_conversations(store: Store) -> None:
    ann = ConversationKey("test", "team", "chan", "ann-thread")
    bob = ConversationKey("test", "team", "chan", "bob-thread")
    await store.database.run(fail_on_boom)

    with pytest.raises(StoreUnavailable):
        await store.add_question(ann, question("never stored", "boom"), BUDGET, 8)
    bob_history = (await store.add_question(bob, question("bob's secret", "Bob"), BUDGET, 8)
                   ).history
    ann_history = (await store.add_question(ann, question("ann asks"), BUDGET, 8)).history

    assert [t.text for t in bob_history] == ["bob's secret"]
    assert [t.text for t in ann_history] == ["ann asks"]
    assert await texts(store, bob) == ["bob's secret"]
    assert await texts(store, ann) == ["ann asks"]


async def test_values_postgresql_refuses_are_cleaned_and_bounded(store: Store) -> None:
    key = ConversationKey("test", "team\x00x", "chan", "t" * 300)
    turn = Turn(
        Role.ASSISTANT, (TextPart("an\x00swer"),), author_id="bot\x00" + "9" * 100,
        author_name="A\x00nn " + "n" * 300, model="m" * 300, status=TurnStatus.FAILED,
        error="the API said \x00 no", usage=Usage(10, 5),
    )
    await store.add_turn(key, turn, billed_to="u\x00" + "1" * 100)

    [stored] = await store.history(key, BUDGET, 8)
    assert stored.text == "an\ufffdswer"
    assert stored.author_name.startswith("A\ufffdnn n") and len(stored.author_name) == 128
    assert stored.model is not None and len(stored.model) == 128
    assert stored.error == "the API said \ufffd no"
    assert stored.status is TurnStatus.FAILED
    other = ConversationKey("test", "team\x00x", "chan", "t" * 299 + "u")
    assert await store.history(other, BUDGET, 8) == []


async def test_forgetting_deletes_images_no_other_turn_shows(store: Store) -> None:
    first = ConversationKey("test", "team", "chan", "first")
    second = ConversationKey("test", "team", "chan", "second")
    shared, own = image("shared"), image("own")
    await store.add_turn(first, question("two pictures", "Ann", shared, own))
    await store.add_turn(second, question("the same picture", "Bob", shared))

    async def hashes() -> set[str]:
        return await store.database.run(
            lambda c: set(c.execute(select(IMAGES.c.sha256)).scalars()))

    assert await store.forget(first) == 1
    assert await hashes() == {shared.sha256}
    [kept] = await store.history(second, BUDGET, 8)
    assert kept.images[0].data == shared.data
    assert await store.forget(second) == 1
    assert await hashes() == set()


async def test_a_refused_image_comes_back_without_its_bytes(store: Store) -> None:
    key = ConversationKey("test", "team", "chan", "thread")
    picture = image("refused")
    await store.add_turn(key, question("look", "Ann", picture))
    await store.refuse_images([picture.sha256])
    [turn] = await store.history(key, BUDGET, 8)
    assert turn.images[0].sha256 == picture.sha256 and turn.images[0].data is None


async def test_an_answer_saved_as_it_grows_is_one_turn(store: Store) -> None:
    key = ConversationKey("test", "team", "chan", "thread")
    await store.add_turn(key, question("tell me"))
    partial = Turn(Role.ASSISTANT, (TextPart("Once upon"),), message_ids=("m1",),
                   status=TurnStatus.INTERRUPTED, error="still writing")
    turn_id = await store.save_answer(key, partial, turn_id=None, billed_to="u-Ann")
    assert [(t.text, t.status) for t in await store.history(key, BUDGET, 8)][-1] == (
        "Once upon", TurnStatus.INTERRUPTED)

    final = Turn(Role.ASSISTANT, (TextPart("Once upon a time."),), message_ids=("m1", "m2"),
                 usage=Usage(7, 4), model="gemini")
    assert await store.save_answer(key, final, turn_id=turn_id, billed_to="u-Ann") == turn_id

    history = await store.history(key, BUDGET, 8)
    assert [(t.role, t.text, t.status) for t in history] == [
        (Role.USER, "tell me", TurnStatus.COMPLETE),
        (Role.ASSISTANT, "Once upon a time.", TurnStatus.COMPLETE),
    ]
    assert await store.conversation_of_message("test", "m2") == key
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert await store.tokens_used_by_user("test", "u-Ann", since) == 11


@pytest.fixture
async def counted_sqlite(tmp_path: Path) -> AsyncIterator[tuple[Store, list[int]]]:
    """A store on a SQLite file whose connections count the virtual-machine steps they run:
    a cost measure that does not depend on the machine's speed or load."""
    database = SQLiteDatabase(str(tmp_path / "bot.db"), pool_size=2, busy_timeout_ms=10_000)
    steps = [0]

    def count(connection: sqlite3.Connection) -> None:
        def tick() -> int:
            steps[0] += 1
            return 0

        connection.set_progress_handler(tick, 10)

    database.on_connect(count)
    await migrate(database)
    store = Store(database)
    yield store, steps
    await store.close()


async def test_reading_history_costs_the_same_for_a_long_conversation(
    counted_sqlite: tuple[Store, list[int]],
) -> None:
    store, steps = counted_sqlite
    short = ConversationKey("test", "team", "dm", "short")
    long = ConversationKey("test", "team", "dm", "long")
    await store.add_turn(short, question("hi"))
    await store.add_turn(long, question("hi"))

    def add_turns(connection: Connection) -> int | None:
        ids = {key.thread: connection.scalar(
            select(CONVERSATIONS.c.id).where(CONVERSATIONS.c.thread == key.thread))
            for key in (short, long)}
        for key, count in ((short, 100), (long, 20_000)):
            connection.execute(insert(TURNS), [
                {"conversation_id": ids[key.thread], "role": "user", "author_id": "u",
                 "author_name": "Ann", "parts": [{"type": "text", "text": "x" * 400}],
                 "tokens": 104, "status": "complete", "created_at": datetime.now(UTC)}
                for _ in range(count)
            ])
        return connection.scalar(select(func.count()).select_from(TURNS))

    assert await store.database.run(add_turns) == 20_102

    async def cost(key: ConversationKey) -> tuple[int, int]:
        await store.history(key, 2_000, 8)
        steps[0] = 0
        turns = await store.history(key, 2_000, 8)
        return steps[0], len(turns)

    short_cost, short_turns = await cost(short)
    long_cost, long_turns = await cost(long)
    assert short_turns == long_turns == 19
    assert long_cost < short_cost * 1.5


async def test_a_store_failure_leaves_the_cache_clean_for_the_next_write(store: Store) -> None:
    key = ConversationKey("test", "team", "chan", "thread")
    await store.database.run(fail_on_boom)
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            await store.add_turn(key, question("fails", "boom"))
    await store.add_turn(key, question("works"))
    assert await texts(store, key) == ["works"]
