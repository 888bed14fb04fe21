"""The fold-level timing model as a simpy discrete-event simulation.

Processes: the array (one step per fold), a loader per fold's loads and a writer per fold's
store, sharing one DRAM channel (a simpy Resource served first come, first served). A loader
returns when each of its fold's tiles is usable, a writer when its store finished; the array
waits on their processes and reads those values. It advances per fold and per transfer,
never per cycle. ``timing.fold_schedule`` computes the same schedule without an event queue;
the tests hold the two to the same cycles, stalls and blame on random configurations, and
``simulate(..., engine="simpy")`` runs this one.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import simpy

from hbfpsim.array.timing import Schedule

MAX_FOLDS = 2**20     # about 20 s of event processing; the fast engine has no such limit


def run(compute: np.ndarray, loads: np.ndarray, store: np.ndarray, latency: int,
        double_buffered: bool) -> Schedule:
    """Same arguments and result as ``timing.fold_schedule``: ``compute`` (F,) cycles of
    each fold, ``loads`` (3, F) and ``store`` (F,) channel cycles, ``latency`` cycles."""
    env = simpy.Environment()
    channel = _Channel(env, loads, store, latency)
    schedule = env.process(_folds(env, channel, compute, double_buffered))
    env.run()                                   # until the last store is done
    start, end, waited_on, stalls, writers = schedule.value
    total = int(end[-1]) if compute.size else 0
    drain = max([total] + [w.value for w in writers]) - total
    first = int(loads[:, 0].sum()) if compute.size else 0
    return Schedule(start, end, waited_on, total, first + latency if first else 0, drain, stalls)


class _Channel:
    """The one DRAM channel (a simpy Resource, first come, first served) and the transfers
    over it: each fold's loads and its store, in cycles."""

    def __init__(self, env: simpy.Environment, loads: np.ndarray, store: np.ndarray,
                 latency: int) -> None:
        self.env = env
        self.resource = simpy.Resource(env, capacity=1)
        self.loads, self.store, self.latency = loads, store, latency

    def load(self, f: int) -> Generator[simpy.Event, object, list]:
        """Fold f's loads, back to back while holding the channel. Value: the cycles when
        its A, B and partial-sum tiles are usable (``latency`` after each transfer; at once
        if none)."""
        env, loads = self.env, self.loads
        ready = [env.now] * 3
        if loads[:, f].any():
            with self.resource.request() as request:
                yield request
                for b in range(3):
                    if loads[b, f] > 0:
                        yield env.timeout(int(loads[b, f]))
                        ready[b] = env.now + self.latency
        return ready

    def write(self, f: int) -> Generator[simpy.Event, object, int]:
        """Fold f's store. Value: the cycle it finished."""
        with self.resource.request() as request:
            yield request
            yield self.env.timeout(int(self.store[f]))
        return self.env.now


def _folds(env: simpy.Environment, channel: _Channel, compute: np.ndarray,
           double_buffered: bool) -> Generator[simpy.Event, object, tuple]:
    """The array's process: the folds in order, each starting when its tiles are usable
    and (single-buffered) the previous store has drained. Value: (start, end, waited_on,
    stalls, writers), the first three per fold, stalls in cycles per buffer."""
    n = compute.size
    start, end = np.zeros(n, np.int64), np.zeros(n, np.int64)
    waited_on = np.full(n, -1, np.int8)
    stalls = np.zeros(3, np.int64)
    writers = []
    ready = [0, 0, 0]                           # fold 0's tiles were prefetched
    loading = storing = None
    previous_end = stored = 0
    for f in range(n):
        if loading is not None:
            ready = yield loading
        single = not double_buffered and f > 0
        if single and storing is not None:
            stored = yield storing              # the single output buffer must drain
        culprit, latest = _last_wait(ready, previous_end, stored if single else None)
        if latest > env.now:
            yield env.timeout(latest - env.now)
        start[f] = env.now
        if culprit >= 0:
            stalls[culprit] += start[f] - previous_end
            waited_on[f] = culprit
        loading = env.process(channel.load(f + 1)) if double_buffered and f + 1 < n else None
        yield env.timeout(int(compute[f]))
        end[f] = previous_end = stored = env.now
        storing = None
        if channel.store[f] > 0:
            storing = env.process(channel.write(f))
            writers.append(storing)
        if not double_buffered and f + 1 < n:
            loading = env.process(channel.load(f + 1))
    return start, end, waited_on, stalls, writers


def _last_wait(ready: list, previous_end: int, stored: int | None) -> tuple[int, int]:
    """What a fold waits on last and until which cycle: (index in ``timing.BUFFERS``, or -1
    for nothing but the previous fold's end at cycle ``previous_end``; that cycle), given
    the cycles its A, B and partial-sum tiles are usable (``ready``) and, single-buffered,
    the cycle its output buffer drained (``stored``; None if double-buffered), which counts
    against the output buffer."""
    culprit, latest = -1, previous_end
    for b in range(3):
        if ready[b] > latest:
            culprit, latest = b, ready[b]
    if stored is not None and stored > latest:
        culprit, latest = 2, stored
    return culprit, latest
