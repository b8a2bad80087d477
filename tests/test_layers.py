"""The import direction of the packages: features <- training <- serving <- winback.

Read from the source (every ``import`` statement, also inside functions), so a
lazy import cannot slip past: ``features`` imports none of ours, ``training``
only ``features``, ``serving`` only ``features`` and ``training``; and the web
framework (bentoml, starlette) is imported only inside ``serving/api/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("features", "training", "serving", "winback")
ALLOWED = {
    "features": set(),
    "training": {"features"},
    "serving": {"features", "training"},
    "winback": {"features", "training", "serving"},
}
WEB_FRAMEWORK = ("bentoml", "starlette")


def imported_modules(path: Path) -> list[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (absolute ones)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", OURS)
def test_packages_import_only_the_layers_below(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources(package)
        for module in imported_modules(path)
        if module.split(".")[0] in OURS
        and module.split(".")[0] != package
        and module.split(".")[0] not in ALLOWED[package]
    ]
    assert not wrong, wrong


def test_only_serving_api_imports_the_web_framework() -> None:
    api = ROOT / "serving" / "api"
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for package in OURS
        for path in sources(package)
        if api not in path.parents
        for module in imported_modules(path)
        if module.split(".")[0] in WEB_FRAMEWORK
    ]
    assert not wrong, wrong


def test_the_check_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from starlette.responses import Response\n    import bentoml\n"
    )
    assert imported_modules(module) == ["starlette.responses", "bentoml"]
