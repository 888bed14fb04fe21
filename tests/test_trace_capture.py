"""Capture from PyTorch: every record's A @ B reproduces what the step really computed."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from hbfpsim import trace  # noqa: E402

# the tests' own backward hooks on a first layer, whose input needs no gradient, warn
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def run_step(model, x, path, **options):
    """One captured training step; returns (trace, layer outputs, grads of layer inputs)."""
    outputs, input_grads = {}, {}
    names = {m: n for n, m in model.named_modules()}
    hooks = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            hooks.append(module.register_forward_hook(
                lambda m, i, o: outputs.__setitem__(names[m], o.detach().clone())))
            hooks.append(module.register_full_backward_hook(
                lambda m, gi, go: input_grads.__setitem__(names[m], gi[0])))
    with trace.capture(path, model, **options) as cap:
        cap.start_step(epoch=3)
        loss = model(x).square().sum()
        loss.backward()
    for h in hooks:
        h.remove()
    return trace.open(path), outputs, input_grads


def close(a, b):
    scale = max(float(np.abs(b).max()), 1e-6)
    return np.allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


def product(gemm):
    return np.asarray(gemm.a) @ np.asarray(gemm.b)


def test_linear_layers(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 5))
    t, outputs, input_grads = run_step(model, torch.randn(9, 12), tmp_path / "mlp")
    got = [(r.layer, r.phase, r.m, r.n, r.k) for r in t.records]
    assert got == [("0", "fwd", 9, 7, 12), ("2", "fwd", 9, 5, 7),
                   ("2", "bwd_data", 9, 7, 5), ("2", "bwd_weight", 5, 7, 9),
                   ("0", "bwd_weight", 7, 12, 9)]            # no input gradient for layer 0
    assert {r.step for r in t.records} == {0} and {r.epoch for r in t.records} == {3}
    layers = dict(model.named_children())
    for gemm in t:
        layer = layers[gemm.record.layer]
        assert gemm.a.dtype == np.float32 and isinstance(gemm.a, np.memmap)
        if gemm.record.phase == "fwd":
            want = outputs[gemm.record.layer] - layer.bias.detach()
        elif gemm.record.phase == "bwd_data":
            want = input_grads[gemm.record.layer]
        else:
            want = layer.weight.grad
        assert close(product(gemm), want.numpy()), gemm.record


def test_convolutions_lowered_by_im2col(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.Flatten(),
                          nn.Linear(6 * 4 * 4, 3))
    x = torch.randn(5, 2, 7, 7)
    t, outputs, input_grads = run_step(model, x, tmp_path / "cnn")
    conv = model[2]
    records = {(r.layer, r.phase): r for r in t.records}
    assert records[("2", "fwd")].count == 2                                 # one GEMM per group
    r = records[("2", "fwd")]
    assert (r.m, r.n, r.k) == (5 * 4 * 4, 3, 2 * 9)
    assert ("0", "bwd_data") not in records and ("0", "bwd_weight") in records
    gemms = {(g.record.layer, g.record.phase): product(g) for g in t}
    # forward: per group (B*L, Cout/G) -> (B, Cout, H, W)
    out = torch.from_numpy(gemms[("2", "fwd")]).permute(1, 0, 2).reshape(5, 4, 4, 6)
    assert close(out.permute(0, 3, 1, 2).numpy(), (outputs["2"] - conv.bias.detach().view(1, -1, 1, 1)).numpy())
    # backward data: dcols per group, folded back (col2im) into the input gradient
    dcols = torch.from_numpy(gemms[("2", "bwd_data")])                      # (G, B*L, Cg*9)
    dcols = dcols.reshape(2, 5, 16, 2 * 9).permute(1, 0, 3, 2).reshape(5, 4 * 9, 16)
    grad_x = F.fold(dcols, (7, 7), 3, padding=1, stride=2)
    assert close(grad_x.numpy(), input_grads["2"].numpy())
    # backward weight: per group (Cg*9, Cout/G) = dW^T
    dw = torch.from_numpy(gemms[("2", "bwd_weight")]).transpose(1, 2).reshape(6, 2, 3, 3)
    assert close(dw.numpy(), conv.weight.grad.numpy())
    dw0 = torch.from_numpy(gemms[("0", "bwd_weight")]).T.reshape(4, 2, 3, 3)
    assert close(dw0.numpy(), model[0].weight.grad.numpy())


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return torch.bmm(self.q(x), self.k(x).transpose(1, 2))


def test_functional_products_inside_a_module(tmp_path):
    torch.manual_seed(2)
    model = Attention()
    x = torch.randn(3, 5, 8, requires_grad=True)
    with trace.capture(tmp_path / "attn", model) as cap:
        cap.start_step()
        scores = model(x)
        scores.sum().backward()
    t = trace.open(tmp_path / "attn")
    phases = [(r.layer, r.phase, r.count) for r in t.records]
    assert phases.count(("Attention", "bwd_data", 3)) == 2      # two activation gradients
    assert ("q", "bwd_weight", 1) in phases and ("k", "bwd_data", 1) in phases
    fwd = next(g for g in t if g.record.layer == "Attention" and g.record.phase == "fwd")
    assert fwd.a.shape == (3, 5, 8) and close(product(fwd), scores.detach().numpy())


def test_steps_layers_and_budget(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    with trace.capture(tmp_path / "sel", model, steps=[1, 3], layers=["2"]) as cap:
        for step in range(5):
            cap.start_step(epoch=step // 2)
            model(torch.randn(4, 6)).sum().backward()
    t = trace.open(tmp_path / "sel")
    assert {(r.step, r.epoch) for r in t.records} == {(1, 0), (3, 1)}
    assert {r.layer for r in t.records} == {"2"} and len(t) == 2 * 3
    budget = 4 * (4 * 6 + 6 * 6) + 1                     # room for layer 0's forward only
    with trace.capture(tmp_path / "cut", model, max_bytes=budget) as cap:
        cap.start_step()
        model(torch.randn(4, 6)).sum().backward()
    t = trace.open(tmp_path / "cut")
    assert t.capture["truncated"] is True and t.records[0].a is not None
    assert all(r.a is None for r in t.records[1:]) and len(t) == 5
    assert t.capture["budget_rule"] == "prefix"


def test_budget_is_a_prefix(tmp_path):
    """Once one record's operands do not fit, every later record is shape-only, even one
    small enough for what is left (first-fit would keep layer 2's bwd_data, 80 bytes)."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    sizes = {("0", "fwd"): 4 * (4 * 6 + 6 * 6), ("2", "fwd"): 4 * (4 * 6 + 6 * 2),
             ("2", "bwd_data"): 4 * (4 * 2 + 2 * 6)}
    budget = sizes["0", "fwd"] + 100              # layer 2's fwd (144) does not fit, 80 would
    with trace.capture(tmp_path / "cut", model, max_bytes=budget) as cap:
        cap.start_step()
        model(torch.randn(4, 6)).sum().backward()
    t = trace.open(tmp_path / "cut")
    kept = [(r.layer, r.phase) for r in t.records if r.a is not None]
    assert [(r.layer, r.phase) for r in t.records][:3] == list(sizes)
    assert kept == [("0", "fwd")] and t.capture["truncated"] is True
    assert t.summary()["operand_bytes"] == sizes["0", "fwd"] + 2 * 128       # two .npy headers


def test_capture_rejects_non_modules(tmp_path):
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        trace.capture(tmp_path / "x", lambda x: x)


class Mixer(nn.Module):
    """A linear layer on (batch, tokens, features) input and torch.matmul of 3-D tensors."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 4)

    def forward(self, x):
        h = self.proj(x)                         # addmm on the (batch * tokens, 6) view
        return torch.matmul(h, h.transpose(1, 2))   # bmm, count = batch


def test_matmul_and_linear_on_3d_inputs(tmp_path):
    torch.manual_seed(4)
    model = Mixer()
    x = torch.randn(2, 5, 6)
    with trace.capture(tmp_path / "mix", model) as cap:
        cap.start_step()
        out = model(x)
        out.sum().backward()
    t = trace.open(tmp_path / "mix")
    fwd = {r.layer: r for r in t.records if r.phase == "fwd"}
    assert (fwd["proj"].m, fwd["proj"].n, fwd["proj"].k) == (2 * 5, 4, 6)
    assert (fwd["Mixer"].m, fwd["Mixer"].n, fwd["Mixer"].k, fwd["Mixer"].count) == (5, 5, 4, 2)
    products = {}
    for gemm in t:
        products.setdefault((gemm.record.layer, gemm.record.phase), []).append(product(gemm))
    assert close(products["Mixer", "fwd"][0], out.detach().numpy())
    assert close(products["proj", "bwd_weight"][0], model.proj.weight.grad.numpy())
    # out = h h^T with d sum(out) / d out = 1: the bmm's two input gradients are 1 h and
    # h^T 1, one the transpose of the other (both bwd_data, count = batch)
    ones_h = np.ones((2, 5, 5), np.float32) @ model.proj(x).detach().numpy()
    grads = sorted(products["Mixer", "bwd_data"], key=lambda p: p.shape[1])
    assert [g.shape for g in grads] == [(2, 4, 5), (2, 5, 4)]
    assert close(grads[0], ones_h.transpose(0, 2, 1)) and close(grads[1], ones_h)
