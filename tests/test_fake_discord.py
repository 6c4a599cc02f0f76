"""The fake Discord works with the real discord.py client (REST, gateway, interactions)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.http import Route

from tests.fakes.discord import FakeDiscord, Perm
from tests.support.clock import FakeClock


def _intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    return intents


class RecordingClient(discord.Client):
    """A client that records every on_message it gets."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            intents=kwargs.pop("intents", _intents()), guild_ready_timeout=0.05, **kwargs
        )  # type: ignore[arg-type]
        self.received: list[discord.Message] = []
        self.got_message = asyncio.Event()

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)
        self.got_message.set()

    async def next_message(self, *, from_others: bool = True) -> discord.Message:
        async def wait() -> discord.Message:
            while True:
                for msg in self.received:
                    if not from_others or (self.user is not None and msg.author.id != self.user.id):
                        self.received.remove(msg)
                        return msg
                self.got_message.clear()
                await self.got_message.wait()

        return await asyncio.wait_for(wait(), 3.0)


@pytest.fixture(autouse=True)
def no_discord_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """discord.py swallows (and logs) exceptions raised in event/command callbacks."""
    caplog.set_level(logging.WARNING, logger="discord")
    yield
    errors = [
        r
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(edit_limit=3, edit_window=0.4) as server:
        with server.patch_discord():
            yield server


async def test_patch_discord_restores_urls() -> None:
    before = Route.BASE
    async with FakeDiscord() as server:
        with server.patch_discord():
            assert server.api_url == Route.BASE
            assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == server.gateway_url
        assert before == Route.BASE


async def test_connect_ready_guild_and_permissions(fake: FakeDiscord) -> None:
    existing_thread = await fake.add_thread(fake.text_channel_id, "old thread")
    client = RecordingClient()
    async with fake.client_running(client):
        assert client.user is not None and client.user.id == fake.bot_user.id
        assert client.application_id == fake.application_id
        guild = client.get_guild(fake.guild_id)
        assert guild is not None and not guild.unavailable
        assert guild.owner_id == fake.owner_user.id
        channel = guild.get_channel(fake.text_channel_id)
        assert isinstance(channel, discord.TextChannel) and channel.name == "general"
        thread = guild.get_thread(existing_thread)
        assert thread is not None and thread.parent_id == fake.text_channel_id

        moderators = guild.get_role(fake.admin_role_id)
        assert moderators is not None and moderators.permissions.manage_channels
        assert not guild.default_role.permissions.manage_channels
        assert channel.permissions_for(guild.default_role).send_messages
        assert channel.permissions_for(guild.me).create_public_threads

        identify = fake.identifies[0]
        assert identify["intents"] == _intents().value
        assert fake.calls_to("GET", "/users/@me") and fake.calls_to(
            "GET", "/oauth2/applications/@me"
        )
    assert fake.unknown_calls == []
    assert fake.connected_sessions == 0


async def test_incoming_message_with_attachment_mention_and_reply(fake: FakeDiscord) -> None:
    client = RecordingClient()
    async with fake.client_running(client):
        first = await fake.send_message(fake.text_channel_id, fake.plain_user, "first")
        await client.next_message()
        sent = await fake.send_message(
            fake.text_channel_id,
            fake.plain_user,
            "what is in this file?",
            attachments=[("notes.txt", b"hello attachment", "text/plain")],
            mentions_bot=True,
            reference_message_id=first["id"],
        )
        msg = await client.next_message()
        assert msg.id == int(sent["id"])
        assert msg.content == f"<@{fake.bot_user.id}> what is in this file?"
        assert client.user in msg.mentions
        assert isinstance(msg.author, discord.Member) and msg.author.id == fake.plain_user.id
        assert msg.reference is not None and msg.reference.message_id == int(first["id"])
        assert isinstance(msg.reference.resolved, discord.Message)
        assert msg.reference.resolved.content == "first"
        (att,) = msg.attachments
        assert (att.filename, att.content_type, att.size) == ("notes.txt", "text/plain", 16)
        assert await att.read() == b"hello attachment"

        dm = await fake.send_message(fake.dm_channel_id, fake.plain_user, "psst")
        dm_msg = await client.next_message()
        assert dm_msg.id == int(dm["id"]) and isinstance(dm_msg.channel, discord.DMChannel)
        assert dm_msg.guild is None and dm_msg.content == "psst"

        await fake.send_message(fake.text_channel_id, fake.other_bot, "beep")
        bot_msg = await client.next_message()
        assert bot_msg.author.bot


async def test_without_message_content_intent_content_is_blank(fake: FakeDiscord) -> None:
    intents = _intents()
    intents.message_content = False
    client = RecordingClient(intents=intents)
    async with fake.client_running(client):
        await fake.send_message(fake.text_channel_id, fake.plain_user, "secret")
        assert (await client.next_message()).content == ""
        await fake.send_message(fake.text_channel_id, fake.plain_user, "hey", mentions_bot=True)
        assert (await client.next_message()).content.endswith("hey")


async def test_send_edit_thread_reply_and_own_echo(fake: FakeDiscord) -> None:
    client = RecordingClient()
    async with fake.client_running(client):
        channel = client.get_channel(fake.text_channel_id)
        assert isinstance(channel, discord.TextChannel)
        async with channel.typing():
            msg = await channel.send("hello")
        echo = await client.next_message(from_others=False)
        assert echo.id == msg.id and echo.author == client.user

        edited = await msg.edit(content="hello world")
        assert edited.content == "hello world" and edited.edited_at is not None
        assert [e.content for e in fake.edits_of(msg.id)] == ["hello world"]

        thread = await msg.create_thread(name="Gemini chat")
        assert thread.id == msg.id and thread.parent_id == channel.id
        await fake.wait_until(lambda: client.get_channel(thread.id) is not None)
        await thread.send("inside")

        reply = await channel.send("a reply", reference=msg)
        assert reply.reference is not None and reply.reference.message_id == msg.id

        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.code == 50035

    assert fake.messages_in(fake.text_channel_id) == ["hello world", "a reply"]
    assert fake.messages_in(thread.id) == ["inside"]
    assert [t["name"] for t in fake.threads] == ["Gemini chat"]
    assert fake.calls_to("POST", rf"/channels/{fake.text_channel_id}/typing")
    (create_thread,) = fake.calls_to(
        "POST", rf"/channels/{fake.text_channel_id}/messages/\d+/threads"
    )
    assert create_thread.json["name"] == "Gemini chat"
    (reply_call,) = [
        c
        for c in fake.calls_to("POST", r"/channels/\d+/messages")
        if c.json.get("message_reference")
    ]
    assert reply_call.json["message_reference"]["message_id"] == msg.id  # discord.py sends an int
    assert fake.unknown_calls == []


async def test_edit_rate_limit_429_is_waited_out() -> None:
    async with FakeDiscord(edit_limit=2, edit_window=0.3, ratelimit_headers=False) as fake:
        with fake.patch_discord():
            client = RecordingClient()
            async with fake.client_running(client):
                channel = client.get_channel(fake.text_channel_id)
                assert isinstance(channel, discord.TextChannel)
                msg = await channel.send("v0")
                for i in range(1, 6):
                    await msg.edit(content=f"v{i}")
    assert fake.messages_in(fake.text_channel_id) == ["v5"]
    assert [e.content for e in fake.edits_of(msg.id)] == [f"v{i}" for i in range(1, 6)]
    assert len(fake.rate_limited) >= 1
    hit = fake.rate_limited[0]
    assert hit.method == "PATCH" and 0 < hit.retry_after <= 0.31
    statuses = [
        c.status for c in fake.calls_to("PATCH", rf"/channels/{fake.text_channel_id}/messages/\d+")
    ]
    assert statuses.count(429) == len(fake.rate_limited) and statuses.count(200) == 5


async def test_edit_rate_limit_headers_make_discord_py_pace_itself(fake: FakeDiscord) -> None:
    client = RecordingClient()
    async with fake.client_running(client):
        channel = client.get_channel(fake.text_channel_id)
        assert isinstance(channel, discord.TextChannel)
        msg = await channel.send("v0")
        started = time.monotonic()
        for i in range(1, 5):
            await msg.edit(content=f"v{i}")
        elapsed = time.monotonic() - started
    assert fake.rate_limited == []
    assert elapsed >= 0.3  # 4 edits with a 3-per-0.4s bucket: discord.py slept on Remaining: 0
    patch = fake.calls_to("PATCH", rf"/channels/{fake.text_channel_id}/messages/\d+")
    assert [c.status for c in patch] == [200] * 4


async def test_app_commands_sync_slash_ephemeral_followup_and_modal(fake: FakeDiscord) -> None:
    seen: dict[str, object] = {}

    class ConfigModal(discord.ui.Modal, title="Gemini settings"):
        model: discord.ui.TextInput[ConfigModal] = discord.ui.TextInput(
            label="Model", custom_id="model"
        )

        async def on_submit(self, interaction: discord.Interaction) -> None:
            seen["model"] = self.model.value
            await interaction.response.send_message(
                f"model set to {self.model.value}", ephemeral=True
            )

    gemini = app_commands.Group(name="gemini", description="Talk to Gemini")
    admin = app_commands.Group(name="admin", description="Admin tools", parent=gemini)

    @gemini.command(name="ask", description="Ask a question")
    async def ask(interaction: discord.Interaction, prompt: str, temperature: float = 0.5) -> None:
        seen["ask"] = (prompt, temperature)
        await interaction.response.send_message(f"thinking about {prompt}", ephemeral=True)
        await interaction.followup.send("more", ephemeral=True)

    @gemini.command(name="config", description="Configure")
    async def config(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(ConfigModal(custom_id="gemini-config"))

    @admin.command(name="reset", description="Reset the conversation")
    async def reset(interaction: discord.Interaction) -> None:
        seen["reset_perms"] = interaction.permissions.manage_channels
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("conversation reset")

    client = RecordingClient()
    tree = app_commands.CommandTree(client)
    tree.add_command(gemini)
    async with fake.client_running(client):
        synced = await tree.sync()
        assert [c.name for c in synced] == ["gemini"]
        (put,) = fake.calls_to("PUT", rf"/applications/{fake.application_id}/commands")
        assert {o["name"] for o in put.json[0]["options"]} == {"ask", "config", "admin"}

        interaction = await fake.slash_command(
            fake.text_channel_id, fake.plain_user, "gemini ask", {"prompt": "why?"}
        )
        assert interaction["data"]["options"][0] == {
            "name": "ask",
            "type": 1,
            "options": [{"name": "prompt", "type": 3, "value": "why?"}],
        }
        resp = await fake.wait_for_interaction_response(interaction)
        assert resp.type == 4 and resp.ephemeral and resp.data is not None
        assert resp.data["content"] == "thinking about why?"
        (more,) = await fake.wait_until(lambda: fake.calls_to("POST", r"/webhooks/\d+/[^/]+"))
        assert more.json["content"] == "more" and more.json["flags"] & 64
        assert seen["ask"] == ("why?", 0.5)
        assert fake.messages_in(fake.text_channel_id) == []  # ephemeral stays out of the channel

        opened = await fake.slash_command(fake.text_channel_id, fake.plain_user, "gemini config")
        modal_resp = await fake.wait_for_interaction_response(opened)
        assert modal_resp.type == 9 and fake.modals[0]["custom_id"] == "gemini-config"
        submitted = await fake.submit_modal(
            "gemini-config", fake.plain_user, {"model": "gemini-pro"}
        )
        sub_resp = await fake.wait_for_interaction_response(submitted)
        assert seen["model"] == "gemini-pro"
        assert sub_resp.data is not None and sub_resp.data["content"] == "model set to gemini-pro"

        reset_call = await fake.slash_command(
            fake.text_channel_id, fake.admin_user, "gemini admin reset"
        )
        assert (await fake.wait_for_interaction_response(reset_call)).type == 5
        await fake.wait_until(
            lambda: "conversation reset" in fake.messages_in(fake.text_channel_id)
        )
        assert seen["reset_perms"] is True
        # the first followup after a defer replaced the "thinking" message
        assert fake.messages_in(fake.text_channel_id) == ["conversation reset"]

        await fake.slash_command(fake.text_channel_id, fake.plain_user, "gemini admin reset")
        reset_twice = ["conversation reset", "conversation reset"]
        await fake.wait_until(lambda: fake.messages_in(fake.text_channel_id) == reset_twice)
        assert seen["reset_perms"] is False

        with pytest.raises(LookupError):
            await fake.slash_command(fake.text_channel_id, fake.plain_user, "unknown")
        with pytest.raises(ValueError, match="missing required"):
            await fake.slash_command(fake.text_channel_id, fake.plain_user, "gemini ask")
    assert fake.unknown_calls == []


async def test_guild_command_sync_and_double_ack_is_rejected(fake: FakeDiscord) -> None:
    client = RecordingClient()
    tree = app_commands.CommandTree(client)
    errors: list[Exception] = []

    @tree.command(name="ping", description="Ping", guild=discord.Object(fake.guild_id))
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong")
        try:
            await interaction.response.defer()
        except discord.InteractionResponded as exc:  # discord.py guards locally ...
            errors.append(exc)

    async with fake.client_running(client):
        await tree.sync(guild=discord.Object(fake.guild_id))
        assert [c["name"] for c in fake.guild_commands[fake.guild_id]] == ["ping"]
        payload = await fake.slash_command(fake.text_channel_id, fake.plain_user, "ping")
        assert payload["data"]["guild_id"] == str(fake.guild_id)
        await fake.wait_until(lambda: fake.messages_in(fake.text_channel_id) == ["pong"])
        assert errors
        # ... and the fake refuses a second callback like Discord does (40060).
        session = client.http._HTTPClient__session  # type: ignore[attr-defined]
        url = f"{fake.api_url}/interactions/{payload['id']}/{payload['token']}/callback"
        async with session.post(url, json={"type": 4, "data": {"content": "again"}}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060


async def test_button_click_reaches_view_callback(fake: FakeDiscord) -> None:
    clicked: list[int] = []

    class Confirm(discord.ui.View):
        @discord.ui.button(label="Confirm", custom_id="confirm", style=discord.ButtonStyle.green)
        async def confirm(
            self, interaction: discord.Interaction, button: discord.ui.Button[Confirm]
        ) -> None:
            clicked.append(interaction.user.id)
            await interaction.response.send_message("confirmed", ephemeral=True)

    client = RecordingClient()
    async with fake.client_running(client):
        channel = client.get_channel(fake.text_channel_id)
        assert isinstance(channel, discord.TextChannel)
        msg = await channel.send("Are you sure?", view=Confirm())
        assert fake.get_message(msg.id)["components"][0]["components"][0]["custom_id"] == "confirm"
        with pytest.raises(LookupError):
            await fake.click_button(msg.id, "nope", fake.plain_user)
        interaction = await fake.click_button(msg.id, "confirm", fake.plain_user)
        resp = await fake.wait_for_interaction_response(interaction)
        assert resp.type == 4 and resp.ephemeral and resp.data is not None
        assert resp.data["content"] == "confirmed"
        assert clicked == [fake.plain_user.id]
        assert fake.messages_in(fake.text_channel_id) == ["Are you sure?"]


async def test_unknown_route_is_404_and_recorded(fake: FakeDiscord) -> None:
    client = RecordingClient()
    async with fake.client_running(client):
        with pytest.raises(discord.NotFound):
            await client.http.request(Route("GET", "/definitely/not/a/route"))
    (unknown,) = fake.unknown_calls
    assert (unknown.method, unknown.path, unknown.status) == ("GET", "/definitely/not/a/route", 404)


async def test_permissions_model(fake: FakeDiscord) -> None:
    channel = fake.text_channel_id
    assert fake.permissions_in(channel, fake.admin_user) & Perm.MANAGE_CHANNELS
    assert not fake.permissions_in(channel, fake.plain_user) & Perm.MANAGE_CHANNELS
    assert fake.permissions_in(channel, fake.owner_user) == Perm.ALL
    await fake.set_overwrite(channel, fake.guild_id, deny=Perm.SEND_MESSAGES)
    assert not fake.permissions_in(channel, fake.plain_user) & Perm.SEND_MESSAGES
    assert fake.permissions_in(channel, fake.admin_user) & Perm.VIEW_CHANNEL


async def test_an_interaction_answered_after_three_seconds_is_unknown() -> None:
    clock = FakeClock()
    refused: list[discord.NotFound] = []
    client = RecordingClient()
    tree = app_commands.CommandTree(client)

    def answering_after(seconds: float) -> app_commands.Command[Any, ..., None]:
        async def answer(interaction: discord.Interaction) -> None:
            clock.now += seconds  # the work took this long before the answer
            try:
                await interaction.response.send_message(f"after {seconds}s")
            except discord.NotFound as exc:
                refused.append(exc)

        return app_commands.Command(name=f"after{int(seconds * 10)}",
                                    description="Answers late", callback=answer)

    for seconds in (0.0, 3.0, 3.5):
        tree.add_command(answering_after(seconds))
    async with FakeDiscord(clock=clock) as fake:
        with fake.patch_discord():
            async with fake.client_running(client):
                await tree.sync()
                for done, name in enumerate(("after0", "after30", "after35"), start=1):
                    await fake.slash_command(fake.text_channel_id, fake.plain_user, name)
                    await fake.wait_until(
                        lambda done=done: len(fake.interaction_responses) + len(refused) == done)

    assert fake.messages_in(fake.text_channel_id) == ["after 0.0s", "after 3.0s"]
    (late,) = refused
    assert (late.status, late.code) == (404, 10062)
