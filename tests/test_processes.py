"""hbfpsim's helper processes, seen from the caller: the Python API run from a plain script,
``python -c``, the interactive interpreter and a notebook cell, none with an ``if __name__
== "__main__":`` guard, runs the caller's code once (no helper re-imports the caller's main
module) and gives the right results; and no process outlives a sweep killed with SIGKILL.

The replay's warm-up helper starts only on a cold numba cache; ``HBFPSIM_WARM_UP=always``
starts it here. The sweeps run on two worker processes (and, where Dask is installed, on a
Dask LocalCluster)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import processes_of

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "traces" / "mlp_digits"
MARK = "the caller's code ran"
RUN_FILE = f"""[run]
traces = ["{TRACE}"]
arrays = ["array32"]
max_outputs = 64

[[variant]]
name = "fp32"
input = "fp32"

[[variant]]
name = "hbfp4"
input = "hbfp4"
block_accumulator = "fixed13"
"""
SPEC = f"""[sweep]
name = "t"
traces = ["{TRACE}"]
base = "array32"

[axes]
rows = [16, 32]
dataflow = ["ws", "os"]

[[variant]]
name = "hbfp4"
input = "hbfp4"
block_accumulator = "fixed13"
"""
RECORDS = 24                 # of mlp_digits
RUNS = 4


def snippet(tmp: Path, scheduler: str | None = None) -> str:
    """The caller's code: one statement per line (the interactive interpreter reads it so),
    no main guard."""
    (tmp / "run.toml").write_text(RUN_FILE)
    (tmp / "sweep.toml").write_text(SPEC)
    return "\n".join([
        f"print({MARK!r})",
        "import hbfpsim.replay, hbfpsim.sweep",
        "from hbfpsim.sweep.driver import run",
        f"report = hbfpsim.replay.run({str(tmp / 'run.toml')!r}, progress=False)",
        "print('replay rows', len(report.rows))",
        f"outcome = run(hbfpsim.sweep.load({str(tmp / 'sweep.toml')!r}), "
        f"{str(tmp / 'store.sqlite')!r}, scheduler={scheduler!r}, workers=2, batch=1, "
        "progress=False)",
        "print('sweep runs', outcome.computed)",
    ]) + "\n"


def environment() -> dict[str, str]:
    return {**os.environ, "HBFPSIM_WARM_UP": "always", "PYTHONPATH": str(ROOT)}


def check(out: str, err: str) -> None:
    assert out.count(MARK) == 1, (out, err)
    assert f"replay rows {2 * RECORDS}" in out and f"sweep runs {RUNS}" in out, (out, err)
    assert "Traceback" not in err and "Error" not in err, err


def test_plain_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(snippet(tmp_path))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, env=environment(), timeout=600)
    assert done.returncode == 0, done.stderr
    check(done.stdout, done.stderr)


def test_python_c(tmp_path):
    done = subprocess.run([sys.executable, "-c", snippet(tmp_path)], capture_output=True,
                          text=True, cwd=tmp_path, env=environment(), timeout=600)
    assert done.returncode == 0, done.stderr
    check(done.stdout, done.stderr)


def test_interactive_interpreter(tmp_path):
    """``python -i``: statements read one by one from standard input, as typed at a REPL
    (its prompts go to standard error)."""
    done = subprocess.run([sys.executable, "-i", "-q"], input=snippet(tmp_path),
                          capture_output=True, text=True, cwd=tmp_path, env=environment(),
                          timeout=600)
    assert done.returncode == 0, done.stderr
    check(done.stdout, done.stderr.replace(">>> ", "").replace("... ", ""))


def test_notebook_cell(tmp_path, kernel, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("HBFPSIM_WARM_UP", "always")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(snippet(tmp_path))])
    nbclient.NotebookClient(nb, timeout=600, kernel_name=kernel,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    out = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    err = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert not [o for o in outputs if o.get("output_type") == "error"]
    check(out, err)


def test_dask_local_cluster_from_a_plain_script(tmp_path):
    pytest.importorskip("distributed")
    script = tmp_path / "script.py"
    script.write_text(snippet(tmp_path, scheduler="local"))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, env=environment(), timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(MARK) == 1 and f"sweep runs {RUNS}" in done.stdout, done


# --- no process outlives its parent -------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("scheduler", [None, "local"])
def test_sigkill_of_a_sweep_leaves_no_process(tmp_path, scheduler):
    """``hbfpsim sweep run`` on two workers (or a Dask LocalCluster), in a process group of
    its own, killed with SIGKILL once runs are being stored; only the sweep's own process is
    killed, as the kernel's out-of-memory killer would: 5 s later no process of its group
    is alive."""
    if scheduler is not None:
        pytest.importorskip("distributed")
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC.replace("mlp_digits", "resnet50_step")
                    .replace("rows = [16, 32]", "rows = [16, 32]\ndram_bytes_per_cycle = "
                             "{start = 1, stop = 200, step = 1}"))
    store = tmp_path / "store.sqlite"
    cmd = [sys.executable, "-m", "hbfpsim", "sweep", "run", str(spec), "--store", str(store),
           "--workers", "2", "--batch", "1", "--quiet",
           *(["--scheduler", scheduler] if scheduler else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline, done = time.monotonic() + 120, 0
    while time.monotonic() < deadline and proc.poll() is None and done < 2:
        if store.exists():
            try:
                with sqlite3.connect(store) as db:
                    done = db.execute("SELECT count(*) FROM runs WHERE status = 'done'"
                                      ).fetchone()[0]
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    assert done >= 2 and proc.poll() is None, proc.stderr.read()
    assert len(processes_of(group=proc.pid)) >= 3          # the sweep and its workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(5)
    left = processes_of(group=proc.pid)
    for member in left:
        os.kill(int(member.split()[0]), signal.SIGKILL)
    assert left == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_child_starts_with_ctrl_c_blocked():
    """A Ctrl-C to the process group while a child is still importing (before it ignores
    SIGINT) must not reach it: the child starts with SIGINT blocked (/proc: SigBlk), and the
    parent's own mask is as it was."""
    from hbfpsim import children
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    child = children.start("hbfpsim.sweep.worker", stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
    try:
        status = Path(f"/proc/{child.pid}/status").read_text()
        blocked = int(next(line.split()[1] for line in status.splitlines()
                           if line.startswith("SigBlk:")), 16)
        assert blocked >> (signal.SIGINT - 1) & 1
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    finally:
        child.stdin.close()
        child.wait(timeout=60)
