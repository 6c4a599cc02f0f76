"""Every exception the bot raises on purpose, in one place.

    Exception
     ├── UserFacingError            str(error) is a complete sentence for the chat
     │    ├── PermissionRefused     the caller may not change this channel's settings
     │    ├── InvalidSetting        a setting name or value outside what the API documents
     │    ├── StoreUnavailable      the database is locked, full or unreachable
     │    ├── ConversationBusy      another answer here has run longer than the bot waits
     │    ├── LimitReached          a rate, quota or queue limit refused the message
     │    └── ModelError            the model API gave no (complete) answer
     │         ├── ApiKeyRejected       401/403
     │         ├── RequestRejected      other 4xx
     │         ├── ModelRateLimited     429 after the retries
     │         ├── ModelUnavailable     connect errors, timeouts, 5xx before any answer
     │         ├── MalformedStream      a 200 that is no event stream; an unreadable event
     │         └── StreamInterrupted    the stream stopped before [DONE]
     │              ├── AnswerTooLong   cut at the bot's length limit
     │              └── AnswerTooSlow   cut at the bot's time limit
     ├── ConfigError                a setting is missing or malformed (one line for the operator)
     ├── RateLimited                the platform refused a post or edit for `retry_after` seconds
     ├── DeliveryFailed             the reply can no longer be shown (deleted thread, lost access)
     ├── DownloadRefused            an attachment was not downloaded (wrong host, too big, HTTP)
     └── UnusableImage              an image the bot will not use; the message ends a chat note
"""

from __future__ import annotations


class UserFacingError(Exception):
    """An error the user should read: `str(error)` is a complete sentence for the chat."""


class PermissionRefused(UserFacingError):
    """The caller may not change this channel's settings."""


class InvalidSetting(UserFacingError):
    """A setting name or value outside what the API documents."""


class StoreUnavailable(UserFacingError):
    """The database could not be read or written (locked, full, unreachable)."""


class ConversationBusy(UserFacingError):
    """Another answer in the conversation has been written for longer than we wait."""


class LimitReached(UserFacingError):
    """A limit refused this message; the message says which and when to try again.

    `quiet` refusals get no notice: the person was told a moment ago, and a flood of
    messages must not become a flood of notices.
    """

    def __init__(self, message: str, *, quiet: bool = False) -> None:
        super().__init__(message)
        self.quiet = quiet


class ModelError(UserFacingError):
    """The model API could not give a (complete) answer; the message is for the chat."""


class ApiKeyRejected(ModelError):
    """401/403: the key is wrong, expired or not allowed this model."""


class RequestRejected(ModelError):
    """400 and other 4xx: the API refused the request and said why."""


class ModelRateLimited(ModelError):
    """429 after the allowed retries."""


class ModelUnavailable(ModelError):
    """Connection failures, timeouts and 5xx before any answer arrived."""


class MalformedStream(ModelError):
    """A 200 that is not the event stream asked for, or an event that cannot be read."""


class StreamInterrupted(ModelError):
    """The stream stopped before `[DONE]`: cut, timed out, or an error event."""


class AnswerTooLong(StreamInterrupted):
    """The answer passed the bot's length limit; the text up to the limit is kept."""


class AnswerTooSlow(StreamInterrupted):
    """The answer took longer than the bot's reply timeout; the text so far is kept."""


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message is one line for the operator."""


class RateLimited(Exception):
    """The platform refused an edit or post for now; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.1f}s")
        self.retry_after = retry_after


class DeliveryFailed(Exception):
    """The message can no longer be posted or edited (deleted thread, lost permission)."""


class DownloadRefused(Exception):
    """An attachment was not downloaded: a host outside the platform's, a sign-in page, a file
    over the size limit, or an HTTP error."""


class UnusableImage(Exception):
    """An image the bot will not use; `str(error)` says why, as the end of a chat note."""
