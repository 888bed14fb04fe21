"""Draw docs/vrr.png: modelled vs measured variance retention ratio (docs/vrr.md).

    python docs/make_vrr_plot.py [--out docs/vrr.png] [--budget 50000000]

The figure is ``hbfpsim.plots.plot_vrr`` (its docstring says what it shows); this script
only sets the output and the budget. ``--budget`` caps the MACs per measured point
(trials = budget / n, at least 256). Prints every point. Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hbfpsim.plots import plot_vrr


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("vrr.png"))
    parser.add_argument("--budget", type=int, default=50_000_000,
                        help="MACs per measured point (default 5e7)")
    args = parser.parse_args(argv)
    return plot_vrr(args.out, budget=args.budget, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    print(main())
