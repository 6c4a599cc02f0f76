"""What the bot remembers: tables, the store, migrations, and one reply per conversation."""
