"""One GEMM on one accelerator: cycles, stalls, utilization, traffic and the plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hbfpsim import config as cfg
from hbfpsim.array import des, grouped, memory, timing
from hbfpsim.array.mapping import MAX_FOLDS, Mapping, plan_for
from hbfpsim.array.report import FoldEvents, GemmReport
from hbfpsim.numerics import Numerics

ENGINES = ("fast", "simpy")


def load(spec: str | Path, base: str | Path | None = None) -> cfg.ArrayConfig:
    """Read a configuration file (or a preset by name: ``array32``) and validate it, numerics
    included."""
    config = cfg.load(spec, base)
    Numerics.of(config)
    return config


def simulate(config: cfg.ArrayConfig, m: int, n: int, k: int, *,
             numerics: Numerics | None = None, engine: str = "fast",
             events: bool = False) -> GemmReport:
    """Time C[M, N] = A[M, K] B[K, N] on ``config``'s array (its hardware: shape, dataflow,
    buffers, DRAM) under ``numerics`` (formats and accumulators: what a schedule hands the
    array; default, the ``[numerics]`` the configuration names). ``engine``: "fast" (the fold
    recurrence) or "simpy" (the discrete-event simulation; same results). ``events``: keep
    the per-fold schedule (at most MAX_FOLDS folds). Without events the fast engine groups
    identical folds (grouped.py: time and memory independent of the fold count); with them,
    or on simpy, every fold is costed and timed on its own (the same results)."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not one of {ENGINES}")
    numerics = Numerics.of(config) if numerics is None else numerics
    if engine == "fast" and not events:
        return grouped.grouped_report(config, numerics, m, n, k)
    bits = grouped.checked_bits(config, numerics)
    mapping = Mapping.of(m, n, k, config)
    if mapping.folds > MAX_FOLDS:
        raise ValueError(f"GEMM {m} x {n} x {k} takes {mapping.folds:,} folds on a "
                         f"{config.rows} x {config.cols} array; per-fold events (events=True, "
                         f"engine='simpy') take at most {MAX_FOLDS:,}: drop events for any size")
    need, compute, sram_stalls, loads, store = fold_costs(mapping, config, bits)
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
    total, totals = s.total_cycles, need.totals()
    return GemmReport(
        m, n, k, config.name, config.dataflow, mapping.folds, total, mapping.compute_cycles,
        total - mapping.compute_cycles, stall_by, s.prefetch_cycles, s.drain_cycles,
        mapping.macs / (total * config.rows * config.cols), mapping.mapping_efficiency,
        memory.sram_traffic(totals), memory.dram_traffic(totals),
        plan_for(mapping, numerics), total / (config.clock_ghz * 1e9), fold_events)


def fold_costs(mapping: Mapping, config: cfg.ArrayConfig, bits: tuple[float, float, float]
               ) -> tuple[memory.FoldDemand, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per fold of ``mapping``, for ``bits`` from ``grouped.checked_bits``: (demand in bytes,
    compute cycles, SRAM stall cycles (3, F), load channel cycles (3, F), store channel
    cycles)."""
    bits_a, bits_b, bits_psum = bits
    need = memory.demand(mapping, bits_a, bits_b, bits_psum, bits_psum, config.input_kib,
                         config.weight_kib, config.output_kib)
    bandwidth = config.dram_bytes_per_cycle
    loads = np.stack([timing.transfer_cycles(x, bandwidth)
                      for x in (need.load_a, need.load_b, need.load_out)])
    compute, sram_stalls = timing.fold_compute(
        mapping.fold_cycles, np.stack([need.read_a, need.read_b, need.psum_write + need.psum_read]),
        config.sram_bytes_per_cycle)
    return need, compute, sram_stalls, loads, timing.transfer_cycles(need.store, bandwidth)


__all__ = ["ENGINES", "FoldEvents", "GemmReport", "load", "simulate"]
