"""The trace format: round trips, corrupted traces, streaming."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hbfpsim import trace
from hbfpsim.trace import TraceError, TraceWriter

ROOT = Path(__file__).resolve().parents[1]


def small_trace(path, rng=None):
    rng = rng or np.random.default_rng(0)
    with TraceWriter(path, "toy", "a test trace", capture={"seed": 0}) as w:
        w.add("fc1", "fwd", 4, 3, 5, step=2, epoch=1, a=rng.standard_normal((4, 5)),
              b=rng.standard_normal((5, 3)))
        w.add("attn", "bwd_data", 2, 6, 3, count=4, a=rng.standard_normal((4, 2, 3)),
              b=rng.standard_normal((4, 3, 6)))
        w.add("fc2", "bwd_weight", 7, 8, 9)          # shape only
    return path


def test_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    small_trace(tmp_path / "t", np.random.default_rng(1))
    t = trace.open(tmp_path / "t")
    assert (t.model, t.description, t.capture, len(t)) == ("toy", "a test trace", {"seed": 0}, 3)
    r0, r1, r2 = t.records
    assert (r0.layer, r0.phase, r0.m, r0.n, r0.k, r0.step, r0.epoch) == ("fc1", "fwd", 4, 3, 5, 2, 1)
    assert r1.count == 4 and r1.macs == 4 * 2 * 6 * 3 and r2.a is None
    gemms = list(t)
    want_a, want_b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    assert np.array_equal(gemms[0].a, want_a.astype(np.float32))
    assert np.array_equal(gemms[0].b, want_b.astype(np.float32))
    assert gemms[1].a.shape == (4, 2, 3) and gemms[2].a is None
    summary = t.summary()
    assert summary["phases"]["fwd"] == {"records": 1, "gemms": 1, "macs": 60}
    assert summary["phases"]["bwd_data"]["gemms"] == 4 and summary["layers"] == {
        "fc1": 1, "attn": 1, "fc2": 1}
    assert summary["operand_bytes"] == sum(f.stat().st_size for f in (tmp_path / "t").rglob("*.npy"))


def test_writer_refuses_to_overwrite_and_checks_shapes(tmp_path):
    small_trace(tmp_path / "t")
    with pytest.raises(FileExistsError, match="t: already exists .use --force to replace it"):
        TraceWriter(tmp_path / "t", "again")
    w = TraceWriter(tmp_path / "u", "x")
    with pytest.raises(ValueError, match=r"operand a of record 0 has shape \(3, 3\), expected \(2, 3\)"):
        w.add("l", "fwd", 2, 4, 3, a=np.zeros((3, 3)), b=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="record 0 .'l' 'backward'.: 'phase' must be one of"):
        w.add("l", "backward", 2, 4, 3)
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]        # nothing of u is left


def test_writer_force_replaces_only_when_complete(tmp_path):
    small_trace(tmp_path / "t")
    with pytest.raises(RuntimeError), TraceWriter(tmp_path / "t", "new", force=True) as w:
        w.add("fc9", "fwd", 1, 1, 1)
        raise RuntimeError("the producer failed")
    assert trace.open(tmp_path / "t").model == "toy"                  # the old one, intact
    with TraceWriter(tmp_path / "t", "new", force=True) as w:
        w.add("fc9", "fwd", 1, 1, 1)
    assert trace.open(tmp_path / "t").model == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def corrupt(path, how):
    manifest = path / "manifest.json"
    data = json.loads(manifest.read_text())
    a0 = path / data["records"][0]["a"]
    if how == "truncated":
        a0.write_bytes(a0.read_bytes()[:-7])
    elif how == "wrong shape":
        np.save(a0, np.zeros((5, 4), np.float32))
    elif how == "wrong dtype":
        np.save(a0, np.zeros((4, 5), np.float64))
    elif how == "pickle":
        np.save(a0, np.array([{"evil": 1}] * 20, dtype=object).reshape(4, 5), allow_pickle=True)
    elif how == "missing file":
        a0.unlink()
    elif how == "not npy":
        a0.write_bytes(b"hello, not an array")
    elif how == "bad json":
        manifest.write_text(manifest.read_text()[:-10])
    elif how == "schema":
        data["schema"] = "hbfpsim-trace/99"
        manifest.write_text(json.dumps(data))
    elif how == "phase":
        data["records"][1]["phase"] = "bwd"
        manifest.write_text(json.dumps(data))
    elif how == "negative m":
        data["records"][2]["m"] = -1
        manifest.write_text(json.dumps(data))
    elif how == "escape":
        data["records"][0]["a"] = "../../etc/passwd.npy"
        manifest.write_text(json.dumps(data))
    elif how == "unknown field":
        data["records"][0]["color"] = "red"
        manifest.write_text(json.dumps(data))
    elif how == "one operand":
        del data["records"][0]["b"]
        manifest.write_text(json.dumps(data))
    elif how == "duplicate id":
        data["records"][1]["id"] = 0
        manifest.write_text(json.dumps(data))


@pytest.mark.parametrize("how,message", [
    ("truncated", r"000000_a.npy \(record 0, fc1 fwd\): 201 bytes, expected 208 \(truncated"),
    ("wrong shape", r"shape \(5, 4\), the manifest says \(4, 5\)"),
    ("wrong dtype", "dtype float64 .expected float32"),
    ("pickle", "dtype object .expected float32; objects are never unpickled"),
    ("missing file", r"000000_a.npy \(record 0, fc1 fwd\): missing operand file"),
    ("not npy", "not a valid .npy file"),
    ("bad json", "manifest.json: not valid JSON"),
    ("schema", "unknown schema 'hbfpsim-trace/99'"),
    ("phase", "record 1: 'phase' must be one of fwd, bwd_data, bwd_weight, got 'bwd'"),
    ("negative m", r"record 2: 'm' must be an integer from 1 to 2\*\*40, got -1"),
    ("escape", "record 0: 'a' must be a relative .npy path inside the trace"),
    ("unknown field", "record 0: unknown field 'color'"),
    ("one operand", "record 0: give both operand files or neither"),
    ("duplicate id", "record ids must be unique"),
])
def test_corrupted_traces_fail_at_open_naming_file_and_record(tmp_path, how, message):
    path = small_trace(tmp_path / "t")
    corrupt(path, how)
    with pytest.raises(TraceError, match=message):
        trace.open(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(TraceError, match="no trace manifest here"):
        trace.open(tmp_path)


STREAM = """
import resource, sys
import numpy as np
from hbfpsim import trace
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
t = trace.open(sys.argv[1])
before = rss()
total = 0.0
for gemm in t:
    total += float(np.asarray(gemm.a).sum() + np.asarray(gemm.b).sum())   # touch every byte
print(rss() - before)
"""


def test_iterating_holds_about_one_record_in_memory(tmp_path):
    """16 records of 2 x 8 MiB: 256 MiB of operands; the reader's peak RSS grows by about one
    record, because each record's memory maps are released before the next is opened."""
    record_bytes = 2 * 8 * 2**20
    with TraceWriter(tmp_path / "big", "big") as w:
        rows = 8 * 2**20 // 4 // 1024
        for i in range(16):
            block = np.full((rows, 1024), i, np.float32)
            w.add(f"l{i}", "fwd", rows, rows, 1024, a=block, b=block.reshape(1024, rows))
    done = subprocess.run([sys.executable, "-c", STREAM, str(tmp_path / "big")],
                          capture_output=True, text=True, check=True)
    growth = int(done.stdout.strip())
    assert growth < 3 * record_bytes, f"peak RSS grew by {growth / 2**20:.0f} MiB"


def test_shipped_traces_open():
    for name in ("mlp_digits", "cnn_digits", "transformer_text", "resnet50_step",
                 "bert_base_step"):
        t = trace.open(ROOT / "traces" / name)
        assert len(t) > 0 and t.has_operands == name.endswith(("digits", "text"))
    sizes = {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
             for d in (ROOT / "traces").iterdir() if d.is_dir()}
    assert sizes.pop("transformer_text") < 30e6            # the transformer's trace: 30 MB
    assert sum(sizes.values()) < 20 * 2**20
    # the transformer's backward-weight GEMMs reduce over batch x context
    text = trace.open(ROOT / "traces" / "transformer_text")
    assert {r.k for r in text.records if r.phase == "bwd_weight"} == {32 * 64}
