"""The cost model: published relations, the component tables it is built on, the accumulator
axis, energy and the array level. Oracles read the shipped tables directly (csv), not through
hbfpsim.cost.components."""

import math
from dataclasses import replace

import numpy as np
import pytest

from hbfpsim.array import simulate
from hbfpsim.config import ArrayConfig
from hbfpsim.cost import array_cost, components, density_table, gemm_energy, mac_cost, width_sweep
from hbfpsim.formats import get
from helpers import table_28nm


def density(fmt: str, acc: str | None = None) -> float:
    return mac_cost("fp32").area / mac_cost(fmt, acc).area


# --- the published relations (Accuracy Booster, arXiv 2211.10737; the EPFL 28 nm table) ----

def test_hbfp4_density_is_17_to_25_times_fp32():
    assert 17 <= density("hbfp4") <= 25
    # with the published unit's 2m-bit block accumulator (EPFL model: SInt(2 * 4)), 21-25x
    assert 21 <= density("hbfp4", "fixed8") <= 25


def test_hbfp4_density_is_3_3_to_4_4_times_bf16():
    assert 3.3 <= mac_cost("bf16").area / mac_cost("hbfp4").area <= 4.4


@pytest.mark.parametrize("mxfp6", ["mxfp6_e3m2", "mxfp6_e2m3"])
def test_hbfp4_density_is_about_2_3_times_mxfp6(mxfp6):
    assert mac_cost(mxfp6).area / mac_cost("hbfp4").area == pytest.approx(2.3, rel=0.20)


def test_hbfp4_stores_about_a_third_less_than_mxfp6():
    saving = 1 - get("hbfp4").storage_bits / get("mxfp6_e3m2").storage_bits
    assert saving == pytest.approx(0.33, abs=0.02)


def test_fp32_mac_is_about_4_8_times_bf16():
    t = table_28nm()
    fp32 = t[("fp_mult", "fp32", 32, "")] + t[("fp_add", "fp32", 32, "")]
    bf16 = t[("fp_mult", "bf16", 16, "")] + t[("fp_add", "bf16", 16, "")]
    assert fp32 / bf16 == pytest.approx(4.8, rel=0.02)                  # the table itself
    assert mac_cost("fp32").area / mac_cost("bf16").area == pytest.approx(4.8, rel=0.10)


def test_narrow_accumulators_cut_mac_area_1_5_to_2_2x():
    """Sakr et al. (ICLR 2019): a 32-bit accumulator against the narrowest exact one."""
    assert 1.5 <= mac_cost("hbfp4", "fixed32").area / mac_cost("hbfp4").area <= 2.2


# --- the accumulator axis ------------------------------------------------------------------

def test_halving_the_hbfp4_accumulator_changes_area_as_the_table_implies():
    t, block = table_28nm(), 64
    adder = t[("int_add", "signed", 16, "")] - t[("int_add", "signed", 8, "")]
    conv = {b: a for (c, _, b, _), a in t.items() if c == "fixed_exp_to_fp"}
    slope = np.polyfit(list(conv), list(conv.values()), 1)[0]         # the converter's line
    expected = adder * (block - 1) / block + slope * 8 / block
    saved = mac_cost("hbfp4", "fixed16").area - mac_cost("hbfp4", "fixed8").area
    assert saved == pytest.approx(expected, rel=1e-9)
    assert saved == pytest.approx(18.85, abs=0.01)   # 18.468 x 63/64 + 8 x 5.4 / 64 um^2
    sweep = dict(width_sweep(["hbfp4"], [8, 16])["hbfp4@64"])          # what the plot draws
    base = mac_cost("fp32").area
    assert base / sweep[16] - base / sweep[8] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("fmt", ["hbfp4", "hbfp6", "hbfp8", "int8", "mxfp4", "mxfp6_e2m3"])
def test_density_falls_with_every_accumulator_bit(fmt):
    values = [d for _, d in next(iter(width_sweep([fmt], range(8, 33)).values()))]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_default_accumulators_are_exact():
    """HBFP: 64 products of two 3-bit magnitudes need 6 + 6 bits plus a sign; MX: the whole
    product exponent range (E3M2 elements: 2^-2..2^4 with 3-bit significands) plus 5 + 1."""
    assert str(mac_cost("hbfp4").accumulator) == "fixed13"
    assert str(mac_cost("hbfp8@16").accumulator) == "fixed19"
    assert str(mac_cost("mxfp6_e3m2").accumulator) == "fixed24"         # 6 + 12 + 5 + 1
    assert str(mac_cost("mxfp8_e5m2").accumulator) == "fixed64"         # capped: 6 + 58 + 6 > 64
    assert str(mac_cost("fp8_e4m3").accumulator) == "fp16"


def test_block_parts_are_amortized_over_the_block():
    small, large = mac_cost("hbfp4@16"), mac_cost("hbfp4@64", "fixed11")
    assert str(small.accumulator) == "fixed11"
    assert small.parts["FP32 accumulator"] == pytest.approx(4 * large.parts["FP32 accumulator"])
    assert small.parts["multiplier"] == large.parts["multiplier"]


def test_wrong_accumulator_kinds_are_rejected():
    with pytest.raises(ValueError, match="floating-point accumulator"):
        mac_cost("fp32", "fixed16")
    with pytest.raises(ValueError, match="fixed-point accumulator"):
        mac_cost("hbfp4", "fp32")
    with pytest.raises(ValueError, match=r"width must be in \[8, 64\]"):
        mac_cost("hbfp4", "fixed4")                                     # below 8 bits
    with pytest.raises(ValueError, match="unknown format"):
        mac_cost("fp7")


# --- the density table ---------------------------------------------------------------------

def test_density_table_has_every_format_and_the_booster_mix():
    rows = {r.format: r for r in density_table()}
    for name in ("fp32", "bf16", "fp16", "fp8_e4m3", "int8", "mxfp8_e4m3", "mxfp6_e3m2",
                 "mxfp4", "mxint8", "hbfp8@64", "hbfp6@64", "hbfp4@64"):
        assert name in rows
    assert rows["fp32"].density == 1.0
    mix = next(r for name, r in rows.items() if name.startswith("booster"))
    d4, d6 = rows["hbfp4@64"].density, rows["hbfp6@64"].density
    assert mix.density == pytest.approx(1 / (0.99 / d4 + 0.01 / d6))   # area-time weighted
    assert d6 < mix.density < d4


def test_booster_shares_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        density_table(["fp32"], booster={"hbfp4": 0.9, "hbfp6": 0.2})


# --- components against the tables --------------------------------------------------------

def test_components_reproduce_the_table_where_it_has_entries():
    t = table_28nm()
    assert components.int_mult(7) == t[("int_mult", "signed", 7, "")]
    assert components.int_add(13) == t[("int_add", "signed", 13, "")]
    assert components.fp_mult(8, 7) == t[("fp_mult", "bf16", 16, "")]
    assert components.fp_accumulator(5, 10) == t[("fp_accumulator", "fp16", 16, "")]


def test_component_fits_stay_within_their_stated_error():
    t = table_28nm()
    # beyond the table, the multiplier follows a n^2 (within 4 % of the 8-16-bit entries) ...
    a = components.int_mult(20) / 400
    assert all(abs(a * n * n / t[("int_mult", "signed", n, "")] - 1) < 0.04 for n in range(8, 17))
    # ... and the adder a line (within 0.1 % of the 4-16-bit entries)
    slope = components.int_add(40) - components.int_add(39)
    assert slope == pytest.approx(2.31, abs=0.01)
    # FP fits (for formats the table lacks) within 2 % of each table format
    coef, _ = components._fp_fit("fp_mult", lambda e, m: ((m + 1) ** 2, e, 1))
    for (e, m), name in components._FP_NAMES.items():
        table = t[("fp_mult", name, 1 + e + m, "")]
        assert coef @ [(m + 1) ** 2, e, 1] == pytest.approx(table, rel=0.02)
    assert components.fp_mult(4, 3) < components.fp_mult(5, 10) < components.fp_mult(8, 23)
    conv = {b: a for (c, _, b, _), a in t.items() if c == "fixed_exp_to_fp"}
    assert all(components.fixed_to_fp(b) == pytest.approx(a, rel=0.02) for b, a in conv.items())


def test_energy_scaling_from_45_nm_is_as_documented():
    horowitz = [(0.03, 36), (0.05, 67), (0.1, 137), (0.2, 282), (3.1, 3495)]  # int add, mult
    per_area_45 = np.mean([e / a for e, a in horowitz])
    scale = (28 / 45) * (0.81 / 0.9) ** 2                   # C ~ feature size, E = C V^2
    assert components.energy_scale() == pytest.approx(scale)
    assert components.logic_energy_density() == pytest.approx(per_area_45 * scale / (28 / 45) ** 2)
    # SRAM: Horowitz's 64-bit reads (10, 20, 100 pJ at 8 KB, 32 KB, 1 MB); the power-law fit
    # passes within 2.2 % of each
    for kib, pj in ((8, 10), (32, 20), (1024, 100)):
        assert components.sram_energy_per_bit(kib) == pytest.approx(pj / 64 * scale, rel=0.03)
    sizes = [1, 8, 64, 512, 4096]
    energies = [components.sram_energy_per_bit(k) for k in sizes]
    assert energies == sorted(energies)
    assert components.DRAM_PJ_PER_BIT == 1300 / 64


def test_mac_energy_is_area_times_the_energy_density():
    mac = mac_cost("mxfp4")
    assert mac.energy == pytest.approx(mac.area * components.logic_energy_density())
    assert mac_cost("hbfp4").energy < mac_cost("bf16").energy < mac_cost("fp32").energy


# --- the array level -----------------------------------------------------------------------

HBFP4_ARRAY = ArrayConfig(rows=16, cols=16, dataflow="ws", input="hbfp4", weight="hbfp4",
                          block_accumulator="fixed16", accumulator="fp32", input_kib=32,
                          weight_kib=32, output_kib=32, dram_bytes_per_cycle=16)


def test_array_area_is_pes_plus_edge_plus_sram():
    cost = array_cost(HBFP4_ARRAY)
    mac = mac_cost("hbfp4", "fixed16")
    assert cost.pe == pytest.approx(mac.area + components.register(16))
    assert cost.pes == pytest.approx(256 * cost.pe)
    assert cost.edge == pytest.approx(components.fp_to_bfp(4, 64))     # ceil(16 / 64) converters
    assert cost.sram == pytest.approx(192518.5536)        # 96 KiB x 8192 bits x 0.2448 um^2
    assert cost.area == pytest.approx(cost.pes + cost.edge + cost.sram)
    wide = array_cost(replace(HBFP4_ARRAY, cols=130))
    assert wide.edge == pytest.approx(3 * cost.edge)                   # ceil(130 / 64)


def test_mixed_operands_are_costed_as_the_dearer_format():
    mixed = ArrayConfig(rows=8, cols=8, dataflow="ws", input="hbfp4", weight="hbfp8",
                        block_accumulator="fixed24")
    assert array_cost(mixed).mac.format.name == "hbfp8@64"


def test_the_pe_accumulator_follows_the_configuration():
    int8 = ArrayConfig(rows=8, cols=8, dataflow="os", input="int8", weight="int8",
                       accumulator="fixed24")
    pe_accumulator = lambda config: str(array_cost(config).mac.accumulator)  # noqa: E731
    assert pe_accumulator(int8) == "fixed24"
    assert pe_accumulator(replace(int8, accumulator="fp32")) == "fixed32"          # exact
    assert pe_accumulator(replace(HBFP4_ARRAY, block_accumulator=None)) == "fixed13"
    with pytest.raises(ValueError, match=r"<code>: \[numerics\] input: .*floating-point"):
        array_cost(replace(int8, input="bf16", weight="bf16", accumulator="fixed24"))


def test_gemm_energy_adds_compute_sram_and_dram():
    config = replace(HBFP4_ARRAY, input_kib=8, weight_kib=32, output_kib=1024)
    report = simulate(config, 200, 96, 300)
    energy = gemm_energy(config, report)
    cost = array_cost(config)
    assert energy.compute == pytest.approx(200 * 96 * 300 * cost.pe
                                              * components.logic_energy_density())
    per_bit = {"input": 8, "weight": 32, "output": 1024}       # each buffer at its own size
    assert energy.sram == pytest.approx(sum(
        8 * (v["reads"] + v["writes"]) * components.sram_energy_per_bit(per_bit[b])
        for b, v in report.sram.items()))
    dram_bytes = report.dram["reads"] + report.dram["writes"]
    assert energy.dram == pytest.approx(8 * dram_bytes * 1300 / 64)
    assert energy.total == pytest.approx(energy.compute + energy.sram + energy.dram)


def test_a_narrower_format_costs_less_energy_for_the_same_gemm():
    fp32 = replace(HBFP4_ARRAY, input="fp32", weight="fp32", block_accumulator=None)
    narrow = gemm_energy(HBFP4_ARRAY, simulate(HBFP4_ARRAY, 128, 64, 256))
    wide = gemm_energy(fp32, simulate(fp32, 128, 64, 256))
    for part in ("compute", "dram", "total"):
        assert getattr(narrow, part) < getattr(wide, part), part
    assert math.isfinite(wide.total)
