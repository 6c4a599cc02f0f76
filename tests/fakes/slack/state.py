"""The fake workspace: people, channels, messages, streams and files, what people do in it,
and the records of what the app did."""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from tests.fakes.slack.records import (
    ApiCall,
    Download,
    Envelope,
    JSONDict,
    PostedResponse,
    SlackError,
    StoredMessage,
    Stream,
)
from tests.fakes.slack.workspace import (
    ACK_DEADLINE,
    ADMIN_USER_ID,
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    OWNER_USER_ID,
    PLAIN_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
)

T = TypeVar("T")


class SlackState:
    """Workspace ``T1``: the bot ``UBOT``/``BBOT``, an admin, the owner and a plain member;
    channels ``C1`` general, ``C2`` random, ``G1`` (private) and a DM with each person."""

    def __init__(self, *, clock: Callable[[], float], stream_idle_timeout: float,
                 stream_max_age: float) -> None:
        self.clock = clock
        self.stream_idle_timeout = stream_idle_timeout
        self.stream_max_age = stream_max_age
        self.team_id = TEAM_ID
        self.bot_user_id = BOT_USER_ID
        self.bot_id = BOT_ID
        self.app_id = APP_ID

        # records
        self.calls: list[ApiCall] = []
        self.rate_limited = 0
        self.downloads: list[Download] = []
        self.responses: list[PostedResponse] = []
        self.ephemerals: list[JSONDict] = []
        self.deleted: list[StoredMessage] = []
        self.assistant_statuses: list[JSONDict] = []
        self.suggested_prompts: list[JSONDict] = []
        self.envelopes: list[Envelope] = []
        self._ack_due: dict[str, float] = {}
        self._acked_at: dict[str, float] = {}

        # the workspace
        self.users: dict[str, JSONDict] = {}
        self.channels: dict[str, JSONDict] = {}
        self._messages: dict[tuple[str, str], StoredMessage] = {}
        self._streams: list[Stream] = []
        self._files: dict[str, tuple[bytes, JSONDict]] = {}
        self._last_ts_us = 1_700_000_000_000_000
        self._cond: asyncio.Condition | None = None

        self.add_user(ADMIN_USER_ID, "alice", is_admin=True)
        self.add_user(OWNER_USER_ID, "olivia", is_admin=True, is_owner=True, is_primary_owner=True)
        self.add_user(PLAIN_USER_ID, "bob")
        self.add_user(BOT_USER_ID, BOT_NAME, is_bot=True, bot_id=BOT_ID)
        self.add_channel("C1", "general")
        self.add_channel("C2", "random")
        self.add_channel("G1", "secret", is_private=True)
        self.add_channel("D1", is_im=True, user=PLAIN_USER_ID)
        self.add_channel("D2", is_im=True, user=ADMIN_USER_ID)
        self.add_channel("D3", is_im=True, user=OWNER_USER_ID)

    # ------------------------------------------------------------------ people and channels

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        is_admin: bool = False,
        is_owner: bool = False,
        is_primary_owner: bool = False,
        is_bot: bool = False,
        bot_id: str | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Add (or replace) a workspace member returned by ``users.info``."""
        profile: JSONDict = {
            "real_name": name.title(),
            "display_name": name,
            "real_name_normalized": name.title(),
            "display_name_normalized": name,
            "team": TEAM_ID,
        }
        if not is_bot:
            profile["email"] = f"{name}@example.com"
        if bot_id is not None:
            profile["bot_id"] = bot_id
        user: JSONDict = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": name.title(),
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": is_primary_owner,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
            **extra,
        }
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_im: bool = False,
        user: str | None = None,
        is_private: bool = False,
        is_mpim: bool = False,
    ) -> JSONDict:
        """Add (or replace) a conversation."""
        info: JSONDict = {
            "id": channel_id,
            "created": 1_700_000_000,
            "is_archived": False,
            "is_im": is_im,
            "is_mpim": is_mpim,
            "is_private": is_private or is_im or is_mpim,
            "context_team_id": TEAM_ID,
        }
        if is_im:
            info.update({"user": user, "is_user_deleted": False, "is_open": True})
        else:
            info.update({
                "name": name or channel_id.lower(),
                "is_channel": not is_private and not is_mpim,
                "is_group": is_private,
                "is_general": name == "general",
                "is_member": True,
            })
        self.channels[channel_id] = info
        return info

    def channel(self, channel: Any) -> str:
        """A known channel id, or ``channel_not_found``."""
        if not isinstance(channel, str) or channel not in self.channels:
            raise SlackError("channel_not_found")
        return channel

    def is_dm(self, channel: str) -> bool:
        return bool(self.channels[channel].get("is_im"))

    # ------------------------------------------------------------------ messages and files

    def next_ts(self) -> str:
        """A new message ts, strictly after every ts seen so far."""
        self._last_ts_us += 100
        return _format_ts(self._last_ts_us)

    def _see_ts(self, ts: str) -> None:
        with contextlib.suppress(ValueError):
            self._last_ts_us = max(self._last_ts_us, _parse_ts(ts))

    def store(self, msg: StoredMessage) -> StoredMessage:
        self._messages.setdefault((msg.channel, msg.ts), msg)
        return msg

    def delete(self, msg: StoredMessage) -> None:
        """Take a message out of the workspace (kept in ``deleted``)."""
        del self._messages[(msg.channel, msg.ts)]
        self.deleted.append(msg)

    def stored(self, channel: str, ts: Any) -> StoredMessage:
        """A stored message, or ``message_not_found``."""
        msg = self._messages.get((channel, str(ts)))
        if msg is None:
            raise SlackError("message_not_found")
        return msg

    def start_stream(self, msg: StoredMessage, recipient_user_id: str | None,
                     recipient_team_id: str | None) -> Stream:
        now = self.clock()
        msg.stream = Stream(msg.ts, msg.channel, msg.thread_ts or "", recipient_user_id,
                            recipient_team_id, started_at=now, last_active=now)
        self._streams.append(msg.stream)
        return msg.stream

    def streaming(self, stream: Stream) -> bool:
        """Whether ``stream`` still takes text: neither stopped nor expired. Slack ends a stream
        left idle longer than ``stream_idle_timeout`` or older than ``stream_max_age``."""
        if stream.state == "streaming":
            now = self.clock()
            if (now - stream.last_active > self.stream_idle_timeout
                    or now - stream.started_at > self.stream_max_age):
                stream.state = "expired"
        return stream.state == "streaming"

    def add_file(self, name: str, data: bytes, mimetype: str | None = None) -> JSONDict:
        """Host ``data`` and return the Slack file object to put in an event's ``files``."""
        file_id = f"F{len(self._files) + 1:04d}"
        mimetype = mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream"
        filetype = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        url = f"{self.files_url}{TEAM_ID}-{file_id}/"
        obj: JSONDict = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype,
            "user": PLAIN_USER_ID,
            "size": len(data),
            "mode": "hosted",
            "is_external": False,
            "url_private": url + quote(name),
            "url_private_download": url + "download/" + quote(name),
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{PLAIN_USER_ID}/{file_id}/",
        }
        self._files[file_id] = (data, obj)
        return dict(obj)

    def file(self, file_id: str) -> tuple[bytes, JSONDict] | None:
        return self._files.get(file_id)

    @property
    def files_url(self) -> str:
        """Prefix of every ``url_private``: only the running server (FakeSlack) knows it."""
        raise NotImplementedError

    # ------------------------------------------------------------------ what people do

    def _posted(self, channel: str, user: str, text: str, thread_ts: str | None,
                files: Sequence[JSONDict] | None) -> JSONDict:
        """The fields every event about a newly posted message has."""
        ts = self.next_ts()
        event: JSONDict = {
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": TEAM_ID,
            "client_msg_id": str(uuid.uuid4()),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        if files:
            event["files"] = [dict(f) for f in files]
            event["upload"] = False
        return event

    def app_mention(
        self,
        user: str = PLAIN_USER_ID,
        text: str = "",
        channel: str = "C1",
        thread_ts: str | None = None,
        files: Sequence[JSONDict] | None = None,
    ) -> JSONDict:
        """An ``app_mention`` event. ``<@UBOT>`` is prefixed if ``text`` lacks it."""
        if f"<@{BOT_USER_ID}>" not in text:
            text = f"<@{BOT_USER_ID}> {text}".rstrip()
        if channel not in self.channels:
            self.add_channel(channel)
        event = self._posted(channel, user, text, thread_ts, files)
        self.store(StoredMessage(channel, event["ts"], user, text, thread_ts))
        return {"type": "app_mention", **event}

    def message(
        self,
        user: str = PLAIN_USER_ID,
        text: str = "",
        channel: str = "C1",
        thread_ts: str | None = None,
        channel_type: str = "channel",
        files: Sequence[JSONDict] | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
    ) -> JSONDict:
        """A ``message`` event (stored unless from a bot). ``subtype`` is ``file_share`` when
        there are files. ``channel_type``: ``channel`` | ``group`` | ``im`` | ``mpim``; an
        unknown channel is added with that type."""
        if channel not in self.channels:
            self.add_channel(
                channel,
                is_im=channel_type == "im",
                user=user if channel_type == "im" else None,
                is_private=channel_type == "group",
                is_mpim=channel_type == "mpim",
            )
        if files and subtype is None:
            subtype = "file_share"
        event: JSONDict = {"type": "message", "channel_type": channel_type,
                           **self._posted(channel, user, text, thread_ts, files)}
        if bot_id is None:
            self.store(StoredMessage(channel, event["ts"], user, text, thread_ts, subtype=subtype))
        else:
            del event["client_msg_id"]
            event.update({"bot_id": bot_id, "app_id": APP_ID})
        if subtype is not None:
            event["subtype"] = subtype
        if thread_ts is not None:
            parent = self._messages.get((channel, thread_ts))
            event["parent_user_id"] = parent.user if parent is not None else None
        if files:
            event["display_as_bot"] = False
        return event

    def app_home_opened(self, user: str = PLAIN_USER_ID, channel: str = "D1",
                        tab: str = "messages") -> JSONDict:
        """An ``app_home_opened`` event: ``user`` opened the bot's App Home on ``tab``; the
        Messages tab is their DM with the bot, ``channel``. Slack sends one on every visit."""
        if channel not in self.channels:
            self.add_channel(channel, is_im=True, user=user)
        return {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab,
                "event_ts": self.next_ts()}

    def assistant_thread_started(self, channel: str = "D1", thread_ts: str | None = None
                                 ) -> JSONDict:
        """An ``assistant_thread_started`` event (apps with ``assistant_view`` only): the plain
        member opened an AI-assistant thread in a DM with the bot (whose first message, from
        the bot, is stored)."""
        thread_ts = thread_ts or self.next_ts()
        self._see_ts(thread_ts)
        if channel not in self.channels:
            self.add_channel(channel, is_im=True, user=PLAIN_USER_ID)
        self.store(StoredMessage(channel, thread_ts, BOT_USER_ID, "", bot_id=BOT_ID,
                                 subtype="assistant_app_thread"))
        return {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": PLAIN_USER_ID,
                "context": {"channel_id": None, "team_id": TEAM_ID, "enterprise_id": None},
                "channel_id": channel,
                "thread_ts": thread_ts,
            },
            "event_ts": self.next_ts(),
        }

    def edit(self, channel: str, ts: str, text: str | None = None, *,
             preview: bool = False) -> JSONDict:
        """The ``message_changed`` event Slack sends when the stored message ``ts`` changes:
        its author edited its text to ``text``, or (``text`` None) Slack changed something
        else (a link preview with ``preview``, a thread's reply count), the text unchanged.
        Works for the bot's own messages too (Slack tells the app of its own edits)."""
        msg = self.stored(channel, ts)
        before = self._as_event_message(msg)
        if text is not None:
            msg.text = text
        after = self._as_event_message(msg)
        if text is not None and not msg.is_bot:
            after["edited"] = {"user": msg.user, "ts": self.next_ts()}
        if preview:
            after["attachments"] = [{"id": 1, "title": "A page", "from_url": "https://a.example/"}]
        if msg.thread_ts is None and any(m.thread_ts == ts and m.ts != ts
                                         for m in self.messages(channel)):
            after["thread_ts"] = before["thread_ts"] = ts  # a thread's parent
        event_ts = self.next_ts()
        channel_type = ("im" if self.is_dm(channel) else
                        "group" if self.channels[channel].get("is_group") else "channel")
        return {"type": "message", "subtype": "message_changed", "hidden": True,
                "message": after, "previous_message": before, "channel": channel,
                "channel_type": channel_type, "event_ts": event_ts, "ts": event_ts}

    @staticmethod
    def _as_event_message(msg: StoredMessage) -> JSONDict:
        event = msg.to_api()
        if not msg.is_bot:
            event.update({"client_msg_id": str(uuid.uuid4()), "user_team": TEAM_ID})
        return event

    # ------------------------------------------------------------------ what tests read

    def messages(self, channel: str, thread_ts: str | None = None) -> list[StoredMessage]:
        """Messages in ``channel`` ordered by ts; with ``thread_ts``: parent + replies."""
        found = [
            m for (cid, _), m in self._messages.items()
            if cid == channel and (thread_ts is None or thread_ts in (m.ts, m.thread_ts))
        ]
        return sorted(found, key=lambda m: _parse_ts(m.ts))

    def texts(self, channel: str, thread_ts: str | None = None) -> list[str]:
        """What a reader sees of each message the bot posted or streamed in the channel/thread."""
        return [
            m.final_text for m in self.messages(channel, thread_ts)
            if m.is_bot and m.subtype is None
        ]

    @property
    def streams(self) -> list[Stream]:
        """Every stream started, in order."""
        return list(self._streams)

    def expire_stream(self, ts: str) -> None:
        """Slack closes a stream on its side: appending to it then fails."""
        next(s for s in self._streams if s.ts == ts).state = "expired"

    def calls_of(self, method: str, *, ok: bool | None = None) -> list[ApiCall]:
        """Recorded calls of one method (optionally only successful/failed ones)."""
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    @property
    def rate_limited_calls(self) -> list[ApiCall]:
        """Every call answered 429, whatever its method."""
        return [c for c in self.calls if c.status == 429]

    # ------------------------------------------------------------------ acks and waiting

    def expect_ack(self, key: str) -> None:
        """Start the ack deadline of an envelope or HTTP request."""
        self._ack_due[key] = self.clock() + ACK_DEADLINE

    def acked(self, key: str) -> None:
        self._acked_at.setdefault(key, self.clock())

    @property
    def missed_acks(self) -> list[str]:
        """Envelope ids (Socket Mode) and request labels (``deliver``) not acknowledged within
        3 seconds: acknowledged late, or not yet and past the deadline."""
        now = self.clock()
        return [key for key, due in self._ack_due.items() if self._acked_at.get(key, now) > due]

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked on every recorded change)."""
        cond = self._condition()
        async with asyncio.timeout(timeout), cond:
            while not (value := predicate()):
                await cond.wait()
            return value

    async def wait_for_call(
        self,
        method: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> ApiCall:
        """Wait for an answered call of ``method``."""
        return await self.wait_for(
            lambda: next((c for c in self.calls if c.method == method and c.response), None),
            timeout,
        )

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _parse_ts(ts: str) -> int:
    seconds, _, frac = ts.partition(".")
    return int(seconds) * 1_000_000 + int((frac or "0").ljust(6, "0")[:6])
