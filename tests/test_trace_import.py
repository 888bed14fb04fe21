"""Shape-only traces: network generators, SCALE-Sim topology and configuration import, and
the trace command line."""

import math

import pytest

from hbfpsim import cli, trace
from hbfpsim.config import ConfigError, from_scalesim
from hbfpsim.trace import TraceError
from hbfpsim.trace.models import bert_base_training_step, resnet50_training_step
from hbfpsim.trace.scalesim import import_topology, out_size


def macs(entries, phase):
    return sum(m * n * k * c for _, p, m, n, k, c in entries if p == phase)


def test_resnet50_step():
    step = resnet50_training_step(batch=32)
    phases = [p for _, p, *_ in step]
    assert (phases.count("fwd"), phases.count("bwd_data"), phases.count("bwd_weight")) == (54, 53, 54)
    assert macs(step, "fwd") / 32 == pytest.approx(4.09e9, rel=0.01)      # the well-known 4.1 GMAC
    assert macs(step, "bwd_weight") == macs(step, "fwd")                   # same products, reordered
    conv1 = [e for e in step if e[0] == "conv1"]
    assert conv1 == [("conv1", "fwd", 32 * 112 * 112, 64, 147, 1),
                     ("conv1", "bwd_weight", 147, 64, 32 * 112 * 112, 1)]
    assert ("fc", "fwd", 32, 1000, 2048, 1) in step


def test_bert_base_step():
    step = bert_base_training_step(batch=8, seq=128)
    tokens = 8 * 128
    per_token = macs(step, "fwd") / tokens
    # encoder: 12 x (4 x 768^2 + 2 x 768 x 3072) weights, attention 2 x 128 x 768 per layer,
    # MLM head 768^2 + 768 x 30522
    assert per_token == 12 * (4 * 768**2 + 2 * 768 * 3072 + 2 * 128 * 768) + 768**2 + 768 * 30522
    scores = [e for e in step if e[0] == "encoder.layer.0.attention.scores"]
    assert scores[0] == ("encoder.layer.0.attention.scores", "fwd", 128, 128, 64, 8 * 12)


def test_shape_trace_files(tmp_path):
    path = trace.shape_trace(tmp_path / "r", "resnet50", batch=2, image=64)
    t = trace.open(path)
    assert t.model == "resnet50" and not t.has_operands and t.capture["batch"] == 2
    assert len(t) == 161 and t.records[0].m == 2 * 32 * 32       # conv1: (64 + 6 - 7) // 2 + 1
    assert "a batch of 2 ImageNet images of 64 x 64 pixels" in t.description
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        trace.shape_trace(tmp_path / "v", "vgg")


@pytest.mark.parametrize("size,k,s,pytorch,scalesim", [
    (230, 7, 2, 112, 113),   # 223 // 2 + 1 = 112;  ceil(225 / 2) = 113
    (224, 3, 2, 111, 112),   # 221 // 2 + 1 = 111;  ceil(223 / 2) = 112
    (58, 3, 2, 28, 29),      # 55 // 2 + 1 = 28;    ceil(57 / 2) = 29
    (57, 3, 2, 28, 28),      # 54 // 2 + 1 = 28;    ceil(56 / 2) = 28
    (56, 3, 1, 54, 54),
    (9, 1, 2, 5, 5),
    (8, 8, 3, 1, 1),
])
def test_output_size_rules(size, k, s, pytorch, scalesim):
    """Worked by hand: PyTorch floor((in - k) / s) + 1, SCALE-Sim ceil((in - k + s) / s)."""
    assert out_size(size, k, s) == pytorch
    assert out_size(size, k, s, "scalesim") == scalesim


CONV = """\
Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides, Sparsity,
Conv1, 230, 230, 7, 7, 3, 64, 2,
Conv2, 58, 58, 3, 3, 64, 64, 1,
CB2a_DP, 58, 58, 3, 3, 32, 1, 1,
FC, 1, 1, 1, 1, 2048, 1000, 1, 2:4,
"""


def test_scalesim_conv_topology(tmp_path):
    (tmp_path / "net.csv").write_text(CONV)
    with pytest.warns(trace.TraceWarning, match="net.csv: ignored column 'Sparsity'"):
        t = trace.open(import_topology(tmp_path / "net.csv", tmp_path / "t", batch=4))
    assert t.capture["ignored_columns"] == ["Sparsity"]
    got = [(r.layer, r.m, r.n, r.k, r.count) for r in t.records]
    assert got == [("Conv1", 4 * 112 * 112, 64, 147, 1), ("Conv2", 4 * 56 * 56, 64, 576, 1),
                   ("CB2a_DP", 4 * 56 * 56, 1, 9, 32), ("FC", 4, 1000, 2048, 1)]
    assert t.model == "net" and all(r.phase == "fwd" for r in t.records)
    with pytest.warns(trace.TraceWarning):
        scalesim = trace.open(import_topology(tmp_path / "net.csv", tmp_path / "s",
                                              rounding="scalesim"))
    assert scalesim.records[0].m == 113 * 113          # ceil((230 - 7 + 2) / 2) = 113


def test_scalesim_gemm_topology(tmp_path):
    (tmp_path / "g.csv").write_text("Layer, M, N, K,\nffn1, 512, 3072, 768,\nffn2, 512, 768, 3072,\n")
    t = trace.open(import_topology(tmp_path / "g.csv", tmp_path / "t"))
    assert [(r.m, r.n, r.k) for r in t.records] == [(512, 3072, 768), (512, 768, 3072)]


@pytest.mark.parametrize("row,message", [
    ("Conv1, 230, 230, 7, 7, 3, 64,", r"line 2: no value in column 'Strides'"),
    ("Conv1, 230, 230, 7, x, 3, 64, 2,", (r"line 2: Filter Width must be an integer from 1 to "
                                          r"2\*\*31, got 'x'")),
    ("Conv1, 5, 5, 7, 7, 3, 64, 2,", r"line 2: filter 7x7 is larger than the ifmap 5x5"),
    ("Conv1, 230, 230, 7, 7, 0, 64, 2,", (r"line 2: Channels must be an integer from 1 to "
                                          r"2\*\*31, got '0'")),
])
def test_bad_topology_rows(tmp_path, row, message):
    (tmp_path / "bad.csv").write_text(CONV.splitlines()[0] + "\n" + row + "\n")
    with pytest.raises(TraceError, match="bad.csv, " + message):
        import_topology(tmp_path / "bad.csv", tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


CFG = """\
[general]
run_name = google_tpu
[architecture_presets]
ArrayHeight: 128
ArrayWidth: 64
IfmapSramSzkB: 6144
FilterSramSzkB: 6144
OfmapSramSzkB: 2048
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10, 20
Dataflow: ws
[run_presets]
InterfaceBandwidth: {mode}
"""


def test_scalesim_cfg(tmp_path):
    (tmp_path / "a.cfg").write_text(CFG.format(mode="USER"))
    config = from_scalesim(tmp_path / "a.cfg")
    assert (config.rows, config.cols, config.dataflow, config.name) == (128, 64, "ws", "google_tpu")
    assert (config.input_kib, config.weight_kib, config.output_kib) == (6144, 6144, 2048)
    assert config.dram_bytes_per_cycle == 10 and (config.input, config.accumulator) == ("int8", "fixed32")
    (tmp_path / "b.cfg").write_text(CFG.format(mode="CALC"))
    assert math.isinf(from_scalesim(tmp_path / "b.cfg", input="hbfp4").dram_bytes_per_cycle)
    assert from_scalesim(tmp_path / "b.cfg", input="hbfp4").input == "hbfp4"
    (tmp_path / "c.cfg").write_text(CFG.format(mode="USER").replace("ArrayWidth: 64\n", ""))
    with pytest.raises(ConfigError, match=r"c.cfg: \[architecture_presets\] ArrayWidth"):
        from_scalesim(tmp_path / "c.cfg")
    with pytest.raises(ConfigError, match="no such SCALE-Sim configuration file"):
        from_scalesim(tmp_path / "none.cfg")


def test_trace_cli(tmp_path, capsys):
    (tmp_path / "net.csv").write_text(CONV)
    assert cli.main(["trace", "import-scalesim", str(tmp_path / "net.csv"), str(tmp_path / "t"),
                     "--batch", "2", "--scalesim-rounding"]) == 0
    out, err = capsys.readouterr()
    assert err == f"hbfpsim: warning: {tmp_path / 'net.csv'}: ignored column 'Sparsity' (not part " \
                  "of a layer's GEMM shape)\n"
    assert "model net, 4 records" in out and "shape-only" in out
    fwd = next(line for line in out.splitlines() if line.startswith("fwd"))
    assert fwd.split()[1:3] == ["4", "35"]                          # 4 records, 3 + 32 GEMMs
    assert cli.main(["trace", "info", str(tmp_path / "nothing")]) == 2
    assert "no trace manifest here" in capsys.readouterr().err


SCRIPT = """\
import torch
def main(capture):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with capture(model) as cap:
        for step in range(3):
            cap.start_step()
            model(torch.randn(2, 4)).sum().backward()
"""


def test_capture_cli_runs_a_script(tmp_path, capsys):
    pytest.importorskip("torch")
    (tmp_path / "train.py").write_text(SCRIPT)
    assert cli.main(["capture", str(tmp_path / "train.py"), "--out", str(tmp_path / "t"),
                     "--steps", "1,2"]) == 0
    t = trace.open(tmp_path / "t")
    assert {r.step for r in t.records} == {1, 2} and len(t) == 4   # fwd + bwd_weight per step
    (tmp_path / "nomain.py").write_text("x = 1\n")
    assert cli.main(["capture", str(tmp_path / "nomain.py"), "--out", str(tmp_path / "u")]) == 2
    assert "must define main(capture)" in capsys.readouterr().err
    assert cli.main(["capture", "resnet", "--out", str(tmp_path / "v")]) == 2
    assert "not a built-in example" in capsys.readouterr().err
