"""INT8: symmetric integer quantization with a float32 scale per tensor or per channel.

``scale = max|x| / 127`` rounded to float32 toward zero, so that ``127 * scale`` never
exceeds ``max|x|`` and no value can overflow (1.0 where that scale is zero: an all-zero
tensor or channel, or one whose max is below 127 * 2^-149), codes ``k = round(x / scale)`` clipped to [-127, 127] (-128 is unused, so the grid
is symmetric), values ``k * scale``. ``per="channel"`` takes one scale per slice along the
quantization axis, i.e. per row of A (M x K, axis=-1) or per column of B (K x N, axis=0):
the scales factor out of every dot product, as in integer GEMM hardware.

The quotient ``x / scale`` is rounded to float64 once before the integer rounding (for
float32 input this never moves a tie). ``k * scale`` needs up to 31 significant bits, so a
float32 result is that product rounded once to float32; ``encode`` gives the exact integer
codes and scales (``scale`` has the input's shape with the axis of length 1, for both
granularities). Storage is counted as 8 bits per element: the 32-bit scale is amortized
over a whole tensor or channel, whose length the format does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hbfpsim.formats import kernels
from hbfpsim.formats.base import ArgumentTypeError, Format, type_name

KMAX = 127
GRANULARITIES = ("tensor", "channel")


@dataclass(frozen=True)
class Int8Format(Format):
    per: str = "tensor"
    name = "int8"
    family = "int"
    element_bits = 8

    @classmethod
    def create(cls, per: str = "tensor") -> Int8Format:
        if not isinstance(per, str):
            raise ArgumentTypeError(f"int8: option per must be a string, 'tensor' or "
                                    f"'channel', got {type_name(per)}")
        if per not in GRANULARITIES:
            raise ValueError(f"int8: option per={per!r} is not one of {GRANULARITIES}")
        return cls(per)

    def options(self) -> dict:
        return {} if self.per == "tensor" else {"per": self.per}

    def describe(self) -> str:
        return f"symmetric +-127 x float32 scale (max|x|/127) per {self.per}"

    def _round(self, x, mode, seed):
        finite = np.isfinite(x)
        bad = ~finite.all(axis=1)
        amax = np.abs(np.where(finite, x, 0)).max(axis=1, initial=0.0)
        if amax.max(initial=0.0) > np.finfo(np.float32).max:
            raise ValueError(f"int8: max|x| = {amax.max():.4g} is beyond float32's range, so "
                             f"no float32 scale per {self.per} can hold it")
        amax = amax.astype(np.float32)
        if self.per == "tensor":
            amax = np.full_like(amax, amax.max(initial=0.0))
        scale = amax / np.float32(KMAX)
        over = scale.astype(np.float64) * KMAX > amax           # exact product: 31 bits
        scale[over] = np.nextafter(scale[over], np.float32(0))  # round toward zero
        scale[scale == 0] = 1.0
        k = np.empty(x.shape, np.int16)
        kernels.scaled_int(np.where(finite, x, 0), scale, float(KMAX), mode, seed, k)
        q = (k * scale[:, None].astype(np.float64)).astype(x.dtype)
        return q, (k, scale), bad

    def _pack(self, q, side):
        k, scale = side  # per-tensor scales are one value repeated over the rows
        return (k < 0).astype(np.uint8), np.abs(k).astype(np.uint8), None, scale[:, None]

    def _unpack(self, sign, code, shared_exp, scale):
        k = np.where(sign.astype(bool), -code.astype(np.float64), code.astype(np.float64))
        return k * scale.astype(np.float64)
