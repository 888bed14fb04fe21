"""Bad input, as a hostile new user would give it: every case through the real command line
(in-process ``cli.main``, or a subprocess where signals and pipes matter) or the API. Each
gives one line naming what was wrong, the documented exit status, and leaves no file behind.
The trace layer's cases are in test_bad_trace.py."""

import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest

import hbfpsim
from hbfpsim import cli
from hbfpsim.cost import calibrate, rtl
from hbfpsim.formats import get
from hbfpsim.mac import parse_accumulator
from helpers import rejected

ARRAY = """
[array]
rows = 32
cols = 32
dataflow = "ws"
[numerics]
input = "hbfp4"
weight = "hbfp4"
block_accumulator = "fixed16"
[buffers]
input_kib = 64
weight_kib = 64
output_kib = 64
[dram]
bytes_per_cycle = 32
latency_cycles = 100
"""


def array_file(tmp_path, *edits: tuple[str, str]) -> str:
    text = ARRAY
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "a.toml"
    path.write_text(text)
    return str(path)



@pytest.fixture
def here(tmp_path, monkeypatch):
    """Run in an empty folder; after the test it holds nothing but what the test put there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- gemm: dimensions and every timing quantity stay inside int64 ---------------------------

@pytest.mark.parametrize("dims,words", [
    (("10000000000",) * 3, ["could take up to 9.29e+27 cycles", "beyond the 2^61"]),     # 694 PiB
    (("9223372036854775808", "1", "1"), ["dimension M", "[1, 2^40]"]),                   # > int64
    (("1" + "0" * 30, "1", "1"), ["dimension M", "[1, 2^40]"]),                          # 31 digits
    (("0", "1", "1"), ["dimension M", "got 0"]),
    (("1", "-5", "1"), ["dimension N", "got -5"]),
])
def test_gemm_dimensions(here, capsys, dims, words):
    rejected(["gemm", "array32", *dims], capsys, *words)
    assert list(here.iterdir()) == []


def test_a_gemm_of_31_billion_folds_times_without_per_fold_arrays(capsys):
    """1 x 1 x 10^12 has 31 billion folds (233 GiB as per-fold arrays): identical folds are
    timed as a group. Per-fold events keep a limit."""
    assert cli.main(["gemm", "array32", "1", "1", "1000000000000"]) == 0
    out = capsys.readouterr().out
    assert "31250000000 folds" in out and "1000000000000 MACs" in out
    rejected(["gemm", "array32", "1", "1", "1000000000000", "--events"], capsys,
             "31,250,000,000 folds", "per-fold events", "take at most 4,194,304")


@pytest.mark.parametrize("edit,words", [
    (("bytes_per_cycle = 32", "bytes_per_cycle = 1e-300"),
     ["[dram] bytes_per_cycle", "[2^-10, 2^40]", "1e-300"]),
    (("latency_cycles = 100", "latency_cycles = 9223372036854775807"),
     ["[dram] latency_cycles", "[0, 2^32]"]),
    (("input_kib = 64", "input_kib = 64\nsram_bytes_per_cycle = 1e-300"),
     ["[buffers] sram_bytes_per_cycle", "0 (unlimited)"]),
])
def test_gemm_memory_configs(tmp_path, capsys, edit, words):
    path = array_file(tmp_path, edit)
    rejected(["gemm", path, "64", "64", "64"], capsys, path, *words)


@pytest.mark.parametrize("edit,words", [
    (("rows = 32", "rows = 1000000000"), ["[array] rows", "[1, 65536]"]),
    (("input_kib = 64", "input_kib = 0.0009765625"),      # 1 byte: not one 32 x 32 HBFP4 tile
     ["[buffers] input_kib = 0.000976562 holds less than one 32 x 32 tile", "528 bytes"]),
    (("output_kib = 64", "output_kib = 1"),               # 32 x 32 fp32 partial sums: 4 KiB
     ["[buffers] output_kib = 1 holds less than one 32 x 32 tile (4096 bytes at 32 bits"]),
])
def test_gemm_impossible_hardware(tmp_path, capsys, edit, words):
    path = array_file(tmp_path, edit)
    rejected(["gemm", path, "64", "64", "64"], capsys, *words)


def test_slow_dram_gives_honest_large_counts(tmp_path, capsys):
    """The slowest DRAM and longest latency allowed: cycle counts are huge, exact and never
    negative (no int64 wrap); a GEMM whose cycles could pass 2^61 is refused instead."""
    path = array_file(tmp_path, ("bytes_per_cycle = 32", "bytes_per_cycle = 0.0009765625"),
                      ("latency_cycles = 100", "latency_cycles = 4294967296"))
    report = hbfpsim.array.simulate(hbfpsim.array.load(path), 4096, 64, 64)
    # every fold's A tile (4096 x 32 HBFP4: 67584 bytes) passes the 2^-10 byte/cycle channel
    assert report.prefetch_cycles == (67584 + 528) * 1024 + 4294967296
    assert report.total_cycles == report.compute_cycles + report.stall_cycles
    assert min(report.stalls.values()) >= 0 and report.drain_cycles >= 0
    assert report.stall_cycles > 3 * 2**32                 # three later folds wait a latency each
    assert report.utilization == 4096 * 64 * 64 / (report.total_cycles * 32 * 32)
    rejected(["gemm", path, "1099511627776", "4096", "64"], capsys, "beyond the 2^61")


def test_block_accumulator_needs_block_operands(tmp_path, capsys):
    """A fixed-point block accumulator with FP32 operands is refused, by gemm and by cost
    array alike (both read the same plan)."""
    path = array_file(tmp_path, ('input = "hbfp4"', 'input = "fp32"'),
                      ('weight = "hbfp4"', 'weight = "fp32"'))
    for argv in (["gemm", path, "8", "8", "8"], ["cost", "array", path]):
        rejected(argv, capsys, path, "[numerics] block_accumulator", "input is fp32",
                 "remove block_accumulator")


def test_simpy_engine_has_a_fold_limit(capsys):
    rejected(["gemm", "array32", "1", "1", str(32 * 2**20 + 1), "--engine", "simpy"], capsys,
             "simpy engine times at most 1,048,576 folds", "the fast engine")


# --- formats, quantize, matmul ----------------------------------------------------------------

def test_block_sizes_are_bounded(capsys):
    rejected(["formats", "hbfp4@100000000000000000000"], capsys, "block size must be in")
    with pytest.raises(ValueError, match=r"block size must be in \[1, 1048576\]"):
        hbfpsim.quantize(np.ones(4), "hbfp4@100000000000000000000")


def test_int8_of_values_beyond_float32_is_an_error_not_nans():
    with pytest.raises(ValueError, match=r"int8: max\|x\| = 1e\+300 is beyond float32's range"):
        hbfpsim.quantize(np.float64([1e300, 1.0]), "int8")
    q = hbfpsim.quantize(np.float64([3e38, 1.0]), "int8")          # within range: quantized
    assert np.isfinite(q).all() and q[1] == 0.0 and q[0] == pytest.approx(3e38, rel=1e-6)


@pytest.mark.parametrize("m,k,n", [(0, 64, 5), (3, 64, 0), (0, 0, 0), (3, 0, 5)])
@pytest.mark.parametrize("fmt,plan", [("hbfp4", "fixed16*64 > fp32"), ("fp8_e4m3", "fp32"),
                                      ("int8", "fixed32")])
def test_empty_products_are_empty_or_zero(m, k, n, fmt, plan):
    out, stats = hbfpsim.matmul(np.zeros((m, k), np.float32), np.ones((k, n), np.float32),
                                fmt, plan=plan)
    assert out.shape == (m, n) and out.dtype == np.float64 and not out.any()
    assert stats.shape == (m, n, k)
    assert all(lv.overflows == 0 for lv in stats.levels)


# --- figures, density, synthesis, calibration ---------------------------------------------------

@pytest.mark.parametrize("out", ["noext", "", ".png", "density.txt", "dir/.svg"])
def test_plot_needs_a_figure_file_name(here, capsys, out):
    rejected(["plot", "density", "--out", out], capsys, "a figure file is a name ending in .png")
    assert list(here.iterdir()) == []


def test_plot_onto_a_folder_is_refused_before_drawing(here, capsys):
    (here / "d.png").mkdir()
    rejected(["plot", "density", "--out", "d.png"], capsys, "d.png: is a folder")
    assert [p.name for p in here.iterdir()] == ["d.png"] and not any((here / "d.png").iterdir())


def test_density_accumulator_for_a_format_not_shown(capsys):
    rejected(["density", "hbfp4", "--acc", "mxfp4=fixed16"], capsys,
             "accumulator is given for mxfp4, which is not in the table")
    assert cli.main(["density", "hbfp4", "--acc", "hbfp4=fixed14", "--no-booster"]) == 0
    assert "fixed14" in capsys.readouterr().out


def test_saturating_and_wrapping_accumulators_synthesize_differently():
    sat, wrap = (rtl.pe_for(get("hbfp4"), parse_accumulator(a))
                 for a in ("fixed16:sat", "fixed16:wrap"))
    assert sat != wrap and "acc + t" in wrap and "next_s[16] == next_s[15]" in sat
    assert rtl.pe_for(get("hbfp4"), parse_accumulator("fixed16")) == sat     # sat: the default


def test_calibrate_writes_to_the_working_folder_not_the_package(here, capsys, monkeypatch):
    shipped = calibrate.FITTED.read_bytes()
    seen = {}

    def fake(out, progress):
        seen["out"] = out
        with open(out, "w") as f:
            f.write("{}\n")
        return {}
    monkeypatch.setattr(calibrate, "calibrate", fake)
    monkeypatch.setattr(calibrate, "summary", lambda result: "fitted")
    assert cli.main(["cost", "calibrate"]) == 0
    assert seen["out"] == "fitted.json" and (here / "fitted.json").read_text() == "{}\n"
    assert calibrate.FITTED.read_bytes() == shipped
    assert "wrote fitted.json" in capsys.readouterr().out


# --- pipes (a subprocess: the real process; signals: test_run_cli.py, test_bad_trace.py) ------

def test_a_closed_pipe_ends_quietly(tmp_path):
    """``hbfpsim gemm ... --events | head -1``: the reader leaves early; no message, status 0."""
    script = (f"{sys.executable} -m hbfpsim gemm array32 3136 64 576 --events | head -1; "
              "echo status=${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.stdout.splitlines()[0].startswith("array32: 32 x 32 WS")
    assert done.stdout.splitlines()[-1] == "status=0" and done.stderr == ""


# --- found by the hostile-input catalogue (tests/hostile.py) ------------------------------------

@pytest.mark.parametrize("argv,words", [
    (["gemm", "array32", "1", "1"], ["hbfpsim gemm: the following arguments are required: K",
                                     "(see hbfpsim gemm --help)"]),
    (["cost", "nonsense"], ["hbfpsim cost: argument ACTION: invalid choice: 'nonsense'"]),
    (["trace", "import-scalesim", "t.csv", "out", "--batch", "nan"],
     ["argument --batch: invalid int value: 'nan'"]),
    (["formats", "hbfp\u0664"], ["unknown format 'hbfp\u0664'"]),          # an Arabic-Indic 4
    (["cost", "mac", "hbfp4", "--acc", "fixed\u0661\u0666"], ["unknown accumulator"]),
    (["density", "hbfp\uff14"], ["unknown format"]),                         # a full-width 4
])
def test_usage_errors_and_lookalike_digits_are_one_line(here, capsys, argv, words):
    rejected(argv, capsys, *words)
    assert list(here.iterdir()) == []


def test_help_still_exits_0(capsys):
    assert cli.main(["--help"]) == 0 and "usage: hbfpsim" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["hbfp4", "mxfp4", "int8", "fp8_e4m3"])
def test_big_endian_arrays_are_the_same_numbers(fmt):
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    assert np.array_equal(hbfpsim.quantize(x.astype(">f4"), fmt), hbfpsim.quantize(x, fmt))
    b = np.ones((64, 3), np.float32)
    assert np.array_equal(hbfpsim.matmul(x.astype(">f4"), b, fmt).out,
                          hbfpsim.matmul(x, b, fmt).out)


def quickstart(here) -> str:
    """The quickstart run file with absolute trace paths, in the test's folder."""
    text = (Path(__file__).parents[1] / "configs" / "quickstart.toml").read_text()
    traces = Path(__file__).parents[1] / "traces"
    (here / "q.toml").write_text(text.replace('"../traces/', f'"{traces}/'))
    return "q.toml"


@pytest.mark.parametrize("out,words", [
    ("TRACE", "would replace"), ("TRACE/operands", "would replace"), ("HERE", "would replace"),
    (".", "not a file or folder name"), ("..", "not a file or folder name")])
def test_a_run_never_replaces_what_it_reads(here, capsys, out, words):
    """Not even with --force: the trace, a folder inside it, the working folder."""
    run = quickstart(here)
    trace = Path(__file__).parents[1] / "traces" / "cnn_digits"
    before = sorted(p.name for p in (trace / "operands").iterdir())
    out = out.replace("TRACE", str(trace)).replace("HERE", str(here))
    rejected(["run", run, "--out", out, "--force", "--quiet"], capsys, words)
    assert sorted(p.name for p in (trace / "operands").iterdir()) == before
    assert [p.name for p in here.iterdir()] == ["q.toml"]


def test_variant_names_fit_in_a_file_name(here, capsys):
    run = quickstart(here)
    (here / run).write_text((here / run).read_text().replace('name = "fp32"',
                                                             f'name = "{"x" * 65}"', 1))
    rejected(["run", run, "--quiet"], capsys, "[[variant]]", "name: expected 1 to 64 ASCII")


def test_a_capture_script_that_exits_is_an_error(here, capsys):
    pytest.importorskip("torch")
    (here / "s.py").write_text("import sys\n\ndef main(capture):\n    sys.exit(0)\n")
    rejected(["capture", "s.py", "--out", "t"], capsys, "s.py: exited (sys.exit(0))")
    assert [p.name for p in here.iterdir()] == ["s.py"]


def test_an_empty_verilog_name_is_refused(capsys):
    rejected(["cost", "synth", "hbfp4", "--acc", "fixed16", "--verilog", ""], capsys,
             "not a file or folder name")


@pytest.mark.parametrize("parts", [[(float("inf"), 1.0)], [(2.0, float("nan"))],
                                   [(float("nan"), 1.0)], [(2.0, 0.0)], [(-1.0, 1.0)]])
def test_mixed_density_needs_finite_positive_parts(parts):
    from hbfpsim.cost.density import mixed_density
    with pytest.raises(ValueError, match="finite positive densities"):
        mixed_density(parts)
    assert mixed_density([(2.0, 1), (4.0, 1)]) == pytest.approx(8 / 3)   # by hand: 2 / (1/2 + 1/4)


@pytest.mark.parametrize("kwargs,error", [
    ({"layers": "fc"}, ValueError), ({"layers": ()}, ValueError), ({"layers": (1,)}, ValueError),
    ({"epochs": None}, ValueError), ({"phases": ("FWD",)}, ValueError)])
def test_rules_check_their_fields(kwargs, error):
    from hbfpsim.numerics import Numerics
    from hbfpsim.format_schedule import Rule
    with pytest.raises(error, match="rule"):
        Rule(Numerics.create("hbfp6"), **kwargs)
    with pytest.raises(TypeError, match="expected a Numerics"):
        Rule("hbfp6")


@pytest.mark.parametrize("call", [
    lambda: hbfpsim.array.load(None), lambda: hbfpsim.array.load(5),
    lambda: hbfpsim.trace.open(None), lambda: hbfpsim.replay.load(5),
    lambda: hbfpsim.array.simulate("array32", 8, 8, 8)])
def test_wrong_argument_types_say_what_was_expected(call):
    with pytest.raises(TypeError, match="must be a path|expected an ArrayConfig"):
        call()


# --- one definition of an integer and a number (hbfpsim.validate) ------------------------------

def test_a_number_too_large_for_a_float_is_out_of_range(tmp_path, capsys):
    """A 401-digit integer where a number goes: a ConfigError naming the key, not an
    OverflowError from converting it to float."""
    path = array_file(tmp_path, ("input_kib = 64", "input_kib = 1" + "0" * 400))
    rejected(["gemm", path, "64", "64", "64"], capsys, path, "[buffers] input_kib",
             "a positive number up to 2^40")


def test_a_learning_rate_too_large_for_a_float_is_out_of_range():
    pytest.importorskip("torch")
    from hbfpsim.config import ConfigError
    from hbfpsim.train import spec
    with pytest.raises(ConfigError, match=r"\[train\] lr: expected a number in \(0, 10\]"):
        spec.parse({"train": {"task": "digits", "variants": ["fp32"], "lr": 10**400}})


@pytest.mark.parametrize("table,message", [
    ({"task": ["digits"]}, "task: expected one of digits, text, got ['digits']"),   # a list
    ({"capture": {"path": "t", "seed": 0.0}},                                      # a float
     "capture seed: expected one of the run's seeds [0], got 0.0"),
])
def test_training_run_keys_of_the_wrong_type(table, message):
    pytest.importorskip("torch")
    from hbfpsim.config import ConfigError
    from hbfpsim.train import spec
    with pytest.raises(ConfigError) as err:
        spec.parse({"train": {"task": "digits", "variants": ["fp32"], **table}}, source="r.toml")
    assert message in str(err.value) and "r.toml" in str(err.value)


def test_a_landscape_seed_is_an_integer_seed_of_the_run():
    pytest.importorskip("torch")
    from hbfpsim.train import landscape, spec
    run = spec.parse({"train": {"task": "digits", "variants": ["fp32"]}})
    with pytest.raises(ValueError, match=r"^seed: expected one of the run's seeds \[0\], got 0.0"):
        landscape.landscape(run, seed=0.0)


@pytest.mark.parametrize("length", [2.5, True])
def test_plan_chunk_lengths_are_integers(length):
    """A level built from code with a fractional or boolean chunk length."""
    from hbfpsim.mac import parse_accumulator
    from hbfpsim.mac.plan import AccumulationPlan, Level
    fp32 = parse_accumulator("fp32")
    with pytest.raises(ValueError, match=r"level 1 needs a chunk length in \[1, 2\^40\]"):
        AccumulationPlan((Level(fp32, length), Level(fp32)))


def test_vrr_arguments_of_the_wrong_type():
    from hbfpsim.accuracy.vrr import min_mantissa_bits
    from hbfpsim.plots.vrr import vrr_figure
    with pytest.raises(ValueError, match="max_lost=True: expected a positive number"):
        min_mantissa_bits(64, max_lost=True)
    with pytest.raises(ValueError, match="budget: expected a positive number of MACs"):
        vrr_figure(budget=None)            # plot_vrr always measures


def test_numpy_integers_are_integers():
    """Where an integer goes, a NumPy one works as a Python one: rule epochs, the emulation's
    seed (stochastic rounding streams), plan lengths."""
    from hbfpsim.mac.plan import as_plan
    from hbfpsim.numerics import Numerics
    from hbfpsim.format_schedule import Rule, RunContext
    rule = Rule(Numerics.create("hbfp6"), epochs=(np.int64(1), "last"))
    assert rule.matches("fc", "fwd", 2, RunContext(last_epoch=5))
    assert str(as_plan([(np.int64(64), "fixed16"), (None, "fp32")])) == "fixed16*64 > fp32"
    torch = pytest.importorskip("torch")
    from hbfpsim.train import emulate
    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    emulate(model, "hbfp4", seed=np.int64(3), rounding="stochastic")
    assert model(torch.ones(2, 8)).shape == (2, 8)
