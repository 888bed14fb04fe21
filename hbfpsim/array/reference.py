"""Cycle-stepped reference of a small systolic array: every PE, every cycle, register to
register, with its arithmetic done by the MAC engine's accumulators.

It checks two things the fast models assume: the cycle count of each fold (fill, stream and
drain found by moving data until the array is empty, not by formula), and which products
meet in which register in which order (so that the output equals ``hbfpsim.matmul`` with the
plan the mapping derives).

Hardware rules, per dataflow (R x C array, padded PEs pass data through untouched):

- WS: B's tile is loaded into the PEs (R cycles). A's rows enter at the left, skewed by row,
  and move one PE right per cycle; partial sums move one PE down per cycle. A PE multiplies
  what passes and adds into the partial sum. With a block accumulator the partial sum holds
  an integer register for the current block; PE rows ending a block convert it into the
  column's chain register. The column's result leaves at the bottom and is added into the
  output buffer, which holds the output across the K folds.
- IS: the same with A's tile stationary and B's columns streaming.
- OS: A's rows enter at the left and B's columns at the top, skewed; each PE accumulates its
  own output over all of K (block results converting into its register), then the result
  enters the output buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hbfpsim.array.mapping import Mapping, plan_for
from hbfpsim.config import ArrayConfig
from hbfpsim.mac import Accumulator, FixedAccumulator
from hbfpsim.mac.arith import fixed_add, float_add, int_to_pair, round_float, scale2
from hbfpsim.mac.engine import derive_seeds
from hbfpsim.mac.operands import prepare
from hbfpsim.numerics import Numerics

MAX_SIDE = 16


class Register:
    """One accumulator register (a level of the plan). Values are exact float64 (float
    accumulators) or int (fixed, in units of 2^lsb)."""

    def __init__(self, acc: Accumulator, level: int, events):
        self.acc = acc
        self.level = level
        self.events = events          # (element id, level, ordinal, kind) -> stochastic index
        self.reset()

    def reset(self):
        self.value = 0 if isinstance(self.acc, FixedAccumulator) else 0.0
        self.lsb = 0

    def add(self, x, element, ordinal, lsb=0):
        """Add an exact product (or an already converted input) with one rounding."""
        acc = self.acc
        if isinstance(acc, FixedAccumulator):
            self.value, _ = fixed_add(self.value, int(x), acc.width, acc.wrap, acc.max, acc.min)
            self.lsb = lsb
        else:
            self.value = float_add(self.value, x, acc.man_bits, acc.emin, acc.max,
                                   int(acc.rounding), not acc.subnormals, acc.saturate,
                                   self.events.seed, self.events.index(element, self.level,
                                                                       ordinal, 1))[0]

    def take(self, source: Register, element, ordinal):
        """Convert ``source``'s value into this register's format (one rounding), add it."""
        if isinstance(source.acc, FixedAccumulator):
            hi, lo = int_to_pair(source.value)
            hi, lo = scale2(hi, source.lsb), scale2(lo, source.lsb)
        else:
            hi, lo = source.value, 0.0
        if isinstance(self.acc, FixedAccumulator):   # fixed into fixed: same binary point
            self.add(source.value, element, ordinal, source.lsb)
            return
        acc = self.acc
        x = hi
        if math.isfinite(hi):
            x = round_float(hi, lo, acc.man_bits, acc.emin, acc.max, int(acc.rounding),
                            not acc.subnormals, acc.saturate, self.events.seed,
                            self.events.index(element, self.level, ordinal, 0))[0]
        self.add(x, element, ordinal)

    def result(self) -> float:
        if isinstance(self.acc, FixedAccumulator):
            hi, _ = int_to_pair(self.value)
            return float(scale2(hi, self.lsb))
        return float(self.value)


@dataclass
class Events:
    """The MAC engine's stochastic event indices: 2 (offset[l] + t) + c of element i N + j."""

    seed: int
    stride: int
    offsets: list

    def index(self, element, level, ordinal, kind):
        return element * self.stride + 2 * (self.offsets[level] + ordinal) + kind


@dataclass(frozen=True)
class Reference:
    out: np.ndarray          # (M, N) float64, INT8 scales applied
    fold_cycles: list        # cycles of each fold, found by moving data until the array drains
    total_cycles: int


def cycle_stepped(config: ArrayConfig, a: np.ndarray, b: np.ndarray, seed: int = 0) -> Reference:
    """Run A (M x K) @ B (K x N) on ``config``'s array PE by PE, cycle by cycle. ``seed``
    drives the accumulators' stochastic rounding exactly as ``hbfpsim.matmul(..., seed=)``
    does (same derived stream, same event indices)."""
    if config.rows > MAX_SIDE or config.cols > MAX_SIDE:
        raise ValueError(f"the cycle-stepped reference is for arrays up to {MAX_SIDE} x "
                         f"{MAX_SIDE}; got {config.rows} x {config.cols}")
    numerics = Numerics.of(config)
    m, k = a.shape
    mapping = Mapping.of(m, b.shape[1], k, config)
    run = _Run(config, mapping, numerics, a, b, seed)
    fr, fc, _, _ = mapping.fold_extents()
    fold = run.os_fold if config.dataflow == "os" else run.stationary_fold
    cycles = [fold(int(r), int(c)) for r, c in zip(fr, fc)]
    out = np.zeros((m, mapping.n))
    for (i, j), reg in run.outputs.items():
        out[i, j] = reg.result()
    if run.scale is not None:
        out = out * run.scale
    return Reference(out, cycles, sum(cycles))


class _Run:
    """State shared by the folds of one GEMM: operands, levels, output buffer registers."""

    def __init__(self, config, mapping, numerics, a, b, seed):
        self.config, self.mapping = config, mapping
        plan = plan_for(mapping, numerics)
        inputs = plan.inputs(mapping.k)
        self.events = Events(derive_seeds(seed)[2], 2 * sum(inputs),
                             [sum(inputs[:i]) for i in range(len(inputs))])
        self.levels = [lv.accumulator for lv in plan.levels]
        self.block = plan.levels[0].length if numerics.block_accumulator else None
        op_a, op_b = prepare(a, numerics.input, 1), prepare(b, numerics.weight, 0)
        self.a, self.b = op_a.values, op_b.values
        self.qa, self.qb = op_a.lsb_per_element(), op_b.lsb_per_element()
        self.scale = None if op_a.scale is None else op_a.scale[:, None] * op_b.scale[None, :]
        self.outputs = {}

    def element(self, i, j):
        return i * self.mapping.n + j

    def registers(self):
        """What one partial sum carries: [block register?, chain register] (all levels but
        the output buffer)."""
        return [Register(acc, level, self.events) for level, acc in enumerate(self.levels[:-1])]

    def mac(self, regs, i, j, t):
        """Product t of output (i, j) enters the innermost register; a block's last product
        converts the block into the chain register."""
        p = self.a[i, t] * self.b[t, j]
        lsb = int(self.qa[i, t] + self.qb[t, j])
        fixed = isinstance(regs[0].acc, FixedAccumulator)
        regs[0].add(p * 2.0**-lsb if fixed else p, self.element(i, j), t, lsb)
        if self.block is not None and len(regs) > 1 and \
                ((t + 1) % self.block == 0 or t == self.mapping.k - 1):
            regs[1].take(regs[0], self.element(i, j), t // self.block)
            regs[0].reset()

    def to_output(self, regs, i, j, ordinal):
        reg = self.outputs.setdefault((i, j), Register(self.levels[-1], len(self.levels) - 1,
                                                       self.events))
        reg.take(regs[-1], self.element(i, j), ordinal)

    def stationary_fold(self, fr, fc):
        """One WS or IS fold: R cycles to shift the stationary tile in from the top, then the
        streamed operand moves right and partial sums move down until the array is empty.
        Returns the fold's cycle count."""
        R, C = self.config.rows, self.config.cols
        mp, ws = self.mapping, self.config.dataflow == "ws"
        t_len = mp.spatial[2]
        k_of_row = [fr * R + r if fr * R + r < mp.k else None for r in range(R)]
        id_of_col = [fc * C + c if fc * C + c < mp.spatial[1] else None for c in range(C)]
        loaded = [False] * R
        cycle = 0
        while not all(loaded):                 # the tile enters row 0 and shifts down
            loaded = [True] + loaded[:-1]
            cycle += 1
        stream = [[None] * C for _ in range(R)]   # index of the streamed element in each PE
        psum = [[None] * C for _ in range(R)]     # (stream index, registers) leaving each PE
        last_busy = cycle
        while True:
            busy = False
            new_stream = [[None] * C for _ in range(R)]
            new_psum = [[None] * C for _ in range(R)]
            for r in range(R):
                for c in range(C):
                    if c == 0:
                        s = cycle - R - r      # row r's inputs enter skewed by r
                        incoming = s if 0 <= s < t_len else None
                    else:
                        incoming = stream[r][c - 1]
                    if incoming is None:
                        continue
                    busy = True
                    new_stream[r][c] = incoming
                    token = (incoming, self.registers()) if r == 0 else psum[r - 1][c]
                    k, col = k_of_row[r], id_of_col[c]
                    if k is not None and col is not None:
                        self.mac(token[1], *((incoming, col) if ws else (col, incoming)), k)
                    new_psum[r][c] = token
            for c in range(C):                 # the bottom row's sums enter the output buffer
                token = new_psum[R - 1][c]
                if token is not None and id_of_col[c] is not None:
                    s, regs = token
                    i, j = (s, id_of_col[c]) if ws else (id_of_col[c], s)
                    self.to_output(regs, i, j, fr)
            if busy:
                last_busy = cycle
            stream, psum = new_stream, new_psum
            cycle += 1
            if not busy and cycle > R + t_len + R:  # every input entered and drained
                return last_busy + 1

    def os_fold(self, fr, fc):
        """One OS fold: A's rows from the left, B's columns from the top, skewed; each PE
        accumulates its output. Returns the cycles until the last multiply."""
        R, C = self.config.rows, self.config.cols
        mp = self.mapping
        regs = {}
        a_k = [[None] * C for _ in range(R)]   # k of the A element each PE holds
        b_k = [[None] * C for _ in range(R)]   # k of the B element each PE holds
        cycle, last_busy = 0, 0
        while True:
            busy = False
            new_a = [[None] * C for _ in range(R)]
            new_b = [[None] * C for _ in range(R)]
            for r in range(R):
                for c in range(C):
                    ka = (cycle - r if 0 <= cycle - r < mp.k else None) if c == 0 else a_k[r][c - 1]
                    kb = (cycle - c if 0 <= cycle - c < mp.k else None) if r == 0 else b_k[r - 1][c]
                    new_a[r][c], new_b[r][c] = ka, kb
                    if ka is None or kb is None:
                        continue
                    assert ka == kb, "skewed operands must meet in step"
                    busy, last_busy = True, cycle
                    i, j = fr * R + r, fc * C + c
                    if i < mp.m and j < mp.n:
                        self.mac(regs.setdefault((i, j), self.registers()), i, j, ka)
            a_k, b_k = new_a, new_b
            cycle += 1
            if not busy and cycle > mp.k + R + C:
                break
        for (i, j), chain in regs.items():
            self.to_output(chain, i, j, 0)
        return last_busy + 1
