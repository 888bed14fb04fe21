"""Area and energy of one MAC, per format and accumulator (28 nm).

A MAC is one lane of a dot-product unit ``lane`` elements wide, the architecture of the
EPFL HBFP cost model the 28 nm table comes from: ``lane`` multipliers, an adder tree of
``lane - 1`` adders built at the accumulator's width, and per unit the parts that run once
per dot product (amortized over the lane):

- FP32 / BF16 / FP16 / FP8: an FP multiplier of the element format, FP adders and one
  FP accumulator in the accumulator format (default: the element's own format; FP16 for
  FP8);
- INT8: an 8-bit multiplier, integer adders and accumulator at the accumulator width
  (default fixed32);
- HBFP{m}@B (lane = B): an m-bit signed multiplier, integer adders at ``fixed{w}`` (default
  w = 2(m-1) + ceil(log2 B) + 1: never overflows), and per block an exponent adder, the
  fixed-to-float converter and an FP32 accumulator;
- MX (lane = 32): the element multiplier (significands (M+1) bits, exponents (E+1) bits), a
  shifter aligning the product to the block's fixed point (exact over the whole exponent
  range of a product; an accumulator narrower than that drops the bits below its LSB, so
  the shifter is only as wide as the accumulator), a conditional negation of the aligned
  sign-magnitude product (w XOR gates; the adder's carry-in completes it), integer adders
  at ``fixed{w}`` (default: aligned width + 5 + 1, at most 64: MXFP8 E5M2 products span 64
  bits), and per block the exponent adder, converter and FP32 accumulator; MXINT8 is
  integer like HBFP8.

Every MAC also registers its two operands (element bits each; block formats add their two
8-bit shared exponents per lane). Energy per MAC is the area times
``components.logic_energy_density()`` (every part switches once per MAC; amortized parts
once per lane).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hbfpsim.cost import components as c
from hbfpsim.formats import Format, resolve
from hbfpsim.mac import Accumulator, FixedAccumulator, FloatAccumulator, parse_accumulator

FP_LANE = 64          # dot-product width of FP units (the HBFP block it is compared with)
MAX_FIXED = 64        # widest fixed-point accumulator (hbfpsim.mac)
FP32, BF16, FP16 = FloatAccumulator(8, 23), FloatAccumulator(8, 7), FloatAccumulator(5, 10)
OUTER = FP32          # block formats accumulate block results in FP32
DEFAULT_FP_ACCUMULATOR = {"fp32": FP32, "bf16": BF16, "fp16": FP16, "fp8_e4m3": FP16,
                          "fp8_e5m2": FP16}


@dataclass(frozen=True)
class MacCost:
    """One MAC lane: ``parts`` maps a component to its um^2 per MAC."""

    format: Format
    accumulator: Accumulator
    lane: int
    parts: dict[str, float]

    @property
    def area(self) -> float:
        """um^2 per MAC."""
        return sum(self.parts.values())

    @property
    def energy(self) -> float:
        """pJ per MAC."""
        return self.area * c.logic_energy_density()


def _default_width(fmt: Format) -> int:
    if fmt.family == "hbfp":
        return 2 * fmt.frac_bits + math.ceil(math.log2(fmt.block)) + 1
    if fmt.family == "mx":
        if fmt.element is None:
            return 2 * 7 + 5 + 1
        return min(_aligned_width(fmt) + 5 + 1, MAX_FIXED)
    return 32


def _product_span(fmt: Format) -> int:
    """Binary orders of magnitude between the smallest and largest product of two elements
    (subnormals share the smallest normal's exponent): 2 (emax - emin)."""
    e = fmt.element
    return 2 * (math.floor(math.log2(e.max)) - e.emin)


def _aligned_width(fmt: Format) -> int:
    """Bits of an exactly aligned product magnitude: 2 (M + 1) + the product span."""
    return 2 * (fmt.element.man_bits + 1) + _product_span(fmt)


def default_accumulator(fmt: str | Format) -> Accumulator:
    """The accumulator a MAC of ``fmt`` is costed with when none is given: the FP formats'
    own (FP16 for FP8), and for integer and block formats the narrowest fixed-point register
    that never overflows a block's sum."""
    fmt = resolve(fmt)
    if fmt.family == "fp":
        return DEFAULT_FP_ACCUMULATOR[fmt.name]
    return FixedAccumulator(_default_width(fmt))


def mac_cost(fmt: str | Format, accumulator: str | Accumulator | None = None,
             lane: int = FP_LANE) -> MacCost:
    """The MAC of ``fmt`` with ``accumulator`` (the adder tree's register: a float
    accumulator for FP formats, fixed{w} otherwise; default: ``default_accumulator``), names
    or objects. ``lane`` is the dot-product width of FP and INT units; block formats use
    their block."""
    fmt = resolve(fmt)
    acc = default_accumulator(fmt) if accumulator is None else parse_accumulator(accumulator)
    if fmt.family == "fp":
        if not isinstance(acc, FloatAccumulator):
            raise ValueError(f"{fmt.name}: a floating-point format needs a floating-point "
                             f"accumulator, got {acc}")
        e = fmt.spec
        parts = {"operand registers": c.register(2 * fmt.element_bits),
                 "multiplier": c.fp_mult(e.exp_bits, e.man_bits),
                 "adders": c.fp_add(acc.exp_bits, acc.man_bits) * (lane - 1) / lane,
                 "accumulator": c.fp_accumulator(acc.exp_bits, acc.man_bits) / lane}
        return MacCost(fmt, acc, lane, parts)
    if not isinstance(acc, FixedAccumulator):
        raise ValueError(f"{fmt.name}: integer and block formats sum products in a fixed-point "
                         f"accumulator (fixed{{w}}), got {acc}")
    w = acc.width
    if fmt.family == "int":
        parts = {"operand registers": c.register(16),
                 "multiplier": c.int_mult(8), "adders": c.int_add(w) * (lane - 1) / lane,
                 "accumulator": (c.int_add(w) + c.register(w)) / lane}
        return MacCost(fmt, acc, lane, parts)
    block = fmt.block
    registers = {"operand registers": c.register(2 * fmt.element_bits) + c.register(16) / block}
    if fmt.family == "hbfp" or fmt.element is None:            # integer mantissas
        bits = fmt.mantissa_bits if fmt.family == "hbfp" else 8
        parts = registers | {"multiplier": c.int_mult(bits)}
    else:
        e = fmt.element
        parts = registers | {"multiplier": c.int_mult(e.man_bits + 1) + c.int_add(e.exp_bits + 1),
                             "aligner": c.shifter(2 * (e.man_bits + 1), _product_span(fmt), w),
                             "negation": c.xor2(w)}
    parts.update({
        "adders": c.int_add(w) * (block - 1) / block,
        "block exponent": c.int_add(9) / block,
        "fixed-to-float": c.fixed_to_fp(w) / block,
        "FP32 accumulator": c.fp_accumulator(OUTER.exp_bits, OUTER.man_bits) / block,
    })
    return MacCost(fmt, acc, block, parts)
