"""The exceptions whose message is written for the chat, shown to the user as it is."""

from __future__ import annotations


class UserFacingError(Exception):
    """An error the user should read: `str(error)` is a complete sentence for the chat."""


class PermissionRefused(UserFacingError):
    """The caller may not change this channel's settings."""


class InvalidSetting(UserFacingError):
    """A setting name or value outside what the API documents."""


class StoreUnavailable(UserFacingError):
    """The database could not be read or written (locked, full, unreachable)."""
