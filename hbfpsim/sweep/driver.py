"""Running a sweep: batches of pending runs on a local process pool or a Dask cluster.

``run(spec, store)`` expands the spec, registers its runs in the store, and hands the pending
ones out in batches (so that per-task overhead stays small next to a batch's work); each
batch's results go into the store in one transaction as it finishes. Executors:

- no scheduler (default): ``workers`` worker processes (default: every CPU this process
  may use), each writing its batches into the store itself;
- ``"local"``: Dask, on a ``LocalCluster`` of ``workers`` processes on the loopback
  interface, which a child process (``python -m hbfpsim.sweep.cluster``) runs;
- ``"tcp://HOST:PORT"``: Dask, on an existing scheduler (workers started with ``dask
  worker``); they need hbfpsim installed and the traces at the same paths (a shared file
  system).

All give the same rows: a run's results depend only on its configuration. A worker lost
mid-batch loses nothing stored; its batch runs again (Dask reschedules it; a local pool
that breaks is an error, ``WorkerLost``, and the next start resumes).
"""

from __future__ import annotations

import math
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hbfpsim import children
from hbfpsim.formats.threads import usable_cpus
from hbfpsim.sweep.batch import Job, Result, Task, run_batch
from hbfpsim.sweep.spec import SweepSpec
from hbfpsim.sweep.store import Store
from hbfpsim.validate import ConfigError, is_integer

TASK_SECONDS = 1.0           # aim for batches of about this much work
RUN_SECONDS = {"timing": 0.01, "accuracy": 1.0}    # a guess per run, to size batches
MAX_WORKERS = 1024


@dataclass(frozen=True)
class Outcome:
    """What ``run`` did: runs in the sweep, already done before, computed now, wall s."""

    runs: int
    skipped: int
    computed: int
    seconds: float


class WorkerLost(OSError):
    """A worker process died (killed, out of memory); what finished is stored."""


def run(spec: SweepSpec, store: str | Path, *, scheduler: str | None = None,
        workers: int | None = None, batch: int | None = None,
        progress: bool | None = None) -> Outcome:
    """Run every pending run of ``spec`` into ``store`` (see the module docstring).
    ``progress``: True, False, or None for a bar only on a terminal."""
    from tqdm import tqdm

    start = time.perf_counter()
    workers = _workers(workers)
    if batch is not None and not is_integer(batch, 1, 10**6):
        raise ConfigError(f"batch: expected an integer in [1, 1000000], got {batch!r}")
    _check_scheduler(scheduler)
    runs = spec.runs()
    with Store(store) as db:
        db.register(spec, runs)
        done, ids = db.done(), db.ids()
        todo = [Task(r.key, r.config, r.schedule, ids[r.key]) for r in runs
                if r.key not in done]
        size = batch or max(1, min(math.ceil(TASK_SECONDS / RUN_SECONDS[spec.compute]),
                                   math.ceil(len(todo) / (4 * workers))))
        batches = [todo[i:i + size] for i in range(0, len(todo), size)]
        job = Job(tuple(p.resolve() for p in spec.traces), tuple(db.trace_ids),
                  spec.compute == "accuracy",
                  spec.sampling, spec.synthetic, spec.fit.resolve() if spec.fit else None)
        with tqdm(total=len(runs), initial=len(runs) - len(todo), unit="run",
                  desc=f"sweep {spec.name}", dynamic_ncols=True,
                  disable=None if progress is None else not progress) as bar:
            for stored in _execute(scheduler, workers, job, batches, db):
                bar.update(stored)
    return Outcome(len(runs), len(runs) - len(todo), len(todo), time.perf_counter() - start)


def _workers(workers: int | None) -> int:
    if workers is None:
        return usable_cpus()
    if not is_integer(workers, 1, MAX_WORKERS):
        raise ConfigError(f"workers: expected an integer in [1, {MAX_WORKERS}], got {workers!r}")
    return int(workers)


def _check_scheduler(scheduler: str | None) -> None:
    if scheduler is not None and scheduler != "local" and not (
            isinstance(scheduler, str) and scheduler.startswith("tcp://")):
        raise ConfigError(f"scheduler: expected 'local' (a Dask LocalCluster) or "
                          f"tcp://HOST:PORT (a Dask scheduler), got {scheduler!r}")


def _execute(scheduler: str | None, workers: int, job: Job, batches: list[list[Task]],
             db: Store) -> Iterator[int]:
    """Runs stored, batch by batch as they finish."""
    if not batches:
        return iter(())
    if scheduler is None and workers == 1:          # no pool: the same code, in here
        return (db.add(run_batch(job, tasks)) for tasks in batches)
    if scheduler is None:
        return _local(workers, job, batches, db.path)
    return (db.add(results) for results in _dask(scheduler, workers, job, batches))


def _one_thread() -> None:
    """On a Dask worker: one numba and BLAS thread (the workers share the cores)."""
    import numba
    from threadpoolctl import threadpool_limits
    numba.set_num_threads(1)
    threadpool_limits(1)


def _local(workers: int, job: Job, batches: list[list[Task]], store: Path) -> Iterator[int]:
    """Batches on ``workers`` worker processes (``python -m hbfpsim.sweep.worker``, children
    that die with this process), each given its next batch as it answers the last. Ctrl-C
    and SIGTERM, while it runs, only set a flag that the loop checks: then no batch is
    handed out, the running ones finish (about a second each; workers ignore Ctrl-C), and
    the signal is acted on as it would have been."""
    caught: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with children.Pool("hbfpsim.sweep.worker", min(workers, len(batches)),
                           env=children.ONE_THREAD) as pool:
            requests = ((store, job, tasks) for tasks in batches)
            for _, kind, stored in pool.run(requests, stop=lambda: bool(caught)):
                if kind == "done":
                    yield stored
    except children.ChildLost:
        raise WorkerLost("a sweep worker process died (killed, or out of memory); the runs "
                         "finished so far are stored: run the sweep again to resume") from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        handler = previous.get(caught[0])
        if callable(handler):
            handler(caught[0], None)       # Python's Ctrl-C, the command line's SIGTERM...
        elif handler == signal.SIG_DFL:
            signal.raise_signal(caught[0])
        raise KeyboardInterrupt


def _dask(scheduler: str, workers: int, job: Job, batches: list[list[Task]]
          ) -> Iterator[list[Result]]:
    try:
        from distributed import Client, as_completed
        from distributed.scheduler import KilledWorker
    except ImportError:
        raise ConfigError("a Dask scheduler needs dask[distributed]: pip install "
                          "'hbfpsim[dask]'") from None
    cluster = None
    if scheduler == "local":
        cluster = children.start("hbfpsim.sweep.cluster", str(workers),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 env=children.ONE_THREAD)
        try:
            scheduler = children.receive(cluster.stdout)
        except EOFError:
            children.stop(cluster)
            raise ConfigError("scheduler local: the Dask LocalCluster did not start (see "
                              "the messages above)") from None
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as err:
        if cluster is not None:
            children.stop(cluster)
        raise ConfigError(f"scheduler {scheduler}: cannot connect: {err}") from None
    try:
        client.run(_one_thread)
        job_future = client.scatter(job, broadcast=True)
        futures = [client.submit(run_batch, job_future, tasks, pure=False) for tasks in batches]
        for future in as_completed(futures):
            try:
                yield future.result()
            except KilledWorker as err:
                raise WorkerLost(f"Dask gave up on a batch after its workers died: {err}; "
                                 "the runs finished so far are stored") from None
            future.release()
    finally:
        client.close()
        if cluster is not None:
            children.stop(cluster)

