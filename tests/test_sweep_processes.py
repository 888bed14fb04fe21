"""A sweep's processes, schedulers and stores at their boundaries: a refused ``--scheduler``
(malformed, or nothing listening) is refused in a few seconds before any store exists; a
refused store keeps no ``-wal`` / ``-shm`` beside it; a failed sweep leaves no store it
created; ``--scheduler local`` leaves nothing in the temporary folder and answers Ctrl-C
with one line; a sweep killed with SIGKILL leaves no process and its store stops changing.

The Dask tests skip without dask[distributed] (``pytest.importorskip`` in each)."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hbfpsim.cli import main
from hbfpsim.sweep import load
from hbfpsim.sweep import store as store_module
from hbfpsim.sweep.driver import run
from hbfpsim.sweep.store import Store
from hbfpsim.validate import ConfigError
from helpers import processes_of

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
[sweep]
name = "procs"
traces = ["{root}/traces/{trace}"]
base = "array32"
constraints = ["rows * cols < 2048"]

[axes]
rows = [16, 32]
cols = [16, 32]
dram_bytes_per_cycle = {dram}

[[variant]]
name = "fp32"
input = "fp32"
"""
SHORT = {"trace": "mlp_digits", "dram": "[8, 32]"}                       # 8 runs
LONG = {"trace": "resnet50_step", "dram": "{start = 1, stop = 200, step = 1}"}   # 800 runs


def write_spec(folder: Path, **fields: str) -> Path:
    path = folder / "sweep.toml"
    path.write_text(SPEC.format(root=ROOT, **{**SHORT, **fields}))
    return path


def listing(folder: Path) -> list[str]:
    """Every name under ``folder``, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(folder: Path, **more: str) -> dict[str, str]:
    """This process's environment, with this hbfpsim first on the path and ``folder/temp``
    as the temporary folder (a killed sweep leaves its own there, not in the system's)."""
    (folder / "temp").mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(folder / "temp"), **more}


def sweep_command(spec: Path, store: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "hbfpsim", "sweep", "run", str(spec), "--store", str(store),
            "--quiet", *more]


def done_runs(store: Path) -> int:
    """Runs done in ``store`` (read-only: never creates it); -1 while it cannot be read."""
    if not store.exists():
        return -1
    try:
        db = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return -1


def wait_for_runs(store: Path, proc: subprocess.Popen, count: int, seconds: float = 60) -> int:
    deadline, done = time.monotonic() + seconds, -1
    while time.monotonic() < deadline and proc.poll() is None and done < count:
        done = done_runs(store)
        time.sleep(0.05)
    return done



# --- --scheduler: refused at the boundary, before any store ------------------------------

@pytest.mark.parametrize("address", ["tcp://", "tcp://host:notaport", "udp://x:1",
                                     "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536",
                                     "tcp://:8786"])
def test_malformed_scheduler_is_refused_before_the_store(tmp_path, capsys, address):
    spec, store = write_spec(tmp_path), tmp_path / "s.sqlite"
    code = main(["sweep", "run", str(spec), "--store", str(store), "--quiet",
                 "--scheduler", address])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--scheduler" in err and "tcp://HOST:PORT" in err, err
    assert listing(tmp_path) == ["sweep.toml"]


def test_scheduler_with_nothing_listening_is_refused_in_seconds(tmp_path, capsys):
    pytest.importorskip("distributed")
    spec, store = write_spec(tmp_path), tmp_path / "s.sqlite"
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    code = main(["sweep", "run", str(spec), "--store", str(store), "--quiet",
                 "--scheduler", address])
    seconds = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--scheduler" in err and address in err, err
    assert seconds < 10
    assert listing(tmp_path) == ["sweep.toml"]


def test_scheduler_address_that_is_not_dask_is_refused_before_the_store(tmp_path, capsys):
    """Something listens, but it is not a Dask scheduler (an HTTP server's answer)."""
    pytest.importorskip("distributed")
    import threading
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                time.sleep(0.2)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    spec, store = write_spec(tmp_path), tmp_path / "s.sqlite"
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        code = main(["sweep", "run", str(spec), "--store", str(store), "--quiet",
                     "--scheduler", address])
    finally:
        stop.set()
        thread.join()
        server.close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--scheduler" in err and address in err and "not a Dask scheduler" in err, err
    assert listing(tmp_path) == ["sweep.toml"]


def test_refused_scheduler_leaves_an_existing_store_untouched(tmp_path, capsys):
    spec, store = write_spec(tmp_path), tmp_path / "s.sqlite"
    Store(store).close()
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert main(["sweep", "run", str(spec), "--store", str(store), "--quiet",
                 "--scheduler", "tcp://"]) == 2
    assert "--scheduler" in capsys.readouterr().err
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before


# --- refused stores: nothing beside them ---------------------------------------------------

def wal_database(path: Path, schema: str | None) -> None:
    """An SQLite database in WAL mode: with a ``meta`` table of ``schema``, or none."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    if schema is None:
        db.execute("CREATE TABLE t (x)")
    else:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (schema,))
    db.commit()
    db.close()


@pytest.mark.parametrize("schema", [None, "hbfpsim-sweep-store/0"])
@pytest.mark.parametrize("action", ["run", "status", "export"])
def test_refused_store_keeps_no_wal_or_shm(tmp_path, capsys, schema, action):
    spec, store = write_spec(tmp_path), tmp_path / "o.sqlite"
    wal_database(store, schema)
    before = listing(tmp_path)
    argv = {"run": ["sweep", "run", str(spec), "--store", str(store), "--quiet"],
            "status": ["sweep", "status", "--store", str(store)],
            "export": ["sweep", "export", "--store", str(store), "--out",
                       str(tmp_path / "x.csv")]}[action]
    assert main(argv) == 2
    assert "not a sweep store" in capsys.readouterr().err
    assert listing(tmp_path) == before


def test_a_store_is_kept_with_its_wal_while_open(tmp_path):
    """The check does not remove what belongs to a store in use: a second open of a store
    another connection holds open keeps its -wal and -shm."""
    store = tmp_path / "s.sqlite"
    first = Store(store)
    try:
        files = listing(tmp_path)
        assert "s.sqlite-wal" in files and "s.sqlite-shm" in files
        Store(store, create=False).close()
        assert listing(tmp_path) == files
    finally:
        first.close()


# --- a failed sweep leaves no store it created ------------------------------------------------

def test_failed_sweep_removes_the_store_it_created(tmp_path, monkeypatch):
    """Anything that fails once the store is open (here the registration, as a run refused
    while the spec is expanded does) removes the store this call created, -wal and -shm
    included; a store that existed before is kept."""
    spec, store = load(write_spec(tmp_path)), tmp_path / "s.sqlite"

    def refuse(self, *args, **kwargs):
        raise ConfigError("refused while registering")

    monkeypatch.setattr(store_module.Store, "register", refuse)
    with pytest.raises(ConfigError, match="refused while registering"):
        run(spec, store, workers=1, progress=False)
    assert listing(tmp_path) == ["sweep.toml"]
    monkeypatch.undo()
    Store(store).close()
    monkeypatch.setattr(store_module.Store, "register", refuse)
    with pytest.raises(ConfigError):
        run(spec, store, workers=1, progress=False)
    assert store.is_file()


def test_run_refused_during_expansion_leaves_no_store(tmp_path, capsys):
    """A run whose buffers cannot hold a tile stops the sweep: no store is left."""
    spec = write_spec(tmp_path).read_text().replace(
        'rows = [16, 32]', 'rows = [16, 256]\ninput_kib = [1]').replace(
        'cols = [16, 32]', 'cols = [16, 256]').replace('"rows * cols < 2048"', '"rows > 0"')
    (tmp_path / "sweep.toml").write_text(spec)
    code = main(["sweep", "run", str(tmp_path / "sweep.toml"), "--store",
                 str(tmp_path / "s.sqlite"), "--quiet"])
    assert code == 2 and "tile" in capsys.readouterr().err
    assert listing(tmp_path) == ["sweep.toml"]


# --- Dask's LocalCluster: its scratch space and its log -------------------------------------

def test_dask_local_leaves_nothing_in_the_temporary_folder(tmp_path):
    """A sweep's temporary folder (Dask's scratch space inside) is removed when it ends; the
    folder of a sweep killed outright is removed by the next, once that sweep has ended,
    and the folder of a running one is kept."""
    pytest.importorskip("distributed")
    temp = tmp_path / "temp"
    temp.mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    stale, running = temp / f"hbfpsim-dask-{ended}-x1", temp / f"hbfpsim-dask-{os.getpid()}-x2"
    for folder in (stale, running):
        (folder / "dask-scratch-space").mkdir(parents=True)
        (folder / "cluster.log").write_text("left\n")
    spec, store = write_spec(tmp_path), tmp_path / "s.sqlite"
    done = subprocess.run(sweep_command(spec, store, "--scheduler", "local", "--workers", "1"),
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=environment(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "8 computed" in done.stdout and done.stderr == ""
    assert [p.name for p in temp.iterdir()] == [running.name]


def test_ctrl_c_of_a_dask_local_sweep_prints_one_line(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) once runs are
    stored: exactly one line, status 130, no process left, the runs done kept, no temporary
    folder left."""
    pytest.importorskip("distributed")
    spec, store = write_spec(tmp_path, **LONG), tmp_path / "s.sqlite"
    proc = subprocess.Popen(sweep_command(spec, store, "--scheduler", "local", "--workers",
                                          "2", "--batch", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env=environment(tmp_path), start_new_session=True)
    try:
        assert wait_for_runs(store, proc, 1) >= 1, proc.stderr.read()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (proc.returncode, out, err.decode()) == (130, b"", "hbfpsim: interrupted\n")
    deadline = time.monotonic() + 10
    while processes_of(session=proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(session=proc.pid) == []
    assert 1 <= done_runs(store) < 800
    assert listing(tmp_path / "temp") == []           # its temporary folder is removed


# --- SIGKILL: every child dies with the sweep -------------------------------------------------

def store_state(store: Path) -> tuple:
    """Runs done and the size and time of the store's file and write-ahead log."""
    files = [store, store.with_name(store.name + "-wal")]
    return (done_runs(store), *((f.stat().st_size, f.stat().st_mtime_ns) if f.exists()
                                else None for f in files))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("scheduler", [None, "local"])
def test_sigkill_of_a_sweep_leaves_no_process_and_the_store_stops(tmp_path, scheduler):
    """Only the sweep's own process is killed (SIGKILL, as the out-of-memory killer does)
    once runs are being stored: within 5 s no process of its session is alive, and the
    store does not change afterwards."""
    if scheduler is not None:
        pytest.importorskip("distributed")
    spec, store = write_spec(tmp_path, **LONG), tmp_path / "s.sqlite"
    more = ["--scheduler", scheduler] if scheduler else []
    proc = subprocess.Popen(sweep_command(spec, store, "--workers", "2", "--batch", "1", *more),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
                            env=environment(tmp_path), start_new_session=True)
    try:
        assert wait_for_runs(store, proc, 2) >= 2 and proc.poll() is None, proc.stderr.read()
        assert len(processes_of(session=proc.pid)) >= 3         # the sweep and its workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while processes_of(session=proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = processes_of(session=proc.pid)
    finally:
        for member in processes_of(session=proc.pid):
            os.kill(int(member.split()[0]), signal.SIGKILL)
    assert left == []
    state = store_state(store)
    time.sleep(2)
    assert store_state(store) == state
    assert state[0] < 800
