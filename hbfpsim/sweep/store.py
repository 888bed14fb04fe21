"""A sweep's store: one SQLite file (write-ahead log) that a sweep can be killed out of.

Tables:

- ``sweeps``: each spec run into the store (name, source, text, when);
- ``traces`` and ``records``: each trace a sweep read (name, manifest hash) and its
  records' fields that no run changes (layer, phase, M, N, K, count, ...);
- ``runs``: one row per run, keyed by its configuration hash: the swept values and the
  resolved configuration (JSON), ``status`` (``pending`` until its results are in, then
  ``done``, or ``failed`` with the reason in ``error`` when the models refuse the
  configuration) and its totals (``TOTALS``; units as in ``replay.summary``: cycles, s,
  pJ, um^2);
- ``gemms``: one row per (run, trace, record), the replay's per-GEMM columns that depend
  on the run (``batch.TIMING_COLUMNS``, and ``ACCURACY_COLUMNS`` when computed; NULL
  otherwise), by integer ids: a 10,000-run sweep of a 161-GEMM trace writes 1.6 M of them.

A run's totals and all its GEMM rows go in one transaction with its ``done``: a kill at any
moment (SIGKILL included) leaves each run either wholly done or still pending, and a
restart recomputes only the pending ones. The process that runs the sweep registers it;
results are written by local worker processes themselves (``run_and_store``) or, from Dask
workers, by that process.
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hbfpsim import trace as traces
from hbfpsim.config import ConfigError
from hbfpsim.replay import summary
from hbfpsim.replay.run import epoch_weights
from hbfpsim.staging import staged_file
from hbfpsim.sweep.batch import (ACCURACY_COLUMNS, RECORD_COLUMNS, TIMING_COLUMNS, Job,
                                   Result, Task, run_batch)
from hbfpsim.sweep.spec import CHUNK, Run, SweepSpec, trace_hashes

SCHEMA = "hbfpsim-sweep-store/1"
TOTALS = (*summary.TOTALS, "array_area_um2", "worker_seconds")   # a run's columns
EXPORTS = (".csv", ".parquet")
# Store bytes, measured on configs/sweep_demo.toml (420 runs x 161 GEMMs, timing): 1,004
# bytes per run row (its ~690 bytes of JSON, key, index entry and totals) and 146 per GEMM
# row of 16 columns, 9.2 bytes a column; rounded up.
RUN_BYTES = 1024
COLUMN_BYTES = 10


class Store:
    """An open store. ``create``: make it when ``path`` does not exist (an existing file must
    be a store already: anything else is refused untouched). Use as a context manager, or
    ``close()``."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        self.trace_ids: list[int] = []
        self.created = False            # whether this call made the file (see ``discard``)
        before = {p for p in _sidecars(self.path) if p.exists() or p.is_symlink()}
        try:
            if self.path.exists() or self.path.is_symlink():
                _check_store(self.path)
            elif not create:
                raise ConfigError(f"{self.path}: no such sweep store (run `hbfpsim sweep run "
                                  f"SPEC --store {self.path}` first)")
            elif not self.path.parent.is_dir():
                raise ConfigError(f"{self.path}: {self.path.parent} is not a folder")
            else:
                self.created = True
            try:
                self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._create()
            except sqlite3.Error as err:
                if hasattr(self, "db"):
                    self.db.close()
                raise ConfigError(f"{self.path}: cannot use as a sweep store: {err}") from None
        except BaseException:           # refused: leave the folder as it was found
            _remove_files(self.path, before, self.created)
            raise

    def _create(self) -> None:
        with self._transaction():
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA,))
            self.db.execute("CREATE TABLE IF NOT EXISTS sweeps (name TEXT, source TEXT, "
                            "spec TEXT, added REAL, runs INTEGER)")
            totals = ", ".join(f'"{c}"' for c in TOTALS)
            self.db.execute(f"CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, "
                            f"key TEXT UNIQUE NOT NULL, sweep TEXT, position INTEGER, "
                            f"run_values TEXT, resolved TEXT, status TEXT, error TEXT, "
                            f"finished REAL, {totals})")
            self.db.execute("CREATE TABLE IF NOT EXISTS traces (id INTEGER PRIMARY KEY, "
                            "name TEXT, manifest TEXT UNIQUE)")
            records = ", ".join(f'"{c}"' for c in RECORD_COLUMNS)
            self.db.execute(f"CREATE TABLE IF NOT EXISTS records (trace INTEGER, "
                            f"record INTEGER, {records}, PRIMARY KEY (trace, record))")
            gemms = ", ".join(f'"{c}"' for c in TIMING_COLUMNS + ACCURACY_COLUMNS)
            # no index: rows only ever go in with their run's 'done', in one transaction
            # (which keeps (run, trace, record) unique), and appending is twice as fast
            self.db.execute(f"CREATE TABLE IF NOT EXISTS gemms (run INTEGER NOT NULL, "
                            f"trace INTEGER NOT NULL, record INTEGER NOT NULL, {gemms})")

    def _transaction(self):
        return _Transaction(self.db)

    def close(self) -> None:
        self.db.close()

    def holds_results(self) -> bool:
        """Whether any run of the store is done or failed (has results to keep)."""
        return self.db.execute("SELECT EXISTS (SELECT 1 FROM runs WHERE status != 'pending')"
                               ).fetchone()[0] == 1

    def discard(self) -> None:
        """Close the store and delete its file with its ``-wal`` and ``-shm``: for a store
        this process created (``created``) for a sweep that could not run."""
        self.close()
        _remove_files(self.path, set(), True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, spec: SweepSpec, runs: Iterable[Run] | None = None,
                 chunk: int = CHUNK) -> tuple[int, int]:
        """Record the spec, its traces' records, and its runs as pending (runs already here
        are kept), in one transaction: a run the spec refuses (a ConfigError while expanding
        it) or a kill leaves the store as it was. ``runs`` (default: ``spec.iter_runs()``,
        made as they are stored) are inserted ``chunk`` at a time, so that memory does not
        grow with the sweep (SQLite spills a large transaction to its write-ahead log on
        disk). Sets ``trace_ids``: the store's id of each of the spec's traces. Returns
        (runs, runs already done or failed), a run given twice counted twice."""
        runs = spec.iter_runs() if runs is None else iter(runs)
        total = settled = 0
        try:
            with self._transaction():
                row = self.db.execute("INSERT INTO sweeps VALUES (?, ?, ?, ?, NULL)",
                                      (spec.name, spec.source, spec.text, time.time())
                                      ).lastrowid
                self.trace_ids = [self._trace(path, sha)
                                  for path, sha in zip(spec.traces, trace_hashes(spec))]
                while batch := list(itertools.islice(runs, chunk)):
                    self.db.executemany(
                        "INSERT OR IGNORE INTO runs (key, sweep, position, run_values, "
                        "resolved, status) VALUES (?, ?, ?, ?, ?, 'pending')",
                        ((r.key, spec.name, total + i, json.dumps(r.values), r.resolved)
                         for i, r in enumerate(batch)))
                    found = self.lookup(r.key for r in batch)
                    settled += sum(found[r.key][1] != "pending" for r in batch)
                    total += len(batch)
                self.db.execute("UPDATE sweeps SET runs = ? WHERE rowid = ?", (total, row))
        except sqlite3.Error as err:           # a full disk, among others
            raise ConfigError(f"{self.path}: cannot register the runs of {spec.name}: "
                              f"{err}") from None
        return total, settled

    def lookup(self, keys: Iterable[str]) -> dict[str, tuple[int, str]]:
        """(id, status) of each of ``keys`` that the store holds, by key; one query, whatever
        the number of keys (give a chunk of them: the answer is held in memory)."""
        return {key: (run_id, status) for key, run_id, status in self.db.execute(
            "SELECT key, id, status FROM runs WHERE key IN (SELECT value FROM json_each(?))",
            (json.dumps(list(keys)),))}

    def _trace(self, path: Path, sha: str) -> int:
        row = self.db.execute("SELECT id FROM traces WHERE manifest = ?", (sha,)).fetchone()
        if row is not None:
            return row[0]
        trace_id = self.db.execute("INSERT INTO traces (name, manifest) VALUES (?, ?)",
                                   (path.name, sha)).lastrowid
        marks = ", ".join("?" * (len(RECORD_COLUMNS) + 2))
        self.db.executemany(f"INSERT INTO records VALUES ({marks})",
                            ((trace_id, r.id, *(getattr(r, c) for c in RECORD_COLUMNS[:-1]),
                              weight[r.epoch]) for r, weight in _records(path)))
        return trace_id

    def ids(self) -> dict[str, int]:
        """The id of every run in the store, by key."""
        return dict(self.db.execute("SELECT key, id FROM runs"))

    def done(self) -> set[str]:
        """Keys of the runs whose results are in (or that failed: they would again)."""
        return {k for (k,) in self.db.execute(
            "SELECT key FROM runs WHERE status IN ('done', 'failed')")}

    def add(self, results: Iterable[Result]) -> int:
        """Store results, each run with all its GEMM rows, in one transaction; a run already
        done is left as it is. Returns how many runs were added."""
        added = 0
        sets = ", ".join(f'"{c}" = ?' for c in TOTALS)
        inserts = {accuracy: f"INSERT INTO gemms (run, trace, record, {', '.join(cols)}) "
                             f"VALUES ({', '.join('?' * (len(cols) + 3))})"
                   for accuracy, cols in ((False, TIMING_COLUMNS),
                                          (True, TIMING_COLUMNS + ACCURACY_COLUMNS))}
        with self._transaction():
            for r in results:
                if r.error is not None:
                    added += self.db.execute(
                        "UPDATE runs SET status = 'failed', finished = ?, error = ? "
                        "WHERE key = ? AND status = 'pending'",
                        (time.time(), r.error, r.key)).rowcount
                    continue
                if not self.db.execute(f"UPDATE runs SET status = 'done', finished = ?, "
                                       f"{sets} WHERE key = ? AND status = 'pending'",
                                       (time.time(), *(r.totals[c] for c in TOTALS), r.key)
                                       ).rowcount:
                    continue
                if r.gemms:
                    self.db.executemany(inserts[r.accuracy], r.gemms)
                added += 1
        return added

    def status(self) -> dict:
        """Runs per sweep and status, and the store's totals."""
        per = {}
        for sweep, status, count in self.db.execute(
                "SELECT sweep, status, count(*) FROM runs GROUP BY sweep, status"):
            per.setdefault(sweep, {"done": 0, "failed": 0, "pending": 0})[status] = count
        gemms = self.db.execute("SELECT count(*) FROM gemms").fetchone()[0]
        errors = self.db.execute("SELECT error, count(*) FROM runs WHERE status = 'failed' "
                                 "GROUP BY error ORDER BY count(*) DESC LIMIT 5").fetchall()
        return {"sweeps": per, "gemm_rows": gemms, "errors": errors}

    def rows(self) -> tuple[list[str], list[tuple]]:
        """One row per done run: every swept key, then the totals (export's columns)."""
        found = self.db.execute("SELECT key, run_values, " + ", ".join(f'"{c}"' for c in TOTALS)
                                + " FROM runs WHERE status = 'done' ORDER BY sweep, position"
                                ).fetchall()
        swept: list[str] = []
        values = [json.loads(v) for _, v, *_ in found]
        for v in values:
            swept.extend(k for k in v if k not in swept)
        header = ["key", *swept, *TOTALS]
        return header, [(key, *(v.get(k) for k in swept), *rest)
                        for (key, _, *rest), v in zip(found, values)]


@dataclass(frozen=True)
class Estimate:
    """A sweep's size before it is expanded: ``runs`` (the product of its axes' lengths,
    before constraints: an upper bound), ``gemms`` (GEMMs per run: its traces' records)
    and ``bytes`` (of store those runs take when done: ``RUN_BYTES`` per run and, when its
    GEMM rows are stored, ``COLUMN_BYTES`` per column of each)."""

    runs: int
    gemms: int
    bytes: int
    gemm_rows: bool = True      # whether the GEMM rows are stored (else only counted)

    def line(self) -> str:
        """One line: the runs, GEMM rows and bytes, for a person."""
        stored = "GEMM rows" if self.gemm_rows else "GEMMs (totals only)"
        return (f"at most {self.runs:,} runs (before constraints) x {self.gemms:,} {stored} "
                f"each: a store of up to {_size(self.bytes)}")


def estimate(spec: SweepSpec, gemm_rows: bool = True) -> Estimate:
    """How large ``spec``'s sweep is, read from its axes and its traces' manifests (no run
    is expanded); ``gemm_rows``: whether the runs' per-GEMM rows are stored."""
    columns = 3 + len(TIMING_COLUMNS) + (len(ACCURACY_COLUMNS) if spec.compute == "accuracy"
                                         else 0)
    gemms = sum(len(traces.open(path)) for path in spec.traces)
    row_bytes = gemms * columns * COLUMN_BYTES if gemm_rows else 0
    return Estimate(spec.size, gemms, spec.size * (RUN_BYTES + row_bytes), gemm_rows)


def check_space(spec: SweepSpec, path: str | Path, gemm_rows: bool = True) -> Estimate:
    """``spec``'s estimate, or a ConfigError (with the estimate) when the runs would take
    more bytes than the store's disk has free (``shutil.disk_usage`` of its folder; the
    store's current size is counted as already taken). A folder that does not exist is left
    to ``Store`` to refuse."""
    path = Path(path)
    found = estimate(spec, gemm_rows)
    if not path.parent.is_dir():
        return found
    have = path.stat().st_size if path.is_file() else 0
    free = shutil.disk_usage(path.parent).free
    if found.bytes - have > free:
        raise ConfigError(f"{path}: the sweep {spec.name} needs more space than its disk has "
                          f"free ({_size(free)}): {found.line()}; narrow the axes or put the "
                          "store on a larger disk")
    return found


def _size(count: int) -> str:
    """A number of bytes for a person: 1.5 GB (powers of 1000)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} bytes"


def _records(path: Path):
    """(record, epoch weights) of a trace's records."""
    t = traces.open(path)
    weights = epoch_weights(t) if len(t) else {}
    return [(r, weights) for r in t.records]


_OPEN: dict[Path, Store] = {}      # per worker process: its connection to each store


def run_and_store(path: Path, job: Job, tasks: list[Task]) -> int:
    """A local worker's task: run the batch and write it into the store itself (one
    transaction; SQLite serializes the workers' writes), sparing the sweep's own process the
    results' transfer and insertion. Returns the runs stored."""
    if path not in _OPEN:
        _OPEN[path] = Store(path, create=False)
    return _OPEN[path].add(run_batch(job, tasks))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (Ctrl-C included)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, error, tb) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def open_existing(path: str | Path) -> Store:
    """A store that must exist already (status, export)."""
    return Store(path, create=False)


def _sidecars(path: Path) -> list[Path]:
    """The files SQLite keeps beside a database ``path``: its write-ahead log, its shared
    memory index and its rollback journal."""
    if not path.name:                   # "", ".", "/": no file of that name
        return []
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _remove_files(path: Path, keep: set[Path], store: bool) -> None:
    """Remove the SQLite files beside ``path`` that are not in ``keep`` (those that existed
    before it was opened), and ``path`` itself when ``store``. Opening a database in WAL
    mode, read-only included, makes a ``-wal`` and a ``-shm`` beside it; a refused file
    keeps neither."""
    for file in (*_sidecars(path), *([path] if store else [])):
        if file not in keep:
            try:
                file.unlink(missing_ok=True)
            except OSError:             # a folder of that name, or no permission: not ours
                pass


def _check_store(path: Path) -> None:
    """That the existing ``path`` is a sweep store of this schema, read without writing
    (``Store`` removes the ``-wal`` and ``-shm`` a read-only open of a WAL database makes
    when it refuses the file)."""
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file (a sweep store is one SQLite file)")
    try:
        with open(path, "rb") as f:
            header = f.read(16)
        if header != b"SQLite format 3\0":
            raise ConfigError(f"{path}: not a sweep store (not an SQLite file)")
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        finally:
            db.close()
    except (sqlite3.Error, OSError) as err:
        raise ConfigError(f"{path}: not a sweep store ({err})") from None
    if row is None or row[0] != SCHEMA:
        raise ConfigError(f"{path}: not a sweep store of schema {SCHEMA!r}")


def export(store: Store, out: str | Path, force: bool = True) -> Path:
    """Write one row per done run to ``out`` (.csv, or .parquet with pyarrow), atomically."""
    out = Path(out)
    if out.suffix not in EXPORTS:
        raise ConfigError(f"{out}: the export goes to a .csv or .parquet file")
    header, rows = store.rows()
    if out.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("Parquet export needs pyarrow: pip install 'hbfpsim[parquet]'") \
                from None
        table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(header)})
        with staged_file(out, force) as tmp:
            pq.write_table(table, tmp)
        return out
    with staged_file(out, force) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if v is None else repr(v) if isinstance(v, float) else v
                          for v in row] for row in rows)
    return out
