"""Tool turns in the history: stored and read back with their calls, trimmed before other
turns are left out, and sent to the API in the order it accepts."""

from __future__ import annotations

from bot.conversation import ConversationKey, Role, TextPart, ToolCall, Turn
from bot.model.prompt import MISSING_RESULT, build_request
from bot.storage.store import TRIMMED_RESULT_CHARS, Store

KEY = ConversationKey("test", "team", "chan", "thread-1")
SIGNED = ToolCall("c1", "fetch_url", '{"url": "https://example.com"}',
                  {"extra_content": {"google": {"thought_signature": "sig=="}}})


def user(text: str) -> Turn:
    return Turn(Role.USER, (TextPart(text),), author_id="u1")


def assistant(text: str, *calls: ToolCall) -> Turn:
    return Turn(Role.ASSISTANT, (TextPart(text),), tool_calls=calls)


def result(call_id: str, text: str) -> Turn:
    return Turn(Role.TOOL, (TextPart(text),), tool_call_id=call_id)


async def store_round(store: Store, page: str) -> None:
    for turn in (user("read it"), assistant("", SIGNED), result("c1", page),
                 assistant("It says hello.")):
        await store.add_turn(KEY, turn)


async def test_calls_and_results_are_stored_with_every_field(store: Store) -> None:
    await store_round(store, "hello\x00page")

    turns = await store.history(KEY, 10_000, 8)

    assert turns[1].tool_calls == (SIGNED,)
    assert turns[1].tool_calls[0].extra == SIGNED.extra
    assert turns[2].role is Role.TOOL and turns[2].tool_call_id == "c1"
    assert turns[2].text == "hello\ufffdpage"


async def test_an_earlier_result_is_trimmed_before_any_turn_is_left_out(store: Store) -> None:
    page = "word " * 10_000  # 50,000 characters, about 12,500 tokens
    await store_round(store, page)
    await store.add_turn(KEY, user("and the title?"))

    tight = await store.history(KEY, 2_000, 8)
    roomy = await store.history(KEY, 20_000, 8)

    assert [t.role for t in tight] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT,
                                       Role.USER]
    assert tight[2].text == page[:TRIMMED_RESULT_CHARS] + (
        "\n[trimmed: the result had 50,000 characters; only its start is kept in the history]")
    assert roomy[2].text == page


async def test_the_newest_results_are_the_ones_kept_whole(store: Store) -> None:
    for round_number in range(2):
        await store_round(store, f"page {round_number} " + "x" * 8_000)
    await store.add_turn(KEY, user("compare them"))

    turns = await store.history(KEY, 3_000, 8)

    tools = [t.text for t in turns if t.role is Role.TOOL]
    assert tools[0].endswith("only its start is kept in the history]")
    assert tools[1] == "page 1 " + "x" * 8_000


def test_a_history_starting_inside_a_tool_round_starts_at_the_next_question() -> None:
    turns = [result("c0", "orphan"), assistant("old answer"), user("next"),
             assistant("", SIGNED), result("c1", "page"), assistant("done")]

    messages = build_request("", turns, {"model": "m"}).messages

    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["extra_content"] == SIGNED.extra["extra_content"]


def test_a_call_whose_result_was_never_stored_is_answered_as_missing() -> None:
    turns = [user("read"), assistant("Looking.", SIGNED), assistant("", ), user("again?")]

    messages = build_request("", turns, {"model": "m"}).messages

    assert [(m["role"], m.get("tool_call_id")) for m in messages] == [
        ("user", None), ("assistant", None), ("tool", "c1"), ("user", None)]
    assert messages[2]["content"] == MISSING_RESULT
