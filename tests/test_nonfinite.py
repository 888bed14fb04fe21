"""NaN / Inf input: a clear error by default, the format's own rule on request."""

import numpy as np
import pytest

from hbfpsim import formats

X = np.float32([1.0, np.nan, -np.inf, 2.0, np.nan])


@pytest.mark.parametrize("name", formats.STANDARD)
def test_raise_names_the_format_and_counts(name):
    with pytest.raises(ValueError) as err:
        formats.quantize(X, name)
    msg = str(err.value)
    assert formats.get(name).name in msg and "2 NaN and 1 infinite" in msg


@pytest.mark.parametrize("name", ["hbfp4", "mxfp4", "mxint8"])
def test_block_formats_propagate_nan_to_the_whole_block(name):
    x = np.ones((2, 64), np.float32)
    x[0, 3] = np.inf
    enc = formats.get(name).encode(x, nonfinite="propagate")
    q = enc.decode()
    block = formats.get(name).block
    assert np.isnan(q[0, :block]).all() and not np.isnan(q[0, block:]).any()
    assert not np.isnan(q[1]).any()
    assert enc.shared_exp[0, 0] == 255 and enc.shared_exp[1, 0] != 255
    assert np.array_equal(np.isnan(formats.quantize(x, name, nonfinite="propagate")),
                          np.isnan(q))


def test_scalar_floats_follow_their_overflow_rule():
    assert np.array_equal(formats.quantize(X, "bf16", nonfinite="propagate"), X, equal_nan=True)
    sat = formats.quantize(X, "fp8_e4m3", nonfinite="propagate")
    assert sat[2] == -448 and np.isnan(sat[[1, 4]]).all()
    nosat = formats.quantize(X, "fp8_e4m3", nonfinite="propagate", saturate=False)
    assert np.isnan(nosat[[1, 2, 4]]).all()
    assert formats.quantize(X, "fp8_e5m2", nonfinite="propagate", saturate=False)[2] == -np.inf


def test_int8_cannot_propagate():
    with pytest.raises(ValueError, match="int8 has no representation for NaN or Inf"):
        formats.quantize(X, "int8", nonfinite="propagate")


def test_unknown_policy():
    with pytest.raises(ValueError, match="nonfinite='ignore' is not one of"):
        formats.quantize(X, "hbfp4", nonfinite="ignore")
