"""`python -m bot doctor`: load the settings, run every check, print one line for each thing
checked (✓, ✗ with what to do, or - skipped), and exit 0 only if nothing failed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from bot import ConfigError, SecretMask, configure_logging
from launcher.checks import CHECKS, Check, Context, Result, Status
from launcher.cli import Configuration


def doctor(timeout: float) -> int:
    """Check everything with `timeout` seconds for each answer; 0 if every check passed or
    was skipped, 1 if one failed."""
    try:
        config = Configuration.load()
    except ConfigError as exc:
        problem = str(exc).removeprefix("configuration error: ")
        print(Result.failed("configuration", problem, "fix it in the environment or .env")
              .line())
        for check in CHECKS:
            print(Result.skipped(check.name, "the configuration did not load").line())
        return 1
    hidden = config.secrets()
    configure_logging("ERROR", hidden)
    mask = SecretMask(hidden)

    def report(result: Result) -> None:
        print(mask.mask(result.line()), flush=True)

    report(Result.passed("configuration", _serves(config)))
    results = asyncio.run(run_checks(Context(config, timeout), CHECKS, report))
    return 1 if any(result.status is Status.FAILED for result in results) else 0


async def run_checks(context: Context, checks: Sequence[Check],
                     report: Callable[[Result], None]) -> list[Result]:
    """Run the checks at once; report their results in the checks' order as they come in.
    A check that raises is reported as failed, and the others still run."""
    tasks = [asyncio.create_task(_run(check, context)) for check in checks]
    results: list[Result] = []
    for task in tasks:
        for result in await task:
            report(result)
            results.append(result)
    return results


async def _run(check: Check, context: Context) -> list[Result]:
    try:
        return await check.run(context)
    except Exception as exc:  # a bug in one check must not hide the others' results
        return [Result.failed(check.name, f"the check itself failed: {type(exc).__name__}: "
                              f"{exc}", "report this as a bug in the bot")]


def _serves(config: Configuration) -> str:
    platforms = [name for name, on in (("Discord", config.discord.enabled),
                                       ("Slack", config.slack.enabled)) if on]
    if not platforms:
        return "valid; no platform is configured, so python -m bot opens the terminal chat"
    return f"valid; python -m bot serves {' and '.join(platforms)}"
