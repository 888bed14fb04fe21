"""What ``simulate`` returns: one GEMM's report, and its per-fold events when asked for."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hbfpsim.mac import AccumulationPlan


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
