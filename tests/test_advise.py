"""``hbfpsim advise``: the dataflow's chunks, the theory's bits, and the replayed check."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hbfpsim import trace
from hbfpsim.accuracy import vrr
from hbfpsim.array import load
from hbfpsim.cli import main
from hbfpsim.mac import matmul
from hbfpsim.replay.advise import advise, bits_for, block_advice, chunk_of

ROOT = Path(__file__).resolve().parents[1]
ARRAY32 = load("array32")


def test_chunks_follow_the_dataflow():
    assert chunk_of(ARRAY32, 64, 64, 1000) == 32           # WS: a column of 32 rows
    assert chunk_of(ARRAY32, 64, 64, 20) is None            # K fits one column
    assert chunk_of(replace(ARRAY32, dataflow="os"), 64, 64, 1000) is None   # one PE: all K
    assert chunk_of(replace(ARRAY32, dataflow="is"), 64, 64, 1000) == 32


def test_bits_are_the_theory_for_the_padded_length():
    # K = 1000 in chunks of 32 is summed as 32 chunks (the last one short)
    assert bits_for(1000, 32, vrr.LOST_CUTOFF) == vrr.min_mantissa_bits(1024, chunk=32)
    assert bits_for(1000, None, vrr.LOST_CUTOFF) == vrr.min_mantissa_bits(1000)


@pytest.mark.parametrize("name", ["cnn_digits", "resnet50_step"])
def test_backward_weight_gemms_need_the_most_bits(name):
    """The published pattern on real traces: the weight-gradient GEMMs reduce over the
    batch (x positions), the longest reductions, and need the widest accumulators."""
    advice = advise(trace.open(ROOT / "traces" / name), ARRAY32, check=False)
    most = {p: max(a.bits for a in advice if a.phase == p) for p in ("fwd", "bwd_weight")}
    assert most["bwd_weight"] > most["fwd"]
    longest = max(advice, key=lambda a: a.k)
    assert longest.phase == "bwd_weight" and longest.bits == max(a.bits for a in advice)


def test_replayed_check_measures_the_advised_accumulator():
    """The check's VRR of a group is the median over its records of Var(hw) / Var(exact),
    hw computed with FP32 operands and the advised e8m<bits> at both levels of the
    column-chunk plan, recomputed here from matmul and NumPy."""
    t = trace.open(ROOT / "traces" / "cnn_digits")
    advice = {(a.phase, a.layer): a for a in advise(t, ARRAY32, max_outputs=10**6,
                                                    max_macs=2**40)}
    a = advice["bwd_weight", "2"]
    assert (a.k, a.chunk, a.bits) == (2048, 32, 6)
    ratios = {6: [], 5: []}
    for gemm in t:
        r = gemm.record
        if (r.phase, r.layer) != ("bwd_weight", "2"):
            continue
        exact = np.asarray(gemm.a, np.float64) @ np.asarray(gemm.b, np.float64)
        for bits, found in ratios.items():
            out, _ = matmul(gemm.a, gemm.b, "fp32", plan=f"e8m{bits}*32 > e8m{bits}")
            found.append(np.var(out) / np.var(exact))
    assert a.measured == pytest.approx(np.median(ratios[6]), rel=1e-12)
    assert a.measured_fewer == pytest.approx(np.median(ratios[5]), rel=1e-12)


def test_block_advice_uses_the_column_chunk():
    b = block_advice(ARRAY32)          # HBFP4 (3 magnitude bits) on 32-row columns
    assert (b.length, b.worst_case) == (32, 4 + 4 - 1 + 5)
    assert b.statistical <= b.worst_case
    assert block_advice(replace(ARRAY32, input="fp32", weight="fp32",
                                block_accumulator=None)) is None


def test_cli_prints_a_row_per_phase_and_layer(capsys):
    assert main(["advise", str(ROOT / "traces" / "mlp_digits"), "--no-check"]) == 0
    out = capsys.readouterr().out
    assert "bwd_weight" in out and "fixed12 never overflows" in out
    assert main(["advise", str(ROOT / "traces" / "mlp_digits"), "--max-lost", "0"]) == 2
    assert "--max-lost" in capsys.readouterr().err
    assert math.isfinite(vrr.LOST_CUTOFF)
