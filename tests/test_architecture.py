"""The shape of the code: the core imports no adapter, adapters use the core's front door only,
and the core's layers import only downwards."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_LIBRARIES = ("discord", "slack_bolt", "slack_sdk", "aiohttp")
LAYERS = [
    {"conversation", "errors", "defaults", "config", "logs", "background", "metrics"},
    {"drawing"},
    {"model"},
    {"storage"},
    {"limits", "attachments", "documents", "tools", "summaries", "stop_relay"},
    {"service", "commands"},
    {"app"},
]
"""The core's layers, lowest first: a module imports from its own layer or those below."""


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, relative imports made absolute."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module


def layer(module: str) -> int:
    """The layer of a core module (`bot.storage.store` is in `storage`)."""
    part = module.split(".")[1]
    return next(i for i, names in enumerate(LAYERS) if part in names)


def core_modules() -> list[Path]:
    """Every module of the core but two: the front door (`bot/__init__.py`, which exports from
    every layer) and `bot/__main__.py`, which only names `python -m bot` and hands over to the
    composition root in launcher/."""
    skipped = {ROOT / "bot" / "__init__.py", ROOT / "bot" / "__main__.py"}
    return [path for path in sorted((ROOT / "bot").rglob("*.py")) if path not in skipped]


def test_the_core_imports_no_adapter_and_no_platform_library() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in core_modules() for line, module in imports(path)
        if module.split(".")[0] in ("adapters", "launcher", *PLATFORM_LIBRARIES)
    ]
    assert found == []


def test_adapters_import_the_core_only_through_its_front_door() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "adapters").rglob("*.py"))
        for line, module in imports(path)
        if module.startswith("bot.")
    ]
    assert found == []


def test_the_cores_layers_import_only_downwards() -> None:
    found = []
    for path in core_modules():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module.endswith(".__init__"):
            continue
        for line, imported in imports(path):
            if imported.startswith("bot.") and layer(imported) > layer(module):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported} (higher)")
    assert found == []


def test_every_core_module_has_a_layer() -> None:
    for path in core_modules():
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] != "__init__":
            assert layer(".".join(parts)) >= 0
