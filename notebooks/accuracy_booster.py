# %% [markdown]
# # The Accuracy Booster schedule against HBFP4, HBFP6 and FP32
#
# The Accuracy Booster (Harma et al., arXiv 2211.10737) trains in HBFP4 and switches
# to HBFP6 where 4 bits hurt most: the first and last layers, and the last epoch. It
# ships as the schedule preset `booster` (`hbfpsim.format_schedule.PRESETS`). Here it is
# replayed with HBFP4, HBFP6 and FP32 on the shipped CNN trace (`traces/cnn_digits`,
# the real operands of epochs 0, 15 and 29 of a 30-epoch training run) on `array32`.
#
# Shown per phase: median SQNR (dB) and W1 (outputs' units) of the GEMMs against the
# exact product, and density relative to FP32 (x FP32 MAC/s per um^2); for the
# Booster, which format each GEMM ran in and the fraction of the MACs in each. A
# schedule's density is the MAC mix of its records weighted by the training epochs
# each captured epoch stands for (epochs 0, 15 and 29 of 30 stand for 15, 14 and 1
# epochs), so the last-epoch rule weighs 1/30 of the training, not 1/3.

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path.cwd().parent   # the repository: this notebook runs from notebooks/
if not (ROOT / "traces").is_dir():
    raise FileNotFoundError(f"open this notebook from notebooks/ (cwd: {Path.cwd()})")

# %%
from hbfpsim.format_schedule import PRESETS

booster = PRESETS["booster"]

def numerics(n):
    return f"{n.input.name} (block accumulator {n.block_accumulator}, then {n.accumulator})"

print("default:", numerics(booster.default))
for rule in booster.rules:
    print(f"rule: layers {', '.join(rule.layers)}; phases {', '.join(rule.phases)}; "
          f"epochs {rule.epochs}: {numerics(rule.numerics)}")

# %%
from hbfpsim import replay
from hbfpsim.replay.runfile import parse

run_file = {
    "run": {"traces": ["traces/cnn_digits"], "arrays": ["array32"], "seed": 0,
            "max_outputs": 2048, "max_macs": 2**22},
    "variant": [
        {"name": "fp32", "input": "fp32"},
        {"name": "hbfp6", "input": "hbfp6", "block_accumulator": "fixed17"},
        {"name": "hbfp4", "input": "hbfp4", "block_accumulator": "fixed13"},
        {"name": "booster", "schedule": "booster"},
    ],
}
report = replay.run(parse(run_file, source="booster notebook", base=ROOT), progress=False)
VARIANTS = [v["name"] for v in run_file["variant"]]
print(f"{len(report.rows)} rows in {report.wall_seconds:.1f} s")

# %% [markdown]
# ## Which format each GEMM ran in under the Booster
#
# Rows are layers in forward order, columns the captured epochs; `4` is HBFP4, `6`
# HBFP6. The CNN has three GEMM layers (`0`, `2`: convolutions; `6`: the linear
# classifier), so the first and last layers are two of three, but they hold few of the
# MACs.

# %%
rows = [r for r in report.rows if r.variant == "booster"]
layers = list(dict.fromkeys(r.layer for r in rows if r.phase == "fwd"))
epochs = sorted({r.epoch for r in rows})
PHASES = ("fwd", "bwd_data", "bwd_weight")
label = {"hbfp4@64": "4", "hbfp6@64": "6"}
print(f"{'phase':<12}{'layer':<7}" + "".join(f"{'epoch ' + str(e):>10}" for e in epochs))
for phase in PHASES:
    for layer in layers:
        cells = {r.epoch: label[r.input] for r in rows if r.phase == phase and r.layer == layer}
        if cells:
            print(f"{phase:<12}{layer:<7}" + "".join(f"{cells.get(e, '-'):>10}" for e in epochs))

# %% [markdown]
# ## Fraction of the MACs in each format
#
# Two views: the MACs of the captured trace as they are, and weighted by the training
# epochs each captured epoch stands for (`Row.epochs`), which is what the density of
# a whole training run uses.

# %%
from collections import defaultdict

raw, weighted = defaultdict(int), defaultdict(int)
for r in rows:
    raw[r.input] += r.macs
    weighted[r.input] += r.macs * r.epochs
share_raw = {f: m / sum(raw.values()) for f, m in raw.items()}
share = {f: m / sum(weighted.values()) for f, m in weighted.items()}
print(f"{'format':<10} {'trace MACs':>12} {'share':>7} {'epoch-weighted share':>21}")
for f in sorted(raw):
    print(f"{f:<10} {raw[f]:>12,} {share_raw[f]:>7.1%} {share[f]:>21.2%}")

# %% [markdown]
# ## Per phase: accuracy and density
#
# Medians over each phase's GEMMs. The Booster's median SQNR is a median over
# *records*, most of which (first and last layers, last epoch) run in HBFP6, while its
# density follows the *MACs*, most of which run in HBFP4.

# %%
summary = report.summary()
by = {(s.variant, s.phase): s for s in summary}
ALL_PHASES = (*PHASES, "all")
print(f"{'variant':<9} {'phase':<11} {'records':>7} {'SQNR dB':>8} {'W1':>10} {'density':>8} {'energy uJ':>10}")
for v in VARIANTS:
    for p in ALL_PHASES:
        s = by[v, p]
        print(f"{v:<9} {p:<11} {s.records:>7} {s.sqnr_db_median:>8.1f} {s.w1_median:>10.2e} "
              f"{s.density:>7.2f}x {s.energy_pj / 1e6:>10.2f}")

# %%
import numpy as np

fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4.2),
                                          gridspec_kw={"width_ratios": [3, 2, 1.3]})
x = np.arange(len(ALL_PHASES))
width = 0.8 / len(VARIANTS)
for i, v in enumerate(VARIANTS):
    left.bar(x + (i - (len(VARIANTS) - 1) / 2) * width,
             [by[v, p].sqnr_db_median for p in ALL_PHASES], width, label=v)
left.set_xticks(x, ALL_PHASES)
left.set_ylabel("median SQNR (dB)")
left.set_title("Accuracy per phase")
left.legend(fontsize=8)
left.grid(True, axis="y", alpha=0.3)
middle.bar(VARIANTS, [by[v, "all"].density for v in VARIANTS], color=[f"C{i}" for i in range(len(VARIANTS))])
middle.set_ylabel("density vs FP32 (x FP32 MAC/s per um^2)")
middle.set_title("Density (whole training run)")
middle.grid(True, axis="y", alpha=0.3)
bottom = np.zeros(2)
for f in sorted(raw):
    heights = np.array([share_raw[f], share[f]]) * 100
    right.bar(["trace", "epoch-\nweighted"], heights, bottom=bottom, label=f)
    bottom += heights
right.set_ylim(0, 125)
right.set_ylabel("share of the Booster's MACs (%)")
right.set_title("Format mix")
right.legend(fontsize=8, loc="upper center", ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# The Booster's density is the epoch-weighted harmonic mix of HBFP4's and HBFP6's
# (`hbfpsim.cost.mixed_density`). `tests/test_notebooks.py` runs this notebook and checks
# these values.

# %%
from hbfpsim.cost import mixed_density

d = {v: by[v, "all"].density for v in VARIANTS}
mix = mixed_density([(d["hbfp4"], share["hbfp4@64"]), (d["hbfp6"], share["hbfp6@64"])])
print(f"Booster {d['booster']:.2f}x FP32 (the mix: {mix:.2f}x; HBFP4 {d['hbfp4']:.2f}x), "
      f"{share['hbfp6@64']:.1%} of the training's MACs in HBFP6")
