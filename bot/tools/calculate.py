"""calculate(expression): arithmetic evaluated by walking its syntax tree (never eval).

Numbers, + - * / // % ** and unary signs, parentheses; nothing else parses. Every step is
bounded, so no expression can make the bot spin or fill its memory: exponents are at most
MAX_EXPONENT, and every intermediate result stays within MAX_MAGNITUDE.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from bot.tools.base import ToolContext, ToolFailed, ToolResult, ToolSpec, text_argument

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 1_000
MAX_MAGNITUDE = 10**300
MAX_DEPTH = 50

Number = int | float

BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}

SPEC = ToolSpec(
    "calculate",
    "Evaluate an arithmetic expression exactly: numbers, + - * / // % ** and parentheses. "
    "Use it for any arithmetic instead of working it out.",
    {"type": "object", "properties": {"expression": {
        "type": "string", "description": "for example (17.5 * 3) ** 2 / 7"}},
     "required": ["expression"]},
)


def evaluate(expression: str) -> Number:
    """The value of `expression`; ToolFailed says what is wrong with it."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolFailed(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ToolFailed("that is not an arithmetic expression") from None
    return _value(tree.body, 0)


def _value(node: ast.AST, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise ToolFailed("the expression is nested too deeply")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return _bounded(UNARY[type(node.op)](_value(node.operand, depth + 1)))
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _value(node.left, depth + 1), _value(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolFailed(f"exponents are limited to {MAX_EXPONENT}")
        if isinstance(node.op, ast.Pow) and abs(left) > 1 and right > 0 \
                and right * math.log10(abs(left)) > math.log10(MAX_MAGNITUDE):
            raise ToolFailed("the result is too large")
        try:
            return _bounded(BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolFailed("division by zero") from None
        except OverflowError:
            raise ToolFailed("the result is too large") from None
    raise ToolFailed("only numbers, + - * / // % ** and parentheses are allowed")


def _bounded(value: Any) -> Number:
    if isinstance(value, complex):
        raise ToolFailed("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolFailed("the result is too large")
    if abs(value) > MAX_MAGNITUDE:
        raise ToolFailed("the result is too large")
    return value  # type: ignore[no-any-return]


def _shown(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


class Calculate:
    """The calculate tool."""

    spec = SPEC
    needs_reader = False

    def status(self, arguments: Mapping[str, Any]) -> str:
        """What the person sees while it runs."""
        return "Calculating…"

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        """The expression's value."""
        expression = text_argument(arguments, "expression")
        return ToolResult(f"{expression.strip()} = {_shown(evaluate(expression))}")
