from __future__ import annotations
import asyncio, logging
import discord
from discord import app_commands
from discord.ext import commands
from tests.fakes.discord_server import FakeDiscord
from tests.test_fake_discord import RecordingClient, _intents

async def test_extra(caplog) -> None:
    caplog.set_level(logging.WARNING)
    import sys; h = logging.StreamHandler(sys.stdout); h.setLevel(logging.DEBUG); lg = logging.getLogger("discord"); lg.addHandler(h); lg.setLevel(logging.DEBUG)
    async with FakeDiscord(edit_limit=2, edit_window=0.3, interaction_ack_timeout=1.0) as fake:
        with fake.patch_discord():
            bot = commands.Bot(command_prefix="!", intents=_intents(), guild_ready_timeout=0.05)
            got: list[discord.Message] = []
            async def no_wait(shard_id, *, initial=False): return None
            bot.before_identify_hook = no_wait
            results: dict = {}

            @bot.event
            async def on_message(message: discord.Message) -> None:
                got.append(message)

            @bot.tree.command(name="chat", description="chat")
            @app_commands.describe(who="someone", file="a file")
            async def chat(interaction: discord.Interaction, who: discord.Member, file: discord.Attachment, where: discord.TextChannel | None = None) -> None:
                results["who"] = who
                results["file"] = await file.read()
                results["where"] = where
                await interaction.response.defer(thinking=True)
                for i in range(4):
                    await interaction.edit_original_response(content=f"part {i}")
                orig = await interaction.original_response()
                results["orig"] = orig.content
                fu = await interaction.followup.send("followup", wait=True)
                await fu.edit(content="followup edited")
                await interaction.followup.send("eph", ephemeral=True, view=V())
                await fu.delete()

            class V(discord.ui.View):
                @discord.ui.button(label="x", custom_id="x")
                async def x(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
                    results["clicked"] = True
                    await interaction.response.send_message("clicked reply")

            async with fake.client_running(bot):
                await bot.tree.sync()
                ch = bot.get_channel(fake.text_channel_id)
                att = fake.add_attachment_file("a.bin", b"\x00\x01")
                p = await fake.slash_command(fake.text_channel_id, fake.admin_user, "chat", {"who": fake.plain_user, "file": att, "where": fake.text_channel_id})
                await fake.wait_until(lambda: len(fake.followups) >= 2, within=5)
                await asyncio.sleep(0.1)
                print("results", results)
                print("msgs", fake.messages_in(fake.text_channel_id))
                print("edits", [(round(e.at,2), e.content) for e in fake.edits_of(int(fake.interaction_responses[0].message_id))])
                print("rl", fake.rate_limited)
                eph = fake.followups[-1]
                print("eph flags", eph["flags"], eph["components"])
                ci = await fake.click_button(eph["id"], "x", fake.admin_user)
                await fake.wait_for_interaction_response(ci)
                await fake.wait_until(lambda: "clicked reply" in fake.messages_in(fake.text_channel_id))
                print("clicked", results.get("clicked"))

                # thread without message, DM, reaction, delete
                t = await ch.create_thread(name="solo", type=discord.ChannelType.public_thread)
                print("thread", t, t.type)
                m = await t.send("x")
                await m.add_reaction("👍")
                print("reactions", fake.get_message(m.id)["reactions"])
                await m.delete()
                user = await bot.fetch_user(fake.plain_user.id)
                dm = await user.send("hi in dm")
                print("dm", dm.channel, fake.messages_in(fake.dm_channel_id))

                # own message ignored by commands.Bot processing; on_message got it
                print("own echo count", sum(1 for g in got if g.author == bot.user))

                # invalidate -> reidentify
                await fake.invalidate_sessions()
                await fake.wait_for_identify(2, within=5)
                await fake.wait_until(lambda: fake.connected_sessions == 1)
                await fake.drop_connections(4000)
                await fake.wait_until(lambda: fake.resumes, within=5)
                await fake.wait_until(lambda: fake.connected_sessions == 1)
                await fake.send_message(fake.text_channel_id, fake.plain_user, "still here")
                await fake.wait_until(lambda: any(g.content == "still here" for g in got))
                print("identifies", len(fake.identifies), "resumes", fake.resumes)

                # ack timeout
                p2 = await fake.slash_command(fake.text_channel_id, fake.admin_user, "chat", {"who": fake.plain_user, "file": att})
            print("unknown", fake.unknown_calls)
    errs = [r for r in caplog.records if r.levelno >= logging.ERROR]
    for r in errs: print("ERR", r.name, r.getMessage()[:300])
