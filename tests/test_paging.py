"""Splitting long answers into messages."""

from __future__ import annotations

import random

import pytest

from bot.drawing.paging import paginate, safe_length

LIMIT = 200


def bodies(text: str, limit: int = LIMIT) -> list[str]:
    return [p.body for p in paginate(text, limit)]


def test_short_text_is_one_page() -> None:
    assert [p.text for p in paginate("hello", LIMIT)] == ["hello"]


def test_splits_at_a_paragraph_break_first() -> None:
    first = "a" * 120 + " " + "b" * 30 + "\n\n"
    rest = "c" * 50 + "\n" + "d" * 100
    pages = bodies(first + rest)
    assert pages[0] == first
    assert "".join(pages) == first + rest


def test_splits_at_a_line_break_when_no_paragraph_fits() -> None:
    first = "word " * 30 + "\n"
    text = first + "x" * 100 + " tail"
    pages = bodies(text)
    assert pages[0] == first
    assert "".join(pages) == text


def test_splits_at_a_space_when_no_line_break_fits() -> None:
    text = " ".join(["word"] * 100)
    pages = paginate(text, LIMIT)
    assert all(p.body.endswith(" ") for p in pages[:-1])
    assert all(len(p.text) <= LIMIT for p in pages)
    assert "".join(p.body for p in pages) == text


def test_cuts_hard_inside_an_unbroken_run() -> None:
    text = "x" * 500
    pages = paginate(text, LIMIT)
    assert len(pages) == 3
    assert all(len(p.text) <= LIMIT for p in pages)
    assert "".join(p.body for p in pages) == text


def test_a_code_block_cut_by_a_split_is_closed_and_reopened() -> None:
    code = "```python\n" + "".join(f"print({i})\n" for i in range(40)) + "```\n"
    text = "Here is code:\n\n" + code + "Done."
    pages = paginate(text, LIMIT)

    assert len(pages) > 1
    assert pages[0].closing.endswith("```")
    assert pages[1].opening == "```python\n"
    for page in pages:
        assert len(page.text) <= LIMIT
        assert page.text.count("```") % 2 == 0, page.text
    assert "".join(p.body for p in pages) == text


def test_tilde_fences_and_longer_markers_are_reopened_as_written() -> None:
    code = "~~~~\n" + "line\n" * 60 + "~~~~\n"
    pages = paginate(code, LIMIT)
    assert pages[0].closing.endswith("~~~~")
    assert pages[1].opening == "~~~~\n"


def test_earlier_pages_do_not_change_as_the_text_grows() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta\n", "gamma", "```js\n", "delta\n\n", "```\n", "epsilon"]
    text = ""
    settled: list[str] = []
    for _ in range(400):
        text += rng.choice(words) + " "
        pages = paginate(text, LIMIT)
        decided = [p.text for p in pages[:-1]]
        assert decided[: len(settled)] == settled
        settled = decided


@pytest.mark.parametrize("seed", range(20))
def test_random_text_round_trips_exactly(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = ["a", "b", " ", "\n", "\n\n", "```", "é", "🎉", "x" * 30]
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 2000)))
    pages = paginate(text, LIMIT)
    assert "".join(p.body for p in pages) == text
    assert all(len(p.text) <= LIMIT for p in pages)


def test_safe_length_never_exceeds_what_later_splits_keep() -> None:
    rng = random.Random(3)
    text = ""
    for _ in range(300):
        text += rng.choice(["word ", "line\n", "para\n\n", "x" * 20])
        safe = safe_length(text, LIMIT)
        later = text + "more text " * 50
        page_start = len(text) - len(paginate(text, LIMIT)[-1].body)
        boundaries = [0]
        for page in paginate(later, LIMIT):
            boundaries.append(boundaries[-1] + len(page.body))
        assert page_start in boundaries, "decided pages stay decided"
        page_end = next(b for b in boundaries if b > page_start)
        assert page_start <= safe <= page_end, "shown text must stay on its page"
