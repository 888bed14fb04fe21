"""Running a sweep: batches of pending runs on a local process pool or a Dask cluster.

``run(spec, store)`` expands the spec, registers its runs in the store, and hands the pending
ones out in batches (so that per-task overhead stays small next to a batch's work); each
batch's results go into the store in one transaction as it finishes. Runs are expanded,
registered and handed out ``spec.CHUNK`` at a time, never all in memory. Executors:

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

import logging
import math
import os
import re
import signal
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from hbfpsim import children
from hbfpsim.formats.threads import usable_cpus
from hbfpsim.sweep.batch import Job, Result, Task, run_batch
from hbfpsim.sweep.spec import CHUNK, SweepSpec
from hbfpsim.sweep.store import Estimate, Store, check_space
from hbfpsim.validate import ConfigError, is_integer

TASK_SECONDS = 0.25          # aim for batches of about this much work, s
RUN_SECONDS = {"timing": 0.002, "accuracy": 1.0}   # a guess per run, to size batches
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
        gemm_rows: bool | None = None, progress: bool | None = None,
        announce: Callable[[Estimate], None] | None = None) -> Outcome:
    """Run every pending run of ``spec`` into ``store`` (see the module docstring).
    ``gemm_rows``: whether each run's per-GEMM rows go into the store's ``gemms`` table
    besides its totals (default: only for ``compute = "accuracy"`` sweeps).
    ``progress``: True, False, or None for a bar only on a terminal. Before any run is
    expanded, the sweep's estimate (``store.check_space``: runs before constraints, store
    bytes) is refused when the store's disk has less space free, else given to
    ``announce``. Memory does not grow with the number of runs: they are expanded,
    registered and handed out ``spec.CHUNK`` at a time."""
    from tqdm import tqdm

    start = time.perf_counter()
    workers = _workers(workers)
    if batch is not None and not is_integer(batch, 1, 10**6):
        raise ConfigError(f"batch: expected an integer in [1, 1000000], got {batch!r}")
    _check_scheduler(scheduler)
    if gemm_rows is None:
        gemm_rows = spec.compute == "accuracy"
    elif not isinstance(gemm_rows, bool):
        raise ConfigError(f"gemm_rows: expected True, False or None, got {gemm_rows!r:.80}")
    size = check_space(spec, store, gemm_rows)
    if announce is not None:
        announce(size)
    with _opened(store) as db, _pool(scheduler, workers) as pool:
        runs, settled = db.register(spec)
        todo = runs - settled
        batches = _Batches(spec, db, todo, batch or _batch_size(spec, todo, workers))
        job = Job(tuple(p.resolve() for p in spec.traces), tuple(db.trace_ids),
                  spec.compute == "accuracy",
                  spec.sampling, spec.synthetic, spec.fit.resolve() if spec.fit else None,
                  gemm_rows)
        with tqdm(total=runs, initial=settled, unit="run",
                  desc=f"sweep {spec.name}", dynamic_ncols=True,
                  disable=None if progress is None else not progress) as bar:
            for stored in _execute(scheduler, workers, job, batches, db, batch is None, pool):
                bar.update(stored)
    return Outcome(runs, settled, todo, time.perf_counter() - start)


def _batch_size(spec: SweepSpec, todo: int, workers: int) -> int:
    """Runs per batch: about ``TASK_SECONDS`` of work, and at least four batches for each of
    ``workers`` (so that the last batches to finish are short)."""
    return max(1, min(math.ceil(TASK_SECONDS / RUN_SECONDS[spec.compute]),
                      math.ceil(todo / (4 * workers))))


class _Batches:
    """The pending runs of ``spec`` (``count`` of them) as lists of ``size`` tasks, made as
    they are handed out: the spec is expanded again, four batches' worth of runs at a time
    (at most ``CHUNK``: the first batch goes out soon), and each chunk's ids and statuses
    read from the store, so that memory does not grow with the sweep.
    ``len``: the number of batches."""

    def __init__(self, spec: SweepSpec, db: Store, count: int, size: int) -> None:
        self.spec, self.db, self.count, self.size = spec, db, count, size

    def __len__(self) -> int:
        return math.ceil(self.count / self.size)

    def __iter__(self) -> Iterator[list[Task]]:
        batch: list[Task] = []
        for runs in self.spec.chunks(min(CHUNK, 4 * self.size)):
            found = self.db.lookup(r.key for r in runs)
            for r in runs:
                run_id, status = found.get(r.key, (0, "gone"))   # gone: deleted meanwhile
                if status == "pending":
                    batch.append(Task(r.key, r.config, r.schedule, run_id))
                    if len(batch) == self.size:
                        yield batch
                        batch = []
        if batch:
            yield batch


def _workers(workers: int | None) -> int:
    if workers is None:
        return usable_cpus()
    if not is_integer(workers, 1, MAX_WORKERS):
        raise ConfigError(f"workers: expected an integer in [1, {MAX_WORKERS}], got {workers!r}")
    return int(workers)


CONNECT_SECONDS = 3.0        # how long a scheduler's address may take to answer, s
_ADDRESS = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})")


def _check_scheduler(scheduler: str | None) -> None:
    """Refuse, before the store is opened, a ``scheduler`` (``--scheduler``) that is neither
    ``None``, ``"local"`` nor ``tcp://HOST:PORT``, a Dask scheduler without
    dask[distributed] installed, and an address where nothing accepts a TCP connection
    within ``CONNECT_SECONDS`` or where what answers is not a Dask scheduler (its handshake,
    ``CONNECT_SECONDS`` more at most)."""
    if scheduler is None:
        return
    expected = ("expected 'local' (a Dask LocalCluster) or tcp://HOST:PORT (a running Dask "
                "scheduler; PORT in [1, 65535])")
    if not isinstance(scheduler, str):
        raise ConfigError(f"--scheduler: {expected}, got {scheduler!r:.80}")
    address = _ADDRESS.fullmatch(scheduler)
    if scheduler != "local" and (address is None or not 1 <= int(address[2]) <= 65535):
        raise ConfigError(f"--scheduler {scheduler!r:.80}: {expected}")
    try:
        import distributed  # noqa: F401 (installed: what the sweep needs)
    except ImportError:
        raise ConfigError(f"--scheduler {scheduler!r:.80}: a Dask scheduler needs "
                          "dask[distributed]: pip install 'hbfpsim[dask]'") from None
    if address is None:
        return
    host, port = address[1].strip("[]"), int(address[2])
    failure = _in_thread(lambda: socket.create_connection(
        (host, port), timeout=CONNECT_SECONDS).close(), CONNECT_SECONDS + 1)
    if failure is not None:                     # refused, unreachable, no such host, timeout
        raise ConfigError(f"--scheduler {scheduler}: nothing answers at that address "
                          f"({failure}); start a Dask scheduler there (dask scheduler --port "
                          f"{port}) or use --scheduler local")
    failure = _handshake(scheduler)
    if failure is not None:
        raise ConfigError(f"--scheduler {scheduler}: what answers there is not a Dask "
                          f"scheduler ({failure})")


def _handshake(address: str) -> str | None:
    """Dask's connection handshake with ``address`` (in a thread of its own: the caller may
    be running an event loop, as a notebook does); None when it succeeds, else why not, in
    one line."""
    import asyncio

    from distributed.comm import connect

    async def attempt() -> None:
        comm = await connect(address, timeout=CONNECT_SECONDS)
        await comm.close()

    with _quiet_dask():
        return _in_thread(lambda: asyncio.run(attempt()), CONNECT_SECONDS + 1,
                          foreign="it does not answer in Dask's protocol")


def _in_thread(call: Callable[[], object], seconds: float, foreign: str = "") -> str | None:
    """Run ``call`` in a daemon thread for at most ``seconds`` (a name lookup has no timeout
    of its own); None when it returns, else why not, in one line: an OSError's reason, or
    for any other exception ``foreign`` (when given) and the exception's type."""
    failures: list[str] = []

    def target() -> None:
        try:
            call()
        except (OSError, TimeoutError) as err:
            text = (err.strerror if isinstance(err, OSError) else None) or str(err)
            failures.append(" ".join((text or "timed out").split())[:200])
        except BaseException as err:        # noqa: BLE001 (reported, whatever it is)
            failures.append(f"{foreign}: {type(err).__name__}" if foreign else
                            " ".join(f"{type(err).__name__}: {err}".split())[:200])

    thread = threading.Thread(target=target, name="hbfpsim-scheduler-check", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return f"no answer within {seconds:.0f} s"
    return failures[0] if failures else None


@contextmanager
def _opened(path: str | Path) -> Iterator[Store]:
    """The sweep's store, open. One this call creates is deleted again (with its ``-wal``
    and ``-shm``) when the sweep fails or is stopped before any of its runs is done: a
    command that did nothing leaves nothing. A store that existed is always kept."""
    db = Store(path)
    try:
        yield db
    except BaseException:
        if db.created:
            try:
                keep = db.holds_results()
            except Exception:               # noqa: BLE001 (unreadable now: keep the file)
                keep = True
            if not keep:
                db.discard()
        raise
    finally:
        db.close()


def _pool(scheduler: str | None, workers: int) -> AbstractContextManager:
    """The local pool's worker processes (``python -m hbfpsim.sweep.worker``, children that
    die with this process), started before the runs are registered so that they import
    hbfpsim meanwhile; for Dask or a single worker, none (None)."""
    if scheduler is not None or workers == 1:
        return nullcontext(None)
    return children.Pool("hbfpsim.sweep.worker", workers, env=children.ONE_THREAD)


def _execute(scheduler: str | None, workers: int, job: Job, batches: _Batches, db: Store,
             resize: bool, pool: children.Pool | None) -> Iterator[int]:
    """Runs stored, batch by batch as they finish. ``resize``: a Dask cluster's batches are
    sized to its threads (``workers`` only says how many a LocalCluster starts)."""
    if not batches:
        return iter(())
    if scheduler is None and workers == 1:          # no pool: the same code, in here
        return (db.add(run_batch(job, tasks)) for tasks in batches)
    if scheduler is None:
        return _local(pool, job, batches, db.path)
    return (db.add(results) for results in _dask(scheduler, workers, job, batches, resize))


def _one_thread() -> None:
    """On a Dask worker: one numba and BLAS thread (the workers share the cores)."""
    import numba
    from threadpoolctl import threadpool_limits
    numba.set_num_threads(1)
    threadpool_limits(1)


def _local(pool: children.Pool, job: Job, batches: _Batches, store: Path) -> Iterator[int]:
    """Batches on the ``pool``'s worker processes, each given its next batch as it answers
    the last. Ctrl-C and SIGTERM, while it runs, only set a flag that the loop checks: then
    no batch is handed out, the running ones finish (a fraction of a second each; workers
    ignore Ctrl-C) and the workers end, and the signal is acted on as it would have
    been."""
    caught: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        requests = ((store, job, tasks) for tasks in batches)
        for _, kind, stored in pool.run(requests, stop=lambda: bool(caught)):
            if kind == "done":
                yield stored
        pool.close()
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


def _dask(scheduler: str, workers: int, job: Job, batches: _Batches, resize: bool
          ) -> Iterator[list[Result]]:
    """Batches as Dask tasks on ``scheduler`` (``"local"``: a LocalCluster in a child
    process), results as they finish. Dask's log lines are not shown: this process's are
    dropped (``_quiet_dask``) and the LocalCluster's go into a file in the command's
    temporary folder, which also holds Dask's local directory and is removed at the end (a
    LocalCluster that does not start is reported with the file's last line)."""
    from distributed import Client, as_completed
    from distributed.scheduler import KilledWorker

    _clear_stale_folders()
    with tempfile.TemporaryDirectory(prefix=f"{_FOLDER}{os.getpid()}-",
                                     ignore_cleanup_errors=True) as folder, _quiet_dask():
        cluster, address = None, scheduler
        try:
            if scheduler == "local":
                log = Path(folder) / "cluster.log"
                with open(log, "wb") as stderr:
                    cluster = children.start("hbfpsim.sweep.cluster", str(workers), folder,
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=stderr, env=children.ONE_THREAD)
                try:
                    address = children.receive(cluster.stdout)
                except EOFError:
                    raise ConfigError(f"--scheduler local: the Dask LocalCluster did not "
                                      f"start: {_last_line(log)}") from None
            try:
                client = Client(address, timeout="10s")
            except Exception as err:            # noqa: BLE001 (whatever Dask raises)
                reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
                raise ConfigError(f"--scheduler {scheduler}: cannot connect to the Dask "
                                  f"scheduler: {reason}") from None
            try:
                client.run(_one_thread)
                if resize:
                    batches.size = _batch_size(batches.spec, batches.count,
                                               max(1, sum(client.nthreads().values())))
                job_future = client.scatter(job, broadcast=True)
                futures = [client.submit(run_batch, job_future, tasks, pure=False)
                           for tasks in batches]
                for future in as_completed(futures):
                    try:
                        yield future.result()
                    except KilledWorker as err:
                        raise WorkerLost(f"Dask gave up on a batch after its workers died: "
                                         f"{err}; the runs finished so far are stored") from None
                    future.release()
            finally:
                client.close()
        finally:
            if cluster is not None:
                children.stop(cluster)


_FOLDER = "hbfpsim-dask-"        # the temporary folder's prefix; then the sweep's pid


def _clear_stale_folders() -> None:
    """Remove the temporary folders (``hbfpsim-dask-PID-*``, this user's) of sweeps that
    were killed outright (SIGKILL: nothing of theirs could remove them) and have ended.
    Not on Windows, where a process cannot be asked about this way."""
    if os.name == "nt":
        return
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        return
    for entry in entries:
        found = re.fullmatch(rf"{_FOLDER}([0-9]{{1,10}})-\w+", entry.name)
        if found is None or int(found[1]) == os.getpid():
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or \
                    not entry.is_dir(follow_symlinks=False):
                continue
            os.kill(int(found[1]), 0)
        except ProcessLookupError:              # that sweep has ended
            shutil.rmtree(entry.path, ignore_errors=True)
        except (OSError, OverflowError):        # running as another user, or unreadable
            continue


def _last_line(log: Path) -> str:
    """The last non-empty line of the file ``log`` (at most 300 characters), or a note."""
    try:
        lines = log.read_bytes()[-65536:].decode("utf-8", "replace").splitlines()
    except OSError:
        lines = []
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return last[:300] or "it printed nothing"


@contextmanager
def _quiet_dask() -> Iterator[None]:
    """While the block runs, this process drops the log records of Dask, Tornado and
    asyncio (Dask's event loop): a stopped or failed sweep prints only its own one line.
    Each of those loggers gets a null handler and stops propagating; both are restored."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    saved = [(logger.handlers[:], logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [logging.NullHandler()], False
    try:
        yield
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved):
            logger.handlers, logger.propagate = handlers, propagate

