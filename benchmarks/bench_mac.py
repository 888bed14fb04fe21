"""MAC engine throughput on one core, against NumPy float32 matmul of the same shape.

For an M x K x N GEMM (default 512^3) it times hbfpsim.matmul end to end (operand
quantization included) for

  (a) HBFP4@64, plan fixed16*64 > fp32: the fixed level provably cannot overflow -> BLAS path
  (b) HBFP4@64, plan fixed12:sat*64 > fp32 on data that does overflow -> sequential kernel
  (c) FP8 E4M3 products into e5m10, round to nearest even
  (d) the same with stochastic rounding

and prints MAC/s and each one's time relative to NumPy float32 matmul (BLAS) measured in the
same run. numba and BLAS are both limited to one thread (per-core figures). Targets
(issue 3): (a) within 10x of float32 BLAS; (b)-(d) at least 300 M MAC/s per core.

    python benchmarks/bench_mac.py [--size 512] [--repeats 3]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy loads BLAS: per-core figures

import argparse  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from hbfpsim.mac import matmul  # noqa: E402
from timing import best_time, machine  # noqa: E402

TARGET_MAC_PER_S = 300e6



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="M = K = N")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    numba.set_num_threads(1)
    n = args.size
    rng = np.random.default_rng(0)
    gauss_a = rng.standard_normal((n, n)).astype(np.float32)
    gauss_b = rng.standard_normal((n, n)).astype(np.float32)
    # positive data in [0.5, 1): HBFP4 codes 4..7, block sums of 64 products exceed 2047
    pos_a = rng.uniform(0.5, 1.0, (n, n)).astype(np.float32)
    pos_b = rng.uniform(0.5, 1.0, (n, n)).astype(np.float32)
    cases = [
        ("(a) hbfp4@64  fixed16*64 > fp32", gauss_a, gauss_b, "hbfp4", "fixed16*64 > fp32"),
        ("(b) hbfp4@64  fixed12*64 > fp32", pos_a, pos_b, "hbfp4", "fixed12*64 > fp32"),
        ("(c) fp8_e4m3  e5m10 (rne)", gauss_a, gauss_b, "fp8_e4m3", "e5m10"),
        ("(d) fp8_e4m3  e5m10:stochastic", gauss_a, gauss_b, "fp8_e4m3", "e5m10:stochastic"),
    ]
    macs = n**3
    t_blas = best_time(lambda: gauss_a @ gauss_b, max(args.repeats, 10))
    print(machine())
    print(f"GEMM {n} x {n} x {n} ({macs / 1e6:.0f} M MACs), one thread, best of {args.repeats}\n")
    print(f"{'case':36} {'path':10} {'M MAC/s':>9} {'time':>9} {'vs f32 BLAS':>12} {'overflows':>10}")
    print(f"{'numpy float32 matmul (baseline)':36} {'BLAS':10} {macs / t_blas / 1e6:9.0f} "
          f"{t_blas * 1e3:7.1f}ms {1:11.1f}x {'-':>10}")
    for label, a, b, fmt, plan in cases:
        run = lambda: matmul(a, b, fmt, plan=plan, seed=1)  # noqa: E731
        stats = run().stats                                   # warm-up: compile or load
        t = best_time(run, args.repeats)
        path = "BLAS" if stats.levels[0].fast_path else "sequential"
        overflows = sum(int(lv.overflows) for lv in stats.levels)
        verdict = "" if label.startswith("(a)") else (
            "  ok" if macs / t >= TARGET_MAC_PER_S else "  below target")
        print(f"{label:36} {path:10} {macs / t / 1e6:9.0f} {t * 1e3:7.1f}ms {t / t_blas:11.1f}x "
              f"{overflows:10d}{verdict}")
    print(f"\ntargets: (a) within 10x of float32 BLAS; (b)-(d) >= {TARGET_MAC_PER_S / 1e6:.0f} "
          "M MAC/s per core")


if __name__ == "__main__":
    main()
