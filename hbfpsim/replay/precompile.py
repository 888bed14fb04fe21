"""A cold run compiles its kernels on two cores, each kernel once.

A cold run (a fresh install: numba's on-disk cache is empty) spends most of its first
half-minute compiling: the GEMM kernels of the two accumulation families (the sequential
one for float accumulators, the cascade of the BLAS fast path for integer block
accumulators), the array's timing recurrence, the rounding kernels. When a run has variants
of both families, the other family's kernel is not in numba's cache and the machine has a
second core, the work is split in two:

- this process compiles the GEMM kernel of its first variant's family (``Helper.first``: a
  two-by-two product of the first record under that variant's numerics and plan) and, when
  the trace has operands that large, the parallel rounding kernels (a tensor of
  ``PARALLEL_ELEMENTS`` values rounded in each format of every variant);
- a helper (``python -m hbfpsim.replay.precompile``, a child of this process that dies with it:
  ``hbfpsim.children``) compiles the other family's GEMM kernel first (the two share their
  largest callees, which this process then finds in the cache), then replays the first
  record under each variant of the other family (timing, cost, rounding, the metrics).

Then this process waits for the helper (``Helper.wait``) and replays with everything in
numba's cache. The helper prints nothing; its failure only costs the time it would have
saved. The environment variable ``HBFPSIM_WARM_UP`` overrides the choice: ``always`` or
``never`` (default ``auto``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np

from hbfpsim import children
from hbfpsim.config import ArrayConfig
from hbfpsim.formats.threads import PARALLEL_ELEMENTS, usable_cpus
from hbfpsim.replay.runfile import Sampling
from hbfpsim.replay.synthetic import Source
from hbfpsim.format_schedule import RunContext, Schedule

WAIT_SECONDS = 300.0         # the longest a run waits for the helper
SWITCH = "HBFPSIM_WARM_UP"   # "auto" (default): a helper when it pays; "always"; "never"


def kinds(schedule: Schedule) -> frozenset[bool]:
    """Whether each of the schedule's numerics accumulates blocks in integers (True) or
    products in floats (False): the two families of GEMM kernels."""
    return frozenset(n.block_accumulator is not None for n in schedule.numerics)


class Helper:
    """The helper of one run, or none (``child`` None: nothing to do)."""

    def __init__(self, child: subprocess.Popen | None, formats: Sequence[str] = ()) -> None:
        self._child = child
        self._formats = formats

    def first(self, gemm, config: ArrayConfig, variant: Schedule, context: RunContext) -> None:
        """Compile this process's share: the GEMM kernel of ``variant``'s family
        (``gemm_kernel``), then the parallel rounding kernels of ``formats``."""
        if self._child is None:
            return
        gemm_kernel(gemm, config, variant, context)
        from hbfpsim import formats
        zeros = np.zeros((PARALLEL_ELEMENTS // 64, 64), np.float32)
        for name in self._formats:
            formats.get(name).quantize(zeros)

    def wait(self) -> None:
        """Wait for the helper to finish (at most ``WAIT_SECONDS``, then stop it)."""
        if self._child is None:
            return
        try:
            self._child.wait(WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        self._child = None

    def close(self) -> None:
        """Stop the helper if it still runs (the run failed before waiting)."""
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            self._child = None


def gemm_kernel(gemm, config: ArrayConfig, variant: Schedule, context: RunContext) -> None:
    """Compile the GEMM kernel of ``variant``'s family (and the rounding kernels it calls),
    by a two-by-two product of ``gemm``'s operands (ones for a shape-only record) under the
    numerics and plan the variant gives it."""
    from hbfpsim.array.mapping import Mapping, plan_for
    from hbfpsim.mac import matmul
    r = gemm.record
    numerics = variant.numerics_for(r.layer, r.phase, r.epoch, context)
    plan = plan_for(Mapping.of(r.m, r.n, r.k, config), numerics)
    if gemm.a is not None:
        a = np.asarray(gemm.a[0] if gemm.a.ndim == 3 else gemm.a)[:2]
        b = np.asarray(gemm.b[0] if gemm.b.ndim == 3 else gemm.b)[:, :2]
    else:
        a, b = np.ones((2, r.k), np.float32), np.ones((r.k, 2), np.float32)
    matmul(np.array(a, np.float32), np.array(b, np.float32), numerics.input,   # writable
           numerics.weight, plan)                    # copies, as the replay's samples are


def start(trace, config: ArrayConfig, variants: Sequence[Schedule], sampling: Sampling,
          synthetic: Source | None = None) -> Helper:
    """The helper for a run of ``variants`` on ``config`` over the opened ``trace`` (module
    docstring), started only when it pays."""
    first = kinds(variants[0]) if variants else frozenset()
    later = [v for v in variants if not kinds(v) <= first]
    when = os.environ.get(SWITCH, "auto")
    if not later or not len(trace) or when == "never" or (when != "always" and (
            usable_cpus() < 2 or _compiled())):
        return Helper(None)
    large = any(max(r.m * r.k, r.k * r.n) >= PARALLEL_ELEMENTS for r in trace.records)
    formats = sorted({f.name for v in variants for n in v.numerics
                      for f in (n.input, n.weight)}) if large else []
    child = children.start("hbfpsim.replay.precompile", stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        children.send(child.stdin, (trace.path, config, later, sampling, synthetic))
        child.stdin.close()
    except OSError:
        pass
    return Helper(child, formats)


def _compiled() -> bool:
    """Whether numba's disk cache already holds both GEMM kernels for this CPU (then a
    helper would only load them). Read through numba's cache internals; if they moved, the
    answer is yes (no helper: slower cold runs, never slower warm ones)."""
    from hbfpsim.mac import kernels
    try:
        for kernel in (kernels.gemm_fast, kernels.gemm_sequential):
            index = kernel._cache._cache_file._load_index()
            magic = kernel.targetctx.codegen().magic_tuple()
            if not any(key[1] == magic for key in index):
                return False
        return True
    except Exception:                   # noqa: BLE001 (any change in numba's internals)
        return True


def _compile_the_rest() -> None:
    from hbfpsim import trace as traces
    from hbfpsim.replay.record import Costing, replay
    from hbfpsim.replay.run import epoch_weights, trace_context

    path, config, variants, sampling, synthetic = children.receive(sys.stdin.buffer)
    trace = traces.open(path)
    context, weights = trace_context(trace), epoch_weights(trace)
    gemm = next(iter(trace))
    gemm_kernel(gemm, config, variants[0], context)      # first: its callees the other shares
    costing = Costing(config)
    for variant in variants:
        replay(gemm, costing, variant, context, trace.path.name,
               max_outputs=sampling.max_outputs, max_macs=sampling.max_macs,
               seed=sampling.seed, synthetic=synthetic, epochs=weights[gemm.record.epoch])


if __name__ == "__main__":
    children.bind_to_parent()
    _compile_the_rest()
