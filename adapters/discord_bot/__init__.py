"""The Discord adapter: discord.py events in, the core's replies and commands out.

    settings    DISCORD_* variables (light: the launcher reads it for every command)
    app         the client wired to the core, and `run_discord` (imports discord.py)
    events      messages and interactions read in the core's terms: keys, mentions, authors
    routing     is a message (or an edit of one) for the bot, and where does its answer go
    replies     answering routed messages, edited questions and button clicks through the core
    surface     drawing a reply: post, paced edits, typing, the answer's buttons
    controls    the buttons: Stop; Regenerate, 👍, 👎; their custom ids
    errors      Discord's HTTP errors as the core's RateLimited / DeliveryFailed
    access      who may use the bot where, and who may change settings
    files       attachments, downloaded from Discord's hosts only
    commands    the /gemini slash commands

Import from the modules (`from adapters.discord_bot.app import run_discord`), so that reading
the settings does not load discord.py.
"""
