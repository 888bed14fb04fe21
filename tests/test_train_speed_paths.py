"""The training quantizer's fast paths give what the plain paths give, bit for bit: the
column block kernel (``kernels.block_scaled_columns``) against ``Format.quantize_rows`` on
the transposed copy, ``round_tensor`` on transposed views (no copy of the input, the result
in the input's layout) and on strided ones (copied), and the convolution's ``im2col``
against ``torch.nn.functional.unfold``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hbfpsim import formats
from hbfpsim.formats import kernels
from hbfpsim.formats.rounding import Rounding
from hbfpsim.formats.threads import _CALLER, calling_thread_only
from hbfpsim.train import lowering
from hbfpsim.train.lowering import im2col
from hbfpsim.train.quantizer import _block_grid, round_tensor

FORMATS = [formats.get("hbfp4"), formats.get("hbfp8@16"), formats.get("hbfp6@128"),
           formats.get("hbfp4", compat="hbfpemulator"), formats.get("mxfp4"),
           formats.get("mxfp8_e4m3"), formats.get("mxint8")]
# (B, K, N): K within one tile and block, across blocks, across tiles; N across tiles
SHAPES = [(3, 72, 64), (2, 9, 130), (1, 300, 70), (4, 1, 5), (2, 16, 1)]
SEED = 0x5EED


def _hostile(shape: tuple[int, int, int], dtype, rng: np.random.Generator) -> np.ndarray:
    """Values over a wide range of magnitudes per column, with zero columns, NaN, Inf and,
    in the last column, values at 2^127 and above (the emulator's exponent 128)."""
    b, k, n = shape
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-60, 60, (b, 1, n)))
    x[0, :, 0] = 0.0
    if n > 3:
        x[0, k // 2, 1] = np.nan
        x[b - 1, 0, 2] = -np.inf
        x[b - 1, :, n - 1] = rng.uniform(1.0, 1.9, k) * 2.0**127
    return x.astype(dtype)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name + ("-compat" if getattr(
    f, "compat", None) else ""))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_columns_kernel_equals_rows_kernel_on_the_transposed_copy(fmt, dtype):
    rng = np.random.default_rng(7)
    compat = getattr(fmt, "compat", None) is not None
    if compat and dtype == np.float64:
        pytest.skip("compat rounds float64 input to float32 first: the rows path only")
    for shape, mode in itertools.product(SHAPES, Rounding):
        x = _hostile(shape, dtype, rng)
        b, k, n = shape
        rows = np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(-1, k)
        with np.errstate(invalid="ignore", over="ignore"):
            expected = fmt.quantize_rows(rows, int(mode), SEED)
        q = np.empty((b, k, n), dtype)
        block, man_bits, emin, maxval, offset = _block_grid(fmt)
        kernels.block_scaled_columns(x, block, man_bits, emin, maxval, offset, compat,
                                     int(mode), SEED, q)
        got = np.ascontiguousarray(q.transpose(0, 2, 1)).reshape(-1, k)
        assert got.tobytes() == expected.tobytes(), (shape, mode)


@pytest.mark.parametrize("mode", [0, int(Rounding.STOCHASTIC)])
def test_round_tensor_reads_transposed_views_in_place(monkeypatch, mode):
    fmt = formats.get("hbfp4@16")
    base = torch.randn(3, 40, 70)                      # (B, K, N), C-contiguous
    view = base.transpose(-1, -2)                      # (B, N, K): quantized along K
    expected = round_tensor(view.contiguous(), fmt, -1, mode, 11)

    def no_copy(*args, **kwargs):
        raise AssertionError("round_tensor copied a transposed view")
    monkeypatch.setattr(torch.Tensor, "contiguous", no_copy)
    with calling_thread_only():
        got = round_tensor(view, fmt, -1, mode, 11)
        along_k = round_tensor(base, fmt, -2, mode, 11)   # blocks along -2 of (B, K, N)
    assert got.shape == view.shape and got.stride() == view.stride()   # the input's layout
    assert torch.equal(got.view(torch.int32), expected.view(torch.int32))
    assert along_k.is_contiguous()                    # as base lies
    assert torch.equal(along_k.transpose(-1, -2).view(torch.int32), expected.view(torch.int32))


@pytest.mark.parametrize("mode", list(Rounding))
def test_round_tensor_reads_im2col_matrices_in_place(monkeypatch, mode):
    """An im2col matrix (C kh kw, N L) along its columns (the forward product's K): the
    columns kernel reads it where it lies and writes the result laid out as it is, bit for
    bit what the rows of a transposed copy give."""
    fmt = formats.get("hbfp4@16")
    cols = im2col(torch.randn(3, 4, 6, 5), (3, 3), (1, 1), (1, 1), (1, 1))
    expected = fmt.quantize_rows(cols.t().contiguous().numpy(), int(mode), 9)

    def no_copy(*args, **kwargs):
        raise AssertionError("round_tensor copied an im2col matrix")
    monkeypatch.setattr(torch.Tensor, "contiguous", no_copy)
    with calling_thread_only():
        got = round_tensor(cols, fmt, -2, int(mode), 9)
    assert got.is_contiguous() and got.shape == cols.shape
    assert np.ascontiguousarray(got.numpy().T).tobytes() == expected.tobytes()


def test_round_tensor_weight_transpose_matches_rows_path():
    fmt = formats.get("mxfp8_e4m3")
    weight = torch.randn(24, 100)
    got = round_tensor(weight.t(), fmt, -1, int(Rounding.STOCHASTIC), 3)
    expected = torch.from_numpy(fmt.quantize_rows(
        weight.t().contiguous().numpy(), int(Rounding.STOCHASTIC), 3))
    assert got.t().is_contiguous()                    # as the weight lies
    assert torch.equal(got.view(torch.int32), expected.view(torch.int32))


@pytest.mark.parametrize("mode", list(Rounding))
def test_round_tensor_strided_heads_match_rows_of_a_copy(mode):
    """Attention heads split out of one projection (neither they nor their transposes are
    C-contiguous: copied first) along either axis; short rows, some holding NaN or Inf."""
    fmt = formats.get("hbfp4")
    qkv = torch.randn(2, 10, 72) * torch.exp2(torch.randint(-20, 20, (2, 10, 1)).float())
    qkv[0, 3, 29], qkv[1, 7, 40] = float("nan"), float("inf")
    heads = qkv[..., 24:48].reshape(2, 10, 4, 6).transpose(1, 2)         # (B, H, T, D)
    for axis in (-1, -2):
        along = (heads if axis == -1 else heads.transpose(-1, -2)).contiguous().numpy()
        with np.errstate(invalid="ignore"):
            expected = fmt.quantize_rows(along.reshape(-1, along.shape[-1]), int(mode), 5)
        with calling_thread_only():
            got = round_tensor(heads, fmt, axis, int(mode), 5)
        got = (got if axis == -1 else got.transpose(-1, -2)).contiguous()
        assert got.numpy().tobytes() == expected.tobytes(), axis


GEOMETRIES = [((3, 3), (1, 1), (1, 1), (1, 1)), ((2, 3), (2, 1), (0, 2), (2, 3)),
              ((1, 1), (1, 1), (0, 0), (1, 1)), ((3, 2), (1, 2), (2, 0), (1, 2))]


@pytest.mark.parametrize("engine", ["numba", "torch"])
@pytest.mark.parametrize("kernel,dilation,padding,stride", GEOMETRIES)
def test_im2col_and_col2im_equal_unfold_and_fold(monkeypatch, engine, kernel, dilation,
                                                 padding, stride):
    """The patch matrix (C kh kw, N L) is unfold's (N, C kh kw, L) with its first two axes
    swapped; col2im of it is fold's image, bit for bit (both add a pixel's entries in the
    same order), from the numba kernels and from the torch operations other devices use."""
    if engine == "torch":
        monkeypatch.setattr(lowering, "_numba_takes", lambda t: False)
    x = torch.randn(3, 4, 9, 11)
    for source in (x, x.transpose(2, 3).contiguous().transpose(2, 3)):   # and a strided one
        expected = torch.nn.functional.unfold(source, kernel, dilation, padding, stride)
        got = lowering.im2col(source, kernel, dilation, padding, stride)
        assert got.is_contiguous() and got.data_ptr() != source.data_ptr()
        assert torch.equal(got.view(expected.shape[1], 3, -1).transpose(0, 1), expected)
    patches = torch.randn(expected.shape[1], 3 * expected.shape[2])
    folded = torch.nn.functional.fold(patches.view(expected.shape[1], 3, -1).transpose(0, 1),
                                      (9, 11), kernel, dilation, padding, stride)
    image = lowering.col2im(patches, (9, 11), kernel, dilation, padding, stride)
    assert image.is_contiguous() and torch.equal(image, folded)


def test_calling_thread_only_nests_and_restores():
    assert not getattr(_CALLER, "only", False)
    with calling_thread_only():
        with calling_thread_only():
            assert _CALLER.only
        assert _CALLER.only
        with pytest.raises(ValueError), calling_thread_only():
            raise ValueError
        assert _CALLER.only
    assert not _CALLER.only
