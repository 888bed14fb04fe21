"""The ``hbfpsim`` command line. Errors print one line and exit with status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hbfpsim import __version__, formats
from hbfpsim.config import ConfigError
from hbfpsim.cost import text
from hbfpsim.cost.calibrate import SynthesisError


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
    from hbfpsim.cost import gemm_energy
    config = load(config_path)
    r = simulate(config, m, n, k, engine=engine, events=events)
    energy = gemm_energy(config, r)
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
        f"energy        {energy['total'] / 1e6:.4g} uJ = {energy['compute'] / 1e6:.4g} compute "
        f"+ {energy['sram'] / 1e6:.4g} SRAM + {energy['dram'] / 1e6:.4g} DRAM (28 nm model)",
    ]
    if events:
        lines.append("fold  start      end  waited on")
        for f, (s, e, w) in enumerate(zip(r.events.start, r.events.end, r.events.waited_on)):
            lines.append(f"{f:4d} {s:6d} {e:8d}  {w or '-'}")
    return "\n".join(lines)


def _trace_info(path: str) -> str:
    from hbfpsim import trace
    t = trace.open(path)
    s = t.summary()
    lines = [f"{t.path}: model {t.model}, {s['records']} records, steps {s['steps']}, "
             f"epochs {s['epochs']}" + (f"\n{t.description}" if t.description else ""),
             f"{'phase':12} {'records':>8} {'GEMMs':>8} {'MACs':>16}"]
    for phase, v in s["phases"].items():
        lines.append(f"{phase:12} {v['records']:8d} {v['gemms']:8d} {v['macs']:16,d}")
    lines.append(f"{'total':12} {s['records']:8d} "
                 f"{sum(v['gemms'] for v in s['phases'].values()):8d} {s['macs']:16,d}")
    lines.append(f"operands: {s['operand_bytes'] / 1e6:.2f} MB of float32"
                 if t.has_operands else "operands: none (shape-only trace)")
    layers = list(s["layers"])
    shown = ", ".join(layers[:12]) + (f", ... ({len(layers) - 12} more)" if len(layers) > 12 else "")
    lines.append(f"layers ({len(layers)}): {shown}")
    return "\n".join(lines)


def _capture(source: str, out: str, epochs: int | None, max_mb: float | None,
             steps: str | None, layers: str | None) -> str:
    options = {}
    if max_mb is not None:
        options["max_bytes"] = max_mb * 1e6
    if steps:
        try:
            options["steps"] = [int(s) for s in steps.split(",")]
        except ValueError:
            raise ValueError(f"--steps must be comma-separated integers, got {steps!r}") from None
    if layers:
        options["layers"] = layers.split(",")
    try:
        from hbfpsim.trace import examples, pytorch
    except ImportError as err:
        raise ValueError(f"capture needs PyTorch (pip install 'hbfpsim[examples]'): {err}") from None
    if source in examples.EXAMPLES:
        result = examples.train_and_capture(source, out, **({"epochs": epochs} if epochs else {}),
                                            max_bytes=options.get("max_bytes"))
        return (f"{out}: {source}, captured epochs {result['epochs']}, test accuracy "
                f"{result['test_accuracy']:.2%}")
    import runpy
    script = Path(source)
    if not script.is_file():
        raise ValueError(f"{source}: not a built-in example ({', '.join(examples.EXAMPLES)}) "
                         "and no such script")
    main = runpy.run_path(str(script), run_name="__hbfpsim_capture__").get("main")
    if not callable(main):
        raise ValueError(f"{script}: a capture script must define main(capture)")
    main(lambda model, **kw: pytorch.Capture(out, model, **{**options, **kw}))
    return f"{out}: written by {script}"


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
    t = sub.add_parser("trace", help="inspect GEMM traces, import SCALE-Sim topologies")
    tsub = t.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    info = tsub.add_parser("info", help="records per phase, MACs, bytes, layers")
    info.add_argument("path", help="trace directory (holding manifest.json)")
    imp = tsub.add_parser("import-scalesim", help="a SCALE-Sim topology CSV as a shape-only trace")
    imp.add_argument("topology", help="SCALE-Sim topology file (conv or GEMM format)")
    imp.add_argument("out", help="trace directory to write")
    imp.add_argument("--batch", type=int, default=1, help="batch size (multiplies M)")
    imp.add_argument("--scalesim-rounding", action="store_true",
                     help="output sizes as SCALE-Sim computes them: ceil((in - k + s) / s)")
    c = sub.add_parser("capture", help="capture the GEMMs of a PyTorch training run",
                       description="Run a built-in example (mlp-digits, cnn-digits) or a "
                                   "script defining main(capture) and write its trace; "
                                   "capture(model, **options) gives the capture context.")
    c.add_argument("source", help="mlp-digits | cnn-digits | path/to/script.py")
    c.add_argument("--out", required=True, help="trace directory to write")
    c.add_argument("--epochs", type=int, help="training epochs (built-in examples)")
    c.add_argument("--max-mb", type=float, help="operand storage budget in MB")
    c.add_argument("--steps", help="step numbers to record, e.g. 0,100,200 (scripts)")
    c.add_argument("--layers", help="module name patterns to record, e.g. 'fc*,conv2' (scripts)")
    d = sub.add_parser("density", help="arithmetic density per format and accumulator",
                       description="MAC/s per um^2 relative to FP32 at equal clock, per format "
                                   "at its default accumulator (and the Accuracy Booster mix), "
                                   "then against the accumulator width. 28 nm model.")
    d.add_argument("names", nargs="*", metavar="FORMAT", help="formats (default: the standard set)")
    d.add_argument("--acc", action="append", default=[], metavar="FORMAT=ACC",
                   help="accumulator of a format, e.g. --acc hbfp4=fixed16 (repeatable)")
    d.add_argument("--no-booster", action="store_true", help="leave out the Accuracy Booster mix")
    pl = sub.add_parser("plot", help="draw figures")
    plsub = pl.add_subparsers(dest="plot_command", required=True, metavar="FIGURE")
    pd = plsub.add_parser("density", help="density per format and against accumulator width")
    pd.add_argument("--out", default="density.png", help="file to write (.png, .pdf, .svg)")
    co = sub.add_parser("cost", help="area and energy of a MAC or an array; calibrate")
    cosub = co.add_subparsers(dest="cost_command", required=True, metavar="ACTION")
    cm = cosub.add_parser("mac", help="area and energy of one MAC, part by part")
    cm.add_argument("format")
    cm.add_argument("--acc", help="accumulator (default: exact for block formats)")
    ca = cosub.add_parser("array", help="area of an array configuration")
    ca.add_argument("config", help="array configuration (TOML)")
    cs = cosub.add_parser("synth", help="synthesize one PE with Yosys (hw extra)")
    cs.add_argument("format", help="hbfp*, int8 or mx* format")
    cs.add_argument("--acc", required=True, help="fixed-point accumulator, e.g. fixed16")
    cs.add_argument("--verilog", help="also write the generated Verilog to this file")
    cc = cosub.add_parser("calibrate", help="fit the model to Yosys synthesis (hw extra)")
    cc.add_argument("--out", default=None,
                    help="where to write the fitted constants (default: the shipped file)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "formats":
            print(_formats_table(args.names))
        elif args.command == "gemm":
            print(_gemm_report(args.config, args.m, args.n, args.k, args.engine, args.events))
        elif args.command == "trace" and args.trace_command == "info":
            print(_trace_info(args.path))
        elif args.command == "trace":
            from hbfpsim.trace.scalesim import import_topology
            rounding = "scalesim" if args.scalesim_rounding else "pytorch"
            out = import_topology(args.topology, args.out, batch=args.batch, rounding=rounding)
            print(_trace_info(str(out)))
        elif args.command == "capture":
            print(_capture(args.source, args.out, args.epochs, args.max_mb, args.steps,
                           args.layers))
        elif args.command == "density":
            print(text.density_report(args.names, args.acc, not args.no_booster))
        elif args.command == "plot":
            from hbfpsim.plots import plot_density
            print(f"wrote {plot_density(args.out)}")
        elif args.command == "cost" and args.cost_command == "mac":
            print(text.mac_report(args.format, args.acc))
        elif args.command == "cost" and args.cost_command == "array":
            from hbfpsim.array import load
            print(text.array_report(load(args.config)))
        elif args.command == "cost" and args.cost_command == "synth":
            print(text.synth_report(args.format, args.acc, args.verilog))
        elif args.command == "cost":
            from hbfpsim.cost import calibrate
            result = calibrate.calibrate(args.out or calibrate.FITTED,
                                         progress=lambda s: print(s, file=sys.stderr))
            print(calibrate.summary(result))
    except (ConfigError, ValueError, OSError, SynthesisError) as err:
        print(f"hbfpsim: error: {err}", file=sys.stderr)
        return 2
    return 0
