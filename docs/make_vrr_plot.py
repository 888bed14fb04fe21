"""Draw docs/vrr.png: modelled vs measured variance retention ratio (docs/vrr.md).

    python docs/make_vrr_plot.py [--out docs/vrr.png] [--budget 50000000]

Three panels over accumulation lengths n = 16 .. 2^20 products: round-to-nearest-even
accumulation sequentially and in chunks of 64, and round-toward-zero sequentially, for
accumulators e8m4 .. e8m16. Lines: ``hbfpsim.accuracy.vrr.vrr``; markers with two-standard-
error bars: ``measured_vrr`` (MAC engine, FP32 products). ``--budget`` caps the MACs per
measured point (trials = budget / n, at least 256). Prints every point. Takes a few
minutes on two cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib.figure import Figure

from hbfpsim.accuracy.vrr import measured_vrr, vrr

BITS = (4, 6, 8, 10, 12, 14, 16)
PANELS = (("round to nearest even, sequential", "rne", None),
          ("round to nearest even, chunks of 64", "rne", 64),
          ("round toward zero, sequential", "rtz", None))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("vrr.png"))
    parser.add_argument("--budget", type=int, default=50_000_000,
                        help="MACs per measured point (default 5e7)")
    args = parser.parse_args(argv)
    fig = Figure(figsize=(15, 5), layout="constrained")
    axes = fig.subplots(1, len(PANELS), sharey=True)
    colors = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(BITS)))
    lengths = 2 ** np.arange(4, 21)
    measured_at = 4 ** np.arange(2, 11)
    print("panel, m_acc, n, model VRR, measured VRR, standard error")
    for ax, (title, rounding, chunk) in zip(axes, PANELS):
        for color, m_acc in zip(colors, BITS):
            ns = [int(n) for n in lengths if chunk is None or n >= chunk]
            ax.plot(ns, [vrr(n, m_acc, chunk=chunk, rounding=rounding) for n in ns],
                    color=color, label=f"e8m{m_acc}")
            for n in (int(n) for n in measured_at if chunk is None or n >= chunk):
                trials = max(256, args.budget // n)
                value, se = measured_vrr(n, m_acc, chunk=chunk, rounding=rounding,
                                         trials=trials, seed=n + m_acc)
                ax.errorbar(n, value, yerr=2 * se, fmt="o", ms=3.5, color=color, capsize=2)
                print(f"{title}, {m_acc}, {n}, "
                      f"{vrr(n, m_acc, chunk=chunk, rounding=rounding):.4f}, {value:.4f}, "
                      f"{se:.4f}", flush=True)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("accumulation length n (products)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("VRR = Var(computed sum) / Var(exact sum)")
    axes[0].set_ylim(-0.03, 1.05)
    axes[-1].legend(title="accumulator", fontsize=8)
    fig.suptitle("Variance retention of i.i.d. Gaussian products (FP32) accumulated in e8m{M}: "
                 "model (lines) vs MAC engine (markers, ±2 standard errors)")
    fig.savefig(args.out, dpi=110)
    return args.out


if __name__ == "__main__":
    print(main())
