"""``matmul``: a GEMM computed as the MAC hardware computes it, with statistics.

The operands are quantized along K (A per row, B per column), every product is exact, and
every dot product runs through the accumulation plan. Fixed-point levels that provably cannot
overflow (chunk length x largest |integer operand| of A x that of B fits the register and
2^53) are summed exactly by BLAS in float64 instead of one product at a time; the result and
the statistics are bit-identical to the sequential kernel, and the statistics say which
levels took that fast path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numba
import numpy as np

from hbfpsim import formats
from hbfpsim.mac import kernels
from hbfpsim.mac.accumulators import Accumulator, FixedAccumulator, FloatAccumulator
from hbfpsim.formats.base import (ArgumentTypeError, as_float_array, check_rounding_type,
                                  check_seed_type, type_name)
from hbfpsim.formats.rounding import Rounding
from hbfpsim.formats.threads import PARALLEL_MACS, one_blas_thread, threads_for
from hbfpsim.mac.operands import Operand, element_int_max, prepare
from hbfpsim.mac.operands import _operand as make_operand
from hbfpsim.mac.plan import AccumulationPlan, as_plan, default_plan
from hbfpsim.mac.copies import by_chunk, transposed
from hbfpsim.validate import is_integer

STAT_NAMES = ("inexact", "partial_swamps", "full_swamps", "overflows", "inexact_conversions")


@dataclass(frozen=True)
class LevelStats:
    """What happened at one level. Counts are totals over all outputs, or (M, N) arrays per
    output element. ``inputs`` is per output element: additions into this level per dot
    product. ``inexact``: additions that rounded; ``full_swamps``: nonzero addends that left
    the register unchanged; ``partial_swamps``: inexact additions whose addend was not larger
    than the register and changed it; ``overflows``: saturations, wraps or results beyond the
    float range; ``inexact_conversions``: inputs from the level below that rounded on entry
    (for level 1 with fused=False: products rounded to the level's format)."""

    accumulator: Accumulator
    length: int | None
    inputs: int
    fast_path: bool
    inexact: Any
    partial_swamps: Any
    full_swamps: Any
    overflows: Any
    inexact_conversions: Any


@dataclass(frozen=True)
class MatmulStats:
    """Per level of the plan, what happened (``LevelStats``); ``operand_overflows``: elements
    of A and of B that quantization overflowed (finite input beyond the largest value of a
    non-saturating scalar format, fp32, bf16, fp16 or FP8 with ``saturate=False``: +-Inf,
    NaN in fp8_e4m3). Such elements then combine as IEEE says (Inf, or NaN for Inf - Inf
    and Inf x 0), and the levels count nothing for them."""

    plan: AccumulationPlan
    shape: tuple[int, int, int]   # M, N, K
    levels: tuple[LevelStats, ...]
    operand_overflows: tuple[int, int] = (0, 0)   # A, B

    def summary(self) -> str:
        """A table, one row per level (totals)."""
        head = ("level", "accumulator", "chunk", "adds/output", "path") + STAT_NAMES
        rows = [head]
        for i, lv in enumerate(self.levels, 1):
            counts = [int(np.sum(getattr(lv, name))) for name in STAT_NAMES]
            rows.append((str(i), str(lv.accumulator), str(lv.length or "all"), str(lv.inputs),
                         "BLAS" if lv.fast_path else "sequential", *map(str, counts)))
        widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
        table = "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows)
        if not any(self.operand_overflows):
            return table
        a, b = self.operand_overflows
        return f"{table}\noperand overflows (quantized to Inf or NaN): A {a}, B {b}"


class MatmulResult(NamedTuple):
    out: np.ndarray       # (M, N) float64
    stats: MatmulStats


def matmul(A: Any, B: Any, fmt_a: str | formats.Format, fmt_b: str | formats.Format | None = None,
           plan: str | AccumulationPlan | list = "default", *, seed: int | None = None,
           operand_rounding: str | Rounding = "even", stats: str = "total",
           fast_path: bool = True) -> MatmulResult:
    """C = A @ B with A (M x K) in ``fmt_a`` and B (K x N) in ``fmt_b`` (default: fmt_a),
    accumulated as ``plan`` says.

    ``plan``: an AccumulationPlan, its text form (``"fixed16*64 > fp32"``), a list of
    (length, accumulator) pairs, or ``"default"`` (the default): the hardware of the
    formats' family, ``default_plan(fmt_a, fmt_b)``. HBFP and MX with the same block length
    B on both sides: ``fixed{w}*B > fp32``, exact integer block sums in the narrowest
    register that cannot overflow, then FP32 across blocks (HBFP4@64: ``fixed13*64 >
    fp32``); INT8 x INT8: ``fixed32``; anything else: ``fp32``, sequential FP32
    accumulation. ``seed`` drives stochastic rounding, of the operands
    (``operand_rounding="stochastic"``) and of stochastic accumulators. ``stats``: "total"
    (counts summed over outputs) or "element" ((M, N) arrays). ``fast_path=False`` forces the
    sequential kernel. Returns ``(out, stats)``: out is float64 (INT8 scales applied last).

    An argument of the wrong type is an ``ArgumentTypeError`` (a TypeError saying what it
    must be), a wrong value a ValueError. NaN or Inf input is refused (by the formats).
    Finite input beyond the largest value of a non-saturating scalar format (fp32, bf16,
    fp16, FP8 with ``saturate=False``) overflows to +-Inf, as IEEE says: such elements are
    counted in ``stats.operand_overflows`` (A, B) and combine as IEEE says in float
    accumulators; a fixed-point plan refuses them (an integer register holds no Inf).
    """
    a, b = _matrix(A, "A"), _matrix(B, "B")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"A is {a.shape[0]} x {a.shape[1]} and B is {b.shape[0]} x "
                         f"{b.shape[1]}: their inner dimensions (K) differ")
    fa = _format(fmt_a, "fmt_a")
    fb = fa if fmt_b is None else _format(fmt_b, "fmt_b")
    plan = default_plan(fa, fb) if isinstance(plan, str) and plan == "default" else as_plan(plan)
    if not isinstance(stats, str):
        raise ArgumentTypeError(f"stats must be a string, 'total' or 'element', got "
                                f"{type_name(stats)}")
    if stats not in ("total", "element"):
        raise ValueError(f"stats={stats!r} is not one of 'total', 'element'")
    if not isinstance(fast_path, (bool, np.bool_)):
        raise ArgumentTypeError(f"fast_path must be True or False, got {type_name(fast_path)}")
    operand_rounding = Rounding.parse(check_rounding_type(operand_rounding, "operand_rounding"),
                                      "operand_rounding")
    check_seed_type(seed, "seed")
    if seed is not None and not is_integer(seed, 0, 2**63 - 1):
        raise ValueError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    needs_seed = operand_rounding == Rounding.STOCHASTIC or any(
        isinstance(lv.accumulator, FloatAccumulator)
        and lv.accumulator.rounding == Rounding.STOCHASTIC for lv in plan.levels)
    if needs_seed and seed is None:
        raise ValueError("stochastic rounding needs seed=<int in [0, 2^63)>: the same seed "
                         "gives the same bits")
    seed_a, seed_b, seed_acc = derive_seeds(seed or 0)
    op_a = _operand(a, fa, 1, operand_rounding, seed_a)
    op_b = _operand(b, fb, 0, operand_rounding, seed_b)
    overflows = operand_overflows(op_a), operand_overflows(op_b)
    _check_fixed_levels(plan, op_a, op_b, overflows)
    out, counts = _run(op_a, op_b, plan, seed_acc, stats == "element", fast_path,
                       any(overflows))
    return MatmulResult(out, replace(counts, operand_overflows=overflows))


def derive_seeds(seed: int) -> tuple[int, int, int]:
    """The stream seeds one user seed gives: (operand A, operand B, accumulators), each in
    [0, 2^63), from numpy's SeedSequence."""
    state = np.random.SeedSequence(int(seed)).generate_state(3, np.uint64) >> np.uint64(1)
    return int(state[0]), int(state[1]), int(state[2])


def _matrix(x: Any, name: str) -> np.ndarray:
    a = as_float_array(x, name)     # the formats' input rule: real numbers, else a TypeError
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    return a


def _format(fmt: Any, name: str) -> formats.Format:
    if not isinstance(fmt, (str, formats.Format)):
        raise ArgumentTypeError(f"{name} must be a format name or a Format, got "
                                f"{type_name(fmt)}")
    return formats.resolve(fmt)


def _operand(x: np.ndarray, fmt: formats.Format, axis: int, rounding: Rounding, seed: int
             ) -> Operand:
    """Operand A (``axis`` 1) or B (``axis`` 0) quantized with ``rounding``."""
    if rounding == Rounding.RNE:
        return prepare(x, fmt, axis)
    q = np.asarray(fmt.quantize(x, axis=axis, rounding=rounding, seed=seed), np.float64)
    if fmt.family == "fp":      # its values may hold Inf (overflow), which prepare refuses
        return _fp_operand(q, fmt, axis)
    return prepare(q, fmt, axis)     # q is on the grid: even rounding keeps it


def _fp_operand(values: np.ndarray, fmt: formats.Format, axis: int) -> Operand:
    """The operand of scalar-float values already on ``fmt``'s grid (``prepare``'s layout:
    integers in units of the format's smallest subnormal; B worked on as B^T)."""
    if axis == 0:
        op = _fp_operand(transposed(values), fmt, 1)
        return Operand(fmt, 0, op.integers.T, np.ascontiguousarray(op.lsb_exp.T), op.block,
                       None, op.int_max, op.decoded)
    values = np.ascontiguousarray(values, np.float64)
    lsb = fmt.spec.emin - fmt.spec.man_bits
    return make_operand(fmt, 1, values * 2.0**-lsb, lsb, max(values.shape[1], 1), None,
                        element_int_max(fmt), values)


def operand_overflows(op: Operand) -> int:
    """Elements of ``op`` that quantization overflowed: finite input beyond the largest
    value of a non-saturating scalar format (fp32, bf16, fp16, FP8 with ``saturate=False``),
    which becomes +-Inf (NaN in fp8_e4m3, which has no Inf). Other formats saturate (or,
    INT8, refuse) and give none; NaN or Inf input never gets here (the formats refuse it)."""
    if op.format.family != "fp" or op.format.saturate:
        return 0
    values = op.decoded if op.decoded is not None else op.values   # A, or B^T: contiguous
    finite = np.isfinite(values)
    return 0 if finite.all() else int(finite.size - np.count_nonzero(finite))


def _check_fixed_levels(plan: AccumulationPlan, a: Operand, b: Operand,
                        overflows: tuple[int, int]) -> None:
    k = a.integers.shape[1]
    spans = plan.spans(k)
    for i, (level, span) in enumerate(zip(plan.levels, spans), 1):
        if level.accumulator.kind != "fixed":
            continue
        for name, op, count in (("A", a, overflows[0]), ("B", b, overflows[1])):
            if count:
                raise ValueError(
                    f"plan {plan}: level {i} is fixed point, but {count} element(s) of {name} "
                    f"lie beyond {op.format.name}'s largest value ({op.format.spec.max:.9g}) "
                    "and overflowed to Inf or NaN, which an integer register cannot hold (use "
                    f"a float accumulator, or formats.get({op.format.name!r}, saturate=True))")
        for op in (a, b):
            if not (k <= op.block or (span < k and op.block % span == 0)):
                raise ValueError(
                    f"plan {plan}: level {i} ({level.accumulator}) sums chunks of {span} "
                    f"products, which straddle the {op.block}-element blocks of "
                    f"{op.format.name}; a fixed-point sum needs one shared exponent, so the "
                    "chunk must divide the block")
        bound = a.int_max * b.int_max
        if bound >= 2.0**53:
            raise ValueError(
                f"plan {plan}: level {i} is fixed point, but {a.format.name} x "
                f"{b.format.name} products reach 2^{np.log2(bound):.0f} LSBs; fixed-point "
                "accumulation needs integer products below 2^53 (use a float accumulator)")


def _level_table(plan: AccumulationPlan, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    inputs = plan.inputs(k)
    table = np.zeros((len(plan.levels), kernels.NCOLUMNS), np.int64)
    maxval = np.zeros(len(plan.levels))
    offset = 0
    for i, level in enumerate(plan.levels):
        acc, row = level.accumulator, table[i]
        row[kernels.LENGTH] = level.length or k + 1
        row[kernels.OFFSET] = offset
        offset += inputs[i]
        if isinstance(acc, FixedAccumulator):
            row[kernels.KIND] = kernels.FIXED
            row[[kernels.WIDTH, kernels.WRAP, kernels.HI, kernels.LO]] = (
                acc.width, acc.wrap, acc.max, acc.min)
        else:
            row[kernels.KIND] = kernels.FLOAT
            row[[kernels.MAN, kernels.EMIN, kernels.MODE, kernels.FTZ, kernels.SAT]] = (
                acc.man_bits, acc.emin, int(acc.rounding), not acc.subnormals, acc.saturate)
            row[kernels.EXACT_IN] = i > 0 and _holds(acc, plan.levels[i - 1].accumulator)
            maxval[i] = acc.max
    return table, maxval, 2 * offset


def _holds(acc: FloatAccumulator, below: Accumulator) -> bool:
    """Whether every value level ``below`` can pass up has no more significant bits than
    ``acc`` holds (its range is still checked, value by value): a w-bit register's integers
    (magnitude <= 2^(w-1)) when w <= M + 2, a float's when its fraction is no wider."""
    if isinstance(below, FixedAccumulator):
        return below.width <= acc.man_bits + 2
    return below.man_bits <= acc.man_bits


def _safe_fixed_prefix(plan: AccumulationPlan, a: Operand, b: Operand) -> int:
    """How many leading fixed levels provably never overflow on this data (and stay exact
    in float64 BLAS): chunk span x max|int A| x max|int B| <= register max and < 2^53."""
    k = a.integers.shape[1]
    safe = 0
    for level, span in zip(plan.levels, plan.spans(k)):
        acc = level.accumulator
        if not isinstance(acc, FixedAccumulator):
            break
        limit = min(acc.max, 2.0**53 - 1)
        if span * product_peak(a, b, limit / span) > limit:
            break
        safe += 1
    return safe


def product_peak(a: Operand, b: Operand, limit: float) -> float:
    """The largest |integer product| of ``a`` and ``b`` (LSB units) on this data, or the
    formats' bound on it (``int_max`` x ``int_max``) when that is at most ``limit``: the
    data's is then too, and no pass over the operands is needed. Only for operands without
    overflowed (Inf) elements, which no fixed-point plan accepts."""
    bound = a.int_max * b.int_max
    return bound if bound <= limit else a.int_peak * b.int_peak


def _run(a: Operand, b: Operand, plan: AccumulationPlan, seed: int, per_element: bool,
         fast_path: bool, overflowed: bool = False) -> MatmulResult:
    m, k = a.integers.shape
    n = b.integers.shape[1]
    nlev = len(plan.levels)
    table, maxval, stride = _level_table(plan, k)
    row_stats = np.zeros((m, nlev, kernels.NSTATS), np.int64)
    elem_stats = np.zeros((m if per_element else 0, nlev, kernels.NSTATS, n), np.int64)
    safe = _safe_fixed_prefix(plan, a, b) if fast_path and k > 0 else 0
    # work items (tiles, bands) go to whichever thread is free: on a shared machine one
    # core often runs late, and an even split waits for it
    with threads_for(m * n * k, PARALLEL_MACS), numba.parallel_chunksize(1):
        if k == 0 or m * n == 0:                 # an empty sum is 0; no outputs, no work
            out = np.zeros((m, n))
        elif safe:
            out = _fast(a, b, plan, safe - 1, table, maxval, seed, stride, row_stats,
                        elem_stats)
        else:
            out = np.empty((m, n))
            passes, totals = kernels.carries(table, 0, k)
            fixed = isinstance(plan.levels[0].accumulator, FixedAccumulator)
            operands = ((a.contiguous_integers, b.contiguous_integers) if fixed
                        else (a.values, b.values))
            kernels.gemm_sequential(*operands,
                                    a.lsb_exp, b.lsb_exp, a.block, b.block, table, maxval,
                                    plan.fused, not overflowed and _exact_in_float64(plan, a, b),
                                    seed, stride,
                                    passes, totals, out, row_stats, elem_stats)
    if a.scale is not None or b.scale is not None:
        out = out * _scale(a, m)[:, None] * _scale(b, n)[None, :]
    return MatmulResult(out, _stats(plan, (m, n, k), safe, row_stats, elem_stats, per_element))


def _exact_in_float64(plan: AccumulationPlan, a: Operand, b: Operand) -> bool:
    """Whether every level-1 addition (register + product) is exact in float64 on this data.
    Fixed point: the register (at most 2^51 in magnitude, width <= 52) plus a product of at
    most 2^52 LSBs. Float: register values are multiples of the format's smallest subnormal
    below 2^(emax+1), products multiples of 2^(min qa + min qb) below peak_a peak_b
    2^(max qa + max qb); their sum then spans at most 53 bits when the exponents allow."""
    first = plan.levels[0].accumulator
    peak = a.int_peak * b.int_peak
    if not math.isfinite(peak):
        return False
    if isinstance(first, FixedAccumulator):
        return first.width <= 52 and peak <= 2.0**52
    if not plan.fused or peak == 0.0:
        return False
    top = max(first.emax + 1, math.frexp(peak)[1] + int(a.lsb_exp.max()) + int(b.lsb_exp.max()))
    low = min(first.emin - first.man_bits, int(a.lsb_exp.min()) + int(b.lsb_exp.min()))
    return top + 1 - low <= 53


def _scale(op: Operand, size: int) -> np.ndarray:
    return np.ones(size) if op.scale is None else op.scale


BAND_BYTES = 2**22   # chunk sums of one band of rows (BLAS writes them, the cascade reads them)


def _fast(a, b, plan, level, table, maxval, seed, stride, row_stats, elem_stats) -> np.ndarray:
    """Levels 1..level+1 are exact integer sums: BLAS computes each of their chunks, in
    float32 when every partial sum stays below 2^24 (exact in any summation order), else in
    float64 (below 2^53, checked by the caller). ``gemm_fast`` calls it from every numba
    thread, a band of rows at a time, with BLAS on one thread per call: one thread pool
    (numba's, which waits for work spinning) instead of two that fight over the cores."""
    m, k = a.integers.shape
    n = b.integers.shape[1]
    span = plan.spans(k)[level]
    dtype = np.float32 if span * product_peak(a, b, 2.0**24 / span) < 2.0**24 else np.float64
    if level == len(plan.levels) - 1:  # the whole plan is exact: one product
        ia, ib = a.integers.astype(dtype), b.integers.astype(dtype)
        return np.ldexp((ia @ ib).astype(np.float64), a.lsb_exp[:, :1] + b.lsb_exp[:1, :])
    chunks = -(-k // span)
    passes, totals = kernels.carries(table, level + 1, chunks)
    row_bytes = n * np.dtype(dtype).itemsize
    per_batch = max(1, min(chunks, BAND_BYTES // row_bytes))
    rows = max(1, min(BAND_BYTES // (per_batch * row_bytes),
                      -(-m // (4 * numba.get_num_threads()))))   # a few bands per thread
    starts = np.arange(chunks) * span
    ib = np.empty((chunks * span, n), dtype)   # B as (chunks, span, N), zeros after K
    ib[k:] = 0
    transposed(b.integers.T, out=ib[:k])
    out = np.empty((m, n))
    qa = np.ascontiguousarray(a.lsb_exp[:, starts // a.block])
    qb = np.ascontiguousarray(b.lsb_exp[starts // b.block])
    # FP32 top level fed float32 chunk sums: float32 arithmetic (counts below 2^24 chunks)
    fp32 = bool(dtype == np.float32 and level == len(plan.levels) - 2 and chunks < 2**24
                and kernels.is_fp32(table, level + 1))
    with one_blas_thread():
        kernels.gemm_fast(by_chunk(a.integers, span, dtype),
                          ib.reshape(chunks, span, n), rows, per_batch, level, passes, totals,
                          qa, qb, fp32, table, maxval, seed, stride, out, row_stats,
                          elem_stats)
    return out


def _stats(plan, shape, safe, row_stats, elem_stats, per_element) -> MatmulStats:
    m, n, k = shape
    inputs = plan.inputs(k) if k else [0] * len(plan.levels)
    levels = []
    for i, level in enumerate(plan.levels):
        if per_element:
            counts = [np.ascontiguousarray(elem_stats[:, i, c, :]) for c in range(kernels.NSTATS)]
        else:
            counts = [int(row_stats[:, i, c].sum()) for c in range(kernels.NSTATS)]
        levels.append(LevelStats(level.accumulator, level.length, inputs[i], i < safe, *counts))
    return MatmulStats(plan, (m, n, k), tuple(levels))
