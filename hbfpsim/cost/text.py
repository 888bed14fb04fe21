"""Text reports of the cost model, as the ``hbfpsim density`` and ``hbfpsim cost`` commands
print them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hbfpsim import formats
from hbfpsim.config import ArrayConfig
from hbfpsim.cost import calibrate, density
from hbfpsim.cost.array import array_cost
from hbfpsim.cost.mac import mac_cost


def density_table_text(rows: list[density.DensityRow]) -> str:
    """``rows`` as the text table ``hbfpsim density`` prints."""
    lines = [f"{'format':<28} {'accumulator':<15} {'um2/MAC':>8} {'pJ/MAC':>7} "
             f"{'bits/elem':>9} {'density':>8}"]
    lines += [f"{r.format:<28} {r.accumulator:<15} {r.area:>8.1f} {r.energy:>7.3f} "
              f"{r.storage_bits:>9.3f} {r.density:>7.2f}x" for r in rows]
    return "\n".join(lines)


def parse_accumulator_options(pairs: Sequence[str]) -> dict[str, str]:
    """``["hbfp4=fixed16", ...]`` as {canonical format name: accumulator}."""
    out = {}
    for pair in pairs:
        name, sep, acc = pair.partition("=")
        if not sep or not name or not acc:
            raise ValueError(f"--acc expects FORMAT=ACCUMULATOR (e.g. hbfp4=fixed16), "
                             f"got {pair!r}")
        out[formats.get(name).name] = acc
    return out


def density_report(names: Sequence[str], accs: Sequence[str], booster: bool) -> str:
    """The density table of ``names`` (default: the standard set) with accumulators from
    ``accs`` (FORMAT=ACC strings), then density against the accumulator width."""
    rows = density.density_table(names or density.FORMATS, parse_accumulator_options(accs),
                                 density.BOOSTER if booster else None)
    widths = density.SWEEP_WIDTHS[::2]
    fixed = [r.format for r in rows if r.accumulator.startswith("fixed") and "%" not in r.format]
    sweep = density.width_sweep(fixed if names else density.SWEEP_FORMATS, widths)
    lines = [density_table_text(rows), "",
             "density vs FP32 with a fixed{w} accumulator of w bits:",
             f"{'format':<12}" + "".join(f"{w:>7d}" for w in widths)]
    lines += [f"{name:<12}" + "".join(f"{d:>6.2f}x" for _, d in points)
              for name, points in sweep.items()]
    return "\n".join(lines)


def mac_report(name: str, accumulator: str | None) -> str:
    """One MAC's area part by part, and its energy."""
    mac = mac_cost(name, accumulator)
    lines = [f"{mac.format} with a {mac.accumulator} accumulator (dot-product lane of "
             f"{mac.lane}), 28 nm:"]
    lines += [f"  {part:<18} {area:8.2f} um^2" for part, area in mac.parts.items()]
    lines.append(f"  {'total':<18} {mac.area:8.2f} um^2, {mac.energy:.4f} pJ per MAC")
    return "\n".join(lines)


def array_report(config: ArrayConfig) -> str:
    """The area of ``config``'s array and buffers, and its peak MAC rate per area."""
    a = array_cost(config)
    mm2 = lambda um2: f"{um2 / 1e6:9.4f} mm^2"  # noqa: E731
    return "\n".join([
        f"{config.name}: {config.rows} x {config.cols}, {a.mac.format} MACs with a "
        f"{a.mac.accumulator} accumulator (28 nm)",
        f"  PE                {a.pe:9.2f} um^2 (MAC {a.mac.area:.2f} + partial-sum register)",
        f"  PEs               {mm2(a.pes)}",
        f"  edge converters   {mm2(a.edge)}",
        f"  SRAM              {mm2(a.sram)} ({sum(a.sram_kib.values()):g} KiB)",
        f"  total             {mm2(a.area)}",
        f"  peak              {config.rows * config.cols * config.clock_ghz / 1e3:.4g} TMAC/s, "
        f"{config.rows * config.cols * config.clock_ghz / (a.logic / 1e6):.4g} GMAC/s per mm^2 "
        "of logic"])


def synth_report(name: str, accumulator: str, verilog: str | None) -> str:
    """Synthesize one PE with Yosys (``calibrate.synthesize_pe``); optionally save its
    Verilog to the file ``verilog``."""
    r = calibrate.synthesize_pe(name, accumulator)
    if verilog:
        Path(verilog).write_text(r["verilog"])
    gates = sorted(((n, cell[2:-1]) for cell, n in r["cells"].items() if cell != "$_DFF_P_"),
                   reverse=True)
    lines = [f"{formats.get(name).name} PE with a {accumulator} accumulator, synthesized by "
             "Yosys:",
             f"  flip-flops   {r['cells'].get('$_DFF_P_', 0)}",
             f"  gates        {sum(n for n, _ in gates)} ("
             + ", ".join(f"{cell} {n}" for n, cell in gates) + ")",
             f"  transistors  {r['transistors']} (CMOS estimate) ~ {r['um2']:.1f} um^2 at 28 nm"]
    if r["analytic"] is not None:
        lines.append(f"  analytic     {r['analytic']:.0f} transistors "
                     f"({r['analytic'] / r['transistors'] - 1:+.1%})")
    return "\n".join(lines + ([f"  Verilog      {verilog}"] if verilog else []))
