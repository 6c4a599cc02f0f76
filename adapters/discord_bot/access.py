"""Who may use the bot where (channel and role allow-lists) and who may change settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.config import Settings


@dataclass(frozen=True, slots=True)
class Access:
    """The operator's allow-lists; an empty list allows everything.

    - `channel_ids` limits server channels (a thread counts as its parent); DMs are not
      channels of a server and are governed by the role list alone.
    - `role_ids` limits people: a member needs one of the roles. A DM carries no roles, so
      with a role list set only the bot's admins are answered in DMs.
    - `admin_ids` may change settings everywhere and pass the role list.
    """

    channel_ids: frozenset[int] = frozenset()
    role_ids: frozenset[int] = frozenset()
    admin_ids: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """The allow-lists from DISCORD_CHANNEL_IDS, DISCORD_ROLE_IDS, DISCORD_ADMIN_IDS."""
        return cls(
            frozenset(map(int, settings.discord_channel_ids)),
            frozenset(map(int, settings.discord_role_ids)),
            frozenset(map(int, settings.discord_admin_ids)),
        )

    def allows(self, user_id: int, channel_id: int | None, role_ids: Iterable[int] | None) -> bool:
        """Whether `user_id` may use the bot in `channel_id` (None: a DM) with `role_ids`
        (None: not a server member, as in a DM)."""
        if channel_id is not None and self.channel_ids and channel_id not in self.channel_ids:
            return False
        if not self.role_ids or user_id in self.admin_ids:
            return True
        return role_ids is not None and not self.role_ids.isdisjoint(role_ids)

    def can_configure(self, user_id: int, guild_id: int | None, manage_channels: bool) -> bool:
        """Channel managers and the bot's admins may change settings; in a DM, its person."""
        return user_id in self.admin_ids or guild_id is None or manage_channels
