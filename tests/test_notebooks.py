"""The notebooks in notebooks/ run from top to bottom without an error, and are what
notebooks/make_notebooks.py writes (no outputs, deterministic cell ids).

Each notebook is executed in a fresh Python kernel (nbclient) with the notebooks folder as
its working directory, as Jupyter runs it; a cell that raises, including a failed assertion
in a notebook's closing checks, fails the test. Needs the test extras (nbclient, nbformat,
ipykernel); skipped without them. All five take about 40 s on two cores with a warm numba
cache.
"""

import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in FOLDER.glob("*.ipynb"))   # what the generator lists


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, kernel):
    nb = nbformat.read(FOLDER / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name=kernel,
                                     resources={"metadata": {"path": str(FOLDER)}})
    client.execute()          # raises CellExecutionError if any cell raises
    errors = [o for cell in nb.cells if cell.cell_type == "code"
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    last = nb.cells[-1]
    assert last.cell_type == "code" and "assert" in last.source, \
        f"{name}: the last cell should check real values"
    printed = "".join(o.get("text", "") for o in last.outputs if o.get("output_type") == "stream")
    assert "checks passed" in printed, f"{name}: the closing checks did not report"


def test_notebooks_are_generated_without_outputs():
    """The committed notebooks are exactly what the generator writes: no outputs, no
    execution counts, and no hand edits that the next regeneration would lose."""
    for name in NOTEBOOKS:
        nb = nbformat.read(FOLDER / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name
    spec = importlib.util.spec_from_file_location("make_notebooks", FOLDER / "make_notebooks.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert NOTEBOOKS and sorted(generator.NOTEBOOKS) == NOTEBOOKS     # no file it does not make
    for name in NOTEBOOKS:
        assert (FOLDER / name).read_text(encoding="utf-8") == generator.text(name), \
            f"{name} is out of date: run python notebooks/make_notebooks.py"
