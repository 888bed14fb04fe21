"""The ``hbfpsim`` command line. Errors print one line and exit with status 2; Ctrl-C prints
one line and exits 130, SIGTERM 143, after the output in progress is removed.

Each command imports what it needs when it runs, so ``hbfpsim --help`` (and a typo) costs
no more than Python and argparse; the text it prints comes from ``hbfpsim.text``."""

from __future__ import annotations

import argparse
import gc
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from hbfpsim import __version__
from hbfpsim.staging import check_free, staged_file

_IMPORTED = time.monotonic()


def _formats(args) -> str:
    from hbfpsim import formats, text
    return text.formats_table([formats.get(name) for name in args.names or formats.STANDARD])


def _formats_parser(sub: argparse._SubParsersAction) -> None:
    """The ``formats`` command's arguments (handled by ``_formats``)."""
    p = sub.add_parser("formats", help="list number formats with their bits per element",
                       description="List number formats: element bits, block, shared-exponent "
                                   "bits, storage bits per element and the element grid.")
    p.set_defaults(run=_formats)
    p.add_argument("names", nargs="*", metavar="FORMAT",
                   help="formats to show, e.g. hbfp5@32 mxfp4 (default: the standard set)")


def _gemm(args) -> str:
    from hbfpsim import text
    from hbfpsim.array import load, simulate
    from hbfpsim.cost import gemm_energy
    config = load(args.config)
    report = simulate(config, args.m, args.n, args.k, engine=args.engine, events=args.events)
    return text.gemm(config, report, gemm_energy(config, report))


def _gemm_parser(sub: argparse._SubParsersAction) -> None:
    """The ``gemm`` command's arguments (handled by ``_gemm``)."""
    g = sub.add_parser("gemm", help="time one GEMM on an array configuration",
                       description="Time C = A B (A: M x K, B: K x N) on the array described "
                                   "by a configuration file: cycles, stalls, utilization, "
                                   "SRAM and DRAM traffic.")
    g.set_defaults(run=_gemm)
    _gemm_arguments(g)
    g.add_argument("--engine", choices=("fast", "simpy"), default="fast",
                   help="timing engine (same results; simpy is the discrete-event model)")
    g.add_argument("--events", action="store_true", help="print the per-fold schedule")


def _trace(args) -> str:
    from hbfpsim import text, trace
    if args.trace_command == "info":
        return text.trace_info(trace.open(args.path))
    from hbfpsim.trace.scalesim import import_topology
    rounding = "scalesim" if args.scalesim_rounding else "pytorch"
    check_free(args.out, args.force, inputs=[args.topology])
    out = import_topology(args.topology, args.out, batch=args.batch, rounding=rounding,
                          force=args.force)
    return text.trace_info(trace.open(out))


def _trace_parser(sub: argparse._SubParsersAction) -> None:
    """The ``trace`` command's arguments (handled by ``_trace``)."""
    t = sub.add_parser("trace", help="inspect GEMM traces, import SCALE-Sim topologies",
                       description="Summarize a trace (records per phase, MACs, operand "
                                   "bytes, layers) or turn a SCALE-Sim topology into a "
                                   "shape-only trace (docs/traces.md).")
    t.set_defaults(run=_trace)
    tsub = t.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    info = tsub.add_parser("info", help="records per phase, MACs, bytes, layers")
    info.add_argument("path", help="trace directory (holding manifest.json)")
    imp = tsub.add_parser("import-scalesim", help="a SCALE-Sim topology CSV as a shape-only trace")
    imp.add_argument("topology", help="SCALE-Sim topology file (conv or GEMM format)")
    imp.add_argument("out", help="trace directory to write")
    imp.add_argument("--batch", type=int, default=1, help="batch size (multiplies M)")
    _replace_trace(imp)
    imp.add_argument("--scalesim-rounding", action="store_true",
                     help="output sizes as SCALE-Sim computes them: ceil((in - k + s) / s)")


def _capture(args) -> str:
    options = {}
    if args.max_mb is not None:
        if not 0 <= args.max_mb <= 1e12:                  # NaN fails too
            raise ValueError(f"--max-mb must be a number of MB from 0 to 1e12, got {args.max_mb}")
        options["max_bytes"] = args.max_mb * 1e6
    if args.steps is not None:
        steps = [s.strip() for s in args.steps.split(",")]
        if not all(s.isascii() and s.isdigit() for s in steps):
            raise ValueError(f"--steps must be comma-separated integers >= 0, got "
                             f"{args.steps!r}")
        options["steps"] = [int(s) for s in steps]
    if args.layers is not None:
        options["layers"] = [p.strip() for p in args.layers.split(",")]
    try:
        from hbfpsim.trace import examples
    except ImportError as err:
        raise ValueError(f"capture needs PyTorch (pip install 'hbfpsim[examples]'): {err}") from None
    source, out = args.source, args.out
    if source in examples.EXAMPLES:
        if "steps" in options or "layers" in options:
            raise ValueError("--steps and --layers apply to capture scripts (the built-in "
                             "examples capture the first step of three epochs)")
        try:
            result = examples.train_and_capture(
                source, out, **({"epochs": args.epochs} if args.epochs is not None else {}),
                max_bytes=options.get("max_bytes"), force=args.force)
        except ImportError as err:                  # scikit-learn
            raise ValueError(f"{source}: {err}") from None
        return (f"{out}: {source}, captured epochs {result['epochs']}, test accuracy "
                f"{result['test_accuracy']:.2%}")
    script = Path(source)
    if not script.is_file():
        raise ValueError(f"{source}: not a built-in example ({', '.join(examples.EXAMPLES)}) "
                         "and no such script")
    if args.epochs is not None:
        raise ValueError(f"--epochs applies to the built-in examples "
                         f"({', '.join(examples.EXAMPLES)}); a script runs its own training")
    from hbfpsim.trace.script import run_capture_script
    run_capture_script(script, out, options, force=args.force)
    return f"{out}: written by {script}"


def _capture_parser(sub: argparse._SubParsersAction) -> None:
    """The ``capture`` command's arguments (handled by ``_capture``)."""
    c = sub.add_parser("capture", help="capture the GEMMs of a PyTorch training run",
                       description="Run a built-in example (mlp-digits, cnn-digits) or a "
                                   "script defining main(capture) and write its trace; "
                                   "capture(model, **options) gives the capture context.")
    c.set_defaults(run=_capture)
    c.add_argument("source", help="mlp-digits | cnn-digits | path/to/script.py")
    c.add_argument("--out", required=True, help="trace directory to write")
    _replace_trace(c)
    c.add_argument("--epochs", type=int, help="training epochs (built-in examples)")
    c.add_argument("--max-mb", type=float, help="operand storage budget in MB")
    c.add_argument("--steps", help="step numbers to record, e.g. 0,100,200 (scripts)")
    c.add_argument("--layers", help="module name patterns to record, e.g. 'fc*,conv2' (scripts)")


def _accumulator_options(pairs: Sequence[str]) -> dict:
    """``--acc FORMAT=ACC`` options as {canonical format name: accumulator object}."""
    from hbfpsim import formats
    from hbfpsim.mac import parse_accumulator
    out = {}
    for pair in pairs:
        name, sep, acc = pair.partition("=")
        if not sep or not name or not acc:
            raise ValueError(f"--acc expects FORMAT=ACCUMULATOR (e.g. hbfp4=fixed16), "
                             f"got {pair!r}")
        out[formats.get(name).name] = parse_accumulator(acc)
    return out


def _density(args) -> str:
    from hbfpsim import text
    from hbfpsim.cost import density
    rows = density.density_table(args.names or density.FORMATS,
                                 _accumulator_options(args.acc),
                                 None if args.no_booster else density.BOOSTER)
    fixed = [r.format for r in rows if r.accumulator.startswith("fixed") and "%" not in r.format]
    sweep = density.width_sweep(fixed if args.names else density.SWEEP_FORMATS,
                                density.SWEEP_WIDTHS[::2])
    return text.density_report(rows, sweep)


def _density_parser(sub: argparse._SubParsersAction) -> None:
    """The ``density`` command's arguments (handled by ``_density``)."""
    d = sub.add_parser("density", help="arithmetic density per format and accumulator",
                       description="MAC/s per um^2 relative to FP32 at equal clock, per format "
                                   "at its default accumulator (and the Accuracy Booster mix), "
                                   "then against the accumulator width. 28 nm model.")
    d.set_defaults(run=_density)
    d.add_argument("names", nargs="*", metavar="FORMAT", help="formats (default: the standard set)")
    _accumulators(d)
    d.add_argument("--no-booster", action="store_true", help="leave out the Accuracy Booster mix")


def _plot(args) -> str:
    from hbfpsim import plots
    stores = [args.store] if args.plot_command in ("sweep", "heatmap") else []
    check_free(plots.check_figure_path(args.out), force=True, file=True, inputs=stores)
    if args.plot_command == "density":
        written = plots.plot_density(args.out)
    elif args.plot_command == "sweep":
        written = plots.plot_sweep_pareto(args.store, args.out, x=args.x, y=args.y)
    elif args.plot_command == "heatmap":
        written = plots.plot_sweep_heatmap(args.store, args.out, value=args.value,
                                           variant=args.variant, dataflow=args.dataflow)
    elif args.plot_command == "timeline":
        written = plots.plot_timeline(args.config, args.m, args.n, args.k, args.out,
                                      max_folds=args.max_folds)
    elif args.plot_command == "area":
        written = plots.plot_area_breakdown(args.formats, args.out,
                                            _accumulator_options(args.acc))
    else:
        written = plots.plot_vrr_knee(args.out, lengths=tuple(args.lengths),
                                      max_lost=args.max_lost, budget=args.budget)
    return f"wrote {written}"


def _plot_parser(sub: argparse._SubParsersAction) -> None:
    """The ``plot`` command's arguments (handled by ``_plot``)."""
    pl = sub.add_parser("plot", help="draw figures",
                        description="Draw one figure into a file (its format follows the "
                                    "suffix: .png, .pdf, .svg); docs/figures.md shows each.")
    pl.set_defaults(run=_plot)
    plsub = pl.add_subparsers(dest="plot_command", required=True, metavar="FIGURE")
    pd = plsub.add_parser("density", help="density per format and against accumulator width")
    _figure_file(pd, "density.png")
    ps = plsub.add_parser("sweep", help="a sweep's runs: two totals against each other, with "
                                        "the Pareto front",
                          description="One point per finished run of a sweep store, in its "
                                      "variant's colour, and the Pareto front (ringed). "
                                      "Totals: seconds, cycles, energy_pj, density, "
                                      "utilization, stall_share, array_area_um2, and for "
                                      "sweeps with compute = \"accuracy\" sqnr_db_median, "
                                      "w1_median, rel_error_median, vrr_median.")
    ps.add_argument("--store", required=True, help="sweep store, e.g. runs/demo.sqlite")
    ps.add_argument("--x", default="seconds", help="total on the x axis (default: seconds)")
    ps.add_argument("--y", default="energy_pj", help="total on the y axis (default: energy_pj)")
    _figure_file(ps, "sweep.png")
    ph = plsub.add_parser("heatmap", help="utilization or stall share per array shape (sweep)",
                          description="A heat map over the array shapes (rows x cols) of a "
                                      "sweep store, one panel per dataflow; each cell is the "
                                      "mean over the runs of that shape (every other axis).")
    ph.add_argument("--store", required=True, help="sweep store, e.g. runs/demo.sqlite")
    ph.add_argument("--value", default="utilization",
                    help="utilization or stall_share (default: utilization)")
    ph.add_argument("--variant", help="only this variant's runs (default: all)")
    ph.add_argument("--dataflow", help="only this dataflow (default: a panel each)")
    _figure_file(ph, "heatmap.png")
    pt = plsub.add_parser("timeline", help="per-fold timeline of one GEMM on an array",
                          description="Each fold of C = A B (A: M x K, B: K x N) on the array "
                                      "as a bar over the cycles it computes, coloured by the "
                                      "buffer it waited on.")
    _gemm_arguments(pt)
    pt.add_argument("--max-folds", type=int, default=200,
                    help="draw at most this many folds, the first ones (default 200)")
    _figure_file(pt, "timeline.png")
    pa = plsub.add_parser("area", help="area per MAC by part, per format (28 nm model)")
    pa.add_argument("formats", nargs="+", metavar="FORMAT", help="formats, e.g. fp32 mxfp4 hbfp4")
    _accumulators(pa)
    _figure_file(pa, "area.png")
    pv = plsub.add_parser("vrr", help="variance retention against accumulator bits, knees marked",
                          description="Modelled VRR and variance lost against the fraction "
                                      "bits of an e8m<bits> accumulator, per accumulation "
                                      "length, round to nearest (sequential, chunks of 64) and "
                                      "toward zero; the knee of each marked (docs/vrr.md).")
    pv.add_argument("--lengths", type=int, nargs="+", default=[4096, 65536, 1048576],
                    metavar="N", help="products per sum (default 4096 65536 1048576)")
    pv.add_argument("--max-lost", type=float, default=math.log(50),
                    help="knee: variance lost allowed, in product variances (default ln 50)")
    pv.add_argument("--budget", type=int,
                    help="also measure with the MAC engine, MACs per point (slow)")
    _figure_file(pv, "vrr.png")


def _cost(args) -> str:
    from hbfpsim import text
    if args.cost_command == "mac":
        from hbfpsim.cost import mac_cost
        return text.mac_report(mac_cost(args.format, args.acc))
    if args.cost_command == "array":
        from hbfpsim.array import load
        from hbfpsim.cost import array_cost
        config = load(args.config)
        return text.array_report(config, array_cost(config))
    from hbfpsim.cost import calibrate
    if args.cost_command == "synth":
        from hbfpsim.formats import get
        from hbfpsim.mac import parse_accumulator
        fmt, acc = get(args.format), parse_accumulator(args.acc)
        if args.verilog is not None:
            check_free(args.verilog, force=True, file=True)
        result = calibrate.synthesize_pe(fmt, acc)
        if args.verilog is not None:
            with staged_file(args.verilog) as tmp:
                tmp.write_text(result["verilog"])
        return text.synth_report(fmt, acc, result, args.verilog)
    check_free(args.out, force=True, file=True)
    result = calibrate.calibrate(args.out, progress=lambda s: print(s, file=sys.stderr))
    return f"{calibrate.summary(result)}\nwrote {args.out}"


def _cost_parser(sub: argparse._SubParsersAction) -> None:
    """The ``cost`` command's arguments (handled by ``_cost``)."""
    co = sub.add_parser("cost", help="area and energy of a MAC or an array; calibrate",
                        description="The 28 nm cost model (docs/cost.md): one MAC's area and "
                                    "energy by part, an array's area, a PE synthesized by "
                                    "Yosys, or the model refitted to Yosys (hw extra).")
    co.set_defaults(run=_cost)
    cosub = co.add_subparsers(dest="cost_command", required=True, metavar="ACTION")
    cm = cosub.add_parser("mac", help="area and energy of one MAC, part by part")
    cm.add_argument("format", help="a format name, e.g. hbfp4, mxfp6_e3m2, fp32")
    cm.add_argument("--acc", help="accumulator (default: exact for block formats)")
    ca = cosub.add_parser("array", help="area of an array configuration")
    ca.add_argument("config", help="array configuration (TOML)")
    cs = cosub.add_parser("synth", help="synthesize one PE with Yosys (hw extra)")
    cs.add_argument("format", help="hbfp*, int8 or mx* format")
    cs.add_argument("--acc", required=True, help="fixed-point accumulator, e.g. fixed16")
    cs.add_argument("--verilog", help="also write the generated Verilog to this file")
    cc = cosub.add_parser("calibrate", help="fit the model to Yosys synthesis (hw extra)")
    cc.add_argument("--out", default="fitted.json",
                    help="where to write the fitted constants (default: fitted.json here; the "
                         "shipped file is hbfpsim/cost/data/fitted.json)")


def _rtl(args) -> str | tuple[str, int]:
    from hbfpsim import rtl, text
    from hbfpsim.array import load
    config = rtl.with_format(load(args.config), args.format)
    if args.rtl_command == "emit":
        check_free(args.out, args.force)
        return text.rtl_emitted(rtl.emit(config, args.out, force=args.force))
    if args.rtl_command == "synth":
        from hbfpsim.rtl.synth import synthesize_array
        return text.rtl_synth_report(config, synthesize_array(config))
    result = rtl.cosim(config, args.m, args.n, args.k, seed=args.seed)
    return text.rtl_report(config, result), 0 if result.equal else 1


def _rtl_parser(sub: argparse._SubParsersAction) -> None:
    """The ``rtl`` command's arguments (handled by ``_rtl``)."""
    r = sub.add_parser("rtl", help="the array as Verilog, co-simulated in Verilator (rtl extra)",
                       description="Generate the configuration's systolic array as Verilog, "
                                   "or run one GEMM on it in Verilator and compare every output "
                                   "bit with the MAC engine and every fold's cycles with the "
                                   "array model (docs/rtl.md).")
    r.set_defaults(run=_rtl)
    rsub = r.add_subparsers(dest="rtl_command", required=True, metavar="ACTION")
    rc = rsub.add_parser("cosim", help="one GEMM on the RTL and on the models; exit 1 when "
                                       "they differ")
    _gemm_arguments(rc)
    rc.add_argument("--seed", type=_seed, default=0, help="operands' seed (default 0)")
    em = rsub.add_parser("emit", help="write the array's Verilog")
    em.add_argument("config", help="array configuration (TOML), e.g. array32")
    em.add_argument("--out", required=True, help="folder to write hbfpsim_array.v to")
    em.add_argument("--force", action="store_true", help="replace an existing folder")
    sy = rsub.add_parser("synth", help="synthesize the whole array with Yosys (hw extra) and "
                                       "compare its area with the cost model's")
    sy.add_argument("config", help="array configuration (TOML), e.g. array32")
    for p in (rc, em, sy):
        p.add_argument("--format", help="operand format of both A and B (default: the "
                                        "configuration's), e.g. hbfp4, mxfp8_e4m3")


def _seed(text: str) -> int:
    """A seed argument: an integer in [0, 2^63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2^63), got {text}")
    return value


def _run(args) -> str:
    from hbfpsim import replay, text
    spec = replay.load(args.runfile, out=args.out)
    check_free(spec.out, args.force, inputs=spec.inputs)
    report = replay.run(spec, progress=None if not args.quiet else False)
    files = replay.write(report, spec.out, force=args.force, figures=not args.no_plots)
    return text.run_report(report.summary(), process_seconds(), str(spec.out), files)


def _run_parser(sub: argparse._SubParsersAction) -> None:
    """The ``run`` command's arguments (handled by ``_run``)."""
    r = sub.add_parser("run", help="replay traces on arrays in several formats (the main job)",
                       description="Replay the traces a run file names on its arrays under "
                                   "each numerics variant: time, energy, density and bit-exact "
                                   "accuracy per GEMM. Prints a table per variant and writes "
                                   "gemms.csv, summary.csv, run.json and figures.")
    r.set_defaults(run=_run)
    r.add_argument("runfile", help="run file (TOML), e.g. configs/quickstart.toml")
    r.add_argument("--out", help="output folder (default: the run file's [run] out)")
    r.add_argument("--force", action="store_true", help="replace an existing output folder")
    r.add_argument("--no-plots", action="store_true", help="write the tables only")
    _quiet(r)


def _train(args) -> str:
    from hbfpsim import text
    try:
        from hbfpsim.train import job, spec as train_spec
    except ImportError as err:
        raise ValueError(f"train needs PyTorch and scikit-learn (pip install "
                         f"'hbfpsim[examples]'): {err}") from None
    spec = train_spec.load(args.runfile, out=args.out)
    check_free(spec.out, force=True, inputs=[args.runfile])
    progress = None if not args.quiet else False
    try:
        report = job.run(spec, progress=progress)
    except ImportError as err:                  # scikit-learn, for the digits task
        raise ValueError(f"{args.runfile}: {err}") from None
    written = []
    for kind in args.landscape or ():
        from hbfpsim.train.landscape import landscape, write_landscape
        two_d = kind == "2d"
        rows = landscape(spec, points=11 if two_d else 21, two_d=two_d, progress=progress)
        written += write_landscape(rows, spec.out, two_d)
    return text.train_report(report, process_seconds()) + "".join(
        f"\nwrote {', '.join(map(str, written))}" for _ in written[:1])


def _train_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` command's arguments (handled by ``_train``)."""
    tr = sub.add_parser("train", help="emulated training over formats and seeds (torch)",
                        description="Train the run file's task in every variant (format, "
                                    "preset or schedule) and seed with emulated GEMMs; resumes "
                                    "from the checkpoints in its output folder. Prints the "
                                    "final validation metric over seeds and writes "
                                    "history.csv, results.csv, run.json and curves.png.")
    tr.set_defaults(run=_train)
    tr.add_argument("runfile", help="training run file (TOML), e.g. configs/train_digits.toml")
    tr.add_argument("--out", help="output folder (default: the run file's [train] out)")
    tr.add_argument("--landscape", action="append", choices=("1d", "2d"),
                    help="then draw the final models' loss landscapes along filter-normalized "
                         "random directions (21 points in 1-D, 11 x 11 in 2-D; repeatable)")
    _quiet(tr)


def _advise(args) -> str:
    from hbfpsim import text, trace
    from hbfpsim.array import load
    from hbfpsim.replay.advise import advise, block_advice
    if not args.max_lost > 0 or not 0 <= args.probability < 1:
        raise ValueError("--max-lost must be > 0 and --probability in [0, 1)")
    config, t = load(args.array), trace.open(args.trace)
    advice = advise(t, config, max_lost=args.max_lost, check=not args.no_check)
    block = block_advice(config, probability=args.probability)
    return text.advice_report(config, t, advice, block, args.max_lost)


def _advise_parser(sub: argparse._SubParsersAction) -> None:
    """The ``advise`` command's arguments (handled by ``_advise``)."""
    a = sub.add_parser("advise", help="the narrowest accumulators a trace needs on an array",
                       description="Per phase and layer of a trace: the reduction lengths the "
                                   "array's dataflow produces and the fewest accumulator "
                                   "fraction bits that keep the variance lost under a "
                                   "threshold (theory), checked by replaying the trace.")
    a.set_defaults(run=_advise)
    a.add_argument("trace", help="trace directory")
    a.add_argument("--array", default="array32", help="array preset or configuration file")
    a.add_argument("--max-lost", type=float, default=math.log(50),
                   help="variance lost allowed, in product variances (default ln 50, Sakr)")
    a.add_argument("--probability", type=float, default=1e-6,
                   help="block accumulator overflow probability allowed (default 1e-6)")
    a.add_argument("--no-check", action="store_true", help="theory only, no replay")


LARGE_SWEEP = 100_000        # runs before constraints: a sweep this large says its size first


def _sweep(args) -> str:
    from hbfpsim import sweep, text
    from hbfpsim.sweep import driver
    from hbfpsim.sweep.store import export, open_existing
    if args.sweep_command == "run":
        spec = sweep.load(args.spec)

        def announce(size: driver.Estimate) -> None:
            if size.runs >= LARGE_SWEEP and not args.quiet:
                print(f"hbfpsim: sweep {spec.name}: {size.line()}", file=sys.stderr,
                      flush=True)

        outcome = driver.run(spec, args.store, scheduler=args.scheduler,
                              workers=args.workers, batch=args.batch,
                              gemm_rows=args.gemm_rows,
                              progress=None if not args.quiet else False, announce=announce)
        with open_existing(args.store) as db:
            return text.sweep_outcome(spec.name, outcome, args.store, db.status())
    with open_existing(args.store) as db:
        if args.sweep_command == "status":
            return text.sweep_status(args.store, db.status())
        check_free(args.out, force=True, file=True, inputs=[args.store])
        return f"wrote {export(db, args.out)}"


def _sweep_parser(sub: argparse._SubParsersAction) -> None:
    """The ``sweep`` command's arguments (handled by ``_sweep``)."""
    sw = sub.add_parser("sweep", help="design-space sweeps into a resumable store",
                        description="Expand a sweep spec (axes, constraints, traces) into runs "
                                    "and compute them in batches on a process pool or a Dask "
                                    "cluster into an SQLite store; a killed sweep resumes.")
    sw.set_defaults(run=_sweep)
    swsub = sw.add_subparsers(dest="sweep_command", required=True, metavar="ACTION")
    swr = swsub.add_parser("run", help="run (or resume) a sweep")
    swr.add_argument("spec", help="sweep spec (TOML), e.g. configs/sweep_demo.toml")
    swr.add_argument("--store", required=True, help="SQLite store (created if missing)")
    swr.add_argument("--scheduler", help="Dask: 'local' (a LocalCluster on loopback) or "
                     "tcp://HOST:PORT (default: a local process pool)")
    swr.add_argument("--workers", type=int, help="worker processes (default: every core)")
    swr.add_argument("--batch", type=int, help="runs per task (default: about 1 s of work)")
    swr.add_argument("--gemm-rows", action=argparse.BooleanOptionalAction,
                     help="store every run's per-GEMM rows besides its totals (default: "
                     "only for compute = \"accuracy\" sweeps)")
    _quiet(swr)
    sws = swsub.add_parser("status", help="runs done, failed and pending")
    sws.add_argument("--store", required=True, help="SQLite store")
    swe = swsub.add_parser("export", help="one row per run: swept keys, then totals")
    swe.add_argument("--store", required=True, help="SQLite store")
    swe.add_argument("--out", required=True, help="file to write (.csv, or .parquet with "
                     "the parquet extra)")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (status 2)."""

    def error(self, message: str):
        self.exit(2, f"hbfpsim: error: {self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hbfpsim", description=(
        "Time, cost and accuracy of HBFP / MX / FP systolic-array training accelerators."))
    parser.add_argument("--version", action="version", version=f"hbfpsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run_parser(sub)
    _train_parser(sub)
    _sweep_parser(sub)
    _advise_parser(sub)
    _formats_parser(sub)
    _gemm_parser(sub)
    _trace_parser(sub)
    _capture_parser(sub)
    _density_parser(sub)
    _plot_parser(sub)
    _cost_parser(sub)
    _rtl_parser(sub)
    _describe(parser)
    return parser


def _gemm_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG M N K: an array configuration and one GEMM's dimensions."""
    parser.add_argument("config", help="array configuration (TOML), e.g. array32")
    for dim, what in (("M", "rows of A and C"), ("N", "columns of B and C"),
                      ("K", "the reduction: columns of A, rows of B")):
        parser.add_argument(dim.lower(), type=int, metavar=dim, help=what)


def _accumulators(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--acc", action="append", default=[], metavar="FORMAT=ACC",
                        help="accumulator of a format, e.g. --acc hbfp4=fixed16 (repeatable)")


def _figure_file(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--out", default=default, help="file to write (.png, .pdf, .svg)")


def _quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _replace_trace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="replace an existing trace directory")


def _describe(parser: argparse.ArgumentParser) -> None:
    """Every sub-command without a description of its own gets its one-line help as one,
    so that its --help says what it does."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name][0].upper() + helps[name][1:] + "."
                _describe(sub)


def process_seconds() -> float:
    """Wall seconds since the command started: since this module was imported, at the
    process's start (Python's own start-up, a few tens of ms, is not counted; the kernel's
    record of the process's start is not used: a shell that execs the command would count
    its own time before it)."""
    return time.monotonic() - _IMPORTED


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that outputs in progress are cleaned up."""


def _terminate(signum, frame) -> None:
    raise Terminated


def _run_command(args) -> str | tuple[str, int]:
    """The command's output; each warning it raised is printed as one line on stderr (when
    it ends, however it ends)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            return args.run(args)
        finally:
            for message in dict.fromkeys(str(w.message) for w in caught):
                print(f"hbfpsim: warning: {message}", file=sys.stderr)


def entry() -> None:
    """The ``hbfpsim`` console script: ``main``, then exit without the interpreter's final
    garbage collections, which walk every object a run made (a third of a second after a
    replay); the objects are freed with the process."""
    code = main()
    gc.freeze()
    sys.exit(code)


def _print_output(text: str) -> None:
    """Print the command's output. A standard output that cannot be written (open for
    reading only, say) is an OSError saying so; a closed pipe is a BrokenPipeError."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no retry at exit
        raise OSError(f"cannot write to standard output: {err.strerror or err}") from None


def _discard_stderr() -> None:
    """Point a closed standard error (file descriptor 2) at the null device: messages go
    nowhere, not to standard output (where ``print(file=None)`` sends them) nor into a file
    the command opens later (which would take descriptor 2)."""
    null = os.open(os.devnull, os.O_WRONLY)
    if null != 2:
        os.dup2(null, 2)
        os.close(null)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stderr is None:                       # started with it closed (`2>&-`)
        _discard_stderr()
    if sys.stdout is None:                       # started with it closed (`>&-`)
        print("hbfpsim: error: standard output is closed, so nothing can be printed "
              "(redirect it to /dev/null to discard the output)", file=sys.stderr)
        return 2
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:                   # --help, --version, a usage error
        return done.code if isinstance(done.code, int) else 2
    previous = signal.signal(signal.SIGTERM, _terminate)
    status = 0
    try:
        output = _run_command(args)
        if isinstance(output, tuple):            # a command with a verdict: (text, status)
            output, status = output
        _print_output(output)
    except Terminated:
        print("hbfpsim: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("hbfpsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                  # e.g. | head: the reader has gone; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as err:     # ConfigError, TraceError, SynthesisError among them
        print(f"hbfpsim: error: {err}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    return status
