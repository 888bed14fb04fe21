"""Co-simulation: one GEMM on the generated array in Verilator, against ``hbfpsim.mac.matmul``
(every output bit) and ``hbfpsim.array.simulate`` with ideal memory (every fold's cycles
and the total).

Operands are seeded random matrices whose magnitudes vary by 2^12 across blocks (so that
block exponents, alignment and rounding all vary), or the caller's. Both sides read the
same quantized operands: the MAC engine's integers and LSB exponents
(``mac.operands.prepare``) are what the testbench streams into the array.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from hbfpsim.array import simulate
from hbfpsim.array.mapping import Mapping, plan_for
from hbfpsim.config import ArrayConfig
from hbfpsim.mac import FloatAccumulator, matmul
from hbfpsim.mac.engine import STAT_NAMES
from hbfpsim.mac.operands import prepare
from hbfpsim.numerics import Numerics
from hbfpsim.rtl import harness
from hbfpsim.rtl.array import RTLError, Spec, spec_for

MAX_SIDE = 64                 # array rows or columns the harness builds
MAX_ELEMENTS = 2**22          # M K + K N + M N


@dataclass(frozen=True)
class Result:
    """Both sides of one co-simulated GEMM. Outputs are float64 values of the output
    layout; cycles are array clock cycles."""

    spec: Spec
    m: int
    n: int
    k: int
    plan: str
    rtl_out: np.ndarray
    model_out: np.ndarray
    rtl_fold_cycles: np.ndarray
    model_fold_cycles: np.ndarray
    rtl_total: int
    model_total: int
    rtl_stats: tuple[tuple[int, ...], ...]     # per plan level: STAT_NAMES' counts
    model_stats: tuple[tuple[int, ...], ...]
    build_seconds: float
    built: bool
    run_seconds: float

    @property
    def differing_outputs(self) -> int:
        """Outputs whose bits differ (NaN equals NaN; +0 and -0 differ)."""
        same = (self.rtl_out == self.model_out) & (np.signbit(self.rtl_out)
                                                  == np.signbit(self.model_out))
        return int((~(same | (np.isnan(self.rtl_out) & np.isnan(self.model_out)))).sum())

    @property
    def differing_folds(self) -> int:
        return int((self.rtl_fold_cycles != self.model_fold_cycles).sum())

    @property
    def differing_stats(self) -> int:
        """Counts (per level and statistic) that differ."""
        return sum(x != y for rl, ml in zip(self.rtl_stats, self.model_stats)
                   for x, y in zip(rl, ml))

    @property
    def equal(self) -> bool:
        return (self.differing_outputs == 0 and self.differing_folds == 0
                and self.rtl_total == self.model_total and self.differing_stats == 0)


def operands(m: int, n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded A (M x K) and B (K x N), float32, magnitudes spread by 2^12 across blocks of 8
    along K and across rows and columns."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)) * np.exp2(rng.integers(-6, 6, (m, -(-k // 8))).repeat(
        8, axis=1)[:, :k])
    b = rng.standard_normal((k, n)) * np.exp2(rng.integers(-6, 6, (-(-k // 8), n)).repeat(
        8, axis=0)[:k])
    return a.astype(np.float32), b.astype(np.float32)


def decode(bits: np.ndarray, acc: FloatAccumulator) -> np.ndarray:
    """Values (float64) of ``acc``-layout bit patterns."""
    e_bits, m_bits = acc.exp_bits, acc.man_bits
    b = bits.astype(np.uint64)
    sign = np.where((b >> np.uint64(e_bits + m_bits)) & np.uint64(1), -1.0, 1.0)
    field = ((b >> np.uint64(m_bits)) & np.uint64((1 << e_bits) - 1)).astype(np.int64)
    frac = (b & np.uint64((1 << m_bits) - 1)).astype(np.float64)
    bias = 2 ** (e_bits - 1) - 1
    normal = np.ldexp(frac + 2.0**m_bits, field - bias - m_bits)
    value = np.where(field == 0, np.ldexp(frac, 1 - bias - m_bits), normal)
    top = field == (1 << e_bits) - 1
    value = np.where(top, np.where(frac == 0, np.inf, np.nan), value)
    return sign * value


def ideal(config: ArrayConfig) -> ArrayConfig:
    """``config`` with ideal memory: no SRAM bandwidth limit, infinite DRAM bandwidth, no
    latency."""
    return dataclasses.replace(config, sram_bytes_per_cycle=0.0, dram_bytes_per_cycle=math.inf,
                               dram_latency_cycles=0)


def cosim(config: ArrayConfig, m: int, n: int, k: int, *, numerics: Numerics | None = None,
          seed: int = 0, a: np.ndarray | None = None, b: np.ndarray | None = None) -> Result:
    """Run C[M, N] = A[M, K] B[K, N] on ``config``'s generated array and on the models."""
    numerics = Numerics.of(config) if numerics is None else numerics
    spec = spec_for(config, numerics)
    if max(spec.rows, spec.cols) > MAX_SIDE:
        raise RTLError(f"{config.name}: co-simulation builds arrays up to {MAX_SIDE} x "
                       f"{MAX_SIDE}; this one is {spec.rows} x {spec.cols}")
    mapping = Mapping.of(m, n, k, config)       # checks M, N, K
    if m * k + k * n + m * n > MAX_ELEMENTS:
        raise RTLError(f"GEMM {m} x {n} x {k}: co-simulation takes at most {MAX_ELEMENTS:,} "
                       "operand and output elements")
    if a is None or b is None:
        a, b = operands(m, n, k, seed)
    plan = plan_for(mapping, numerics)
    model = matmul(a, b, numerics.input, numerics.weight, plan=plan)
    report = simulate(ideal(config), m, n, k, numerics=numerics, events=True)
    op_a, op_b = (_operand(spec, x, fmt, axis) for x, fmt, axis in
                  ((a, numerics.input, 1), (b, numerics.weight, 0)))
    built = harness.build(spec)
    start = time.perf_counter()
    if spec.dataflow == "os":
        run = harness.run(built.exe, [mapping.folds, k], _os_data(spec, op_a, op_b))
    else:
        run = harness.run(built.exe, [mapping.folds, mapping.spatial[2], k],
                          _stationary_data(spec, op_a, op_b))
    seconds = time.perf_counter() - start
    bits = np.zeros((m, n), np.uint64)
    for row in run.rows:
        i, j = _position(spec, mapping, row)
        if i < m and j < n:
            bits[i, j] = row[3]
    return Result(spec, m, n, k, str(plan), decode(bits, spec.out),
                  np.asarray(model.out, np.float64), run.fold_cycles,
                  report.events.end - report.events.start, int(run.done[-1] - run.first[0] + 1),
                  report.total_cycles, _rtl_stats(run.stats, len(plan.levels)),
                  tuple(tuple(int(np.sum(getattr(level, name))) for name in STAT_NAMES)
                        for level in model.stats.levels),
                  built.seconds, built.built, seconds)


def _rtl_stats(counts: tuple[int, ...], levels: int) -> tuple[tuple[int, ...], ...]:
    """The testbench's counts as the plan's levels' STAT_NAMES (inexact, partial swamps, full
    swamps, overflows, inexact conversions): the block level counts overflows only; the
    chain (in three-level plans) and the output level all five."""
    block, (conv, over, inexact, partial, full), out = counts[0], counts[1:6], counts[6:]
    rows = [(0, 0, 0, block, 0)]
    if levels == 3:
        rows.append((inexact, partial, full, over, conv))
    o_conv, o_over, o_inexact, o_partial, o_full = out
    rows.append((o_inexact, o_partial, o_full, o_over, o_conv))
    return tuple(rows)


def _position(spec: Spec, mapping: Mapping, row) -> tuple[int, int]:
    """(i, j) of a testbench result line: OS (fold, r, c, ...), WS and IS (column fold,
    column, stream index, ...)."""
    R, C = spec.rows, spec.cols
    if spec.dataflow == "os":
        fold, r, c = row[:3]
        fr, fc = fold % mapping.row_folds, fold // mapping.row_folds
        return fr * R + r, fc * C + c
    fc, c, s = row[:3]
    return (s, fc * C + c) if spec.dataflow == "ws" else (fc * C + c, s)


def _folds(spec: Spec, m: int, n: int) -> list[tuple[int, int]]:
    """(row fold, column fold) in the array model's order: column folds outer."""
    rows, cols = -(-m // spec.rows), -(-n // spec.cols)
    return [(fr, fc) for fc in range(cols) for fr in range(rows)]


@dataclass(frozen=True)
class _Operand:
    """What the testbench streams of one operand: per element an integer (the mantissa, or an
    MX float element's sign and code bits) and its block's LSB exponent."""

    integers: np.ndarray
    lsb: np.ndarray


def _operand(spec: Spec, x: np.ndarray, fmt, axis: int) -> _Operand:
    """``x`` quantized by the MAC engine (``prepare``): its integers and LSB exponents; for
    MX float elements, their codes (sign above the exponent and fraction fields)."""
    op = prepare(x, fmt, axis)
    ints = op.integers.astype(np.int64)
    if spec.element is not None:
        enc = fmt.encode(x, axis=axis)
        ints = (enc.sign.astype(np.int64) << sum(spec.element)) | enc.code.astype(np.int64)
    return _Operand(ints, op.lsb_per_element())


def _padded(op: _Operand, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """An operand's integers and per-element LSB exponents (as its own rows x columns),
    zero-padded to ``rows`` x ``cols``."""
    ints, lsb = op.integers, op.lsb
    out = np.zeros((2, rows, cols), np.int64)
    out[0, :ints.shape[0], :ints.shape[1]] = ints
    out[1, :ints.shape[0], :ints.shape[1]] = lsb
    return out[0], out[1]


def _os_data(spec: Spec, op_a, op_b) -> np.ndarray:
    """Per OS fold and k: A's R mantissas and LSB exponents, then B's C and C."""
    R, C = spec.rows, spec.cols
    (m, k), n = op_a.integers.shape, op_b.integers.shape[1]
    ia, qa = _padded(op_a, -(-m // R) * R, k)
    ib, qb = _padded(op_b, k, -(-n // C) * C)
    return np.stack([np.concatenate([ia[fr * R:(fr + 1) * R].T, qa[fr * R:(fr + 1) * R].T,
                                     ib[:, fc * C:(fc + 1) * C], qb[:, fc * C:(fc + 1) * C]],
                                    axis=1)
                     for fr, fc in _folds(spec, m, n)])


def _stationary_data(spec: Spec, op_a, op_b) -> np.ndarray:
    """Per WS / IS fold: its first K index and column fold, the stationary tile (R x C
    mantissas, then LSB exponents; WS: B[k, n], IS: A[m, k] transposed to [k, m]) and the
    stream (T x R, then LSB exponents; WS: A[m, k], IS: B[k, n] transposed to [n, k])."""
    R, C = spec.rows, spec.cols
    (m, k), n = op_a.integers.shape, op_b.integers.shape[1]
    kp = -(-k // R) * R
    ia, qa = _padded(op_a, m, kp)
    ib, qb = _padded(op_b, kp, n)
    if spec.dataflow == "ws":     # stationary B (K x N), stream A's rows
        st, qst, xs, qxs = ib, qb, ia, qa
    else:                         # stationary A^T (K x M), stream B's columns
        st, qst, xs, qxs = ia.T, qa.T, ib.T, qb.T
    sc = st.shape[1]
    st = np.pad(st, ((0, 0), (0, -(-sc // C) * C - sc)))
    qst = np.pad(qst, ((0, 0), (0, -(-sc // C) * C - sc)))
    folds = [(fr, fc) for fc in range(-(-sc // C)) for fr in range(kp // R)]
    return np.stack([np.concatenate([
        [fr * R, fc], st[fr * R:(fr + 1) * R, fc * C:(fc + 1) * C].ravel(),
        qst[fr * R:(fr + 1) * R, fc * C:(fc + 1) * C].ravel(),
        np.concatenate([xs[:, fr * R:(fr + 1) * R], qxs[:, fr * R:(fr + 1) * R]], axis=1).ravel()])
        for fr, fc in folds])
