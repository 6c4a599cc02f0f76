"""Standard Markdown to Slack's mrkdwn, for the replies that only take mrkdwn (slash commands)."""

from __future__ import annotations

import re

CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")


def escape(text: str) -> str:
    """Escape the three characters mrkdwn treats as markup: &, < and >."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Bold, headings and links rewritten for mrkdwn; code kept as it is, all of it escaped."""
    pieces = []
    for index, piece in enumerate(CODE.split(markdown)):
        if index % 2:
            pieces.append(escape(piece))
            continue
        piece = LINK.sub(lambda m: f"\x00{m.group(2)}|{m.group(1)}\x01", piece)
        piece = escape(piece).replace("\x00", "<").replace("\x01", ">")
        piece = HEADING.sub(r"*\1*", piece)
        pieces.append(BOLD.sub(r"*\1*", piece))
    return "".join(pieces)
