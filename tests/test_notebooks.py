"""The notebooks in ``notebooks/`` run top to bottom on small data and are committed without outputs.

Each notebook is executed with ``nbclient`` in its own temporary working
directory (so nothing lands in the repository), with a timeout per cell; any
error in a cell fails the test. The notebooks import the package, so this also
checks that the public functions they call still exist and still fit together.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: Seconds one cell may take on a loaded 2-core machine before the run is failed.
CELL_TIMEOUT_S = 300


def _ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


def test_the_three_notebooks_are_there():
    names = {path.name for path in NOTEBOOKS}
    expected = {
        "01_explore_data.ipynb",
        "02_train_and_compare.ipynb",
        "03_winback_list_via_api.ipynb",
    }
    assert expected <= names, f"missing notebooks: {sorted(expected - names)} in {NOTEBOOK_DIR}"


def stored_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """Where a notebook still holds outputs or execution counts (``cell <i>: ...``)."""
    problems = []
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i}: execution_count {cell.execution_count}")
    return problems


def test_stored_outputs_finds_outputs_and_counts():
    notebook = nbformat.v4.new_notebook()
    clean = nbformat.v4.new_code_cell("1 + 1")
    ran = nbformat.v4.new_code_cell("1 + 1", execution_count=3)
    ran.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"})]
    notebook.cells = [nbformat.v4.new_markdown_cell("# t"), clean, ran]
    assert stored_outputs(notebook) == ["cell 2: 1 output(s)", "cell 2: execution_count 3"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    problems = stored_outputs(notebook)
    assert not problems, (
        f"{path.name} holds outputs ({'; '.join(problems)}): clear them before committing "
        f"('Clear All Outputs' in Jupyter or VS Code, then save)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_a_parameters_cell(path: Path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, (
        f"{path.name}: expected one cell tagged 'parameters', got {len(tagged)}"
    )
    assert tagged[0].cell_type == "code"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_on_small_data(path: Path, tmp_path: Path, monkeypatch):
    from nbclient import NotebookClient

    # the kernel inherits the environment: keep MLflow, BentoML and the served
    # process inside tmp_path and off the network
    monkeypatch.chdir(tmp_path)
    for key in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "BENTOML_DO_NOT_TRACK"):
        monkeypatch.setenv(key, "true")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    for key in ("MLFLOW_TRACKING_URI", "WINBACK_HOME", "WINBACK_SCORE_DIR", "WINBACK_API_KEYS"):
        monkeypatch.delenv(key, raising=False)
    repo = str(NOTEBOOK_DIR.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [repo, os.getenv("PYTHONPATH")])))

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error

    ran = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in ran), f"{path.name}: not every cell ran"
    assert not list(NOTEBOOK_DIR.glob("mlruns")), "a notebook wrote into notebooks/"
