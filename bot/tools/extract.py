"""A web page's readable text: HTML reduced to its main content with selectolax (lexbor).

Scripts, styles, navigation, headers, footers, asides, forms and hidden parts go; the page's
`<main>` or `<article>` is kept when it has one, else its body. Block elements become lines,
list items become `- ` lines, headings keep a `#` mark, and runs of spaces and blank lines are
squeezed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

DROPPED = ("script, style, noscript, template, svg, canvas, iframe, object, embed, nav, "
           "header, footer, aside, form, button, select, dialog, [hidden], "
           "[aria-hidden=true], [role=navigation], [role=banner], [role=contentinfo]")
BLOCKS = ("p, div, section, article, main, blockquote, pre, table, tr, ul, ol, dl, dt, dd, "
          "figure, figcaption, address, hr, details, summary, h1, h2, h3, h4, h5, h6")
MAIN = ("main", "article", "[role=main]")
SPACES = re.compile(r"[ \t\f\v\u00a0]+")
BLANK_LINES = re.compile(r"\n{3,}")


def html_text(html: str) -> tuple[str, str]:
    """The page's title and its main text."""
    from selectolax.lexbor import LexborHTMLParser  # on first use: its library is 2 MB

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = _squeeze(title_node.text()) if title_node is not None else ""
    for node in tree.css(DROPPED):
        node.decompose()
    root = _main(tree)
    if root is None:
        return title, ""
    for node in root.css("br"):
        node.replace_with("\n")
    for node in root.css("li"):
        node.insert_before("\n- ")
    for node in root.css(BLOCKS):
        node.insert_before("\n")
        node.insert_after("\n")
    for level in range(1, 7):
        for node in root.css(f"h{level}"):
            node.insert_before("#" * level + " ")
    return title, _squeeze(root.text(separator="", strip=False))


def _main(tree: LexborHTMLParser) -> LexborNode | None:
    for selector in MAIN:
        found = [node for node in tree.css(selector) if node.text(strip=True)]
        if found:
            return max(found, key=lambda node: len(node.text(strip=True)))
    return tree.body


def _squeeze(text: str) -> str:
    lines = (SPACES.sub(" ", line).strip() for line in text.splitlines())
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
