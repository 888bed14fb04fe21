"""The training quantizers: ``quantize`` rounds a torch tensor to an hbfpsim format on the
device it lives on, bit-identical to ``hbfpsim.quantize`` on the same values and seed.

Two engines compute it. On a CPU tensor (engine ``auto``) it runs hbfpsim's numba kernels on
the tensor's own memory (``Tensor.numpy()`` shares it: no copy); on any other device, or
inside ``engine("torch")``, it runs ``quantize_torch``, the same arithmetic in PyTorch
operations. On a CPU the numba kernels are 4 to 30 times faster (``benchmarks/
bench_train.py`` times a training step with each).

The result is bit-identical to ``hbfpsim.quantize`` (``Format.quantize``, the numba kernels
of hbfpsim/formats/kernels.py) in every rounding mode, because it does the same arithmetic:
the input is widened to float64, scaled by exact powers of two built from IEEE exponent
fields, rounded once (``torch.round`` is round-half-to-even, like ``np.rint``), clipped,
signed and written in the input's dtype, as each kernel does element by element. Stochastic
rounding uses the kernels' counter-based SplitMix64 stream (formats/bits.py) evaluated in
wrapping int64 arithmetic: element ``(r, i)`` of the rows layout (the quantization axis moved
last, shape (R, n), C order) draws ``uniform(seed, r * n + i)``, so the same seed gives the
same bits on every device, whatever the tensor's memory layout. NaN results are written in
the output dtype (GPUs do not keep NaN bits through float64 arithmetic and casts).

Units: block exponents E are unbiased powers of two (an HBFP element is an integer times
2^(E - fraction bits)); INT8 scales are float32 values (max|x| / 127), as in
formats/integer.py. Work tensors take 8 bytes per element (float64, int64 draws).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from hbfpsim.formats import Format, kernels, resolve
from hbfpsim.formats.base import normalize_axis, rounding_mode
from hbfpsim.formats.floating import FloatFormat
from hbfpsim.formats.hbfp import HBFPFormat
from hbfpsim.formats.integer import KMAX, Int8Format
from hbfpsim.formats.mx import BLOCK as MX_BLOCK
from hbfpsim.formats.mx import INT_FRAC_BITS, INT_KMAX, MXFormat
from hbfpsim.formats.rounding import Rounding


def _int64(u: int) -> int:
    """The uint64 ``u`` as the int64 with the same bits."""
    return u - (1 << 64) if u >= 1 << 63 else u


_GOLDEN_U64 = 0x9E3779B97F4A7C15         # SplitMix64's increment
_GOLDEN = _int64(_GOLDEN_U64)
_MIX1, _MIX2 = _int64(0xBF58476D1CE4E5B9), _int64(0x94D049BB133111EB)


def _shr(z: torch.Tensor, k: int, out: torch.Tensor) -> torch.Tensor:
    """Logical right shift of int64 bits by ``k``, written to ``out``."""
    return torch.bitwise_right_shift(z, k, out=out).bitwise_and_((1 << (64 - k)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer, in place on int64 ``z`` (products wrap modulo 2^64)."""
    scratch = torch.empty_like(z)
    z ^= _shr(z, 30, scratch)
    z *= _MIX1
    z ^= _shr(z, 27, scratch)
    z *= _MIX2
    z ^= _shr(z, 31, scratch)
    return z


def _uniform(seed: int, index: torch.Tensor) -> torch.Tensor:
    """``formats.bits.uniform(seed, index)`` for every event in the int64 tensor ``index``:
    the top 53 bits of SplitMix64 output ``index + 1`` of stream ``seed``, over 2^53."""
    key = _mix64(torch.tensor(_int64((seed + _GOLDEN_U64) % 2**64), device=index.device))
    z = _mix64((index + 1).mul_(_GOLDEN).add_(key))
    return _shr(z, 11, z).double().mul_(2.0**-53)


def _pow2(e: torch.Tensor) -> torch.Tensor:
    """2^e (float64) for an int64 tensor e in [-1022, 1023], exactly, from its IEEE bits."""
    return ((e + 1023) << 52).view(torch.float64)


def _floor_log2(a: torch.Tensor) -> torch.Tensor:
    """floor(log2 a) from the exponent field of float64 a > 0 (as formats.bits.floor_log2:
    zero and subnormals give -1023, Inf and NaN 1024)."""
    return ((a.view(torch.int64) >> 52) & 0x7FF) - 1023


def _round_magnitude(a: torch.Tensor, mode: int, seed: int, index: torch.Tensor | None
                     ) -> torch.Tensor:
    """``kernels.round_magnitude``: ``a >= 0`` rounded to an integer (float64), in place."""
    if mode == Rounding.RNE:
        return a.round_()
    if mode == Rounding.RNA:
        return a.add_(0.5).floor_()
    if mode == Rounding.RTZ:
        return a.floor_()
    f = a.floor()
    return f.add_(_uniform(seed, index) < a.sub_(f))    # up when the draw < the fraction


def _round_minifloat(a: torch.Tensor, man_bits: int, emin: int, mode: int, seed: int,
                     index: torch.Tensor | None) -> torch.Tensor:
    """``kernels.round_minifloat``: ``a >= 0`` on the grid of step
    2^(max(floor(log2 a), emin) - man_bits), in place."""
    ulp = _floor_log2(a).clamp_(min=emin).sub_(man_bits)
    return _round_magnitude(a.mul_(_pow2(-ulp)), mode, seed, index).mul_(_pow2(ulp))


def _index(mode: int, rows: int, cols: int, n: int, device: torch.device) -> torch.Tensor | None:
    """The stochastic events' indices ``r * n + i`` over (rows, cols) for rows of length n;
    None in the other modes, which draw nothing."""
    if mode != Rounding.STOCHASTIC:
        return None
    return torch.arange(rows, device=device).unsqueeze(1) * n + torch.arange(cols, device=device)


def _block_grid(fmt: HBFPFormat | MXFormat) -> tuple[int, int, int, float, int]:
    """(block, fraction bits, emin, max element, exponent offset) as ``fmt._round`` hands
    them to ``kernels.block_scaled``."""
    if isinstance(fmt, HBFPFormat):   # fixed point k 2^-frac_bits below 1
        return fmt.block, fmt.frac_bits, 0, 1.0 - 2.0**-fmt.frac_bits, 1
    if fmt.element is None:           # MXINT8: fixed point k 2^-6 below 2
        return MX_BLOCK, INT_FRAC_BITS, 0, INT_KMAX * 2.0**-INT_FRAC_BITS, 0
    el = fmt.element
    return MX_BLOCK, el.man_bits, el.emin, el.max, -el.emax


def _block_scaled(rows: torch.Tensor, fmt: HBFPFormat | MXFormat, mode: int, seed: int
                  ) -> torch.Tensor:
    """``kernels.block_scaled`` on rows (R, n): one shared exponent per block of each row."""
    block, man_bits, emin, maxval, offset = _block_grid(fmt)
    compat = getattr(fmt, "compat", None) is not None
    work = torch.float32 if compat else rows.dtype  # the emulator rounds float32 tensors
    R, n = rows.shape
    nb = -(-n // block)
    v = rows.new_zeros(R, nb, block, dtype=torch.float64)     # rows padded with zeros
    v.view(R, nb * block)[:, :n] = rows.to(work)
    a = v.abs()
    amax = a.amax(dim=2, keepdim=True)                        # NaN where a NaN is
    if compat:   # ceil(log2(max|x| + 1e-8)), the sum and the log2 rounded to float32
        shifted = amax.float() + torch.tensor(1e-8, dtype=torch.float32, device=v.device)
        e = torch.ceil(torch.log2(shifted.double()).float()).long()
    else:
        e = (_floor_log2(amax) + offset).clamp(-127, 127)    # all zeros: -1023 -> -127
    clip = torch.where(e >= 128, math.inf, torch.full_like(amax, maxval)) if compat else maxval
    index = _index(mode, R, nb * block, n, v.device)
    if index is not None:
        index = index.view(R, nb, block)
    a.mul_(_pow2(-e))
    if maxval < 2.0 ** (emin + 1):   # a fixed-point grid (HBFP, MXINT8): one step below
        # 2^(emin + 1), as in round_minifloat; whatever lies above rounds to it and clips
        p = _round_magnitude(a.mul_(2.0 ** (man_bits - emin)), mode, seed, index)
        p.mul_(2.0 ** (emin - man_bits))
    else:
        p = _round_minifloat(a, man_bits, emin, mode, seed, index)
    q = p.clamp_(max=clip).mul_(_pow2(e)).copysign_(v).to(work).to(rows.dtype)
    q.masked_fill_(~amax.isfinite(), math.nan)           # a block holding NaN or Inf: NaN
    return q.view(R, nb * block)[:, :n]


def _scalar_float(rows: torch.Tensor, fmt: FloatFormat, mode: int, seed: int) -> torch.Tensor:
    """``kernels.scalar_float``: each element on the float grid, beyond max by the format's
    overflow rule (saturate, Inf, or NaN where there is no Inf); NaN stays as it is."""
    spec = fmt.spec
    v = rows.double()
    R, n = v.shape
    p = _round_minifloat(v.abs(), spec.man_bits, spec.emin, mode, seed,
                         _index(mode, R, n, n, v.device))
    over = p > spec.max                                      # False for NaN
    p = torch.where(over, spec.max if fmt.saturate else math.inf, p).to(rows.dtype)
    if not (fmt.saturate or spec.has_inf):                   # E4M3 overflows to NaN
        p = torch.where(over, math.nan, p)
    return torch.where(rows.isnan(), rows, torch.copysign(p, rows))   # NaN in: itself, bit for bit


def _int8(rows: torch.Tensor, fmt: Int8Format, mode: int, seed: int) -> torch.Tensor:
    """``Int8Format._round``: codes round(x / scale) clipped to +-127 with a float32 scale
    max|x| / 127 (toward zero) per tensor or per row; NaN and Inf count as 0."""
    v = torch.where(rows.isfinite(), rows, 0).double()
    amax = v.abs().amax(dim=1).float()
    if fmt.per == "tensor":
        amax = amax.amax().expand_as(amax)
    scale = amax / torch.full_like(amax, KMAX)  # a tensor divisor: CUDA divides exactly
    toward_zero = scale.double() * KMAX > amax.double()                # exact: 31 bits
    scale = torch.where(toward_zero, torch.nextafter(scale, torch.zeros_like(scale)), scale)
    s = torch.where(scale == 0, 1.0, scale).double().unsqueeze(1)
    R, n = v.shape
    m = _round_magnitude(v.abs() / s, mode, seed, _index(mode, R, n, n, v.device)).clamp(max=KMAX)
    k = torch.where(v < 0, -m, m).to(torch.int16)   # integer codes: no -0.0
    return (k * s).to(rows.dtype)


def quantize_torch(t: torch.Tensor, fmt: Format, axis: int = -1, mode: int = 0, seed: int = 0
                   ) -> torch.Tensor:
    """``t`` rounded to ``fmt`` along ``axis``: ``fmt.quantize(t, axis, rounding=mode,
    seed=seed, nonfinite="propagate")`` bit for bit, as a tensor of t's shape, dtype
    (float32 or float64) and device. ``mode`` is a :class:`Rounding` code, ``seed`` (in
    [0, 2^63)) keys the stochastic stream. Values are not checked: NaN and Inf come out as
    the kernels write them (INT8 takes them as 0), except that HBFP with ``compat`` refuses
    finite float64 values beyond float32's range, as ``fmt.quantize`` does. Non-saturating
    fp32 on float32 input, and an empty tensor, are returned as they are (``t`` itself)."""
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"quantize_torch takes float32 or float64 tensors, got {t.dtype}")
    if getattr(fmt, "compat", None) is not None and t.dtype == torch.float64:
        over = torch.isinf(t.float()) & torch.isfinite(t)
        if bool(over.any()):
            raise fmt.beyond_float32(int(over.sum()), float(t[over].abs().max()))
    if t.numel() == 0 or (isinstance(fmt, FloatFormat) and fmt.name == "fp32"
                          and not fmt.saturate and t.dtype == torch.float32):
        return t
    moved = (t.reshape(1) if t.dim() == 0 else t).movedim(axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    if isinstance(fmt, HBFPFormat | MXFormat):
        q = _block_scaled(rows, fmt, int(mode), seed)
    elif isinstance(fmt, FloatFormat):
        q = _scalar_float(rows, fmt, int(mode), seed)
    elif isinstance(fmt, Int8Format):
        q = _int8(rows, fmt, int(mode), seed)
    else:
        raise TypeError(f"quantize_torch has no rule for format {fmt!r}")
    return q.reshape(moved.shape).movedim(-1, axis).reshape(t.shape)


ENGINES = ("auto", "torch")
_engine = ["auto"]


@contextmanager
def engine(name: str) -> Iterator[None]:
    """Quantize with ``name`` inside the block: ``auto`` (numba kernels on CPU tensors,
    ``quantize_torch`` elsewhere) or ``torch`` (``quantize_torch`` everywhere)."""
    if name not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {name!r}")
    before, _engine[0] = _engine[0], name
    try:
        yield
    finally:
        _engine[0] = before


def round_tensor(t: torch.Tensor, fmt: Format, axis: int, mode: int = 0, seed: int = 0
                 ) -> torch.Tensor:
    """``t`` (float32) in ``fmt``, blocks along ``axis`` (-1 or -2), rounding ``mode`` (a
    Rounding code) with stream ``seed``; no checks (the entry of the emulated layers). FP32
    is returned as it is. A block format reads the tensor's memory where it lies
    (``_block_scaled_array``): C-contiguous rows with ``kernels.block_scaled``, columns of
    C-contiguous matrices (``weight.t()`` along -1, a contiguous tensor along -2) with
    ``kernels.block_scaled_columns``, the result in the input's own layout; other layouts are copied. Blocks along -2 in any other path are quantized as
    rows of the transpose and handed back as a transposed view (matmul takes it without a
    copy)."""
    grid = _kernel_grid(fmt)
    if grid is None and fmt.name == "fp32":
        return t
    x = t.detach()
    if grid is not None and x.is_cpu and _engine[0] == "auto" and x.dtype == torch.float32 \
            and x.numel():
        return torch.from_numpy(_block_scaled_array(x, grid, axis, mode, seed))
    along = x if axis == -1 else x.transpose(-1, -2)          # blocks along its last axis
    if not along.is_cpu or _engine[0] == "torch":
        q = quantize_torch(along, fmt, -1, mode, seed)
    else:
        a = along.contiguous().numpy()
        q = torch.from_numpy(fmt.quantize_rows(a.reshape(-1, a.shape[-1]), mode, seed
                                               ).reshape(a.shape))
    return q if axis == -1 else q.transpose(-1, -2)


def _block_scaled_array(x: torch.Tensor, grid: tuple, axis: int, mode: int, seed: int
                        ) -> np.ndarray:
    """The float32 CPU tensor ``x`` (not empty) rounded in blocks along ``axis`` (-1 or -2)
    by the numba kernels with ``_kernel_grid``'s ``grid``, read through numpy views of its
    memory (a numpy view or transpose costs a fraction of torch's): a new array of x's
    shape. Rows lying C-contiguous go to ``block_scaled``; rows that are the columns of
    C-contiguous (K, M) matrices (``_column_source``) to ``block_scaled_columns``, which
    writes the result in x's own layout; rows in any other layout are copied first (by
    torch, faster than numpy on strided views), and the result is C-contiguous along
    ``axis`` (for -2: the transposed view of a C-contiguous array)."""
    along = x.numpy() if axis == -1 else x.numpy().swapaxes(-1, -2)  # blocks along -1
    n = along.shape[-1]                                       # elements per row
    base = None if along.flags.c_contiguous else _column_source(along)
    if base is not None:                                      # (..., n, M), C-contiguous
        q = np.empty(base.shape, np.float32)
        shape = (-1, n, base.shape[-1])
        kernels.block_scaled_columns(base.reshape(shape), *grid, mode, seed, q.reshape(shape))
        return q.swapaxes(-1, -2) if axis == -1 else q
    if not along.flags.c_contiguous:
        along = (x if axis == -1 else x.transpose(-1, -2)).contiguous().numpy()
    q = np.empty(along.shape, np.float32)
    rows = along.reshape(-1, n)
    side = (rows.shape[0], -(-n // grid[0]))                  # per block: exponent, NaN flag
    kernels.block_scaled(rows, *grid, mode, seed, q.reshape(rows.shape),
                         np.empty(side, np.int16), np.empty(side, np.uint8))
    return q if axis == -1 else q.swapaxes(-1, -2)


def _column_source(along: np.ndarray) -> np.ndarray | None:
    """The C-contiguous (..., K, M) array whose transpose ``along`` (..., M, K) is (the rows
    of ``along`` are its columns, in order); None for any other layout."""
    if along.ndim < 2 or not along.swapaxes(-1, -2).flags.c_contiguous:
        return None
    return along.swapaxes(-1, -2)


_GRIDS: dict[int, tuple[Format, tuple | None]] = {}


def _kernel_grid(fmt: Format) -> tuple[int, int, int, float, int, bool] | None:
    """``kernels.block_scaled``'s format arguments for ``fmt`` (block, fraction bits, emin,
    max element, exponent offset, compat), as ``fmt.quantize_rows`` passes them on float32
    rows; None for a format that is not block scaled. Looked up by the format's identity:
    the emulated layers hand the same few Format objects every call, and the table keeps
    each one it has seen (so no id is reused while it is in the table)."""
    entry = _GRIDS.get(id(fmt))
    if entry is None or entry[0] is not fmt:
        grid = ((*_block_grid(fmt), getattr(fmt, "compat", None) is not None)
                if isinstance(fmt, HBFPFormat | MXFormat) else None)
        entry = _GRIDS[id(fmt)] = (fmt, grid)
    return entry[1]


def quantize(tensor: torch.Tensor, fmt: str | Format, axis: int = -1, rounding: Any = "even",
             seed: int | None = None) -> torch.Tensor:
    """``tensor`` (float32 or float64, any device) rounded to ``fmt`` (a name or a Format)
    along ``axis``, on its device and in its dtype: ``hbfpsim.quantize(tensor, fmt, axis,
    rounding, seed=seed, nonfinite="propagate")`` bit for bit. ``rounding``: even (= rne),
    away, rtz or stochastic (needs ``seed``: the same seed gives the same bits on every
    device). NaN and Inf are not refused: they follow the format's rule. No gradient flows
    through it (see ``emulate`` for training)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"quantize: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"quantize: expected a float32 or float64 tensor, got {tensor.dtype}")
    fmt = resolve(fmt)
    mode, seed = rounding_mode(rounding, seed)
    axis = normalize_axis(axis, max(tensor.dim(), 1))
    t = tensor.detach()
    if t.device.type != "cpu" or _engine[0] == "torch" or t.numel() == 0:
        return quantize_torch(t, fmt, axis, mode, seed)
    moved = (t.reshape(1) if t.dim() == 0 else t).movedim(axis, -1).contiguous()
    rows = moved.numpy().reshape(-1, moved.shape[-1])
    q = torch.from_numpy(fmt.quantize_rows(rows, mode, seed))
    return q.reshape(moved.shape).movedim(-1, axis).reshape(t.shape)
