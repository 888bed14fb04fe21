"""The grouped timing model (hbfpsim.array.grouped, what ``simulate`` runs unless per-fold
events are asked for) against the per-fold one (``events=True``): the same runs, the same
schedule (jumped or stepped fold by fold), the same report, on random shapes and memories;
and a 400000^3 GEMM in constant time and memory."""

import math
import subprocess
import sys

import numpy as np
import pytest

from hbfpsim.array import Mapping, grouped, load, simulate, timing
from hbfpsim.array.memory import demand
from hbfpsim.config import ArrayConfig
from hbfpsim.numerics import Numerics

DATAFLOWS = ("ws", "os", "is")


def spatial_to_gemm(df, sr, sc, t):
    """(M, N, K) whose (Sr, Sc, T) on ``df`` are the given ones."""
    return {"ws": (t, sc, sr), "os": (sr, sc, t), "is": (sc, t, sr)}[df]


def random_shape(rng, config):
    """M, N, K with row and column folds often 1, 2 or 3, sometimes more."""
    def extent(side):
        folds = int(rng.choice([1, 2, 3, 4, int(rng.integers(5, 30))]))
        return (folds - 1) * side + int(rng.integers(1, side + 1))
    return spatial_to_gemm(config.dataflow, extent(config.rows), extent(config.cols),
                           int(rng.integers(1, 60)))


def random_config(rng, df):
    """As test_array_timing.random_memory_config, wider: buffers that fit or not, ideal or
    slow DRAM, no to long latency, SRAM limits, single and double buffering."""
    return ArrayConfig(
        rows=int(rng.integers(1, 9)), cols=int(rng.integers(1, 9)), dataflow=df,
        input=str(rng.choice(["fp32", "bf16", "hbfp4", "mxfp6_e3m2", "int8"])),
        weight=str(rng.choice(["fp32", "fp8_e4m3", "hbfp6"])),
        output=str(rng.choice(["fp32", "fp16"])),
        input_kib=float(rng.choice([0.25, 0.5, 2, 64])),
        weight_kib=float(rng.choice([0.25, 0.5, 2, 64])),
        output_kib=float(rng.choice([0.25, 0.5, 2, 64])),
        double_buffered=bool(rng.integers(2)),
        sram_bytes_per_cycle=float(rng.choice([0, 0, 1, 4, 32])),
        dram_bytes_per_cycle=float(rng.choice([0.5, 1, 3.5, 16, 100, math.inf])),
        dram_latency_cycles=int(rng.choice([0, 0, 7, 60, 5000])))


def expand(per_kind, runs):
    """Per-fold values (last axis) of a per-kind array, in execution order."""
    nr, per_kind = len(runs.row_counts), np.asarray(per_kind)
    passes = [np.repeat(per_kind[..., c * nr:(c + 1) * nr], runs.row_counts, axis=-1)
              for c in range(len(runs.col_counts))]
    return np.concatenate([np.concatenate([p] * n, axis=-1)
                           for p, n in zip(passes, runs.col_counts)], axis=-1)


# --- the runs are the per-fold arrays ----------------------------------------------------------

def test_classes():
    assert grouped.classes(1) == [(0, 1)]
    assert grouped.classes(2) == [(0, 1), (1, 1)]
    assert grouped.classes(3) == [(0, 1), (1, 1), (2, 1)]
    assert grouped.classes(7) == [(0, 1), (1, 5), (6, 1)]


def test_runs_expand_to_the_per_fold_demand_and_cycles():
    """Every per-fold quantity depends only on the fold's row and column class: memory.demand
    and the timing functions on all folds equal the runs expanded (RF, CF in 1, 2, 3, more)."""
    rng = np.random.default_rng(10)
    for trial in range(150):
        config = random_config(rng, DATAFLOWS[trial % 3])
        m, n, k = random_shape(rng, config)
        runs, _ = grouped.fold_runs(config, Numerics.of(config), m, n, k)
        mapping = Mapping.of(m, n, k, config)
        assert sum(runs.weights) == mapping.folds
        assert (runs.row_counts, runs.col_counts) == (
            tuple(c for _, c in grouped.classes(mapping.row_folds)),
            tuple(c for _, c in grouped.classes(mapping.col_folds)))
        numerics = Numerics.of(config)
        need = demand(mapping, numerics.input.storage_bits, numerics.weight.storage_bits,
                      numerics.psum_bits, numerics.psum_bits, config.input_kib,
                      config.weight_kib, config.output_kib)
        for field in ("load_a", "load_b", "load_out", "store", "read_a", "read_b",
                      "psum_write", "psum_read"):
            assert np.array_equal(expand(runs.traffic[field], runs),
                                  getattr(need, field)), (field, config, m, n, k)
        bandwidth = config.dram_bytes_per_cycle
        loads = np.stack([timing.transfer_cycles(x, bandwidth)
                          for x in (need.load_a, need.load_b, need.load_out)])
        compute, sram = timing.fold_compute(
            mapping.fold_cycles, np.stack([need.read_a, need.read_b,
                                           need.psum_write + need.psum_read]),
            config.sram_bytes_per_cycle)
        assert np.array_equal(expand(runs.loads, runs), loads)
        assert np.array_equal(expand(runs.compute, runs), compute)
        assert np.array_equal(expand(runs.sram_stalls, runs), sram)
        assert np.array_equal(expand(runs.store, runs),
                              timing.transfer_cycles(need.store, bandwidth))


@pytest.mark.parametrize("df", DATAFLOWS)
def test_kinds_at_the_extremes_of_the_ranges(df):
    """Tiles of 2^56 elements (bytes far past 2^53, where floats round), T near 2^40, slow
    and fast memories: the Python-int kinds give the per-fold path's report, or the same
    refusal (a transfer, or the whole GEMM, past 2^61 cycles)."""
    m, n, k = spatial_to_gemm(df, 2 * 2**16 + 5, 3, 2**40 - 7)
    for bandwidth, sram, latency in [(2.0**40, 0, 0), (3.0, 5.5, 2**32), (0.05, 0, 0),
                                     (2.0**-10, 0, 7), (1000.0, 2.0**-10, 60)]:
        config = ArrayConfig(rows=2**16, cols=2, dataflow=df, input="hbfp4", weight="fp32",
                             output="fp16", input_kib=2.0**40, weight_kib=2.0**40,
                             output_kib=2.0**40, dram_bytes_per_cycle=bandwidth,
                             sram_bytes_per_cycle=sram, dram_latency_cycles=latency)
        try:
            want = simulate(config, m, n, k, events=True)
        except ValueError as err:
            with pytest.raises(ValueError) as got:
                simulate(config, m, n, k)
            assert str(got.value) == str(err)
        else:
            assert {**vars(simulate(config, m, n, k)), "events": None} == \
                {**vars(want), "events": None}


# --- the schedule over runs is the per-fold schedule --------------------------------------------

def random_counts(rng):
    folds = int(rng.choice([1, 2, 3, 4, int(rng.integers(5, 80))]))
    return tuple(c for _, c in grouped.classes(folds))


@pytest.mark.parametrize("step_budget", [0, 40, 10**9], ids=["jumped", "gave-up", "stepped"])
def test_run_schedule_equals_the_recurrence_on_random_values(step_budget):
    """Arbitrary per-kind cycles (not only what the memory model yields): loads and stores
    that are zero, far below or far above the compute, long latencies; so the state drifts,
    backlogs build and drain, and the branches change inside runs."""
    rng = np.random.default_rng(11)
    for trial in range(400):
        rows, cols = random_counts(rng), random_counts(rng)
        kinds = len(rows) * len(cols)
        scale = int(rng.choice([1, 10, 1000]))
        compute = rng.integers(1, 50, kinds) * scale
        loads = rng.integers(0, 60, (3, kinds)) * rng.choice([0, 1, scale], (3, kinds))
        store = rng.integers(0, 60, kinds) * rng.choice([0, 1, scale], kinds)
        latency = int(rng.choice([0, 3, 100, 10**5]))
        double = bool(rng.integers(2))
        assert_schedule_matches(rows, cols, compute, loads, store, latency, double, step_budget,
                                (trial, rows, cols))


def assert_schedule_matches(rows, cols, compute, loads, store, latency, double, step_budget,
                            label):
    """run_schedule over runs of identical folds == the per-fold recurrence, every field."""
    got = grouped.run_schedule(compute.tolist(), loads.tolist(), store.tolist(), rows, cols,
                               latency, double, step_budget)
    runs = grouped.FoldRuns(rows, cols, compute, loads, store, None, None)
    want = timing.fold_schedule(expand(compute, runs), expand(loads, runs),
                                expand(store, runs), latency, double)
    assert got == (want.total_cycles, want.prefetch_cycles, want.drain_cycles,
                   tuple(int(s) for s in want.stalls)), label


@pytest.mark.parametrize("step_budget", [0, 10**9], ids=["jumped", "stepped"])
def test_run_schedule_on_long_runs_with_drifting_backlogs(step_budget):
    """Runs of thousands of folds: a channel backlog that builds or drains by a few cycles
    per fold changes the branches after hundreds of folds, not at once."""
    rng = np.random.default_rng(13)
    for trial in range(40):
        rows = tuple(c for _, c in grouped.classes(int(rng.integers(500, 3000))))
        cols = tuple(c for _, c in grouped.classes(int(rng.integers(1, 5))))
        kinds = len(rows) * len(cols)
        compute = rng.integers(900, 1100, kinds)
        loads = rng.integers(0, 400, (3, kinds)) * rng.integers(0, 2, (3, kinds))
        store = rng.integers(0, 1100, kinds)
        latency, double = int(rng.choice([0, 50, 10**4])), bool(rng.integers(2))
        assert_schedule_matches(rows, cols, compute, loads, store, latency, double, step_budget,
                                trial)


def test_alternating_folds_are_jumped_in_pairs(monkeypatch):
    """A schedule that settles into a period of two folds (every other fold waits 3 cycles
    on the weight buffer): exact, and jumped two folds at a time rather than stepped."""
    calls = []
    fold = grouped._fold
    monkeypatch.setattr(grouped, "_fold", lambda *a: calls.append(1) or fold(*a))
    compute = np.array([12000, 23000, 33000])
    loads = np.array([[56000, 0, 21], [56000, 16000, 0], [6000, 0, 45000]])
    store = np.array([0, 7000, 0])
    runs = grouped.FoldRuns((1, 5000, 1), (1,), compute, loads, store, None, None)
    got = grouped.run_schedule(compute.tolist(), loads.tolist(), store.tolist(), runs.row_counts,
                               runs.col_counts, 3, True)
    want = timing.fold_schedule(expand(compute, runs), expand(loads, runs),
                                expand(store, runs), 3, True)
    assert set(want.waited_on[1:5000].tolist()) == {-1, 1}                 # it alternates
    assert got == (want.total_cycles, want.prefetch_cycles, want.drain_cycles,
                   tuple(int(s) for s in want.stalls))
    assert len(calls) < 30


def test_kind_schedule_jumps_settled_runs_and_gives_up_past_its_budget():
    """Numba's stepping jumps a run of alike folds once it settles (10^6 folds within a
    budget of 20 stepped); the alternating schedule above never settles into single folds,
    so past its budget it gives up (None) and grouped.py's jumps take over."""
    settled = ([100, 100, 100], [[50, 50, 50], [0, 0, 0], [0, 0, 0]], [0, 0, 30])
    got = timing.kind_schedule(*settled, (1, 10**6, 1), (1,), 7, True, 20)
    runs = grouped.FoldRuns((1, 10**6, 1), (1,), *map(np.array, settled), None, None)
    want = timing.fold_schedule(*(expand(np.array(x), runs) for x in settled), 7, True)
    assert got == (want.total_cycles, want.prefetch_cycles, want.drain_cycles,
                   tuple(int(s) for s in want.stalls))
    alternating = ([12000, 23000, 33000], [[56000, 0, 21], [56000, 16000, 0], [6000, 0, 45000]],
                   [0, 7000, 0])
    assert timing.kind_schedule(*alternating, (1, 5000, 1), (1,), 3, True, 1000) is None
    assert timing.kind_schedule(*alternating, (1, 5000, 1), (1,), 3, True, 10**4) == \
        grouped.run_schedule(*alternating, (1, 5000, 1), (1,), 3, True)


def test_the_overflow_guard_agrees_with_timing_check_total():
    """Around the 2^61 bound (slow DRAM, huge M): both refuse, or both give the same."""
    slow = ArrayConfig(rows=4, cols=4, dataflow="ws", input_kib=0.25, weight_kib=0.25,
                       output_kib=0.25, dram_bytes_per_cycle=2.0**-10)
    for k in (4, 4 * 2**5, 4 * 2**7, 4 * 2**9):
        try:
            want = simulate(slow, 2**40, 4, k, events=True)
        except ValueError as err:
            with pytest.raises(ValueError, match="beyond the 2\\^61") as got:
                grouped.grouped_report(slow, Numerics.of(slow), 2**40, 4, k)
            assert str(got.value) == str(err)
        else:
            assert grouped.grouped_report(slow, Numerics.of(slow), 2**40, 4, k).total_cycles == want.total_cycles


# --- simulate (grouped) is the per-fold path -----------------------------------------------

def compare(config, m, n, k):
    """Every field of simulate's report equals the per-fold path's (``events=True``)."""
    want = simulate(config, m, n, k, events=True)
    got = simulate(config, m, n, k)
    assert got.events is None
    assert {**vars(got), "events": None} == {**vars(want), "events": None}, (config, m, n, k)
    assert got.total_cycles - got.compute_cycles == sum(got.stalls.values())
    g = grouped.grouped_report(config, Numerics.of(config), m, n, k)
    assert (g.folds, g.total_cycles, g.stalls, g.sram, g.dram, g.utilization) == (
        got.folds, got.total_cycles, got.stalls, got.sram, got.dram, got.utilization)


@pytest.fixture(params=["jumped", "default"])
def path(request, monkeypatch):
    """"jumped": the recurrence over runs in Python, with jumps, for every GEMM; "default":
    first in numba (timing.kind_schedule) within STEP_BUDGET folds stepped, as simulate
    does."""
    if request.param == "jumped":
        monkeypatch.setattr(grouped, "STEP_BUDGET", 0)
    return request.param


def test_grouped_report_equals_simulate_on_random_cases(path):
    rng = np.random.default_rng(12)
    for trial in range(300):
        config = random_config(rng, DATAFLOWS[trial % 3])
        compare(config, *random_shape(rng, config))


def test_grouped_report_equals_simulate_on_a_resnet50_step(path):
    from hbfpsim.trace.models import resnet50_training_step
    config = load("array32")
    for _, _, m, n, k, _ in resnet50_training_step():
        compare(config, m, n, k)


@pytest.mark.parametrize("preset", ["small16", "array32", "tpu128", "array256"])
def test_grouped_report_equals_simulate_on_presets(preset, path):
    config = load(preset)
    for m, n, k in [(3136, 64, 576), (1, 1, 1), (512, 3072, 768), (100352, 256, 64),
                    (64, 2048, 100352), (4097, 33, 129)]:
        compare(config, m, n, k)
        compare(config.ideal(), m, n, k)


def test_the_same_errors():
    config = ArrayConfig(rows=4, cols=4, dataflow="ws")
    with pytest.raises(ValueError, match=r"GEMM dimension K must be an integer in \[1, 2\^40\]"):
        grouped.grouped_report(config, Numerics.of(config), 3, 3, 0)
    small = ArrayConfig(rows=64, cols=64, dataflow="ws", input_kib=1)
    with pytest.raises(ValueError, match="holds less than one 64 x 64 tile"):
        grouped.grouped_report(small, Numerics.of(small), 3, 3, 3)
    slow = ArrayConfig(rows=4, cols=4, dataflow="ws", input_kib=0.25, weight_kib=0.25,
                       output_kib=0.25, dram_bytes_per_cycle=2.0**-10)
    with pytest.raises(ValueError, match="beyond the 2\\^61"):
        grouped.grouped_report(slow, Numerics.of(slow), 2**40, 2**40, 2**40)


# --- any fold count -------------------------------------------------------------------------

HUGE = 400_000


def test_a_400000_cubed_gemm_is_timed_as_groups_of_folds():
    config = load("array32")
    report = grouped.grouped_report(config, Numerics.of(config), HUGE, HUGE, HUGE)
    assert report.folds == math.ceil(HUGE / 32) ** 2
    assert report.total_cycles == report.compute_cycles + sum(report.stalls.values())
    assert report.compute_cycles == report.folds * (2 * 32 + 32 + HUGE - 2)
    assert 0 < report.utilization == HUGE**3 / (report.total_cycles * 32 * 32) <= 1
    assert report.mapping_efficiency == 1 and report.prefetch_cycles > 0
    assert report.dram["reads"] == report.sram["input"]["writes"] + \
        report.sram["weight"]["writes"] + report.sram["output"]["writes"] - \
        report.folds * 32 * HUGE * 4            # minus the partial sums written by the array


def test_steps_do_not_grow_with_the_fold_count(monkeypatch):
    """The recurrence in Python steps a bounded number of folds, whatever the GEMM's size
    (numba's, tried first, gives up past its budget: test_kind_schedule_jumps...)."""
    calls = []
    fold = grouped._fold
    monkeypatch.setattr(grouped, "_fold", lambda *a: calls.append(1) or fold(*a))
    monkeypatch.setattr(grouped, "STEP_BUDGET", 0)
    config = load("array32")
    for side in (4_000, 40_000, HUGE):
        calls.clear()
        grouped.grouped_report(config, Numerics.of(config), side, side, side)
        assert len(calls) < 100, (side, len(calls))
    rng = np.random.default_rng(14)
    for trial in range(100):            # up to 10^5 x 10^5 folds on random memories
        config = random_config(rng, DATAFLOWS[trial % 3])
        sr, sc = (int(rng.integers(1, 10**5)) * side for side in (config.rows, config.cols))
        calls.clear()
        grouped.grouped_report(config, Numerics.of(config), *spatial_to_gemm(config.dataflow, sr, sc, 1000))
        assert len(calls) < 100, (config, sr, sc, len(calls))


# ru_maxrss survives fork and exec on Linux: a child of this (large) pytest process would
# report the parent's peak. A small launcher runs the measured process and reads its
# children's ru_maxrss, whose floor is then the launcher's own ~12 MB.
LAUNCHER = ("import resource, subprocess, sys; "
            "subprocess.run([sys.executable, '-c', sys.argv[1]], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_mib(script):
    """Peak resident set of a fresh interpreter running ``script``, in MiB."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, script], capture_output=True,
                          text=True, check=True)
    peak = int(done.stdout.split()[-1])
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10   # bytes / KiB


def test_a_400000_cubed_gemm_in_little_memory():
    imports = ("from hbfpsim.array import load, grouped; from hbfpsim.numerics import Numerics; "
               "config = load('array32')")
    imports += "; grouped.grouped_report(config, Numerics.of(config), 64, 64, 64)"  # kernels
    peak_rss_mib(imports)       # with numba's cache cold, this one compiles: not a baseline
    baseline = peak_rss_mib(imports)
    peak = peak_rss_mib(f"{imports}; grouped.grouped_report(config, Numerics.of(config), "
                        f"{HUGE}, {HUGE}, {HUGE})")
    assert peak < 256, (peak, baseline)             # Python, NumPy, numba and the kernels
    assert peak - baseline < 10, (peak, baseline)    # beyond imports and kernels: little
