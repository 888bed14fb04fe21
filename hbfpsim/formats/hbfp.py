"""HBFP: hybrid block floating point (Drumond et al. 2018; Harma et al., Accuracy Booster).

``hbfp{m}@{B}``: blocks of B consecutive elements along the reduction axis share one 8-bit
exponent E; each element keeps a sign and an (m-1)-bit magnitude k, so
``value = (-1)^s k 2^(E - (m-1))`` with ``0 <= k <= 2^(m-1) - 1``: every block holds fixed-point
fractions of 2^E (HBFP4 = sign + 3 magnitude bits; HBFP4@64 stores 4 + 8/64 bits per element).

Default (hardware-natural) conversion: E = floor(log2 max|x|) + 1, the exponent field of the
block's largest element plus one, so that element's leading one is the top magnitude bit;
round half to even; a magnitude that rounds up to 2^(m-1) saturates to 2^(m-1) - 1. E is
stored in E8M0 form (bias 127) and clamped to [-127, 127]: blocks whose max is below 2^-128
use E = -127 (elements below 2^(-128-m) flush to zero), blocks at or above 2^127 use E = 127
and saturate. An all-zero block has E = -127.

``compat="hbfpemulator"`` reproduces the public HBFPEmulator ``_float_to_bfp`` bit for bit:
E = ceil(log2(max|x| + 1e-8)) evaluated in float32, values clamped to +-(2^E - step). A
block whose max is an exact power of two then saturates its max (1.0 -> 0.875 for HBFP4),
and blocks below about 1e-8 quantize on the grid of E = -26. The emulator works on float32
tensors, so float64 input is rounded to float32 first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hbfpsim.formats import kernels
from hbfpsim.formats.base import (ArgumentTypeError, Format, expand_blocks, scale_blocks,
                                  shared_exp_codes, sign_magnitude, type_name)

DEFAULT_BLOCK = 64
COMPAT_MODES = ("hbfpemulator",)
MANTISSA_RANGE = (2, 24)  # float32 holds every HBFP value exactly up to m = 24


MAX_BLOCK = 2**20      # elements per shared exponent: past any reduction a trace holds
_F32_LIMIT = (2 - 2.0**-24) * 2.0**127   # float64 values from here on round to float32 Inf


@dataclass(frozen=True)
class HBFPFormat(Format):
    mantissa_bits: int           # m, sign included
    block: int = DEFAULT_BLOCK   # elements per shared exponent, along the reduction axis
    compat: str | None = None
    family = "hbfp"
    scale_bits = 8
    nonfinite_rule = "gives a block holding NaN or Inf the NaN exponent code (all NaN)"

    @classmethod
    def create(cls, mantissa_bits: int, block: int, compat: Any = None) -> HBFPFormat:
        lo, hi = MANTISSA_RANGE
        if not lo <= mantissa_bits <= hi:
            raise ValueError(f"hbfp{mantissa_bits}: mantissa bits (sign included) must be "
                             f"in [{lo}, {hi}]")
        if not 1 <= block <= MAX_BLOCK:
            raise ValueError(f"hbfp{mantissa_bits}@{block}: block size must be in "
                             f"[1, {MAX_BLOCK}] elements")
        if compat is not None and not isinstance(compat, str):
            raise ArgumentTypeError(f"hbfp: option compat must be a string or None, got "
                                    f"{type_name(compat)}")
        if compat is not None and compat not in COMPAT_MODES:
            raise ValueError(f"hbfp: compat={compat!r} is not one of {COMPAT_MODES}")
        return cls(mantissa_bits, block, compat)

    @property
    def name(self) -> str:
        return f"hbfp{self.mantissa_bits}@{self.block}"

    @property
    def element_bits(self) -> int:
        return self.mantissa_bits

    @property
    def frac_bits(self) -> int:
        """Magnitude bits m - 1: the LSB weighs 2^(E - frac_bits)."""
        return self.mantissa_bits - 1

    def options(self) -> dict:
        return {} if self.compat is None else {"compat": self.compat}

    def describe(self) -> str:
        rule = ("E = ceil(log2(max|x| + 1e-8)) in float32 (HBFPEmulator)" if self.compat
                else "E = floor(log2 max|x|) + 1")
        return f"sign + {self.frac_bits}-bit magnitude x 2^(E-{self.frac_bits}), {rule}"

    def _round(self, x, mode, seed):
        work = self._emulator_input(x) if self.compat else x
        rows, n = work.shape
        q = np.empty_like(work)
        exps = np.empty((rows, -(-n // self.block)), np.int16)
        bad = np.empty(exps.shape, np.uint8)
        # elements are fractions k 2^-frac_bits of 2^E: a fixed-point grid (emin 0), below 1
        kernels.block_scaled(work, self.block, self.frac_bits, 0, 1.0 - 2.0**-self.frac_bits, 1,
                             self.compat is not None, mode, seed, q, exps, bad)
        return q.astype(x.dtype, copy=False), (exps, bad), bad

    def _emulator_input(self, x: np.ndarray) -> np.ndarray:
        """float64 rows rounded to float32, as the emulator sees them: a finite value that
        float32 cannot hold (|x| >= (2 - 2^-24) 2^127, which rounds to Inf) is a
        ValueError naming ``x`` and the range, not an Inf the emulator would turn to NaN."""
        if x.dtype == np.float32:
            return x
        with np.errstate(over="ignore"):
            work = x.astype(np.float32)
        over = np.isinf(work) & np.isfinite(x)
        if over.any():
            raise self.beyond_float32(int(over.sum()), float(np.abs(x[over]).max()))
        return work

    def beyond_float32(self, count: int, largest: float) -> ValueError:
        """The refusal of ``count`` finite inputs beyond float32's range (the largest
        magnitude ``largest``) under ``compat``, which rounds its input to float32."""
        return ValueError(f"x: {self.name} with compat='hbfpemulator' rounds input to "
                          f"float32, as HBFPEmulator does, and {count} finite value(s) "
                          f"(largest |x| {largest:.9g}) lie beyond float32's range "
                          f"(|x| < {_F32_LIMIT:.9g})")

    def block_integers(self, x: Any, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """``quantize(x, axis)`` (round to nearest even; NaN and Inf refused) as signed
        element integers (float64, exact) and each block's LSB exponent E - frac_bits (int64,
        shape of ``x`` with ``axis`` shortened to one entry per block): element = integer x
        2^lsb. One pass from the rounded values, without the packed fields ``encode`` builds
        (the MAC engine's operands)."""
        layout, q, (exps, bad) = self._run(x, axis, "even", None, "raise")
        self._check_codable(exps, bad)
        lsb = exps.astype(np.int64) - self.frac_bits
        return layout.restore(scale_blocks(q, -lsb, self.block)), layout.restore(lsb)

    def _check_codable(self, exps, bad):
        if self.compat and exps[bad == 0].max(initial=-127) > 127:
            raise ValueError(f"{self.name} (compat): a block with max|x| >= 2^127 gets the "
                             "emulator exponent 128, which 8 bits cannot encode")

    def _pack(self, q, side):
        exps, bad = side
        self._check_codable(exps, bad)
        k = scale_blocks(q, self.frac_bits - exps, self.block, magnitude=True)
        sign = np.signbit(q)
        if bad.any():  # NaN blocks: fields zero, the exponent code says NaN
            nan = expand_blocks(bad, self.block, q.shape[1]).astype(bool)
            k[nan], sign[nan] = 0, False
        dtype = np.uint8 if self.frac_bits <= 8 else (np.uint16 if self.frac_bits <= 16 else np.uint32)
        return sign.astype(np.uint8), k.astype(dtype), shared_exp_codes(exps, bad), None

    def _unpack(self, sign, code, shared_exp, scale):
        exps = shared_exp.astype(np.int64) - 127 - self.frac_bits
        values = scale_blocks(sign_magnitude(sign, code), exps, self.block)
        return np.where(expand_blocks(shared_exp == 255, self.block, code.shape[1]), np.nan, values)
