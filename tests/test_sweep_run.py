"""Running sweeps: the store's rows against replay's, resume after SIGKILL, Dask executors,
export, and the command line."""

import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hbfpsim import replay
from hbfpsim.cli import main
from hbfpsim.sweep import load
from hbfpsim.sweep.batch import TIMING_COLUMNS
from hbfpsim.sweep.driver import run
from hbfpsim.sweep.store import TOTALS, Store, export

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
[sweep]
name = "t"
traces = ["{root}/traces/mlp_digits"]
base = "array32"
constraints = ["rows * cols < 2048"]

[axes]
rows = [16, 32, 64]
cols = [16, 32]
dataflow = ["ws", "os"]
dram_bytes_per_cycle = [8, 32]

[[variant]]
name = "fp32"
input = "fp32"

[[variant]]
name = "hbfp4"
input = "hbfp4"
block_accumulator = "fixed13"
"""
RUNS = 2 * (3 * 2 - 1) * 2 * 2          # variants x shapes (not 64 x 32) x dataflows x DRAM
RECORDS = 24


def write_spec(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text.format(root=ROOT))
    return path


def contents(store: Path) -> tuple[list, list]:
    """Every run's key, status and totals (not its worker time) and every GEMM row, by key."""
    db = sqlite3.connect(store)
    cols = ", ".join(f'"{c}"' for c in TOTALS if c != "worker_seconds")
    runs = db.execute(f"SELECT key, status, {cols} FROM runs ORDER BY key").fetchall()
    gemms = db.execute("SELECT runs.key, traces.name, gemms.* FROM gemms JOIN runs ON "
                       "runs.id = gemms.run JOIN traces ON traces.id = gemms.trace "
                       "ORDER BY runs.key, gemms.record").fetchall()
    db.close()
    return runs, [(key, trace, *row[2:]) for key, trace, *row in gemms]


def wait_for_done(store: Path, proc: subprocess.Popen, runs: int) -> int:
    """Poll ``store`` until at least ``runs`` runs are done (or ``proc`` ends, or 120 s
    pass); returns how many were done. Never connects before the store exists (connecting
    would create an empty file that the sweep then refuses as not a store)."""
    deadline, done = time.monotonic() + 120, 0
    while time.monotonic() < deadline and proc.poll() is None and done < runs:
        if store.exists():
            try:
                with sqlite3.connect(store) as db:
                    done = db.execute("SELECT count(*) FROM runs WHERE status = 'done'"
                                      ).fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
        time.sleep(0.05)
    return done


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, tuple]:
    """The sweep, uninterrupted, in this process."""
    tmp = tmp_path_factory.mktemp("reference")
    store = tmp / "ref.sqlite"
    outcome = run(load(write_spec(tmp)), store, workers=1, gemm_rows=True, progress=False)
    assert (outcome.runs, outcome.computed) == (RUNS, RUNS)
    return store, contents(store)


def test_a_timing_sweep_stores_the_same_totals_without_gemm_rows(reference, tmp_path):
    """By default a timing sweep stores each run's totals only: the same totals as with its
    GEMM rows, and no row; ``gemm_rows=False`` says so explicitly for any sweep."""
    store = tmp_path / "totals.sqlite"
    assert run(load(write_spec(tmp_path)), store, workers=1, progress=False).computed == RUNS
    runs, gemms = contents(store)
    assert runs == reference[1][0] and gemms == []
    with Store(store) as db:
        assert db.status()["gemm_rows"] == 0


def test_store_rows_are_the_replays(reference, tmp_path):
    """Each run's GEMM rows and totals equal what ``hbfpsim run`` computes for that array
    and variant (replay.run with a run file of that configuration)."""
    store, (runs, gemms) = reference
    assert len(runs) == RUNS and all(r[1] == "done" for r in runs)
    assert len(gemms) == RUNS * RECORDS
    assert len({(g[0], g[2]) for g in gemms}) == len(gemms)     # none twice
    db = Store(store)
    key, values = db.db.execute("SELECT key, run_values FROM runs WHERE position = 17"
                                ).fetchone()
    db.close()
    values = json.loads(values)
    config = tmp_path / "a.toml"
    config.write_text(
        f'[array]\nrows = {values["rows"]}\ncols = {values["cols"]}\n'
        f'dataflow = "{values["dataflow"]}"\n[buffers]\ninput_kib = 64\nweight_kib = 64\n'
        f'output_kib = 64\n[dram]\nbytes_per_cycle = {values["dram_bytes_per_cycle"]}\n'
        f'latency_cycles = 100\n')
    variant = {"fp32": 'input = "fp32"',
               "hbfp4": 'input = "hbfp4"\nblock_accumulator = "fixed13"'}[values["variant"]]
    runfile = tmp_path / "run.toml"
    runfile.write_text(f'[run]\ntraces = ["{ROOT}/traces/mlp_digits"]\narrays = ["a.toml"]\n'
                       f'[[variant]]\nname = "{values["variant"]}"\n{variant}\n')
    report = replay.run(replay.load(runfile), progress=False)
    mine = sorted((g for g in gemms if g[0] == key), key=lambda g: g[2])
    assert len(mine) == RECORDS
    for row, got in zip(sorted(report.rows, key=lambda r: r.record), mine):
        assert got[2] == row.record
        assert got[3:3 + len(TIMING_COLUMNS)] == tuple(getattr(row, c) for c in TIMING_COLUMNS)
    total = [s for s in report.summary() if s.phase == "all"][0]
    got = dict(zip(("key", "status", *[c for c in TOTALS if c != "worker_seconds"]),
                   next(r for r in runs if r[0] == key)))
    for name in ("macs", "cycles", "stall_cycles", "energy_pj", "utilization", "density"):
        assert got[name] == pytest.approx(getattr(total, name), rel=1e-12), name


def test_resume_recomputes_nothing(reference, tmp_path):
    store, want = reference
    copy = tmp_path / "again.sqlite"
    copy.write_bytes(store.read_bytes())
    outcome = run(load(write_spec(tmp_path)), copy, workers=1, gemm_rows=True, progress=False)
    assert (outcome.skipped, outcome.computed) == (RUNS, 0)
    assert contents(copy) == want


def test_sigkill_mid_sweep_then_resume_gives_the_uninterrupted_rows(tmp_path):
    """``hbfpsim sweep run`` killed with SIGKILL once some runs are stored (two worker
    processes, batches of one run), then started again: every run exactly once, the same
    rows as the same sweep run uninterrupted. 400 runs of the ResNet-50 step: long enough
    that the kill lands mid-sweep."""
    long = SPEC.replace("mlp_digits", "resnet50_step").replace(
        "dram_bytes_per_cycle = [8, 32]", "dram_bytes_per_cycle = {{start = 1, stop = 20, step = 1}}")
    spec, store = write_spec(tmp_path, long), tmp_path / "killed.sqlite"
    runs, records = 2 * 5 * 2 * 20, 161
    cmd = [sys.executable, "-m", "hbfpsim", "sweep", "run", str(spec), "--store", str(store),
           "--workers", "2", "--batch", "1", "--gemm-rows", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    done = wait_for_done(store, proc, 5)
    os.killpg(proc.pid, signal.SIGKILL)        # the command and its worker processes
    proc.wait()
    assert 5 <= done < runs, f"killed after {done} runs: {proc.stderr.read()!r}"
    with sqlite3.connect(store) as db:
        before = db.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
        rows = db.execute("SELECT count(*) FROM gemms").fetchone()[0]
    assert before < runs and rows == before * records      # no run half-stored
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    whole = tmp_path / "whole.sqlite"
    assert run(load(spec), whole, workers=1, gemm_rows=True, progress=False).computed == runs
    assert contents(store) == contents(whole)


def test_dask_local_cluster_gives_the_same_rows(reference, tmp_path):
    pytest.importorskip("distributed")
    store = tmp_path / "dask.sqlite"
    outcome = run(load(write_spec(tmp_path)), store, scheduler="local", workers=2,
                  batch=4, gemm_rows=True, progress=False)
    assert outcome.computed == RUNS
    assert contents(store) == reference[1]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def test_dask_scheduler_and_workers_started_by_dask(reference, tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on loopback, through
    ``--scheduler tcp://...``; one worker is killed (SIGKILL) mid-sweep: no run is lost,
    the rows are the local ones."""
    pytest.importorskip("distributed")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--dashboard-address", ":0", "--no-show"])]
    try:
        for _ in range(2):
            procs.append(_start([dask, "worker", address, "--host", "127.0.0.1",
                                 "--nworkers", "1", "--nthreads", "1", "--no-dashboard"]))
        from distributed import Client
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        store = tmp_path / "tcp.sqlite"
        spec = write_spec(tmp_path)
        cmd = [sys.executable, "-m", "hbfpsim", "sweep", "run", str(spec), "--store",
               str(store), "--scheduler", address, "--batch", "1", "--gemm-rows", "--quiet"]
        sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for_done(store, sweep, 3)
        os.killpg(procs[1].pid, signal.SIGKILL)            # one worker, mid-sweep
        out, err = sweep.communicate(timeout=300)
        assert sweep.returncode == 0, err
        assert contents(store) == reference[1]
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def test_export_csv_and_parquet(reference, tmp_path):
    store, (runs, _) = reference
    with Store(store) as db:
        out = export(db, tmp_path / "runs.csv")
        header, rows = db.rows()
    with open(out) as f:
        table = list(csv.reader(f))
    assert table[0] == header
    assert header[:6] == ["key", "variant", "rows", "cols", "dataflow", "dram_bytes_per_cycle"]
    assert header[6:] == list(TOTALS) and len(table) == RUNS + 1
    by_key = {r[0]: r for r in runs}
    for line in table[1:]:
        assert float(line[header.index("cycles")]) == by_key[line[0]][2 + TOTALS.index("cycles")]
    pq = pytest.importorskip("pyarrow.parquet")
    with Store(store) as db:
        export(db, tmp_path / "runs.parquet")
    frame = pq.read_table(tmp_path / "runs.parquet").to_pylist()
    assert [list(r.values()) for r in frame] == [list(r) for r in rows]


def test_cli_sweep_commands(reference, tmp_path, capsys):
    store, _ = reference
    assert main(["sweep", "status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"{RUNS * RECORDS:,} GEMM rows" in out
    assert re.search(rf"^t\s+{RUNS}\s+{RUNS}\s+0\s+0$", out, re.M), out
    assert main(["sweep", "export", "--store", str(store), "--out",
                 str(tmp_path / "x.txt")]) == 2
    assert "a .csv or .parquet file" in capsys.readouterr().err
    assert main(["sweep", "status", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert "no such sweep store" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()
    spec = write_spec(tmp_path)
    assert main(["sweep", "run", str(spec), "--store", str(spec)]) == 2     # not a store
    assert "not a sweep store" in capsys.readouterr().err
    assert spec.read_text() == SPEC.format(root=ROOT)
    assert main(["sweep", "run", str(spec), "--store", str(tmp_path / "s.sqlite"),
                 "--scheduler", "udp://x"]) == 2
    assert "tcp://HOST:PORT" in capsys.readouterr().err
    assert main(["sweep", "run", str(spec), "--store", str(tmp_path / "s.sqlite"),
                 "--workers", "0"]) == 2
    assert "workers: expected an integer" in capsys.readouterr().err


def test_accuracy_sweep_stores_the_sampled_metrics(tmp_path):
    """compute = "accuracy": every GEMM row carries its sampled SQNR and W1, and each run's
    medians are the medians of its rows' values, computed here by hand."""
    text = (SPEC.replace('base = "array32"', 'base = "array32"\ncompute = "accuracy"\n'
                         'max_outputs = 64\nmax_macs = 262144')
            .replace("rows = [16, 32, 64]", "rows = [32]").replace("cols = [16, 32]",
                                                                   "cols = [32]")
            .replace('dataflow = ["ws", "os"]', 'dataflow = ["ws"]')
            .replace("dram_bytes_per_cycle = [8, 32]", "dram_bytes_per_cycle = [32]"))
    store = tmp_path / "acc.sqlite"
    assert run(load(write_spec(tmp_path, text)), store, workers=1, progress=False).computed == 2
    db = sqlite3.connect(store)
    for run_id, sqnr, w1 in db.execute("SELECT id, sqnr_db_median, w1_median FROM runs"):
        rows = db.execute("SELECT sqnr_db, w1 FROM gemms WHERE run = ? AND sampled IS NOT NULL",
                          (run_id,)).fetchall()
        assert len(rows) == RECORDS
        values = sorted(r[0] for r in rows)
        assert sqnr == pytest.approx((values[11] + values[12]) / 2, rel=1e-12)
        values = sorted(r[1] for r in rows)
        assert w1 == pytest.approx((values[11] + values[12]) / 2, rel=1e-12)
    fp32, hbfp4 = (db.execute("SELECT sqnr_db_median FROM runs WHERE run_values LIKE ?",
                              (f'%"{v}"%',)).fetchone()[0] for v in ("fp32", "hbfp4"))
    assert fp32 > hbfp4 + 60                       # 24 mantissa bits against 3
    db.close()


@pytest.mark.parametrize("signum, status, line", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_and_sigterm_stop_the_workers_and_keep_whole_runs(tmp_path, signum, status,
                                                                   line):
    """Ctrl-C (to the whole process group, as a terminal sends it) or SIGTERM: one line, the
    status, no worker left running, and the store holds whole runs only."""
    long = SPEC.replace("mlp_digits", "resnet50_step").replace(
        "dram_bytes_per_cycle = [8, 32]", "dram_bytes_per_cycle = {{start = 1, stop = 100, step = 1}}")
    spec, store = write_spec(tmp_path, long), tmp_path / "stopped.sqlite"      # 2,000 runs
    proc = subprocess.Popen([sys.executable, "-m", "hbfpsim", "sweep", "run", str(spec),
                             "--store", str(store), "--workers", "2", "--batch", "1",
                             "--gemm-rows", "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            start_new_session=True)
    assert wait_for_done(store, proc, 3) >= 3
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.decode()) == (status, f"hbfpsim: {line}\n")
    deadline = time.monotonic() + 10     # the fork server and resource tracker follow
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break                                    # nothing of the group is left
        time.sleep(0.1)
    else:
        pytest.fail("processes of the sweep outlived it")
    with sqlite3.connect(store) as db:
        done = db.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
        assert db.execute("SELECT count(*) FROM gemms").fetchone()[0] == done * 161
        assert done < 2000
