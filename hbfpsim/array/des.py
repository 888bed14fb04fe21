"""The fold-level timing model as a simpy discrete-event simulation.

Processes: the array (one step per fold), a loader per fold's loads and a writer per fold's
store, sharing one DRAM channel (a simpy Resource served first come, first served). It
advances per fold and per transfer, never per cycle. ``timing.fold_recurrence`` computes the
same schedule without an event queue; the tests hold the two to the same cycles, stalls and
blame on random configurations, and ``simulate(..., engine="simpy")`` runs this one.
"""

from __future__ import annotations

import numpy as np
import simpy


def run(compute: np.ndarray, loads: np.ndarray, store: np.ndarray, latency: int,
        double_buffered: bool):
    """Same arguments and results as ``timing.fold_recurrence``."""
    n = compute.size
    env = simpy.Environment()
    channel = simpy.Resource(env, capacity=1)
    loaded = [env.event() for _ in range(n)]
    stored = [env.event() for _ in range(n)]
    ready = np.zeros((n, 3), np.int64)          # when each fold's A, B, partial sums arrived
    stored_at = np.zeros(n, np.int64)           # when each fold's store finished
    start = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    waited_on = np.full(n, -1, np.int8)
    stalls = np.zeros(3, np.int64)

    def loader(f):
        issued = env.now
        ready[f] = issued
        if loads[:, f].sum() > 0:
            with channel.request() as request:
                yield request
                for b in range(3):             # back to back while holding the channel
                    if loads[b, f] > 0:
                        yield env.timeout(int(loads[b, f]))
                        ready[f, b] = env.now + latency
        finish = int(ready[f].max())
        if finish > env.now:
            yield env.timeout(finish - env.now)
        loaded[f].succeed()

    def writer(f):
        with channel.request() as request:
            yield request
            yield env.timeout(int(store[f]))
        stored_at[f] = env.now
        stored[f].succeed()

    def array():
        previous_end = 0
        loaded[0].succeed()                    # fold 0's tiles were prefetched
        for f in range(n):
            single = not double_buffered and f > 0
            yield simpy.AllOf(env, [loaded[f]] + ([stored[f - 1]] if single else []))
            begin = start[f] = env.now
            culprit, latest = -1, previous_end
            for b in range(3):
                if ready[f, b] > latest:
                    culprit, latest = b, ready[f, b]
            if single and stored_at[f - 1] > latest:
                culprit = 2
            if begin > previous_end:
                stalls[culprit] += begin - previous_end
                waited_on[f] = culprit
            if double_buffered and f + 1 < n:
                env.process(loader(f + 1))
            yield env.timeout(int(compute[f]))
            end[f] = previous_end = env.now
            if store[f] > 0:
                env.process(writer(f))
            else:
                stored_at[f] = env.now
                stored[f].succeed()
            if not double_buffered and f + 1 < n:
                env.process(loader(f + 1))

    env.process(array())
    env.run()
    total = int(end[-1]) if n else 0
    drain = max(int(stored_at.max()) - total, 0) if n else 0
    prefetch = int(loads[:, 0].sum() + latency) if n and loads[:, 0].sum() > 0 else 0
    return start, end, waited_on, total, prefetch, drain, stalls
