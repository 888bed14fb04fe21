"""hbfpsim.replay: a run equals its parts, the booster schedule, SQNR ordering on the shipped
digits traces, shape-only and batched records, the atomic output folder, run-file checks.

Oracles: the parts called directly (``hbfpsim.array.simulate`` with the variant's numerics,
``hbfpsim.cost.gemm_energy``, ``hbfpsim.mac.matmul`` on the rows and columns
``hbfpsim.accuracy.choose`` picks), the exact product and the metrics in plain NumPy, W1 from
``scipy.stats.wasserstein_distance``, and facts worked out by hand from the trace manifests.
Expensive runs are module-scoped fixtures; nothing draws figures (``figures=False``) except
where a stand-in ``hbfpsim.replay.figures`` module is installed.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from hbfpsim import replay
from hbfpsim.accuracy import choose
from hbfpsim.array import load as load_array
from hbfpsim.array import simulate
from hbfpsim.config import ConfigError
from hbfpsim.cost import array_cost, gemm_energy, mac_cost
from hbfpsim.mac import matmul
from hbfpsim.numerics import Numerics
from hbfpsim.format_schedule import PRESETS
from hbfpsim.trace import TraceWriter
from hbfpsim.trace import open as open_trace

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "traces"
ARRAY = load_array("array32")

ACCURACY = ("sampled", "rel_error", "rel_error_se", "sqnr_db", "sqnr_db_se", "max_abs_error",
            "max_abs_error_se", "w1", "w1_se", "vrr", "vrr_se", "overflows", "full_swamps",
            "partial_swamps")
INTS = {"record", "step", "epoch", "m", "n", "k", "count", "macs", "cycles", "stall_cycles",
        "epochs", "sampled", "overflows", "full_swamps", "partial_swamps"}
TEXT = {"variant", "array", "trace", "layer", "phase", "input", "weight", "plan", "synthetic"}

# name -> (run-file lines, the same numerics built here from the names)
VARIANTS = {
    "fp32": ('input = "fp32"', Numerics.create("fp32")),
    "bf16": ('input = "bf16"', Numerics.create("bf16")),
    "hbfp8": ('input = "hbfp8"\nblock_accumulator = "fixed21"',
              Numerics.create("hbfp8", block_accumulator="fixed21")),
    "hbfp6": ('input = "hbfp6"\nblock_accumulator = "fixed17"',
              Numerics.create("hbfp6", block_accumulator="fixed17")),
    "hbfp4": ('input = "hbfp4"\nblock_accumulator = "fixed13"',
              Numerics.create("hbfp4", block_accumulator="fixed13")),
    "int8": ('input = "int8"', Numerics.create("int8")),
    "fp16": ('input = "fp16"', Numerics.create("fp16")),
    "booster": ('schedule = "booster"', None),
}


def run_file(path: Path, traces: list[Path | str], variants: list[str], **run) -> Path:
    """A run file at ``path`` (TOML written here)."""
    lines = ["[run]", "traces = [" + ", ".join(f'"{t}"' for t in traces) + "]",
             'arrays = ["array32"]']
    lines += [f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"'
              for key, value in run.items()]
    for name in variants:
        lines += ["", "[[variant]]", f'name = "{name}"', VARIANTS[name][0]]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [_typed(row) for row in csv.DictReader(f)]


def _typed(row: dict) -> dict:
    """gemms.csv cells by column; summary.csv cells: int, float, text or '' (None)."""
    out = {}
    for key, value in row.items():
        if key in TEXT:
            out[key] = value
        elif value == "":
            out[key] = None
        elif key in replay.COLUMNS:
            out[key] = int(value) if key in INTS else float(value)
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out


def close(got: float, want: float, rel: float = 1e-12) -> bool:
    """Equality (inf and nan included) or relative difference <= rel."""
    if got == want or (math.isnan(got) and math.isnan(want)):
        return True
    return math.isfinite(want) and abs(got - want) <= rel * abs(want)


def oracle_metrics(hw: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    hw, exact = hw.ravel(), exact.ravel()
    err = hw - exact
    return {"rel_error": float(np.linalg.norm(err) / np.linalg.norm(exact)),
            "sqnr_db": float(10 * np.log10(np.sum(exact**2) / np.sum(err**2))),
            "max_abs_error": float(np.max(np.abs(err))),
            "w1": float(wasserstein_distance(hw, exact)),
            "vrr": float(np.var(hw) / np.var(exact))}


def timing_and_energy(row: dict, numerics: Numerics):
    """The row's time, energy and MAC area from the array and cost models called directly."""
    report = simulate(ARRAY, row["m"], row["n"], row["k"], numerics=numerics)
    count = row["count"]
    assert row["plan"] == str(report.plan)
    assert row["cycles"] == count * report.total_cycles
    assert row["stall_cycles"] == count * report.stall_cycles
    assert close(row["utilization"], report.utilization)
    assert close(row["seconds"], count * report.seconds)
    energy = gemm_energy(ARRAY, report, numerics=numerics)
    for part in ("total", "compute", "sram", "dram"):
        column = "energy_pj" if part == "total" else f"{part}_pj"
        assert close(row[column], count * getattr(energy, part)), column
    area = array_cost(ARRAY, numerics).mac.area
    assert close(row["mac_area_um2"], area)
    assert close(row["density"], mac_cost("fp32").area / area)
    assert row["input"] == numerics.input.name and row["weight"] == numerics.weight.name
    assert row["macs"] == count * row["m"] * row["n"] * row["k"]
    return report


def check_accuracy(got: dict, hw: np.ndarray, exact: np.ndarray, complete: bool,
                   counts: dict[str, int] | None = None) -> None:
    want = oracle_metrics(hw, exact)
    assert got["sampled"] == hw.size
    for name, value in want.items():
        assert close(got[name], value), (name, got[name], value)
        se = got[f"{name}_se"]
        if complete:
            assert se == 0.0, name
        elif name != "max_abs_error":
            assert se > 0, name
    for name, value in (counts or {}).items():
        assert got[name] == value, name


# --- a run equals its parts -------------------------------------------------------------------

SEED, MAX_OUTPUTS = 5, 4096


@pytest.fixture(scope="module")
def formats_run(tmp_path_factory):
    """Both digits traces on array32 in six variants, written to gemms.csv / summary.csv.
    max_outputs = 4096 samples the larger records (cnn 2048 x 16, mlp 64 x 128, ...)."""
    tmp = tmp_path_factory.mktemp("formats")
    path = run_file(tmp / "run.toml", [TRACES / "cnn_digits", TRACES / "mlp_digits"],
                    ["fp32", "bf16", "hbfp8", "hbfp6", "hbfp4", "booster"],
                    seed=SEED, max_outputs=MAX_OUTPUTS)
    spec = replay.load(path)
    report = replay.run(spec, progress=False)
    files = replay.write(report, tmp / "out", figures=False)
    assert {f.name for f in files} == {"gemms.csv", "summary.csv", "run.json"}
    rows = read_csv(tmp / "out" / "gemms.csv")
    summary = read_csv(tmp / "out" / "summary.csv")
    with open(tmp / "out" / "gemms.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == replay.COLUMNS
    run_json = json.loads((tmp / "out" / "run.json").read_text())
    assert run_json["sampling"] == {"max_outputs": MAX_OUTPUTS, "max_macs": 2**26,
                                    "seed": SEED}
    assert run_json["run_file"] == path.read_text()
    assert [v["name"] for v in run_json["variants"]] == [
        "fp32", "bf16", "hbfp8", "hbfp6", "hbfp4", "booster"]
    return rows, summary


def find(rows: list[dict], **where) -> list[dict]:
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def test_gemms_csv_covers_every_record(formats_run):
    rows, _ = formats_run
    assert len(rows) == (24 + 24) * 6
    for trace in ("cnn_digits", "mlp_digits"):
        ids = sorted(r.id for r in open_trace(TRACES / trace).records)
        for variant in ("fp32", "booster"):
            assert sorted(r["record"] for r in find(rows, trace=trace, variant=variant)) == ids


PICKS = {"cnn_digits": (0, 3, 4, 5, 6, 7, 14, 21), "mlp_digits": (0, 2, 6, 7, 13, 23)}


@pytest.fixture(scope="module")
def operands():
    return {name: open_trace(TRACES / name) for name in PICKS}


@pytest.mark.parametrize("variant", ["hbfp4", "bf16"])
@pytest.mark.parametrize("trace", sorted(PICKS))
def test_replay_equals_its_parts(formats_run, operands, trace, variant):
    rows, _ = formats_run
    numerics = VARIANTS[variant][1]
    t = operands[trace]
    sampled = 0
    for gemm in t:
        r = gemm.record
        if r.id not in PICKS[trace]:
            continue
        (row,) = find(rows, trace=trace, variant=variant, record=r.id)
        assert (row["m"], row["n"], row["k"], row["count"]) == (r.m, r.n, r.k, r.count)
        assert (row["layer"], row["phase"], row["epoch"]) == (r.layer, r.phase, r.epoch)
        assert row["array"] == "array32" and row["synthetic"] == ""
        report = timing_and_energy(row, numerics)
        if variant == "hbfp4":      # the block accumulator is the plan's first level
            assert row["plan"].startswith("fixed13*")
        s = choose(r.m, r.n, r.k, r.count, max_outputs=MAX_OUTPUTS, seed=SEED, key=r.id)
        a, b = np.asarray(gemm.a), np.asarray(gemm.b)
        out, stats = matmul(a[s.rows], b[:, s.cols], numerics.input, numerics.weight,
                            report.plan)
        if not s.complete:  # the sample is exactly the full GEMM there (blocks run along K)
            full, _ = matmul(a, b, numerics.input, numerics.weight, report.plan)
            np.testing.assert_array_equal(out, full[np.ix_(s.rows, s.cols)])
        exact = a[s.rows].astype(np.float64) @ b[:, s.cols].astype(np.float64)
        counts = {name: sum(int(getattr(level, name)) for level in stats.levels)
                  for name in ("overflows", "full_swamps", "partial_swamps")}
        check_accuracy(row, out, exact, s.complete, counts)
        sampled += not s.complete
    assert 0 < sampled < len(PICKS[trace]), "the picks hold sampled and complete records"


# --- the booster --------------------------------------------------------------------------------

# By hand from the manifests: first and last layers in forward order, and the last epoch
# (capture.epochs = 30).
FIRST_LAST = {"cnn_digits": ("0", "6"), "mlp_digits": ("1", "5")}
LAST_EPOCH = 29


@pytest.mark.parametrize("trace", sorted(FIRST_LAST))
def test_booster_is_hbfp6_or_hbfp4_record_by_record(formats_run, trace):
    rows, _ = formats_run
    kinds = set()
    for row in find(rows, trace=trace, variant="booster"):
        six = row["layer"] in FIRST_LAST[trace] or row["epoch"] == LAST_EPOCH
        kinds.add(six)
        (same,) = find(rows, trace=trace, variant="hbfp6" if six else "hbfp4",
                       record=row["record"])
        assert row["input"] == ("hbfp6@64" if six else "hbfp4@64")
        for column in replay.COLUMNS:
            if column != "variant":
                assert row[column] == same[column] or (
                    isinstance(row[column], float) and math.isnan(row[column])
                    and math.isnan(same[column])), (row["record"], column)
    assert kinds == {True, False}


def test_epoch_weights_by_hand(formats_run):
    rows, _ = formats_run
    # captured epochs 0, 15, 29 of 30: each stands for 15, 14 and 1 training epochs
    assert {(r["epoch"], r["epochs"]) for r in rows} == {(0, 15), (15, 14), (29, 1)}


def test_booster_density(formats_run):
    rows, summary = formats_run
    density = {s["variant"]: s["density"] for s in summary
               if s["trace"] == "cnn_digits" and s["phase"] == "all"}
    # MAC x epochs weighted harmonic mean of the booster's records, computed here
    mine = [(r["density"], r["macs"] * r["epochs"])
            for r in find(rows, trace="cnn_digits", variant="booster")]
    assert close(density["booster"], sum(w for _, w in mine) / sum(w / d for d, w in mine))
    # Measured when written: booster 17.738, hbfp4 18.876, hbfp6 11.585 (x FP32): the booster
    # is 6.0 % below hbfp4.
    assert density["hbfp6"] < density["booster"] < density["hbfp4"]
    assert density["booster"] >= 0.9 * density["hbfp4"]


# --- SQNR ordering ------------------------------------------------------------------------------

ORDER = ("fp32", "bf16", "hbfp8", "hbfp6", "hbfp4")
MANTISSA = {"hbfp8": 8, "hbfp6": 6, "hbfp4": 4}


@pytest.mark.parametrize("trace", ["cnn_digits", "mlp_digits"])
def test_sqnr_ordering_and_db_per_bit(formats_run, trace):
    rows, summary = formats_run
    slopes = {}
    for phase in ("fwd", "bwd_data", "bwd_weight"):
        median = {}
        for variant in ORDER:
            values = [r["sqnr_db"] for r in find(rows, trace=trace, variant=variant,
                                                 phase=phase)]
            assert values and all(v is not None for v in values)
            median[variant] = float(np.median(values))
            (s,) = find(summary, trace=trace, variant=variant, phase=phase)
            assert close(s["sqnr_db_median"], median[variant])
        for better, worse in itertools.pairwise(ORDER):
            assert median[better] >= median[worse] + 3, (phase, better, worse, median)
        bits = [MANTISSA[v] for v in MANTISSA]
        slopes[phase] = float(np.polyfit(bits, [median[v] for v in MANTISSA], 1)[0])
    print(f"{trace}: median SQNR slope, dB per HBFP mantissa bit: "
          + ", ".join(f"{p} {s:.2f}" for p, s in slopes.items()))
    # Quantization noise: one more mantissa bit halves the step, +6.02 dB.
    # Measured when written (seed 5, max_outputs 4096), dB per bit:
    #   cnn_digits fwd 5.97, bwd_data 5.98, bwd_weight 6.10
    #   mlp_digits fwd 6.54, bwd_data 6.00, bwd_weight 6.08
    for phase, slope in slopes.items():
        assert 4.0 <= slope <= 8.0, (trace, phase, slope)


# --- shape-only records and synthetic operands -----------------------------------------------

SHAPES = [("fc1", "fwd", 256, 384, 200), ("fc1", "bwd_weight", 200, 384, 256),
          ("fc2", "fwd", 256, 10, 384), ("fc2", "bwd_data", 256, 384, 10)]


@pytest.fixture(scope="module")
def shape_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "mini"
    with TraceWriter(path, "mini", capture={"epochs": 1}) as w:
        for layer, phase, m, n, k in SHAPES:
            w.add(layer, phase, m, n, k)
    return path


@pytest.fixture(scope="module")
def shape_runs(shape_trace, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shape_runs")
    out = {}
    for synthetic in ("none", "gaussian", "fitted"):
        extra = {"fit": str(TRACES / "cnn_digits")} if synthetic == "fitted" else {}
        path = run_file(tmp / f"{synthetic}.toml", [shape_trace], ["fp32", "hbfp4"],
                        synthetic=synthetic, max_outputs=1024, seed=2, **extra)
        report = replay.run(path, progress=False)
        replay.write(report, tmp / synthetic, figures=False)
        out[synthetic] = (report, read_csv(tmp / synthetic / "gemms.csv"),
                          read_csv(tmp / synthetic / "summary.csv"))
    return out


def test_shape_only_gives_time_energy_no_accuracy(shape_runs):
    _, rows, summary = shape_runs["none"]
    assert len(rows) == len(SHAPES) * 2
    for row in rows:
        timing_and_energy(row, VARIANTS[row["variant"]][1])
        assert row["synthetic"] == ""
        for column in ACCURACY:
            assert row[column] is None, column
    for s in summary:
        assert s["evaluated"] == 0 and s["sqnr_db_median"] is None


@pytest.mark.parametrize("synthetic, label", [("gaussian", "gaussian"),
                                              ("fitted", "fitted:cnn_digits")])
def test_synthetic_operands_are_evaluated(shape_runs, synthetic, label):
    _, rows, summary = shape_runs[synthetic]
    _, plain, _ = shape_runs["none"]
    for row, bare in zip(rows, plain):
        assert row["synthetic"] == label
        s = choose(row["m"], row["n"], row["k"], max_outputs=1024, seed=2, key=row["record"])
        assert row["sampled"] == s.size
        for column in ACCURACY:
            assert row[column] is not None, column
        # the timing and energy do not depend on the operands
        for column in ("plan", "cycles", "stall_cycles", "energy_pj", "density"):
            assert row[column] == bare[column]
        if row["variant"] == "fp32":
            assert row["sqnr_db"] > 100
        else:       # hbfp4: about 6 dB per bit of a 4-bit mantissa, give or take
            assert 8 < row["sqnr_db"] < 30
    assert {s["synthetic"] for s in summary} == {label}


# --- batched records (count > 1) ---------------------------------------------------------------

BATCHED = [(40, 30, 70), (20, 24, 50), (60, 50, 30)]   # (m, n, k), count 3 each
BATCH_OUTPUTS = 2400    # 2 of 3 entries of the first, all of the second, 1 of the third


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batched")
    rng = np.random.default_rng(77)
    operands = []
    with TraceWriter(tmp / "trace", "batched") as w:
        for i, (m, n, k) in enumerate(BATCHED):
            a = rng.standard_normal((3, m, k)).astype(np.float32) * (1 + i)
            b = rng.laplace(size=(3, k, n)).astype(np.float32)
            w.add(f"bmm{i}", "fwd", m, n, k, count=3, a=a, b=b)
            operands.append((a, b))
    path = run_file(tmp / "run.toml", [tmp / "trace"], ["hbfp4", "bf16"],
                    max_outputs=BATCH_OUTPUTS, seed=9)
    report = replay.run(path, progress=False)
    replay.write(report, tmp / "out", figures=False)
    return read_csv(tmp / "out" / "gemms.csv"), operands


@pytest.mark.parametrize("variant", ["hbfp4", "bf16"])
def test_batched_records(batched, variant):
    rows, operands = batched
    numerics = VARIANTS[variant][1]
    entries = []
    for i, ((m, n, k), (a, b)) in enumerate(zip(BATCHED, operands)):
        (row,) = find(rows, variant=variant, record=i)
        assert row["count"] == 3 and row["macs"] == 3 * m * n * k
        one = simulate(ARRAY, m, n, k, numerics=numerics)
        assert row["cycles"] == 3 * one.total_cycles
        assert close(row["energy_pj"], 3 * gemm_energy(ARRAY, one, numerics=numerics).total)
        timing_and_energy(row, numerics)
        s = choose(m, n, k, 3, max_outputs=BATCH_OUTPUTS, seed=9, key=i)
        entries.append(len(s.batches))
        out, exact = [], []
        counts = dict.fromkeys(("overflows", "full_swamps", "partial_swamps"), 0)
        for g in s.batches:
            c, stats = matmul(a[g][s.rows], b[g][:, s.cols], numerics.input, numerics.weight,
                              one.plan)
            out.append(c)
            exact.append(a[g][s.rows].astype(np.float64) @ b[g][:, s.cols].astype(np.float64))
            for name in counts:
                counts[name] += sum(int(getattr(level, name)) for level in stats.levels)
        check_accuracy(row, np.stack(out), np.stack(exact), s.complete, counts)
        assert s.complete == (i == 1)
    assert entries == [2, 3, 1]


# --- per-tensor scales: the sample keeps the operands' largest row and column --------------------


def test_per_tensor_sample_quantizes_as_the_whole(tmp_path):
    rng = np.random.default_rng(3)
    m, n, k = 300, 200, 64
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    a[217, 5], b[40, 13] = 60.0, -45.0          # the tensors' largest magnitudes
    with TraceWriter(tmp_path / "trace", "outlier") as w:
        w.add("fc", "fwd", m, n, k, a=a, b=b)
    path = run_file(tmp_path / "run.toml", [tmp_path / "trace"], ["int8"], max_outputs=400,
                    seed=1)
    (row,) = replay.run(path, progress=False).rows
    s = choose(m, n, k, max_outputs=400, seed=1, key=0)
    assert 217 not in s.rows and 13 not in s.cols, "the outliers lie outside the sample"
    numerics = VARIANTS["int8"][1]
    plan = simulate(ARRAY, m, n, k, numerics=numerics).plan
    full, _ = matmul(a, b, numerics.input, numerics.weight, plan)
    at = np.ix_(s.rows, s.cols)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    want = oracle_metrics(full[at], exact[at])
    for name, value in want.items():
        assert close(getattr(row, name), value), name
    assert row.sampled == s.size


# --- overflow to infinity ------------------------------------------------------------------------


def test_overflowing_record_does_not_crash_the_run(tmp_path):
    a = np.full((4, 8), 1e5, np.float32)
    b = np.ones((8, 3), np.float32)
    with TraceWriter(tmp_path / "trace", "big") as w:
        w.add("fc", "fwd", 4, 3, 8, a=a, b=b)
    path = run_file(tmp_path / "run.toml", [tmp_path / "trace"], ["fp16"])
    (row,) = replay.run(path, progress=False).rows
    assert row.w1 == math.inf and row.sqnr_db == -math.inf


# --- the output folder ---------------------------------------------------------------------------


@pytest.fixture()
def small_report(shape_runs):
    return shape_runs["none"][0]


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != name and name in p.name)


def test_write_refuses_existing_folder_without_force(small_report, tmp_path):
    out = tmp_path / "out"
    replay.write(small_report, out, figures=False)
    (out / "marker").write_text("old")
    with pytest.raises(FileExistsError, match=re.escape(str(out))):
        replay.write(small_report, out, figures=False)
    assert (out / "marker").exists()
    files = replay.write(small_report, out, force=True, figures=False)
    assert not (out / "marker").exists()
    assert {f.name for f in files} == {"gemms.csv", "summary.csv", "run.json"}
    assert len(read_csv(out / "gemms.csv")) == len(small_report.rows)
    assert leftovers(tmp_path, "out") == []


def test_write_refuses_a_file_even_with_force(small_report, tmp_path):
    out = tmp_path / "out"
    out.write_text("not a folder")
    with pytest.raises(FileExistsError, match=re.escape(str(out))):
        replay.write(small_report, out, force=True, figures=False)
    assert out.read_text() == "not a folder"


def _fail(*args, **kwargs):
    raise RuntimeError("disk full")


@pytest.mark.parametrize("existing", [False, True])
def test_failure_while_writing_csv_leaves_nothing(small_report, tmp_path, monkeypatch,
                                                 existing):
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "marker").write_text("old")
    from hbfpsim.replay import output
    monkeypatch.setattr(output, "_csv", _fail)
    with pytest.raises(RuntimeError, match="disk full"):
        replay.write(small_report, out, force=True, figures=False)
    if existing:
        assert sorted(p.name for p in out.iterdir()) == ["marker"]
    else:
        assert not out.exists()
    assert leftovers(tmp_path, "out") == []


def _figures_module(draw) -> types.ModuleType:
    module = types.ModuleType("hbfpsim.replay.figures")
    module.draw = draw
    return module


def test_failure_while_drawing_leaves_nothing(small_report, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "hbfpsim.replay.figures", _figures_module(_fail))
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        replay.write(small_report, out, figures=True)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_figures_are_drawn_into_the_folder(small_report, tmp_path, monkeypatch):
    seen = []

    def draw(report, folder, formats):
        seen.append((report, formats))
        (Path(folder) / "figure.png").write_bytes(b"png")

    monkeypatch.setitem(sys.modules, "hbfpsim.replay.figures", _figures_module(draw))
    files = replay.write(small_report, tmp_path / "out", figures=True)
    assert seen == [(small_report, ("png",))]
    assert "figure.png" in {f.name for f in files}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- run-file validation -------------------------------------------------------------------------

GOOD_RUN = f'[run]\ntraces = ["{TRACES / "mlp_digits"}"]\narrays = ["array32"]\n'
GOOD_VARIANT = '\n[[variant]]\nname = "a"\ninput = "hbfp4"\n'

BAD_RUN_FILES = {
    "unknown run key": (GOOD_RUN + "colour = 3\n" + GOOD_VARIANT, "colour"),
    "unknown table": (GOOD_RUN + GOOD_VARIANT + "[runs]\nx = 1\n", "runs"),
    "no run table": (GOOD_VARIANT, "[run]"),
    "traces not a list": ('[run]\ntraces = 3\narrays = ["array32"]\n' + GOOD_VARIANT,
                          "traces"),
    "traces empty": ('[run]\ntraces = []\narrays = ["array32"]\n' + GOOD_VARIANT, "traces"),
    "traces missing manifest": ('[run]\ntraces = ["."]\narrays = ["array32"]\n' + GOOD_VARIANT,
                                "manifest"),
    "arrays unknown preset": (GOOD_RUN.replace("array32", "array33") + GOOD_VARIANT, "arrays"),
    "arrays empty": (GOOD_RUN.replace('["array32"]', "[]") + GOOD_VARIANT, "arrays"),
    "synthetic bad": (GOOD_RUN + 'synthetic = "uniform"\n' + GOOD_VARIANT, "synthetic"),
    "fitted without fit": (GOOD_RUN + 'synthetic = "fitted"\n' + GOOD_VARIANT, "fit"),
    "max_outputs 0": (GOOD_RUN + "max_outputs = 0\n" + GOOD_VARIANT, "max_outputs"),
    "max_outputs huge": (GOOD_RUN + f"max_outputs = {2**41}\n" + GOOD_VARIANT, "max_outputs"),
    "max_outputs bool": (GOOD_RUN + "max_outputs = true\n" + GOOD_VARIANT, "max_outputs"),
    "max_outputs float": (GOOD_RUN + "max_outputs = 100.0\n" + GOOD_VARIANT, "max_outputs"),
    "max_macs 0": (GOOD_RUN + "max_macs = 0\n" + GOOD_VARIANT, "max_macs"),
    "seed negative": (GOOD_RUN + "seed = -1\n" + GOOD_VARIANT, "seed"),
    "out empty": (GOOD_RUN + 'out = ""\n' + GOOD_VARIANT, "out"),
    "no variant": (GOOD_RUN, "[[variant]]"),
    "duplicate variant names": (GOOD_RUN + GOOD_VARIANT + GOOD_VARIANT, "'a'"),
    "bad variant name": (GOOD_RUN + '[[variant]]\nname = "a b"\ninput = "hbfp4"\n', "name"),
    "unknown variant key": (GOOD_RUN + GOOD_VARIANT + "colour = 1\n", "colour"),
    "unknown input format": (GOOD_RUN + '[[variant]]\nname = "a"\ninput = "hbfp44x"\n',
                             "input"),
    "unknown weight format": (GOOD_RUN + GOOD_VARIANT + 'weight = "int7"\n', "weight"),
    "float block accumulator": (GOOD_RUN + GOOD_VARIANT + 'block_accumulator = "fp32"\n',
                                "block_accumulator"),
    "unknown schedule": (GOOD_RUN + '[[variant]]\nname = "b"\nschedule = "boost"\n',
                         "schedule"),
    "schedule plus keys": (GOOD_RUN + '[[variant]]\nname = "b"\nschedule = "booster"\n'
                           'input = "hbfp6"\n', "schedule"),
    "rule bad phase": (GOOD_RUN + GOOD_VARIANT + '[[variant.rule]]\nphases = ["forward"]\n'
                       'input = "hbfp6"\n', "phases"),
    "rule bad epochs": (GOOD_RUN + GOOD_VARIANT + '[[variant.rule]]\nepochs = ["x", 1]\n'
                        'input = "hbfp6"\n', "epochs"),
    "rule epochs not a list": (GOOD_RUN + GOOD_VARIANT + "[[variant.rule]]\nepochs = 3\n"
                               'input = "hbfp6"\n', "epochs"),
    "rule layers not strings": (GOOD_RUN + GOOD_VARIANT + "[[variant.rule]]\nlayers = [1]\n"
                                'input = "hbfp6"\n', "layers"),
    "rule without numerics": (GOOD_RUN + GOOD_VARIANT + '[[variant.rule]]\nlayers = ["fc*"]\n',
                              "numerics"),
    "rule unknown format": (GOOD_RUN + GOOD_VARIANT + '[[variant.rule]]\ninput = "hbfp0"\n',
                            "input"),
    "not toml": (GOOD_RUN + "traces = [\n", "TOML"),
    "figures unknown format": (GOOD_RUN + 'figures = ["jpg"]\n' + GOOD_VARIANT, "figures"),
    "figures twice": (GOOD_RUN + 'figures = ["png", "png"]\n' + GOOD_VARIANT, "figures"),
    "figures not a list": (GOOD_RUN + "figures = 1\n" + GOOD_VARIANT, "figures"),
}


@pytest.mark.parametrize("value, formats", [(None, ("png",)), ('["svg", "pdf"]', ("svg", "pdf")),
                                            ('"pdf"', ("pdf",)), ("[]", ())])
def test_figure_formats(tmp_path, value, formats):
    path = tmp_path / "run.toml"
    path.write_text(GOOD_RUN + ("" if value is None else f"figures = {value}\n") + GOOD_VARIANT)
    assert replay.load(path).figures == formats


@pytest.mark.parametrize("case", sorted(BAD_RUN_FILES))
def test_bad_run_files(tmp_path, case):
    text, key = BAD_RUN_FILES[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        replay.load(path)
    message = str(err.value)
    assert str(path) in message, message
    assert key in message, message


def test_missing_run_file(tmp_path):
    with pytest.raises(ConfigError, match="no such run file"):
        replay.load(tmp_path / "nothing.toml")


def test_schedule_plus_keys_names_the_extra_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_RUN_FILES["schedule plus keys"][0])
    with pytest.raises(ConfigError, match="input"):
        replay.load(path)


def test_fit_without_a_trace_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD_RUN + 'synthetic = "fitted"\nfit = "no_such_trace"\n' + GOOD_VARIANT)
    with pytest.raises(ConfigError, match="fit"):
        replay.load(path)


def test_good_run_file_with_rules_and_preset(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD_RUN + 'seed = 4\nmax_outputs = 100\nsynthetic = "gaussian"\n'
                    + '\n[[variant]]\nname = "mine"\ninput = "hbfp4"\n'
                    'block_accumulator = "fixed13"\n'
                    '[[variant.rule]]\nlayers = ["@first", "fc*"]\nphases = ["bwd_weight"]\n'
                    'epochs = [10, "last"]\ninput = "hbfp6"\n'
                    '\n[[variant]]\nname = "boost"\nschedule = "booster"\n')
    spec = replay.load(path, out=tmp_path / "elsewhere")
    assert spec.out == tmp_path / "elsewhere"
    assert spec.traces == (TRACES / "mlp_digits",)
    assert [a.name for a in spec.arrays] == ["array32"]
    assert (spec.sampling.seed, spec.sampling.max_outputs, spec.sampling.max_macs) == \
        (4, 100, 2**26)
    assert spec.synthetic == "gaussian" and spec.fit is None
    mine, boost = spec.variants
    assert mine.name == "mine" and mine.default == VARIANTS["hbfp4"][1]
    (rule,) = mine.rules
    # keys a rule does not give come from its variant: hbfp6 with the variant's fixed13
    assert rule.numerics == Numerics.create("hbfp6", block_accumulator="fixed13")
    assert (rule.layers, rule.phases, rule.epochs) == (("@first", "fc*"), ("bwd_weight",),
                                                       (10, "last"))
    booster = PRESETS["booster"]
    assert boost.name == "boost"
    assert (boost.default, boost.rules) == (booster.default, booster.rules)
    assert spec.text == path.read_text()


def test_quickstart_loads():
    spec = replay.load(ROOT / "configs" / "quickstart.toml")
    assert [v.name for v in spec.variants] == ["fp32", "bf16", "mxfp6_e2m3", "hbfp8", "hbfp6",
                                               "hbfp4", "booster"]
    assert spec.traces[0].resolve() == (TRACES / "cnn_digits").resolve()


def test_rows_convert_to_a_dataframe():
    pd = pytest.importorskip("pandas")
    report = replay.Report(replay.load(ROOT / "configs" / "quickstart.toml"))
    from dataclasses import replace

    from helpers import row
    report.rows.append(replace(row("v", 1, 0, "l", "fwd"), cycles=2))
    frame = report.dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(replay.COLUMNS) and frame["cycles"].tolist() == [2]
    assert frame["sqnr_db"].isna().all()        # not evaluated: missing, not zero


def test_a_record_whose_one_output_is_over_the_mac_budget_is_not_evaluated(tmp_path):
    rng = np.random.default_rng(0)
    with TraceWriter(tmp_path / "trace", "long") as w:
        w.add("fc", "bwd_weight", 4, 3, 64, a=rng.standard_normal((4, 64), np.float32),
              b=rng.standard_normal((64, 3), np.float32))
        w.add("fc", "fwd", 4, 3, 16, a=rng.standard_normal((4, 16), np.float32),
              b=rng.standard_normal((16, 3), np.float32))
    path = run_file(tmp_path / "run.toml", [tmp_path / "trace"], ["fp32"], max_macs=32)
    long, short = replay.run(path, progress=False).rows
    assert long.sampled is None and long.sqnr_db is None and long.cycles > 0
    assert short.sampled == 2 and short.sqnr_db is not None      # 32 // 16 = 2 outputs


def test_a_failed_replacement_puts_the_previous_results_back(small_report, tmp_path,
                                                               monkeypatch):
    out = tmp_path / "out"
    replay.write(small_report, out, figures=False)
    (out / "marker").write_text("old")
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".out.tmp"):
            raise OSError("disk full")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="disk full"):
        replay.write(small_report, out, force=True, figures=False)
    assert (out / "marker").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
