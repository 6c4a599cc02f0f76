"""The bot's Prometheus metrics, on a registry of their own: one `Metrics` per process (and a
fresh one in each test), exposed by the launcher's `/metrics`.

Labels only ever name a platform, an outcome, an API method, a model endpoint or a kind:
never text someone wrote, and never the id of a person.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REFUSED = "refused"
"""The outcome of a message a limit refused (or that came while the bot drains)."""
FAILED = "failed"
"""The outcome of a message whose answer failed before anything was written."""

_CAMEL_HUMPS = re.compile(r"(?<!^)(?=[A-Z])")


def error_kind(error: BaseException) -> str:
    """A label for an error: its class name in snake case (`ModelUnavailable` is
    `model_unavailable`)."""
    return _CAMEL_HUMPS.sub("_", type(error).__name__).lower()


class Metrics:
    """Every metric the bot records, and the methods the core and adapters record them with."""

    content_type: ClassVar[str] = CONTENT_TYPE_LATEST
    """The media type of `exposition` (Prometheus' text format)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._replies = Counter(
            "bot_replies", "Messages answered or refused, by how they ended: complete, "
            "stopped, interrupted, failed, refused (a limit, or a restart).",
            ["platform", "outcome"], registry=registry)
        self._reply_seconds = Histogram(
            "bot_reply_duration_seconds", "Time from storing a question to storing its answer.",
            ["platform"], registry=registry,
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
        self._first_token_seconds = Histogram(
            "bot_model_first_token_seconds", "Time from sending a request to the model's first "
            "text, by the endpoint that answered (direct or api).",
            ["endpoint"], registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60))
        self._tokens = Counter(
            "bot_model_tokens", "Tokens the model API reported, by kind (prompt: in, "
            "completion: out).", ["kind"], registry=registry)
        self._model_errors = Counter(
            "bot_model_errors", "Model requests that ended in an error, by endpoint and kind.",
            ["endpoint", "kind"], registry=registry)
        self._fallbacks = Counter(
            "bot_model_fallbacks", "Text requests retried on the api endpoint after the direct "
            "endpoint failed before answering.", registry=registry)
        self._platform_calls = Counter(
            "bot_platform_api_calls", "Calls to a platform's API, by platform and method.",
            ["platform", "method"], registry=registry)
        self._platform_limited = Counter(
            "bot_platform_rate_limited", "Platform API calls answered 429, by platform and "
            "method.", ["platform", "method"], registry=registry)
        self._budget_wait = Histogram(
            "bot_edit_budget_wait_seconds", "Time an edit waited for its slot in the shared "
            "edit budget.", ["platform"], registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self._in_flight = Gauge(
            "bot_replies_in_flight", "Answers being written now.", registry=registry)
        self._waiting = Gauge(
            "bot_replies_waiting", "Messages waiting for their turn to be answered.",
            registry=registry)
        self._database_errors = Counter(
            "bot_database_errors", "Database operations that failed.", registry=registry)
        self._summaries = Counter(
            "bot_summaries", "Running summaries of long conversations, by outcome: made, or "
            "failed (the answer went ahead with the summary before).", ["outcome"],
            registry=registry)
        self._stops_relayed = Counter(
            "bot_stops_relayed", "Stop clicks for an answer this replica was not writing, "
            "relayed to the others, by outcome: answered, nobody (no replica writes it), "
            "unanswered (a replica did not reply in time), failed (Redis failed).",
            ["outcome"], registry=registry)

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format (`content_type`)."""
        return generate_latest(self.registry)

    def reply_ended(self, platform: str, outcome: str, seconds: float | None = None) -> None:
        """Count a message's outcome; `seconds` is how long its answer took, if one was
        written."""
        self._replies.labels(platform, outcome).inc()
        if seconds is not None:
            self._reply_seconds.labels(platform).observe(max(0.0, seconds))

    def watch_replies(self, in_flight: Callable[[], float], waiting: Callable[[], float]) -> None:
        """Read the answers being written and the messages waiting from these, when scraped."""
        self._in_flight.set_function(in_flight)
        self._waiting.set_function(waiting)

    def model_first_token(self, endpoint: str, seconds: float) -> None:
        """The model's first text of an answer came `seconds` after the request."""
        self._first_token_seconds.labels(endpoint).observe(max(0.0, seconds))

    def model_tokens(self, prompt: int, completion: int) -> None:
        """Count the tokens of one model answer."""
        self._tokens.labels("prompt").inc(max(0, prompt))
        self._tokens.labels("completion").inc(max(0, completion))

    def model_error(self, endpoint: str, error: BaseException) -> None:
        """Count a model request that ended in `error`."""
        self._model_errors.labels(endpoint, error_kind(error)).inc()

    def model_fallback(self) -> None:
        """Count a text request retried on the api endpoint."""
        self._fallbacks.inc()

    def platform_call(self, platform: str, method: str, status: int | None) -> None:
        """Count one call to a platform's API (`status` None: no answer came)."""
        self._platform_calls.labels(platform, method).inc()
        if status == 429:
            self._platform_limited.labels(platform, method).inc()

    def edit_budget_waited(self, platform: str, seconds: float) -> None:
        """An edit waited `seconds` for its slot in the platform's shared budget."""
        self._budget_wait.labels(platform).observe(max(0.0, seconds))

    def database_error(self) -> None:
        """Count a failed database operation."""
        self._database_errors.inc()

    def summary_ended(self, made: bool) -> None:
        """Count a conversation summary made, or one that failed."""
        self._summaries.labels("made" if made else "failed").inc()

    def stop_relayed(self, outcome: str) -> None:
        """Count a Stop click relayed to the other replicas, by how it ended."""
        self._stops_relayed.labels(outcome).inc()
