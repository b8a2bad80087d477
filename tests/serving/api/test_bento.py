"""``bentoml build`` with the repository's bentofile makes a Bento whose service imports and mounts
the console (a Bento without the console files could not start)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_the_built_bento_holds_the_console_and_its_service_imports(tmp_path) -> None:
    bentoml = Path(sys.executable).with_name("bentoml")
    if shutil.which("uv") is None:  # bentoml build needs uv (see DEPENDENCIES.md)
        pytest.skip("uv is not on PATH")
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    built = subprocess.run(
        [str(bentoml), "build", "-f", "bentofile.yaml", "--output", "tag"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    sources = list((tmp_path / "bentoml" / "bentos" / "winback").glob("*/src"))
    assert len(sources) == 1, sources
    src = sources[0]
    for name in ("index.html", "console.js", "console.css"):
        assert (src / "serving" / "api" / "console" / name).stat().st_size > 0
    assert not (src / "tests").exists()
    # the built service module imports (mounting the console) from the Bento's own files
    probe = (
        "import serving.api.service as s, serving.api.console as c; "
        "print(c.console_directory()); print(s.WinbackService.name)"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=src,
        env={**env, "PYTHONPATH": str(src), "PYTHONSAFEPATH": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    folder, name = imported.stdout.split()[-2:]
    assert Path(folder) == src / "serving" / "api" / "console" and name == "winback"
