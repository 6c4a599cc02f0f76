"""Slack Web API errors in the core's terms: rate limits, lost places, and short descriptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from slack_sdk.errors import SlackApiError

from bot import DeliveryFailed, RateLimited

DEFAULT_RETRY_AFTER = 1.0
DELIVERY_ERRORS = frozenset({
    "account_inactive", "channel_not_found", "invalid_auth", "is_archived", "message_not_found",
    "missing_scope", "no_permission", "not_authed", "not_in_channel", "restricted_action",
    "team_access_not_granted", "thread_not_found", "token_revoked",
})
"""Errors after which the reply cannot be shown at all (trying again will not help)."""
PASSING_ERRORS = frozenset({"fatal_error", "internal_error", "request_timeout",
                            "service_unavailable"})
"""Errors on Slack's side that a later call may not meet."""


def error_code(exc: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`), or the HTTP status when there is none."""
    code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
    return str(code or f"HTTP {exc.response.status_code}")


def retry_after(exc: SlackApiError) -> float | None:
    """The seconds to wait when Slack answered 429, else None."""
    if exc.response.status_code != 429 and error_code(exc) != "ratelimited":
        return None
    for name, value in exc.response.headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_AFTER


def is_passing(exc: SlackApiError) -> bool:
    """Whether the error is Slack's passing trouble (a 5xx, an internal error)."""
    return exc.response.status_code >= 500 or error_code(exc) in PASSING_ERRORS


def describe(exc: BaseException) -> str:
    """A short description for logs: Slack's error code, else the exception's type and text."""
    if isinstance(exc, SlackApiError):
        return error_code(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@contextmanager
def as_surface_errors() -> Iterator[None]:
    """Raise RateLimited for a 429 and DeliveryFailed for a lost place; others pass as they are."""
    try:
        yield
    except SlackApiError as exc:
        delay = retry_after(exc)
        if delay is not None:
            raise RateLimited(delay) from exc
        if error_code(exc) in DELIVERY_ERRORS:
            raise DeliveryFailed(error_code(exc)) from exc
        raise
