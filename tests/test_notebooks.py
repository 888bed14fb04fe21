"""The notebooks in notebooks/ run from top to bottom without an error, and are what
notebooks/make_notebooks.py writes (no outputs, deterministic cell ids).

Each notebook is executed in a fresh Python kernel (nbclient) with the notebooks folder as
its working directory, as Jupyter runs it; a cell that raises, including a failed assertion
in a notebook's closing checks, fails the test. Needs the test extras (nbclient, nbformat,
ipykernel); skipped without them. All five take about 40 s on two cores with a warm numba
cache.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NOTEBOOKS = ["quickstart.ipynb", "density_and_area.ipynb", "accumulator_width.ipynb",
             "accuracy_booster.ipynb", "sweep_pareto.ipynb"]
KERNEL = "python3"


def _spec_runs_this_python(spec_dir: str) -> bool:
    """Whether the kernelspec in ``spec_dir`` starts this interpreter: jupyter_client
    replaces a bare ``python``/``python3`` with ``sys.executable``; an absolute path must be
    this very interpreter, or the kernel might not see hbfpsim."""
    try:
        argv = json.loads((Path(spec_dir) / "kernel.json").read_text())["argv"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not argv:
        return False
    if argv[0] in ("python", f"python{sys.version_info[0]}",
                   "python{}.{}".format(*sys.version_info[:2])):
        return True
    return os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """The kernel name to run notebooks with: the installed ``python3`` kernelspec when it
    starts this interpreter (ipykernel installs one into the environment), else one written
    to a temporary folder that JUPYTER_PATH puts first."""
    from jupyter_client.kernelspec import find_kernel_specs

    found = find_kernel_specs().get(KERNEL)
    if found is not None and _spec_runs_this_python(found):
        yield KERNEL
        return
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (hbfpsim tests)", "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", os.pathsep.join(
            [str(data), *filter(None, [os.environ.get("JUPYTER_PATH")])]))
        yield KERNEL


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
    assert sorted(generator.NOTEBOOKS) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        assert (FOLDER / name).read_text(encoding="utf-8") == generator.text(name), \
            f"{name} is out of date: run python notebooks/make_notebooks.py"
