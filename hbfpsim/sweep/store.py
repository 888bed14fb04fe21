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
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from hbfpsim import trace as traces
from hbfpsim.config import ConfigError
from hbfpsim.replay import summary
from hbfpsim.replay.run import epoch_weights
from hbfpsim.staging import staged_file
from hbfpsim.sweep.batch import (ACCURACY_COLUMNS, RECORD_COLUMNS, TIMING_COLUMNS, Job,
                                   Result, Task, run_batch)
from hbfpsim.sweep.spec import Run, SweepSpec, trace_hashes

SCHEMA = "hbfpsim-sweep-store/1"
TOTALS = (*summary.TOTALS, "array_area_um2", "worker_seconds")   # a run's columns
EXPORTS = (".csv", ".parquet")


class Store:
    """An open store. ``create``: make it when ``path`` does not exist (an existing file must
    be a store already: anything else is refused untouched). Use as a context manager, or
    ``close()``."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        self.trace_ids: list[int] = []
        if self.path.exists() or self.path.is_symlink():
            _check_store(self.path)
        elif not create:
            raise ConfigError(f"{self.path}: no such sweep store (run `hbfpsim sweep run SPEC "
                              f"--store {self.path}` first)")
        elif not self.path.parent.is_dir():
            raise ConfigError(f"{self.path}: {self.path.parent} is not a folder")
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._create()
        except sqlite3.Error as err:
            raise ConfigError(f"{self.path}: cannot use as a sweep store: {err}") from None

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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, spec: SweepSpec, runs: Sequence[Run]) -> None:
        """Record the spec, its traces' records, and its runs as pending (runs already here
        are kept). Sets ``trace_ids``: the store's id of each of the spec's traces."""
        with self._transaction():
            self.db.execute("INSERT INTO sweeps VALUES (?, ?, ?, ?, ?)",
                            (spec.name, spec.source, spec.text, time.time(), len(runs)))
            self.trace_ids = [self._trace(path, sha)
                              for path, sha in zip(spec.traces, trace_hashes(spec))]
            self.db.executemany(
                "INSERT OR IGNORE INTO runs (key, sweep, position, run_values, resolved, "
                "status) VALUES (?, ?, ?, ?, ?, 'pending')",
                ((r.key, spec.name, i, json.dumps(r.values), r.resolved)
                 for i, r in enumerate(runs)))

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


def _check_store(path: Path) -> None:
    """That the existing ``path`` is a sweep store of this schema, read without writing."""
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
