"""Text for Slack: model answers that cannot ping anyone, and standard Markdown turned into
mrkdwn for the replies that only take mrkdwn (slash commands)."""

from __future__ import annotations

import re

CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")

JOINER = "\u2060"
"""WORD JOINER: invisible, and where it stands Slack's markup no longer parses."""
SLACK_TOKEN = re.compile(
    r"<(?=[@#]|!(?!--|\[|doctype\b)|[^<>\s|]*[:.][^<>\s|]*\|[^<>\n]*>)", re.IGNORECASE
)
"""The `<` of Slack's special syntax: `<@U1>`, `<#C1>`, `<!here>`, `<!subteam^S1>`, a date, or
a link with a label of its own (`<https://x|y>`). HTML's `<!--` and `<!DOCTYPE` are left be."""
BROADCAST = re.compile(r"(?<![\w@.])@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)
"""The `@` of a bare `@here`, `@channel` or `@everyone` (not of an e-mail address)."""
UNDECIDED_AT = re.compile(r"@\w{0,8}")


def quiet(text: str) -> str:
    """Model text for Slack that pings no one and spoofs no link: a word joiner after the `<`
    of Slack's special syntax and after the `@` of @here, @channel and @everyone."""
    text = SLACK_TOKEN.sub("<" + JOINER, text)
    return BROADCAST.sub("@" + JOINER, text)


def settled(text: str) -> int:
    """How much of growing `text` `quiet` treats for good: all but a tail that more text could
    still turn into markup (a `<` with no `>` or line end after it, an `@` and a few letters).

    `quiet` of this much is the start of `quiet` of any longer text, so it can be streamed.
    """
    end = len(text)
    last_open = text.rfind("<")
    if last_open != -1 and ">" not in text[last_open:] and "\n" not in text[last_open:]:
        end = last_open
    last_at = text.rfind("@", 0, end)
    if last_at != -1 and UNDECIDED_AT.fullmatch(text, last_at, end):
        end = last_at
    return end


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
