"""Peak memory of a Discord-only bot: the real `python -m bot` process against the fake Discord
and the fake model API (both in this process), on an already migrated SQLite file.

The bot answers `--answers` mentions, `--concurrency` at a time, each a ~600-word answer
streamed in 300 chunks (`--chunk-delay` seconds apart), drawn with Discord's real pacing and
split over two messages. It runs twice: as the container image runs it (PYTHONOPTIMIZE=2 and
PYTHONNODEBUGRANGES=1), then plainly, each time with its bytecode compiled ahead as the
image's build does: a warm-up run of one answer writes it to a bytecode folder of the bench's
own (PYTHONPYCACHEPREFIX); the measured run reads it and writes nothing. Printed for each: the
bot's resident memory once connected and its peak (VmHWM) after the answers; then, for the
image's way, what the imports alone cost, package by package (resident memory of a fresh
interpreter after importing each in turn).

    python bench/memory.py [--answers 50] [--concurrency 10] [--chunk-delay 0.01]

Linux only (reads /proc/<pid>/status).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.discord_bot.controls import STOP_ID  # noqa: E402
from bot.storage.database import migrate, open_database  # noqa: E402
from tests.fakes.discord import FakeDiscord  # noqa: E402
from tests.fakes.model_server import LONG_ANSWER, FakeModelServer, Reply  # noqa: E402
from tests.support.process import free_port  # noqa: E402
from tests.support.waiting import until  # noqa: E402

API_KEY = "bench-key"
BOT_VARIABLES = ("EVOLINK_", "BOT_", "DISCORD_", "SLACK_", "DATABASE_URL", "REDIS_URL")
DISCORD_PATH = ["launcher.cli", "adapters.discord_bot.app"]
"""What a Discord-only `python -m bot` imports (the platform's adapter, then the core)."""
PACKAGES = [
    "asyncio", "pydantic", "pydantic_settings", "sqlalchemy", "sqlalchemy.ext.asyncio",
    "aiosqlite", "asyncpg", "httpx", "httpx_sse", "aiohttp", "discord", "PIL.Image",
    "pillow_heif", "docx", "pypdf", "selectolax", "prometheus_client", "pythonjsonlogger",
    "alembic", "redis", "slack_bolt", "slack_sdk",
]
"""Packages the bot may load, in the order they are charged for (a package's dependencies
not charged before it are charged to it)."""
MODES = {
    "as the image runs it (-OO, no debug ranges)": {"PYTHONOPTIMIZE": "2",
                                                    "PYTHONNODEBUGRANGES": "1"},
    "plain `python -m bot`": {},
}
"""The interpreter settings each measured run adds to the bot's environment."""
LOADED_SCRIPT = """\
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(" ".join(sorted(sys.modules)))
"""
IMPORT_STEP_SCRIPT = """\
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
print(f"  {'python':<28}{rss():6.1f}")
for name in sys.argv[1:]:
    before = rss()
    importlib.import_module(name)
    label = {"launcher.cli": "the core and the launcher",
             "adapters.discord_bot.app": "the Discord adapter"}.get(name, name)
    print(f"  {label:<28}{rss():6.1f}  +{rss() - before:.1f}")
"""


def memory_mib(pid: int, field: str) -> float:
    """A `VmRSS` / `VmHWM` line of /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def complete(fake: FakeDiscord, thread: int) -> bool:
    """Whether the answer in `thread` is whole and final (its last words shown, no Stop; a
    finished answer carries Regenerate and the ratings instead)."""
    answer = fake.message_payloads_in(thread)
    return bool(answer) and answer[-1]["content"].endswith(LONG_ANSWER[-40:]) and not any(
        button.get("custom_id", "").startswith(STOP_ID)
        for message in answer for row in message["components"] for button in row["components"])


@dataclass
class Figures:
    """What one run of the scenario measured, in MiB."""

    answered: int
    elapsed: float
    connected: float
    after: float
    peak: float


async def measure(answers: int, concurrency: int, chunk_delay: float,
                  interpreter: dict[str, str]) -> Figures:
    """Run the scenario once on a fresh migrated SQLite file; `interpreter` goes into the
    bot's environment (PYTHONOPTIMIZE, PYTHONPYCACHEPREFIX, ...)."""
    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite+aiosqlite:///{folder}/bot.db"
        database = open_database(database_url)
        await migrate(database)
        await database.dispose()
        async with (
            FakeModelServer(api_key=API_KEY, long_answers=True) as model_api,
            FakeDiscord(edit_limit=None) as fake,
        ):
            model_api.script("direct", *[Reply(delay_between_chunks=chunk_delay)] * answers)
            env = {k: v for k, v in os.environ.items() if not k.startswith(BOT_VARIABLES)}
            env.update({
                "EVOLINK_API_KEY": API_KEY, "EVOLINK_DIRECT_URL": model_api.direct_url,
                "EVOLINK_API_URL": model_api.api_url, "DATABASE_URL": database_url,
                "DISCORD_BOT_TOKEN": fake.token, "DISCORD_API_URL": fake.api_url,
                "DISCORD_GATEWAY_URL": fake.gateway_url, "BOT_HTTP_PORT": str(free_port()),
                "BOT_USER_MESSAGES_PER_MINUTE": "0", "BOT_LOG_LEVEL": "WARNING",
                **interpreter,
            })
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=folder, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                await until(lambda: fake.connected_sessions == 1, what="connecting", within=60)
                await until(lambda: bool(fake.commands), what="the command sync", within=30)
                connected = memory_mib(process.pid, "VmRSS")
                started = time.monotonic()
                threads: list[int] = []
                for first in range(0, answers, concurrency):
                    batch = []
                    for n in range(first, min(first + concurrency, answers)):
                        question = await fake.send_message(
                            fake.text_channel_id, fake.plain_user, f"question {n}",
                            mentions_bot=True)
                        batch.append(int(question["id"]))
                    await until(lambda b=batch: all(complete(fake, t) for t in b),  # type: ignore[misc]
                                what="the answers", within=60 + 30 * chunk_delay * 300)
                    threads += batch
                elapsed = time.monotonic() - started
                peak = memory_mib(process.pid, "VmHWM")
                now = memory_mib(process.pid, "VmRSS")
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    if process.returncode != 0:
        print(err.decode()[-3000:], file=sys.stderr)
    done = sum(1 for t in threads if complete(fake, t))
    return Figures(done, elapsed, connected, now, peak)


def compiled_ahead(interpreter: dict[str, str], bytecode: Path) -> tuple[dict[str, str],
                                                                          dict[str, str]]:
    """The environments of the warm-up run (writing bytecode to `bytecode`) and of the
    measured run (reading it, writing none), for `interpreter`'s settings."""
    reading = {**interpreter, "PYTHONPYCACHEPREFIX": str(bytecode),
               "PYTHONDONTWRITEBYTECODE": "1"}
    writing = {**reading, "PYTHONDONTWRITEBYTECODE": ""}
    return writing, reading


def import_breakdown(interpreter: dict[str, str]) -> None:
    """What importing the Discord-only path costs, package by package, with `interpreter`'s
    settings in the environment."""
    env = {**os.environ, **interpreter}
    loaded = set(subprocess.run(
        [sys.executable, "-c", LOADED_SCRIPT, *DISCORD_PATH], cwd=ROOT, check=True,
        capture_output=True, text=True, env=env).stdout.split())
    steps = [name for name in PACKAGES if name in loaded]
    print("\nthe Discord-only imports alone, as the image runs them (resident MiB after each, "
          "in a fresh interpreter):")
    subprocess.run([sys.executable, "-c", IMPORT_STEP_SCRIPT, *steps, *DISCORD_PATH],
                   cwd=ROOT, check=True, env=env)
    print("  not loaded:", ", ".join(name for name in PACKAGES if name not in loaded) or "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--chunk-delay", type=float, default=0.01,
                        help="seconds between the model's chunks (300 chunks an answer)")
    args = parser.parse_args()
    print(f"Discord-only `python -m bot`, {args.answers} answers ({args.concurrency} at a "
          "time), bytecode compiled ahead:")
    with tempfile.TemporaryDirectory() as bytecode:
        environments = {mode: compiled_ahead(interpreter, Path(bytecode))
                        for mode, interpreter in MODES.items()}
        for mode, (writing, reading) in environments.items():
            asyncio.run(measure(1, 1, 0.0, writing))
            figures = asyncio.run(measure(args.answers, args.concurrency, args.chunk_delay,
                                          reading))
            print(f"  {mode}: {figures.answered}/{args.answers} answers complete "
                  f"({figures.elapsed:.1f} s)")
            print(f"    resident once connected: {figures.connected:6.1f} MiB")
            print(f"    resident after answers:  {figures.after:6.1f} MiB")
            print(f"    peak (VmHWM):            {figures.peak:6.1f} MiB   (target < 80 MB)")
        import_breakdown(next(iter(environments.values()))[1])


if __name__ == "__main__":
    main()
