"""The checks `python -m bot doctor` runs, in the order it prints them.

A check is a named async function from the loaded settings to one Result per thing it looked
at; adding one (an MCP server and its tools, say) is adding it to CHECKS.
"""

from launcher.checks.database import check_database
from launcher.checks.discord_bot import check_discord
from launcher.checks.mcp import check_mcp
from launcher.checks.model_api import check_model_api
from launcher.checks.result import Check, Context, Result, Status
from launcher.checks.slack_bot import check_slack

CHECKS: tuple[Check, ...] = (
    Check("database", check_database),
    Check("model API", check_model_api),
    Check("Discord", check_discord),
    Check("Slack", check_slack),
    Check("MCP servers", check_mcp),
)

__all__ = ["CHECKS", "Check", "Context", "Result", "Status"]
