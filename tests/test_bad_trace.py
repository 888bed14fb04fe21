"""The trace layer's boundary: every bad manifest, operand, option, topology or interruption
gives one line naming the file / key / argument and what was expected, never a traceback, a
hang, a wrong result or debris left behind."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from hbfpsim import cli, trace
from hbfpsim.trace import TraceError, TraceWarning, TraceWriter
from hbfpsim.trace.manifest import MAX_MANIFEST_BYTES
from hbfpsim.trace.scalesim import import_topology

RECORD = {"id": 0, "step": 0, "epoch": 0, "layer": "fc", "phase": "fwd", "m": 2, "n": 3, "k": 4}


def manifest(path: Path, text: str | bytes) -> Path:
    path.mkdir()
    target = path / "manifest.json"
    target.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def data(**changes) -> str:
    doc = {"schema": "hbfpsim-trace/1", "model": "m", "records": [dict(RECORD)]}
    for key, value in changes.items():
        if key.startswith("r_"):
            doc["records"][0][key[2:]] = value
        else:
            doc[key] = value
    return json.dumps(doc)


def one_error_line(capsys) -> str:
    """The CLI's stderr: exactly one line, an error, no traceback."""
    err = capsys.readouterr().err
    assert err.startswith("hbfpsim: error: ") and err.count("\n") == 1, err
    return err


def entries(folder: Path) -> list[str]:
    """Everything in ``folder``, hidden names included (staging leaves ``.NAME.tmp-PID``)."""
    return sorted(p.name for p in folder.iterdir())


# --- 1. manifests -----------------------------------------------------------------------
@pytest.mark.parametrize("text,message", [
    (data(capture=5), "'capture' must be a JSON object, got 5"),
    (data(capture=[1, 2]), r"'capture' must be a JSON object, got \[1, 2\]"),
    (data(capture="abc"), "'capture' must be a JSON object, got 'abc'"),
    (data(description=7), "'description' must be a JSON string, got 7"),
    (data(model=None), "'model' must be a JSON string, got None"),
    (data(records={"0": RECORD}), "'records' must be a JSON array"),
    (data(extra=1), "unknown key 'extra' .a manifest has schema, model, description, capture"),
    ("[]", r"must be a JSON object, got \[\]"),
    ("[" * 200_000, "not valid JSON: nested too deeply"),
    (data(r_m=True), r"record 0: 'm' must be an integer from 1 to 2\*\*40, got True"),
    (data(r_k=4.0), r"record 0: 'k' must be an integer from 1 to 2\*\*40, got 4.0"),
    (data(r_n=2**40 + 1), r"record 0: 'n' must be an integer from 1 to 2\*\*40"),
    (data(r_count=2**40), r"record 0: A would have .* elements .*; at most 2\*\*40"),
    (data(r_m=2**21, r_n=2**21, r_k=1), r"record 0: C would have 4,398,046,511,104 elements"),
    (data(r_step=2**62 + 1), r"record 0: 'step' must be an integer from 0 to 2\*\*62"),
    (data(r_id=-1), r"record 0: 'id' must be an integer from 0 to 2\*\*62, got -1"),
    (data(r_layer=3), "record 0: 'layer' must be a string, got 3"),
    (data().replace('"m": 2', '"m": NaN'), "not valid JSON: NaN is not a number JSON allows"),
    (data().replace('"m": 2', '"m": Infinity'), "not valid JSON: Infinity is not a number"),
    (data().replace('"m": 2', '"m": 1e999'), "not valid JSON: 1e999 is out of the float range"),
    (data().replace('"m": 2', '"m": 2, "m": 3'), "not valid JSON: duplicate key 'm'"),
    (data().replace('"m": 2', '"m": ' + "9" * 5000), "not valid JSON: .*digits"),
    (data().encode().replace(b'"fc"', b'"f\xffc"'), r"not UTF-8 text \(byte \d+: invalid start"),
    (json.dumps({"schema": "hbfpsim-trace/1", "model": "m", "records": [{**RECORD, "m": None}]}),
     "record 0: 'm' must be an integer from 1 to 2"),
    (json.dumps({"schema": "hbfpsim-trace/1", "model": "m",
                 "records": [{k: v for k, v in RECORD.items() if k != "k"}]}),
     "record 0: missing field 'k'"),
])
def test_bad_manifests_name_the_manifest(tmp_path, capsys, text, message):
    path = manifest(tmp_path / "t", text)
    with pytest.raises(TraceError, match=message) as info:
        trace.open(path)
    assert str(info.value).startswith(f"{path / 'manifest.json'}: ")
    assert cli.main(["trace", "info", str(path)]) == 2
    assert one_error_line(capsys) == f"hbfpsim: error: {info.value}\n"


def test_manifests_that_are_not_regular_files(tmp_path, capsys):
    (tmp_path / "dir" / "manifest.json").mkdir(parents=True)
    with pytest.raises(TraceError, match=r"dir/manifest.json: not a regular file"):
        trace.open(tmp_path / "dir")
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "manifest.json")
    with pytest.raises(TraceError, match=r"fifo/manifest.json: not a regular file"):
        trace.open(tmp_path / "fifo")
    (tmp_path / "file").write_text("{}")
    assert cli.main(["trace", "info", str(tmp_path / "file")]) == 2
    assert "file: not a folder (a trace is a folder holding manifest.json)" in \
        one_error_line(capsys)


def test_a_huge_manifest_is_refused_unread(tmp_path):
    (tmp_path / "big").mkdir()
    with open(tmp_path / "big" / "manifest.json", "wb") as f:
        f.truncate(MAX_MANIFEST_BYTES + 1)                  # sparse: nothing is written
    with pytest.raises(TraceError, match=r"manifest.json: 268,435,457 bytes, more than a "
                                         r"manifest may have \(268,435,456\)"):
        trace.open(tmp_path / "big")


# --- 2, 3. operand files: FIFOs, links, absolute paths -------------------------------------
def operand_trace(path: Path) -> Path:
    with TraceWriter(path, "toy") as w:
        w.add("fc", "fwd", 2, 3, 4, a=np.ones((2, 4)), b=np.ones((4, 3)))
    return path


def test_a_fifo_operand_is_refused_without_blocking(tmp_path):
    path = operand_trace(tmp_path / "t")
    (path / "operands" / "000000_a.npy").unlink()
    os.mkfifo(path / "operands" / "000000_a.npy")
    done = subprocess.run([sys.executable, "-m", "hbfpsim", "trace", "info", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"hbfpsim: error: {path}/operands/000000_a.npy (record 0, fc fwd): "
                           "not a regular file\n")


def test_operand_links_must_resolve_inside_the_trace(tmp_path):
    path = operand_trace(tmp_path / "t")
    a = path / "operands" / "000000_a.npy"
    outside = tmp_path / "secret.npy"
    np.save(outside, np.zeros((2, 4), np.float32))
    a.rename(path / "operands" / "real_a.npy")
    a.symlink_to("real_a.npy")                                # inside: fine
    assert trace.open(path).records[0].a == "operands/000000_a.npy"
    a.unlink()
    a.symlink_to(outside)
    with pytest.raises(TraceError, match=f"000000_a.npy .record 0, fc fwd.: resolves to "
                                         f"{outside}, outside the trace directory"):
        trace.open(path)
    (path / "operands").rename(path / "ops")
    (path / "operands").symlink_to(tmp_path)                  # a linked folder, same thing
    (tmp_path / "000000_a.npy").symlink_to(outside)
    with pytest.raises(TraceError, match="outside the trace directory"):
        trace.open(path)


def test_absolute_operand_paths_are_refused(tmp_path):
    path = operand_trace(tmp_path / "t")
    doc = json.loads((path / "manifest.json").read_text())
    doc["records"][0]["a"] = str(path / "operands" / "000000_a.npy")
    (path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(TraceError, match="record 0: 'a' must be a relative .npy path inside"):
        trace.open(path)


# --- 4. capture options -----------------------------------------------------------------
def linear():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(),
                                      torch.nn.Linear(3, 2))


@pytest.mark.parametrize("options,message", [
    ({"stepz": [1]}, ("capture: unknown option 'stepz' .the options are steps, layers, "
                      "max_bytes, name, description, force.")),
    ({"steps": [-1]}, r"capture: steps must be a list of integers >= 0 .*got \[-1\]"),
    ({"steps": ["0"]}, r"capture: steps must be a list of integers >= 0 .*got \['0'\]"),
    ({"steps": 3}, "capture: steps must be a list of integers"),
    ({"layers": "0"}, ("capture: layers must be a list of module name patterns .strings., "
                       "got '0'")),
    ({"layers": [0]}, "capture: layers must be a list of module name patterns"),
    ({"layers": ["0", "nomatch*"]}, ("capture: layers pattern 'nomatch.' matches no module "
                                     "of the model .its modules: 0, 1, 2, <functional>, "
                                     "Sequential.")),
    ({"max_bytes": -1}, ("capture: max_bytes must be a finite number >= 0 .or None for no "
                         "limit., got -1")),
    ({"max_bytes": float("nan")}, "capture: max_bytes must be a finite number >= 0"),
    ({"max_bytes": float("inf")}, "capture: max_bytes must be a finite number >= 0"),
    ({"max_bytes": "1e6"}, "capture: max_bytes must be a finite number >= 0"),
    ({"name": 5}, "capture: name must be a string, got 5"),
])
def test_capture_options_are_checked(tmp_path, options, message):
    _, model = linear()
    with pytest.raises(ValueError, match=message):
        trace.capture(tmp_path / "t", model, **options)
    assert entries(tmp_path) == []


def test_capture_warns_when_it_records_nothing(tmp_path):
    torch, model = linear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with trace.capture(tmp_path / "t", model, steps=[5, 9]) as cap:
            cap.start_step()
            model(torch.randn(2, 4)).sum().backward()
    assert all(w.category is TraceWarning for w in caught)
    messages = [str(w.message) for w in caught]
    assert messages == [f"{tmp_path / 't'}: steps 5, 9 were never reached (the last step was 0)",
                        (f"{tmp_path / 't'}: the trace has 0 records (no GEMM ran in a "
                         "recorded step; call cap.start_step() at the start of each step)")]
    assert len(trace.open(tmp_path / "t")) == 0


SCRIPT = """\
import time
from pathlib import Path
import torch
def main(capture):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with capture(model{options}) as cap:
        for step in range(3):
            cap.start_step()
            model(torch.randn(2, 4)).sum().backward()
        {then}
"""


def script(tmp_path: Path, then: str = "pass", options: str = "") -> str:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT.format(then=then, options=options))
    return str(path)


@pytest.mark.parametrize("args,message", [
    (["--layers", "nomatch*"], ("capture: layers pattern 'nomatch*' matches no module of the "
                                "model (its modules: 0, <functional>, Sequential)")),
    (["--steps", "1,x"], "--steps must be comma-separated integers >= 0, got '1,x'"),
    (["--steps", "-1"], "--steps must be comma-separated integers >= 0, got '-1'"),
    (["--max-mb", "-1"], "--max-mb must be a number of MB from 0 to 1e12, got -1.0"),
    (["--max-mb", "nan"], "--max-mb must be a number of MB from 0 to 1e12, got nan"),
    (["--epochs", "3"], "--epochs applies to the built-in examples (mlp-digits, cnn-digits)"),
])
def test_capture_cli_options(tmp_path, capsys, args, message):
    pytest.importorskip("torch")
    src = script(tmp_path)
    assert cli.main(["capture", src, "--out", str(tmp_path / "t"), *args]) == 2
    assert message in one_error_line(capsys)
    assert entries(tmp_path) == ["train.py"]


def test_capture_cli_script_errors(tmp_path, capsys):
    pytest.importorskip("torch")
    src = script(tmp_path, options=", stepz=[1]")
    assert cli.main(["capture", src, "--out", str(tmp_path / "t")]) == 2
    assert "capture: unknown option 'stepz'" in one_error_line(capsys)
    (tmp_path / "train.py").write_text("def main(capture):\n    capture(None, [0])\n")
    assert cli.main(["capture", src, "--out", str(tmp_path / "t")]) == 2
    assert "options are keywords" in one_error_line(capsys)
    (tmp_path / "train.py").write_text("def main(capture):\n    pass\n")
    assert cli.main(["capture", src, "--out", str(tmp_path / "t")]) == 2
    assert "main(capture) wrote no trace" in one_error_line(capsys)
    assert entries(tmp_path) == ["train.py"]


def test_capture_cli_prints_warnings_as_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    src = script(tmp_path)
    assert cli.main(["capture", src, "--out", str(tmp_path / "t"), "--steps", "7"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"hbfpsim: warning: {tmp_path / 't'}: steps 7 were never reached (the last step was 2)",
        (f"hbfpsim: warning: {tmp_path / 't'}: the trace has 0 records (no GEMM ran in a "
         "recorded step; call cap.start_step() at the start of each step)")]


# --- 5. the built-in examples ----------------------------------------------------------------
def test_examples_without_scikit_learn(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert cli.main(["capture", "mlp-digits", "--out", str(tmp_path / "t")]) == 2
    assert one_error_line(capsys) == ("hbfpsim: error: mlp-digits: the built-in examples need "
                                      "scikit-learn: pip install 'hbfpsim[examples]'\n")
    assert entries(tmp_path) == []


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "epochs must be an integer from 1 to 10000, got 0"),
    (["--epochs", "-1"], "epochs must be an integer from 1 to 10000, got -1"),
    (["--epochs", "10001"], "epochs must be an integer from 1 to 10000, got 10001"),
    (["--max-mb", "-1"], "--max-mb must be a number of MB from 0 to 1e12, got -1.0"),
    (["--max-mb", "inf"], "--max-mb must be a number of MB from 0 to 1e12, got inf"),
    (["--steps", "0"], "--steps and --layers apply to capture scripts"),
])
def test_example_options(tmp_path, capsys, args, message):
    pytest.importorskip("torch")
    assert cli.main(["capture", "mlp-digits", "--out", str(tmp_path / "t"), *args]) == 2
    assert message in one_error_line(capsys)
    assert entries(tmp_path) == []


def test_train_and_capture_checks_its_arguments(tmp_path):
    pytest.importorskip("torch")
    from hbfpsim.trace.examples import train_and_capture
    for kwargs, message in [({"epochs": True}, "epochs must be an integer from 1 to 10000"),
                            ({"batch": 0}, "batch must be an integer from 1 to 1437"),
                            ({"lr": float("nan")}, "lr must be a finite number > 0")]:
        with pytest.raises(ValueError, match=message):
            train_and_capture("mlp-digits", tmp_path / "t", **kwargs)
    assert entries(tmp_path) == []


# --- 6. debris: failures, interruptions, reruns ---------------------------------------------
def test_a_failed_or_interrupted_write_leaves_nothing(tmp_path):
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error), TraceWriter(tmp_path / "t", "toy") as w:
            w.add("fc", "fwd", 2, 3, 4, a=np.ones((2, 4)), b=np.ones((4, 3)))
            assert entries(tmp_path) == [f".t.tmp-{os.getpid()}"]
            raise error
        assert entries(tmp_path) == []
    w = TraceWriter(tmp_path / "t", "toy")
    del w                                                     # dropped unclosed
    assert entries(tmp_path) == []


def test_a_capture_interrupted_or_failing_leaves_nothing(tmp_path):
    torch, model = linear()
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error), trace.capture(tmp_path / "t", model) as cap:
            cap.start_step()
            model(torch.randn(2, 4)).sum().backward()
            raise error
        assert entries(tmp_path) == []


def test_rerunning_into_the_same_out(tmp_path, capsys):
    pytest.importorskip("torch")
    src = script(tmp_path)
    out = tmp_path / "t"
    assert cli.main(["capture", src, "--out", str(out), "--steps", "0,1"]) == 0
    assert cli.main(["capture", src, "--out", str(out), "--steps", "2"]) == 2
    assert f"{out}: already exists (use --force to replace it)" in one_error_line(capsys)
    assert {r.step for r in trace.open(out).records} == {0, 1}
    assert cli.main(["capture", src, "--out", str(out), "--steps", "2", "--force"]) == 0
    assert {r.step for r in trace.open(out).records} == {2}         # nothing old mixed in
    assert entries(tmp_path) == ["t", "train.py"]


def test_a_script_failing_mid_capture_leaves_nothing(tmp_path, capsys):
    """The script's own exception: one line saying where (its file and line) and what."""
    pytest.importorskip("torch")
    src = script(tmp_path, then="raise RuntimeError('the training diverged')")
    assert cli.main(["capture", src, "--out", str(tmp_path / "t")]) == 2
    assert one_error_line(capsys) == (f"hbfpsim: error: {src}, line 10: RuntimeError: the "
                                      "training diverged\n")
    assert entries(tmp_path) == ["train.py"]


@pytest.mark.parametrize("how,status,message", [
    (signal.SIGTERM, 143, "hbfpsim: terminated\n"),
    (signal.SIGINT, 130, "hbfpsim: interrupted\n"),
])
def test_a_signal_mid_capture_leaves_nothing(tmp_path, how, status, message):
    pytest.importorskip("torch")
    ready = tmp_path / "ready"
    src = script(tmp_path, then=f"Path({str(ready)!r}).touch(); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-m", "hbfpsim", "capture", src, "--out",
                             str(tmp_path / "t")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate()[1]
        assert any(name.startswith(".t.tmp-") for name in entries(tmp_path))
        proc.send_signal(how)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (status, "", message)
    assert entries(tmp_path) == ["ready", "train.py"]         # no t, no .t.tmp-PID


# --- 8. SCALE-Sim topologies ---------------------------------------------------------------
HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, " \
         "Num Filter, Strides,"


@pytest.mark.parametrize("text,message", [
    (HEADER + "\nConv1, 230, , 7, 7, 3, 64, 2,\n",
     "line 2: no value in column 'IFMAP Width' .cells must line up with the header."),
    (HEADER + "\nConv1, 230, 7, 7, 3, 64, 2\n", "line 2: no value in column 'Strides'"),
    (HEADER + "\nConv1, 230, 230, 7, 7, 3, 64, 2, 8,\n",
     "line 2: 9 values for the header's 8 columns .extra '8'.: cells must line up"),
    (HEADER + "\n", "no layers, only a header"),
    ("", "empty topology file"),
    ("\n\n", "empty topology file"),
    (HEADER + "\nConv1, 230, 230, 7, 7, 3, 64, 2147483649,\n",
     r"line 2: Strides must be an integer from 1 to 2\*\*31, got '2147483649'"),
    (HEADER + "\nConv1, 230, 230, 7, 7, 3, -64, 2,\n",
     r"line 2: Num Filter must be an integer from 1 to 2\*\*31, got '-64'"),
    (HEADER + "\nConv1, 230, 230, 7, 7, 3, 6.5, 2,\n", "line 2: Num Filter must be an integer"),
    (HEADER + "\nConv1, 2147483648, 2147483648, 1, 1, 1, 1, 1,\n",
     r"line 2: record 0 .'Conv1' 'fwd'.: 'm' must be an integer from 1 to 2\*\*40"),
    (HEADER + "\n, 230, 230, 7, 7, 3, 64, 2,\n", "line 2: no value in column 'Layer name'"),
    ("Layer, M, N\nfc, 1, 2\n", "line 1: the header names neither a convolution topology"),
    ("Layer, M, N, K,\nfc, 1, 2, 3, 4,\n", "line 2: 5 values for the header's 4 columns"),
    (("Layer name, IFMAP Height, IFMAP Width, Filter Height, Channels, Num Filter, Strides\n"
      "c, 1, 1, 1, 1, 1, 1\n"), "line 1: the header lacks 'kw' column"),
    (b"Layer, M, N, K,\nf\xffc, 1, 2, 3,\n", r"not UTF-8 text \(byte 17: invalid start byte\)"),
    ("Layer, M, N, K,\n" + "x" * 200_000 + ", 1, 2, 3,\n",
     r"line 2: not CSV: field larger than field limit"),
    ("Layer, M, N, K,\nfc, 1, 2\x00, 3,\n", "line 2: N must be an integer from 1"),
])
def test_bad_topologies(tmp_path, capsys, text, message):
    csv_path = tmp_path / "net.csv"
    csv_path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(TraceError, match=message) as info:
        import_topology(csv_path, tmp_path / "t")
    assert str(info.value).startswith(str(csv_path))
    assert cli.main(["trace", "import-scalesim", str(csv_path), str(tmp_path / "t")]) == 2
    one_error_line(capsys)
    assert entries(tmp_path) == ["net.csv"]


def test_topology_columns_by_name_and_ignored_columns(tmp_path, capsys):
    """SCALE-Sim files as they come: a trailing comma or none, blank lines, '#' comments in
    the trailing cell; columns in any order; extra columns reported, not silently used."""
    (tmp_path / "net.csv").write_text(
        "Num Filter, Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
        "Channels, Strides, Batch Size,\n\n"
        "64, Conv1, 230, 230, 7, 7, 3, 2, 8,\n"
        "1, Conv2_dw, 112, 112, 3, 3, 1, 1,,#dw\n"
        "10, FC, 1, 1, 1, 1, 256, 1\n")
    assert cli.main(["trace", "import-scalesim", str(tmp_path / "net.csv"),
                     str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err
    assert err == (f"hbfpsim: warning: {tmp_path / 'net.csv'}: ignored column 'Batch Size' "
                   "(not part of a layer's GEMM shape)\n")
    t = trace.open(tmp_path / "t")
    assert [(r.layer, r.m, r.n, r.k) for r in t.records] == [
        ("Conv1", 112 * 112, 64, 147), ("Conv2_dw", 110 * 110, 1, 9), ("FC", 1, 10, 256)]
    assert t.capture["ignored_columns"] == ["Batch Size"]
    gemm = tmp_path / "g.csv"
    gemm.write_text("Layer Name, M, N, K,\nTest 1, 256, 128, 256,")        # SCALE-Sim's own
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceWarning)                  # nothing is ignored
        assert len(trace.open(import_topology(gemm, tmp_path / "g"))) == 1


def test_topology_batch_and_files(tmp_path, capsys):
    (tmp_path / "g.csv").write_text("Layer, M, N, K,\nfc, 1, 2, 3,\n")
    for batch in ("0", "-1", "2147483649"):
        assert cli.main(["trace", "import-scalesim", str(tmp_path / "g.csv"),
                         str(tmp_path / "t"), "--batch", batch]) == 2
        assert f"batch must be an integer from 1 to 2**31, got {batch}" in one_error_line(capsys)
    os.mkfifo(tmp_path / "fifo.csv")
    with pytest.raises(TraceError, match="fifo.csv: not a regular file"):
        import_topology(tmp_path / "fifo.csv", tmp_path / "t")
    with pytest.raises(TraceError, match="none.csv: no such topology file"):
        import_topology(tmp_path / "none.csv", tmp_path / "t")
    assert cli.main(["trace", "import-scalesim", str(tmp_path / "g.csv"), str(tmp_path / "t")]) == 0
    assert cli.main(["trace", "import-scalesim", str(tmp_path / "g.csv"), str(tmp_path / "t")]) == 2
    assert "t: already exists (use --force to replace it)" in one_error_line(capsys)
    assert cli.main(["trace", "import-scalesim", str(tmp_path / "g.csv"), str(tmp_path / "t"),
                     "--force"]) == 0
    assert entries(tmp_path) == ["fifo.csv", "g.csv", "t"]
