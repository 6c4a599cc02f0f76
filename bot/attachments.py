"""Turning a message's attachments into turn parts: normalised images, documents' text, notes.

Documents (PDF, DOCX, text files; see `bot.documents`) become one text part each, headed by
their name (`[file report.pdf]`); the text is stored, never the file. A document that cannot
be read in full gets a note in the chat, and the model finds the same note under its heading.

Every image is decoded in a worker thread (at most a few at once, see `ImageDecoder`) and
stored in a form the model API takes, by these rules:

- More than `max_pixels` (25 MP), read from the file's header before any decoding: refused.
- PNG, JPEG and WebP that fit in `max_side` (2048 px) on their long side, are not animated and
  need no EXIF rotation: kept byte for byte.
- Anything else is re-encoded: turned upright by its EXIF orientation, shrunk to `max_side`
  on its long side, and saved as PNG when it has transparency or came from a PNG or a GIF
  (lossless sources, often screenshots and diagrams), or as JPEG otherwise (photos: JPEG,
  WebP, HEIC/HEIF). A GIF or an animation keeps only its first frame.
- The re-encoded image must still be within the attachment size limit.

Sizes in notes use binary units (1 KB = 1024 bytes, 1 MB = 1024 KB), as the limits are set.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot import defaults
from bot.conversation import Attachment, ImagePart, Part, TextPart
from bot.documents import DocumentKind, DocumentReader, document_kind
from bot.errors import UnusableImage

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
               b"mif1", b"msf1", b"heif"}
IMAGE_KINDS = "PNG, JPEG, WebP, GIF, HEIC/HEIF"
READABLE = f"only images ({IMAGE_KINDS}), PDF and Word (.docx) documents, and text files are read"
"""Completes "Skipped report.zip: …" for a file of a kind the bot does not read."""
MAX_NAME_CHARS = 120
MAX_FILES_PER_MESSAGE = 10
MAX_IMAGE_PIXELS = 25_000_000
MAX_IMAGE_SIDE = 2048
DECODE_CONCURRENCY = 2
JPEG_QUALITY = 90

PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF",
                  "image/webp": "WEBP"}
"""The Pillow decoder for each sniffed type; HEIC/HEIF go through pillow-heif instead."""
KEPT_FORMATS = {"PNG", "JPEG", "WEBP"}
LOSSLESS_SOURCES = {"PNG", "GIF"}
SIZE_UNITS = (("MB", 1024 * 1024), ("KB", 1024))
"""Binary units, largest first; below 1 KB sizes are shown in bytes."""


@dataclass(slots=True)
class PreparedAttachments:
    """What a message's attachments became: parts for the model (images, documents' text
    under their headings, and notes on documents that could not be read in full), notes for
    the person, and whether anything at all could be read."""

    parts: list[Part] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    has_content: bool = False

    def turn_parts(self, text: str) -> list[Part]:
        """The question's parts: its text, then the files'. None at all when there is no
        text and nothing could be read: notes alone are not worth a model call."""
        parts: list[Part] = [TextPart(text)] if text else []
        if parts or self.has_content:
            parts.extend(self.parts)
        return parts


class ImageDecoder:
    """Normalises images in worker threads, at most `concurrency` at once.

    Make one and share it between every reply, so that a burst of large images waits here
    instead of taking every core (and the memory of many decoded images) at once.
    """

    def __init__(
        self, concurrency: int = DECODE_CONCURRENCY, *, max_pixels: int = MAX_IMAGE_PIXELS,
        max_side: int = MAX_IMAGE_SIDE,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._slots = asyncio.Semaphore(concurrency)
        self._max_pixels = max_pixels
        self._max_side = max_side

    async def normalise(self, data: bytes, mime_type: str, max_bytes: int) -> ImagePart:
        """The image as it will be stored and sent, or UnusableImage saying why not.

        A slot is held until the thread ends, even when the waiting reply is cancelled: a
        thread cannot be stopped, so freeing its slot early would break the bound.
        """
        await self._slots.acquire()
        try:
            work = asyncio.get_running_loop().run_in_executor(None, functools.partial(
                normalise_image, data, mime_type, max_bytes=max_bytes,
                max_pixels=self._max_pixels, max_side=self._max_side,
            ))
        except BaseException:
            self._slots.release()
            raise
        work.add_done_callback(self._finished)
        return await asyncio.shield(work)

    def _finished(self, work: asyncio.Future[ImagePart]) -> None:
        self._slots.release()
        if not work.cancelled():
            work.exception()  # read here too, in case the reply waiting for it was cancelled


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type from an image's leading bytes, or None if it is no supported image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "image/heif" if data[8:12] in {b"mif1", b"msf1", b"heif"} else "image/heic"
    return None


def normalise_image(
    data: bytes, mime_type: str, *, max_bytes: int, max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int = MAX_IMAGE_SIDE,
) -> ImagePart:
    """The image by the rules in this module's docstring; blocking, so run it in a thread."""
    from PIL import ExifTags, Image  # on first use: most processes never see an image (2 MB)

    try:
        image, source = _open(data, mime_type, max_pixels)
        with image:
            fits = max(image.size) <= max_side
            if source == "JPEG" and not fits:
                image.draft(image.mode, _fitted(image.size, max_side))  # decode at 1/2..1/8
            image.load()
            upright = image.getexif().get(ExifTags.Base.Orientation, 1) == 1
            animated = getattr(image, "is_animated", False)
            if source in KEPT_FORMATS and fits and upright and not animated:
                return _part(data, mime_type)
            lossless = image.has_transparency_data or source in LOSSLESS_SOURCES
            out_format = "PNG" if lossless else "JPEG"
            encoded = _reencode(image, out_format, max_side)
    except UnusableImage:
        raise
    except Image.DecompressionBombError as exc:
        limit = _number(max_pixels / 1_000_000, 2)
        raise UnusableImage(f"it has far more pixels than the limit of {limit} MP") from exc
    except Exception as exc:  # Pillow's decoders raise many kinds of error for a broken file
        log.info("an image (%s, %d bytes) could not be decoded: %r", mime_type, len(data), exc)
        raise UnusableImage("the image is damaged or cannot be read") from exc
    if len(encoded) > max_bytes:
        size, limit = format_sizes(len(encoded), max_bytes)
        raise UnusableImage(f"as a {out_format} it is {size}; the limit is {limit}")
    return _part(encoded, f"image/{out_format.lower()}")


def _open(data: bytes, mime_type: str, max_pixels: int) -> tuple[Image.Image, str]:
    """The image and its source format, refused by the pixel count in its header.

    Pillow only reads the header here; HEIC/HEIF is decoded (by pillow-heif) after the check.
    """
    if mime_type in ("image/heic", "image/heif"):
        import pillow_heif  # on first use: most processes never see a HEIC photo

        heif = pillow_heif.open_heif(io.BytesIO(data))
        _check_pixels(heif.size, max_pixels)
        return heif.to_pillow(), "HEIF"
    from PIL import Image

    pillow_format = PILLOW_FORMATS[mime_type]
    image = Image.open(io.BytesIO(data), formats=[pillow_format])
    try:
        _check_pixels(image.size, max_pixels)
    except UnusableImage:
        image.close()
        raise
    return image, pillow_format


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        pixels, limit = _in_unit(width * height, max_pixels, 1_000_000, "MP", "pixels")
        raise UnusableImage(f"it is {width} x {height} pixels ({pixels}); the limit is {limit}")


def _reencode(image: Image.Image, out_format: str, max_side: int) -> bytes:
    """The image upright, within `max_side`, without metadata, in `out_format`."""
    from PIL import Image, ImageOps

    ImageOps.exif_transpose(image, in_place=True)
    if image.has_transparency_data:
        mode = "RGBA"
    elif image.mode == "L":
        mode = "L"
    else:
        mode = "RGB"
    frame = image.convert(mode) if image.mode != mode else image
    frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if out_format == "JPEG":
        frame.save(out, format="JPEG", quality=JPEG_QUALITY)
    else:
        frame.save(out, format="PNG")
    return out.getvalue()


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    scale = max_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _part(data: bytes, mime_type: str) -> ImagePart:
    return ImagePart(hashlib.sha256(data).hexdigest(), mime_type, data)


def format_sizes(size: int, limit: int) -> tuple[str, str]:
    """`size` and `limit` for a note, in one binary unit that tells them apart.

    The unit is the largest in which the limit is at least 1: 70_000 bytes against a limit of
    64 * 1024 read "68 KB" and "64 KB". Numbers get up to two decimals where needed to differ;
    when even that cannot tell them apart, both are given in bytes.
    """
    for unit, scale in SIZE_UNITS:
        if limit >= scale:
            return _in_unit(size, limit, scale, unit, "bytes")
    return f"{size:,} bytes", f"{limit:,} bytes"


def _in_unit(value: int, limit: int, scale: int, unit: str, exact: str) -> tuple[str, str]:
    """`value` and `limit` divided by `scale`, with the fewest decimals (up to 2) that show
    them different, or undivided in the `exact` unit when no rounding does."""
    for decimals in range(3):
        shown = _number(value / scale, decimals), _number(limit / scale, decimals)
        if shown[0] != shown[1] or value == limit:
            return f"{shown[0]} {unit}", f"{shown[1]} {unit}"
    return f"{value:,} {exact}", f"{limit:,} {exact}"


def _number(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _too_large(name: str, size: int, limit: int, text: bool) -> str:
    shown_size, shown_limit = format_sizes(size, limit)
    which = " for text files" if text else ""
    return f"Skipped {name}: it is {shown_size}; the limit{which} is {shown_limit}."


def _heading(name: str) -> str:
    """The line that introduces a document's text to the model: `[file report.pdf]`."""
    return f"[file {name}]"


def _display_name(filename: str) -> str:
    """A file's name fit for one line of a heading or note: no line breaks or other control
    characters, no brackets that could close the heading, at most MAX_NAME_CHARS."""
    name = re.sub(r"[\x00-\x1f\x7f\[\]]+", " ", filename).strip()
    if len(name) > MAX_NAME_CHARS:
        name = name[: MAX_NAME_CHARS - 1] + "…"
    return name or "attachment"


class _Preparation:
    """One message's attachments on their way to becoming parts, sharing the budget of
    document characters."""

    def __init__(self, max_bytes: int, max_text_bytes: int, max_document_chars: int,
                 decoder: ImageDecoder, reader: DocumentReader) -> None:
        self.result = PreparedAttachments()
        self._max_bytes = max_bytes
        self._max_text_bytes = max_text_bytes
        self._max_document_chars = max_document_chars
        self._chars_left = max_document_chars
        self._decoder = decoder
        self._reader = reader

    async def add(self, attachment: Attachment) -> None:
        name = _display_name(attachment.filename)
        kind = document_kind(attachment.filename, attachment.content_type)
        if kind is not None:
            await self._add_document(attachment, name, kind)
        elif attachment.content_type and \
                not attachment.content_type.lower().startswith("image/"):
            self.result.notes.append(f"Skipped {name}: {READABLE}.")
        else:
            await self._add_image(attachment, name)

    async def _add_image(self, attachment: Attachment, name: str) -> None:
        data = await self._fetch(attachment, name, self._max_bytes, text=False)
        if data is None:
            return
        mime_type = sniff_image_type(data)
        if mime_type is None:
            self.result.notes.append(f"Skipped {name}: {READABLE}.")
            return
        try:
            self.result.parts.append(await self._decoder.normalise(data, mime_type,
                                                                   self._max_bytes))
            self.result.has_content = True
        except UnusableImage as exc:
            self.result.notes.append(f"Skipped {name}: {exc}.")

    async def _add_document(self, attachment: Attachment, name: str, kind: DocumentKind
                            ) -> None:
        is_text = kind is DocumentKind.TEXT
        limit = self._max_text_bytes if is_text else self._max_bytes
        if self._chars_left <= 0 and attachment.size <= limit:
            self._note_on_document(name, f"was not read: {self._document_limit()}")
            return
        data = await self._fetch(attachment, name, limit, text=is_text)
        if data is None:
            return
        read = await self._reader.read(kind, data, self._chars_left)
        self._chars_left -= len(read.text)
        if read.problem is not None and not read.text:
            self._note_on_document(name, read.problem)
            return
        body = read.text
        if read.problem is not None:
            self._note_on_document(name, read.problem, to_model=False)
            body += f"\n({name} {read.problem})"
        if read.cut:
            self.result.notes.append(
                f"({name} was cut after {len(read.text):,} characters: "
                f"{self._document_limit()})"
            )
            body += f"\n(cut here: {self._document_limit()})"
        self.result.parts.append(TextPart(f"{_heading(name)}\n{body}"))
        self.result.has_content = True

    def _note_on_document(self, name: str, problem: str, *, to_model: bool = True) -> None:
        """Tell the person, and (with `to_model`) the model under the file's heading, why a
        document could not be read."""
        note = f"({name} {problem})"
        self.result.notes.append(note)
        if to_model:
            self.result.parts.append(TextPart(f"{_heading(name)}\n{note}"))

    def _document_limit(self) -> str:
        return (f"the documents of one message are limited to "
                f"{self._max_document_chars:,} characters")

    async def _fetch(self, attachment: Attachment, name: str, limit: int, *, text: bool
                     ) -> bytes | None:
        """The file's bytes if it is within `limit` (declared and real), else None with a
        note saying why."""
        if attachment.size > limit:
            self.result.notes.append(_too_large(name, attachment.size, limit, text))
            return None
        try:
            data = await attachment.fetch()
        except Exception as exc:
            log.warning("downloading attachment %s failed: %s", name, exc)
            self.result.notes.append(f"Skipped {name}: it could not be downloaded.")
            return None
        if len(data) > limit:
            which = " for text files" if text else ""
            self.result.notes.append(
                f"Skipped {name}: it is larger than the limit{which}, {format_sizes(0, limit)[1]}."
            )
            return None
        return data


async def prepare_attachments(
    attachments: tuple[Attachment, ...], max_bytes: int, max_text_bytes: int, *,
    max_document_chars: int = defaults.MAX_DOCUMENT_CHARS,
    decoder: ImageDecoder | None = None, reader: DocumentReader | None = None,
) -> PreparedAttachments:
    """Download and check each attachment (the first MAX_FILES_PER_MESSAGE; the rest are not
    downloaded); what cannot be used gets a note saying why.

    Text files are limited to `max_text_bytes`, every other file to `max_bytes`, and the text
    of all documents together to `max_document_chars` (the documents after the limit are not
    downloaded). Pass the one `decoder` and `reader` the service shares between replies;
    without them private ones are made, which bound only this call's work.
    """
    preparation = _Preparation(max_bytes, max_text_bytes, max_document_chars,
                               decoder or ImageDecoder(), reader or DocumentReader())
    if len(attachments) > MAX_FILES_PER_MESSAGE:
        skipped = len(attachments) - MAX_FILES_PER_MESSAGE
        preparation.result.notes.append(
            f"Only the first {MAX_FILES_PER_MESSAGE} files of a message are read; {skipped} "
            "more were skipped (images too)."
        )
        attachments = attachments[:MAX_FILES_PER_MESSAGE]
    for attachment in attachments:
        await preparation.add(attachment)
    return preparation.result
