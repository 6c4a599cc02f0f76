"""Drawing a streamed answer: pacing with a fake clock, splitting, fences, rate limits."""

from __future__ import annotations

import asyncio

from bot.drawing.pacing import LocalEditBudget
from bot.drawing.render import EditRenderer, StreamRenderer
from bot.drawing.surface import SurfaceLimits
from bot.errors import RateLimited
from tests.support.clock import FakeClock
from tests.support.surfaces import RecordingSurface


async def feed_slowly(renderer: EditRenderer | StreamRenderer, clock: FakeClock,
                      pieces: list[str], step: float) -> None:
    for piece in pieces:
        renderer.feed(piece)
        await clock.advance(step)


async def test_first_text_is_posted_at_once_then_edits_respect_the_interval() -> None:
    clock = FakeClock()
    surface = RecordingSurface(limits=SurfaceLimits(2000, min_edit_interval=1.0))
    renderer = EditRenderer(surface, clock=clock, sleep=clock.sleep)
    renderer.start()

    await feed_slowly(renderer, clock, [f"w{i} " for i in range(60)], step=0.1)
    result = await clock.run(renderer.finish())

    assert surface.calls[0][0] == "post" and surface.calls[0][2] == "w0 "
    gaps = [b - a for a, b in zip(renderer.edit_times, renderer.edit_times[1:], strict=False)]
    assert gaps and min(gaps) >= 1.0 - 1e-9
    assert len(renderer.edit_times) <= 8
    assert surface.shown == ["".join(f"w{i} " for i in range(60))]
    assert result.message_ids == ("m1",) and result.delivered


async def test_an_edit_starts_only_after_the_previous_one_finished() -> None:
    clock = FakeClock()

    class SlowSurface(RecordingSurface):
        active = 0
        overlaps = 0

        async def edit(self, message_id: str, text: str, *, final: bool) -> None:
            self.active += 1
            self.overlaps += self.active > 1
            await asyncio.sleep(0.01)
            await super().edit(message_id, text, final=final)
            self.active -= 1

    surface = SlowSurface(limits=SurfaceLimits(2000, min_edit_interval=0.0))
    renderer = EditRenderer(surface, clock=clock, sleep=clock.sleep)
    renderer.start()
    for i in range(30):
        renderer.feed(f"{i} ")
        await asyncio.sleep(0.003)
    await clock.run(renderer.finish())

    assert surface.overlaps == 0
    assert surface.shown == ["".join(f"{i} " for i in range(30))]


async def test_long_answer_continues_in_new_messages_without_losing_text() -> None:
    clock = FakeClock()
    surface = RecordingSurface(
        limits=SurfaceLimits(300, min_edit_interval=0.5, final_edit_marks=True)
    )
    renderer = EditRenderer(surface, clock=clock, sleep=clock.sleep)
    renderer.start()
    text = "".join(f"Sentence number {i} is here. " + ("\n\n" if i % 7 == 6 else "")
                   for i in range(80))

    await feed_slowly(renderer, clock, [text[i:i + 17] for i in range(0, len(text), 17)], 0.05)
    result = await clock.run(renderer.finish())

    assert len(result.message_ids) > 3
    assert all(len(t) <= 300 for t in surface.shown)
    assert "".join(surface.shown) == text
    finals = {c[1] for c in surface.calls if c[3]}
    assert finals == set(result.message_ids), "every message ends with a final version"


async def test_intermediate_edit_shows_an_open_code_fence_closed() -> None:
    clock = FakeClock()
    surface = RecordingSurface(limits=SurfaceLimits(2000, min_edit_interval=0.0))
    renderer = EditRenderer(surface, clock=clock, sleep=clock.sleep)
    renderer.start()

    renderer.feed("Code:\n```python\nprint('hi')\n")
    await asyncio.sleep(0.01)
    intermediate = surface.shown[0]
    renderer.feed("```\nDone.")
    await clock.run(renderer.finish())

    assert intermediate == "Code:\n```python\nprint('hi')\n```"
    assert surface.shown == ["Code:\n```python\nprint('hi')\n```\nDone."]


async def test_final_text_equals_the_model_text_exactly() -> None:
    clock = FakeClock()
    surface = RecordingSurface(limits=SurfaceLimits(2000, min_edit_interval=0.3))
    renderer = EditRenderer(surface, clock=clock, sleep=clock.sleep)
    renderer.start()
    text = "Spaces at the end  \n\nand *markdown* `code` ünïcode 🎉  "

    await feed_slowly(renderer, clock, list(text), 0.01)
    await clock.run(renderer.finish())

    assert surface.shown == [text]


async def test_a_rate_limited_edit_is_retried_and_the_final_text_lands() -> None:
    clock = FakeClock()

    class LimitedSurface(RecordingSurface):
        refusals = 3

        async def edit(self, message_id: str, text: str, *, final: bool) -> None:
            if self.refusals:
                self.refusals -= 1
                raise RateLimited(2.5)
            await super().edit(message_id, text, final=final)

    surface = LimitedSurface(limits=SurfaceLimits(2000, min_edit_interval=1.0))
    budget = LocalEditBudget(rate=10, period=10.0, clock=clock, sleep=clock.sleep)
    renderer = EditRenderer(surface, budget, clock=clock, sleep=clock.sleep)
    renderer.start()

    await feed_slowly(renderer, clock, [f"part{i} " for i in range(20)], 0.2)
    await clock.run(renderer.finish())

    assert surface.refusals == 0
    assert surface.shown == ["".join(f"part{i} " for i in range(20))]
    assert any(s >= 2.5 for s in clock.sleeps), "the retry waited for Retry-After"


async def test_a_shared_budget_divides_edits_between_replies() -> None:
    clock = FakeClock()
    budget = LocalEditBudget(rate=5, period=10.0, clock=clock, sleep=clock.sleep)
    surfaces = [RecordingSurface(limits=SurfaceLimits(2000, min_edit_interval=0.0))
                for _ in range(4)]
    renderers = [EditRenderer(s, budget, clock=clock, sleep=clock.sleep) for s in surfaces]
    for r in renderers:
        r.start()

    for i in range(40):
        for r in renderers:
            r.feed(f"{i} ")
        await clock.advance(0.25)
    await clock.run(asyncio.gather(*(r.finish() for r in renderers)))

    times = sorted(t for r in renderers for t in r.edit_times)
    window_counts = [sum(1 for t in times if start <= t < start + 10.0 - 1e-9)
                     for start in times]
    assert max(window_counts) <= 5
    assert len(times) >= 8, "every reply still got edits"
    expected = "".join(f"{i} " for i in range(40))
    assert all(s.shown == [expected] for s in surfaces)


async def test_note_is_appended_to_the_final_text() -> None:
    surface = RecordingSurface()
    renderer = EditRenderer(surface)
    renderer.start()
    renderer.feed("partial answer")

    await renderer.finish("⚠️ cut off")

    assert surface.shown == ["partial answer\n\n⚠️ cut off"]


class RecordingStream:
    def __init__(self, surface: StreamingRecorder, opening: str) -> None:
        self.surface = surface
        self.text = opening

    async def append(self, text: str) -> None:
        self.text += text
        self.surface.appends += 1

    async def close(self) -> str:
        self.surface.closed.append(self.text)
        return f"s{len(self.surface.closed)}"


class StreamingRecorder(RecordingSurface):
    def __init__(self, limit: int) -> None:
        super().__init__(limits=SurfaceLimits(limit, min_edit_interval=0.0))
        self.streams: list[RecordingStream] = []
        self.closed: list[str] = []
        self.appends = 0

    async def open_stream(self, opening: str) -> RecordingStream:
        stream = RecordingStream(self, opening)
        self.streams.append(stream)
        return stream


async def test_native_stream_pages_hold_the_whole_answer() -> None:
    surface = StreamingRecorder(limit=300)
    renderer = StreamRenderer(surface)
    renderer.start()
    text = "```text\n" + "".join(f"row {i}\n" for i in range(120)) + "```\nAfter the code."

    for i in range(0, len(text), 11):
        renderer.feed(text[i:i + 11])
        await asyncio.sleep(0)
    result = await renderer.finish()

    assert result.message_ids == tuple(f"s{i + 1}" for i in range(len(surface.closed)))
    assert len(surface.closed) > 2
    assert all(len(t) <= 300 for t in surface.closed)
    assert surface.closed[0].endswith("\n```") and surface.closed[-1].endswith("After the code.")
    assert all(t.startswith("```text\nrow ") for t in surface.closed[1:])
    bodies = [t.removeprefix("```text\n") for t in surface.closed[1:]]
    bodies = [surface.closed[0], *bodies]
    assert "".join(b.removesuffix("```") for b in bodies[:-1]) + bodies[-1] == text
    assert surface.appends > 3, "text was appended while it streamed"


SMALL_CODE = ("Intro line.\n\n```py\n" + "".join(f"x{i} = {i}\n" for i in range(14))
              + "```\nAfter.")
SMALL_CODE_PAGES = [
    "Intro line.\n\n```py\nx0 = 0\nx1 = 1\nx2 = 2\nx3 = 3\nx4 = 4\n```",
    "```py\nx5 = 5\nx6 = 6\nx7 = 7\nx8 = 8\nx9 = 9\nx10 = 10\n```",
    "```py\nx11 = 11\nx12 = 12\nx13 = 13\n```\nAfter.",
]
"""A code block over three 64-character messages: closed at each cut, reopened after it."""


def fences(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.startswith("```"))


async def test_native_stream_splits_a_code_block_into_literal_pages() -> None:
    surface = StreamingRecorder(limit=64)
    renderer = StreamRenderer(surface)
    renderer.start()

    for i in range(0, len(SMALL_CODE), 5):
        renderer.feed(SMALL_CODE[i:i + 5])
        await asyncio.sleep(0)
    await renderer.finish()

    assert surface.closed == SMALL_CODE_PAGES


async def test_post_then_edit_splits_a_code_block_into_literal_pages() -> None:
    clock = FakeClock()
    surface = RecordingSurface(limits=SurfaceLimits(64, min_edit_interval=0.5))
    renderer = EditRenderer(surface, clock=clock, sleep=clock.sleep)
    renderer.start()

    await feed_slowly(renderer, clock, [SMALL_CODE[i:i + 5] for i in range(0, len(SMALL_CODE), 5)],
                      0.1)
    result = await clock.run(renderer.finish())

    assert surface.shown == SMALL_CODE_PAGES
    assert len(result.message_ids) == 3
    versions = [text for _, _, text, _ in surface.calls]
    assert len(versions) > 3 and all(fences(v) % 2 == 0 for v in versions), \
        "every version shown, also mid-answer, has its code block closed"


async def test_blank_pages_are_never_posted() -> None:
    surface = RecordingSurface(limits=SurfaceLimits(100, min_edit_interval=0.0))
    renderer = EditRenderer(surface)
    renderer.start()
    renderer.feed("\n\n")
    await asyncio.sleep(0.01)
    posted_before_text = list(surface.calls)
    renderer.feed("start " + " " * 300 + "end")

    await renderer.finish()

    assert posted_before_text == []
    assert all(t.strip() for t in surface.shown)
    assert surface.shown[0].startswith("\n\nstart") and surface.shown[-1].endswith("end")
