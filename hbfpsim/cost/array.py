"""Area of a systolic array and energy of a GEMM replayed on it (28 nm).

An R x C array is R C processing elements plus edge converters plus its SRAM buffers:

- a PE is the MAC of its operand format and accumulator (``mac.mac_cost``: operand
  registers, multiplier, adder, the block's exponent adder, converter and FP32 accumulator
  amortized over the block) plus a partial-sum register at the accumulator's width (the sum
  passed to the next PE). A PE multiplying two different formats is costed as the more
  expensive of the two. The accumulator is the numerics' ``accumulator`` for FP formats;
  integer and block formats use their fixed-point register (``block_accumulator``, else a
  fixed-point ``accumulator``, else ``mac.default_accumulator``: exact);
- block formats convert the array's FP32 outputs back to blocks at the output edge:
  ceil(C / B) float-to-BFP converters of a block of B (``components.fp_to_bfp``);
- SRAM: the input, weight and output buffers at ``components.SRAM_UM2_PER_BIT``.

The energy of a GEMM adds, from the array model's report: every MAC's PE energy (area times
``components.logic_energy_density``), every SRAM byte read or written at the energy per bit of
its buffer's size (``components.sram_energy_per_bit``), every DRAM byte at
``components.DRAM_PJ_PER_BIT``. Not counted: leakage, clock tree, control, interconnect
between the buffers and the array, the vector units of a training accelerator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from hbfpsim.config import ArrayConfig
from hbfpsim.cost import components as c
from hbfpsim.cost.mac import MacCost, default_accumulator, mac_cost
from hbfpsim.formats import Format
from hbfpsim.mac import Accumulator, FixedAccumulator
from hbfpsim.numerics import Numerics


class AccessCounts(Protocol):
    """What ``gemm_energy`` reads from a report (``hbfpsim.array.GemmReport`` has it)."""

    macs: int
    sram: dict[str, dict[str, int]]
    dram: dict[str, int]


@dataclass(frozen=True)
class ArrayCost:
    """Area of one array configuration, um^2 (``pe`` per PE, the rest in total)."""

    config: str
    mac: MacCost
    pe: float
    pes: float
    edge: float
    sram: float
    sram_kib: dict[str, float]

    @property
    def logic(self) -> float:
        """um^2 of the PEs and edge converters."""
        return self.pes + self.edge

    @property
    def area(self) -> float:
        """um^2 in total."""
        return self.logic + self.sram


def pe_accumulator(numerics: Numerics, fmt: Format) -> Accumulator:
    """The register a PE of ``fmt`` sums products in: FP formats use the numerics'
    ``accumulator``; integer and block formats their fixed-point one (``block_accumulator``,
    else a fixed ``accumulator``, else the exact default)."""
    if fmt.family == "fp":
        return numerics.accumulator
    for acc in (numerics.block_accumulator, numerics.accumulator):
        if isinstance(acc, FixedAccumulator):
            return acc
    return default_accumulator(fmt)


def array_cost(config: ArrayConfig, numerics: Numerics | None = None) -> ArrayCost:
    """The area of ``config``'s array and buffers with MACs for ``numerics`` (default, the
    ``[numerics]`` the configuration names)."""
    numerics = Numerics.of(config) if numerics is None else numerics
    macs = []
    for key, fmt in (("input", numerics.input), ("weight", numerics.weight)):
        try:
            macs.append(mac_cost(fmt, pe_accumulator(numerics, fmt)))
        except ValueError as err:
            raise ValueError(f"{config.source}: [numerics] {key}: {err}") from None
    mac = max(macs, key=lambda m: m.area)
    pe = mac.area + c.register(mac.accumulator.bits)
    fmt = mac.format
    edge = 0.0
    if fmt.family in ("hbfp", "mx"):
        bits = fmt.mantissa_bits if fmt.family == "hbfp" else fmt.element_bits
        edge = math.ceil(config.cols / fmt.block) * c.fp_to_bfp(bits, fmt.block)
    kib = {"input": config.input_kib, "weight": config.weight_kib, "output": config.output_kib}
    return ArrayCost(config.name, mac, pe, pe * config.rows * config.cols, edge,
                     sum(c.sram_area(k) for k in kib.values()), kib)


@dataclass(frozen=True)
class Energy:
    """The energy of one GEMM by part, pJ: the PEs' MACs, SRAM and DRAM reads and writes."""

    compute: float
    sram: float
    dram: float

    @property
    def total(self) -> float:
        """pJ, all parts."""
        return self.compute + self.sram + self.dram


def gemm_energy(config: ArrayConfig, report: AccessCounts, cost: ArrayCost | None = None,
                *, numerics: Numerics | None = None) -> Energy:
    """The ``Energy`` of one GEMM simulated on ``config`` under ``numerics`` (default, the
    configuration's own). ``cost``: ``array_cost(config, numerics)``, when the caller has
    it."""
    cost = array_cost(config, numerics) if cost is None else cost
    sram = sum(8 * (counts["reads"] + counts["writes"])
               * c.sram_energy_per_bit(cost.sram_kib[buffer])
               for buffer, counts in report.sram.items())
    return Energy(report.macs * cost.pe * c.logic_energy_density(), sram,
                  8 * (report.dram["reads"] + report.dram["writes"]) * c.DRAM_PJ_PER_BIT)
