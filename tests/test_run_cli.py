"""``hbfpsim run`` end to end: the table, the files, refusals, and Ctrl-C leaving nothing."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hbfpsim.cli import main

ROOT = Path(__file__).resolve().parents[1]

RUN = """
[run]
traces = ["{root}/traces/mlp_digits"]
arrays = ["array32"]
out = "{out}"
max_outputs = 512

[[variant]]
name = "fp32"
input = "fp32"

[[variant]]
name = "hbfp4"
input = "hbfp4"
block_accumulator = "fixed13"
"""


def write_run(tmp_path: Path, text: str = RUN, **fields) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text.format(root=ROOT, out=tmp_path / "out", **fields))
    return path


def test_run_prints_a_table_per_variant_and_writes_the_folder(tmp_path, capsys):
    assert main(["run", str(write_run(tmp_path)), "--quiet", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("on array32, mlp_digits") == 2
    assert "SQNR dB" in printed and "bwd_weight" in printed
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gemms.csv", "run.json", "summary.csv"]
    with open(out / "gemms.csv") as f:
        rows = list(csv.DictReader(f))
    records = len({r["record"] for r in rows})
    assert len(rows) == 2 * records
    hbfp4 = [r for r in rows if r["variant"] == "hbfp4"]
    assert {r["plan"] for r in hbfp4} == {"fixed13*32 > fp32"}   # blocks of 64 hold a 32-row chunk
    # the printed all-phase cycles of fp32 are the sum of its rows' cycles
    fp32_cycles = sum(int(r["cycles"]) for r in rows if r["variant"] == "fp32")
    assert "all  " in printed and str(fp32_cycles) in printed


def test_existing_output_is_refused_without_force(tmp_path, capsys):
    run = str(write_run(tmp_path))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main(["run", run, "--quiet", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    assert main(["run", run, "--quiet", "--no-plots", "--force"]) == 0
    assert not (tmp_path / "out" / "keep.txt").exists()


@pytest.mark.parametrize("line, words", [
    ('input = "hbfp4"', None),
    ('input = "hbfp99x"', ["input", "hbfp99x"]),
    ('inptu = "hbfp4"', ["inptu"]),
])
def test_bad_variant_is_one_line_naming_file_and_key(tmp_path, capsys, line, words):
    text = RUN.replace('input = "hbfp4"', line)
    code = main(["run", str(write_run(tmp_path, text)), "--quiet", "--no-plots"])
    err = capsys.readouterr().err.strip().splitlines()
    if words is None:
        assert code == 0
        return
    assert code == 2 and len(err) == 1
    assert "run.toml" in err[0] and all(w in err[0] for w in words)
    assert not (tmp_path / "out").exists()


def _working(proc: subprocess.Popen, cpu_seconds: float = 1.0, deadline: float = 120) -> bool:
    """Wait until ``proc`` has spent ``cpu_seconds`` of CPU time (it is past its start-up and
    computing); whether it is still running then."""
    ticks = os.sysconf("SC_CLK_TCK")
    end = time.monotonic() + deadline
    while proc.poll() is None and time.monotonic() < end:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / ticks >= cpu_seconds:   # utime + stime
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("how,status,message", [
    (signal.SIGINT, 130, "hbfpsim: interrupted"),      # Ctrl-C
    (signal.SIGTERM, 143, "hbfpsim: terminated"),      # kill, a batch scheduler's time limit
])
def test_a_signal_exits_with_one_line_and_leaves_nothing(tmp_path, how, status, message):
    slow = RUN.replace("mlp_digits", "resnet50_step") + '\n'
    slow = slow.replace("max_outputs = 512", 'max_outputs = 4096\nsynthetic = "gaussian"')
    run = write_run(tmp_path, slow)
    proc = subprocess.Popen([sys.executable, "-m", "hbfpsim", "run", str(run), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    assert _working(proc), proc.communicate()
    proc.send_signal(how)
    printed, err = proc.communicate(timeout=60)
    assert proc.returncode == status and printed == ""
    assert err.strip() == message
    assert sorted(os.listdir(tmp_path)) == ["run.toml"]


def test_an_output_under_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    run = str(write_run(tmp_path))
    assert main(["run", run, "--out", str(tmp_path / "file" / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a folder" in err[0] and "file" in err[0]
