"""`hbfpsim density`, `hbfpsim plot density`, `hbfpsim cost mac|array` and the energy line of
`hbfpsim gemm`."""

import re
from pathlib import Path

import pytest

from hbfpsim import cli
from hbfpsim.cost import components, mac_cost
from helpers import table_28nm

SMALL16 = str(Path(__file__).resolve().parents[1] / "hbfpsim" / "presets" / "small16.toml")


def rows(out: str) -> dict[str, list[str]]:
    table = out.split("\n\n")[0].splitlines()
    return {line[:28].strip(): line[28:].split() for line in table[1:]}


def test_density_prints_every_format_normalized_to_fp32(capsys):
    assert cli.main(["density"]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    assert len(table) == 16 and table["fp32"][-1] == "1.00x"
    assert table["hbfp4@64"][0] == "fixed13"
    assert float(table["hbfp4@64"][-1][:-1]) == round(mac_cost("fp32").area
                                                      / mac_cost("hbfp4").area, 2)
    assert any(name.startswith("booster 99% hbfp4 + 1% hbfp6") for name in table)
    sweep = out.split("\n\n")[1].splitlines()
    assert sweep[1].split() == ["format", "8", "12", "16", "20", "24", "28", "32"]


def test_density_takes_formats_and_accumulators(capsys):
    assert cli.main(["density", "hbfp4", "bf16", "--acc", "hbfp4=fixed16", "--no-booster"]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    assert list(table) == ["hbfp4@64", "bf16"] and table["hbfp4@64"][0] == "fixed16"
    assert [line.split()[0] for line in out.split("\n\n")[1].splitlines()[2:]] == ["hbfp4@64"]


def test_density_errors_are_one_line(capsys):
    for argv in (["density", "--acc", "hbfp4"], ["density", "--acc", "hbfp4=fp32"],
                 ["density", "fp7"]):
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, argv


def test_plot_density_writes_an_image(tmp_path, capsys):
    out = tmp_path / "density.png"
    assert cli.main(["plot", "density", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert str(out) in capsys.readouterr().out
    assert cli.main(["plot", "density", "--out", str(out.with_suffix(".svg"))]) == 0
    assert out.with_suffix(".svg").read_text().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["density.png", "density.svg"]
    assert cli.main(["plot", "density", "--out", str(out / "d.png")]) == 2     # under a file
    assert "is not a folder" in capsys.readouterr().err


def test_cost_mac_lists_the_parts(capsys):
    assert cli.main(["cost", "mac", "mxfp6_e3m2", "--acc", "fixed20"]) == 0
    out = capsys.readouterr().out
    for part in ("multiplier", "aligner", "negation", "adders", "FP32 accumulator", "total"):
        assert part in out
    t = table_28nm()        # E3M2 elements: a 3 x 3-bit significand multiplier, 4-bit exponent adder
    multiplier = t["int_mult", "signed", 3, ""] + t["int_add", "signed", 4, ""]
    assert f"  {'multiplier':<18} {multiplier:8.2f} um^2" in out
    assert f"  {'block exponent':<18} {t['int_add', 'signed', 9, ''] / 32:8.2f} um^2" in out
    assert f"{mac_cost('mxfp6_e3m2', 'fixed20').area:.2f} um^2" in out


def test_cost_array_and_gemm_energy(capsys):
    assert cli.main(["cost", "array", SMALL16]) == 0
    out = capsys.readouterr().out
    assert "small16: 16 x 16, hbfp4@64 MACs with a fixed16 accumulator" in out
    pe = mac_cost("hbfp4", "fixed16").area + components.register(16)
    assert f"PE                {pe:9.2f} um^2" in out
    assert f"PEs               {256 * pe / 1e6:9.4f} mm^2" in out
    assert "SRAM                 0.1925 mm^2 (96 KiB)" in out     # 96 x 8192 bits x 0.2448 um^2
    assert cli.main(["gemm", SMALL16, "64", "64", "64"]) == 0
    out = capsys.readouterr().out
    # by hand: 16 folds of 16 x 16; A (64 x 64 HBFP4 at 4.125 bits) and B fit their 32 KiB
    # buffers and load once, 2112 bytes each; the 64 x 16 FP32 partial sums of a column fold
    # (4096 bytes) stay on chip and are written once: 4 x 4096 bytes
    assert "DRAM bytes    reads 4224, writes 16384" in out
    total, compute, sram, dram = map(float, re.search(
        r"energy +(\S+) uJ = (\S+) compute \+ (\S+) SRAM \+ (\S+) DRAM", out).groups())
    assert dram == round((4224 + 16384) * 8 * 1300 / 64 / 1e6, 3)  # Horowitz: 1.3 nJ / 64 bits
    assert compute == pytest.approx(64**3 * pe * components.logic_energy_density() / 1e6,
                                    rel=1e-3)
    assert total == pytest.approx(compute + sram + dram, rel=1e-3) and 0 < sram < dram
    assert cli.main(["cost", "array", str(Path(SMALL16).with_name("missing.toml"))]) == 2
