"""Quantization throughput: hbfpsim's numba kernels vs plain vectorized NumPy, same run.

For HBFP4@64 and MXFP6 (E3M2) on 2^24 float32 values (standard normal, 4096 x 4096,
blocks along the last axis) it prints elements per second of

- hbfpsim with one numba thread (per core) and with every thread,
- a plain vectorized NumPy implementation of the same rule (checked bit-identical first),
- for MXFP6 also the ml_dtypes cast route (scale, cast, rescale; checked identical too),

and each one's ratio to the NumPy baseline. Best of --repeats runs after a warm-up that
compiles the kernels. Target: HBFP >= 300 M elements/s per core.

    python benchmarks/bench_quantize.py [--log2n 24] [--repeats 5]
"""

from __future__ import annotations

import argparse

import ml_dtypes
import numba
import numpy as np

from hbfpsim import formats
from timing import best_time, machine

TARGET_HBFP_PER_CORE = 300e6


def numpy_hbfp(x: np.ndarray, m: int = 4, block: int = 64) -> np.ndarray:
    """HBFP (hardware rule): E = floor(log2 max|x|) + 1 per block, k = rint(|x| 2^(m-1-E))
    saturated at 2^(m-1) - 1. float32 arithmetic is exact here: all scalings are powers of
    two well inside the float32 range for this data."""
    b = x.reshape(-1, block)
    amax = np.abs(b).max(axis=1, keepdims=True)
    e = np.where(amax == 0, -127, np.clip(np.frexp(amax)[1], -127, 127))
    up = np.ldexp(np.float32(1), m - 1 - e)
    k = np.minimum(np.rint(np.abs(b) * up), np.float32(2 ** (m - 1) - 1))
    return (np.copysign(k, b) / up).reshape(x.shape)


def numpy_mx(x: np.ndarray, spec=formats.floating.E3M2, block: int = 32) -> np.ndarray:
    """MX: X = floor(log2 max|x|) - emax per block; elements rounded to the element grid
    (ulp from each element's own exponent, floored at emin) and saturated."""
    b = x.reshape(-1, block)
    amax = np.abs(b).max(axis=1, keepdims=True)
    scale_exp = np.where(amax == 0, -127, np.clip(np.frexp(amax)[1] - 1 - spec.emax, -127, 127))
    v = np.abs(b) * np.ldexp(np.float32(1), -scale_exp)
    ulp_exp = np.maximum(np.frexp(v)[1] - 1, spec.emin) - spec.man_bits
    p = np.minimum(np.ldexp(np.rint(np.ldexp(v, -ulp_exp)), ulp_exp), np.float32(spec.max))
    return np.copysign(np.ldexp(p, scale_exp), b).reshape(x.shape)


def ml_dtypes_mx(x: np.ndarray, spec=formats.floating.E3M2, block: int = 32) -> np.ndarray:
    """MX through ml_dtypes casts (round half to even, saturating for FP6)."""
    b = x.reshape(-1, block)
    amax = np.abs(b).max(axis=1, keepdims=True)
    scale_exp = np.where(amax == 0, -127, np.clip(np.frexp(amax)[1] - 1 - spec.emax, -127, 127))
    v = np.ldexp(b, -scale_exp).astype(ml_dtypes.float6_e3m2fn).astype(np.float32)
    return np.ldexp(v, scale_exp).reshape(x.shape)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=24, help="log2 of the element count")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = 2**args.log2n
    side = 2 ** (args.log2n // 2)
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32).reshape(-1, side)
    threads = numba.get_num_threads()
    print(machine())
    print(f"{n:,} float32 values ({x.shape[0]} x {x.shape[1]}), best of {args.repeats}; "
          f"numba threads available: {threads}\n")
    print(f"{'format':10} {'implementation':28} {'M elem/s':>10} {'vs NumPy':>9}")

    cases = [("hbfp4@64", numpy_hbfp, {}), ("mxfp6_e3m2", numpy_mx, {"ml_dtypes cast": ml_dtypes_mx})]
    per_core_hbfp = 0.0
    for name, baseline, others in cases:
        fmt = formats.get(name)
        ours = fmt.quantize(x)                       # warm-up: compiles (or loads) the kernel
        for label, fn in {"NumPy (baseline)": baseline, **others}.items():
            if not np.array_equal(fn(x).view(np.uint32), ours.view(np.uint32)):
                raise SystemExit(f"{label} disagrees with hbfpsim on {name}: fix the benchmark")
        t_base = best_time(lambda: baseline(x), args.repeats)
        rows = [("NumPy (baseline)", t_base)]
        rows += [(label, best_time(lambda fn=fn: fn(x), args.repeats)) for label, fn in others.items()]
        try:
            numba.set_num_threads(1)
            t_one = best_time(lambda: fmt.quantize(x), args.repeats)
        finally:
            numba.set_num_threads(threads)
        rows.append(("hbfpsim, 1 thread (per core)", t_one))
        rows.append((f"hbfpsim, {threads} threads", best_time(lambda: fmt.quantize(x), args.repeats)))
        for label, t in rows:
            print(f"{name:10} {label:28} {n / t / 1e6:10.1f} {t_base / t:8.2f}x")
        if name.startswith("hbfp"):
            per_core_hbfp = n / t_one
        print()
    verdict = "meets" if per_core_hbfp >= TARGET_HBFP_PER_CORE else "MISSES"
    print(f"HBFP4@64 per core: {per_core_hbfp / 1e6:.0f} M elem/s, {verdict} the "
          f"{TARGET_HBFP_PER_CORE / 1e6:.0f} M elem/s target")


if __name__ == "__main__":
    main()
