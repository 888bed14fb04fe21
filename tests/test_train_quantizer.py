"""hbfpsim.train.quantizer.quantize_torch against the numba reference ``Format.quantize``:
the same bits (compared as integers, so -0.0 != 0.0 and NaN payloads count) for every format,
rounding mode, axis, dtype and device, on values chosen to hit every branch of the kernels:
many binades, exact ties, zeros and all-zero blocks, values beyond each format's max,
values below 2^-130 (float32 and float64 subnormals), and NaN / Inf in some blocks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hbfpsim import formats
from hbfpsim.formats import Rounding
from hbfpsim.formats.base import Layout
from hbfpsim.formats.bits import uniform
from hbfpsim.train.quantizer import _uniform, quantize_torch

FORMATS = [formats.get(name) for name in formats.STANDARD] + [
    formats.get("hbfp4@8"), formats.get("hbfp6@16"), formats.get("hbfp16@64"),
    formats.get("hbfp4", compat="hbfpemulator"), formats.get("hbfp8", compat="hbfpemulator"),
    formats.get("int8", per="channel"), formats.get("fp16", saturate=True),
    formats.get("fp8_e4m3", saturate=False), formats.get("fp8_e5m2", saturate=False),
    formats.get("fp32", saturate=True)]
MODES = tuple(int(m) for m in Rounding)
SEED = 20240611
F32_MAX = float(np.finfo(np.float32).max)


def _fmt_id(fmt) -> str:
    extra = [f"{k}={getattr(fmt, k)}" for k in ("compat", "per", "saturate")
             if getattr(fmt, k, None) not in (None, "tensor")]
    return "-".join([fmt.name, *extra])


def _reference(x: np.ndarray, fmt, axis: int, mode: int, seed: int) -> np.ndarray:
    """``fmt.quantize`` (NaN and Inf propagated); int8, which has no such rule, through its
    ``_round`` when the input holds them."""
    if fmt.nonfinite_rule or np.isfinite(x).all():
        with np.errstate(over="ignore"):   # compat rounds float64 input to float32 first
            return fmt.quantize(x, axis=axis, rounding=Rounding(mode),
                                seed=seed if mode == Rounding.STOCHASTIC else None,
                                nonfinite="propagate" if fmt.nonfinite_rule else "raise")
    layout = Layout.of(x.shape, axis)
    return layout.restore(fmt._round(layout.rows(x), mode, seed)[0])


def _assert_same(got: torch.Tensor, ref: np.ndarray, what: str) -> None:
    out = got.cpu().numpy()
    assert out.shape == ref.shape and out.dtype == ref.dtype, what
    ints = np.int32 if ref.dtype == np.float32 else np.int64
    diff = out.view(ints) != ref.view(ints)
    if diff.any():
        raise AssertionError(f"{what}: {int(diff.sum())} of {diff.size} differ, e.g. "
                             f"got {out[diff][:4]} want {ref[diff][:4]}")


def _samples(dtype: type, fmt) -> list[tuple[str, np.ndarray]]:
    """Named test tensors of ``dtype`` (int8 and the emulator-compatible HBFP get no value
    beyond float32's range, which their references refuse)."""
    rng = np.random.default_rng(7)
    shape = (4, 3, 70)                 # 70: not a multiple of any block
    binades = rng.standard_normal(shape) * 2.0 ** rng.integers(-30, 30, shape)
    coarse_ties = rng.integers(-255, 256, shape) / 2.0
    coarse_ties[..., 0] = 127.0        # int8 scale exactly 1: half-integers are ties
    fine_ties = rng.integers(-2**15, 2**15, shape) / 2.0**8
    special = rng.standard_normal(shape) * 2.0 ** rng.integers(-8, 8, shape)
    special[0] = 0.0                                  # all-zero blocks
    special[1, 1, :40] = -0.0
    special[..., 5] = 0.0
    special[1, 0, :12] = [7e4, -1e5, 500.0, -1e4, 448.0, 464.0, 57344.0, 61440.0, 6.5, 28.5,
                          -F32_MAX, 3.3e38]           # beyond fp16 / fp8 / fp6 / bf16 maxima
    special[2, 0, :8] = 2.0 ** np.array([-131, -140, -149, -150, -127, -128, -133, -126])
    special[2, 1, :] = 2.0 ** rng.integers(-150, -138, shape[2])   # tiny blocks
    special[3, 2, :70:3] = 1e-9                       # blocks near the compat epsilon
    special[1, 2, 7] = np.nan
    special[2, 2, 50] = np.inf
    special[3, 0, 66] = -np.inf
    special[3, 1, 33] = -np.nan
    special[0, 1, 9] = np.int64(0x7FF8123400000000).view(np.float64)   # a NaN payload
    if dtype == np.float64 and not isinstance(fmt, formats.Int8Format) and \
            getattr(fmt, "compat", None) is None:
        special[0, 2, :4] = [1e300, -1e39, 2.0**-1074, -(2.0**-1030)]
    one_d = rng.standard_normal(133) * 2.0 ** rng.integers(-4, 4, 133)
    return [(name, np.asarray(a, dtype)) for name, a in
            [("binades", binades), ("coarse_ties", coarse_ties), ("fine_ties", fine_ties),
             ("special", special), ("1d", one_d), ("0d", np.float64(-2.75)),
             ("empty", np.zeros((3, 0, 5)))]]


def _check_all(fmt, device: str, modes=MODES) -> None:
    for dtype in (np.float32, np.float64):
        for name, x in _samples(dtype, fmt):
            t = torch.from_numpy(x).to(device)
            for axis in (-1, 0, 1)[:max(x.ndim, 1)]:
                for mode in modes:
                    ref = _reference(x, fmt, axis, mode, SEED)
                    got = quantize_torch(t, fmt, axis, mode, SEED)
                    assert got.device == t.device
                    _assert_same(got, ref, f"{_fmt_id(fmt)} {name} {dtype.__name__} "
                                           f"axis={axis} mode={Rounding(mode)} on {device}")


@pytest.mark.parametrize("fmt", FORMATS, ids=_fmt_id)
def test_bit_identical_to_numba(fmt):
    _check_all(fmt, "cpu")


def test_emulator_compatible_hbfp_refuses_values_beyond_float32_on_both_engines():
    """HBFPEmulator rounds its input to float32: 3 of these finite float64 values would
    become Inf there, so both engines refuse them alike."""
    fmt = formats.get("hbfp4", compat="hbfpemulator")
    x = np.array([[1.0, 1e300, -1e39, 3.5e38, 3.4e38]])
    for quantized in (lambda: fmt.quantize(x), lambda: quantize_torch(torch.from_numpy(x), fmt)):
        with pytest.raises(ValueError, match=r"3 finite value\(s\) \(largest \|x\| 1e\+300\)"):
            quantized()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("fmt", FORMATS, ids=_fmt_id)
def test_bit_identical_on_cuda(fmt):
    _check_all(fmt, "cuda")


def test_strided_input():
    """A non-contiguous view quantizes like its contiguous copy (the rows layout, hence the
    stochastic event indices, depend on the logical shape only)."""
    x = np.random.default_rng(3).standard_normal((40, 6, 9)).astype(np.float32)
    view = torch.from_numpy(x).transpose(0, 2)
    fmts = (formats.get("hbfp4@8"), formats.get("fp8_e4m3"), formats.get("int8", per="channel"))
    for fmt in fmts:
        for mode in MODES:
            _assert_same(quantize_torch(view, fmt, 2, mode, SEED),
                         _reference(x.transpose(2, 1, 0), fmt, 2, mode, SEED),
                         f"{fmt.name} mode={mode}")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_compat_exponent_near_powers_of_two(device):
    """The HBFPEmulator exponent ceil(float32(log2(max + 1e-8))) where float32 rounding of
    the logarithm decides it: block maxima 2^k (1 + j 2^-23) and 2^k (1 - j 2^-24)."""
    k = np.arange(-40, 128)[:, None]
    j = np.arange(64)[None, :]
    maxima = np.concatenate([np.ldexp(1.0 + j * 2.0**-23, k), np.ldexp(1.0 - j * 2.0**-24, k)])
    rows = np.random.default_rng(5).uniform(-0.5, 0.5, (maxima.size, 64)) * maxima.reshape(-1, 1)
    rows[:, 17] = maxima.reshape(-1)
    x = rows.astype(np.float32)
    fmt = formats.get("hbfp4", compat="hbfpemulator")
    for mode in (Rounding.RNE, Rounding.STOCHASTIC):
        _assert_same(quantize_torch(torch.from_numpy(x).to(device), fmt, -1, int(mode), SEED),
                     _reference(x, fmt, -1, int(mode), SEED), f"compat mode={mode}")


def test_stream_matches_bits_uniform():
    seeds = (0, 1, 12345, 2**62 + 3, 2**63 - 1)
    index = np.concatenate([np.arange(300), 2**40 + np.arange(5), 2**63 - 2 - np.arange(5)])
    for seed in seeds:
        got = _uniform(seed, torch.from_numpy(index)).numpy()
        want = np.array([uniform(seed, int(i)) for i in index])
        assert np.array_equal(got, want), seed


def test_stochastic_draw_equal_to_fraction_rounds_down():
    """Rounding goes up only when the draw is below the discarded fraction: fp32 subnormals
    u 2^-149 in float64, with u the very draw of their element, all round down to 0."""
    draws = np.array([uniform(SEED, i) for i in range(256)])
    x = np.ldexp(draws, -149).reshape(4, 64)
    fmt = formats.get("fp32")
    got = quantize_torch(torch.from_numpy(x), fmt, -1, int(Rounding.STOCHASTIC), SEED)
    _assert_same(got, _reference(x, fmt, -1, int(Rounding.STOCHASTIC), SEED), "fp32 draws")
    assert not got.any()


def test_stochastic_reproducible():
    x = torch.randn(64, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for fmt in (formats.get("hbfp4"), formats.get("mxfp4"), formats.get("bf16"),
                formats.get("int8")):
        a = quantize_torch(x, fmt, -1, int(Rounding.STOCHASTIC), 11)
        b = quantize_torch(x, fmt, -1, int(Rounding.STOCHASTIC), 11)
        c = quantize_torch(x, fmt, -1, int(Rounding.STOCHASTIC), 12)
        assert torch.equal(a.view(torch.int64), b.view(torch.int64)), fmt.name
        assert not torch.equal(a, c), fmt.name


def test_fp32_float32_is_identity():
    x = torch.tensor([1.0, -0.0, float("nan"), float("inf"), 1e-45])
    assert quantize_torch(x, formats.get("fp32"), 0, int(Rounding.STOCHASTIC), 3) is x


@pytest.mark.parametrize("engine_name", ["auto", "torch"])
def test_public_quantize_equals_hbfpsim_quantize(engine_name):
    """``hbfpsim.train.quantize`` through either engine: ``hbfpsim.quantize`` bit for bit,
    the axis moved and restored, in the input's dtype."""
    from hbfpsim.train import quantize
    from hbfpsim.train.quantizer import engine
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 70, 5)) * 2.0 ** rng.integers(-8, 8, (3, 70, 5)))
    for dtype in (np.float32, np.float64):
        data = x.astype(dtype)
        for name, axis, rounding, seed in (("hbfp4", 1, "even", None),
                                           ("mxfp6_e2m3", -1, "stochastic", 9),
                                           ("fp8_e5m2", 0, "away", None),
                                           ("int8", 2, "stochastic", 2)):
            want = formats.quantize(data, name, axis, rounding, seed=seed)
            with engine(engine_name):
                got = quantize(torch.from_numpy(data), name, axis, rounding, seed)
            assert got.dtype == torch.from_numpy(data).dtype
            assert np.array_equal(np.ascontiguousarray(got.numpy()).view(np.uint8),
                                  np.ascontiguousarray(want).view(np.uint8)), name


def test_public_quantize_refuses_what_it_cannot_take():
    from hbfpsim.train import quantize
    from hbfpsim.train.quantizer import engine
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        quantize(np.ones(3), "hbfp4")
    with pytest.raises(TypeError, match="float32 or float64 tensor, got torch.int64"):
        quantize(torch.ones(3, dtype=torch.int64), "hbfp4")
    with pytest.raises(ValueError, match="needs seed"):
        quantize(torch.ones(3), "hbfp4", rounding="stochastic")
    with pytest.raises(ValueError, match="out of range"):
        quantize(torch.ones(3), "hbfp4", axis=1)
    with pytest.raises(ValueError, match="unknown format"):
        quantize(torch.ones(3), "hbfp")
    with pytest.raises(ValueError, match="engine: expected one of auto, torch"):
        with engine("cuda"):
            pass
