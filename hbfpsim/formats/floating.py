"""Binary floating-point formats: FP32, BF16, FP16, FP8 as scalars, and the element types
of the MX family (FP8, FP6, FP4).

Each layout (exponent and fraction bits, minimum normal exponent, largest finite value,
Inf and NaN) is the standard's: IEEE 754 for FP32 and FP16, the bfloat16 convention, the OCP
8-bit floating point and MX specifications for FP8, FP6 and FP4. Element codes are the
fields of values already on the grid (``FloatSpec.pack``, ``unpack``: exact arithmetic on
float64). The tests hold both to ``ml_dtypes``, for every layout (``finfo``) and every code
(its casts), which hbfpsim itself does not import: its import takes half a second, a tenth
of a warm quickstart. Rounding itself is ours too (kernels.py): not every ``ml_dtypes``
release rounds float64 input once (some go through float32, so 1 + 2^-4 + 2^-40 becomes 1.0
in E4M3 instead of 1.125), and its casts offer round-half-even only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hbfpsim.formats import kernels
from hbfpsim.formats.base import ArgumentTypeError, Format, type_name

_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


@dataclass(frozen=True)
class FloatSpec:
    """Layout of a sign / exponent / fraction binary float with subnormals: everything else
    (bits, emax, the element grid) derives from these fields, as ``ml_dtypes.finfo`` does.

    ``FloatSpec.of`` reads a numpy or ml_dtypes type; ``FloatSpec.ieee`` builds the
    IEEE-style layout of any width (bias 2^(E-1) - 1, the all-ones exponent reserved for Inf
    and NaN), which the accumulators use."""

    exp_bits: int
    man_bits: int     # fraction bits, the implicit leading one excluded
    emin: int         # exponent of the smallest normal
    max: float        # largest finite value
    has_inf: bool
    has_nan: bool
    dtype_name: str | None = None   # the numpy or ml_dtypes type with this layout, if any

    @classmethod
    def of(cls, scalar_type: type) -> FloatSpec:
        """The layout of a numpy or ml_dtypes floating-point type, read from its finfo."""
        import ml_dtypes
        info = ml_dtypes.finfo(scalar_type)
        dtype = np.dtype(scalar_type)
        probe = np.array([np.inf, np.nan], np.float32).astype(dtype).astype(np.float32)
        return cls(int(info.nexp), int(info.nmant), int(info.minexp), float(info.max),
                   bool(np.isinf(probe[0])), bool(np.isnan(probe[1])), dtype.name)

    @property
    def dtype(self) -> np.dtype:
        """The numpy or ml_dtypes type of this layout (ValueError if there is none; imports
        ml_dtypes for its types)."""
        if self.dtype_name is None:
            raise ValueError(f"{self.label}: no numpy or ml_dtypes type has this layout")
        if hasattr(np, self.dtype_name):
            return np.dtype(getattr(np, self.dtype_name))
        import ml_dtypes
        return np.dtype(getattr(ml_dtypes, self.dtype_name))

    @classmethod
    def ieee(cls, exp_bits: int, man_bits: int) -> FloatSpec:
        """The IEEE 754-style layout with ``exp_bits`` exponent and ``man_bits`` fraction
        bits: emin = 2 - 2^(E-1), max = (2 - 2^-M) 2^(2^(E-1) - 1), Inf and NaN."""
        emax = 2 ** (exp_bits - 1) - 1
        return cls(exp_bits, man_bits, 1 - emax, (2.0 - 2.0**-man_bits) * 2.0**emax, True, True)

    @property
    def label(self) -> str:
        """E{exp_bits}M{man_bits}."""
        return f"E{self.exp_bits}M{self.man_bits}"

    @property
    def bits(self) -> int:
        """Sign, exponent and fraction bits."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value, floor(log2(max))."""
        return int(np.frexp(self.max)[1]) - 1

    def pack(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid values -> (sign uint8, code without the sign bit: exponent field, then
        fraction field). Exact for grid values. +-Inf and NaN take the codes ml_dtypes casts
        them to: Inf's, or NaN's where there is no Inf, or the largest finite value where
        there is neither; NaN the quiet NaN (the top fraction bit set, or all ones where NaN
        has no other code), or zero where there is none."""
        x = np.asarray(values, np.float64)
        sign = np.signbit(x).astype(np.uint8)
        mag = np.abs(x)
        finite = np.isfinite(mag)
        normal = finite & (mag >= 2.0**self.emin)
        _, e = np.frexp(np.where(normal, mag, 1.0))
        field = np.where(normal, e - 1 + self._bias, 0)
        with np.errstate(invalid="ignore"):
            fraction = np.where(normal, np.ldexp(mag, 1 - e) - 1.0, np.where(
                finite, mag * 2.0**(self.man_bits - self.emin), 0.0)) * np.where(
                normal, 2.0**self.man_bits, 1.0)
        code = (field.astype(np.int64) << self.man_bits) | np.where(finite, fraction, 0).astype(
            np.int64)
        top = (1 << (self.bits - 1)) - 1                        # all ones
        inf = top >> self.man_bits << self.man_bits
        nan = (inf | 1 << (self.man_bits - 1)) if self.has_inf else top
        code = np.where(np.isinf(mag), inf if self.has_inf else top, code)
        code = np.where(np.isnan(mag), nan if self.has_nan else 0, code)
        return sign, code.astype(self._uint)

    def unpack(self, sign: np.ndarray, code: np.ndarray) -> np.ndarray:
        """(sign, code) -> float64 values."""
        code = np.asarray(code).astype(np.int64)
        field, fraction = code >> self.man_bits, code & ((1 << self.man_bits) - 1)
        top = (1 << self.exp_bits) - 1
        value = np.where(field == 0, np.ldexp(fraction.astype(np.float64),
                                              self.emin - self.man_bits),
                         np.ldexp(1.0 + np.ldexp(fraction.astype(np.float64), -self.man_bits),
                                  field - self._bias))
        if self.has_inf:
            value = np.where(field == top, np.where(fraction == 0, np.inf, np.nan), value)
        elif self.has_nan:
            value = np.where((field == top) & (fraction == (1 << self.man_bits) - 1), np.nan,
                             value)
        return np.where(np.asarray(sign) != 0, -value, value)

    @property
    def _bias(self) -> int:
        return 1 - self.emin

    @property
    def _uint(self) -> type:
        return _UINT[max(8, 1 << (self.bits - 1).bit_length())]


FP32 = FloatSpec(8, 23, -126, float(np.finfo(np.float32).max), True, True, "float32")
BF16 = FloatSpec(8, 7, -126, (2 - 2.0**-7) * 2.0**127, True, True, "bfloat16")
FP16 = FloatSpec(5, 10, -14, 65504.0, True, True, "float16")
E4M3 = FloatSpec(4, 3, -6, 448.0, False, True, "float8_e4m3fn")        # OCP FP8: no Inf
E5M2 = FloatSpec(5, 2, -14, 57344.0, True, True, "float8_e5m2")
E3M2 = FloatSpec(3, 2, -2, 28.0, False, False, "float6_e3m2fn")        # OCP MX: no Inf, NaN
E2M3 = FloatSpec(2, 3, 0, 7.5, False, False, "float6_e2m3fn")
E2M1 = FloatSpec(2, 1, 0, 6.0, False, False, "float4_e2m1fn")
SPECS = (FP32, BF16, FP16, E4M3, E5M2, E3M2, E2M3, E2M1)

SCALAR_SPECS = {"fp32": FP32, "bf16": BF16, "fp16": FP16, "fp8_e4m3": E4M3, "fp8_e5m2": E5M2}


@dataclass(frozen=True)
class FloatFormat(Format):
    """A scalar binary float. Out-of-range values saturate to +-max when ``saturate`` (the
    default for FP8, as in the OCP FP8 spec's saturating conversions), otherwise they become
    +-Inf (IEEE overflow; NaN for E4M3, which has no Inf). No per-tensor scaling is applied."""

    name: str
    spec: FloatSpec = field(repr=False)
    saturate: bool
    family = "fp"

    @classmethod
    def create(cls, name: str, saturate: Any = None) -> FloatFormat:
        spec = SCALAR_SPECS[name]
        if saturate is None:
            saturate = spec.bits == 8
        if not isinstance(saturate, bool):
            raise ArgumentTypeError(f"{name}: option saturate must be true or false, got "
                                    f"{type_name(saturate)}")
        return cls(name, spec, saturate)

    @property
    def element_bits(self) -> int:
        return self.spec.bits

    @property
    def nonfinite_rule(self) -> str:
        inf = "keeps +-Inf" if self.spec.has_inf and not self.saturate else (
            "maps +-Inf to +-max" if self.saturate else "maps +-Inf to NaN")
        return f"keeps NaN and {inf}"

    def options(self) -> dict:
        return {} if self.saturate == (self.spec.bits == 8) else {"saturate": self.saturate}

    def describe(self) -> str:
        overflow = "saturating" if self.saturate else ("overflow to Inf" if self.spec.has_inf
                                                       else "overflow to NaN")
        return f"{self.spec.label}, max {self.spec.max:.6g}, subnormals, {overflow}"

    def _overflow(self) -> int:
        if self.saturate:
            return kernels.SATURATE
        return kernels.TO_INF if self.spec.has_inf else kernels.TO_NAN

    def _round(self, x, mode, seed):
        flat = x.reshape(-1)
        q = np.empty_like(flat)
        bad = np.zeros(-(-flat.size // kernels.CHUNK), np.uint8)
        kernels.scalar_float(flat, self.spec.man_bits, self.spec.emin, self.spec.max,
                             self._overflow(), mode, seed, q, bad)
        return q.reshape(x.shape), None, bad

    def _pack(self, q, side):
        sign, code = self.spec.pack(q)
        return sign, code, None, None

    def _unpack(self, sign, code, shared_exp, scale):
        return self.spec.unpack(sign, code)
