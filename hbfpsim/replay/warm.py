"""Compile in a second process the kernels a run will need later, while it starts.

A cold run (a fresh install: numba's on-disk cache is empty) spends most of its first
half-minute compiling two GEMM kernels, the sequential one (float accumulators) and the
cascade of the BLAS fast path (integer block accumulators), each on one core. When a run has
variants of both kinds, the cascade is not in numba's cache and the machine has a second
core, a helper (``python -m hbfpsim.replay.warm``, a child of this process that dies with
it: ``hbfpsim.children``) replays the first record under each variant of the other kind than
the run's first variant, and numba's cache hands the compiled kernels to this process, which
meanwhile compiles the first variant's. Before this process replays a variant of the
helper's kind it waits for the helper, so no kernel is compiled twice. The helper prints
nothing; its failure only costs the time it would have saved. The environment variable
``HBFPSIM_WARM_UP`` overrides the choice: ``always`` or ``never`` (default ``auto``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hbfpsim import children
from hbfpsim.config import ArrayConfig
from hbfpsim.formats.threads import usable_cpus
from hbfpsim.replay.runfile import Sampling
from hbfpsim.replay.synthetic import Source
from hbfpsim.schedule import Schedule

WAIT_SECONDS = 300.0         # the longest a run waits for the helper
SWITCH = "HBFPSIM_WARM_UP"   # "auto" (default): a helper when it pays; "always"; "never"


def kinds(schedule: Schedule) -> frozenset[bool]:
    """Whether each of the schedule's numerics accumulates blocks in integers (True) or
    products in floats (False): the two families of GEMM kernels."""
    return frozenset(n.block_accumulator is not None for n in schedule.numerics)


class Helper:
    """The helper of one run (or none): ``ready(schedule)`` before replaying ``schedule``."""

    def __init__(self, child: subprocess.Popen | None, kind: frozenset[bool]) -> None:
        self._child = child
        self._kind = kind

    def ready(self, schedule: Schedule) -> None:
        """Wait for the helper if it is compiling for ``schedule``'s kind of kernels."""
        if self._child is None or kinds(schedule) <= self._kind:
            return
        try:
            self._child.wait(WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        self._child = None

    def close(self) -> None:
        """Stop the helper if it still runs (the run is over or failed)."""
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            self._child = None


def start(trace: Path, config: ArrayConfig, variants: Sequence[Schedule], sampling: Sampling,
          synthetic: Source | None = None) -> Helper:
    """The helper for a run of ``variants`` on ``config`` over ``trace`` (module
    docstring), started only when it pays."""
    first = kinds(variants[0]) if variants else frozenset()
    later = [v for v in variants if not kinds(v) <= first]
    when = os.environ.get(SWITCH, "auto")
    if not later or when == "never" or (when != "always" and (
            usable_cpus() < 2 or _compiled())):
        return Helper(None, first)
    child = children.start("hbfpsim.replay.warm", stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        children.send(child.stdin, (trace, config, later, sampling, synthetic))
        child.stdin.close()
    except OSError:
        pass
    return Helper(child, first)


def _compiled() -> bool:
    """Whether numba's disk cache already holds the cascade kernel for this CPU (then a
    helper would only load it). Read through numba's cache internals; if they moved, the
    answer is yes (no helper: slower cold runs, never slower warm ones)."""
    from hbfpsim.mac import kernels
    try:
        index = kernels.gemm_fast._cache._cache_file._load_index()
        magic = kernels.gemm_fast.targetctx.codegen().magic_tuple()
        return any(key[1] == magic for key in index)
    except Exception:                   # noqa: BLE001 (any change in numba's internals)
        return True


def _replay_first_record() -> None:
    from hbfpsim import trace as traces
    from hbfpsim.replay.record import replay
    from hbfpsim.replay.run import epoch_weights, where_for

    path, config, variants, sampling, synthetic = children.receive(sys.stdin.buffer)
    trace = traces.open(path)
    if not len(trace):
        return
    where, weights = where_for(trace), epoch_weights(trace)
    gemm = next(iter(trace))
    for variant in variants:
        replay(gemm, config, variant, where, trace.path.name,
               max_outputs=sampling.max_outputs, max_macs=sampling.max_macs,
               seed=sampling.seed, synthetic=synthetic, epochs=weights[gemm.record.epoch])


if __name__ == "__main__":
    children.bind_to_parent()
    _replay_first_record()
