"""Sweeps at their boundaries: a key given in two places of a spec is refused naming both;
a sweep of millions of runs is expanded and registered a chunk at a time (memory flat, the
first runs made at once); a large sweep says its size before it starts and is refused when
the store's disk cannot hold it."""

import collections
import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hbfpsim.cli import main
from hbfpsim.config import ConfigError, read_toml
from hbfpsim.sweep import load, parse
from hbfpsim.sweep.driver import run
from hbfpsim.sweep.store import RUN_BYTES, Store, check_space, estimate
from hbfpsim.validate import once_each

ROOT = Path(__file__).resolve().parents[1]
TRACE = str(ROOT / "traces" / "mlp_digits")        # 24 records
MILLION = f"""
[sweep]
name = "million"
traces = ["{TRACE}"]
base = "array32"
[axes]
rows = {{start = 16, stop = 115, step = 1}}
cols = {{start = 16, stop = 115, step = 1}}
dram_bytes_per_cycle = {{start = 1, stop = 100, step = 1}}
"""                                                     # 100 x 100 x 100 = 10^6 runs
FEW = f"""
[sweep]
name = "few"
traces = ["{TRACE}"]
base = "array32"
constraints = ["rows == 16 and cols == 16 and dram_latency_cycles == 0"]
[axes]
rows = {{start = 16, stop = 115, step = 1}}
cols = {{start = 16, stop = 115, step = 1}}
dram_latency_cycles = {{start = 0, stop = 9, step = 1}}
dram_bytes_per_cycle = [8, 16]
"""                          # 200,000 combinations before constraints, 2 runs after them
Usage = collections.namedtuple("Usage", "total used free")


def spec(axes: dict, **sweep) -> object:
    return parse({"sweep": {"traces": [TRACE], "base": "array32", **sweep}, "axes": axes},
                 source="s.toml")


# --- a key given twice ---------------------------------------------------------------------

@pytest.mark.parametrize("axes, key, places", [
    ({"rows": [16, 32], "array": {"rows": [64]}}, "rows", "[axes] and [axes.array]"),
    ({"array": {"rows": [64]}, "rows": [16, 32]}, "rows", "[axes.array] and [axes]"),
    ({"dram_bytes_per_cycle": [8], "dram": {"bytes_per_cycle": [16]}},
     "dram_bytes_per_cycle", "[axes] and [axes.dram]"),
    ({"input_kib": 64, "buffers": {"input_kib": [128, 256]}}, "input_kib",
     "[axes] and [axes.buffers]"),
])
def test_an_axis_given_twice_is_refused_naming_both_places(axes, key, places):
    with pytest.raises(ConfigError) as err:
        spec(axes)
    assert str(err.value) == f"s.toml: {key} is given twice: in {places}"


def test_a_spec_file_with_a_key_twice_names_the_file(tmp_path):
    path = tmp_path / "twice.toml"
    path.write_text(f'[sweep]\ntraces = ["{TRACE}"]\nbase = "array32"\n[axes]\n'
                    'rows = [16, 32]\n[axes.array]\nrows = [64]\n')
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == f"{path}: rows is given twice: in [axes] and [axes.array]"
    assert main(["sweep", "run", str(path), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert not (tmp_path / "s.sqlite").exists()


def test_one_spelling_per_key_keeps_the_order_written():
    s = spec({"cols": [16], "array": {"rows": [16, 32]}, "dram": {"bytes_per_cycle": [8]}})
    assert [k for k, _ in s.axes] == ["cols", "rows", "dram_bytes_per_cycle"]


def test_once_each_flattens_and_names_both_places():
    assert once_each([("a", {"x": 1}), ("b", {"y": 2})], "f") == {"x": 1, "y": 2}
    with pytest.raises(ConfigError, match=r"^f: x is given twice: in \[a\] and \[b\]$"):
        once_each([("a", {"x": 1}), ("b", {"x": 2})], "f")


@pytest.mark.parametrize("text", ["[array]\nrows = 16\n[array]\ncols = 16\n",
                                  "array.rows = 16\n[array]\nrows = 32\n",
                                  "[run]\nseed = 1\nseed = 2\n"])
def test_configurations_and_run_files_cannot_spell_a_key_twice(tmp_path, text):
    """A configuration's or run file's keys each have one table (an unknown key elsewhere is
    refused); the same table or key twice is invalid TOML, refused when read."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(path, "configuration file")


# --- expansion that streams ----------------------------------------------------------------

def test_runs_are_made_as_they_are_asked_for():
    """The first runs of a 10^6-run spec come at once (the old list took minutes)."""
    s = parse({"sweep": {"traces": [TRACE], "base": "array32"},
               "axes": {"rows": {"start": 16, "stop": 115, "step": 1},
                        "cols": {"start": 16, "stop": 115, "step": 1},
                        "dram_bytes_per_cycle": {"start": 1, "stop": 100, "step": 1}}})
    assert s.size == 10**6
    start = time.perf_counter()
    first = list(itertools.islice(s.iter_runs(), 1000))
    chunk = next(s.chunks(500))
    assert time.perf_counter() - start < 5
    assert [r.key for r in chunk] == [r.key for r in first[:500]]
    assert first[1].values == {"rows": 16, "cols": 16, "dram_bytes_per_cycle": 2}


def test_registration_in_chunks_gives_the_one_transaction_rows(tmp_path):
    s = spec({"rows": [16, 32, 64], "cols": [16, 32], "dataflow": ["ws", "os"]})
    with Store(tmp_path / "a.sqlite") as a, Store(tmp_path / "b.sqlite") as b:
        assert a.register(s, s.runs(), chunk=10**6) == (12, 0)
        assert b.register(s, chunk=5) == (12, 0)
        query = "SELECT key, sweep, position, run_values, resolved, status FROM runs ORDER BY id"
        assert a.db.execute(query).fetchall() == b.db.execute(query).fetchall()
        assert b.db.execute("SELECT runs FROM sweeps").fetchall() == [(12,)]


def test_a_run_refused_late_leaves_nothing_registered(tmp_path):
    """The runs expanded before a refused run are not kept: the store is as it was (here:
    holding another sweep's runs, which are kept)."""
    good = spec({"rows": [16, 32]})
    bad = spec({"input": ["hbfp4", "fp32"], "block_accumulator": ["fixed13"],
                "rows": list(range(16, 36))})          # the fp32 runs are refused
    with Store(tmp_path / "s.sqlite") as db:
        db.register(good)
        with pytest.raises(ConfigError, match="exclude such runs with a constraint"):
            db.register(bad, chunk=3)
        assert db.db.execute("SELECT count(*) FROM runs").fetchone() == (2,)
        assert db.db.execute("SELECT count(*) FROM sweeps").fetchone() == (1,)


REGISTER = """
import itertools, resource, sys
from hbfpsim.sweep import load
from hbfpsim.sweep.store import Store
spec = load(sys.argv[1])
with Store(sys.argv[2]) as db:
    print(db.register(spec, itertools.islice(spec.iter_runs(), int(sys.argv[3])))[0])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)       # MiB (Linux: KiB)
"""


def _register(tmp_path: Path, runs: int) -> tuple[int, float, float]:
    """(runs registered, peak resident MiB, s) of a process that registers the first
    ``runs`` runs of a 10^6-run spec into a new store."""
    path = tmp_path / "million.toml"
    path.write_text(MILLION)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", REGISTER, str(path),
                           str(tmp_path / f"{runs}.sqlite"), str(runs)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, peak = map(int, done.stdout.split())
    return count, peak, time.perf_counter() - start


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB")
def test_registering_runs_takes_memory_independent_of_their_number(tmp_path):
    """The first 10,000 and the first 100,000 runs of a 10^6-run spec, each registered by a
    process of its own: the same peak memory within 32 MiB (a list of the runs takes about
    2 KB a run: 200 MB more for the larger), 100,000 runs in well under a minute."""
    small, large = _register(tmp_path, 10_000), _register(tmp_path, 100_000)
    assert (small[0], large[0]) == (10_000, 100_000)
    assert large[1] - small[1] < 32, f"{small[1]} MiB, then {large[1]} MiB"
    assert large[2] < 60


# --- the estimate, and the disk ------------------------------------------------------------

def test_the_estimate_counts_runs_before_constraints_and_bytes(tmp_path):
    path = tmp_path / "few.toml"
    path.write_text(FEW)
    found = estimate(load(path))
    assert (found.runs, found.gemms) == (200_000, 24)
    assert found.bytes == 200_000 * (RUN_BYTES + 24 * 16 * 10)
    assert found.line() == ("at most 200,000 runs (before constraints) x 24 GEMM rows each: "
                            "a store of up to 972.8 MB")
    totals = estimate(load(path), gemm_rows=False)
    assert totals.bytes == 200_000 * RUN_BYTES
    assert totals.line() == ("at most 200,000 runs (before constraints) x 24 GEMMs (totals "
                             "only) each: a store of up to 204.8 MB")


def test_the_estimate_bounds_a_real_store(tmp_path):
    """Per run, the estimate is at least what a done run takes in the store."""
    s = spec({"rows": [16, 32, 64, 128], "cols": [16, 32, 64, 128], "dataflow": ["ws", "os"]})
    empty, full = tmp_path / "empty.sqlite", tmp_path / "full.sqlite"
    Store(empty).close()
    for rows in (True, False):
        full.unlink(missing_ok=True)
        run(s, full, workers=1, gemm_rows=rows, progress=False)
        grown = full.stat().st_size - empty.stat().st_size
        assert 0.5 * estimate(s, rows).bytes < grown <= estimate(s, rows).bytes, rows


def test_a_large_sweep_prints_its_estimate_first(tmp_path, capsys):
    path = tmp_path / "few.toml"
    path.write_text(FEW)
    argv = ["sweep", "run", str(path), "--store", str(tmp_path / "s.sqlite"), "--workers", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[0] == ("hbfpsim: sweep few: at most 200,000 runs (before "
                                   "constraints) x 24 GEMMs (totals only) each: a store of up "
                                   "to 204.8 MB")
    assert "2 runs, 0 already in the store, 2 computed" in out
    assert main([*argv, "--quiet"]) == 0                # --quiet: nothing on stderr
    assert capsys.readouterr().err == ""


def test_a_sweep_the_disk_cannot_hold_is_refused_with_its_estimate(tmp_path, capsys,
                                                                    monkeypatch):
    path, store = tmp_path / "few.toml", tmp_path / "s.sqlite"
    path.write_text(FEW)
    monkeypatch.setattr("shutil.disk_usage", lambda p: Usage(10**12, 10**12 - 10**6, 10**6))
    with pytest.raises(ConfigError, match=r"needs more space than its disk has free "
                                          r"\(1\.0 MB\): at most 200,000 runs"):
        check_space(load(path), store)
    assert main(["sweep", "run", str(path), "--store", str(store), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hbfpsim: error: {store}: the sweep few "
                                                   "needs more space")
    assert not store.exists()
    monkeypatch.setattr("shutil.disk_usage", lambda p: Usage(10**12, 0, 10**12))
    assert check_space(load(path), store).runs == 200_000


# --- a variant rule that never applies -----------------------------------------------------

@pytest.mark.parametrize("epochs, shown", [(["last", 0], "last"), (["100%", "last"], "100%")])
def test_a_rule_whose_range_never_meets_is_refused_before_any_run(epochs, shown):
    """mlp_digits captures epochs 0, 15 and 29 of a 30-epoch run: ["last", 0] resolves to
    (29, 0) and ["100%", "last"] to (30, 29); both select nothing, so the spec is refused
    when read."""
    variant = {"name": "v", "input": "hbfp4", "rule": [{"epochs": epochs, "input": "hbfp6"}]}
    with pytest.raises(ConfigError, match=rf"s.toml: trace .*mlp_digits.*{shown}"):
        parse({"sweep": {"traces": [TRACE], "base": "array32"}, "axes": {"rows": [16]},
               "variant": [variant]}, source="s.toml")
    legal = {**variant, "rule": [{"epochs": ["last", "last"], "input": "hbfp6"}]}
    assert parse({"sweep": {"traces": [TRACE], "base": "array32"}, "axes": {"rows": [16]},
                  "variant": [legal]}, source="s.toml").variants[0].name == "v"
