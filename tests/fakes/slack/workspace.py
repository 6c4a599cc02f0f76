"""Who and what the fake workspace is: its ids, names and tokens, and Slack's limits."""

TEAM_ID = "T1"
TEAM_NAME = "Fake Team"
TEAM_DOMAIN = "fake-team"
APP_ID = "A1"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
BOT_NAME = "gemini"
ADMIN_USER_ID = "UADMIN"
OWNER_USER_ID = "UOWNER"
PLAIN_USER_ID = "UUSER"
DEFAULT_BOT_TOKEN = "xoxb-test"
DEFAULT_APP_TOKEN = "xapp-test"
DEFAULT_SIGNING_SECRET = "fake-signing-secret"
VERIFICATION_TOKEN = "fake-verification-token"

MAX_MARKDOWN_CHARS = 12_000
"""Slack's limit for ``markdown_text`` (chat.postMessage, chat.update and the stream methods)."""
MAX_POST_CHARS = 40_000
"""``text`` of chat.postMessage longer than this is ``msg_too_long``."""
MAX_UPDATE_CHARS = 4_000
"""``text`` of chat.update longer than this is ``msg_too_long``."""
MAX_SUGGESTED_PROMPTS = 4
"""assistant.threads.setSuggestedPrompts takes one to four prompts."""
ACK_DEADLINE = 3.0
"""Seconds Slack waits for an app to acknowledge an event or command (HTTP or Socket Mode)."""
