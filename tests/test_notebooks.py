"""The analysis notebooks in notebooks/ run from top to bottom and compute what they say.

Each notebook is a percent-format Python file, notebooks/*.py. The test reads it into a
notebook with jupytext, appends one cell that prints the notebook variables its check
needs (pickled, base64), and executes it with nbclient in a fresh Python kernel whose
working directory is notebooks/, as Jupyter runs it. A cell that raises fails the test;
then the ``check_<notebook>`` function below asserts on the values the notebook computed,
its parameters naming the variables it reads. Needs the test extras (jupytext, nbclient,
nbformat, ipykernel); skipped without them. All five take about 30 s on two cores with a
warm numba cache, about 90 s with a cold one.
"""

import base64
import inspect
import itertools
import math
import pickle
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in FOLDER.glob("*.py"))

# The cell appended to a notebook: its variables ``names``, pickled, printed as base64 text.
EXPORT = ("import base64 as _b64, pickle as _pickle\n"
          "print(_b64.b64encode(_pickle.dumps({{n: globals()[n] for n in {names!r}}})).decode())")


def run_notebook(name: str, kernel: str, names: list[str]) -> dict:
    """Execute notebooks/``name`` top to bottom; return its variables ``names``."""
    nb = jupytext.read(FOLDER / name, fmt="py:percent")
    nb.cells.append(nbformat.v4.new_code_cell(EXPORT.format(names=names)))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name=kernel,
                                     resources={"metadata": {"path": str(FOLDER)}})
    client.execute()          # raises CellExecutionError if any cell raises
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs
                      if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return pickle.loads(base64.b64decode(printed))


# ---- the checks, one per notebook: parameters are the notebook's variables -----------------

def check_quickstart(report, VARIANTS, d, q, slope, names, front):
    assert len(report.rows) == 24 * len(VARIANTS)
    assert all(r.cycles > 0 and r.energy_pj > 0 for r in report.rows), "a GEMM took no time"
    assert all(r.sampled and math.isfinite(r.sqnr_db) for r in report.rows if r.variant != "fp32")
    assert d["fp32"] == 1.0 and d["hbfp4"] > d["hbfp6"] > d["hbfp8"] > d["bf16"] > d["fp32"]
    assert q["fp32"] > q["bf16"] > q["hbfp8"] > q["hbfp6"] > q["hbfp4"] > 0
    assert 4.5 < slope < 7.5, slope
    assert front and names.index("hbfp4") in front and names.index("fp32") in front


def check_density_and_area(density, macs, hbfp4_area, costs, CONFIGS):
    assert density["fp32"] == 1.0
    assert density["hbfp4@64"] > density["hbfp6@64"] > density["hbfp8@64"] > density["bf16"] > density["fp32"]
    assert 17 < density["hbfp4@64"] < 25, density["hbfp4@64"]       # docs/cost.md: 18.9x
    for m in macs.values():
        assert all(v > 0 for v in m.parts.values()) and math.isclose(sum(m.parts.values()), m.area)
    assert 1.5 <= hbfp4_area[-1] / hbfp4_area[0] <= 2.2                # fixed32 / fixed13 (Sakr et al.)
    assert all(b > a for a, b in itertools.pairwise(hbfp4_area))        # wider is bigger
    for name, a in costs.items():
        c = CONFIGS[name]
        assert math.isclose(a.pes, a.pe * c.rows * c.cols) and a.pe > a.mac.area
        assert math.isclose(a.area, a.pes + a.edge + a.sram)
    assert costs["array32 fp32"].pes > 10 * costs["array32 hbfp4 fixed13"].pes
    assert costs["array32"].sram == costs["array32 fp32"].sram        # same buffers


def check_accumulator_width(theory, measured, knees, wide, narrow, chunked):
    from hbfpsim.accuracy.vrr import vrr

    for curve in theory.values():                                     # VRR against M, per n
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(curve)), "VRR must grow with M"
        assert curve[-1] > 0.999
    for (n, m), (value, se) in measured.items():
        model = vrr(n, m)
        if model >= 0.9:                                  # docs/vrr.md: within 0.02 there
            assert abs(value - model) <= 0.02 + 3 * se, (n, m, value, model, se)
        else:                                             # deep stagnation: within 2x
            assert model / 2 <= value <= 2 * model, (n, m, value, model)
    assert knees[2**16] == (13, 10)                        # docs/vrr.md's table
    assert all(seq > chunk for seq, chunk in knees.values())
    # (full swamps per output, partial swamps per output, relative error, VRR) per plan
    assert narrow[0] > 10 * max(wide[0], 1) and narrow[2] > 10 * wide[2]
    assert chunked[0] < narrow[0] and chunked[2] < narrow[2]
    assert wide[2] < 1e-6 and abs(wide[3] - 1) < 1e-6


def check_accuracy_booster(report, raw, share, share_raw, d, by, VARIANTS, ALL_PHASES):
    from hbfpsim.cost import mixed_density

    assert all(r.cycles > 0 for r in report.rows)
    assert set(raw) == {"hbfp4@64", "hbfp6@64"} and math.isclose(sum(share.values()), 1.0)
    assert 0 < share["hbfp6@64"] < share_raw["hbfp6@64"] < 0.5     # the last epoch weighs 1/30
    assert d == {v: by[v, "all"].density for v in VARIANTS}
    # the Booster's density is the epoch-weighted harmonic mix of HBFP4's and HBFP6's
    mix = mixed_density([(d["hbfp4"], share["hbfp4@64"]), (d["hbfp6"], share["hbfp6@64"])])
    assert math.isclose(d["booster"], mix, rel_tol=1e-9), (d["booster"], mix)
    assert d["hbfp6"] < d["booster"] < d["hbfp4"] and d["booster"] > 0.9 * d["hbfp4"]
    for p in ALL_PHASES:
        q = {v: by[v, p].sqnr_db_median for v in VARIANTS}
        assert q["fp32"] > q["hbfp6"] > q["hbfp4"], (p, q)
        assert q["booster"] > q["hbfp4"] + 6, (p, q)             # at least a bit better


def check_sweep_pareto(outcome, spec, runs, status, times, energies, areas, front, area_front,
                       dram_share, again):
    assert outcome.runs == len(spec.runs()) == len(runs) == 32 and outcome.computed == 32
    assert status["sweeps"]["notebook"] == {"done": 32, "failed": 0, "pending": 0}
    assert all(r["cycles"] > 0 and r["energy_pj"] > 0 and r["seconds"] > 0 for r in runs)
    assert all(r["records"] == 161 for r in runs)

    def dominates(a, b, ys):
        return times[a] <= times[b] and ys[a] <= ys[b] and (times[a], ys[a]) != (times[b], ys[b])

    for ys, indices in ((energies, front), (areas, area_front)):
        assert indices, "empty Pareto front"
        assert not any(dominates(j, i, ys) for i in indices for j in range(len(runs)))
        assert all(any(dominates(i, j, ys) for i in indices) for j in range(len(runs)) if j not in indices)
    assert len(area_front) > 1                       # speed costs area
    assert min(dram_share) > 0.5                     # the premise of the notebook's text
    assert (again.skipped, again.computed) == (32, 0)


CHECKS = {f.__name__.removeprefix("check_") + ".py": f for f in (
    check_quickstart, check_density_and_area, check_accumulator_width, check_accuracy_booster,
    check_sweep_pareto)}


def test_every_notebook_is_checked():
    assert NOTEBOOKS and sorted(CHECKS) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_has_no_assert(name):
    """The checks live in this module: a notebook shows its values and asserts nothing."""
    assert "assert " not in (FOLDER / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook(name, kernel):
    check = CHECKS[name]
    values = run_notebook(name, kernel, list(inspect.signature(check).parameters))
    check(**values)
