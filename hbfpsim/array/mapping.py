"""How a GEMM maps onto an R x C systolic array: folds, their timing, the data each moves,
and the accumulation plan the dataflow implies.

GEMM C[M, N] = A[M, K] B[K, N] (A: inputs/activations, B: weights). SCALE-Sim's compute model
(Samajdar et al., ISPASS 2020; docs/array.md): the spatial rows Sr, columns Sc and temporal
extent T are

    WS: Sr = K, Sc = N, T = M     (B stationary, A streamed, K reduced down the columns)
    OS: Sr = M, Sc = N, T = K     (outputs stationary, each PE reduces all of K)
    IS: Sr = K, Sc = M, T = N     (A stationary, B streamed, K reduced down the columns)

with ceil(Sr / R) x ceil(Sc / C) folds, column folds outer and row folds inner, each paying
the full fill and drain: 2R + C + T - 2 cycles (WS, IS: R cycles to load the stationary
tile, then R + C + T - 2 to stream and drain) or T + R + C - 2 (OS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hbfpsim.config import ArrayConfig
from hbfpsim.mac import AccumulationPlan, Level
from hbfpsim.numerics import Numerics

MAX_DIM = 2**40          # largest M, N or K: products of three stay exact in Python ints
MAX_FOLDS = 2**22        # per-fold events (events=True, simpy): 4 Mi folds, about 0.7 GB, 4 s


@dataclass(frozen=True)
class Mapping:
    """One GEMM on one array shape and dataflow."""

    m: int
    n: int
    k: int
    rows: int
    cols: int
    dataflow: str
    spatial: tuple[int, int, int] = field(init=False, repr=False, compare=False)  # Sr, Sc, T
    row_folds: int = field(init=False, repr=False, compare=False)   # ceil(Sr / R)
    col_folds: int = field(init=False, repr=False, compare=False)   # ceil(Sc / C)

    def __post_init__(self) -> None:
        m, n, k = self.m, self.n, self.k
        if not (type(m) is type(n) is type(k) is int and 0 < m <= MAX_DIM and
                0 < n <= MAX_DIM and 0 < k <= MAX_DIM):         # checked fast when valid
            for name in ("m", "n", "k"):
                v = getattr(self, name)
                integer = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                if not integer or not 1 <= v <= MAX_DIM:
                    raise ValueError(f"GEMM dimension {name.upper()} must be an integer in "
                                     f"[1, 2^40], got {v!r}")
                object.__setattr__(self, name, int(v))  # Python ints: M N K cannot wrap
            m, n, k = self.m, self.n, self.k
        sr, sc, t = {"ws": (k, n, m), "os": (m, n, k), "is": (k, m, n)}[self.dataflow]
        object.__setattr__(self, "spatial", (sr, sc, t))
        object.__setattr__(self, "row_folds", -(-sr // self.rows))
        object.__setattr__(self, "col_folds", -(-sc // self.cols))

    @classmethod
    def of(cls, m: int, n: int, k: int, config: ArrayConfig) -> Mapping:
        return cls(m, n, k, config.rows, config.cols, config.dataflow)

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    @property
    def fold_cycles(self) -> int:
        """Cycles of every fold with ideal memory (full fill and drain)."""
        r, c, t = self.rows, self.cols, self.spatial[2]
        return t + r + c - 2 if self.dataflow == "os" else 2 * r + c + t - 2

    @property
    def compute_cycles(self) -> int:
        return self.folds * self.fold_cycles

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k

    @property
    def mapping_efficiency(self) -> float:
        """Used PEs / (R C), averaged over folds."""
        sr, sc, _ = self.spatial
        return (sr / (self.row_folds * self.rows)) * (sc / (self.col_folds * self.cols))

    def fold_extents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per fold, in execution order: (row fold index, column fold index, rows used,
        columns used)."""
        sr, sc, _ = self.spatial
        fr = np.tile(np.arange(self.row_folds), self.col_folds)
        fc = np.repeat(np.arange(self.col_folds), self.row_folds)
        rows_used = np.minimum(self.rows, sr - fr * self.rows)
        cols_used = np.minimum(self.cols, sc - fc * self.cols)
        return fr, fc, rows_used, cols_used


def plan_for(mapping: Mapping, numerics: Numerics) -> AccumulationPlan:
    """The accumulation plan a dataflow implies for one dot product of length K.

    WS / IS: K runs down a column in chunks of R (one fold each); the column chain sums its
    chunk in ``numerics.accumulator`` and the output buffer sums the folds in
    ``numerics.output``. OS: each PE sums all of K in the accumulator; its result enters the
    output buffer once. With a ``block_accumulator``, products are first summed in that
    fixed-point register inside each block shared by both operands (elements per shared
    exponent; a scalar format's one block is all of K), and block results enter the chain
    or PE register.
    """
    k, r = mapping.k, mapping.rows
    span = r if mapping.dataflow != "os" else k            # products per chain/PE register
    levels = []
    if numerics.block_accumulator is not None:
        shared = math.gcd(numerics.input.block or 0, numerics.weight.block or 0)
        block = shared or span
        if block >= span:
            if block % span and block < k:
                raise ValueError(f"blocks of {block} elements and chunks of {span} products "
                                 "do not nest: a chunk would straddle two blocks")
            levels.append(Level(numerics.block_accumulator, span))   # the chain is integer
        else:
            if span % block and span < k:
                raise ValueError(f"chunks of {span} products are not whole blocks of {block}")
            levels += [Level(numerics.block_accumulator, block),
                       Level(numerics.accumulator, math.ceil(span / block))]
    else:
        levels.append(Level(numerics.accumulator, span))
    levels.append(Level(numerics.output))
    return AccumulationPlan(tuple(levels))
