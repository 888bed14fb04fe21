"""Properties every format must have, on hypothesis-generated float32 arrays."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from hbfpsim import formats
from inputs import same_bits

NAMES = list(formats.STANDARD) + ["hbfp5@16", "hbfp3@4"]
NEAREST = ["even", "away"]
DETERMINISTIC = NEAREST + ["rtz"]

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=80),
                    elements=finite32)
# values within a few binades of each other, so blocks keep several nonzero elements
scaled = st.tuples(hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 100)),
                              elements=st.floats(-8, 8, width=32)),
                   st.integers(-140, 120)).map(lambda t: (t[0] * np.float32(2.0**t[1] / 8)
                                                          if t[1] < 127 else t[0]))
inputs = st.one_of(arrays, scaled)


def grid_step(fmt, x, enc):
    """Spacing of the format's grid around |x| (the gap above the grid value at or below |x|)
    and a mask of elements beyond the format's range (saturated), from the encoded fields."""
    x = np.abs(x.astype(np.float64))
    if fmt.family == "fp":
        spec, scale = fmt.spec, np.ones_like(x)
    elif fmt.family == "int":
        step = np.broadcast_to(enc.scale.astype(np.float64), x.shape)
        return step, x / step > 127
    else:
        exps = np.repeat(enc.shared_exp.astype(np.int64) - 127, fmt.block, axis=-1)
        exps = exps[..., : x.shape[-1]]
        if fmt.family == "hbfp":
            step = np.ldexp(1.0, exps - fmt.frac_bits)
            return step, x >= (2.0**fmt.frac_bits - 0.5) * step
        if fmt.element is None:  # mxint8
            step = np.ldexp(1.0, exps - 6)
            return step, x >= 126.5 * step
        spec, scale = fmt.element, np.ldexp(1.0, exps)
    v = x / scale
    with np.errstate(divide="ignore"):
        e = np.maximum(np.floor(np.log2(np.where(v > 0, v, 1.0))), spec.emin)
    return np.ldexp(1.0, (e - spec.man_bits).astype(np.int64)) * scale, v > spec.max


@pytest.mark.parametrize("name", NAMES)
@given(x=inputs, rounding=st.sampled_from(DETERMINISTIC))
def test_idempotent(name, x, rounding):
    """q(q(x)) == q(x). IEEE overflow turns large finite inputs into Inf, so the second pass
    propagates non-finite values. INT8's float32 scale max|q|/127 can move by one float32
    ulp on the second pass, so there the integer codes are what stays: equal for the nearest
    modes, and for rtz at most one lower (q = k * scale rounded to float32 can fall just
    below k * scale, which truncation then takes to k - 1)."""
    fmt = formats.get(name)
    once = fmt.quantize(x, rounding=rounding)
    if name == "int8":
        first, second = fmt.encode(x, rounding=rounding), fmt.encode(once, rounding=rounding)
        ulp = np.spacing(first.scale)
        assert np.all(np.abs(second.scale - first.scale) <= ulp)
        drop = first.code.astype(int) - second.code
        assert np.all(drop == 0) if rounding != "rtz" else np.all((drop == 0) | (drop == 1))
        assert np.array_equal(first.sign[second.code > 0], second.sign[second.code > 0])
        return
    again = fmt.quantize(once, rounding=rounding, nonfinite="propagate")
    assert same_bits(again, once)


@pytest.mark.parametrize("name", NAMES)
@given(x=inputs, rounding=st.sampled_from(DETERMINISTIC))
def test_sign_symmetric(name, x, rounding):
    fmt = formats.get(name)
    assert np.array_equal(fmt.quantize(-x, rounding=rounding), -fmt.quantize(x, rounding=rounding))


@pytest.mark.parametrize("name", NAMES)
@given(x=inputs, rounding=st.sampled_from(NEAREST))
def test_error_within_half_a_step_unless_saturated(name, x, rounding):
    fmt = formats.get(name)
    enc = fmt.encode(x, rounding=rounding)
    q = enc.decode()
    step, saturated = grid_step(fmt, x, enc)
    err = np.abs(x.astype(np.float64) - q)
    ok = saturated | (err <= step / 2)
    if fmt.family == "fp":
        ok |= np.abs(x) > fmt.spec.max
    assert ok.all(), (x[~ok][:3], q[~ok][:3], step[~ok][:3])


@pytest.mark.parametrize("name", NAMES)
@given(x=inputs)
def test_toward_zero_truncates(name, x):
    """rtz never grows a magnitude and stays within one step below it (in range)."""
    fmt = formats.get(name)
    enc = fmt.encode(x, rounding="rtz")
    step, saturated = grid_step(fmt, x, enc)
    mag, q = np.abs(x.astype(np.float64)), np.abs(enc.decode())
    in_range = ~saturated
    if fmt.family == "fp":
        in_range &= np.abs(x) <= fmt.spec.max
    assert np.all(q[in_range] <= mag[in_range])
    assert np.all(mag[in_range] - q[in_range] < step[in_range])


@pytest.mark.parametrize("name", NAMES)
@given(x=inputs, seed=st.integers(0, 2**63 - 1))
def test_stochastic_lands_on_a_neighbour(name, x, seed):
    """Stochastic rounding picks one of the two grid points around x: |x - q| < one step."""
    fmt = formats.get(name)
    enc = fmt.encode(x, rounding="stochastic", seed=seed)
    step, saturated = grid_step(fmt, x, enc)
    err = np.abs(x.astype(np.float64) - enc.decode())
    ok = saturated | (err < step) | (err == 0)
    if fmt.family == "fp":
        ok |= np.abs(x) > fmt.spec.max
    assert ok.all()


@pytest.mark.parametrize("name", NAMES)
@given(x=inputs, rounding=st.sampled_from(DETERMINISTIC))
def test_values_are_on_the_grid(name, x, rounding):
    """quantize equals the decoded integer fields, and the fields are in range."""
    fmt = formats.get(name)
    q = fmt.quantize(x, rounding=rounding)
    enc = fmt.encode(x, rounding=rounding)
    assert q.shape == x.shape and q.dtype == np.float32
    if fmt.family == "int":
        assert np.allclose(enc.decode(), q, rtol=2.0**-24, atol=0)  # k*scale rounded to f32
        assert enc.code.max(initial=0) <= 127
        return
    assert same_bits(enc.decode(), q)
    if fmt.family == "hbfp":
        assert enc.code.max(initial=0) <= 2**fmt.frac_bits - 1
        assert enc.shared_exp.max(initial=0) <= 254
    if fmt.family == "mx" and fmt.element is None:
        assert enc.code.max(initial=0) <= 127


@pytest.mark.parametrize("name", NAMES)
@given(x=inputs, rounding=st.sampled_from(DETERMINISTIC))
def test_monotone_within_a_block(name, x, rounding):
    fmt = formats.get(name)
    q = fmt.quantize(x, rounding=rounding).astype(np.float64)
    rows, qrows = x.reshape(-1, x.shape[-1]), q.reshape(-1, x.shape[-1])
    width = fmt.block or x.shape[-1]
    if fmt.family == "int" and fmt.per == "tensor":
        rows, qrows, width = rows.reshape(1, -1), qrows.reshape(1, -1), x.size
    for r in range(rows.shape[0]):
        for s in range(0, rows.shape[1], width):
            ordered = qrows[r, s:s + width][np.argsort(rows[r, s:s + width], kind="stable")]
            assert np.all(ordered[1:] >= ordered[:-1])


@pytest.mark.parametrize("name", [n for n in NAMES if formats.get(n).family in ("hbfp", "mx")])
@given(x=inputs)
def test_shared_exponents_follow_the_published_rule(name, x):
    """The step and saturation checks above read the exponent from the encoding; here it is
    derived independently: HBFP E = floor(log2 max|block|) + 1 (Drumond et al. 2018), MX
    X = floor(log2 max|block|) - emax_elem (OCP MX v1.0), clamped to [-127, 127]; an
    all-zero block gets -127."""
    fmt = formats.get(name)
    rows = np.abs(x.astype(np.float64)).reshape(-1, x.shape[-1])
    blocks = -(-rows.shape[1] // fmt.block)
    padded = np.zeros((rows.shape[0], blocks * fmt.block))
    padded[:, :rows.shape[1]] = rows
    peak = padded.reshape(rows.shape[0], blocks, fmt.block).max(axis=2)
    floor_log2 = np.frexp(peak)[1] - 1                               # exact for peak > 0
    offset = 1 if fmt.family == "hbfp" else -(0 if fmt.element is None else fmt.element.emax)
    want = np.where(peak > 0, np.clip(floor_log2 + offset, -127, 127), -127)
    got = fmt.encode(x).shared_exp.astype(np.int64).reshape(rows.shape[0], blocks) - 127
    assert np.array_equal(got, want)


@given(x=arrays)
def test_int8_scale_is_the_max_over_127_rounded_down(x):
    """scale = max|x| / 127 rounded toward zero to float32 (1.0 for an all-zero tensor)."""
    from fractions import Fraction
    peak = Fraction(float(np.abs(x).max()))
    scale = float(formats.get("int8").encode(x).scale.reshape(-1)[0])
    if peak == 0 or peak / 127 < Fraction(2.0**-149):
        assert scale == 1.0
        return
    assert Fraction(scale) <= peak / 127 < Fraction(float(np.nextafter(np.float32(scale),
                                                                         np.float32(np.inf))))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "fp32"])   # fp32: float32 as is
@pytest.mark.parametrize("rounding", DETERMINISTIC + ["stochastic"])
def test_serial_and_parallel_kernels_agree(name, rounding):
    """The rounding kernels run serially below threads.PARALLEL_ELEMENTS and in parallel
    above; both compilations give the same bits (NaN and Inf blocks included)."""
    from hbfpsim.formats import threads

    fmt = formats.get(name)
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((520, 130)) * np.exp2(rng.integers(-20, 20, (520, 1)))
         ).astype(np.float32)
    assert threads.parallel(x.size)
    policy = "propagate" if fmt.nonfinite_rule else "raise"
    if fmt.nonfinite_rule:
        x[3, 5], x[400, 129], x[77, 64] = np.nan, np.inf, -np.inf
    seed = 11 if rounding == "stochastic" else None
    parallel = fmt.quantize(x, rounding=rounding, seed=seed, nonfinite=policy)
    with threads.calling_thread_only():                  # the serial compilations
        serial = fmt.quantize(x, rounding=rounding, seed=seed, nonfinite=policy)
    assert same_bits(parallel, serial)
    assert not same_bits(parallel, x)
