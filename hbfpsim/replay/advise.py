"""``advise``: how narrow may a trace's accumulators be on an array, in theory and checked.

For each (phase, layer) of a trace, the array's dataflow fixes how each dot product of
length K accumulates (``array.plan_for``): on a weight-stationary or input-stationary array
a column sums chunks of R products and the chunk results are summed after; an
output-stationary PE sums all K. For a floating-point accumulator used at both levels
(``accumulator`` and ``output`` both ``e8m{M}``, the chunk-based accumulation of Sakr et
al.), the theory (``accuracy.vrr``) gives the fewest fraction bits M whose variance lost
n (1 - VRR) stays under the threshold. The check replays the group's records with FP32
operands (so only the accumulator rounds) at M and at M - 1 bits and reports the variance
retained measured on the outputs.

For block formats the fixed-point block accumulator sums min(block, chunk) products; its
width is bounded by A2Q's worst case and by a target overflow probability
(``accuracy.vrr.worst_case_width``, ``min_fixed_width``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from hbfpsim.accuracy import vrr as theory
from hbfpsim.array import Mapping, plan_for
from hbfpsim.config import ArrayConfig
from hbfpsim.numerics import Numerics
from hbfpsim.replay.record import Costing, replay
from hbfpsim.replay.run import trace_context
from hbfpsim.format_schedule import Schedule
from hbfpsim.trace import PHASES, Trace

FP32 = Numerics.create("fp32")


@dataclass(frozen=True)
class Advice:
    """One (phase, layer): its longest reduction ``k``, the chunk the dataflow sums first
    (None: all of K in one register), the theory's fraction bits and the variance retained
    measured at those bits and one fewer (None without operands or without the check)."""

    phase: str
    layer: str
    records: int
    k: int
    chunk: int | None
    bits: int
    measured: float | None = None
    measured_fewer: float | None = None


@dataclass(frozen=True)
class BlockAdvice:
    """The fixed-point block accumulator of a block format: products per block sum, and
    widths (bits) from the worst case and from the overflow probability target."""

    format: str
    length: int
    worst_case: int
    statistical: int
    probability: float


def chunk_of(config: ArrayConfig, m: int, n: int, k: int) -> int | None:
    """Products a column (or PE) sums before the next level, for this GEMM on ``config``."""
    plan = plan_for(Mapping.of(m, n, k, config), FP32)
    length = plan.levels[0].length
    return None if length is None or length >= k else length


@lru_cache(maxsize=1024)
def bits_for(k: int, chunk: int | None, max_lost: float) -> int:
    """Theory's fewest fraction bits for a K-long reduction summed in chunks of ``chunk``
    (K rounded up to whole chunks: the last chunk is short, which only helps)."""
    if chunk is None:
        return theory.min_mantissa_bits(k, max_lost=max_lost)
    return theory.min_mantissa_bits(math.ceil(k / chunk) * chunk, chunk=chunk,
                                     max_lost=max_lost)


def advise(trace: Trace, config: ArrayConfig, *, max_lost: float = theory.LOST_CUTOFF,
           check: bool = True, seed: int = 0, max_outputs: int = 4096,
           max_macs: int = 2**24) -> list[Advice]:
    """Advice per (phase, layer) of ``trace`` on ``config``'s array (see the module)."""
    groups: dict[tuple[str, str], list] = {}
    for record in trace.records:
        groups.setdefault((record.phase, record.layer), []).append(record)
    advice = {}
    for (phase, layer), records in groups.items():
        longest = max(records, key=lambda r: r.k)
        chunk = chunk_of(config, longest.m, longest.n, longest.k)
        advice[phase, layer] = Advice(phase, layer, len(records), longest.k, chunk,
                                      bits_for(longest.k, chunk, max_lost))
    if check and trace.has_operands:
        advice = _checked(trace, config, advice, seed, max_outputs, max_macs)
    order = {p: i for i, p in enumerate(PHASES)}
    return sorted(advice.values(), key=lambda a: order[a.phase])


def _checked(trace: Trace, config: ArrayConfig, advice: dict, seed: int, max_outputs: int,
             max_macs: int) -> dict:
    context, costing = trace_context(trace), Costing(config)
    measured: dict[tuple, list[list[float]]] = {key: [[], []] for key in advice}
    for gemm in trace:
        key = gemm.record.phase, gemm.record.layer
        if gemm.a is None:
            continue
        for i, bits in enumerate((advice[key].bits, advice[key].bits - 1)):
            if bits < 1:
                continue
            acc = f"e8m{bits}"
            schedule = Schedule.fixed(Numerics.create("fp32", accumulator=acc, output=acc))
            row = replay(gemm, costing, schedule, context, trace.path.name,
                         max_outputs=max_outputs, max_macs=max_macs, seed=seed)
            measured[key][i].append(row.vrr)
    return {key: _with(a, *measured[key]) for key, a in advice.items()}


def _with(a: Advice, at: list[float], fewer: list[float]) -> Advice:
    return replace(a, measured=float(np.median(at)) if at else None,
                   measured_fewer=float(np.median(fewer)) if fewer else None)


def block_advice(config: ArrayConfig, *, probability: float = 1e-6) -> BlockAdvice | None:
    """Block accumulator widths for ``config``'s input format when it is an HBFP format
    (sign-magnitude integers in blocks), else None. A block sum covers a block, or one
    column's chunk of R products when that is shorter (weight and input stationary)."""
    fmt = Numerics.of(config).input
    if fmt.family != "hbfp":
        return None
    length = fmt.block if config.dataflow == "os" else min(fmt.block, config.rows)
    bits = fmt.frac_bits + 1
    return BlockAdvice(fmt.name, length, theory.worst_case_width(bits, bits, length),
                       theory.min_fixed_width(length, bits, bits, probability=probability,
                                              block=fmt.block), probability)
