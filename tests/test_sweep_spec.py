"""Sweep specs: axes, ranges, constraints (parsed safely), run keys that are stable."""

import json
import shutil
from pathlib import Path

import pytest

from hbfpsim.config import ConfigError
from hbfpsim.sweep import load, parse
from hbfpsim.sweep.expr import Constraint

ROOT = Path(__file__).resolve().parents[1]
TRACE = str(ROOT / "traces" / "mlp_digits")


def spec(axes=None, variants=None, **sweep):
    data = {"sweep": {"traces": [TRACE], "base": "array32", **sweep},
            "axes": axes if axes is not None else {"rows": [16, 32]}}
    if variants is not None:
        data["variant"] = variants
    return parse(data, source="t.toml")


HBFP4 = {"name": "hbfp4", "input": "hbfp4", "block_accumulator": "fixed13"}
FP32 = {"name": "fp32", "input": "fp32"}


def test_axes_expand_in_order_with_ranges_and_sections():
    s = spec({"rows": {"start": 16, "stop": 64, "factor": 2},
              "cols": {"start": 8, "stop": 24, "step": 8},
              "dram": {"bytes_per_cycle": [16, 64]}}, [FP32, HBFP4])
    runs = s.runs()
    assert s.size == 2 * 3 * 3 * 2 == len(runs)
    assert [r.values for r in runs[:3]] == [
        {"variant": "fp32", "rows": 16, "cols": 8, "dram_bytes_per_cycle": 16},
        {"variant": "fp32", "rows": 16, "cols": 8, "dram_bytes_per_cycle": 64},
        {"variant": "fp32", "rows": 16, "cols": 16, "dram_bytes_per_cycle": 16}]
    last = runs[-1]
    assert last.values == {"variant": "hbfp4", "rows": 64, "cols": 24,
                           "dram_bytes_per_cycle": 64}
    assert (last.config.rows, last.config.cols, last.config.dram_bytes_per_cycle) == (64, 24, 64)
    assert last.schedule.default.input.name == "hbfp4@64" and last.schedule.name == "hbfp4"
    assert len({r.key for r in runs}) == len(runs)


def test_constraints_filter_runs():
    s = spec({"rows": [16, 32, 64], "cols": [16, 32, 64], "dataflow": ["ws", "os"]},
             constraints=["rows * cols <= 1024", "dataflow != 'os' or rows == cols"])
    got = {(r.values["rows"], r.values["cols"], r.values["dataflow"]) for r in s.runs()}
    want = {(r, c, d) for r in (16, 32, 64) for c in (16, 32, 64) for d in ("ws", "os")
            if r * c <= 1024 and (d != "os" or r == c)}
    assert got == want and len(want) == 8


@pytest.mark.parametrize("text, values, want", [
    ("rows * cols <= 65536", {"rows": 256, "cols": 256}, True),
    ("rows * cols <= 65536", {"rows": 256, "cols": 512}, False),
    ("rows // 3 == 5 and not cols % 2", {"rows": 17, "cols": 4}, True),
    ("1 < rows < cols", {"rows": 2, "cols": 2}, False),
    ("dataflow in ['ws', 'is']", {"dataflow": "is"}, True),
    ("dataflow not in ('ws',) or -rows ** 2 == -4", {"dataflow": "ws", "rows": 2}, True),
    ("double_buffered == true", {"double_buffered": True}, True),
])
def test_constraint_values_by_hand(text, values, want):
    assert Constraint(text, ["rows", "cols", "dataflow", "double_buffered"], "c").holds(values) \
        is want


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", "a call is not allowed"),
    ("rows.bit_length() > 3", "a call is not allowed"),
    ("().__class__", "an attribute is not allowed"),
    ("[x for x in [1]]", "ListComp is not allowed"),
    ("lambda: 1", "a lambda is not allowed"),
    ("rows if cols else 1", "a conditional expression is not allowed"),
    ("banks > 2", "unknown name 'banks'"),
    ("rows >", "is not an expression"),
    ("", "expected an expression"),
    ("rows[0]", "indexing is not allowed"),
])
def test_constraints_refuse_what_is_not_arithmetic(text, message):
    with pytest.raises(ConfigError, match=message):
        Constraint(text, ["rows", "cols"], "t.toml: [sweep] constraints[0]")


@pytest.mark.parametrize("text, values, message", [
    ("rows / (cols - 16) > 1", {"rows": 16, "cols": 16}, "division by zero"),
    ("rows ** 100 > 1", {"rows": 2, "cols": 1}, "exponent must be at most 64"),
    ("((rows ** 64) ** 64) ** 64 > 1", {"rows": 65536, "cols": 1}, "passes 2"),
    ("dataflow * 1000000000 > 'a'", {"dataflow": "ws"}, "arithmetic takes numbers"),
])
def test_constraint_errors_name_the_values(text, values, message):
    c = Constraint(text, ["rows", "cols", "dataflow"], "c")
    with pytest.raises(ConfigError, match=message):
        c.holds(values)


@pytest.mark.parametrize("axes, variants, sweep, message", [
    ({"banks": [1]}, None, {}, "unknown key 'banks'"),
    ({"rows": []}, None, {}, "an empty list gives no runs"),
    ({"rows": [16, 16]}, None, {}, "listed twice"),
    ({"rows": [0]}, None, {}, r"rows: expected an integer in \[1, 65536\]"),
    ({"rows": {"start": 1, "stop": 10}}, None, {}, "a range is"),
    ({"rows": {"start": 10, "stop": 1, "step": 1}}, None, {}, "start <= stop"),
    ({"rows": {"start": 1, "stop": 10**9, "step": 1}}, None, {}, "more than 1,000,000"),
    ({"input": ["hbfp٤"]}, None, {}, "input"),
    ({"input": ["hbfp4"]}, [FP32], {}, "either as axes or as variants"),
    ({"rows": list(range(1, 5000)), "cols": list(range(1, 5000))}, None, {},
     "more than 10,000,000"),
    ({"rows": [16]}, None, {"compute": "everything"}, "compute: expected one of"),
    ({"rows": [16]}, None, {"constraints": "rows > 1"}, "a list of expressions"),
    ({"rows": [16]}, None, {"colour": 1}, "unknown key 'colour'"),
])
def test_bad_specs_name_the_key(axes, variants, sweep, message):
    with pytest.raises(ConfigError, match=message):
        spec(axes, variants, **sweep)


def test_a_run_the_models_refuse_is_named_with_a_hint():
    s = spec({"input": ["fp32"], "block_accumulator": ["fixed16"]})
    with pytest.raises(ConfigError, match=r"the run input='fp32', block_accumulator='fixed16'"
                                          r".*exclude such runs with a constraint"):
        s.runs()


def test_weight_follows_input_and_none_drops_the_block_accumulator():
    runs = spec({"input": ["hbfp4", "fp32"], "block_accumulator": ["fixed13", "none"]},
                constraints=["input != 'fp32' or block_accumulator == 'none'"]).runs()
    assert [(r.config.input, r.config.weight, r.config.block_accumulator) for r in runs] == [
        ("hbfp4", "hbfp4", "fixed13"), ("hbfp4", "hbfp4", None), ("fp32", "fp32", None)]


def test_run_keys_hash_the_resolved_configuration(tmp_path):
    """The key is the SHA-256 of canonical JSON holding every configuration value (floats as
    floats), the numerics by canonical name and the trace's manifest hash, nothing about
    where the spec lives: 8 and 8.0, hbfp4 and hbfp4@64 are the same run."""
    import hashlib
    a = spec({"dram_bytes_per_cycle": [8]}, [{"name": "x", "input": "hbfp4",
                                             "block_accumulator": "fixed13"}]).runs()[0]
    b = spec({"dram_bytes_per_cycle": [8.0]}, [{"name": "y", "input": "hbfp4@64",
                                               "block_accumulator": "fixed13"}]).runs()[0]
    assert a.key == b.key == hashlib.sha256(a.resolved.encode()).hexdigest()[:32]
    resolved = json.loads(a.resolved)
    manifest = (Path(TRACE) / "manifest.json").read_bytes()
    assert resolved["traces"] == [hashlib.sha256(manifest).hexdigest()]
    assert resolved["compute"] == "timing"
    assert resolved["config"] == {
        "rows": 32, "cols": 32, "dataflow": "ws", "clock_ghz": 1.0, "input_kib": 64.0,
        "weight_kib": 64.0, "output_kib": 64.0, "double_buffered": True,
        "sram_bytes_per_cycle": 0.0, "dram_bytes_per_cycle": 8.0, "dram_latency_cycles": 100}
    assert resolved["schedule"] == {"default": {
        "input": "hbfp4@64", "weight": "hbfp4@64", "accumulator": "fp32", "output": "fp32",
        "block_accumulator": "fixed13"}, "rules": []}
    # the same spec file elsewhere, with a copy of the trace: the same keys
    trace = tmp_path / "traces" / "mlp_digits"
    shutil.copytree(TRACE, trace)
    text = ('[sweep]\ntraces = ["traces/mlp_digits"]\nbase = "array32"\n[axes]\n'
            'dram_bytes_per_cycle = [8]\n[[variant]]\nname = "x"\ninput = "hbfp4"\n'
            'block_accumulator = "fixed13"\n')
    (tmp_path / "s.toml").write_text(text)
    assert load(tmp_path / "s.toml").runs()[0].key == a.key
    other = spec({"dram_bytes_per_cycle": [8]}, [HBFP4], compute="accuracy").runs()[0]
    assert other.key != a.key                          # what is computed is part of it
