"""OCP Microscaling (MX) v1.0 formats: MXFP8 (E4M3, E5M2), MXFP6 (E3M2, E2M3), MXFP4 (E2M1)
and MXINT8.

Blocks of 32 consecutive elements along the reduction axis share one E8M0 scale 2^X with
``X = floor(log2 max|x|) - emax_elem`` (emax_elem: exponent of the element format's largest
normal), clamped to [-127, 127]; each element ``x / 2^X`` is rounded to the element format
and saturated at its largest normal. MXINT8 elements are sign-magnitude fixed point 1.6
(k / 64, |k| <= 127, emax_elem = 0). Storage: element bits + 8/32.

Notes. An all-zero block gets X = -127. Rounding: half to even by default; ``"away"`` is the
microxcaling reference library's default ("nearest"). For float64 input whose block max is
at or above 2^(128 + emax_elem) X clamps to 127 and the elements saturate (microxcaling
gives the NaN scale there instead). MXINT8 is numerically HBFP8@32 with the shared
exponent offset by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hbfpsim.formats import kernels
from hbfpsim.formats.base import (Format, expand_blocks, scale_blocks, shared_exp_codes,
                                  sign_magnitude)
from hbfpsim.formats.floating import E2M1, E2M3, E3M2, E4M3, E5M2, FloatSpec

BLOCK = 32
ELEMENTS = {"mxfp8_e4m3": E4M3, "mxfp8_e5m2": E5M2, "mxfp6_e3m2": E3M2, "mxfp6_e2m3": E2M3,
            "mxfp4": E2M1, "mxint8": None}
INT_FRAC_BITS = 6   # MXINT8: value k 2^-6, |k| <= 127
INT_KMAX = 127


@dataclass(frozen=True)
class MXFormat(Format):
    name: str
    element: FloatSpec | None = field(repr=False)   # None for MXINT8
    family = "mx"
    block = BLOCK
    scale_bits = 8
    nonfinite_rule = "gives a block holding NaN or Inf the NaN scale (0xFF: all NaN)"

    @classmethod
    def create(cls, name: str) -> MXFormat:
        return cls(name, ELEMENTS[name])

    @property
    def element_bits(self) -> int:
        return 8 if self.element is None else self.element.bits

    @property
    def emax_elem(self) -> int:
        return 0 if self.element is None else self.element.emax

    def describe(self) -> str:
        if self.element is None:
            elem = "sign + 7-bit magnitude (fixed point 1.6, max 127/64)"
        else:
            elem = f"{self.element.label} elements (max {self.element.max:g})"
        offset = f" - {self.emax_elem}" if self.emax_elem else ""
        return f"{elem} x 2^X, X = floor(log2 max|x|){offset}"

    def _round(self, x, mode, seed):
        rows, n = x.shape
        q = np.empty_like(x)
        exps = np.empty((rows, -(-n // BLOCK)), np.int16)
        bad = np.empty(exps.shape, np.uint8)
        if self.element is None:  # fixed point k 2^-6 below 2: a grid with emin 0
            grid = (INT_FRAC_BITS, 0, INT_KMAX * 2.0**-INT_FRAC_BITS)
        else:
            grid = (self.element.man_bits, self.element.emin, self.element.max)
        kernels.block_scaled(x, BLOCK, *grid, -self.emax_elem, False, mode, seed, q, exps, bad)
        return q, (exps, bad), bad

    def _pack(self, q, side):
        exps, bad = side
        scaled = scale_blocks(q, -exps, BLOCK)
        if bad.any():  # NaN blocks: fields zero, the scale code says NaN
            scaled[expand_blocks(bad, BLOCK, q.shape[1]).astype(bool)] = 0.0
        if self.element is None:
            sign = np.signbit(scaled).astype(np.uint8)
            code = np.ldexp(np.abs(scaled), INT_FRAC_BITS).astype(np.uint8)
        else:
            sign, code = self.element.pack(scaled)
        return sign, code, shared_exp_codes(exps, bad), None

    def _unpack(self, sign, code, shared_exp, scale):
        if self.element is None:
            elements = sign_magnitude(sign, code) * 2.0**-INT_FRAC_BITS
        else:
            elements = self.element.unpack(sign, code)
        values = scale_blocks(elements, shared_exp.astype(np.int64) - 127, BLOCK)
        return np.where(expand_blocks(shared_exp == 255, BLOCK, code.shape[1]), np.nan, values)
