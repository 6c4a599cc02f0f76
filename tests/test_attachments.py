"""Attachments as turn parts: images normalised in bounded worker threads, notes that say why.

Every image here is made by Pillow (or pillow-heif) in the test; the bomb is written by hand so
that its header can declare far more pixels than its few bytes hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import re
import struct
import threading
import zlib
from typing import Any

import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageFile

import bot.attachments
from bot.attachments import (
    MAX_FILES_PER_MESSAGE,
    ImageDecoder,
    PreparedAttachments,
    format_sizes,
    normalise_image,
    prepare_attachments,
)
from bot.conversation import Attachment, ImagePart

MB = 1024 * 1024
KB = 1024


def attachment(name: str, data: bytes, content_type: str, *, size: int | None = None
               ) -> Attachment:
    async def fetch() -> bytes:
        return data

    return Attachment(name, content_type, len(data) if size is None else size, fetch)


async def prepare(*attachments: Attachment, max_bytes: int = 20 * MB,
                  decoder: ImageDecoder | None = None) -> PreparedAttachments:
    return await prepare_attachments(attachments, max_bytes, 64 * KB, decoder=decoder)


def encoded(image: Image.Image, image_format: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def photo(width: int, height: int) -> Image.Image:
    """A smooth RGB picture, like a photo to a JPEG encoder."""
    return Image.linear_gradient("L").resize((width, height)).convert("RGB")


def the_image(prepared: PreparedAttachments) -> tuple[ImagePart, Image.Image]:
    assert prepared.notes == []
    (part,) = prepared.parts
    assert isinstance(part, ImagePart) and part.data is not None
    assert part.sha256 == hashlib.sha256(part.data).hexdigest()
    return part, Image.open(io.BytesIO(part.data))


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height grey pixels; it holds a few rows of them."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


def fail_if_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(self: ImageFile.ImageFile) -> Any:
        raise AssertionError(f"{self.size} pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


# ------------------------------------------------------------------------ pixels and sides

async def test_an_image_over_25_megapixels_is_refused() -> None:
    big = encoded(Image.new("L", (6000, 5000)), "PNG")

    prepared = await prepare(attachment("big.png", big, "image/png"))

    assert prepared.parts == []
    assert prepared.notes == [
        "Skipped big.png: it is 6000 x 5000 pixels (30 MP); the limit is 25 MP."]


async def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bomb = png_bomb(8000, 8000)
    assert len(bomb) < 1000
    fail_if_decoded(monkeypatch)

    prepared = await prepare(attachment("bomb.png", bomb, "image/png"))

    assert prepared.parts == []
    assert prepared.notes == [
        "Skipped bomb.png: it is 8000 x 8000 pixels (64 MP); the limit is 25 MP."]


async def test_a_bomb_beyond_pillows_own_limit_gets_the_pixel_note_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fail_if_decoded(monkeypatch)

    prepared = await prepare(attachment("huge.png", png_bomb(30_000, 30_000), "image/png"))

    assert prepared.notes == [
        "Skipped huge.png: it has far more pixels than the limit of 25 MP."]


async def test_a_large_photo_is_downscaled_to_2048_pixels_as_a_jpeg() -> None:
    big = encoded(photo(4000, 3000), "JPEG", quality=90)

    part, image = the_image(await prepare(attachment("photo.jpg", big, "image/jpeg")))

    assert part.mime_type == "image/jpeg" and image.format == "JPEG"
    assert image.size == (2048, 1536)


async def test_a_large_png_stays_a_png() -> None:
    big = encoded(Image.new("RGB", (3000, 1000), "navy"), "PNG")

    part, image = the_image(await prepare(attachment("wide.png", big, "image/png")))

    assert part.mime_type == "image/png" and image.format == "PNG"
    assert image.size == (2048, 683)


async def test_a_photo_with_transparency_becomes_a_png() -> None:
    big = encoded(Image.new("RGBA", (3000, 2000), (0, 128, 0, 100)), "WEBP")

    part, image = the_image(await prepare(attachment("glass.webp", big, "image/webp")))

    assert part.mime_type == "image/png" and image.mode == "RGBA"
    assert image.size == (2048, 1365) and image.getpixel((10, 10))[3] == 100


async def test_exif_orientation_is_applied_before_downscaling() -> None:
    sideways = Image.new("RGB", (3000, 1000), "blue")
    sideways.paste("red", (0, 0, 1500, 1000))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # shown turned 90° clockwise: its left side on top
    data = encoded(sideways, "JPEG", exif=exif.tobytes())

    part, image = the_image(await prepare(attachment("phone.jpg", data, "image/jpeg")))

    assert part.mime_type == "image/jpeg" and image.size == (683, 2048)
    assert image.getexif().get(ExifTags.Base.Orientation, 1) == 1
    top, bottom = image.getpixel((341, 100)), image.getpixel((341, 1948))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]


async def test_a_small_png_is_kept_byte_for_byte() -> None:
    small = encoded(Image.new("RGB", (4, 4), "red"), "PNG")

    part, _ = the_image(await prepare(attachment("sq.png", small, "image/png")))

    assert part.data == small and part.mime_type == "image/png"


# ------------------------------------------------------------------------ GIF and HEIC

async def test_a_gif_becomes_a_png_of_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in ("red", "blue")]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])

    part, image = the_image(await prepare(attachment("blink.gif", gif, "image/gif")))

    assert part.mime_type == "image/png" and image.size == (20, 10)
    assert image.convert("RGB").getpixel((5, 5)) == (255, 0, 0)


async def test_a_gif_that_grows_past_the_limit_as_a_png_is_refused() -> None:
    rng = random.Random(7)
    noise = Image.frombytes("P", (200, 200), rng.randbytes(200 * 200))
    noise.putpalette(rng.randbytes(768))
    gif = encoded(noise, "GIF")
    limit = len(gif) + 1000

    prepared = await prepare(attachment("noise.gif", gif, "image/gif"), max_bytes=limit)

    assert prepared.parts == []
    (note,) = prepared.notes
    match = re.fullmatch(r"Skipped noise\.gif: as a PNG it is (\d+) KB; the limit is (\d+) KB\.",
                         note)
    assert match is not None, note
    assert int(match[2]) == round(limit / KB) and int(match[1]) > 2 * int(match[2])


async def test_a_real_heic_becomes_a_jpeg() -> None:
    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 48), (0, 160, 0))).save(heic, quality=90)
    data = heic.getvalue()
    assert data[4:12] == b"ftypheic"

    part, image = the_image(await prepare(attachment("IMG_0001.HEIC", data, "image/heic")))

    assert part.mime_type == "image/jpeg" and image.format == "JPEG"
    assert image.size == (64, 48)
    assert image.convert("RGB").getpixel((32, 24)) == pytest.approx((0, 160, 0), abs=30)


async def test_bytes_that_only_look_like_heic_are_refused() -> None:
    fake = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200

    prepared = await prepare(attachment("fake.heic", fake, "image/heic"))

    assert prepared.parts == []
    assert prepared.notes == ["Skipped fake.heic: the image is damaged or cannot be read."]


async def test_a_truncated_image_is_refused() -> None:
    whole = encoded(photo(300, 200), "PNG")

    prepared = await prepare(attachment("cut.png", whole[: len(whole) // 2], "image/png"))

    assert prepared.notes == ["Skipped cut.png: the image is damaged or cannot be read."]


# ------------------------------------------------------------------------ size notes

async def test_size_notes_give_both_numbers_in_one_unit() -> None:
    small_limit = 64 * KB
    png = encoded(Image.new("RGB", (4, 4)), "PNG")
    text = b"x" * (70 * KB)

    prepared = await prepare_attachments((
        attachment("x.png", png, "image/png", size=100 * KB),
        attachment("notes.txt", text, "text/plain"),
        attachment("sly.png", b"\x89PNG" + b"\x00" * 70_000, "image/png", size=100),
    ), small_limit, small_limit)

    assert prepared.notes == [
        "Skipped x.png: it is 100 KB; the limit is 64 KB.",
        "Skipped notes.txt: it is 70 KB; the limit for text files is 64 KB.",
        "Skipped sly.png: it is larger than the limit, 64 KB.",
    ]


def test_sizes_take_the_limits_unit_and_the_decimals_needed_to_differ() -> None:
    assert format_sizes(30 * MB, 20 * MB) == ("30 MB", "20 MB")
    assert format_sizes(20 * MB + 300 * KB, 20 * MB) == ("20.3 MB", "20 MB")
    assert format_sizes(3 * MB, 64 * KB) == ("3,072 KB", "64 KB")
    assert format_sizes(64 * KB + 1, 64 * KB) == ("65,537 bytes", "65,536 bytes")
    assert format_sizes(900, 500) == ("900 bytes", "500 bytes")
    assert format_sizes(5, 0) == ("5 bytes", "0 bytes")


# ------------------------------------------------------------------------ bounded decoding

class DecodeTracker:
    """Stands in for the decode: counts decodes running at once, each held until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        real = bot.attachments.normalise_image

        def tracked(*args: Any, **kwargs: Any) -> ImagePart:
            with self._lock:
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
            self.started.release()
            try:
                if not self.release.wait(timeout=30):
                    raise TimeoutError("the test never released the decodes")
                return real(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        monkeypatch.setattr(bot.attachments, "normalise_image", tracked)

    async def wait_until_started(self, count: int) -> None:
        for _ in range(count):
            assert await asyncio.to_thread(self.started.acquire, timeout=30)
        await asyncio.sleep(0.2)  # room for one decode too many to start, were the bound broken


async def test_one_decoder_bounds_decodes_across_concurrent_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracker = DecodeTracker(monkeypatch)
    decoder = ImageDecoder(concurrency=2)
    png = encoded(Image.new("RGB", (8, 8), "red"), "PNG")
    replies = asyncio.gather(*(
        prepare(attachment(f"{reply}a.png", png, "image/png"),
                attachment(f"{reply}b.png", png, "image/png"), decoder=decoder)
        for reply in range(4)
    ))

    await tracker.wait_until_started(2)
    assert tracker.running == 2
    tracker.release.set()
    results = await replies

    assert tracker.most_at_once == 2
    assert [len(result.parts) for result in results] == [2, 2, 2, 2]


async def test_a_cancelled_reply_keeps_its_slot_until_its_decode_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracker = DecodeTracker(monkeypatch)
    decoder = ImageDecoder(concurrency=1)
    png = encoded(Image.new("RGB", (8, 8), "red"), "PNG")
    first = asyncio.create_task(prepare(attachment("a.png", png, "image/png"), decoder=decoder))
    await tracker.wait_until_started(1)
    first.cancel()
    second = asyncio.create_task(prepare(attachment("b.png", png, "image/png"),
                                         decoder=decoder))

    await asyncio.sleep(0.2)
    assert tracker.running == 1, "the second decode started beside the first one's thread"
    tracker.release.set()
    prepared = await second

    assert first.cancelled() and len(prepared.parts) == 1
    assert tracker.most_at_once == 1


def test_normalising_is_a_plain_function_for_the_worker_thread() -> None:
    data = encoded(photo(3000, 3000), "JPEG")

    part = normalise_image(data, "image/jpeg", max_bytes=20 * MB, max_side=512)

    assert part.data is not None and Image.open(io.BytesIO(part.data)).size == (512, 512)


async def test_only_the_first_files_of_a_message_are_downloaded() -> None:
    fetched: list[str] = []

    def counted(name: str) -> Attachment:
        async def fetch() -> bytes:
            fetched.append(name)
            return b"text"

        return Attachment(name, "text/plain", 4, fetch)

    files = tuple(counted(f"f{i}.txt") for i in range(100))

    prepared = await prepare_attachments(files, 1_000_000, 1_000)

    assert fetched == [f"f{i}.txt" for i in range(MAX_FILES_PER_MESSAGE)]
    assert prepared.notes == [
        f"Only the first {MAX_FILES_PER_MESSAGE} files of a message are read; "
        f"{100 - MAX_FILES_PER_MESSAGE} more were skipped (images too)."
    ]
