"""The array model's timing: SCALE-Sim's compute model, the cycle-stepped reference, the two
timing engines against each other, and memory physics."""

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hbfpsim.array import Mapping, simulate
from hbfpsim.array.reference import cycle_stepped
from hbfpsim.config import ArrayConfig

DATA = Path(__file__).parent / "data" / "scalesim_compute.csv"


def ideal(rows, cols, dataflow, **kw):
    return ArrayConfig(rows=rows, cols=cols, dataflow=dataflow, **kw)


# --- SCALE-Sim's compute model --------------------------------------------------------------

@pytest.mark.parametrize("df,r,c,m,n,k,folds,per_fold", [
    # hand-worked from SCALE-Sim's compute model (docs/array.md)
    ("ws", 4, 4, 5, 6, 7, 2 * 2, 2 * 4 + 4 + 5 - 2),
    ("os", 4, 4, 5, 6, 7, 2 * 2, 7 + 4 + 4 - 2),
    ("is", 4, 4, 5, 6, 7, 2 * 2, 2 * 4 + 4 + 6 - 2),
    ("ws", 32, 32, 1, 1, 1, 1, 64 + 32 + 1 - 2),      # 1x1x1 still pays fill and drain
    ("os", 8, 8, 3, 2, 100, 1, 100 + 8 + 8 - 2),       # N and M smaller than the array
    ("ws", 8, 16, 100, 3, 17, 3 * 1, 16 + 16 + 100 - 2),  # K = 17 over 8 rows: 3 folds
    ("is", 16, 8, 9, 200, 33, 3 * 2, 32 + 8 + 200 - 2),
])
def test_ideal_cycles_follow_the_compute_model(df, r, c, m, n, k, folds, per_fold):
    report = simulate(ideal(r, c, df), m, n, k)
    assert report.folds == folds and report.total_cycles == folds * per_fold
    assert report.stall_cycles == 0 and report.prefetch_cycles == 0
    assert report.utilization == pytest.approx(m * n * k / (folds * per_fold * r * c))


def scalesim_rows():
    with DATA.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


@pytest.mark.parametrize("row", scalesim_rows(), ids=lambda r: "{dataflow}-{rows}x{cols}-{m}x{n}x{k}"
                         .format(**r))
def test_matches_scalesim_runs(row):
    """Recorded SCALE-Sim 3.0.0 reports: its Total Cycles is the last cycle's index."""
    r, c, m, n, k = (int(row[key]) for key in ("rows", "cols", "m", "n", "k"))
    report = simulate(ideal(r, c, row["dataflow"]), m, n, k)
    assert report.total_cycles == int(row["total_cycles"]) + 1
    assert report.mapping_efficiency * 100 == pytest.approx(float(row["mapping_efficiency_pct"]))
    # SCALE-Sim's utilization divides by its Total Cycles (the last index): ours, converted
    assert report.utilization * report.total_cycles / (report.total_cycles - 1) * 100 == \
        pytest.approx(float(row["overall_util_pct"]))


def test_bad_gemm_dimensions():
    with pytest.raises(ValueError, match=r"GEMM dimension K must be an integer in \[1, 2\^40\], got 0"):
        simulate(ideal(4, 4, "ws"), 3, 3, 0)
    with pytest.raises(ValueError, match="engine='exact' is not one of"):
        simulate(ideal(4, 4, "ws"), 3, 3, 3, engine="exact")


# --- the cycle-stepped reference --------------------------------------------------------------

def test_reference_cycles_equal_the_model_on_random_cases():
    rng = np.random.default_rng(0)
    for trial in range(12):
        r, c = (int(x) for x in rng.integers(1, 7, 2))
        m, n, k = (int(x) for x in rng.integers(1, 14, 3))
        df = ("ws", "os", "is")[trial % 3]
        config = ideal(r, c, df)
        ref = cycle_stepped(config, rng.standard_normal((m, k)), rng.standard_normal((k, n)))
        report = simulate(config, m, n, k)
        mapping = Mapping.of(m, n, k, config)
        assert ref.fold_cycles == [mapping.fold_cycles] * mapping.folds, (df, r, c, m, n, k)
        assert ref.total_cycles == report.total_cycles


# --- the two timing engines -------------------------------------------------------------------

def random_memory_config(rng, df):
    return ArrayConfig(
        rows=int(rng.integers(2, 9)), cols=int(rng.integers(2, 9)), dataflow=df,
        input=str(rng.choice(["fp32", "bf16", "hbfp4", "mxfp6_e3m2"])),
        weight=str(rng.choice(["fp32", "fp8_e4m3", "hbfp6"])),
        input_kib=float(rng.choice([0.25, 0.5, 64])), weight_kib=float(rng.choice([0.25, 0.5, 64])),
        output_kib=float(rng.choice([0.25, 0.5, 64])), double_buffered=bool(rng.integers(2)),
        sram_bytes_per_cycle=float(rng.choice([0, 4, 32])),
        dram_bytes_per_cycle=float(rng.choice([1, 3.5, 16, 100])),
        dram_latency_cycles=int(rng.choice([0, 7, 60])))


def test_simpy_and_fast_engines_agree():
    rng = np.random.default_rng(1)
    for trial in range(60):
        config = random_memory_config(rng, ("ws", "os", "is")[trial % 3])
        m, n, k = (int(x) for x in rng.integers(1, 40, 3))
        fast = simulate(config, m, n, k, events=True)
        des = simulate(config, m, n, k, engine="simpy", events=True)
        assert (fast.total_cycles, fast.stalls, fast.prefetch_cycles, fast.drain_cycles) == \
               (des.total_cycles, des.stalls, des.prefetch_cycles, des.drain_cycles), config
        assert np.array_equal(fast.events.start, des.events.start)
        assert np.array_equal(fast.events.end, des.events.end)
        assert fast.events.waited_on == des.events.waited_on
        assert sum(fast.stalls.values()) == fast.stall_cycles


# --- physics -----------------------------------------------------------------------------------

def worked_example(**kw):
    """docs/array.md, worked by hand: 4 x 4 WS, M = 8, N = 4, K = 8, FP32, 8 B/cycle, 10
    cycles of latency, buffers too small to keep A (128 B of 256 B fits)."""
    return ArrayConfig(rows=4, cols=4, dataflow="ws", input_kib=0.125, weight_kib=0.125,
                       output_kib=1, dram_bytes_per_cycle=8, dram_latency_cycles=10, **kw)


def test_worked_example_by_hand():
    report = simulate(worked_example(), 8, 4, 8, events=True)
    assert report.prefetch_cycles == 128 // 8 + 64 // 8 + 10
    assert report.events.start.tolist() == [0, 34] and report.events.end.tolist() == [18, 52]
    assert report.events.waited_on == [None, "weight"]
    assert report.total_cycles == 52 and report.compute_cycles == 36
    assert report.stalls["weight"] == 16 and report.stall_cycles == 16
    assert report.drain_cycles == 128 // 8          # the output store after the last fold
    assert report.dram == {"reads": 2 * 128 + 2 * 64, "writes": 128}
    single = simulate(worked_example(double_buffered=False), 8, 4, 8)
    # no prefetch: fold 1's loads start when fold 0 ends (18): ready 18 + 24 + 10 = 52
    assert single.total_cycles == 52 + 18 and single.stalls["weight"] == 52 - 18


@pytest.mark.parametrize("df", ["ws", "os", "is"])
def test_stalls_fall_with_bandwidth_and_vanish_once_it_covers_demand(df):
    base = ArrayConfig(rows=8, cols=8, dataflow=df, input="bf16", weight="bf16",
                       input_kib=1, weight_kib=1, output_kib=1, dram_latency_cycles=20)
    stalls = []
    for bandwidth in [0.5, 1, 2, 4, 8, 16, 64, 256, 4096, 2.0**20]:
        report = simulate(replace(base, dram_bytes_per_cycle=bandwidth), 96, 40, 72)
        stalls.append(report.stall_cycles)
    assert all(a >= b for a, b in zip(stalls, stalls[1:])), stalls
    assert stalls[0] > 0 and stalls[-1] == 0


def test_narrower_formats_never_stall_more():
    for df in ("ws", "os", "is"):
        previous = math.inf
        for fmt in ["fp32", "bf16", "fp8_e4m3", "mxfp6_e3m2", "hbfp6", "mxfp4", "hbfp4"]:
            config = ArrayConfig(rows=8, cols=8, dataflow=df, input=fmt, weight=fmt,
                                 input_kib=2, weight_kib=2, output_kib=4,
                                 dram_bytes_per_cycle=4, dram_latency_cycles=30)
            stall = simulate(config, 64, 48, 96).stall_cycles
            assert stall <= previous, (df, fmt)
            previous = stall


def test_sram_bandwidth_stretches_folds():
    base = ideal(8, 8, "ws", input="fp32", weight="fp32")
    slow = simulate(replace(base, sram_bytes_per_cycle=4), 64, 8, 8)
    assert slow.stalls["sram_input"] > 0 and slow.total_cycles > simulate(base, 64, 8, 8).total_cycles
