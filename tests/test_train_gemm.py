"""The three GEMMs of emulated Linear, Conv2d and MatMul equal quantize-then-multiply worked
by hand: each operand quantized by the format's own quantizer along the axis the test names
(the product's reduction axis), the product summed in float64 by numpy, and im2col and its
inverse written out as loops."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hbfpsim import formats  # noqa: E402
from hbfpsim.train import MatMul, emulate  # noqa: E402

FMT = "hbfp4@16"   # small blocks: K of 40 holds two whole blocks and a partial one


def q(x: np.ndarray, axis: int, name: str = FMT) -> np.ndarray:
    return formats.get(name).quantize(np.asarray(x, np.float32), axis=axis).astype(np.float64)


def close(got: torch.Tensor, want: np.ndarray) -> None:
    # torch sums in float32 in its own order; the oracle in float64
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


def wide_spread(rng, shape):
    """Data whose magnitudes vary by 2^10 across every axis, so that blocks along the wrong
    axis get other exponents and other values."""
    return (rng.standard_normal(shape) * 2.0 ** rng.integers(-5, 5, shape)).astype(np.float32)


def test_linear_three_gemms_quantize_along_their_own_axis():
    rng = np.random.default_rng(1)
    x, w, dy = wide_spread(rng, (24, 40)), wide_spread(rng, (36, 40)), wide_spread(rng, (24, 36))
    layer = torch.nn.Linear(40, 36)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.zero_()
    emulate(layer, FMT)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    y.backward(torch.from_numpy(dy))
    close(y, q(x, 1) @ q(w, 1).T)                          # fwd: K = in features
    close(xt.grad, q(dy, 1) @ q(w, 0))                     # bwd_data: K = out features
    close(layer.weight.grad, q(dy, 0).T @ q(x, 0))         # bwd_weight: K = batch rows
    close(layer.bias.grad, dy.astype(np.float64).sum(0))
    # the axes matter: blocks along the other axis give other values
    assert not np.allclose(layer.weight.grad.numpy(), q(dy, 1).T @ q(x, 1), rtol=1e-3)


def patches(x: np.ndarray, k: int, pad: int, stride: int) -> np.ndarray:
    """im2col by loops: (N, positions, C k k), positions row-major."""
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), x.dtype)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((n, ho * wo, c * k * k), x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, i * wo + j] = xp[:, :, i * stride:i * stride + k,
                                    j * stride:j * stride + k].reshape(n, -1)
    return out


def unpatch(cols: np.ndarray, shape, k: int, pad: int, stride: int) -> np.ndarray:
    """The inverse scatter-add of ``patches``: (N, positions, C k k) -> (N, C, H, W)."""
    n, c, h, w = shape
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    wo = (w + 2 * pad - k) // stride + 1
    for p in range(cols.shape[1]):
        i, j = divmod(p, wo)
        xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += \
            cols[:, p].reshape(n, c, k, k)
    return xp[:, :, pad:pad + h, pad:pad + w]


@pytest.mark.parametrize("pad,stride", [(1, 1), (0, 2)])
def test_conv2d_three_gemms_quantize_along_their_own_axis(pad, stride):
    rng = np.random.default_rng(2)
    n, c, h, out_ch, k = 3, 5, 7, 6, 3
    x, w = wide_spread(rng, (n, c, h, h)), wide_spread(rng, (out_ch, c, k, k))
    conv = torch.nn.Conv2d(c, out_ch, k, padding=pad, stride=stride, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
    emulate(conv, FMT)
    xt = torch.from_numpy(x).requires_grad_()
    y = conv(xt)
    dy = wide_spread(rng, tuple(y.shape))
    y.backward(torch.from_numpy(dy))
    cols = patches(x, k, pad, stride)                          # N, L, C k k
    w2 = w.reshape(out_ch, -1)
    dy3 = dy.reshape(n, out_ch, -1)                            # N, out, L
    # fwd: K = C k k (each patch quantized on its own)
    want_y = np.einsum("nlk,ok->nol", q(cols, 2), q(w2, 1)).reshape(y.shape)
    close(y, want_y)
    # bwd_data: K = out channels, then the patch gradients scatter back
    dcols = np.einsum("nol,ok->nlk", q(dy3, 1), q(w2, 0))
    close(xt.grad, unpatch(dcols, x.shape, k, pad, stride))
    # bwd_weight: K = every (image, position) pair
    dy_flat = dy3.transpose(1, 0, 2).reshape(out_ch, -1)       # out, N L
    cols_flat = cols.reshape(-1, cols.shape[2])                # N L, C k k
    close(conv.weight.grad, (q(dy_flat, 1) @ q(cols_flat, 0)).reshape(w.shape))


def test_matmul_three_gemms_quantize_along_their_own_axis():
    rng = np.random.default_rng(3)
    a, b, dy = wide_spread(rng, (2, 20, 40)), wide_spread(rng, (2, 40, 24)), \
        wide_spread(rng, (2, 20, 24))
    mm = MatMul()
    emulate(mm, FMT)
    at, bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    y = mm(at, bt)
    y.backward(torch.from_numpy(dy))
    close(y, q(a, 2) @ q(b, 1))
    close(at.grad, q(dy, 2) @ q(b, 2).transpose(0, 2, 1))
    close(bt.grad, q(a, 1).transpose(0, 2, 1) @ q(dy, 1))


def test_fp32_schedule_is_plain_torch():
    rng = np.random.default_rng(4)
    x = torch.from_numpy(wide_spread(rng, (8, 16)))
    plain = torch.nn.Linear(16, 4)
    twin = torch.nn.Linear(16, 4)
    twin.load_state_dict(plain.state_dict())
    emulate(twin, "fp32")
    assert torch.equal(plain(x), twin(x))


def test_exact_layers_accumulate_through_the_mac_engine():
    """``exact``: the chosen GEMMs run through hbfpsim.mac.matmul with the numerics' PE plan
    (here a BF16 chain, which rounds every addition), the others in FP32 by torch."""
    from hbfpsim.mac import matmul
    from hbfpsim.numerics import Numerics
    from hbfpsim.format_schedule import Schedule
    rng = np.random.default_rng(5)
    x, w = wide_spread(rng, (16, 40)), wide_spread(rng, (8, 40))
    schedule = Schedule.fixed(Numerics.create(FMT, accumulator="bf16"))
    exact, fast = torch.nn.Linear(40, 8, bias=False), torch.nn.Linear(40, 8, bias=False)
    for layer in (exact, fast):
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
    emulate(exact, schedule, exact={"layers": ["*"], "phases": ["fwd"]})
    emulate(fast, schedule)
    xt = torch.from_numpy(x)
    want = matmul(x, w.T, FMT, plan="bf16").out.astype(np.float32)
    assert np.array_equal(exact(xt).detach().numpy(), want)
    close(fast(xt), q(x, 1) @ q(w, 1).T)
    assert not np.allclose(fast(xt).detach().numpy(), want, rtol=1e-4)   # BF16 sums differ
