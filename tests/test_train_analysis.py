"""``hbfpsim.train.analysis``: Wasserstein distances of probe samples against the mean
absolute difference of sorted values (the W1 distance of two equal-size samples) and a number
worked by hand; loss landscapes of a real (tiny) training run against the validation loss
its history recorded, the filter normalization checked filter by filter, weights restored."""

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hbfpsim.train import analysis, landscape  # noqa: E402
from hbfpsim.train import job, loop, spec as train_spec  # noqa: E402
from hbfpsim.train.models import digits_cnn  # noqa: E402


def w1(x, y) -> float:
    """Oracle: W1 of two samples of one size = mean |sorted(x) - sorted(y)|."""
    x, y = np.sort(np.asarray(x, np.float64)), np.sort(np.asarray(y, np.float64))
    assert x.shape == y.shape
    return float(np.abs(x - y).mean())


def save(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **{k.replace("__", "/"): np.asarray(v, np.float32) for k, v in arrays.items()})


@pytest.fixture
def probes(tmp_path):
    """fp32 and hbfp4 probe files with controlled values; returns (out, expected rows)."""
    rng = np.random.default_rng(7)
    out = tmp_path / "out"
    p = out / "probes"
    ref, var = {}, {}
    for epoch in (0, 1):
        ref[epoch] = {"conv__weight": rng.standard_normal(64),
                      "conv__activation": rng.standard_normal(64) * 3,
                      "conv__gradient": rng.standard_normal(64) * 1e-3,
                      "fc__weight": [0, 1, 3],
                      "only_ref__weight": [1, 2]}
        var[epoch] = {"conv__weight": rng.standard_normal(64) + 0.5,
                      "conv__activation": rng.standard_normal(64) * 2,
                      "conv__gradient": rng.standard_normal(64) * 2e-3,
                      "fc__weight": [1, 2, 3],
                      "only_var__weight": [5, 6]}
        save(p / "fp32" / "seed0" / f"epoch{epoch:03d}.npz", **ref[epoch])
        save(p / "hbfp4" / "seed0" / f"epoch{epoch:03d}.npz", **var[epoch])
    # nothing to compare: an epoch and a seed the reference lacks, stray names
    save(p / "hbfp4" / "seed0" / "epoch002.npz", conv__weight=[1, 2])
    save(p / "hbfp4" / "seed1" / "epoch000.npz", conv__weight=[1, 2])
    save(p / "hbfp4" / "seed0" / ".epoch000.tmp-99.npz", conv__weight=[9, 9])
    (p / "hbfp4" / "seed0" / "epoch003.npz").mkdir()            # a folder, not a file
    (p / "hbfp4" / "seed0" / "notes.txt").write_text("not a probe")
    (p / "fp32" / "seed0" / "epoch003.npz").mkdir()
    expected = {}
    for epoch in (0, 1):
        for key in ("conv__weight", "conv__activation", "conv__gradient", "fc__weight"):
            layer, kind = key.split("__")
            # float32 as stored, then compared in float64
            x = np.asarray(var[epoch][key], np.float32)
            y = np.asarray(ref[epoch][key], np.float32)
            expected[("hbfp4", 0, epoch, layer, kind)] = w1(x, y)
    return out, expected


def test_wasserstein_equals_sorted_difference(probes):
    out, expected = probes
    rows = analysis.wasserstein(out)
    got = {(r["variant"], r["seed"], r["epoch"], r["layer"], r["kind"]): r["distance"]
           for r in rows}
    assert len(got) == len(rows)                    # no pair twice
    assert set(got) == set(expected)                # only pairs both sides have
    for key, want in expected.items():
        assert got[key] == pytest.approx(want, rel=1e-12, abs=1e-15), key
    # worked by hand: sorted [0, 1, 3] vs [1, 2, 3] differ by 1, 1, 0: mean 2/3
    assert got[("hbfp4", 0, 0, "fc", "weight")] == pytest.approx(2 / 3, rel=1e-12)
    assert all(r["variant"] != "fp32" for r in rows)      # the reference gives no rows
    assert [(r["epoch"]) for r in rows] == sorted(r["epoch"] for r in rows)


def test_wasserstein_reference_swapped_gives_the_same_distances(probes):
    out, expected = probes
    rows = analysis.wasserstein(out, reference="hbfp4")
    got = {(r["seed"], r["epoch"], r["layer"], r["kind"]): r["distance"] for r in rows}
    assert {r["variant"] for r in rows} == {"fp32"}
    assert got == pytest.approx({k[1:]: v for k, v in expected.items()}, rel=1e-12)


def test_wasserstein_of_a_diverged_sample_is_nan(tmp_path):
    save(tmp_path / "probes" / "hbfp8" / "seed0" / "epoch000.npz", l__weight=[1, math.inf],
         l__activation=[0, 0])
    save(tmp_path / "probes" / "fp32" / "seed0" / "epoch000.npz", l__weight=[1, 2],
         l__activation=[1, 1])
    rows = {r["kind"]: r["distance"] for r in analysis.wasserstein(tmp_path)}
    assert math.isnan(rows["weight"])
    assert rows["activation"] == 1.0


def test_wasserstein_without_reference_probes_raises(probes, tmp_path):
    out, _ = probes
    with pytest.raises(ValueError, match=re.escape(str(out / "probes" / "fp16"))):
        analysis.wasserstein(out, reference="fp16")
    with pytest.raises(ValueError, match="no probes of the reference"):
        analysis.wasserstein(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="reference"):
        analysis.wasserstein(out, reference="../out")


def test_wasserstein_refuses_a_damaged_probe_file(probes):
    out, _ = probes
    bad = out / "probes" / "hbfp4" / "seed0" / "epoch001.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        analysis.wasserstein(out)


def test_write_wasserstein_round_trips_the_rows(probes, tmp_path):
    out, _ = probes
    rows = analysis.wasserstein(out)
    paths = analysis.write_wasserstein(rows, tmp_path / "figs")
    assert [p.name for p in paths] == ["wasserstein.csv", "wasserstein.png"]
    with open(paths[0], newline="") as f:
        back = list(csv.DictReader(f))
    assert len(back) == len(rows)
    for r, b in zip(rows, back):
        assert (b["variant"], int(b["seed"]), int(b["epoch"]), b["layer"], b["kind"]) == \
            (r["variant"], r["seed"], r["epoch"], r["layer"], r["kind"])
        assert float(b["distance"]) == pytest.approx(r["distance"], rel=1e-8)
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "figs").glob(".*"))           # no temporary left behind


# ---------------------------------------------------------------- loss landscapes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch digits run in FP32 and HBFP4 (seed 0)."""
    pytest.importorskip("sklearn")
    tmp = tmp_path_factory.mktemp("landscape")
    path = tmp / "run.toml"
    path.write_text(f'[train]\ntask = "digits"\nvariants = ["fp32", "hbfp4"]\nseeds = [0]\n'
                    f'epochs = 1\nout = "{(tmp / "out").as_posix()}"\n')
    spec = train_spec.load(path)
    report = job.run(spec, progress=False)
    return spec, {r.variant: r.history for r in report.runs}


def test_landscape_centre_is_the_recorded_validation_loss(trained, tmp_path):
    spec, histories = trained
    rows = landscape.landscape(spec, points=5, span=1.0, progress=False)
    assert [(r["variant"], r["a"], r["b"]) for r in rows] == \
        [(v, a, 0.0) for v in ("fp32", "hbfp4") for a in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    for variant in ("fp32", "hbfp4"):
        loss = {r["a"]: r["loss"] for r in rows if r["variant"] == variant}
        assert loss[0.0] == pytest.approx(histories[variant][-1].val_loss, abs=1e-6)
        assert loss[-1.0] > loss[0.0] and loss[1.0] > loss[0.0]
    # the variants' numerics matter: their landscapes differ away from the centre too
    fp32 = [r["loss"] for r in rows if r["variant"] == "fp32"]
    hbfp4 = [r["loss"] for r in rows if r["variant"] == "hbfp4"]
    assert fp32 != hbfp4
    paths = landscape.write_landscape(rows, tmp_path, two_d=False)
    assert [p.name for p in paths] == ["landscape_1d.csv", "landscape_1d.png"]
    with open(paths[0], newline="") as f:
        back = list(csv.DictReader(f))
    assert [float(b["loss_nats"]) for b in back] == pytest.approx([r["loss"] for r in rows],
                                                                  rel=1e-8)


def test_landscape_2d_grid_and_its_figure(trained, tmp_path):
    spec, histories = trained
    rows = landscape.landscape(spec, ["fp32"], 0, points=3, span=0.5, two_d=True,
                              seed_directions=3, progress=False)
    assert sorted((r["a"], r["b"]) for r in rows) == \
        sorted((a, b) for a in (-0.5, 0.0, 0.5) for b in (-0.5, 0.0, 0.5))
    centre = next(r["loss"] for r in rows if r["a"] == 0 and r["b"] == 0)
    assert centre == pytest.approx(histories["fp32"][-1].val_loss, abs=1e-6)
    # the second direction is not the first: moving along b alone differs from along a
    at = {(r["a"], r["b"]): r["loss"] for r in rows}
    assert at[(0.5, 0.0)] != at[(0.0, 0.5)]
    paths = landscape.write_landscape(rows, tmp_path, two_d=True)
    assert [p.name for p in paths] == ["landscape_2d.csv", "landscape_2d.png"]
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_filter_normalized_matches_each_weight_filter():
    torch.manual_seed(0)
    model = digits_cnn()
    with torch.no_grad():
        model[2].weight[3].zero_()                       # a dead filter: direction zero there
    d = landscape.filter_normalized(model, torch.Generator().manual_seed(5))
    params = dict(model.named_parameters())
    assert list(d) == list(params)
    for name, p in params.items():
        assert d[name].shape == p.shape and d[name].dtype == p.dtype
        if p.dim() <= 1:
            assert not d[name].any(), name
            continue
        want = p.detach().reshape(p.shape[0], -1).double().norm(dim=1)
        got = d[name].reshape(p.shape[0], -1).double().norm(dim=1)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-12)
    assert not d["2.weight"][3].any()
    # the same generator seed gives the same raw direction for another model: only the
    # filter norms differ (directions of each filter equal)
    torch.manual_seed(1)
    other = digits_cnn()
    e = landscape.filter_normalized(other, torch.Generator().manual_seed(5))

    def unit(t):
        rows = t.reshape(t.shape[0], -1)
        return rows / rows.norm(dim=1, keepdim=True)

    for name in ("0.weight", "6.weight"):
        np.testing.assert_allclose(unit(d[name]).numpy(), unit(e[name]).numpy(), atol=1e-6)
        assert not torch.allclose(d[name], e[name])
    # and it is a random direction, not the weights themselves
    w = params["6.weight"].detach().ravel()
    cos = float(w @ d["6.weight"].ravel() / (w.norm() * d["6.weight"].norm()))
    assert abs(cos) < 0.2


def test_scan_restores_weights_epoch_and_mode(trained):
    spec, histories = trained
    task = job.make_task(spec)
    variant = spec.variants[1]                                  # hbfp4
    model, _, emu = loop.build(spec, task, variant, 0)
    state = loop.load_checkpoint(loop.checkpoint_path(spec.out, "hbfp4", 0),
                                 spec.key(variant, 0))
    model.load_state_dict(state["model"])
    model.train()
    emu.epoch = 7
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    d, e = landscape.filter_normalized(model, gen), landscape.filter_normalized(model, gen)
    losses = landscape.scan(model, task, emu, spec.epochs - 1, d, e,
                           [(0.0, 0.0), (0.5, 0.0), (0.0, -0.5)])
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert emu.epoch == 7 and model.training
    assert losses[0] == pytest.approx(histories["hbfp4"][-1].val_loss, abs=1e-6)
    assert len(set(losses)) == 3
    assert sum(emu.macs.values()) == 0                        # evaluations are not counted
    with pytest.raises(ValueError, match="second direction"):
        landscape.scan(model, task, emu, 0, d, None, [(0.5, 0.0), (0.0, 0.5)])
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)


@pytest.mark.parametrize("kwargs,argument", [
    ({"points": 2}, "points"), ({"points": 202}, "points"), ({"points": 5.0}, "points"),
    ({"points": True}, "points"), ({"span": 0}, "span"), ({"span": -1.0}, "span"),
    ({"span": math.inf}, "span"), ({"span": math.nan}, "span"),
    ({"variants": ["fp16"]}, "variants"), ({"variants": "fp32"}, "variants"),
    ({"variants": ["fp32", "fp32"]}, "variants"), ({"seed": 1}, "seed"),
    ({"seed_directions": -1}, "seed_directions")])
def test_landscape_refuses_bad_arguments(trained, kwargs, argument):
    spec, _ = trained
    with pytest.raises(ValueError, match=f"^{argument}:"):
        landscape.landscape(spec, **kwargs)


def test_landscape_refuses_missing_and_unfinished_runs(trained, tmp_path):
    elsewhere = train_spec.parse({"train": {"task": "digits", "variants": ["fp32"],
                                            "epochs": 2, "out": str(tmp_path / "out")}})
    with pytest.raises(ValueError, match="^variants: 'fp32' seed 0 has no checkpoint"):
        landscape.landscape(elsewhere)
    # a checkpoint of this run after 1 of its 2 epochs
    path = loop.checkpoint_path(elsewhere.out, "fp32", 0)
    path.parent.mkdir(parents=True)
    torch.save({"key": elsewhere.key(elsewhere.variants[0], 0), "model": digits_cnn().state_dict(),
                "optimizer": {}, "history": [{"epoch": 0}], "macs": {}}, path)
    with pytest.raises(ValueError, match=r"^variants: 'fp32' seed 0 is unfinished .*1 of 2"):
        landscape.landscape(elsewhere)


def test_landscape_evaluates_at_the_runs_last_epoch(trained, tmp_path):
    """Booster: the middle conv is HBFP4 except in the last epoch (HBFP6). A finished
    two-epoch checkpoint (the trained FP32 weights) must be evaluated as in epoch 1."""
    spec, _ = trained
    booster = train_spec.parse({"train": {"task": "digits", "variants": ["booster"],
                                          "epochs": 2, "out": str(tmp_path / "out")}})
    weights = loop.load_checkpoint(loop.checkpoint_path(spec.out, "fp32", 0),
                                   spec.key(spec.variants[0], 0))["model"]
    path = loop.checkpoint_path(booster.out, "booster", 0)
    path.parent.mkdir(parents=True)
    torch.save({"key": booster.key(booster.variants[0], 0), "model": weights, "optimizer": {},
                "history": [{"epoch": 0}, {"epoch": 1}], "macs": {}}, path)
    rows = landscape.landscape(booster, points=3, progress=False)
    centre = next(r["loss"] for r in rows if r["a"] == 0)
    task = job.make_task(booster)
    model, _, emu = loop.build(booster, task, booster.variants[0], 0)
    model.load_state_dict(weights)
    model.eval()
    by_epoch = []
    for epoch in (0, 1):
        emu.epoch = epoch
        by_epoch.append(task.evaluate(model)[0])
    assert by_epoch[0] != by_epoch[1]                   # the epoch matters for this schedule
    assert centre == by_epoch[1]
