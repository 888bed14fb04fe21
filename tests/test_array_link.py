"""The link: what the cycle-stepped array computes equals hbfpsim.matmul with the plan the
mapping derives, bit for bit."""

import numpy as np
import pytest

from hbfpsim import matmul
from hbfpsim.array import Mapping, plan_for
from hbfpsim.array.reference import cycle_stepped
from hbfpsim.config import ArrayConfig
from hbfpsim.numerics import Numerics
from inputs import first_difference, same_bits, stable_seed

NUMERICS = [
    # input, weight, block accumulator, chain/PE accumulator, output buffer
    ("fp32", "fp32", None, "fp32", "fp32"),
    ("bf16", "bf16", None, "bf16:rtz", "e8m10"),
    ("fp8_e4m3", "fp8_e5m2", None, "e5m10:stochastic", "e6m9:stochastic"),
    ("hbfp4@4", "hbfp4@4", "fixed10", "e5m6", "fp32"),        # blocks of 4 on 8 rows: 3 levels
    ("hbfp6@16", "hbfp6@16", "fixed16:wrap", "fp32", "bf16"),  # 16 = 2 x 8 rows: integer chain
    ("mxfp4", "mxint8", "fixed20", "fp16", "fp32"),
    ("int8", "int8", None, "fixed24", "fixed32"),
]


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
@pytest.mark.parametrize("numerics", NUMERICS, ids=lambda n: "-".join(str(x) for x in n))
def test_reference_equals_matmul_with_the_derived_plan(dataflow, numerics):
    fa, fb, block, chain, out = numerics
    config = ArrayConfig(rows=8, cols=3, dataflow=dataflow, input=fa, weight=fb,
                         block_accumulator=block, accumulator=chain, output=out)
    rng = np.random.default_rng(stable_seed(dataflow, numerics))
    m, n, k = 5, 4, 37
    a = rng.standard_normal((m, k)) * 2.0**rng.integers(-3, 4, (m, 1))
    b = rng.standard_normal((k, n))
    plan = plan_for(Mapping.of(m, n, k, config), Numerics.of(config))
    ref = cycle_stepped(config, a, b, seed=11)
    want = matmul(a, b, fa, fb, plan, seed=11).out
    assert same_bits(ref.out, want), (str(plan), first_difference(ref.out, want, a))


def test_plans_follow_the_dataflow():
    def plan(df, **kw):
        config = ArrayConfig(rows=128, cols=32, dataflow=df, **kw)
        return str(plan_for(Mapping.of(100, 50, 1000, config), Numerics.of(config)))

    hbfp = dict(input="hbfp4", weight="hbfp4", block_accumulator="fixed16")
    assert plan("ws") == "fp32*128 > fp32" == plan("is")
    assert plan("os") == "fp32*1000 > fp32"
    assert plan("ws", **hbfp) == "fixed16*64 > fp32*2 > fp32"      # 2 blocks per column
    assert plan("os", **hbfp) == "fixed16*64 > fp32*16 > fp32"     # ceil(1000 / 64) blocks
    with pytest.raises(ValueError, match="chunks of 128 products are not whole blocks of 48"):
        plan("ws", input="hbfp4@48", weight="hbfp4@48", block_accumulator="fixed16")


@pytest.mark.slow
def test_reference_equals_matmul_on_random_arrays():
    """The same link on 300 random arrays, shapes and numerics (a minute or more: run with
    `pytest -m slow`)."""
    rng = np.random.default_rng(stable_seed("random arrays"))
    checked = 0
    for trial in range(300):
        fa, fb, block, chain, out = NUMERICS[trial % len(NUMERICS)]
        rows, cols = int(rng.choice([4, 8, 12, 16])), int(rng.integers(1, 7))
        dataflow = ("ws", "os", "is")[trial % 3]
        config = ArrayConfig(rows=rows, cols=cols, dataflow=dataflow, input=fa, weight=fb,
                             block_accumulator=block, accumulator=chain, output=out)
        m, n, k = int(rng.integers(1, 24)), int(rng.integers(1, 24)), int(rng.integers(1, 200))
        a = rng.standard_normal((m, k)) * 2.0**rng.integers(-3, 4, (m, 1))
        b = rng.standard_normal((k, n))
        try:
            plan = plan_for(Mapping.of(m, n, k, config), Numerics.of(config))
        except ValueError:               # blocks and chunks that do not nest: not buildable
            continue
        ref = cycle_stepped(config, a, b, seed=trial)
        want = matmul(a, b, fa, fb, plan, seed=trial).out
        assert same_bits(ref.out, want), (trial, str(plan), first_difference(ref.out, want, a))
        checked += 1
    assert checked >= 200
