"""Array configurations: the shipped presets load; bad input names file, key and expectation."""

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hbfpsim.array import load, simulate
from hbfpsim.config import SCHEMA, ArrayConfig, ConfigError, from_dict

CONFIGS = Path(__file__).resolve().parents[1] / "hbfpsim" / "presets"


@pytest.mark.parametrize("name,rows,compute", [
    ("small16", 16, 214272),     # WS, M N K = 512 256 384: 24 x 16 folds x (32 + 16 + 510)
    ("array32", 32, 58176),      # 12 x 8 folds x (64 + 32 + 510)
    ("tpu128", 128, 5364),       # 3 x 2 folds x (256 + 128 + 510)
    ("array256", 256, 2556)])    # 2 x 1 folds x (512 + 256 + 510)
def test_presets(name, rows, compute):
    config = load(CONFIGS / f"{name}.toml")
    assert (config.rows, config.cols, config.dataflow) == (rows, rows, "ws")
    assert config.name == name and math.isfinite(config.dram_bytes_per_cycle)
    report = simulate(config, 512, 256, 384)
    assert report.compute_cycles == compute and report.total_cycles >= compute


def write(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


GOOD = """
[array]
rows = 8
cols = 8
dataflow = "ws"
[buffers]
input_kib = 1
weight_kib = 1
output_kib = 1
[dram]
bytes_per_cycle = 8
"""


def test_minimal_file_and_defaults(tmp_path):
    config = load(write(tmp_path, GOOD))
    assert (config.input, config.accumulator, config.double_buffered, config.dram_latency_cycles,
            config.sram_bytes_per_cycle) == ("fp32", "fp32", True, 0, 0)


@pytest.mark.parametrize("edit,message", [
    (("rows = 8", "rows = 0"), r"\[array\] rows: expected an integer in \[1, 65536\], got 0"),
    (("rows = 8", "rows = 8.5"), r"\[array\] rows: expected an integer in \[1, 65536\], got 8.5"),
    (("rows = 8", "rows = 1000000000"), r"\[array\] rows: expected an integer in \[1, 65536\]"),
    (("rows = 8", "rows = true"),
     r"\[array\] rows: expected an integer in \[1, 65536\], got True"),
    (("dataflow = \"ws\"", "dataflow = \"rs\""), r"\[array\] dataflow: expected one of 'ws', 'os', 'is'"),
    (("cols = 8\n", ""), r"\[array\] cols is missing: expected an integer in \[1, 65536\]"),
    (("[dram]", "[dram]\nbandwidth = 3"), r"\[dram\] unknown key 'bandwidth' \(expected one of "
                                          r"bytes_per_cycle, latency_cycles\)"),
    (("[dram]", "[memory]\nx = 1\n[dram]"), r"unknown section \[memory\]"),
    (("bytes_per_cycle = 8", "bytes_per_cycle = -1"),
     r"\[dram\] bytes_per_cycle: expected a number in \[2\^-10, 2\^40\] \(bytes/cycle\), got -1"),
    (("bytes_per_cycle = 8", "bytes_per_cycle = 1e-300"),
     r"\[dram\] bytes_per_cycle: .* got 1e-300"),
    (("bytes_per_cycle = 8", "bytes_per_cycle = nan"), r"\[dram\] bytes_per_cycle: .* got nan"),
    (("bytes_per_cycle = 8", "bytes_per_cycle = 8\nlatency_cycles = 9223372036854775807"),
     r"\[dram\] latency_cycles: expected an integer in \[0, 2\^32\] \(cycles\)"),
    (("[buffers]", "[buffers]\nsram_bytes_per_cycle = 1e-300"),
     r"\[buffers\] sram_bytes_per_cycle: expected 0 \(unlimited\) or a number in \[2\^-10"),
    (("input_kib = 1", "input_kib = 1e300"), r"\[buffers\] input_kib: expected a positive number "
                                             r"up to 2\^40 \(KiB\), got 1e\+300"),
    (("[array]", "[array]\nclock_ghz = 1e9"),
     r"clock_ghz: expected a number in \(0, 100\] \(GHz\)"),
    (("rows = 8", "rows = "), "not valid TOML"),
    (("[array]", "[array]\nclock_ghz = \"fast\""), r"clock_ghz: expected a number in \(0, 100\]"),
    (("[buffers]", "[buffers]\ndouble_buffered = 1"), "double_buffered: expected true or false"),
    (("[array]", "[numerics]\ninput = \"hbfp99\"\n[array]"), r"\[numerics\] input: hbfp99: mantissa"),
    (("[array]", "[numerics]\noutput = \"fp33\"\n[array]"), r"\[numerics\] output: unknown accumulator"),
    (("[array]", "[numerics]\nblock_accumulator = \"fp16\"\n[array]"),
     r"block_accumulator: expected a fixed-point accumulator"),
    (("[array]", "[numerics]\nblock_accumulator = \"fixed16\"\n[array]"),
     r"block_accumulator: sums products in fixed point .* input is fp32: remove block_accumulator"),
])
def test_bad_files_say_where_and_what(tmp_path, edit, message):
    path = write(tmp_path, GOOD.replace(*edit, 1))
    with pytest.raises(ConfigError, match=message) as err:
        load(path)
    assert str(path) in str(err.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="no such configuration file"):
        load("does/not/exist.toml")


def test_programmatic_configs_are_validated_too():
    with pytest.raises(ConfigError, match=r"<code>: \[buffers\] input_kib"):
        ArrayConfig(rows=4, cols=4, dataflow="ws", input_kib=0)
    assert from_dict({"array": {"rows": 2, "cols": 3, "dataflow": "os"},
                      "buffers": {"input_kib": 1, "weight_kib": 1, "output_kib": 1},
                      "dram": {"bytes_per_cycle": 4}}).cols == 3


def test_a_buffer_smaller_than_one_tile_is_refused(tmp_path):
    """8 x 8 fp32 partial sums need 256 bytes; 0.125 KiB (128 bytes) cannot feed the array."""
    config = load(write(tmp_path, GOOD.replace("output_kib = 1", "output_kib = 0.125")))
    with pytest.raises(ValueError, match=r"bad.toml: \[buffers\] output_kib = 0.125 holds less "
                                         r"than one 8 x 8 tile \(256 bytes at 32 bits"):
        simulate(config, 8, 8, 8)
    config = load(write(tmp_path, GOOD.replace("output_kib = 1", "output_kib = 0.25")))
    assert simulate(config, 8, 8, 8).total_cycles > 0      # exactly one tile: accepted


# --- fuzz: whatever the file holds, only ConfigError comes out ---------------------------------

LEAVES = (st.none() | st.booleans() | st.integers() | st.floats()
          | st.text(max_size=12) | st.sampled_from(["hbfp4", "fixed16", "fp32", "ws", "mxfp4"]))
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
KEYS = st.sampled_from([k for keys in SCHEMA.values() for k in keys] + ["bandwidth", ""])
SECTIONS = st.dictionaries(st.sampled_from([*SCHEMA, "memory"]),
                           st.dictionaries(KEYS, VALUES, max_size=6) | VALUES, max_size=5)


def good_with(section: str, key: str, value) -> dict:
    data = {"array": {"rows": 4, "cols": 4, "dataflow": "ws"},
            "buffers": {"input_kib": 1, "weight_kib": 1, "output_kib": 1},
            "dram": {"bytes_per_cycle": 4}}
    data.setdefault(section, {})[key] = value
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SECTIONS)
def test_fuzz_random_structures_raise_only_config_errors(data):
    try:
        config = from_dict(data)
    except ConfigError:
        return
    simulate(config, 3, 5, 7)          # a structure that validates also times


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([(s, k) for s, keys in SCHEMA.items() for k in keys]), VALUES)
def test_fuzz_every_key_with_random_values(where, value):
    """One key of a good file replaced by anything: a ConfigError naming that key, or a
    configuration the array model times (a buffer too small for a tile: a ValueError)."""
    section, key = where
    try:
        config = from_dict(good_with(section, key, value))
    except ConfigError as err:
        assert f"[{section}] {key}" in str(err)
        return
    try:
        report = simulate(config, 3, 5, 7)
    except ValueError as err:
        assert "[buffers]" in str(err) or "[numerics]" in str(err), err
        return
    assert report.total_cycles >= report.compute_cycles > 0


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzz_file_bytes_raise_only_config_errors(tmp_path, content):
    path = tmp_path / "fuzz.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match="fuzz.toml"):
        load(path)


def test_varied_equals_replace_for_checked_values():
    """``ArrayConfig.varied`` skips the checks a sweep has already made, and builds the same
    configuration ``dataclasses.replace`` does (equal, same hash, same fields)."""
    from dataclasses import asdict, replace
    from hbfpsim.array import load
    base = load("array32")
    values = {"rows": 64, "cols": 16, "dataflow": "os", "dram_bytes_per_cycle": 8.0}
    got = base.varied(values, "swept", "s.toml")
    want = replace(base, **values, name="swept", source="s.toml")
    assert got == want and hash(got) == hash(want) and asdict(got) == asdict(want)
    assert got.source == "s.toml" and base.rows == 32          # the base is unchanged
