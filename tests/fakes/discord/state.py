"""The fake guild: its people, roles, channels, threads and messages, and the records of calls."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import mimetypes
import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.discord.models import (
    DM_TYPES,
    JSON,
    THREAD_TYPES,
    Call,
    Edit,
    FakeRole,
    FakeUser,
    Interaction,
    InteractionResponse,
    Perm,
    RateLimitHit,
    now_iso,
    shard_of,
)
from tests.fakes.discord.wire import ApiError

DISCORD_EPOCH_MS = 1_420_070_400_000
BOT_NAME = "GeminiBot"


class DiscordState:
    """One guild: the bot, its owner, an admin, a plain member and another bot; a category
    with the text channel ``general``; a DM with the plain member. Ids are real snowflakes.

    ``add_guild`` adds more guilds (for sharding): the same people and roles, each guild with
    its own @everyone role and a ``general`` channel."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._last_id = 0
        self._changed = asyncio.Event()

        # records
        self.calls: list[Call] = []
        self.rate_limited: list[RateLimitHit] = []
        self.interaction_responses: list[InteractionResponse] = []
        self.identifies: list[JSON] = []

        # data
        self.users: dict[int, FakeUser] = {}
        self.roles: dict[int, FakeRole] = {}
        self.channels: dict[int, JSON] = {}
        self.commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.command_ids: dict[tuple[int | None, str], int] = {}
        self.messages: dict[int, JSON] = {}  # every message by id, ephemeral ones too
        self.channel_messages: dict[int, list[int]] = {}  # ids, oldest first, not ephemeral
        self.edits: dict[int, list[Edit]] = {}
        self._files: dict[int, tuple[str, bytes, str]] = {}
        self.created_threads: list[int] = []

        self.application_id = self.next_id()
        self.guild_id = self.next_id()
        self.guild_name = "Fake Guild"
        self.guild_names: dict[int, str] = {self.guild_id: self.guild_name}
        self.bot_user = self.add_user(BOT_NAME, bot=True, user_id=self.application_id)
        self.owner_user = self.add_user("guild-owner")
        self.admin_user = self.add_user("alice-admin")
        self.plain_user = self.add_user("bob")
        self.other_bot = self.add_user("OtherBot", bot=True)

        self.everyone_role_id = self.guild_id
        self.roles[self.guild_id] = FakeRole(self.guild_id, "@everyone", Perm.EVERYONE_DEFAULT)
        self.bot_role_id = self._add_role(BOT_NAME, Perm.BOT_DEFAULT, bot_id=self.bot_user.id)
        self.admin_role_id = self._add_role(
            "Moderators", Perm.MANAGE_CHANNELS | Perm.MANAGE_MESSAGES | Perm.MANAGE_THREADS
        )
        other_bot_role = self._add_role("OtherBot", Perm.EVERYONE_DEFAULT, bot_id=self.other_bot.id)
        self.bot_user.roles.append(self.bot_role_id)
        self.admin_user.roles.append(self.admin_role_id)
        self.other_bot.roles.append(other_bot_role)

        self.category_id = self._add_channel("Text Channels", type=4)
        self.text_channel_id = self._add_channel("general", parent_id=self.category_id)
        self.dm_channel_id = self.dm_channel_for(self.plain_user)

    # ------------------------------------------------------------------ ids & waiting

    def next_id(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        self._last_id = max(ms << 22, self._last_id + 1)
        return self._last_id

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every state change); return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not (result := predicate()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("FakeDiscord.wait_until timed out")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
        return result

    def calls_to(self, method: str, path_pattern: str) -> list[Call]:
        """Calls with ``method`` whose path ``re.fullmatch``es ``path_pattern``."""
        rx = re.compile(path_pattern)
        return [c for c in self.calls if c.method == method and rx.fullmatch(c.path)]

    @property
    def unknown_calls(self) -> list[Call]:
        """Requests no route of the fake answers: a call the bot makes that the fake lacks."""
        return [c for c in self.calls if not c.known]

    # ------------------------------------------------------------------ people and channels

    def user(self, user: FakeUser | int) -> FakeUser:
        uid = user.id if isinstance(user, FakeUser) else int(user)
        try:
            return self.users[uid]
        except KeyError:
            raise LookupError(f"unknown user {uid}") from None

    def add_user(self, username: str, *, bot: bool = False, user_id: int | None = None
                 ) -> FakeUser:
        """Create a guild member."""
        user = FakeUser(
            id=user_id or self.next_id(),
            username=username,
            bot=bot,
            global_name=None if bot else username.title(),
        )
        self.users[user.id] = user
        return user

    def _add_role(self, name: str, permissions: int, *, bot_id: int | None = None) -> int:
        rid = self.next_id()
        self.roles[rid] = FakeRole(rid, name, permissions, len(self.roles), bot_id)
        return rid

    def _add_channel(self, name: str, *, type: int = 0, parent_id: int | None = None,
                     guild_id: int | None = None) -> int:
        cid = self.next_id()
        gid = guild_id or self.guild_id
        self.channels[cid] = {
            "id": str(cid),
            "type": type,
            "guild_id": str(gid),
            "name": name,
            "position": sum(1 for c in self.channels.values()
                            if "position" in c and c["guild_id"] == str(gid)),
            "parent_id": str(parent_id) if parent_id else None,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "permission_overwrites": [],
            "last_message_id": None,
            "flags": 0,
            "default_auto_archive_duration": 1440,
        }
        self.channel_messages[cid] = []
        return cid

    def _add_guild(self, name: str, shard: tuple[int, int] | None) -> tuple[int, int]:
        """A guild (on shard ``(id, count)`` when given) with its @everyone role and a
        ``general`` channel; returns their ids."""
        gid = self.next_id()
        if shard is not None:
            while shard_of(gid, shard[1]) != shard[0]:
                gid = ((gid >> 22) + 1) << 22  # the next millisecond's first id
            self._last_id = gid
        self.guild_names[gid] = name
        self.roles[gid] = FakeRole(gid, "@everyone", Perm.EVERYONE_DEFAULT)
        return gid, self._add_channel("general", guild_id=gid)

    def _set_overwrite(self, channel_id: int, target_id: int, allow: int, deny: int) -> JSON:
        """A role's permission overwrite on a channel (``target_id`` is a role id)."""
        ch = self.channel(channel_id)
        ows = [o for o in ch["permission_overwrites"] if int(o["id"]) != target_id]
        ows.append({"id": str(target_id), "type": 0, "allow": str(allow), "deny": str(deny)})
        ch["permission_overwrites"] = ows
        return ch

    def channel(self, channel_id: int | str) -> JSON:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise ApiError(404, "Unknown Channel", 10003) from None

    def channel_guild_id(self, channel_id: int) -> int | None:
        ch = self.channels.get(channel_id)
        return int(ch["guild_id"]) if ch and "guild_id" in ch else None

    def make_thread(
        self,
        parent_id: int,
        name: str,
        *,
        owner_id: int,
        thread_id: int | None = None,
        auto_archive_duration: int = 1440,
    ) -> JSON:
        """A public thread in ``parent_id`` (a thread started from a message has its id)."""
        if self.channel(parent_id)["type"] in THREAD_TYPES + DM_TYPES:
            raise ApiError(400, "Cannot create a thread here", 50024)
        tid = thread_id or self.next_id()
        now = now_iso()
        thread: JSON = {
            "id": str(tid),
            "type": 11,
            "guild_id": str(self.guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "rate_limit_per_user": 0,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": auto_archive_duration,
                "archive_timestamp": now,
                "locked": False,
                "invitable": True,
                "create_timestamp": now,
            },
        }
        self.channels[tid] = thread
        self.channel_messages[tid] = []
        return thread

    def dm_channel_for(self, user: FakeUser | int) -> int:
        """Id of the DM channel between the bot and ``user`` (created if needed)."""
        person = self.user(user)
        for cid, ch in self.channels.items():
            if ch["type"] == 1 and int(ch["recipients"][0]["id"]) == person.id:
                return cid
        cid = self.next_id()
        self.channels[cid] = {
            "id": str(cid),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [person.payload()],
        }
        self.channel_messages[cid] = []
        return cid

    def add_attachment_file(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        channel_id: int | None = None,
        **extra: Any,
    ) -> JSON:
        """Store bytes served by the fake and return an attachment payload for
        ``send_message(attachments=...)``; ``extra`` (e.g. ``size``) is merged into it."""
        aid = self.next_id()
        safe = re.sub(r"[^\w.\-]", "_", filename) or "file"
        ctype = content_type or mimetypes.guess_type(safe)[0] or "application/octet-stream"
        self._files[aid] = (safe, bytes(data), ctype)
        url = f"{self.base_url}/attachments/{channel_id or self.text_channel_id}/{aid}/{safe}"
        payload: JSON = {
            "id": str(aid),
            "filename": safe,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": ctype,
        }
        payload.update(extra)
        return payload

    def attachment(self, attachment_id: int, filename: str) -> tuple[bytes, str] | None:
        """The bytes and content type of a stored attachment, if the name matches."""
        entry = self._files.get(attachment_id)
        return (entry[1], entry[2]) if entry is not None and entry[0] == filename else None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: only the running server (FakeDiscord) knows it."""
        raise NotImplementedError

    # ------------------------------------------------------------------ permissions

    def base_permissions(self, user: FakeUser | int, guild_id: int | None = None) -> int:
        u = self.user(user)
        if u.id == self.owner_user.id:
            return Perm.ALL
        perms = self.roles[guild_id or self.everyone_role_id].permissions
        for rid in u.roles:
            if rid in self.roles:
                perms |= self.roles[rid].permissions
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def permissions_in(self, channel_id: int, user: FakeUser | int) -> int:
        """Discord's permission algorithm (roles + role overwrites; threads use the parent)."""
        ch = self.channel(channel_id)
        if ch["type"] in DM_TYPES:
            return Perm.DM
        if ch["type"] in THREAD_TYPES:
            ch = self.channel(ch["parent_id"])
        u = self.user(user)
        everyone = int(ch["guild_id"])  # the @everyone role has the guild's id
        perms = self.base_permissions(u, everyone)
        if perms == Perm.ALL:
            return perms
        ows = {int(o["id"]): o for o in ch.get("permission_overwrites", [])}
        if (ow := ows.get(everyone)) is not None:
            perms = (perms & ~int(ow["deny"])) | int(ow["allow"])
        allow = deny = 0
        for rid in u.roles:
            if (ow := ows.get(rid)) is not None:
                allow |= int(ow["allow"])
                deny |= int(ow["deny"])
        return (perms & ~deny) | allow

    def require(self, channel_id: int, perm: int) -> None:
        """Refuse the bot's request with 50013 unless it has ``perm`` in the channel."""
        if not self.permissions_in(channel_id, self.bot_user) & perm:
            raise ApiError(403, "Missing Permissions", 50013)

    # ------------------------------------------------------------------ what tests read

    def get_message(self, message_id: int | str) -> JSON:
        """Current stored payload (REST shape) of a message, including ephemeral ones."""
        return copy.deepcopy(self.messages[int(message_id)])

    def message_payloads_in(self, channel_id: int) -> list[JSON]:
        ids = self.channel_messages.get(channel_id, [])
        return [copy.deepcopy(self.messages[m]) for m in ids]

    def messages_in(self, channel_id: int) -> list[str]:
        """Current content of each (non-ephemeral) message, oldest first."""
        return [self.messages[m]["content"] for m in self.channel_messages.get(channel_id, [])]

    def edits_of(self, message_id: int | str) -> list[Edit]:
        return list(self.edits.get(int(message_id), []))

    @property
    def threads(self) -> list[JSON]:
        """Thread channels the bot created, current payloads."""
        return [copy.deepcopy(self.channels[t]) for t in self.created_threads]

    @property
    def modals(self) -> list[JSON]:
        return [r.data or {} for r in self.interaction_responses if r.type == 9]
