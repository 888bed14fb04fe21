"""Component areas (um^2, 28 nm) and energies (pJ), each from a published table or a fit to one.

Sources (copied into ``hbfpsim/cost/data``):

- ``area_28nm.csv``: synthesized 28 nm components (TSMC 28 nm HPM, Synopsys DC compile_ultra,
  20 ns clock) from the public EPFL HBFP hardware cost model (jnbrq/hbfp_hardware_model):
  signed integer multipliers and adders of 1-16 bits, FP32/FP16/BF16/e10m7 multipliers, adders
  and accumulators, fixed-to-float and float-to-BFP converters.
- ``energy_area_45nm.csv``: Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm, 0.9 V):
  energy per operation and per memory access.
- ``fitted.json``: constants fitted by ``hbfpsim cost calibrate`` from Yosys synthesis (the
  cost of a 2:1 multiplexer bit, an XOR bit and a register bit relative to an adder bit,
  anchored to the 28 nm adder); see docs/cost.md.

Outside a table's range a component follows the fit named in its docstring. Functions of
the tables alone are cached (the fits run once per argument); those that read
``fitted.json`` are not, so a new calibration takes effect at once.
"""

from __future__ import annotations

import csv
import json
import math
from functools import cache
from importlib import resources

import numpy as np

TABLE_VOLTAGE, HOROWITZ_VOLTAGE = 0.81, 0.9        # 28 nm table corner ss0p81v; Horowitz 0.9 V
FEATURE_28, FEATURE_45 = 28.0, 45.0
SRAM_UM2_PER_BIT = 0.2448       # 28 nm SRAM macro with periphery, about 0.51 MB/mm^2: the
                                # value the EPFL model (eda/stardust.py) cites from a paper,
                                # ~ the TSMC 28 nm 0.127 um^2 6T cell at 52 % array efficiency.
                                # Its newer, pessimistic alternative is 1.04 um^2/bit.
DRAM_PJ_PER_BIT = 1300 / 64     # Horowitz: 1.3-2.6 nJ per 64-bit DRAM access; the low end


@cache
def _area_table() -> dict[tuple[str, str, int, int | None], float]:
    text = resources.files("hbfpsim.cost").joinpath("data/area_28nm.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(r["component"], r["format"], int(r["bits"]), int(r["block"]) if r["block"] else None):
            float(r["area_um2"]) for r in rows}


@cache
def _energy_table() -> dict[tuple[str, int], tuple[float, float | None]]:
    text = resources.files("hbfpsim.cost").joinpath("data/energy_area_45nm.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(r["operation"], int(r["bits"])): (float(r["energy_pj"]),
                                               float(r["area_um2"]) if r["area_um2"] else None)
            for r in rows}


@cache
def fitted() -> dict:
    """Constants from ``hbfpsim cost calibrate`` (shipped; regenerate with the hw extra)."""
    return json.loads(resources.files("hbfpsim.cost").joinpath("data/fitted.json").read_text())


def _table(component: str, fmt: str) -> dict[int, float]:
    return {bits: a for (c, f, bits, _), a in _area_table().items() if c == component and f == fmt}


# --- integer datapath ------------------------------------------------------------------------

@cache
def int_mult(bits: int) -> float:
    """Signed bits x bits multiplier. Table for 1-16 bits; beyond, a * bits^2 with ``a`` fitted
    by least squares to the table's 8-16-bit multipliers."""
    table = _table("int_mult", "signed")
    if bits in table:
        return table[bits]
    n = np.arange(8, 17)
    a = float(np.sum(np.array([table[i] for i in n]) * n**2) / np.sum(n**4.0))
    return a * bits**2


@cache
def int_add(bits: int) -> float:
    """Signed adder of ``bits``. Table for 1-16 bits; beyond, the least-squares line through
    the table's 4-16-bit adders (about 2.31 um^2 per bit)."""
    table = _table("int_add", "signed")
    if bits in table:
        return table[bits]
    n = np.arange(4, 17)
    slope, intercept = np.polyfit(n, [table[i] for i in n], 1)
    return float(slope * bits + intercept)


def mux2(bits: int = 1) -> float:
    """2:1 multiplexers (shifter stages): per bit, the Yosys transistor count of a mux bit over
    that of an adder bit (fitted.json), times the 28 nm 16-bit adder's area per bit."""
    f = fitted()
    return bits * f["mux2_transistors"] / f["adder_bit_transistors"] * int_add(16) / 16


def xor2(bits: int = 1) -> float:
    """2-input XOR gates (conditional negation), per bit relative to an adder bit as ``mux2``."""
    f = fitted()
    return bits * f["xor2_transistors"] / f["adder_bit_transistors"] * int_add(16) / 16


def register(bits: int) -> float:
    """Flip-flops (PE pipeline registers), per bit relative to an adder bit as ``mux2``."""
    f = fitted()
    return bits * f["register_bit_transistors"] / f["adder_bit_transistors"] * int_add(16) / 16


def shifter(width: int, span: int, out: int | None = None) -> float:
    """Logarithmic shifter moving a ``width``-bit value left by 0..span into an ``out``-bit
    field (default width + span): ceil(log2(span + 1)) stages, stage j (shift by 2^j) with
    one 2:1 multiplexer per bit its output can hold, min(width + 2^(j+1) - 1, out); bits that
    are always zero cost nothing (synthesis removes them)."""
    out = width + span if out is None else min(out, width + span)
    stages = math.ceil(math.log2(span + 1)) if span > 0 else 0
    return mux2(sum(min(width + 2 ** (j + 1) - 1, out) for j in range(stages)))


# --- floating point --------------------------------------------------------------------------

_FP_NAMES = {(8, 23): "fp32", (5, 10): "fp16", (8, 7): "bf16", (10, 7): "e10m7"}


def _fp_fit(component: str, features) -> tuple[np.ndarray, dict]:
    table = {name: _table(component, name) for name in _FP_NAMES.values()}
    rows = [features(e, m) for (e, m) in _FP_NAMES]
    areas = [next(iter(table[n].values())) for n in _FP_NAMES.values()]
    coef, *_ = np.linalg.lstsq(np.array(rows, float), np.array(areas), rcond=None)
    return coef, table


@cache
def fp_mult(exp_bits: int, man_bits: int) -> float:
    """Floating-point multiplier. Table for FP32, FP16, BF16, e10m7; otherwise
    a (M+1)^2 + b E + c, least squares on those four (within 2 % of each)."""
    name = _FP_NAMES.get((exp_bits, man_bits))
    coef, table = _fp_fit("fp_mult", lambda e, m: ((m + 1) ** 2, e, 1))
    if name:
        return next(iter(table[name].values()))
    return float(coef @ [(man_bits + 1) ** 2, exp_bits, 1])


@cache
def fp_add(exp_bits: int, man_bits: int) -> float:
    """Floating-point adder. Table for FP32, FP16, BF16, e10m7; otherwise
    a n log2(n) + b E + c with n = M+1 (alignment and normalization shifters), least squares
    on those four (within 2 % of each)."""
    name = _FP_NAMES.get((exp_bits, man_bits))
    coef, table = _fp_fit("fp_add", lambda e, m: ((m + 1) * math.log2(m + 1), e, 1))
    if name:
        return next(iter(table[name].values()))
    return float(coef @ [(man_bits + 1) * math.log2(man_bits + 1), exp_bits, 1])


@cache
def fp_accumulator(exp_bits: int, man_bits: int) -> float:
    """FP adder with its accumulating register and control. Table for FP32, FP16, BF16,
    e10m7; otherwise fp_add plus the table's mean accumulator overhead per bit (accumulator
    minus adder, about 12 um^2 per bit)."""
    name = _FP_NAMES.get((exp_bits, man_bits))
    if name:
        return next(iter(_table("fp_accumulator", name).values()))
    per_bit = np.mean([(next(iter(_table("fp_accumulator", n).values()))
                        - next(iter(_table("fp_add", n).values()))) / (1 + e + m)
                       for (e, m), n in _FP_NAMES.items()])
    return fp_add(exp_bits, man_bits) + float(per_bit) * (1 + exp_bits + man_bits)


@cache
def fixed_to_fp(width: int) -> float:
    """Fixed point (with exponent) to float converter for a ``width``-bit integer: the
    least-squares line through the table's 2-16-bit converters."""
    table = _table("fixed_exp_to_fp", "e10")
    slope, intercept = np.polyfit(list(table), list(table.values()), 1)
    return float(slope * width + intercept)


@cache
def fp_to_bfp(mantissa_bits: int, block: int) -> float:
    """Float to block floating point converter for a block of ``block`` elements: a line in
    the block size per mantissa width (as the EPFL model fits it; table for 2, 4, 6, 32),
    linear between the table's mantissa widths 2, 4, 6, 8."""
    table = _area_table()
    widths = [2, 4, 6, 8]

    def at(m):
        points = {b: a for (c, f, bits, b), a in table.items() if c == "fp_to_bfp" and bits == m}
        slope, intercept = np.polyfit(list(points), list(points.values()), 1)
        return slope * block + intercept

    m = min(max(mantissa_bits, widths[0]), widths[-1])
    return float(np.interp(m, widths, [at(w) for w in widths]))


# --- energy ----------------------------------------------------------------------------------

def energy_scale() -> float:
    """Factor taking an energy per operation from Horowitz's 45 nm, 0.9 V to the 28 nm table's
    0.81 V: dynamic energy is C V^2 and capacitance follows feature size (28/45)."""
    return FEATURE_28 / FEATURE_45 * (TABLE_VOLTAGE / HOROWITZ_VOLTAGE) ** 2


@cache
def logic_energy_density() -> float:
    """pJ per um^2 of logic per operation at 28 nm: the mean of energy / area over Horowitz's
    integer adders and multipliers (45 nm), times ``energy_scale()`` over the area scale
    (28/45)^2 (the same circuit's area shrinks with the square of the feature size)."""
    ratios = [e / a for (op, _), (e, a) in _energy_table().items()
              if op in ("int_add", "int_mult") and a]
    return float(np.mean(ratios)) * energy_scale() / (FEATURE_28 / FEATURE_45) ** 2


@cache
def sram_energy_per_bit(kib: float) -> float:
    """pJ per bit read or written from an SRAM of ``kib`` KiB at 28 nm: a power law in size
    fitted (log-log least squares) to Horowitz's 8 KB, 32 KB and 1 MB reads of 64 bits, times
    ``energy_scale()`` (bit- and word-line capacitance follows wire length)."""
    points = {8: "sram_read_8KB", 32: "sram_read_32KB", 1024: "sram_read_1MB"}
    energies = [_energy_table()[(op, 64)][0] / 64 for op in points.values()]
    slope, intercept = np.polyfit(np.log(list(points)), np.log(energies), 1)
    return float(math.exp(intercept) * max(kib, 1e-3) ** slope * energy_scale())


def sram_area(kib: float) -> float:
    """um^2 of ``kib`` KiB of SRAM: SRAM_UM2_PER_BIT per bit."""
    return kib * 8192 * SRAM_UM2_PER_BIT
