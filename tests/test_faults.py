"""The fault suite: every fault a failing network, database, platform or hostile user can cause,
over real sockets and real databases, each checked for what the user saw and what was stored.

Every scenario adds a row to FAULTS; the run ends with the table (tests/conftest.py prints it):
scenario, what the user saw, what was stored, and `faults: N tried, N handled, N lost, N leaked`.
A scenario is *handled* when the user got a clear message (never the generic failure, never
silence), *lost* when text the user saw, or their question, is missing from the store, and
*leaked* when the API key, or another conversation's words, reached the user, the store or the
model.
"""

from __future__ import annotations

import asyncio
import io
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from PIL import Image
from sqlalchemy import Connection, text

from adapters.slack_bot.app import SlackBot, build_slack_app
from adapters.slack_bot.settings import SlackSettings
from adapters.slack_bot.surface import SLACK_TUNING
from bot.app import open_core
from bot.config import Settings
from bot.conversation import (
    Attachment,
    Author,
    ConversationKey,
    Incoming,
    Role,
    TextPart,
    Turn,
)
from bot.limits import Limits, LimitSettings
from bot.model.llm import ModelClient, create_http_client
from bot.service import GENERIC_FAILURE, Service, ServiceConfig
from bot.storage.database import migrate, open_database
from bot.storage.sqlite import SQLiteDatabase
from bot.storage.store import Store
from tests.conftest import API_KEY, POSTGRES_ADMIN_DSN
from tests.fakes.model_server import (
    Behaviour,
    Cut,
    Endless,
    ErrorEvent,
    FakeModelServer,
    HtmlPage,
    HugeDelta,
    JsonPage,
    KeepAlive,
    LongLine,
    NotJsonEvent,
    Reply,
    Slow,
    Status,
)
from tests.fakes.slack import FakeSlack
from tests.support.surfaces import RecordingSurface
from tests.support.waiting import until

MODEL = "gemini-3.1-flash-lite-preview"
KEY = ConversationKey("fault", "team", "chan", "thread")
OTHER = ConversationKey("fault", "team", "chan", "someone-else")
OTHER_SECRET = "Bob's private note: the launch code is 0000"
ANN = Author("u-ann", "Ann")
QUESTION = "What is the answer?"
CELL = 58


@dataclass(frozen=True, slots=True)
class FaultRow:
    """One scenario's result, as the table shows it."""

    scenario: str
    saw: str
    stored: str
    handled: bool
    lost: bool
    leaked: bool


FAULTS: list[FaultRow] = []


def fault_table(rows: Sequence[FaultRow]) -> list[str]:
    """The table and its closing line, as printed at the end of the run."""
    width = max(len(r.scenario) for r in rows)
    lines = [f"{'scenario':<{width}} | {'what the user saw':<{CELL}} | what was stored",
             f"{'-' * width}-+-{'-' * CELL}-+-{'-' * 40}"]
    lines += [f"{r.scenario:<{width}} | {_cell(r.saw):<{CELL}} | {r.stored}" for r in rows]
    lines.append(
        f"faults: {len(rows)} tried, {sum(r.handled for r in rows)} handled, "
        f"{sum(r.lost for r in rows)} lost, {sum(r.leaked for r in rows)} leaked"
    )
    return lines


def _cell(value: str) -> str:
    value = re.sub(r"\s+", " ", value).strip()
    return value if len(value) <= CELL else value[: CELL - 1] + "…"


def _squashed(value: str) -> str:
    """The text without white space: pages split at spaces and line ends."""
    return re.sub(r"\s+", "", value)


def record(row: FaultRow) -> None:
    """Add the row to the table, then fail the test if the fault was not handled."""
    FAULTS.append(row)
    assert row.handled, f"{row.scenario}: not handled: the user saw {row.saw!r}"
    assert not row.lost, f"{row.scenario}: lost data; stored {row.stored!r}"
    assert not row.leaked, f"{row.scenario}: leaked the key or another conversation"


def describe(turns: Sequence[Turn]) -> str:
    """What the store holds for the conversation, in a few words."""
    if not turns:
        return "nothing"
    parts = []
    for turn in turns:
        if turn.role is Role.USER:
            parts.append("question" + (f" + {len(turn.images)} images" if turn.images else ""))
        else:
            parts.append(f"answer {turn.status.value}, {len(turn.text):,} chars")
    return "; ".join(parts)


# --------------------------------------------------------------------------- the harness


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(connect_timeout=2.0, read_timeout=1.0) as client:
        yield client


async def instantly(_seconds: float) -> None:
    """A sleep that returns at once: retries are not waited for in the suite."""


def make_service(store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
                 **config: Any) -> Service:
    model = ModelClient(http, API_KEY, model_api.direct_url, model_api.api_url,
                        rate_limit_retries=1, sleep=instantly, idle_timeout=1.0,
                        max_answer_chars=20_000, reply_timeout=3.0)
    limits = config.pop("limits", LimitSettings(user_messages_per_minute=0))
    settings = replace(ServiceConfig(default_model=MODEL), limits=limits, **config)
    return Service(store, model, settings, limits=Limits(store, limits))


async def seed_other_conversation(store: Store) -> None:
    await store.add_turn(OTHER, Turn(Role.USER, (TextPart(OTHER_SECRET),), author_id="u-bob",
                                     author_name="Bob"))


def leaked(model_api: FakeModelServer, *texts: str) -> bool:
    bodies = [str(r.body) for r in model_api.requests]
    return any(API_KEY in t or OTHER_SECRET in t for t in texts) or any(
        OTHER_SECRET in body for body in bodies)


async def assess(name: str, store: Store, surface: RecordingSurface, model_api: FakeModelServer,
                 *, asked: str = QUESTION) -> FaultRow:
    """Judge one scenario from what the surface shows and what the store holds."""
    turns = await store.history(KEY, 1_000_000, 100)
    seen = surface.notices + surface.shown
    saw = " | ".join(seen) or "(nothing)"
    answers = [t for t in turns if t.role is Role.ASSISTANT]
    lost = bool(model_api.requests) and not any(
        t.role is Role.USER and t.text.startswith(asked[:20]) for t in turns)
    if answers and answers[-1].text.strip():
        lost = lost or _squashed(answers[-1].text) not in _squashed("".join(surface.shown))
    stored_text = " ".join(t.text + (t.error or "") for t in turns)
    handled = bool(seen) and GENERIC_FAILURE not in seen
    backend = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[store.database.name]
    return FaultRow(f"{name} [{backend}]", saw, describe(turns), handled, lost,
                    leaked(model_api, saw, stored_text))


async def ask(service: Service, surface: RecordingSurface, text_: str = QUESTION,
              attachments: tuple[Attachment, ...] = ()) -> None:
    await service.handle(Incoming(KEY, ANN, text_, attachments, message_id="q"), surface)


# --------------------------------------------------------------------------- the model API

MODEL_FAULTS: list[tuple[str, Callable[[], Sequence[Behaviour]], str]] = [
    ("model 401", lambda: [Status(401)], "rejected"),
    ("model 404 (unknown model)", lambda: [Status(404, "model not found")], "refused"),
    ("model 429 past the retry budget", lambda: [Status(429, retry_after=1)] * 2,
     "rate-limiting"),
    ("model 5xx (both endpoints)", lambda: [Status(503)], "trouble"),
    ("model HTML page with 200 (both)", lambda: [HtmlPage()], "HTML"),
    ("model JSON body with 200 (both)", lambda: [JsonPage()], "JSON"),
    ("model event that is not JSON", lambda: [NotJsonEvent(after_chunks=2)], "not JSON"),
    ("model error event echoing the key",
     lambda: [ErrorEvent("Half an answer", 1, f"bad key {API_KEY} for project")], "error"),
    ("model 10 MB delta", lambda: [HugeDelta("Start ", size=10_000_000)], "1 MB"),
    ("model endless stream", lambda: [Endless()], "cut here"),
    ("model keep-alives only", lambda: [KeepAlive(seconds=None)], "in time"),
    ("model 2 MB line without newline", lambda: [LongLine("Start ", size=2_000_000)], "1 MB"),
    ("model stream cut mid-answer", lambda: [Cut("A partial answer that stops", 2)], "lost"),
]


@pytest.mark.parametrize(("name", "behaviours", "explains"), MODEL_FAULTS,
                         ids=[name for name, _, _ in MODEL_FAULTS])
async def test_model_api_fault(
    name: str, behaviours: Callable[[], Sequence[Behaviour]], explains: str, store: Store,
    http: httpx.AsyncClient, model_api: FakeModelServer,
) -> None:
    await seed_other_conversation(store)
    model_api.script("direct", *behaviours())
    model_api.script("api", *behaviours())
    surface = RecordingSurface()

    await ask(make_service(store, http, model_api), surface)

    row = await assess(name, store, surface, model_api)
    record(row)
    assert explains.lower() in row.saw.lower()


# --------------------------------------------------------------------------- the database


async def test_database_locked(tmp_path: Path, http: httpx.AsyncClient,
                               model_api: FakeModelServer) -> None:
    path = tmp_path / "bot.db"
    database = open_database(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=100)
    await migrate(database)
    store = Store(database)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    surface = RecordingSurface()
    try:
        await ask(make_service(store, http, model_api), surface)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    row = await assess("database locked", store, surface, model_api)
    await store.close()
    record(row)
    assert not model_api.requests and "database" in row.saw


async def test_database_disk_full(tmp_path: Path, http: httpx.AsyncClient,
                                  model_api: FakeModelServer) -> None:
    path = tmp_path / "bot.db"
    database = SQLiteDatabase(str(path), pool_size=2, busy_timeout_ms=10_000)
    await migrate(database)
    full = [True]

    def cap_pages(connection: sqlite3.Connection) -> None:
        if full[0]:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")

    database.on_connect(cap_pages)
    await database.dispose()
    store = Store(database)
    surface = RecordingSurface()
    service = make_service(store, http, model_api)

    await ask(service, surface, "x" * 20_000)

    full[0] = False
    await database.dispose()
    row = await assess("database full (max_page_count)", store, surface, model_api,
                       asked="x" * 20_000)
    await ask(service, next_surface := RecordingSurface(), "and now?")
    await store.close()
    record(row)
    assert "full" in row.saw and not model_api.requests[:-1]
    assert next_surface.shown and "database" not in " ".join(next_surface.notices)


async def test_postgresql_session_killed_mid_transaction(
    postgres_url: str, http: httpx.AsyncClient, model_api: FakeModelServer
) -> None:
    database = open_database(postgres_url)
    await migrate(database)

    def slow_writes(connection: Connection) -> None:
        connection.execute(text(
            "CREATE FUNCTION slow_write() RETURNS trigger AS $$ BEGIN "
            "IF NEW.author_name = 'Slow' THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END "
            "$$ LANGUAGE plpgsql"))
        connection.execute(text(
            "CREATE TRIGGER slow_write BEFORE INSERT ON turns FOR EACH ROW "
            "EXECUTE FUNCTION slow_write()"))

    await database.run(slow_writes)
    store = Store(database)
    await seed_other_conversation(store)
    service = make_service(store, http, model_api)
    surface = RecordingSurface()
    database = postgres_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        asking = asyncio.create_task(service.handle(
            Incoming(KEY, Author("u-slow", "Slow"), QUESTION, message_id="q"), surface))

        async def sleeping_backend() -> bool:
            return bool(await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                "AND query LIKE 'INSERT INTO turns%'", database))

        await until(sleeping_backend, what="the insert waiting in its trigger")
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
            "AND query LIKE 'INSERT INTO turns%'", database)
        await asking
    finally:
        await admin.close()
    row = await assess("PostgreSQL session killed mid-write", store, surface, model_api)
    after = RecordingSurface()
    await ask(service, after, "again")
    history = await store.history(KEY, 10_000, 8)
    await store.close()
    record(row)
    assert "database" in row.saw and not model_api.requests[:-1]
    assert history[0].text == "again", "the next message starts the conversation"


# --------------------------------------------------------------------------- hostile users


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format="PNG", optimize=True)
    return out.getvalue()


def attachment(name: str, data: bytes, content_type: str = "image/png") -> Attachment:
    async def fetch() -> bytes:
        return data

    return Attachment(name, content_type, len(data), fetch)


def bomb() -> bytes:
    """A PNG that declares 50,000 x 50,000 pixels in a few kilobytes."""
    return png(50_000, 50_000)


USER_FAULTS: list[tuple[str, Callable[[], tuple[Attachment, ...]], str]] = [
    ("100 images in one message",
     lambda: tuple(attachment(f"p{i}.png", png(16 + i, 16)) for i in range(100)), "images"),
    ("a huge image (9000 x 9000)", lambda: (attachment("huge.png", png(9000, 9000)),),
     "pixels"),
    ("a decompression bomb", lambda: (attachment("bomb.png", bomb()),), "pixels"),
    ("fake HEIC bytes",
     lambda: (attachment("x.heic", b"\0\0\0\x18ftypheic" + b"\0" * 200, "image/heic"),),
     "HEIC"),
]


@pytest.fixture(scope="module")
def hostile_attachments() -> dict[str, tuple[Attachment, ...]]:
    return {name: make() for name, make, _ in USER_FAULTS}


@pytest.mark.parametrize(("name", "explains"), [(n, e) for n, _, e in USER_FAULTS],
                         ids=[n for n, _, _ in USER_FAULTS])
async def test_hostile_attachments(
    name: str, explains: str, hostile_attachments: dict[str, tuple[Attachment, ...]],
    store: Store, http: httpx.AsyncClient, model_api: FakeModelServer,
) -> None:
    surface = RecordingSurface()
    await ask(make_service(store, http, model_api), surface,
              attachments=hostile_attachments[name])
    row = await assess(name, store, surface, model_api)
    record(row)
    assert explains.lower() in " ".join(surface.notices).lower()
    assert surface.shown, "the question itself is still answered"
    images = [part for message in model_api.requests[-1].body["messages"]
              if isinstance(message["content"], list)
              for part in message["content"] if part["type"] == "image_url"]
    assert len(images) <= ServiceConfig(default_model=MODEL).max_images


# --------------------------------------------------------------------------- the platform

FAST = replace(SLACK_TUNING, min_edit_interval=0.05, edit_rate=15, edit_period=1.0,
               edit_burst=3)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(update_limit=20, update_window=1.0, retry_after=1) as server:
        yield server


@asynccontextmanager
async def slack_bot(make_settings: Callable[..., Settings], fake: FakeSlack,
                    **overrides: Any) -> AsyncIterator[SlackBot]:
    slack = SlackSettings.load(bot_token=fake.bot_token, signing_secret=fake.signing_secret,
                               api_url=fake.api_url, _env_file=None)
    async with open_core(make_settings(**overrides)) as core:
        bot = build_slack_app(core, slack, tuning=FAST)
        try:
            yield bot
        finally:
            await bot.close()


async def deliver(bot: SlackBot, requests: Sequence[tuple[str, Any]]) -> None:
    from slack_bolt.request.async_request import AsyncBoltRequest

    await asyncio.gather(*(bot.app.async_dispatch(AsyncBoltRequest(body=b, headers=dict(h)))
                           for b, h in requests))
    await bot.idle()


def slack_stored(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT role, status, length(parts) FROM turns ORDER BY id").fetchall()
    return "; ".join(
        "question" if role == "user" else f"answer {status}" for role, status, _ in rows
    ) or "nothing"


PLATFORM_FAULTS: list[tuple[str, Callable[[FakeSlack], None]]] = [
    ("Slack 429 on every other stream append",
     lambda fake: fake.set_rate_limit("chat.appendStream", 2, 1.0)),
    ("Slack 5xx on stream start and append",
     lambda fake: (fake.fail_next("chat.startStream", "internal_error", status=500),
                   fake.fail_next("chat.appendStream", "internal_error", status=500,
                                  times=2))),
    ("Slack thread deleted mid-answer",
     lambda fake: (fake.fail_next("chat.appendStream", "message_not_found", times=100),
                   fake.fail_next("chat.update", "message_not_found", times=100))),
]


@pytest.mark.parametrize(("name", "inject"), PLATFORM_FAULTS,
                         ids=[n for n, _ in PLATFORM_FAULTS])
async def test_platform_fault(
    name: str, inject: Callable[[FakeSlack], None], make_settings: Callable[..., Settings],
    slack: FakeSlack, model_api: FakeModelServer, tmp_path: Path,
) -> None:
    answer = " ".join(f"w{i}" for i in range(80))
    model_api.script("direct", Slow(answer, 0.01))
    inject(slack)
    async with slack_bot(make_settings, slack) as bot:
        message = slack.message(channel="D1", channel_type="im", text="go")
        await deliver(bot, [slack.event_request(message)])
    texts = slack.texts("D1")
    stored = slack_stored(tmp_path / "bot.db")
    deleted = "deleted" in name
    shown_whole = texts == [answer]
    handled = (deleted and "answer" in stored) or shown_whole
    saw = "(thread gone; the answer is kept)" if deleted and not shown_whole else " | ".join(
        texts)
    record(FaultRow(name, saw, stored, handled, "question" not in stored,
                    any(API_KEY in t for t in texts)))


async def test_a_flood_of_60_mentions(make_settings: Callable[..., Settings], slack: FakeSlack,
                                      model_api: FakeModelServer, tmp_path: Path) -> None:
    model_api.script("direct", *[Reply(text=f"answer {i}") for i in range(60)])
    async with slack_bot(make_settings, slack, bot_user_messages_per_minute=6) as bot:
        mentions = [slack.app_mention(text=f"question {i}") for i in range(60)]
        await deliver(bot, [slack.event_request(m) for m in mentions])
    posted = [t for m in mentions for t in slack.texts("C1", m["ts"])]
    answers = [t for t in posted if t.startswith("answer")]
    notices = [t for t in posted if "faster than" in t]
    stored = slack_stored(tmp_path / "bot.db")
    record(FaultRow(
        "a flood of 60 mentions from one person",
        f"{len(answers)} answers, {len(notices)} rate notice: {notices[0] if notices else ''}",
        f"{stored.count('question')} questions, {stored.count('answer')} answers",
        handled=len(answers) == 6 and len(notices) == 1 and len(model_api.requests) == 6,
        lost=stored.count("answer complete") != 6,
        leaked=False,
    ))
