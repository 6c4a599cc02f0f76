"""Configuration: defaults, one clear line for a bad value, secrets kept out of sight."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.discord_bot.settings import DiscordSettings
from adapters.slack_bot.settings import SlackSettings
from bot.config import EnvironmentSettings, Settings, load_settings
from bot.errors import ConfigError
from bot.logs import SecretMask
from launcher.cli import Configuration
from tests.support.process import bot_environment

ROOT = Path(__file__).resolve().parent.parent
GROUPS: tuple[type[EnvironmentSettings], ...] = (Settings, DiscordSettings, SlackSettings)
"""Every settings class: the core's and each adapter's, read together by the launcher."""


def test_defaults_match_the_design() -> None:
    settings = load_settings(_env_file=None)
    assert settings.evolink_direct_url == "https://direct.evolink.ai"
    assert settings.evolink_api_url == "https://api.evolink.ai"
    assert settings.bot_model == "gemini-3.1-flash-lite-preview"
    assert settings.database_url == "sqlite+aiosqlite:///data/bot.db"
    assert settings.bot_http_port == 3000
    assert not DiscordSettings.load(_env_file=None).enabled
    assert not SlackSettings.load(_env_file=None).enabled


def test_values_come_from_the_environment_and_a_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("BOT_MODEL=from-file\nDISCORD_GUILD_IDS=1, 2,3\n")
    monkeypatch.setenv("BOT_HTTP_PORT", "8080")

    settings = load_settings(_env_file=env_file)

    assert settings.bot_model == "from-file"
    assert DiscordSettings.load(_env_file=env_file).guild_ids == ("1", "2", "3")
    assert settings.bot_http_port == 8080


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BOT_HTTP_PORT", "eighty", "BOT_HTTP_PORT: Input should be a valid integer"),
        ("BOT_HTTP_PORT", "70000", "BOT_HTTP_PORT: Input should be less than or equal to 65535"),
        ("EVOLINK_API_URL", "api.evolink.ai", "EVOLINK_API_URL: expected a URL starting with"),
        ("DISCORD_GUILD_IDS", "12,abc", "DISCORD_GUILD_IDS: expected a comma-separated list"),
        ("BOT_LOG_LEVEL", "LOUD", "BOT_LOG_LEVEL: expected one of DEBUG"),
    ],
)
def test_a_malformed_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        for group in GROUPS:
            group.load(_env_file=None)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_missing_api_key_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="EVOLINK_API_KEY is not set"):
        load_settings(_env_file=None).api_key()


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLINK_API_KEY", "sk-very-secret-1")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret-2")
    for settings in (load_settings(_env_file=None), SlackSettings.load(_env_file=None)):
        assert "very-secret" not in repr(settings)
        assert "very-secret" not in str(settings.model_dump())


def test_a_bad_secret_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_HTTP_PORT", "sk-looks-like-a-key")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert "sk-looks-like-a-key" not in str(caught.value)


def test_log_records_mask_secrets(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.mask")
    mask = SecretMask(["sk-live-123456"])
    logger.addFilter(mask)
    try:
        with caplog.at_level(logging.INFO):
            logger.info("calling with key %s", "sk-live-123456")
            try:
                raise RuntimeError("auth failed for sk-live-123456")
            except RuntimeError:
                logger.exception("oops")
    finally:
        logger.removeFilter(mask)
    assert "sk-live-123456" not in caplog.text
    assert "[secret]" in caplog.text


def test_start_up_with_a_bad_value_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    env = bot_environment(BOT_HTTP_PORT="nope", EVOLINK_API_KEY="k")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "migrate"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: BOT_HTTP_PORT: Input should be a valid integer, unable to parse "
        "string as an integer"
    ]


def test_an_adapter_setting_stops_start_up_the_same_way(tmp_path: Path) -> None:
    env = bot_environment(DISCORD_GUILD_IDS="12,abc", EVOLINK_API_KEY="k")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "migrate"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: DISCORD_GUILD_IDS: expected a comma-separated list of numeric "
        "IDs, not 'abc'"
    ]


def test_the_secrets_to_mask_include_the_adapters_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    secrets = {"EVOLINK_API_KEY": "sk-key-1", "DISCORD_BOT_TOKEN": "discord-token-2",
               "SLACK_BOT_TOKEN": "xoxb-token-3", "SLACK_APP_TOKEN": "xapp-token-4",
               "SLACK_SIGNING_SECRET": "signing-secret-5"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    assert sorted(Configuration.load().secrets()) == sorted(secrets.values())


def test_start_up_without_an_api_key_says_so(tmp_path: Path) -> None:
    env = bot_environment(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat"], cwd=tmp_path, env=env, input="",
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "EVOLINK_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_example_env_file_loads_as_the_defaults() -> None:
    for group in GROUPS:
        assert group.load(_env_file=ROOT / ".env.example") == group.load(_env_file=None)
    assert load_settings(_env_file=ROOT / ".env.example").evolink_api_key is None
    assert not DiscordSettings.load(_env_file=ROOT / ".env.example").enabled
    assert not SlackSettings.load(_env_file=ROOT / ".env.example").enabled


def test_every_setting_is_documented_in_the_example_and_the_readme() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for group in GROUPS:
        for field in group.model_fields:
            name = group.variable(field)
            assert f"\n{name}=" in example or f"\n# {name}=" in example, name
            assert name in readme, name
