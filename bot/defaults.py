"""The bot's default limits, defined once: the settings read them, and so do the objects that
can be built without settings (in tests and benchmarks)."""

from __future__ import annotations

MODEL = "gemini-3.1-flash-lite-preview"
HISTORY_TOKENS = 32_000
SUMMARY_TOKENS = 800
SUMMARY_TIMEOUT = 30.0
MAX_IMAGES = 8
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
MAX_TEXT_ATTACHMENT_BYTES = 64 * 1024
MAX_DOCUMENT_CHARS = 100_000
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
RATE_LIMIT_RETRIES = 3
USER_MESSAGES_PER_MINUTE = 6
MAX_CONCURRENT_REPLIES = 32
MAX_WAITING_PER_CONVERSATION = 3
MAX_COMPLETION_TOKENS = 8192
MAX_ANSWER_CHARS = 40_000
REPLY_TIMEOUT = 300.0
MAX_REQUEST_BYTES = 15_000_000
HTTP_HOST = "0.0.0.0"
SHUTDOWN_GRACE = 25.0
TOOLS = ("fetch_url", "read_channel", "current_time", "calculate")
MAX_TOOL_ROUNDS = 5
TOOL_TIMEOUT = 20.0
TOOL_RESULT_CHARS = 20_000
