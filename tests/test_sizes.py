"""Sizes a reader can hold in mind: modules ≤ 500 lines, functions ≤ 80 lines, ≤ 7 parameters.

Read from the source of ``features``, ``training``, ``serving`` and ``winback``.
Two kinds of functions may take more parameters, because their parameters are
their interface rather than a bundle of settings: command-line commands (each
parameter is a ``typer`` option) and scikit-learn style ``__init__`` methods
(each parameter is a hyperparameter ``get_params`` reports).

``KNOWN`` lists what was over a limit when the check was written; it may only
shrink. A new module, function or signature over a limit fails the test, and so
does an entry in ``KNOWN`` that is no longer over (remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "training", "serving", "winback")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 7

#: Over a limit when the check was written; split them, then remove them here. Empty:
#: every module, function and signature is within the limits.
KNOWN: set[str] = set()


def _is_command(node: ast.FunctionDef) -> bool:
    """A typer command: its parameters are ``typer.Option`` / ``typer.Argument`` (default or type)."""
    args = node.args
    annotations = [a.annotation for a in (*args.args, *args.kwonlyargs) if a.annotation]
    defaults = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    texts = [ast.unparse(x) for x in (*annotations, *defaults)]
    return any("typer." in t or t.endswith("Option") or t.endswith("Argument") for t in texts)


def _is_estimator(node: ast.ClassDef) -> bool:
    """A scikit-learn estimator: one of its bases is ``BaseEstimator``."""
    return any(
        (isinstance(b, ast.Name) and b.id == "BaseEstimator")
        or (isinstance(b, ast.Attribute) and b.attr == "BaseEstimator")
        for b in node.bases
    )


def _parameters(node: ast.FunctionDef) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return len([n for n in names if n not in ("self", "cls")])


def over_the_limits(root: Path = ROOT) -> set[str]:
    """Every module, function length and signature over a limit, as ``KNOWN`` names them."""
    out = set()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            source = path.read_text(encoding="utf-8")
            if len(source.splitlines()) > MAX_MODULE_LINES:
                out.add(f"module {name}")
            tree = ast.parse(source, filename=name)
            estimator_inits = {
                id(item)
                for cls in ast.walk(tree)
                if isinstance(cls, ast.ClassDef) and _is_estimator(cls)
                for item in cls.body
                if isinstance(item, ast.FunctionDef) and item.name == "__init__"
            }
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    out.add(f"lines {name}:{node.name}")
                exempt = _is_command(node) or id(node) in estimator_inits
                if not exempt and _parameters(node) > MAX_PARAMETERS:
                    out.add(f"parameters {name}:{node.name}")
    return out


def test_nothing_new_is_over_a_limit() -> None:
    assert sorted(over_the_limits() - KNOWN) == []


def test_known_offenders_are_still_over_a_limit() -> None:
    assert sorted(KNOWN - over_the_limits()) == []


def test_the_check_sees_a_long_function_and_a_wide_signature(tmp_path: Path) -> None:
    package = tmp_path / "features"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    (package / "m.py").write_text(
        f"def long():\n{body}\n\n"
        "def wide(a, b, c, d, e, f, g, h):\n    pass\n\n"
        "def command(a=typer.Option(1), b=2, c=3, d=4, e=5, f=6, g=7, h=8):\n    pass\n\n"
        "class Model(BaseEstimator):\n"
        "    def __init__(self, a, b, c, d, e, f, g, h):\n        pass\n\n"
        "class Settings:\n"
        "    def __init__(self, a, b, c, d, e, f, g, h):\n        pass\n"
    )
    assert over_the_limits(tmp_path) == {
        "lines features/m.py:long",
        "parameters features/m.py:wide",
        "parameters features/m.py:__init__",
    }
