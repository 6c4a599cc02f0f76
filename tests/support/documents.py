"""Documents made in the test: PDFs written byte by byte (text pages, a scan, encrypted
copies through pypdf's writer) and Word files through python-docx."""

from __future__ import annotations

import io
import re

import docx
from pypdf import PdfReader, PdfWriter

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
GREY_PIXELS = bytes([0, 128, 128, 255])
IMAGE = (b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray "
         b"/BitsPerComponent 8 /Length 4 >>\nstream\n" + GREY_PIXELS + b"\nendstream")


def pdf(*pages: str) -> bytes:
    """A PDF with one page per string, each of its lines drawn as text in Helvetica."""
    return _pdf([_text_content(page) for page in pages], FONT, b"<< /Font << /F1 3 0 R >> >>")


def scanned_pdf(pages: int = 1) -> bytes:
    """A PDF whose pages only show a picture, as a scanner makes them: no text layer."""
    content = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
    return _pdf([content] * pages, IMAGE, b"<< /XObject << /Im1 3 0 R >> >>")


def encrypted(document: bytes, user_password: str, algorithm: str = "AES-256") -> bytes:
    """`document` encrypted; an empty `user_password` opens it (only the owner's is set)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(document)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def word(*paragraphs: str, table: list[list[str]] | None = None) -> bytes:
    """A .docx with the paragraphs, then the table (rows of cells) if any."""
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, cells in zip(grid.rows, table, strict=True):
            for cell, text in zip(row.cells, cells, strict=True):
                cell.text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _text_content(page: str) -> bytes:
    lines = [re.sub(r"([()\\])", r"\\\1", line) for line in page.split("\n")]
    shown = " T* ".join(f"({line}) Tj" for line in lines)
    return f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET".encode("latin-1")


def _pdf(contents: list[bytes], shared: bytes, resources: bytes) -> bytes:
    """Catalog (1), page tree (2), one object the pages share (3: a font or an image), then a
    page and its content stream for each of `contents`; with a correct cross-reference table."""
    kids = " ".join(f"{4 + 2 * index} 0 R" for index in range(len(contents)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {len(contents)} >>".encode(), shared]
    for index, content in enumerate(contents):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                       + resources + b" /Contents %d 0 R >>" % (5 + 2 * index))
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)
