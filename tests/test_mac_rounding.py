"""One rounding step, directly: round_float / float_add / fixed_add against the oracle on
targeted exact sums (ties, power-of-two edges with a negative tail, float64-inexact sums,
subnormals, overflow) for many formats and every mode."""

from fractions import Fraction

import numpy as np
import pytest
from numba import njit

import mac_oracle
from hbfpsim.formats import Rounding
from hbfpsim.mac.accumulators import FloatAccumulator, parse_accumulator
from hbfpsim.mac.arith import fixed_add, float_add
from inputs import stable_seed
from oracle import splitmix_uniform

MODES = {r.label: int(r) for r in Rounding}    # rne, rna, rtz, stochastic


@njit
def _add_many(s, p, man, emin, maxval, mode, ftz, sat, seed):
    out = np.empty(s.size)
    flags = np.empty((s.size, 4), np.bool_)
    for i in range(s.size):
        r, over, inexact, partial, full = float_add(s[i], p[i], man, emin, maxval, mode, ftz,
                                                    sat, seed, i)
        out[i] = r
        flags[i] = (over, inexact, partial, full)
    return out, flags


@njit
def _fixed_many(v, n, width, wrap, hi, lo):
    out = np.empty(v.size, np.int64)
    over = np.empty(v.size, np.bool_)
    for i in range(v.size):
        out[i], over[i] = fixed_add(v[i], n[i], width, wrap, hi, lo)
    return out, over


def grid_value(acc, rng, size):
    """Random values of the accumulator's own grid (the register content), normal and
    subnormal, both signs."""
    e = rng.integers(acc.emin - acc.man_bits, acc.emax + 1, size)
    m = rng.integers(0, 2**min(acc.man_bits, 50), size).astype(np.float64)
    frac = 1 + np.ldexp(m, -min(acc.man_bits, 50))
    v = np.where(e >= acc.emin, np.ldexp(frac, e), np.ldexp(np.floor(frac * 2**3), e - 3))
    return np.minimum(v, acc.max) * rng.choice([-1.0, 1.0], size)


def addends(acc, s, rng):
    """Addends that make the exact sum hit the corners of the grid around s."""
    size = s.size
    ulp = np.ldexp(1.0, np.maximum(np.frexp(np.abs(s))[1] - 1, acc.emin) - acc.man_bits)
    kind = rng.integers(0, 7, size)
    tiny = np.ldexp(1.0, rng.integers(-1074, -900, size))
    with np.errstate(over="ignore"):
        p = np.select([kind == 0, kind == 1, kind == 2, kind == 3, kind == 4, kind == 5],
                      [ulp / 2,                                      # exact tie
                       ulp / 2 * np.where(rng.random(size) < .5, 1 + 2.0**-40, 1 - 2.0**-40),
                       -np.abs(s) * 2.0**-60 * np.sign(s),            # just below |s|: lo < 0
                       tiny * np.sign(s),                             # float64-inexact sum
                       rng.standard_normal(size) * ulp * 3,
                       -s + ulp * rng.integers(-3, 4, size)],         # cancellation
                      rng.standard_normal(size) * np.abs(s) * 2.0**rng.integers(-30, 5, size))
    p = np.where(np.isfinite(p), p, ulp)
    return np.where(rng.random(size) < 0.5, p, -p)


SPECS = ["fp32", "bf16", "fp16", "e5m2", "e4m3", "e2m1", "e3m12", "e8m40", "e11m50", "e11m52",
         "e6m9:ftz", "e11m52:ftz", "e4m3:sat", "e5m10:sat:ftz"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spec", SPECS)
def test_one_addition_matches_oracle(spec, mode):
    acc = parse_accumulator(f"{spec}:{mode}")
    rng = np.random.default_rng(stable_seed(spec, mode))
    s = grid_value(acc, rng, 600)
    s[:40] = np.ldexp(1.0, rng.integers(acc.emin, acc.emax + 1, 40))   # powers of two
    p = addends(acc, s, rng)
    s[40:60] = np.copysign(acc.max, rng.standard_normal(20))       # at the top of the range:
    p[40:60] = s[40:60] * rng.uniform(0.25, 1.0, 20)               # sums overflow (float64 too)
    got, flags = _add_many(s, p, acc.man_bits, acc.emin, acc.max, MODES[mode],
                           not acc.subnormals, acc.saturate, 5)
    for i in range(s.size):
        exact = Fraction(s[i]) + Fraction(p[i])
        draw = splitmix_uniform(5, i) * 2**53
        want, over = mac_oracle.round_float(exact, acc, draw)
        assert got[i] == float(want), (i, s[i], p[i], got[i], float(want))
        inexact = want != exact
        full = p[i] != 0 and want == Fraction(s[i])
        assert tuple(flags[i]) == (over, inexact, inexact and not full and abs(p[i]) <= abs(s[i]),
                                   full), i


def test_power_of_two_edge_with_negative_tail():
    """s = 1, p = -2^-80: the exact sum is just below 1, where the grid is twice as fine."""
    acc = FloatAccumulator(5, 10, "rtz")
    got, _ = _add_many(np.array([1.0]), np.array([-2.0**-80]), 10, acc.emin, acc.max, MODES["rtz"],
                       False, False, 0)
    assert got[0] == 1 - 2.0**-11


@pytest.mark.parametrize("width", [8, 12, 16, 63, 64])
@pytest.mark.parametrize("wrap", [False, True])
def test_fixed_addition_matches_oracle(width, wrap):
    acc = parse_accumulator(f"fixed{width}" + (":wrap" if wrap else ""))
    rng = np.random.default_rng(width)
    v = rng.integers(acc.min, acc.max, 500, endpoint=True)
    n = rng.integers(-(2**52), 2**52, 500) >> rng.integers(0, 52, 500)
    v[:4], n[:4] = [acc.max, acc.max, acc.min, acc.max - 1], [0, 1, -1, 1]   # the boundary
    got, over = _fixed_many(v, n, width, wrap, acc.max, acc.min)
    for i in range(v.size):
        want, want_over = mac_oracle.fixed_add(int(v[i]), int(n[i]), acc)
        assert (int(got[i]), bool(over[i])) == (want, want_over), (v[i], n[i])
