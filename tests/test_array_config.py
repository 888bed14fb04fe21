"""Array configurations: the shipped presets load; bad input names file, key and expectation."""

import math
from pathlib import Path

import pytest

from hbfpsim.array import load, simulate
from hbfpsim.config import ArrayConfig, ConfigError, from_dict

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
    (("rows = 8", "rows = 0"), r"\[array\] rows: expected a positive integer, got 0"),
    (("rows = 8", "rows = 8.5"), r"\[array\] rows: expected a positive integer, got 8.5"),
    (("dataflow = \"ws\"", "dataflow = \"rs\""), r"\[array\] dataflow: expected one of 'ws', 'os', 'is'"),
    (("cols = 8\n", ""), r"\[array\] cols is missing: expected a positive integer"),
    (("[dram]", "[dram]\nbandwidth = 3"), r"\[dram\] unknown key 'bandwidth' \(expected one of "
                                          r"bytes_per_cycle, latency_cycles\)"),
    (("[dram]", "[memory]\nx = 1\n[dram]"), r"unknown section \[memory\]"),
    (("bytes_per_cycle = 8", "bytes_per_cycle = -1"), r"\[dram\] bytes_per_cycle: expected a positive"),
    (("rows = 8", "rows = "), "not valid TOML"),
    (("[array]", "[array]\nclock_ghz = \"fast\""), r"clock_ghz: expected a positive number \(GHz\)"),
    (("[buffers]", "[buffers]\ndouble_buffered = 1"), "double_buffered: expected true or false"),
    (("[array]", "[numerics]\ninput = \"hbfp99\"\n[array]"), r"\[numerics\] input: hbfp99: mantissa"),
    (("[array]", "[numerics]\noutput = \"fp33\"\n[array]"), r"\[numerics\] output: unknown accumulator"),
    (("[array]", "[numerics]\nblock_accumulator = \"fp16\"\n[array]"),
     r"block_accumulator: expected a fixed-point accumulator"),
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
