"""The Slack adapter: mentions, threads, files, streamed answers, their buttons, edited
questions and the /gemini command.

    settings    SLACK_* variables (light: the launcher reads it for every command)
    app         the bolt app wired to the core, HTTP or Socket Mode, and `run_slack`
    listeners   bolt's listeners: parse, route, start the work in the background
    events      Slack payloads read into plain values (pure functions)
    routing     is a message for the bot, and which conversation it continues
    replies     answering a message, an edited question or Regenerate through the core
    surface     drawing a reply in its thread: status, posts, chat.update, a stream per page,
                its Stop button while written and its answer buttons once finished
    controls    the buttons as Block Kit, and the clicks on them read into plain values
    clicks      what a click does (Stop, Regenerate, ratings), told to the clicker alone
    stream      one native streaming message, and the way back to chat.update
    budgets     each rate-limited method's shared budget per workspace (Slack's tiers)
    errors      Slack Web API errors as the core's RateLimited / DeliveryFailed
    access      who may change settings (workspace admins, SLACK_ADMIN_IDS)
    files       files, downloaded from Slack's hosts only, with the bot token
    commands    the /gemini slash command
    assistant   the greeting and suggested prompts of the Messages tab (agent experience)
    client      the Web API client: the configured host, retries that spare paced methods
    mrkdwn      model text that pings no one; Markdown as mrkdwn for slash commands

Import from the modules (`from adapters.slack_bot.app import run_slack`), so that reading
the settings does not load slack_bolt.
"""
