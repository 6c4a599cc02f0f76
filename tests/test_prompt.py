"""The request built from a conversation: images within a byte budget, refused ones left out."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from bot.conversation import ImagePart, Role, TextPart, Turn
from bot.model.llm import ChatRequest
from bot.model.prompt import OMITTED_IMAGE, build_request

PARAMETERS = {"model": "gemini-3.1-flash-lite-preview"}


def image(size: int = 30_000) -> ImagePart:
    data = os.urandom(size)
    return ImagePart(hashlib.sha256(data).hexdigest(), "image/png", data)


def asked(text: str, *images: ImagePart) -> Turn:
    return Turn(Role.USER, (TextPart(text), *images))


def answered(text: str) -> Turn:
    return Turn(Role.ASSISTANT, (TextPart(text),))


def sent(request: ChatRequest) -> list[Any]:
    """Each user message's parts, an image shown by its bytes and a note by its text."""
    shown: list[Any] = []
    for message in request.messages:
        if message["role"] != "user" or isinstance(message["content"], str):
            continue
        for part in message["content"]:
            if part["type"] == "image_url":
                shown.append(base64.b64decode(part["image_url"]["url"].split(",", 1)[1]))
            else:
                shown.append(part["text"])
    return shown


def body_bytes(request: ChatRequest) -> int:
    return len(json.dumps(request.body(), separators=(",", ":")).encode())


def test_every_image_goes_when_the_request_is_small() -> None:
    first, second = image(), image()
    turns = [asked("one", first), answered("a red square"), asked("two", second)]

    request = build_request("Be brief.", turns, PARAMETERS)

    assert request.messages[0] == {"role": "system", "content": "Be brief."}
    assert sent(request) == ["one", first.data, "two", second.data]


def test_over_the_byte_budget_the_oldest_images_are_left_out_first() -> None:
    oldest, middle, newest = image(), image(), image()  # 40,000 bytes each as base64
    turns = [asked("one", oldest), answered("ok"), asked("two", middle), answered("ok"),
             asked("three", newest)]

    request = build_request("", turns, PARAMETERS, max_request_bytes=100_000)

    assert sent(request) == ["one", OMITTED_IMAGE, "two", middle.data, "three", newest.data]
    assert body_bytes(request) <= 100_000


def test_the_budget_counts_every_image_of_a_turn_newest_first() -> None:
    images = [image() for _ in range(4)]

    request = build_request("", [asked("all of these", *images)], PARAMETERS,
                            max_request_bytes=130_000)

    assert sent(request) == ["all of these", OMITTED_IMAGE, *(i.data for i in images[1:])]
    assert body_bytes(request) <= 130_000


def test_an_image_too_large_for_the_budget_alone_is_left_out() -> None:
    request = build_request("", [asked("look", image(120_000))], PARAMETERS,
                            max_request_bytes=100_000)

    assert sent(request) == ["look", OMITTED_IMAGE]


def test_an_image_without_its_bytes_becomes_a_note() -> None:
    stored = image()
    without_bytes = ImagePart(stored.sha256, stored.mime_type)

    request = build_request("", [asked("old", without_bytes)], PARAMETERS)

    assert sent(request) == ["old", OMITTED_IMAGE]


def test_a_turn_without_images_is_plain_text() -> None:
    request = build_request("", [asked("hello"), answered("hi"), answered("   ")], PARAMETERS)

    assert request.messages == [{"role": "user", "content": "hello"},
                                {"role": "assistant", "content": "hi"}]
    assert request.parameters == PARAMETERS
