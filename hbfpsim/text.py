"""Text output: every table and report the ``hbfpsim`` command prints, formatted from results
the layers below computed (nothing here simulates or costs anything)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hbfpsim.array import GemmReport
from hbfpsim.config import ArrayConfig
from hbfpsim.cost import ArrayCost, DensityRow, Energy, MacCost
from hbfpsim.formats import Format
from hbfpsim.mac import FixedAccumulator
from hbfpsim.numerics import Numerics
from hbfpsim.trace import Trace

if TYPE_CHECKING:               # the replay's summary, imported only where a run is replayed
    from hbfpsim.replay.summary import Summary


def table(rows: Sequence[Sequence[str]], right: set[int] = frozenset()) -> str:
    """Columns padded to their widest cell (left-aligned, right-aligned for ``right``); the
    last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([c.rjust(w) if i in right else c.ljust(w)
                                for i, (c, w) in enumerate(zip(r, widths))] + [r[-1]])
                     for r in rows)


def formats_table(fmts: Sequence[Format]) -> str:
    """What ``hbfpsim formats`` prints: bits, block, shared bits, storage, grid."""
    rows = [("format", "family", "elem", "block", "shared", "bits/elem", "grid")]
    rows += [(f.name, f.family, str(f.element_bits), str(f.block or "-"),
              str(f.scale_bits or "-"), f"{f.storage_bits:.3f}", f.describe()) for f in fmts]
    return table(rows, right={2, 3, 4, 5})


def gemm(config: ArrayConfig, r: GemmReport, energy: Energy) -> str:
    """What ``hbfpsim gemm`` prints: one GEMM's cycles, stalls, traffic, time and energy
    (pJ by part, as ``cost.gemm_energy`` gives it)."""
    stalls = ", ".join(f"{name} {cycles}" for name, cycles in r.stalls.items() if cycles)
    sram = ", ".join(f"{b} {v['reads']}/{v['writes']}" for b, v in r.sram.items())
    numerics = Numerics.of(config)
    lines = [
        f"{config.name}: {config.rows} x {config.cols} {config.dataflow.upper()}, "
        f"{numerics.input.name} x {numerics.weight.name}, plan {r.plan}",
        f"GEMM {r.m} x {r.n} x {r.k} (M x N x K): {r.folds} folds, {r.macs} MACs",
        f"cycles        {r.total_cycles} = {r.compute_cycles} compute + {r.stall_cycles} stall"
        + (f" ({stalls})" if stalls else ""),
        f"              + {r.prefetch_cycles} prefetch before, {r.drain_cycles} drain after",
        f"utilization   {r.utilization:.2%} (mapping efficiency {r.mapping_efficiency:.2%})",
        f"SRAM bytes    reads/writes: {sram}",
        f"DRAM bytes    reads {r.dram['reads']}, writes {r.dram['writes']}",
        f"time          {r.seconds * 1e3:.4g} ms at {config.clock_ghz:g} GHz",
        f"energy        {energy.total / 1e6:.4g} uJ = {energy.compute / 1e6:.4g} compute "
        f"+ {energy.sram / 1e6:.4g} SRAM + {energy.dram / 1e6:.4g} DRAM (28 nm model)",
    ]
    if r.events is not None:
        lines.append("fold  start      end  waited on")
        lines += [f"{f:4d} {s:6d} {e:8d}  {w or '-'}" for f, (s, e, w) in
                  enumerate(zip(r.events.start, r.events.end, r.events.waited_on))]
    return "\n".join(lines)


def trace_info(t: Trace) -> str:
    """What ``hbfpsim trace info`` prints: records, GEMMs and MACs per phase, operand bytes
    and layers."""
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
    more = f", ... ({len(layers) - 12} more)" if len(layers) > 12 else ""
    shown = ", ".join(layers[:12]) + more
    lines.append(f"layers ({len(layers)}): {shown}")
    return "\n".join(lines)


def density_table(rows: list[DensityRow]) -> str:
    """Density rows as ``hbfpsim density`` prints them."""
    lines = [f"{'format':<28} {'accumulator':<15} {'um2/MAC':>8} {'pJ/MAC':>7} "
             f"{'bits/elem':>9} {'density':>8}"]
    lines += [f"{r.format:<28} {r.accumulator:<15} {r.area:>8.1f} {r.energy:>7.3f} "
              f"{r.storage_bits:>9.3f} {r.density:>7.2f}x" for r in rows]
    return "\n".join(lines)


def density_report(rows: list[DensityRow], sweep: dict[str, list[tuple[int, float]]]) -> str:
    """What ``hbfpsim density`` prints: the density table, then density against the width
    of a fixed-point accumulator (``sweep``: format -> [(width, density)])."""
    widths = [w for w, _ in next(iter(sweep.values()), [])]
    lines = [density_table(rows), "", "density vs FP32 with a fixed{w} accumulator of w bits:",
             f"{'format':<12}" + "".join(f"{w:>7d}" for w in widths)]
    lines += [f"{name:<12}" + "".join(f"{d:>6.2f}x" for _, d in points)
              for name, points in sweep.items()]
    return "\n".join(lines)


def mac_report(mac: MacCost) -> str:
    """What ``hbfpsim cost mac`` prints: one MAC's area part by part, and its energy."""
    lines = [f"{mac.format.name} with a {mac.accumulator} accumulator (dot-product lane of "
             f"{mac.lane}), 28 nm:"]
    lines += [f"  {part:<18} {area:8.2f} um^2" for part, area in mac.parts.items()]
    lines.append(f"  {'total':<18} {mac.area:8.2f} um^2, {mac.energy:.4f} pJ per MAC")
    return "\n".join(lines)


def array_report(config: ArrayConfig, a: ArrayCost) -> str:
    """What ``hbfpsim cost array`` prints: the area of an array and its buffers, and its
    peak MAC rate per area."""
    mm2 = lambda um2: f"{um2 / 1e6:9.4f} mm^2"  # noqa: E731
    peak = config.rows * config.cols * config.clock_ghz       # GMAC/s
    return "\n".join([
        f"{config.name}: {config.rows} x {config.cols}, {a.mac.format.name} MACs with a "
        f"{a.mac.accumulator} accumulator (28 nm)",
        f"  PE                {a.pe:9.2f} um^2 (MAC {a.mac.area:.2f} + partial-sum register)",
        f"  PEs               {mm2(a.pes)}",
        f"  edge converters   {mm2(a.edge)}",
        f"  SRAM              {mm2(a.sram)} ({sum(a.sram_kib.values()):g} KiB)",
        f"  total             {mm2(a.area)}",
        f"  peak              {peak / 1e3:.4g} TMAC/s, {peak / (a.logic / 1e6):.4g} GMAC/s per "
        "mm^2 of logic"])


def synth_report(fmt: Format, acc: FixedAccumulator, r: dict, verilog: str | None) -> str:
    """What ``hbfpsim cost synth`` prints from ``calibrate.synthesize_pe``'s result ``r``
    (``verilog``: the file the Verilog was written to, if any)."""
    gates = sorted(((n, cell[2:-1]) for cell, n in r["cells"].items() if cell != "$_DFF_P_"),
                   reverse=True)
    lines = [f"{fmt.name} PE with a {acc} accumulator, synthesized by Yosys:",
             f"  flip-flops   {r['cells'].get('$_DFF_P_', 0)}",
             f"  gates        {sum(n for n, _ in gates)} ("
             + ", ".join(f"{cell} {n}" for n, cell in gates) + ")",
             f"  transistors  {r['transistors']} (CMOS estimate) ~ {r['um2']:.1f} um^2 at 28 nm"]
    if r["analytic"] is not None:
        lines.append(f"  analytic     {r['analytic']:.0f} transistors "
                     f"({r['analytic'] / r['transistors'] - 1:+.1%})")
    return "\n".join(lines + ([f"  Verilog      {verilog}"] if verilog else []))


def run_report(summary: Sequence[Summary], wall_seconds: float, out: str | None = None,
               files: Sequence[Path] = ()) -> str:
    """What ``hbfpsim run`` prints: per variant (and array, trace), one line per phase:
    cycles, utilization, stall share, energy (uJ), density vs FP32, and median SQNR (dB) and
    W1 over the records evaluated ("-" where none was); then the wall time (s) and where the
    run wrote ``files``."""
    blocks, groups = [], {}
    for s in summary:
        groups.setdefault((s.variant, s.array, s.trace), []).append(s)
    for (variant, array, trace), rows in groups.items():
        lines = [("phase", "records", "cycles", "util", "stalls", "energy uJ", "density",
                  "SQNR dB", "W1")]
        for s in rows:
            lines.append((s.phase, str(s.records), str(s.cycles), f"{s.utilization:.1%}",
                          f"{s.stall_share:.1%}", f"{s.energy_pj / 1e6:.2f}",
                          f"{s.density:.2f}x", _maybe(s.sqnr_db_median, "{:.1f}"),
                          _maybe(s.w1_median, "{:.2e}")))
        synthetic = f", synthetic operands: {rows[0].synthetic}" if rows[0].synthetic else ""
        blocks.append(f"{variant} on {array}, {trace}{synthetic}\n"
                      + table(lines, right=set(range(1, 9))))
    tail = f"{len(summary)} summary rows in {wall_seconds:.1f} s"
    if out:
        figures = sum(Path(f).suffix in (".png", ".svg", ".pdf") for f in files)
        tables = [Path(f).name for f in files if Path(f).suffix in (".csv", ".json")]
        tail += f"; wrote {out}" + (f" ({', '.join(tables)}, {figures} figure"
                                    f"{'s' * (figures != 1)})" if files else "")
    return "\n\n".join(blocks + [tail])


def _maybe(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def advice_report(config: ArrayConfig, trace: Trace, advice: Sequence, block, max_lost: float
                  ) -> str:
    """What ``hbfpsim advise`` prints: per phase and layer, the reduction length, the chunk
    the dataflow sums first, the fraction bits theory asks for and the variance retained
    measured at those bits and one fewer."""
    lines = [("phase", "layer", "records", "K", "chunk", "bits", "VRR at bits", "one fewer")]
    for a in advice:
        lines.append((a.phase, a.layer, str(a.records), str(a.k), str(a.chunk or "all"),
                      str(a.bits), _maybe(a.measured, "{:.6f}"),
                      _maybe(a.measured_fewer, "{:.6f}")))
    head = (f"{trace.path.name} on {config.name} ({config.rows} x {config.cols} "
            f"{config.dataflow.upper()}): floating-point accumulator e8m<bits> for both the "
            f"column chain and the output buffer, fewest fraction bits losing at most "
            f"{max_lost:.2f} product variances (Sakr et al. 2019; docs/vrr.md)")
    body = [head, table(lines, right={2, 3, 4, 5, 6, 7})]
    if any(a.measured is not None for a in advice):
        body.append("VRR measured on the outputs, FP32 operands, median over the records")
    if block is not None:
        body.append(f"{block.format} block accumulator: {block.length} products per block "
                    f"sum: fixed{block.worst_case} never overflows (A2Q worst case); "
                    f"fixed{block.statistical} overflows with probability <= "
                    f"{block.probability:g} on Gaussian data")
    return "\n".join(body)


def sweep_status(store: str, status: dict) -> str:
    """What ``hbfpsim sweep status`` prints: runs done, failed and pending per sweep, the
    GEMM rows stored, and the commonest reasons runs failed."""
    lines = [("sweep", "runs", "done", "failed", "pending")]
    for name, counts in status["sweeps"].items():
        lines.append((name, str(sum(counts.values())), str(counts["done"]),
                      str(counts["failed"]), str(counts["pending"])))
    out = [f"{store}: {status['gemm_rows']:,} GEMM rows", table(lines, right={1, 2, 3, 4})]
    out += [f"failed ({count}): {reason}" for reason, count in status["errors"]]
    return "\n".join(out)


def sweep_outcome(name: str, outcome, store: str, status: dict) -> str:
    """What ``hbfpsim sweep run`` prints when it ends."""
    rate = outcome.computed / outcome.seconds if outcome.seconds > 0 else 0.0
    return (f"sweep {name}: {outcome.runs:,} runs, {outcome.skipped:,} already in the store, "
            f"{outcome.computed:,} computed in {outcome.seconds:.1f} s ({rate:.0f} runs/s)\n"
            + sweep_status(store, status))


def train_report(report, wall_seconds: float | None = None) -> str:
    """What ``hbfpsim train`` prints: per variant, its blocking and rounding, the final
    validation metric over seeds (mean, standard deviation, range) and the share of training
    MACs per format; then the
    wall time (s; the report's own unless ``wall_seconds`` is given)."""
    metric = report.metric
    lines = [("variant", "blocking", "rounding", f"{metric.name} ({metric.unit})", "std", "min",
              "max", "seeds", "MACs per format")]
    for v in report.variants:
        lines.append((v.variant, v.method.blocking, str(v.method.rounding), f"{v.mean:.2f}",
                      f"{v.std:.2f}", f"{min(v.finals):.2f}", f"{max(v.finals):.2f}",
                      str(len(v.finals)),
                      ", ".join(f"{k} {s:.1%}" for k, s in v.mac_shares.items())))
    spec = report.spec
    better = "higher" if metric.higher_is_better else "lower"
    own = "".join(f"\n{v.name}: learning rate {v.rate}" for v in spec.variants if v.rate)
    return (f"{spec.task}: {report.about}; {spec.epochs} epochs, learning rate {spec.rate}, "
            f"final {metric.name} ({better} is better)\n" + table(lines, right={3, 4, 5, 6, 7})
            + own
            + f"\n{len(report.runs)} runs in "
            f"{report.wall_seconds if wall_seconds is None else wall_seconds:.1f} s; "
            f"wrote {spec.out}")


def rtl_report(config, result) -> str:
    """What ``hbfpsim rtl cosim`` prints from an ``rtl.Result``: the GEMM and the plan, both
    sides' cycles (per fold and total) and outputs, and the verdict."""
    r, spec = result, result.spec
    folds = len(r.model_fold_cycles)
    cycles = sorted(set(map(int, r.model_fold_cycles)))
    lines = [f"{r.m} x {r.n} x {r.k} GEMM on {config.name}: {spec.rows} x {spec.cols} "
             f"{spec.dataflow.upper()}, {config.input} x {config.weight}, plan {r.plan}",
             f"  RTL (Verilator)  {r.rtl_total:>10,} cycles over {folds:,} "
             f"fold{'s' if folds > 1 else ''}; "
             f"{r.rtl_out.size:,} outputs",
             f"  array model      {r.model_total:>10,} cycles, folds of "
             + ", ".join(f"{c:,}" for c in cycles) + " cycles",
             f"  folds whose cycles differ   {r.differing_folds:,} of {folds:,}",
             f"  outputs whose bits differ   {r.differing_outputs:,} of {r.rtl_out.size:,} "
             "(against hbfpsim.mac.matmul with the plan)",
             f"  statistics that differ      {r.differing_stats} (overflows, roundings and "
             "swamps at every level)",
             f"  build {'%.1f s' % r.build_seconds if r.built else 'cached'}, "
             f"simulation {r.run_seconds:.2f} s",
             "equal: the RTL computes the model's bits in the model's cycles" if r.equal
             else "DIFFERENT: the RTL and the models disagree"]
    return "\n".join(lines)


def rtl_emitted(files) -> str:
    """What ``hbfpsim rtl emit`` prints: the files written."""
    return "\n".join(f"wrote {f}" for f in files)


def rtl_synth_report(config: ArrayConfig, s) -> str:
    """What ``hbfpsim rtl synth`` prints from an ``rtl.synth.ArraySynthesis``: one PE and the
    whole array as Yosys synthesized them (transistors, um^2 at 28 nm), next to the cost
    model's PE and PE array, and the ratios."""
    spec, model = s.spec, s.model
    pes = spec.rows * spec.cols
    return "\n".join([
        f"{config.name}: {spec.rows} x {spec.cols} {spec.dataflow.upper()} array, "
        f"{config.input} x {config.weight}, block {spec.fixed}, chain {spec.chain}, "
        f"output {spec.out}",
        f"  Yosys, one PE       {s.pe_transistors:>12,} transistors  {s.pe_um2:>14,.1f} um^2",
        f"  Yosys, whole array  {s.array_transistors:>12,} transistors  {s.array_um2:>14,.1f} um^2"
        f"  ({pes:,} PEs: {s.pe_transistors * pes / s.array_transistors:.0%} of it)",
        f"  cost model, one PE  {model.pe:>41,.1f} um^2  (synthesized / model: "
        f"{s.pe_um2 / model.pe:.2f}x)",
        f"  cost model, PEs     {model.pes:>41,.1f} um^2  (synthesized array / model: "
        f"{s.array_um2 / model.pes:.2f}x)",
        "  (the model's PE is the MAC and its accumulator register; the synthesized one also "
        "holds\n  its pipeline registers and, where its chain is floating point, the block's "
        "conversion and the chain's adder)"])
