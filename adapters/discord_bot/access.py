"""Who may use the bot where (guild, channel and role allow-lists) and who may change settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from adapters.discord_bot.settings import DiscordSettings

NOT_SERVED = "I'm not available here: the bot's operator limits it to some servers."
NO_DMS = "I'm not available in direct messages: the bot's operator turned them off."


@dataclass(frozen=True, slots=True)
class Access:
    """The operator's allow-lists; an empty list allows everything.

    - `guild_ids` limits servers; `allow_dms` says whether DMs are served at all. A DM has no
      server, so the server list never applies to it: DMs follow `allow_dms` alone.
    - `channel_ids` limits server channels (a thread counts as its parent); DMs are not
      channels of a server and are governed by the role list alone.
    - `role_ids` limits people: a member needs one of the roles. A DM carries no roles, so
      with a role list set only the bot's admins are answered in DMs.
    - `admin_ids` may change settings everywhere and pass the role list.
    """

    channel_ids: frozenset[int] = frozenset()
    role_ids: frozenset[int] = frozenset()
    admin_ids: frozenset[int] = frozenset()
    guild_ids: frozenset[int] = frozenset()
    allow_dms: bool = True

    @classmethod
    def from_settings(cls, settings: DiscordSettings) -> Access:
        """The allow-lists from DISCORD_CHANNEL_IDS, DISCORD_ROLE_IDS, DISCORD_ADMIN_IDS,
        DISCORD_GUILD_ALLOWLIST and DISCORD_ALLOW_DMS."""
        return cls(
            frozenset(map(int, settings.channel_ids)),
            frozenset(map(int, settings.role_ids)),
            frozenset(map(int, settings.admin_ids)),
            frozenset(map(int, settings.guild_allowlist)),
            settings.allow_dms,
        )

    def serves(self, guild_id: int | None) -> bool:
        """Whether the bot works in `guild_id` at all (None: a DM)."""
        if guild_id is None:
            return self.allow_dms
        return not self.guild_ids or guild_id in self.guild_ids

    def unserved_note(self, guild_id: int | None) -> str | None:
        """What to tell someone using a command where the bot does not work; None if it does."""
        if self.serves(guild_id):
            return None
        return NO_DMS if guild_id is None else NOT_SERVED

    def allows(self, user_id: int, channel_id: int | None, role_ids: Iterable[int] | None) -> bool:
        """Whether `user_id` may use the bot in `channel_id` (None: a DM) with `role_ids`
        (None: not a server member, as in a DM). The server comes first: see `serves`."""
        if channel_id is not None and self.channel_ids and channel_id not in self.channel_ids:
            return False
        if not self.role_ids or user_id in self.admin_ids:
            return True
        return role_ids is not None and not self.role_ids.isdisjoint(role_ids)

    def can_configure(self, user_id: int, guild_id: int | None, manage_channels: bool) -> bool:
        """The bot's admins may change settings anywhere, channel managers in their server;
        in a DM only the admins (anyone can open a DM with the bot)."""
        return user_id in self.admin_ids or (guild_id is not None and manage_channels)
