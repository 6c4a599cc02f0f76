"""Benchmark the model client: httpx + httpx-sse against a fake chat-completions server.

The fake server (tests/fakes/model_server.py) runs in a child process, so the figures are the
client's own: for 1 and 50 concurrent streams of a 400-chunk answer, the time from request to
first text delta (p50/p99), the client's CPU microseconds per chunk, and chunks per second.

    python bench/model_stream.py [--streams 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.model.llm import ChatRequest, ModelClient, TextDelta, create_http_client  # noqa: E402
from tests.fakes.model_server import FakeModelServer  # noqa: E402

ANSWER = " ".join(f"token{i}" for i in range(800))
CHUNKS = 400
"""The fake sends two words a chunk."""


async def serve() -> None:
    """Child process: serve the fake API until standard input closes."""
    async with FakeModelServer(api_key="bench") as server:
        server.default_answer = lambda _body: ANSWER
        print(server.direct_url, server.api_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def one_stream(client: ModelClient) -> float:
    request = ChatRequest([{"role": "user", "content": "go"}], {"model": "bench"})
    started = time.perf_counter()
    first: float | None = None
    chunks = 0
    async for event in client.stream(request):
        if isinstance(event, TextDelta):
            chunks += 1
            if first is None:
                first = time.perf_counter() - started
    assert first is not None and chunks == CHUNKS, chunks
    return first


async def measure(streams: int) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None and server.stdin is not None
    direct_url, api_url = (await server.stdout.readline()).decode().split()
    try:
        async with create_http_client(connect_timeout=5, read_timeout=30) as http:
            client = ModelClient(http, "bench", direct_url, api_url)
            for concurrency in (1, 50):
                firsts: list[float] = []
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(max(1, streams // concurrency)):
                    firsts += await asyncio.gather(*(one_stream(client)
                                                     for _ in range(concurrency)))
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                chunks = len(firsts) * CHUNKS
                ordered = sorted(firsts)
                p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
                print(f"{concurrency:>3} concurrent: first delta p50 "
                      f"{statistics.median(firsts) * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms  "
                      f"client CPU {cpu / chunks * 1e6:5.1f} us/chunk  "
                      f"{chunks / wall:,.0f} chunks/s  ({len(firsts)} streams)")
    finally:
        server.stdin.close()
        await server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200, help="streams per level")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve() if args.serve else measure(args.streams))


if __name__ == "__main__":
    main()
