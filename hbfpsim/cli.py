"""The ``hbfpsim`` command line. Errors print one line and exit with status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hbfpsim import __version__, formats
from hbfpsim.config import ConfigError


def _formats_table(names: Sequence[str]) -> str:
    rows = [("format", "family", "elem", "block", "shared", "bits/elem", "grid")]
    for name in names or formats.STANDARD:
        f = formats.get(name)
        rows.append((f.name, f.family, str(f.element_bits), str(f.block or "-"),
                     str(f.scale_bits or "-"), f"{f.storage_bits:.3f}", f.describe()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    right = {2, 3, 4, 5}
    return "\n".join("  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) + "  " + r[-1]
                     for r in rows)


def _gemm_report(config_path: str, m: int, n: int, k: int, engine: str, events: bool) -> str:
    from hbfpsim.array import load, simulate
    config = load(config_path)
    r = simulate(config, m, n, k, engine=engine, events=events)
    stalls = ", ".join(f"{name} {cycles}" for name, cycles in r.stalls.items() if cycles)
    sram = ", ".join(f"{b} {v['reads']}/{v['writes']}" for b, v in r.sram.items())
    lines = [
        f"{config.name}: {config.rows} x {config.cols} {config.dataflow.upper()}, "
        f"{config.input} x {config.weight}, plan {r.plan}",
        f"GEMM {m} x {n} x {k} (M x N x K): {r.folds} folds, {r.macs} MACs",
        f"cycles        {r.total_cycles} = {r.compute_cycles} compute + {r.stall_cycles} stall"
        + (f" ({stalls})" if stalls else ""),
        f"              + {r.prefetch_cycles} prefetch before, {r.drain_cycles} drain after",
        f"utilization   {r.utilization:.2%} (mapping efficiency {r.mapping_efficiency:.2%})",
        f"SRAM bytes    reads/writes: {sram}",
        f"DRAM bytes    reads {r.dram['reads']}, writes {r.dram['writes']}",
        f"time          {r.seconds * 1e3:.4g} ms at {config.clock_ghz:g} GHz",
    ]
    if events:
        lines.append("fold  start      end  waited on")
        for f, (s, e, w) in enumerate(zip(r.events.start, r.events.end, r.events.waited_on)):
            lines.append(f"{f:4d} {s:6d} {e:8d}  {w or '-'}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hbfpsim", description=(
        "Time, cost and accuracy of HBFP / MX / FP systolic-array training accelerators."))
    parser.add_argument("--version", action="version", version=f"hbfpsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("formats", help="list number formats with their bits per element",
                       description="List number formats: element bits, block, shared-exponent "
                                   "bits, storage bits per element and the element grid.")
    p.add_argument("names", nargs="*", metavar="FORMAT",
                   help="formats to show, e.g. hbfp5@32 mxfp4 (default: the standard set)")
    g = sub.add_parser("gemm", help="time one GEMM on an array configuration",
                       description="Time C = A B (A: M x K, B: K x N) on the array described "
                                   "by a configuration file: cycles, stalls, utilization, "
                                   "SRAM and DRAM traffic.")
    g.add_argument("config", help="array configuration (TOML), e.g. configs/array32.toml")
    for dim in ("M", "N", "K"):
        g.add_argument(dim.lower(), type=int, metavar=dim)
    g.add_argument("--engine", choices=("fast", "simpy"), default="fast",
                   help="timing engine (same results; simpy is the discrete-event model)")
    g.add_argument("--events", action="store_true", help="print the per-fold schedule")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "formats":
            print(_formats_table(args.names))
        elif args.command == "gemm":
            print(_gemm_report(args.config, args.m, args.n, args.k, args.engine, args.events))
    except (ConfigError, ValueError, OSError) as err:
        print(f"hbfpsim: error: {err}", file=sys.stderr)
        return 2
    return 0
