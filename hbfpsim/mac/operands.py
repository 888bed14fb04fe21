"""GEMM operands as the MAC engine consumes them.

An operand quantized in some format is held as integer mantissas (float64, exact) plus, per
block along the reduction axis, the exponent ``q`` of their least significant bit: element =
integer x 2^q. A product of two elements is then an exact float64 (at most
24 + 24 significant bits, exponents far inside the float64 range) and also an integer
multiple of 2^(qa + qb), which is what a fixed-point accumulator counts in.

INT8 values are kept as their integer codes: the per-tensor or per-channel scales factor out
of every dot product and are applied to the accumulated result, as integer GEMM units do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hbfpsim.formats import Format
from hbfpsim.mac.copies import max_abs, transposed


@dataclass(frozen=True)
class Operand:
    """One side of a GEMM. ``axis`` is its reduction axis: 1 for A (M x K), 0 for B (K x N).
    ``values`` and ``contiguous_integers`` are C-ordered, as the numba kernels take them."""

    format: Format
    axis: int
    integers: np.ndarray      # float64: each element in units of its block's LSB (exact);
    #                           B's is a transposed view (BLAS takes it as it is)
    lsb_exp: np.ndarray       # int64 per block: A (M, nblocks), B (nblocks, N)
    block: int                # elements per block along K (all of K for scalar formats)
    scale: np.ndarray | None  # INT8: float64 per row of A / column of B, applied after
    int_max: float            # largest element magnitude the format allows, in LSB units
    decoded: np.ndarray | None = None  # the element values, float64, K contiguous per row
    #                                    (B: rows of B^T), where quantization gave them


    def lsb_per_element(self) -> np.ndarray:
        k = self.integers.shape[self.axis]
        return np.take(np.repeat(self.lsb_exp, self.block, axis=self.axis), np.arange(k),
                       axis=self.axis)

    @cached_property
    def values(self) -> np.ndarray:
        """The exact element values (INT8: the integer codes), float64."""
        if self.decoded is not None:
            return self.decoded if self.axis == 1 else transposed(self.decoded)
        return np.ascontiguousarray(np.ldexp(self.integers, self.lsb_per_element()))

    @cached_property
    def contiguous_integers(self) -> np.ndarray:
        return self.integers if self.axis == 1 else transposed(self.integers.T)

    @cached_property
    def int_peak(self) -> float:
        """Largest element magnitude in this data, in LSB units."""
        return max_abs(self.integers if self.axis == 1 else self.integers.T)


def element_int_max(fmt: Format) -> int:
    """The largest element magnitude ``fmt`` allows, in units of its LSB (an integer): the
    bound every integer mantissa of a ``prepare``d operand keeps. HBFP{m}: 2^(m-1) - 1;
    MXINT8 and INT8: 127; FP elements (MX or scalar, max (2 - 2^-M) 2^emax, LSB
    2^(emin - M)): max x 2^(M - emin), e.g. 12 for FP4 E2M1 (max 6, LSB 2^-1), 229376 for
    E4M3 (448 x 2^9)."""
    if fmt.family == "hbfp":
        return 2**fmt.frac_bits - 1
    if fmt.family == "fp":
        spec = fmt.spec
    elif fmt.family == "mx" and fmt.element is not None:
        spec = fmt.element
    else:                # INT8, MXINT8
        return 127
    return int(spec.max * 2.0 ** (spec.man_bits - spec.emin))


def prepare(x: np.ndarray, fmt: Format, axis: int) -> Operand:
    """Quantize ``x`` (A: axis=1, B: axis=0) and split it into integer mantissas, LSB
    exponents per block and (INT8) scales. B is worked on as B^T (K contiguous per row, the
    same blocks) and transposed once at the end."""
    if axis == 0:   # one contiguous copy first: quantizing a strided view is slower
        op = prepare(transposed(np.asarray(x)), fmt, 1)
        return Operand(fmt, 0, op.integers.T, np.ascontiguousarray(op.lsb_exp.T), op.block,
                       op.scale, op.int_max, op.decoded)
    if fmt.family == "hbfp":
        integers, lsb = fmt.block_integers(x, axis=axis)
        return _operand(fmt, axis, integers, lsb, fmt.block, None, element_int_max(fmt))
    k = max(x.shape[axis], 1)
    if fmt.family == "fp":   # one LSB exponent for every element: integers = values / 2^lsb
        lsb = fmt.spec.emin - fmt.spec.man_bits
        values = np.asarray(fmt.quantize(x, axis=axis), np.float64)
        return _operand(fmt, axis, values * 2.0**-lsb, lsb, k, None, element_int_max(fmt),
                        values)
    enc = fmt.encode(x, axis=axis)
    signed_code = ((1 - 2 * enc.sign.astype(np.int64)) * enc.code).astype(np.float64)
    if fmt.family == "int":
        return _operand(fmt, axis, signed_code, 0, k, enc.scale.astype(np.float64).reshape(-1),
                        element_int_max(fmt))
    shared = enc.shared_exp.astype(np.int64) - 127
    if fmt.element is None:  # MXINT8: k 2^(X - 6)
        return _operand(fmt, axis, signed_code, shared - 6, fmt.block, None,
                        element_int_max(fmt))
    offset = fmt.element.emin - fmt.element.man_bits
    integers = np.ldexp(fmt.element.unpack(enc.sign, enc.code), -offset)
    return _operand(fmt, axis, integers, shared + offset, fmt.block, None,
                    element_int_max(fmt))


def _operand(fmt, axis, integers, lsb, block, scale, int_max, decoded=None) -> Operand:
    int_max = float(int_max)
    if np.ndim(lsb) == 0:  # one block spanning K
        shape = (integers.shape[0], 1) if axis == 1 else (1, integers.shape[1])
        lsb = np.full(shape, lsb, np.int64)
    return Operand(fmt, axis, np.ascontiguousarray(integers, np.float64),
                   np.ascontiguousarray(lsb, np.int64), block, scale, int_max, decoded)
