# %% [markdown]
# # Arithmetic density, MAC area and array area
#
# `hbfpsim.cost` prices hardware at 28 nm from published synthesis tables
# (`docs/cost.md`):
#
# * **MAC area** in um^2 per MAC (one lane of a dot-product unit: operand registers,
#   multiplier, the adder tree at the accumulator's width, and per block the exponent
#   adder, fixed-to-float converter and FP32 accumulator, amortized over the block);
#   **energy** in pJ per MAC;
# * **arithmetic density** relative to FP32: at equal clock every MAC does one MAC per
#   cycle, so density = area(FP32 MAC) / area(MAC), in x FP32 MAC/s per um^2;
# * **array area** of a configuration: R x C processing elements (a MAC plus a
#   partial-sum register), the float-to-block converters at the output edge, and the
#   SRAM buffers, shown in mm^2 (1 mm^2 = 10^6 um^2).
#
# Every format uses its default accumulator unless said otherwise: the narrowest
# fixed-point register that never overflows a block's sum (HBFP4@64: 13 bits), or the
# FP format's own (FP16 for FP8).

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path.cwd().parent   # the repository: this notebook runs from notebooks/
if not (ROOT / "traces").is_dir():
    raise FileNotFoundError(f"open this notebook from notebooks/ (cwd: {Path.cwd()})")

# %% [markdown]
# ## Density per format
#
# `density_table()` has a row per standard format, then the Accuracy Booster mix
# (99 % of the MACs in HBFP4, 1 % in HBFP6; a mix's density is the MAC-weighted
# harmonic mean).

# %%
from hbfpsim.cost import density_table

table = density_table()
print(f"{'format':<30} {'accumulator':<16} {'um2/MAC':>8} {'pJ/MAC':>7} {'bits/elem':>9} {'density':>8}")
for r in table:
    print(f"{r.format:<30} {r.accumulator:<16} {r.area:>8.1f} {r.energy:>7.3f} "
          f"{r.storage_bits:>9.3f} {r.density:>7.2f}x")
density = {r.format: r.density for r in table}

# %%
rows = sorted(table, key=lambda r: r.density)
colors = ["tab:red" if r.format.startswith(("hbfp", "booster")) else
          "tab:green" if r.format.startswith("mx") else "tab:blue" for r in rows]
fig, ax = plt.subplots(figsize=(7, 5))
ax.barh([r.format.split(" + ")[0] for r in rows], [r.density for r in rows], color=colors)
ax.axvline(1.0, color="k", linewidth=0.8)
ax.set_xlabel("density vs FP32 (x FP32 MAC/s per um^2, 28 nm, equal clock)")
ax.set_title("Arithmetic density per format (red: HBFP, green: MX, blue: FP/INT)")
ax.grid(True, axis="x", alpha=0.3)
plt.show()

# %% [markdown]
# ## MAC area by part
#
# `mac_cost(format, accumulator)` breaks one MAC into parts (um^2 per MAC). FP formats
# spend their area in the multiplier and FP adders; block formats in small integer
# multipliers and the adder tree, whose width the accumulator sets: the second panel
# widens HBFP4's block accumulator from the exact 13 bits.

# %%
from hbfpsim.cost import mac_cost

FORMATS = ["fp32", "bf16", "fp8_e4m3", "int8", "mxfp6_e2m3", "mxfp4", "hbfp8", "hbfp6", "hbfp4"]
macs = {f: mac_cost(f) for f in FORMATS}
parts = list(dict.fromkeys(p for m in macs.values() for p in m.parts))
short = {p: p.replace("operand registers", "operands").replace("fixed-to-float", "fix->float")
         .replace("block exponent", "block exp").replace("FP32 accumulator", "FP32 acc")
         for p in parts}
print("um^2 per MAC, by part ('-': the MAC has no such part)")
print(f"{'format':<11} {'acc':<8}" + "".join(f"{short[p]:>12}" for p in parts) + f"{'total':>9}")
for f, m in macs.items():
    cells = "".join(f"{m.parts[p]:>12.1f}" if p in m.parts else f"{'-':>12}" for p in parts)
    print(f"{f:<11} {m.accumulator!s:<8}{cells}{m.area:>9.1f}")

# %%
WIDTHS = list(range(13, 33))
hbfp4_area = [mac_cost("hbfp4", f"fixed{w}").area for w in WIDTHS]

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
bottom = [0.0] * len(FORMATS)
for p in parts:
    heights = [100 * macs[f].parts.get(p, 0.0) / macs[f].area for f in FORMATS]
    left.bar(FORMATS, heights, bottom=bottom, label=p)
    bottom = [b + h for b, h in zip(bottom, heights)]
for i, f in enumerate(FORMATS):
    left.annotate(f"{macs[f].area:.0f}", (i, 100), xytext=(0, 3), textcoords="offset points",
                  ha="center", fontsize=8)
left.set_ylim(0, 135)
left.set_ylabel("share of the MAC's area (%)")
left.set_title("MAC area by part (total um^2 above each bar)")
left.tick_params(axis="x", rotation=45)
left.legend(fontsize=7, ncol=3, loc="upper center")
right.plot(WIDTHS, hbfp4_area, marker="o")
right.set_xlabel("HBFP4 block accumulator width (bits)")
right.set_ylabel("area per MAC (um^2)")
right.set_title("HBFP4@64: the accumulator as an axis")
right.grid(True, alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Array area
#
# `array_cost(config)` for a few configurations: the shipped presets (`small16`,
# `array32`, `tpu128`, `array256`) and `array32` with other numerics
# (`dataclasses.replace` on the loaded configuration). PE = MAC + partial-sum register
# (um^2); PEs, edge converters and SRAM in mm^2.

# %%
from dataclasses import replace

from hbfpsim.array import load
from hbfpsim.cost import array_cost

array32 = load("array32")
CONFIGS = {
    "small16": load("small16"),
    "array32": array32,
    "array32 hbfp4 fixed13": replace(array32, block_accumulator="fixed13"),
    "array32 hbfp8": replace(array32, input="hbfp8", weight="hbfp8", block_accumulator="fixed21"),
    "array32 bf16": replace(array32, input="bf16", weight="bf16", accumulator="bf16", block_accumulator=None),
    "array32 fp32": replace(array32, input="fp32", weight="fp32", block_accumulator=None),
    "tpu128": load("tpu128"),
    "array256": load("array256"),
}
costs = {name: array_cost(c) for name, c in CONFIGS.items()}
print(f"{'configuration':<22} {'shape':>9} {'format':>9} {'acc':>8} {'PE um2':>8} "
      f"{'PEs mm2':>8} {'edge mm2':>9} {'SRAM mm2':>9} {'total mm2':>10}")
for name, a in costs.items():
    c = CONFIGS[name]
    print(f"{name:<22} {f'{c.rows}x{c.cols}':>9} {a.mac.format.name:>9} {a.mac.accumulator!s:>8} "
          f"{a.pe:>8.1f} {a.pes / 1e6:>8.3f} {a.edge / 1e6:>9.4f} {a.sram / 1e6:>9.3f} {a.area / 1e6:>10.3f}")

# %%
PARTS = (("pes", "PEs", "tab:blue"), ("edge", "edge converters", "tab:orange"),
         ("sram", "SRAM buffers", "tab:gray"))
same_shape = [n for n in costs if n.startswith("array32")]
presets = ["small16", "array32", "tpu128", "array256"]

fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
bottom = [0.0] * len(same_shape)
for part, label, color in PARTS:
    heights = [getattr(costs[n], part) / 1e6 for n in same_shape]
    left.bar(same_shape, heights, bottom=bottom, label=label, color=color)
    bottom = [b + h for b, h in zip(bottom, heights)]
left.set_ylabel("area (mm^2, stacked)")
left.set_title("32 x 32 array, 64 KiB buffers each: numerics")
left.tick_params(axis="x", rotation=30)
left.legend()
left.grid(True, axis="y", alpha=0.3)
bottom = [0.0] * len(presets)
for part, label, color in PARTS:
    heights = [100 * getattr(costs[n], part) / costs[n].area for n in presets]
    right.bar(presets, heights, bottom=bottom, label=label, color=color)
    bottom = [b + h for b, h in zip(bottom, heights)]
for i, n in enumerate(presets):
    right.annotate(f"{costs[n].area / 1e6:.2f} mm^2", (i, 100), xytext=(0, 3),
                   textcoords="offset points", ha="center", fontsize=8)
right.set_ylim(0, 112)
right.set_ylabel("share of the array's area (%)")
right.set_title("Presets (total above each bar)")
fig.tight_layout()
plt.show()

# %% [markdown]
# In short (`tests/test_notebooks.py` runs this notebook and checks these values):

# %%
fp32_pes, hbfp4_pes = costs["array32 fp32"].pes, costs["array32 hbfp4 fixed13"].pes
print(f"HBFP4@64 at {density['hbfp4@64']:.1f}x FP32; its MAC with a 32-bit block accumulator "
      f"is {hbfp4_area[-1] / hbfp4_area[0]:.2f}x the 13-bit one")
print(f"32 x 32 PEs: {fp32_pes / 1e6:.3f} mm^2 in FP32, {hbfp4_pes / 1e6:.3f} mm^2 in HBFP4 (fixed13)")
