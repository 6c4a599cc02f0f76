"""The environment for running `python -m bot` as a separate process in a test."""

from __future__ import annotations

import os
import socket

from tests.conftest import API_KEY
from tests.fakes.model_server import FakeModelServer

BOT_VARIABLES = ("EVOLINK_", "BOT_", "DISCORD_", "SLACK_", "DATABASE_URL")


def bot_environment(model_api: FakeModelServer | None = None, **variables: str) -> dict[str, str]:
    """This process's environment without the bot's variables, plus the fake model API's
    URLs and key (when given) and `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(BOT_VARIABLES)}
    if model_api is not None:
        env.update({
            "EVOLINK_API_KEY": API_KEY,
            "EVOLINK_DIRECT_URL": model_api.direct_url,
            "EVOLINK_API_URL": model_api.api_url,
        })
    env.update(variables)
    return env


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (for a process the test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
