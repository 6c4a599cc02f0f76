"""Figures for Discord's edit pace: the real client and core against the fake Discord.

A 70-word answer streams from the fake model API in 35 chunks 0.1 s apart; the bot draws it
at Discord's real pace (the default tuning: one edit a second per message). Printed: how many
edits the reply took, how far apart the post and edits landed at the fake, and how late each
chunk became visible (from the moment the model sent it).

    python bench/discord_edit_pace.py [--words 70] [--delay 0.1]

The schedule itself is asserted on a virtual clock in tests/test_discord_adapter.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.discord_bot.app import GeminiClient  # noqa: E402
from adapters.discord_bot.settings import DiscordSettings  # noqa: E402
from adapters.discord_bot.surface import DISCORD_TUNING  # noqa: E402
from bot.app import open_core  # noqa: E402
from bot.config import load_settings  # noqa: E402
from tests.fakes.discord import FakeDiscord  # noqa: E402
from tests.fakes.model_server import FakeModelServer, Reply, split_text  # noqa: E402

API_KEY = "bench-key"


async def measure(words: int, delay: float) -> None:
    chunks = split_text(" ".join(f"word{i}" for i in range(words)), 2)
    with tempfile.TemporaryDirectory() as folder:
        async with FakeModelServer(api_key=API_KEY) as model_api, FakeDiscord() as fake:
            model_api.script("direct", Reply(chunks=chunks, delay_between_chunks=delay))
            settings = load_settings(
                evolink_api_key=API_KEY, evolink_direct_url=model_api.direct_url,
                evolink_api_url=model_api.api_url,
                database_url=f"sqlite+aiosqlite:///{folder}/bench.db", _env_file=None,
            )
            discord = DiscordSettings.load(bot_token=fake.token, api_url=fake.api_url,
                                           gateway_url=fake.gateway_url, _env_file=None)
            with fake.patch_discord():
                async with open_core(settings) as core:
                    client = GeminiClient(core, discord, DISCORD_TUNING,
                                          guild_ready_timeout=0.05)
                    async with fake.client_running(client):
                        question = await fake.send_message(
                            fake.text_channel_id, fake.plain_user, "stream", mentions_bot=True)
                        await fake.wait_until(lambda: model_api.requests, within=10)
                        await client.idle()

    thread = int(question["id"])
    (answer,) = fake.message_payloads_in(thread)
    post = fake.calls_to("POST", rf"/channels/{thread}/messages")[0]
    shown = [(post.at, str(post.json["content"]))]
    shown += [(edit.at, edit.content or "") for edit in fake.edits_of(answer["id"])]
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(shown)]
    sent_at = model_api.requests[0].time
    lags = []
    for index in range(len(chunks)):
        needed = len("".join(chunks[: index + 1]))
        visible = next(at for at, text in shown if len(text) >= needed)
        lags.append(visible - (sent_at + index * delay))
    print(f"Discord pacing: {len(chunks)} chunks over {(len(chunks) - 1) * delay:.1f}s, "
          f"1 post + {len(shown) - 1} edits, complete: {answer['content'] == ''.join(chunks)}")
    print(f"  post and edits {min(gaps):.2f}-{max(gaps):.2f}s apart")
    print(f"  lag chunk->visible: median {statistics.median(lags):.2f}s, max {max(lags):.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=70)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds between chunks")
    args = parser.parse_args()
    asyncio.run(measure(args.words, args.delay))


if __name__ == "__main__":
    main()
