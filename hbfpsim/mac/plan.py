"""Accumulation plans: the levels a K-long dot product passes through.

A plan is a list of levels ``(length, accumulator)``. Level 1 cuts the K products into
chunks of ``length`` consecutive products and sums each chunk sequentially in its
accumulator, starting from zero. Each chunk result converts (one rounding) into level 2,
which sums chunks of ``length`` such results the same way, and so on; the last level has no
length and sums everything it receives. Sequential accumulation (an output-stationary PE) is
one level; chunk-based accumulation (Sakr et al. 2019; a weight-stationary column) is two.

Text form, levels from the products outward: ``"fixed16*64 > fp32"`` (chunks of 64
products in a 16-bit integer, their results summed in FP32), ``"e5m10*64 > e5m10"``,
``"fixed16*64 > fp32*2 > fp32"``; a bare accumulator (``"e5m10"``) is a one-level plan.

``fused=True`` (default) adds each exact product to the level-1 accumulator with one
rounding (a fused multiply-add); ``fused=False`` first rounds the product to the level-1
format, as hardware without FMA does.

``default_plan(fmt_a, fmt_b)`` is the plan of the operands' format family's hardware,
``matmul``'s default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hbfpsim.formats import Format, resolve
from hbfpsim.formats.base import ArgumentTypeError, type_name
from hbfpsim.mac.accumulators import Accumulator, FixedAccumulator, parse_accumulator
from hbfpsim.mac.operands import element_int_max
from hbfpsim.validate import is_integer, is_text


MAX_CHUNK = 2**40      # inputs per chunk: beyond any reduction a GEMM has
BLOCK_FAMILIES = ("hbfp", "mx")   # formats with a shared exponent per block along K


@dataclass(frozen=True)
class Level:
    accumulator: Accumulator
    length: int | None = None   # inputs per chunk; None: everything (the last level)

    def __str__(self) -> str:
        return str(self.accumulator) + (f"*{self.length}" if self.length else "")


@dataclass(frozen=True)
class AccumulationPlan:
    levels: tuple[Level, ...]
    fused: bool = True

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("an accumulation plan needs at least one level")
        for i, level in enumerate(self.levels):
            last = i == len(self.levels) - 1
            if last and level.length is not None:
                raise ValueError(f"plan {self}: the last level sums everything it receives; "
                                 f"drop '*{level.length}'")
            if not last and not is_integer(level.length, 1, MAX_CHUNK):
                raise ValueError(f"plan {self}: level {i + 1} needs a chunk length in "
                                 f"[1, 2^40]")
        kinds = [level.accumulator.kind for level in self.levels]
        if "fixed" in kinds[kinds.index("float") if "float" in kinds else len(kinds):]:
            raise ValueError(f"plan {self}: fixed-point levels must come before floating-point "
                             "ones (a float result has no fixed binary point)")
        if not self.fused and kinds[0] == "fixed":
            raise ValueError(f"plan {self}: fused=False rounds products to a float format; "
                             "level 1 is fixed point")

    @classmethod
    def parse(cls, text: str, fused: bool = True) -> AccumulationPlan:
        """A plan from its text form (see the module docstring)."""
        if not isinstance(text, str):
            raise ArgumentTypeError(f"an accumulation plan must be a non-empty string, got "
                                    f"{type_name(text)}")
        if not is_text(text):
            raise ValueError(f"an accumulation plan must be a non-empty string, got {text!r}")
        levels = []
        for part in text.split(">"):
            acc, _, length = part.strip().partition("*")
            if length and not (length.strip().isascii() and length.strip().isdigit()):
                raise ValueError(f"plan {text!r}: chunk length {length.strip()!r} is not a "
                                 "positive integer")
            levels.append(Level(parse_accumulator(acc), int(length) if length else None))
        return cls(tuple(levels), fused)

    def spans(self, k: int) -> list[int]:
        """Products covered by one chunk of each level, for a K-long dot product."""
        spans, span = [], 1
        for level in self.levels:
            span = k if level.length is None else min(span * level.length, k)
            spans.append(span)
        return spans

    def inputs(self, k: int) -> list[int]:
        """How many inputs each level receives over a K-long dot product."""
        counts = [k]
        for level in self.levels[:-1]:
            counts.append(math.ceil(counts[-1] / level.length))
        return counts

    def __str__(self) -> str:
        return " > ".join(map(str, self.levels))


def as_plan(plan: Any) -> AccumulationPlan:
    """A plan from an AccumulationPlan, its text form, or a list of (length, accumulator)
    pairs, the last length None: ``[(64, "fixed16"), (None, "fp32")]``. A plan, level, length
    or accumulator of the wrong type is an ``ArgumentTypeError`` (a TypeError), a wrong value
    (an empty list, a length of 0) a ValueError."""
    if isinstance(plan, AccumulationPlan):
        return plan
    if isinstance(plan, str):
        return AccumulationPlan.parse(plan)
    if isinstance(plan, (list, tuple)):
        if not plan:
            raise ValueError("plan: an empty list has no levels; expected (length, accumulator) "
                             "pairs such as [(64, 'fixed16'), (None, 'fp32')]")
        levels = []
        for item in plan:
            if not isinstance(item, (list, tuple)):
                raise ArgumentTypeError(f"plan levels must be (length, accumulator) pairs, got "
                                        f"{type_name(item)}")
            if len(item) != 2:
                raise ValueError(f"plan levels must be (length, accumulator) pairs, got {item!r}")
            length, acc = item
            if length is not None and not is_integer(length):
                raise ArgumentTypeError(f"plan level {item!r}: expected (length, accumulator) "
                                        "with the length an integer or None")
            levels.append(Level(parse_accumulator(acc), None if length is None else int(length)))
        return AccumulationPlan(tuple(levels))
    raise ArgumentTypeError(f"plan must be an AccumulationPlan, a string such as "
                            f"'fixed16*64 > fp32' or a list of (length, accumulator) pairs, got "
                            f"{type_name(plan)}")


def default_plan(fmt_a: str | Format, fmt_b: str | Format | None = None) -> AccumulationPlan:
    """The accumulation plan of the hardware of the operands' format family (``fmt_b``
    default: ``fmt_a``), ``matmul``'s default (docs/accumulation.md, "Default plans"):

    - block formats (HBFP, MX) on both sides with the same block length B: each block's
      integer products summed exactly in a fixed-point register, the block result converted
      to FP32 (its two shared exponents added) and the blocks summed in FP32,
      ``fixed{w}*B > fp32``, w the narrowest register that cannot overflow. A block sums
      at most B products of magnitude at most Ia Ib (``element_int_max`` of each format, in
      LSB units), so w needs 2^(w-1) - 1 >= B Ia Ib: w = bit_length(B Ia Ib) + 1, at least
      8. HBFP4@64: 64 x 7 x 7 = 3136, fixed13; HBFP8@64: 64 x 127^2 = 1032256, fixed21;
      MXFP4: 32 x 12^2 = 4608, fixed14; MXINT8: fixed20. Where products reach 2^53 or w
      would exceed 64 (MXFP8 E5M2 x E5M2), ``fp32``;
    - INT8 x INT8: ``fixed32``, one int32 register over all of K, as integer GEMM units
      (saturating beyond 2^31 - 1; K x 127^2 stays below it up to K = 133144);
    - anything else (FP32, BF16, FP16, FP8, mixed families or block lengths): ``fp32``.
    """
    fa = resolve(fmt_a)
    fb = fa if fmt_b is None else resolve(fmt_b)
    if fa.family == fb.family == "int":
        return AccumulationPlan.parse("fixed32")
    if fa.family in BLOCK_FAMILIES and fb.family in BLOCK_FAMILIES and fa.block == fb.block:
        ia, ib = element_int_max(fa), element_int_max(fb)
        width = max(8, (fa.block * ia * ib).bit_length() + 1)
        if ia * ib < 2**53 and width <= 64:
            return AccumulationPlan((Level(FixedAccumulator(width), fa.block),
                                     Level(parse_accumulator("fp32"))))
    return AccumulationPlan.parse("fp32")
