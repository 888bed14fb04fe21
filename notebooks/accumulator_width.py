# %% [markdown]
# # How narrow may a floating-point accumulator be?
#
# A narrow floating-point accumulator *swamps* small addends: once the partial sum is
# large, a product smaller than half its ulp vanishes. Sakr et al. (ICLR 2019) judge an
# accumulator by the **variance retention ratio**
#
# VRR = Var(computed sum) / Var(exact sum)   (dimensionless; 1 = nothing lost)
#
# over an ensemble of dot products of n i.i.d. zero-mean products.
# `hbfpsim.accuracy.vrr` (`docs/vrr.md`) models it for an `e8m<M>` accumulator with M
# fraction (mantissa) bits and measures it with the bit-exact MAC engine. The **knee**
# is the fewest bits losing at most ln 50 = 3.9 product variances,
# n (1 - VRR) <= ln 50 (Sakr et al.'s cut-off).
#
# This notebook draws VRR against the accumulator's mantissa bits for several
# accumulation lengths n, theory (lines) against measurement (markers, +-2 standard
# errors), the knee for sequential and chunked (chunks of 64) accumulation, and the
# MAC engine's swamping counts for a narrow against a wide accumulator.

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path.cwd().parent   # the repository: this notebook runs from notebooks/
if not (ROOT / "traces").is_dir():
    raise FileNotFoundError(f"open this notebook from notebooks/ (cwd: {Path.cwd()})")

# %%
from hbfpsim.accuracy.vrr import measured_vrr, min_mantissa_bits, vrr

LENGTHS = [2**8, 2**10, 2**12, 2**14]            # products per dot product, n
BITS = list(range(2, 15))                         # accumulator fraction bits, M
MEASURED_BITS = [4, 6, 8, 10]
TRIALS = 1024                                     # sums per measured point

theory = {n: [vrr(n, m) for m in BITS] for n in LENGTHS}
measured = {(n, m): measured_vrr(n, m, trials=TRIALS, seed=1) for n in LENGTHS for m in MEASURED_BITS}
knee = {n: min_mantissa_bits(n) for n in LENGTHS}

print(f"{'n':>6} {'M':>3} {'model':>7} {'measured':>9} {'+-se':>7}")
for (n, m), (value, se) in measured.items():
    print(f"{n:>6} {m:>3} {vrr(n, m):>7.4f} {value:>9.4f} {se:>7.4f}")

# %% [markdown]
# ## The knee, sequential and in chunks of 64
#
# Chunk-based accumulation (sum chunks of 64 products, then the chunk sums, in the same
# format) keeps VRR at 1 with 3 to 4 fewer bits: the partial sums stay small for longer.

# %%
KNEE_LENGTHS = [2**e for e in range(10, 21, 2)]
knees = {n: (min_mantissa_bits(n), min_mantissa_bits(n, chunk=64)) for n in KNEE_LENGTHS}
print(f"{'n':>9} {'sequential':>11} {'chunks of 64':>13}   (fraction bits at the knee)")
for n, (seq, chunked) in knees.items():
    print(f"{'2^' + str(n.bit_length() - 1):>9} {seq:>11} {chunked:>13}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
for i, n in enumerate(LENGTHS):
    color = f"C{i}"
    left.plot(BITS, theory[n], color=color, label=f"n = 2^{n.bit_length() - 1}")
    values = [measured[n, m] for m in MEASURED_BITS]
    left.errorbar(MEASURED_BITS, [v for v, _ in values], yerr=[2 * se for _, se in values],
                  fmt="o", color=color, capsize=3)
    left.axvline(knee[n], color=color, linestyle=":", linewidth=1)
left.set_xlabel("accumulator fraction bits M (e8m<M>)")
left.set_ylabel("variance retention ratio VRR")
left.set_title("VRR: model (lines), MAC engine (markers, 2 s.e.), knee (dotted)")
left.grid(True, alpha=0.3)
left.legend()
exps = [n.bit_length() - 1 for n in KNEE_LENGTHS]
right.plot(exps, [s for s, _ in knees.values()], marker="o", label="sequential")
right.plot(exps, [c for _, c in knees.values()], marker="s", label="chunks of 64")
right.set_xlabel("log2 of the accumulation length n")
right.set_ylabel("fraction bits at the knee (bits)")
right.set_title("Knee: n (1 - VRR) <= ln 50")
right.grid(True, alpha=0.3)
right.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Swamping in the MAC engine: narrow against wide
#
# FP8 (E4M3) operands, K = 4096 products per output, accumulated bit-exactly by
# `hbfpsim.mac.matmul` in three plans: sequential FP32 (wide), sequential FP16
# (`e5m10`, narrow), and FP16 in chunks of 64 (Sakr et al.'s chunk-based accumulation).
# The statistics count, summed over outputs, the addends lost entirely (*full swamps*)
# and those that lost low bits (*partial swamps*); the errors are against the exact
# product of the quantized operands (float64): relative Frobenius error and VRR over
# the outputs.

# %%
import numpy as np

from hbfpsim import matmul, quantize

rng = np.random.default_rng(0)
A = rng.standard_normal((64, 4096)).astype(np.float32)
B = rng.standard_normal((4096, 64)).astype(np.float32)
exact = quantize(A, "fp8_e4m3").astype(np.float64) @ quantize(B, "fp8_e4m3", axis=0).astype(np.float64)

PLANS = {"FP32 (wide)": "fp32", "FP16 (narrow)": "e5m10", "FP16, chunks of 64": "e5m10*64 > e5m10"}
swamps = {}
print(f"{'plan':<20} {'full swamps/out':>16} {'partial/out':>12} {'rel error':>10} {'VRR':>7}")
for label, plan in PLANS.items():
    out, stats = matmul(A, B, "fp8_e4m3", plan=plan)
    full = sum(int(lv.full_swamps) for lv in stats.levels) / out.size
    partial = sum(int(lv.partial_swamps) for lv in stats.levels) / out.size
    rel = float(np.linalg.norm(out - exact) / np.linalg.norm(exact))
    retained = float(np.sum(out**2) / np.sum(exact**2))
    swamps[label] = (full, partial, rel, retained)
    print(f"{label:<20} {full:>16.1f} {partial:>12.1f} {rel:>10.2e} {retained:>7.4f}")
print()
print(stats.summary())

# %%
fig, ax = plt.subplots(figsize=(7, 4))
labels = list(swamps)
x = np.arange(len(labels))
ax.bar(x - 0.2, [swamps[k][0] for k in labels], 0.4, label="full swamps (addend lost)")
ax.bar(x + 0.2, [swamps[k][1] for k in labels], 0.4, label="partial swamps (low bits lost)")
ax.set_xticks(x, labels)
ax.set_yscale("symlog", linthresh=1)
ax.set_ylim(0, 3 * max(max(v[0], v[1]) for v in swamps.values()))
ax.set_ylabel("events per output (K = 4096 products)")
ax.set_title("FP8 products, K = 4096: swamping by accumulator")
ax.legend()
ax.grid(True, axis="y", alpha=0.3)
plt.show()

# %% [markdown]
# In short (`tests/test_notebooks.py` runs this notebook and checks these values):

# %%
wide, narrow, chunked = (swamps[k] for k in PLANS)
print(f"n = 2^16: the knee at {knees[2**16][0]} fraction bits sequentially, "
      f"{knees[2**16][1]} in chunks of 64")
print(f"FP16 against FP32: {narrow[0]:.0f} against {wide[0]:.0f} full swamps per output, "
      f"relative error {narrow[2]:.1e} against {wide[2]:.1e}")
