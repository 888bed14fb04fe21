"""Training methods: rounding per tensor role (stochastic rounding unbiased and reproducible),
the emulators' blocking against HBFPEmulator's quantizer written out from its published
formula, attention in FP32, schedule rules by step, learning-rate schedules, run files."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hbfpsim import formats  # noqa: E402
from hbfpsim.config import ConfigError  # noqa: E402
from hbfpsim.numerics import Numerics  # noqa: E402
from hbfpsim.format_schedule import Rule, RunContext, Schedule, variant_table  # noqa: E402
from hbfpsim.train import emulate  # noqa: E402
from hbfpsim.train import spec as train_spec  # noqa: E402
from hbfpsim.train.method import METHOD_PRESETS, Method, Roundings, Variant  # noqa: E402
from hbfpsim.train.models import CharTransformer, digits_cnn  # noqa: E402
from hbfpsim.train.rates import LearningRate  # noqa: E402

F = torch.nn.functional


def emulator_bfp(t: torch.Tensor, mant_bits: int, block: int) -> torch.Tensor:
    """HBFPEmulator's ``float_to_bfp_blocked`` with deterministic rounding, from its published
    formula: the last axis padded with zeros to a multiple of ``block`` and cut into rows of
    ``block``; per row E = ceil(log2(max|x| + 1e-8)), step 2^(E - mant_bits), values rounded
    half to even onto the step and clamped to +-(2^E - step); all in float32."""
    shape = t.shape
    pad = -shape[-1] % block
    rows = F.pad(t, (0, pad)).reshape(-1, block)
    e = (rows.abs().max(dim=1, keepdim=True)[0] + 1e-8).log2().ceil()
    step = torch.pow(2.0, e - mant_bits)
    bound = torch.pow(2.0, e) - step
    q = torch.min(torch.max((rows / step).round() * step, -bound), bound)
    return q.reshape(*shape[:-1], shape[-1] + pad)[..., :shape[-1]]


def emulator_variant(bits: int, block: int) -> Variant:
    fmt = formats.get(f"hbfp{bits}@{block}", compat="hbfpemulator")
    return Variant(Schedule.fixed(Numerics.create(fmt), "method"))


def reference(op, x, w, dy, bits, block):
    """The emulator's sandwich: x and W quantized, the op in FP32 by torch, the output
    gradient quantized; the operands' gradients as torch computes them from those."""
    m = bits - 1
    xq = emulator_bfp(x, m, block).requires_grad_()
    wq = emulator_bfp(w, m, block).requires_grad_()
    y = op(xq, wq)
    y.backward(emulator_bfp(dy, m, block))
    return y.detach(), xq.grad, wq.grad


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


@pytest.mark.parametrize("bits, block", [(4, 8), (4, 64), (6, 8)])
def test_emulator_blocking_equals_hbfpemulator_linear(bits, block):
    g = torch.Generator().manual_seed(bits * block)
    layer = torch.nn.Linear(20, 7, bias=False)
    x = torch.randn(5, 3, 20, generator=g) * 4
    x[0, 0, :8] = torch.tensor([1.0, 0.5, -2.0, 0.25, 0, 0, 0, 0])   # power-of-two maxima
    w = torch.randn(7, 20, generator=g)
    dy = torch.randn(5, 3, 7, generator=g) * 1e-3
    with torch.no_grad():
        layer.weight.copy_(w)
    emulate(layer, emulator_variant(bits, block), blocking="emulator")
    xs = x.clone().requires_grad_()
    y = layer(xs)
    y.backward(dy)
    want = reference(F.linear, x, w, dy, bits, block)
    assert same_bits(y.detach(), want[0])
    assert same_bits(xs.grad, want[1])
    assert same_bits(layer.weight.grad, want[2])


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 0)])
def test_emulator_blocking_equals_hbfpemulator_conv2d(stride, padding):
    g = torch.Generator().manual_seed(stride)
    layer = torch.nn.Conv2d(3, 5, 3, stride=stride, padding=padding, bias=False)
    x = torch.randn(2, 3, 10, 12, generator=g)
    w = torch.randn(5, 3, 3, 3, generator=g)
    with torch.no_grad():
        layer.weight.copy_(w)
    emulate(layer, emulator_variant(4, 8), blocking="emulator")
    xs = x.clone().requires_grad_()
    y = layer(xs)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)

    def conv(a, b):
        return F.conv2d(a, b, None, stride, padding)

    want = reference(conv, x, w, dy, 4, 8)
    assert same_bits(y.detach(), want[0])
    assert same_bits(xs.grad, want[1])
    assert same_bits(layer.weight.grad, want[2])


def test_gemm_blocking_differs_from_emulator_blocking():
    """The two blockings are different computations (conv weights: blocks of C kh kw along
    the GEMM's K against rows of kw)."""
    outs = []
    for blocking in ("gemm", "emulator"):
        torch.manual_seed(0)
        model = digits_cnn()
        emulate(model, "hbfp4@8", blocking=blocking)
        outs.append(model(torch.ones(2, 1, 8, 8)).detach())
    assert not torch.equal(*outs)


@pytest.mark.parametrize("name, value", [("hbfp4", 0.3), ("hbfp4", -0.71), ("mxfp4", 0.3),
                                         ("fp8_e4m3", 0.3), ("bf16", 1 / 3), ("int8", 0.3)])
def test_stochastic_rounding_is_unbiased(name, value):
    """The mean of many stochastic roundings of one value lies within four standard errors
    of the value; round to nearest misses it by far more."""
    n = 1 << 16
    x = np.full(n, value, np.float64)
    x[0] = 1.0                              # int8: a scale the value is not a multiple of
    q = formats.quantize(x, name, rounding="stochastic", seed=7)[1:]
    mean, se = q.mean(), q.std() / math.sqrt(n - 1)
    assert se > 0
    assert abs(mean - value) < 4 * se
    nearest = formats.quantize(x, name)[1]
    assert abs(nearest - value) > 20 * se


def _train(rounding, seed, steps=3, **kw):
    torch.manual_seed(0)
    model = digits_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    emu = emulate(model, "hbfp4", optimizer=opt, rounding=rounding, seed=seed, **kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return model, emu


@pytest.mark.parametrize("blocking", ["gemm", "emulator"])
def test_stochastic_training_is_reproducible(blocking):
    a, emu = _train("stochastic", 5, blocking=blocking)
    b, _ = _train("stochastic", 5, blocking=blocking)
    c, _ = _train("stochastic", 6, blocking=blocking)
    d, _ = _train("even", 5, blocking=blocking)
    assert emu.step == 3
    for (name, p), q, r, s in zip(a.named_parameters(), b.parameters(), c.parameters(),
                                  d.parameters()):
        assert torch.equal(p, q), name
        if name.endswith("weight"):
            assert not torch.equal(p, r), name
            assert not torch.equal(p, s), name


def test_rounding_by_role():
    """Stochastic gradients only: the forward pass is the nearest-even one, bit for bit, and
    the weight gradients are not."""
    grads, outs = [], []
    for rounding in ("even", {"gradients": "stochastic"}):
        torch.manual_seed(0)
        model = digits_cnn()
        emulate(model, "hbfp4", rounding=rounding, seed=1)
        y = model(torch.linspace(-1, 1, 128).reshape(2, 1, 8, 8))
        y.square().sum().backward()
        outs.append(y.detach())
        grads.append(model[2].weight.grad)
    assert torch.equal(*outs)
    assert not torch.equal(*grads)
    assert str(Roundings.of({"gradients": "stochastic"})) == (
        "activations=rne weights=rne gradients=stochastic storage=rne")
    with pytest.raises(ValueError, match="unknown role 'bias'"):
        Roundings.of({"bias": "even"})


def test_storage_of_all_parameters_along_the_last_axis():
    model, _ = _train("even", 0, steps=1, storage="hbfp8@8", stored="all", blocking="emulator")
    fmt = formats.get("hbfp8@8")
    for name, p in model.named_parameters():
        values = p.detach().numpy()
        assert np.array_equal(fmt.quantize(values, axis=-1), values), name
    model, _ = _train("even", 0, steps=1, storage="hbfp8@8")          # weights only
    bias = model[0].bias.detach().numpy()
    assert not np.array_equal(fmt.quantize(bias), bias)


def test_attention_in_fp32_leaves_the_products_of_activations_alone():
    model = CharTransformer(width=16, heads=2, depth=1, context=8)
    emu = emulate(model, "hbfp4", attention="fp32")
    assert "blocks.0.scores" not in emu.layers and "blocks.0.qkv" in emu.layers
    assert type(model.blocks[0].scores).__name__ == "MatMul"
    preset = CharTransformer(width=16, heads=2, depth=1, context=8)
    emu = emulate(preset, "booster-transformer", steps=200)
    assert emu.method.attention == "fp32" and emu.method.blocking == "emulator"
    numerics = [emu.numerics_for("head", "fwd")]
    emu.step = 197
    numerics.append(emu.numerics_for("head", "fwd"))
    emu.step = 198                              # floor(0.99 x 200): the last 1% of 200 steps
    numerics.append(emu.numerics_for("head", "fwd"))
    assert [n.input.mantissa_bits for n in numerics] == [4, 4, 6]


@pytest.mark.parametrize("steps, matching", [
    ((5, 7), {5, 6, 7}), (("last-2", "last"), {7, 8, 9}), (("50%", None), {5, 6, 7, 8, 9}),
    (("95%", "last"), {9}), ((None, "last-8"), {0, 1})])
def test_rules_by_step(steps, matching):
    rule = Rule(Numerics.create("hbfp6"), steps=steps)
    where = RunContext(last_epoch=0, last_step=9)
    assert {s for s in range(10) if rule.matches("x", "fwd", 0, where, s)} == matching
    with pytest.raises(ValueError, match="only a training run has"):
        rule.matches("x", "fwd", 0, where)


@pytest.mark.parametrize("steps", [(5, 2), ("last-x", None), ("101%", None), (-1, 3),
                                   ("last+1", None)])
def test_bad_step_ranges_are_refused(steps):
    with pytest.raises(ValueError, match="rule steps"):
        Rule(Numerics.create("hbfp6"), steps=steps)


def test_learning_rate_schedules_worked_by_hand():
    cosine = LearningRate(1.0, "cosine", final=0.1)
    assert [cosine.at(s, 11, 5) for s in (0, 5, 10)] == pytest.approx([1.0, 0.55, 0.1])
    warm = LearningRate(2.0, "cosine", warmup=4)
    assert [warm.at(s, 13, 5) for s in (0, 3, 4, 8, 12)] == pytest.approx(
        [0.5, 2.0, 2.0, 1.0, 0.0])
    step = LearningRate(1.0, "step", milestones=(2, 4), gamma=0.1)
    assert [step.at(s, 60, 10) for s in (19, 20, 39, 45)] == pytest.approx(
        [1.0, 0.1, 0.1, 0.01])
    assert LearningRate(0.3).at(99, 100, 10) == 0.3


def _parse(table, variants=()):
    return train_spec.parse({"train": {"task": "text", "epochs": 2, **table},
                             "variant": list(variants)})


def test_run_file_method_keys():
    run = _parse({"variants": ["hbfp4", "booster-transformer"], "rounding": "stochastic",
                  "lr_schedule": "cosine", "warmup_steps": 10, "lr_final": 0.1},
                 [{"name": "mine", "input": "hbfp6@8", "blocking": "emulator",
                   "rounding": {"weights": "even"},
                   "rule": [{"steps": ["last-9", "last"], "input": "hbfp8@8"}]},
                  {"name": "cnn", "schedule": "booster-cnn", "rounding": "even"}])
    hbfp4, preset, mine, cnn = run.variants
    assert str(hbfp4.method.rounding) == "stochastic" and hbfp4.method.blocking == "gemm"
    assert preset.method == METHOD_PRESETS["booster-transformer"].method
    assert mine.method.blocking == "emulator"
    assert mine.method.rounding.weights.label == "rne"
    assert mine.method.rounding.gradients.label == "rne"    # a table: roles not given, even
    assert mine.schedule.rules[0].steps == ("last-9", "last")
    assert cnn.method.blocking == "emulator" and str(cnn.method.rounding) == "rne"
    assert run.rate == LearningRate(3e-3, "cosine", 10, 0.1)
    assert run.key(hbfp4, 0) != run.key(preset, 0)


@pytest.mark.parametrize("table, variants, message", [
    ({"blocking": "tiles"}, (), r"\[train\] blocking: expected one of gemm, emulator"),
    ({"rounding": {"weight": "even"}}, (), "unknown role 'weight'"),
    ({"rounding": "up"}, (), "rounding='up' is not a rounding mode"),
    ({"storage": "hbfp99"}, (), "storage"),
    ({"lr_schedule": "linear"}, (), "lr_schedule: expected one of constant, cosine, step"),
    ({"lr_schedule": "step"}, (), "lr_milestones: lr_schedule = \"step\" needs"),
    ({"lr_milestones": [1]}, (), "lr_milestones: applies to lr_schedule = \"step\""),
    ({"lr_schedule": "cosine", "lr_final": 2}, (), "lr_final: expected a fraction"),
    ({}, ({"name": "v", "input": "hbfp4", "attention": "int8"},),
     r"\[\[variant\]\] 1 \(v\) attention: expected one of emulated, fp32"),
    ({}, ({"name": "v", "input": "hbfp4", "rule": [{"steps": [4, 1], "input": "hbfp6"}]},),
     "steps: first 4 is after last 1"),
    ({"exact": {"layers": ["head"]}, "blocking": "emulator"}, (), "exact: bit-exact"),
])
def test_bad_method_keys_name_the_key(table, variants, message):
    with pytest.raises(ConfigError, match=message):
        _parse({**({} if variants else {"variants": ["hbfp4"]}), **table}, variants)


def test_replay_run_files_refuse_rules_by_step():
    with pytest.raises(ConfigError, match="steps: rules by step apply to training run files"):
        variant_table({"name": "v", "input": "hbfp4",
                      "rule": [{"steps": [1, 2], "input": "hbfp6"}]}, "f")


@pytest.mark.parametrize("blocking", ["gemm", "emulator"])
def test_both_quantizer_engines_train_the_same_weights(blocking):
    from hbfpsim.train.quantizer import engine
    a, _ = _train("stochastic", 4, steps=2, blocking=blocking, stored="all")
    with engine("torch"):
        b, _ = _train("stochastic", 4, steps=2, blocking=blocking, stored="all")
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_both_blockings_count_the_same_macs():
    """The same three products per layer (the first layer's backward-data skipped: its input
    needs no gradient), whichever way they are quantized; attention products included."""
    counts = []
    for blocking in ("gemm", "emulator"):
        _, emu = _train("even", 0, steps=1, blocking=blocking)
        counts.append(dict(emu.macs))
        model = CharTransformer(width=16, heads=2, depth=1, context=8)
        emu = emulate(model, "hbfp4", blocking=blocking)
        model(torch.randint(0, 128, (2, 8))).sum().backward()
        counts.append(dict(emu.macs))
    assert counts[0] == counts[2] == {"hbfp4@64": 16 * (2 * 8 * 9 * 64 + 3 * 16 * 72 * 64
                                                        + 3 * 2560)}
    assert counts[1] == counts[3]


def test_every_output_names_the_method(tmp_path):
    import csv
    import json

    from hbfpsim import text
    from hbfpsim.train import job
    from hbfpsim.train.loop import checkpoint_path, load_checkpoint
    pytest.importorskip("sklearn")
    run = train_spec.parse({"train": {"task": "digits", "variants": ["hbfp4"], "seeds": [0],
                                      "epochs": 1, "out": str(tmp_path / "out"),
                                      "lr_schedule": "cosine"},
                            "variant": [{"name": "hbfp4-emu", "input": "hbfp4",
                                         "blocking": "emulator", "rounding": "stochastic"},
                                        {"name": "flat", "input": "hbfp4",
                                         "lr_schedule": "constant"}]})
    report = job.run(run, progress=False)
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["blocking"], r["rounding"], r["learning_rate"]) for r in rows] == [
        ("hbfp4", "gemm", "rne", "cosine 0.05 -> 0"),
        ("hbfp4-emu", "emulator", "stochastic", "cosine 0.05 -> 0"),
        ("flat", "gemm", "rne", "constant 0.05")]
    # the rate the optimizer last used: the cosine's end (0), the variant's own constant
    lrs = [load_checkpoint(checkpoint_path(tmp_path / "out", v.name, 0), run.key(v, 0))
           ["optimizer"]["param_groups"][0]["lr"] for v in run.variants]
    assert lrs == [0.0, 0.0, 0.05]
    printed = text.train_report(report).splitlines()
    assert "learning rate cosine 0.05 -> 0" in printed[0]
    assert printed[1].split()[:3] == ["variant", "blocking", "rounding"]
    assert printed[3].split()[:3] == ["hbfp4-emu", "emulator", "stochastic"]
    meta = json.loads((tmp_path / "out" / "run.json").read_text())
    assert meta["variants"]["hbfp4-emu"].startswith("emulator blocking, stochastic rounding")
    assert (tmp_path / "out" / "methods.png").stat().st_size > 10_000
    assert printed[-2] == "flat: learning rate constant 0.05"


def test_one_canonical_identity_tells_every_setting_apart():
    """Checkpoint keys hash the canonical forms (``to_dict``), which tell apart what the
    names alone do not: the emulator's exponent rule, a saturating FP16, the method, the
    rate; the variant's name is a label and changes nothing."""
    run = _parse({"variants": ["hbfp4"]})
    plain = run.variants[0]
    emulator = emulator_variant(4, 64)
    assert emulator.schedule.default.input.name == plain.schedule.default.input.name
    assert emulator.schedule.to_dict() != plain.schedule.to_dict()
    assert formats.get("fp16", saturate=True).canonical == "fp16:saturate=True"
    assert formats.get("fp8_e4m3").canonical == "fp8_e4m3"            # its default
    keys = {run.key(v, 0) for v in (
        plain, emulator, Variant(plain.schedule, Method(blocking="emulator")),
        Variant(plain.schedule, rate=LearningRate(3e-3, "cosine")))}
    assert len(keys) == 4
    renamed = Variant(Schedule("another-name", plain.schedule.default), plain.method)
    assert run.key(renamed, 0) == run.key(plain, 0) != run.key(plain, 1)
