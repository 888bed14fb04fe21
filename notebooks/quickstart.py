# %% [markdown]
# # Quickstart: one training trace, six number formats
#
# This notebook replays the shipped trace of a small CNN trained on scikit-learn's
# digits (`traces/cnn_digits`: the real operands of the first step of epochs 0, 15 and
# 29, 24 GEMMs over the forward, backward-data and backward-weight phases) on the
# `array32` preset, a 32 x 32 weight-stationary systolic array at 1 GHz with 64 KiB
# buffers, in six number formats. For every GEMM hbfpsim reports
#
# * **time**: array clock cycles (and seconds at the array's clock), utilization and
#   the share of cycles stalled on memory;
# * **cost**: energy in pJ (shown here in uJ: compute, SRAM and DRAM at 28 nm) and the
#   **arithmetic density** of the format's MAC relative to an FP32 MAC (MAC/s per
#   um^2 at equal clock: 10x means ten times the throughput in the same silicon area);
# * **accuracy**: the bit-exact hardware result (`hbfpsim.mac`, under the accumulation
#   plan the dataflow implies) against the exact product: SQNR in dB (higher is
#   better, about 6 dB per mantissa bit) and the Wasserstein-1 distance W1 between the
#   two output distributions, in the outputs' own units (lower is better).
#
# It is the same replay as `hbfpsim run configs/quickstart.toml`, called from Python
# with a smaller sampling budget (at most 2048 outputs and 2^22 MACs evaluated per
# GEMM) so that it runs in a few seconds. See `docs/replay.md` for every column.

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path.cwd().parent   # the repository: this notebook runs from notebooks/
if not (ROOT / "traces").is_dir():
    raise FileNotFoundError(f"open this notebook from notebooks/ (cwd: {Path.cwd()})")

# %% [markdown]
# ## The run
#
# A run names traces, arrays and numerics *variants*. It is usually a TOML file
# (`hbfpsim.replay.load("../configs/quickstart.toml")`); here it is the same structure
# as a dict, validated by `hbfpsim.replay.runfile.parse` (paths relative to `base`).
# The HBFP variants sum each block of 64 products in the narrowest fixed-point register
# that never overflows (13, 17 and 21 bits), then FP32 across blocks and folds.

# %%
from hbfpsim import replay
from hbfpsim.replay.runfile import parse

VARIANTS = [
    {"name": "fp32", "input": "fp32"},
    {"name": "bf16", "input": "bf16"},
    {"name": "mxfp6_e2m3", "input": "mxfp6_e2m3"},
    {"name": "hbfp8", "input": "hbfp8", "block_accumulator": "fixed21"},
    {"name": "hbfp6", "input": "hbfp6", "block_accumulator": "fixed17"},
    {"name": "hbfp4", "input": "hbfp4", "block_accumulator": "fixed13"},
]
run_file = {
    "run": {"traces": ["traces/cnn_digits"], "arrays": ["array32"], "seed": 0,
            "max_outputs": 2048, "max_macs": 2**22},
    "variant": VARIANTS,
}
spec = parse(run_file, source="quickstart notebook", base=ROOT)
report = replay.run(spec, progress=False)
print(f"{len(report.rows)} rows (GEMM records x variants) in {report.wall_seconds:.1f} s")

# %% [markdown]
# ## Summary per variant
#
# `report.summary()` gives one `Summary` per variant x array x trace x phase, plus the phase
# `all`. Cycles, seconds and energies add up over the GEMMs; utilization is
# MAC-weighted; density is the MAC mix of the records (every record of a fixed format
# has the same); SQNR and W1 are medians over the GEMMs evaluated.

# %%
summary = report.summary()
overall = {s.variant: s for s in summary if s.phase == "all"}

print(f"{'variant':<11} {'cycles':>8} {'util':>6} {'stalls':>7} {'time us':>8} "
      f"{'energy uJ':>10} {'density':>8} {'SQNR dB':>8} {'W1':>9}")
for name, s in overall.items():
    print(f"{name:<11} {s.cycles:>8} {s.utilization:>6.1%} {s.stall_share:>7.1%} "
          f"{s.seconds * 1e6:>8.1f} {s.energy_pj / 1e6:>10.2f} {s.density:>7.2f}x "
          f"{s.sqnr_db_median:>8.1f} {s.w1_median:>9.2e}")

# %% [markdown]
# The median SQNR (dB) per phase: the backward-weight GEMMs reduce over the batch and
# every position (long reductions), the backward-data ones carry tiny gradients.

# %%
PHASES = ("fwd", "bwd_data", "bwd_weight", "all")
sqnr = {(s.variant, s.phase): s.sqnr_db_median for s in summary}
print(f"{'SQNR dB':<11}" + "".join(f"{p:>12}" for p in PHASES))
for name in overall:
    print(f"{name:<11}" + "".join(f"{sqnr[name, p]:>12.1f}" for p in PHASES))

# %% [markdown]
# ## Accuracy against density
#
# Each format is a point: its density relative to FP32 (x, log scale) against the
# median SQNR of its GEMMs (y, dB). The Pareto front (denser *and* more accurate than
# any other point) comes from `hbfpsim.replay.figures.pareto`, which maximizes both
# coordinates.

# %%
from hbfpsim.replay.figures import pareto

names = list(overall)
points = [(overall[n].density, overall[n].sqnr_db_median) for n in names]
front = pareto(points)

fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name, (x, y) in zip(names, points):
    ax.scatter(x, y, s=40, zorder=3)
    below = name.startswith("mx")                 # MXFP6 sits next to HBFP6
    ax.annotate(name, (x, y), textcoords="offset points", xytext=(-10 if below else 6, -14 if below else 4),
                fontsize=9)
ax.step([points[i][0] for i in front], [points[i][1] for i in front], where="post",
        color="0.5", linestyle="--", label="Pareto front")
ax.set_xscale("log")
ax.set_xlabel("density vs FP32 (x FP32 MAC/s per um^2)")
ax.set_ylabel("median SQNR (dB)")
ax.set_title("cnn_digits on array32: accuracy against density")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
plt.show()
print("on the front:", ", ".join(names[i] for i in front))

# %% [markdown]
# Each HBFP mantissa bit is worth about 6 dB of SQNR (HBFP8 > HBFP6 > HBFP4, two bits
# apart), and density buys what SQNR loses. `tests/test_notebooks.py` runs this notebook
# and checks these values.

# %%
d = {n: s.density for n, s in overall.items()}
q = {n: s.sqnr_db_median for n, s in overall.items()}
slope = (q["hbfp8"] - q["hbfp4"]) / 4          # dB per mantissa bit, HBFP4 -> HBFP8
print(f"{slope:.2f} dB per mantissa bit, HBFP4 at {d['hbfp4']:.1f}x FP32")
