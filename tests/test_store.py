"""The store on real databases (a SQLite file and the machine's PostgreSQL), migrated by Alembic."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from bot.conversation import (
    ChannelKey,
    ConversationKey,
    ImagePart,
    Role,
    TextPart,
    Turn,
    Usage,
)
from bot.model.parameters import ChannelSettings
from bot.model.tokens import estimate_tokens
from bot.storage.database import alembic_config, migrate, open_database
from bot.storage.schema import METADATA
from bot.storage.store import Store

KEY = ConversationKey("test", "w", "c", "t")


def user(text: str, *images: ImagePart) -> Turn:
    return Turn(Role.USER, (TextPart(text), *images), author_id="u1", author_name="Ann")


def image(data: bytes) -> ImagePart:
    return ImagePart(hashlib.sha256(data).hexdigest(), "image/png", data)


def alembic_versions(connection: Connection) -> list[str]:
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


async def test_migrations_from_empty_create_every_table(database_url: str) -> None:
    database = open_database(database_url)
    try:
        await migrate(database)
        tables = await database.run(lambda c: set(inspect(c).get_table_names()))
        versions = await database.run(alembic_versions)
    finally:
        await database.dispose()
    assert set(METADATA.tables) <= tables
    assert versions == [ScriptDirectory.from_config(alembic_config()).get_current_head()]


async def test_migrated_schema_equals_the_models(database_url: str) -> None:
    database = open_database(database_url)

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, METADATA))

    try:
        await migrate(database)
        diff = await database.run(differences)
    finally:
        await database.dispose()
    assert diff == []


async def test_migrating_twice_is_harmless(database_url: str) -> None:
    database = open_database(database_url)
    try:
        await migrate(database)
        await Store(database).add_turn(KEY, user("kept across migrations"))
        await migrate(database)
        store = Store(database)
        turns = await store.history(KEY, 10_000, 8)
        versions = await database.run(alembic_versions)
    finally:
        await database.dispose()
    assert [t.text for t in turns] == ["kept across migrations"]
    assert versions == [ScriptDirectory.from_config(alembic_config()).get_current_head()]


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    database = open_database(sqlite_url)
    try:
        mode = await database.run(Connection.scalar, text("PRAGMA journal_mode"))
        timeout = await database.run(Connection.scalar, text("PRAGMA busy_timeout"))
    finally:
        await database.dispose()
    assert (mode, timeout) == ("wal", 10_000)


async def test_history_takes_the_newest_whole_turns_within_budget(store: Store) -> None:
    texts = [f"turn {i} " + "x" * 400 for i in range(10)]
    for t in texts:
        await store.add_turn(KEY, user(t))
    per_turn = estimate_tokens([TextPart(texts[0])])

    turns = await store.history(KEY, token_budget=per_turn * 3 + per_turn // 2, max_images=8)

    assert [t.text for t in turns] == texts[-3:]


async def test_history_is_empty_when_the_newest_turn_alone_is_over_budget(store: Store) -> None:
    await store.add_turn(KEY, user("y" * 4000))

    assert await store.history(KEY, token_budget=100, max_images=8) == []


async def test_history_keeps_only_the_newest_images_bytes(store: Store) -> None:
    old, mid, new = b"old-image", b"mid-image", b"new-image"
    await store.add_turn(KEY, user("first", image(old)))
    await store.add_turn(KEY, user("second", image(mid), image(new)))

    turns = await store.history(KEY, token_budget=10_000, max_images=2)

    assert turns[0].images[0].data is None
    assert [i.data for i in turns[1].images] == [mid, new]


async def test_an_image_sent_twice_is_stored_once(store: Store) -> None:
    data = b"\x89PNG same bytes"
    await store.add_turn(KEY, user("one", image(data)))
    await store.add_turn(ConversationKey("test", "w", "c", "other"), user("two", image(data)))

    assert await store.database.run(Connection.scalar, text("SELECT count(*) FROM images")) == 1
    for key in (KEY, ConversationKey("test", "w", "c", "other")):
        assert (await store.history(key, 10_000, 8))[0].images[0].data == data


async def test_the_same_image_saved_concurrently_is_stored_once(store: Store) -> None:
    data = b"racing image"
    keys = [ConversationKey("test", "w", "c", f"race{i}") for i in range(6)]

    await asyncio.gather(*(store.add_turn(k, user("pic", image(data))) for k in keys))

    assert await store.database.run(Connection.scalar, text("SELECT count(*) FROM images")) == 1


async def test_turns_keep_order_under_concurrent_writes(store: Store) -> None:
    texts = [f"m{i}" for i in range(20)]
    ids = await asyncio.gather(*(store.add_turn(KEY, user(t)) for t in texts))

    stored = [t.text for t in await store.history(KEY, 100_000, 8)]

    assert len(set(ids)) == 20
    assert stored == [t for _, t in sorted(zip(ids, texts, strict=True))], \
        "history reads the turns in the order they were stored"


async def test_forget_removes_turns_but_keeps_usage(store: Store) -> None:
    await store.add_turn(KEY, user("q", ))
    await store.add_turn(KEY, Turn(Role.ASSISTANT, (TextPart("a"),), message_ids=("m1",),
                                   usage=Usage(5, 3, 1), model="m"))

    removed = await store.forget(KEY)

    assert removed == 2
    assert await store.history(KEY, 10_000, 8) == []
    assert await store.conversation_of_message("test", "m1") is None
    totals = await store.usage_totals(KEY.channel_key)
    assert (totals.replies, totals.prompt_tokens, totals.reasoning_tokens) == (1, 5, 1)


async def test_channel_settings_round_trip(store: Store) -> None:
    channel = ChannelKey("test", "w", "c")
    assert await store.channel_settings(channel) == ChannelSettings()
    settings = ChannelSettings("Be brief.", {"temperature": 0.3, "stop": ["x"]})

    await store.save_channel_settings(channel, settings, updated_by="a1")
    await store.save_channel_settings(channel, settings, updated_by="a1")

    assert await store.channel_settings(channel) == settings


async def test_event_ids_are_claimed_once(store: Store) -> None:
    results = await asyncio.gather(*(store.claim_event("slack", "Ev9") for _ in range(5)))

    assert sorted(results) == [False, False, False, False, True]
    assert await store.claim_event("discord", "Ev9") is True


@pytest.mark.parametrize("message_id", ["1234567890", "1700000000.000100"])
async def test_message_ids_lead_back_to_their_conversation(
    store: Store, message_id: str
) -> None:
    await store.add_turn(KEY, Turn(Role.ASSISTANT, (TextPart("a"),), message_ids=(message_id,)))

    assert await store.conversation_of_message("test", message_id) == KEY
    assert await store.has_conversation(KEY)
    assert not await store.has_conversation(ConversationKey("test", "w", "c", "nope"))


async def test_a_cancelled_caller_lets_the_store_call_finish(store: Store) -> None:
    call = asyncio.create_task(store.add_turn(KEY, user("kept")))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    assert [t.text for t in await asyncio.wait_for(store.history(KEY, 1000, 8), 5)] == ["kept"]
    await asyncio.wait_for(store.add_turn(KEY, user("next")), 5)


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    databases = [open_database(postgres_url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(database) for database in databases))
        versions = await databases[0].run(alembic_versions)
    finally:
        for database in databases:
            await database.dispose()
    assert versions == [ScriptDirectory.from_config(alembic_config()).get_current_head()]
