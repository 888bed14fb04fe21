# %% [markdown]
# # A design-space sweep and its energy-time Pareto front
#
# `hbfpsim.sweep` expands a spec of axes and constraints into runs, executes them on a
# process pool and stores the results in one SQLite file that a killed sweep resumes
# from. Here: one ResNet-50 training step (`traces/resnet50_step`, 161 GEMMs, shapes
# only: time and cost, no accuracy) on square arrays of 16 to 128 PEs a side, weight-
# or output-stationary, in four numerics variants: 32 runs.
#
# Units: time in seconds of array clock (1 GHz, from `array32`, the base every run
# varies), energy in J (the store keeps pJ: compute, SRAM and DRAM at 28 nm), array
# area in mm^2. Lower time and lower energy are both better; the Pareto front is the
# set of runs no other run beats on both.

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path.cwd().parent   # the repository: this notebook runs from notebooks/
if not (ROOT / "traces").is_dir():
    raise FileNotFoundError(f"open this notebook from notebooks/ (cwd: {Path.cwd()})")

# %%
import json
import tempfile

from hbfpsim.sweep import load

tmp = tempfile.TemporaryDirectory(prefix="hbfpsim-sweep-")
folder = Path(tmp.name)
trace = json.dumps((ROOT / "traces" / "resnet50_step").as_posix())   # a TOML string
(folder / "sweep.toml").write_text(f"""
[sweep]
name = "notebook"
traces = [{trace}]
base = "array32"
compute = "timing"
constraints = ["rows == cols"]

[axes]
rows = [16, 32, 64, 128]
cols = [16, 32, 64, 128]
dataflow = ["ws", "os"]

[[variant]]
name = "fp32"
input = "fp32"

[[variant]]
name = "bf16"
input = "bf16"

[[variant]]
name = "hbfp8"
input = "hbfp8"
block_accumulator = "fixed21"

[[variant]]
name = "hbfp4"
input = "hbfp4"
block_accumulator = "fixed13"
""")
spec = load(folder / "sweep.toml")
print(f"{spec.size} combinations, {len(spec.runs())} runs after the constraint")

# %% [markdown]
# ## Run it
#
# `driver.run(spec, store, workers=2)` runs the pending runs on two worker processes
# and writes each result to the store as it arrives.

# %%
from hbfpsim.sweep.driver import run
from hbfpsim.sweep.store import open_existing

store = folder / "sweep.sqlite"
outcome = run(spec, store, workers=2, progress=False)
print(outcome)
with open_existing(store) as db:
    header, table = db.rows()
    status = db.status()
runs = [dict(zip(header, row)) for row in table]
print(status)

# %%
print(f"{'variant':<7} {'array':>8} {'flow':>4} {'time s':>8} {'energy J':>9} {'util':>6} "
      f"{'stalls':>7} {'area mm2':>9}")
for r in sorted(runs, key=lambda r: r["energy_pj"]):
    print(f"{r['variant']:<7} {str(r['rows']) + 'x' + str(r['cols']):>8} {r['dataflow']:>4} "
          f"{r['seconds']:>8.3f} {r['energy_pj'] / 1e12:>9.3f} {r['utilization']:>6.1%} "
          f"{r['stall_share']:>7.1%} {r['array_area_um2'] / 1e6:>9.3f}")

# %% [markdown]
# ## Energy against time, and the Pareto fronts
#
# `hbfpsim.replay.figures.pareto` keeps the points no other point beats with both
# coordinates *maximized*, so it is given (-time, -energy). Colours are variants,
# markers dataflows; each front is a dashed step line through its ringed runs.
#
# In this model a ResNet-50 step's energy and its time are both dominated by DRAM
# traffic (the DRAM share of each run's energy is printed below): the configuration
# that moves the fewest DRAM bytes is the fastest *and* the most frugal, so the
# energy-time front can shrink to a single run. The trade-off an architect pays for
# speed is silicon: the right panel puts the same runs against the array's area
# (PEs, edge converters and SRAM, mm^2), where the front has several runs.

# %%
from matplotlib.ticker import NullFormatter, ScalarFormatter

from hbfpsim.replay.figures import pareto

times = [r["seconds"] for r in runs]
energies = [r["energy_pj"] / 1e12 for r in runs]
areas = [r["array_area_um2"] / 1e6 for r in runs]
front = sorted(pareto([(-t, -e) for t, e in zip(times, energies)]), key=lambda i: times[i])
area_front = sorted(pareto([(-t, -a) for t, a in zip(times, areas)]), key=lambda i: times[i])
dram_share = [r["dram_pj"] / r["energy_pj"] for r in runs]
print(f"DRAM share of the energy: {min(dram_share):.1%} to {max(dram_share):.1%} over the runs")

variants = list(dict.fromkeys(r["variant"] for r in runs))
markers = {"ws": "o", "os": "s"}

def draw(ax, ys, front, ylabel, title, yticks):
    for i, v in enumerate(variants):
        for flow, marker in markers.items():
            pick = [j for j, r in enumerate(runs) if r["variant"] == v and r["dataflow"] == flow]
            ax.scatter([times[j] for j in pick], [ys[j] for j in pick], color=f"C{i}",
                       marker=marker, label=f"{v}, {flow}")
    ax.step([times[i] for i in front], [ys[i] for i in front], where="post",
            color="k", linestyle="--", linewidth=1, label="Pareto front")
    ax.scatter([times[i] for i in front], [ys[i] for i in front], s=160,
               facecolors="none", edgecolors="k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, ticks in ((ax.xaxis, [0.2, 0.5, 1, 2, 5]), (ax.yaxis, yticks)):
        axis.set_ticks(ticks)
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("time of one training step (s, 1 GHz array clock)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)

fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
draw(left, energies, front, "energy of one training step (J)",
     "ResNet-50 step: energy against time", [1, 2, 5, 10, 20, 50])
draw(right, areas, area_front, "array area (mm^2: PEs, edge, SRAM)",
     "ResNet-50 step: area against time", [0.5, 1, 2, 5, 10, 20])
left.legend(fontsize=8, ncol=2)
fig.tight_layout()
plt.show()
for title, indices in (("energy-time", front), ("area-time", area_front)):
    for i in indices:
        r = runs[i]
        print(f"{title} front: {r['variant']} {r['rows']}x{r['cols']} {r['dataflow']}: "
              f"{times[i]:.3f} s, {energies[i]:.3f} J, {areas[i]:.3f} mm^2")

# %% [markdown]
# ## Running it again
#
# The store already holds every run, so running the sweep again computes nothing; the
# cell then removes the temporary folder. `tests/test_notebooks.py` runs this notebook
# and checks its values: every run done, with time and energy; each front non-empty and
# non-dominated, every other run dominated by a run on the front.

# %%
again = run(spec, store, workers=2, progress=False)
print(again)
tmp.cleanup()
print(f"{len(front)} run(s) on the energy-time front, {len(area_front)} on the area-time front")
