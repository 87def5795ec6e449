"""The workshop notebooks run top to bottom on the project's own kernel, and are stored without outputs.

Each notebook is executed with nbclient on the ``python3`` kernel. jupyter_client launches that
kernelspec's ``python`` as ``sys.executable``, i.e. the interpreter running the tests (the project
virtualenv); ``test_kernel_is_the_project_interpreter`` checks that, so a notebook never silently runs
against another install of embgeo.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import embgeo

WORKSHOP = Path(__file__).resolve().parents[1] / "notebooks" / "workshop"
NOTEBOOKS = sorted(WORKSHOP.glob("*.ipynb"))
EXPECTED = ["01_anisotropy", "02_intrinsic_dimension", "03_hubness", "04_whitening", "05_index_health",
            "06_layers", "07_comparing_models", "08_shift"]
#: Seconds one cell may take before the run fails (each notebook takes well under a minute in total).
CELL_TIMEOUT = 300


def _run(nb, cwd: Path) -> None:
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()


def test_workshop_notebooks_present():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_saved_clean(path):
    """Stored without outputs or execution counts (clean diffs), on the python3 kernel, ending in exercises."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a workshop notebook needs code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {cell.id} has outputs"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Exercises" in markdown and "<details>" in markdown, "exercises with collapsible hints"
    # every notebook pairs a synthetic control with the bundled real data
    source = "\n".join(c.source for c in code)
    assert "make_" in source and "load_sample(" in source


@pytest.mark.notebooks
@pytest.mark.slow
def test_kernel_is_the_project_interpreter(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import json, sys, embgeo\nprint(json.dumps({'prefix': sys.prefix, 'embgeo': embgeo.__file__}))")]
    _run(nb, tmp_path)
    seen = json.loads(nb.cells[0].outputs[0]["text"])
    assert Path(seen["prefix"]).resolve() == Path(sys.prefix).resolve()
    assert Path(seen["embgeo"]).resolve() == Path(embgeo.__file__).resolve()


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, record_property):
    """Every cell runs without an error (nbclient raises CellExecutionError on the first one)."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    _run(nb, path.parent)
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    print(f"{path.name}: {seconds:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
