"""Bit-level float64 helpers and the counter-based random stream, inlined into the numba
kernels of the formats (``formats.kernels``) and of the MAC engine (``mac.arith``).

- ``float_bits`` / ``bits_float``: reinterpret a float64 as its IEEE bits (int64) and back,
  a register move with no libm call; ``floor_log2`` and ``pow2`` read and build the exponent
  field with them.
- ``draw53(seed, index)``: the 53-bit integer draw of stochastic rounding for event
  ``index`` of stream ``seed``: output ``index + 1`` of the SplitMix64 generator whose state
  starts at ``mix64(seed + golden)``, top 53 bits (Steele, Lea and Flood, "Fast splittable
  pseudorandom number generators", OOPSLA 2014). Counter-based: a draw depends on the seed
  and the event's index only, never on thread count or scheduling. ``uniform`` is the same
  draw scaled to [0, 1). Loops that draw for many events split it: ``stream_key(seed)``
  once, ``event_step(index)`` (or a sum of steps: the step is linear in the index, modulo
  2^64), then ``draw53_keyed``; that saves one of the three 64-bit multiplies per draw, which
  AVX2 has no instruction for.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_M53 = 1.0 / 9007199254740992.0


@intrinsic
def float_bits(typingctx, x):
    """The IEEE bits of a float64 as int64."""
    if x != types.float64:
        return None
    return types.int64(types.float64), lambda ctx, b, sig, args: b.bitcast(args[0], ir.IntType(64))


@intrinsic
def bits_float(typingctx, i):
    """The float64 whose IEEE bits are the int64 ``i``."""
    if i != types.int64:
        return None
    return types.float64(types.int64), lambda ctx, b, sig, args: b.bitcast(args[0], ir.DoubleType())


@njit(inline="always", cache=True)
def floor_log2(a):
    """floor(log2 a) for a normal float64 a > 0, read from the exponent field. Zero and
    float64 subnormals give -1023 (every caller clamps far above that); Inf gives 1024."""
    return ((float_bits(a) >> 52) & 0x7FF) - 1023


@njit(inline="always", cache=True)
def pow2(e):
    """2.0 ** e as float64, exactly, for integer e in [-1022, 1023]."""
    return bits_float(np.int64(e + 1023) << 52)


@njit(inline="always", cache=True)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(inline="always", cache=True)
def stream_key(seed):
    """The SplitMix64 key of stream ``seed`` (uint64)."""
    return _mix64(np.uint64(seed) + GOLDEN)


@njit(inline="always", cache=True)
def event_step(index):
    """The counter term of event ``index``, (index + 1) x golden modulo 2^64 (uint64)."""
    return (np.uint64(index) + np.uint64(1)) * GOLDEN


@njit(inline="always", cache=True)
def draw53_keyed(key, step):
    """``draw53`` from ``stream_key(seed)`` and ``event_step(index)``."""
    return np.int64(_mix64(key + step) >> np.uint64(11))


@njit(inline="always", cache=True)
def draw53(seed, index):
    """The 53-bit integer draw for event ``index`` of stream ``seed`` (module docstring)."""
    return draw53_keyed(stream_key(seed), event_step(index))


@njit(inline="always", cache=True)
def uniform(seed, index):
    """``draw53(seed, index) / 2^53``: uniform in [0, 1), a multiple of 2^-53."""
    return np.float64(draw53(seed, index)) * _TWO_POW_M53
