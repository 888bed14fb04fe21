"""One GEMM on one accelerator: cycles, stalls, utilization, traffic and the plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hbfpsim import config as cfg
from hbfpsim.array import des, grouped, timing
from hbfpsim.array.mapping import MAX_FOLDS, Mapping, plan_for
from hbfpsim.mac import AccumulationPlan
from hbfpsim.numerics import Numerics

ENGINES = ("fast", "simpy")


def load(spec: str | Path, base: str | Path | None = None) -> cfg.ArrayConfig:
    """Read a configuration file (or a preset by name: ``array32``) and validate it, numerics
    included."""
    config = cfg.load(spec, base)
    Numerics.of(config)
    return config


@dataclass(frozen=True)
class FoldEvents:
    """Per-fold schedule, for timelines: cycles, and which buffer each fold waited on."""

    start: np.ndarray
    end: np.ndarray
    waited_on: list[str | None]
    loaded_bytes: np.ndarray
    stored_bytes: np.ndarray


@dataclass(frozen=True)
class GemmReport:
    """One GEMM (M x K times K x N) on one array. Cycles are counts of array clock cycles
    (SCALE-Sim's "Total Cycles" is the index of the last one: ``total_cycles - 1``); bytes are
    bytes."""

    m: int
    n: int
    k: int
    config: str
    dataflow: str
    folds: int
    total_cycles: int
    compute_cycles: int
    stall_cycles: int
    stalls: dict[str, int]          # input / weight / output (DRAM), sram_* (SRAM bandwidth)
    prefetch_cycles: int            # loading fold 0's tiles, before cycle 0
    drain_cycles: int               # stores still in flight after the last fold
    utilization: float              # MACs / (total cycles x R x C)
    mapping_efficiency: float       # used PEs / (R x C), mean over folds
    sram: dict[str, dict[str, int]]  # per buffer: reads, writes (bytes)
    dram: dict[str, int]             # reads, writes (bytes)
    plan: AccumulationPlan           # how each dot product accumulates on this dataflow
    seconds: float
    events: FoldEvents | None = None

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k


def simulate(config: cfg.ArrayConfig, m: int, n: int, k: int, *, engine: str = "fast",
             events: bool = False) -> GemmReport:
    """Time C[M, N] = A[M, K] B[K, N] on ``config``'s array. ``engine``: "fast" (the fold
    recurrence) or "simpy" (the discrete-event simulation; same results). ``events``: keep
    the per-fold schedule."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not one of {ENGINES}")
    bits = grouped.checked_bits(config)
    mapping = Mapping.of(m, n, k, config)
    if engine == "fast" and not events and mapping.folds > grouped.EXPAND_BELOW:
        g = grouped.grouped_report(config, m, n, k)     # identical folds grouped: O(1) in folds
        return GemmReport(m, n, k, config.name, config.dataflow, g.folds, g.total_cycles,
                          g.compute_cycles, g.total_cycles - g.compute_cycles, g.stalls,
                          g.prefetch_cycles, g.drain_cycles, g.utilization,
                          g.mapping_efficiency, g.sram, g.dram, g.plan,
                          g.total_cycles / (config.clock_ghz * 1e9))
    if mapping.folds > MAX_FOLDS:
        raise ValueError(f"GEMM {m} x {n} x {k} takes {mapping.folds:,} folds on a "
                         f"{config.rows} x {config.cols} array; per-fold events (events=True, "
                         f"engine='simpy') take at most {MAX_FOLDS:,}: drop events for any size")
    need, compute, sram_stalls, loads, store = grouped.fold_costs(mapping, config, bits)
    timing.check_total(compute, loads, store, config.dram_latency_cycles)
    if engine == "simpy" and mapping.folds > des.MAX_FOLDS:
        raise ValueError(f"the simpy engine times at most {des.MAX_FOLDS:,} folds (this GEMM "
                         f"has {mapping.folds:,}); the fast engine gives the same results")
    run = timing.fold_schedule if engine == "fast" else des.run
    s = run(compute, loads, store, config.dram_latency_cycles, config.double_buffered)
    stall_by = {b: int(c) for b, c in zip(timing.BUFFERS, s.stalls)}
    stall_by.update({f"sram_{b}": int(c) for b, c in zip(timing.BUFFERS, sram_stalls.sum(axis=1))})
    fold_events = None
    if events:
        fold_events = FoldEvents(s.start, s.end, [None if w < 0 else timing.BUFFERS[w]
                                                  for w in s.waited_on],
                                 need.load_a + need.load_b + need.load_out, need.store)
    total = s.total_cycles
    return GemmReport(
        m, n, k, config.name, config.dataflow, mapping.folds, total, mapping.compute_cycles,
        total - mapping.compute_cycles, stall_by, s.prefetch_cycles, s.drain_cycles,
        mapping.macs / (total * config.rows * config.cols), mapping.mapping_efficiency,
        need.sram(), need.dram(), plan_for(mapping, Numerics.of(config)),
        total / (config.clock_ghz * 1e9), fold_events)


__all__ = ["ENGINES", "FoldEvents", "GemmReport", "load", "simulate"]
