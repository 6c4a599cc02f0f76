"""Turning a message's attachments into turn parts: checked images, small text files, notes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from bot.conversation import Attachment, ImagePart, Part, TextPart

log = logging.getLogger(__name__)

HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
               b"mif1", b"msf1", b"heif"}
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml",
              "application/yaml", "application/toml")
IMAGE_KINDS = "PNG, JPEG, WebP, GIF, HEIC/HEIF"
MAX_IMAGE_PIXELS = 64_000_000


@dataclass(slots=True)
class PreparedAttachments:
    """The parts made from a message's attachments and a note for each one skipped."""

    parts: list[Part] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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


def _check_image(data: bytes, mime_type: str) -> tuple[bytes, str]:
    """Decode the image to prove it is whole; GIFs become a PNG of their first frame."""
    if mime_type in ("image/heic", "image/heif"):
        return data, mime_type
    with Image.open(io.BytesIO(data)) as image:
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ValueError("too many pixels")
        image.load()
        if mime_type != "image/gif":
            return data, mime_type
        image.seek(0)
        frame = image.convert("RGBA")
    out = io.BytesIO()
    frame.save(out, format="PNG")
    return out.getvalue(), "image/png"


def _image_part(data: bytes, mime_type: str) -> ImagePart:
    data, mime_type = _check_image(data, mime_type)
    return ImagePart(hashlib.sha256(data).hexdigest(), mime_type, data)


def _is_text(attachment: Attachment) -> bool:
    return attachment.content_type.split(";")[0].strip().lower().startswith(TEXT_TYPES)


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


async def prepare_attachments(
    attachments: tuple[Attachment, ...], max_bytes: int, max_text_bytes: int
) -> PreparedAttachments:
    """Download and check each attachment; what cannot be used gets a note saying why."""
    prepared = PreparedAttachments()
    for attachment in attachments:
        name = attachment.filename or "attachment"
        declared_text = _is_text(attachment)
        limit = max_text_bytes if declared_text else max_bytes
        if attachment.size > limit:
            what = "text files" if declared_text else "attachments"
            prepared.notes.append(
                f"Skipped {name}: it is {_megabytes(attachment.size)}; {what} up to "
                f"{_megabytes(limit)} are read."
            )
            continue
        if not declared_text and not attachment.content_type.lower().startswith("image/") \
                and attachment.content_type:
            prepared.notes.append(
                f"Skipped {name}: only images ({IMAGE_KINDS}) and small text files are read."
            )
            continue
        try:
            data = await attachment.fetch()
        except Exception as exc:
            log.warning("downloading attachment %s failed: %s", name, exc)
            prepared.notes.append(f"Skipped {name}: it could not be downloaded.")
            continue
        if len(data) > limit:
            prepared.notes.append(f"Skipped {name}: it is larger than {_megabytes(limit)}.")
            continue
        if declared_text:
            text = data.decode("utf-8", errors="replace")
            prepared.parts.append(TextPart(f"[file {name}]\n{text}"))
            continue
        mime_type = sniff_image_type(data)
        if mime_type is None:
            prepared.notes.append(
                f"Skipped {name}: only images ({IMAGE_KINDS}) and small text files are read."
            )
            continue
        try:
            prepared.parts.append(await asyncio.to_thread(_image_part, data, mime_type))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            prepared.notes.append(f"Skipped {name}: the image is damaged or cannot be read.")
    return prepared
