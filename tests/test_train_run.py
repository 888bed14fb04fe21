"""``hbfpsim train``: run files, MAC shares worked by hand, weight storage, resuming after a
kill, the capture option."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from hbfpsim import formats, trace  # noqa: E402
from hbfpsim.config import ConfigError  # noqa: E402
from hbfpsim.train import emulate  # noqa: E402
from hbfpsim.train import job, spec as train_spec  # noqa: E402
from hbfpsim.train.loop import checkpoint_path, load_checkpoint  # noqa: E402
from hbfpsim.train.models import digits_cnn  # noqa: E402


def write(tmp_path: Path, body: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_booster_mac_shares_of_the_digits_cnn_worked_by_hand(tmp_path):
    """Per image: conv 1 -> 8 (3x3, 64 positions) 8*9*64 MACs, conv 8 -> 16 16*72*64, linear
    256 -> 10 2560. Per step each layer runs fwd and bwd_weight; bwd_data all but the first
    (its input needs no gradient). Booster: first and last layers HBFP6 always, the middle
    conv HBFP4 except in the last epoch."""
    epochs, batch, steps = 3, 32, 1437 // 32
    run = train_spec.parse({"train": {"task": "digits", "variants": ["booster"], "seeds": [0],
                                      "epochs": epochs, "out": str(tmp_path / "out")}})
    report = job.run(run, progress=False)
    c1, c2, fc = (8 * 9 * 64 * batch, 16 * 72 * 64 * batch, 2560 * batch)
    per_step_6 = 2 * c1 + 3 * fc
    hbfp6 = epochs * steps * per_step_6 + steps * 3 * c2
    hbfp4 = (epochs - 1) * steps * 3 * c2
    assert report.runs[0].macs == {"hbfp6@64": hbfp6, "hbfp4@64": hbfp4}
    shares = report.variants[0].mac_shares
    assert shares["hbfp4@64"] == pytest.approx(hbfp4 / (hbfp4 + hbfp6))


def test_weights_are_stored_in_hbfp16_after_every_step():
    model = digits_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    emu = emulate(model, "hbfp4", optimizer=optimizer)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    assert emu.macs == {"hbfp4@64": 16 * (2 * 8 * 9 * 64 + 3 * 16 * 72 * 64 + 3 * 2560)}
    assert emu.mac_fractions() == {"hbfp4@64": 1.0}
    wide = formats.get("hbfp16")
    for w in (model[0].weight, model[2].weight, model[6].weight):
        rows = w.detach().reshape(w.shape[0], -1).numpy()
        assert np.array_equal(wide.quantize(rows, axis=1), rows)     # on the HBFP16 grid
        assert not np.array_equal(formats.get("hbfp8").quantize(rows, axis=1), rows)
    # the FP32 schedule keeps FP32 weights
    plain = digits_cnn()
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    emulate(plain, "fp32", optimizer=opt)
    torch.nn.functional.cross_entropy(plain(x), y).backward()
    opt.step()
    rows = plain[2].weight.detach().reshape(16, -1).numpy()
    assert not np.array_equal(wide.quantize(rows, axis=1), rows)


RUN = """
[train]
task = "digits"
variants = ["hbfp4"]
seeds = [3]
epochs = 4
out = "{out}"
rounding = "stochastic"
stored = "all"
lr_schedule = "cosine"
warmup_steps = 20
"""


def _cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "hbfpsim", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_a_killed_run_resumes_to_the_same_final_weights(tmp_path):
    """Under stochastic rounding and a cosine learning rate: the streams and the rate follow
    the step, which the checkpoint keeps."""
    whole = write(tmp_path, RUN.format(out=tmp_path / "whole"), "whole.toml")
    cut = write(tmp_path, RUN.format(out=tmp_path / "cut"), "cut.toml")
    killed = _cli(str(cut), "--quiet", start_new_session=True)
    ckpt = checkpoint_path(tmp_path / "cut", "hbfp4", 3)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    key = train_spec.load(cut).key(train_spec.load(cut).variants[0], 3)
    assert len(load_checkpoint(ckpt, key)["history"]) < 4          # it stopped mid-run
    resumed = _cli(str(cut), "--quiet")
    assert resumed.wait(300) == 0, resumed.stderr.read()
    done = _cli(str(whole), "--quiet")       # one at a time: two would share the two cores
    assert done.wait(300) == 0, done.stderr.read()
    a = load_checkpoint(checkpoint_path(tmp_path / "whole", "hbfp4", 3), key)
    b = load_checkpoint(ckpt, key)
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert [h["metric"] for h in a["history"]] == [h["metric"] for h in b["history"]]
    assert a["macs"] == b["macs"]


def test_outputs_and_the_capture_trace(tmp_path):
    body = RUN.format(out=tmp_path / "out").replace("epochs = 4", "epochs = 2") + f"""
[train.capture]
variant = "hbfp4"
seed = 3
epochs = [1]
path = "{tmp_path / 'trace'}"
"""
    report = job.run(train_spec.load(write(tmp_path, body)), progress=False)
    out = tmp_path / "out"
    for name in ("history.csv", "results.csv", "run.json", "curves.png"):
        assert (out / name).is_file()
    assert sorted(p.name for p in (out / "probes" / "hbfp4" / "seed3").iterdir()) == \
        ["epoch000.npz", "epoch001.npz"]
    t = trace.open(tmp_path / "trace")
    records = t.records
    assert {r.epoch for r in records} == {1} and {r.step for r in records} == {0}
    assert sorted((r.layer, r.phase) for r in records) == sorted(
        [(layer, "fwd") for layer in ("0", "2", "6")] + [(layer, "bwd_weight") for layer in
                                                        ("0", "2", "6")]
        + [("2", "bwd_data"), ("6", "bwd_data")])
    fwd = next(r for r in records if r.layer == "2" and r.phase == "fwd")
    assert (fwd.m, fwd.n, fwd.k) == (32 * 64, 16, 72)          # im2col: positions x out, K = C k k
    assert report.variants[0].finals[0] == report.runs[0].history[-1].metric


@pytest.mark.parametrize("table,message", [
    ({"task": "vision"}, "task: expected one of digits, text"),
    ({"task": "digits", "variants": ["hbfp3x"]}, "variants: 'hbfp3x'"),
    ({"task": "digits", "variants": ["fp32", "fp32"]}, "named twice"),
    ({"task": "digits", "seeds": [1, 1]}, "seeds: expected 1 to 100 distinct"),
    ({"task": "digits", "epochs": 0}, "epochs: expected an integer in [1, 10000]"),
    ({"task": "digits", "lr": float("nan")}, "lr: expected a number in (0, 10]"),
    ({"task": "digits", "context": 32}, "context: only the text task takes it"),
    ({"task": "text", "width": 66, "heads": 4}, "not a multiple of heads"),
    ({"task": "digits", "storage": "hbfp99"}, "storage: expected auto, none or a format"),
    ({"task": "digits", "exact": {"layers": ["*"], "when": 1}}, "exact: unknown key 'when'"),
    ({"task": "digits", "capture": {"variant": "fp32", "seed": 9, "path": "t"}},
     "capture seed: expected one of the run's seeds"),
    ({"task": "digits", "batches": 3}, "unknown key 'batches'"),
])
def test_bad_run_files_name_the_key(table, message):
    table = {"variants": ["fp32"], **table}
    with pytest.raises(ConfigError) as err:
        train_spec.parse({"train": table}, source="run.toml")
    assert message in str(err.value) and "run.toml" in str(err.value)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    run = train_spec.load(write(tmp_path, RUN.format(out=tmp_path / "out").replace(
        "epochs = 4", "epochs = 1")))
    job.run(run, progress=False)
    changed = train_spec.load(write(tmp_path, RUN.format(out=tmp_path / "out").replace(
        "epochs = 4", "epochs = 2"), "other.toml"))
    with pytest.raises(ConfigError, match="a checkpoint of a different run"):
        job.run(changed, progress=False)


def test_capture_of_the_transformer_keeps_attention_batches(tmp_path):
    """Attention products are batches (batch x heads) of GEMMs: one record with that count
    and (count, M, K) operands, equal to the activations the layer multiplied."""
    run = train_spec.parse({"train": {
        "task": "text", "variants": ["fp32"], "seeds": [0], "epochs": 1, "steps_per_epoch": 2,
        "batch": 4, "context": 16, "width": 16, "heads": 2, "depth": 1, "text_bytes": 20000,
        "val_windows": 4, "out": str(tmp_path / "out"),
        "capture": {"path": str(tmp_path / "trace")}}})
    job.run(run, progress=False)
    t = trace.open(tmp_path / "trace")
    scores = [g for g in t if g.record.layer == "blocks.0.scores"]
    fwd = next(g for g in scores if g.record.phase == "fwd")
    r = fwd.record
    assert (r.count, r.m, r.k, r.n) == (4 * 2, 16, 8, 16)      # (batch x heads), T, dh, T
    assert fwd.a.shape == (8, 16, 8) and fwd.b.shape == (8, 8, 16)
    assert [g.record.phase for g in scores] == ["fwd", "bwd_data", "bwd_data"]
    head = next(g for g in t if g.record.layer == "head" and g.record.phase == "bwd_weight")
    assert (head.record.m, head.record.k, head.record.n) == (128, 4 * 16, 16)   # K = B x T


def test_a_folder_of_other_files_is_not_written_into(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("a replay's, keep me\n")
    run = train_spec.load(write(tmp_path, RUN.format(out=out).replace("epochs = 4",
                                                                      "epochs = 1")))
    with pytest.raises(ConfigError, match="not an hbfpsim train output"):
        job.run(run, progress=False)
    assert [p.name for p in out.iterdir()] == ["run.json"]
    assert (out / "run.json").read_text() == "a replay's, keep me\n"


def test_without_scikit_learn_the_command_says_what_to_install(tmp_path, monkeypatch, capsys):
    from hbfpsim import cli
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    path = write(tmp_path, RUN.format(out=tmp_path / "out"))
    assert cli.main(["train", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'hbfpsim[examples]'" in err
    assert not (tmp_path / "out").exists()
