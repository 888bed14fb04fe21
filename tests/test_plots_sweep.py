"""The figures of hbfpsim.plots, checked by their values: the Pareto front against a brute
force, heat-map cells against means of Store.rows(), timeline bars against the fold events,
area bars against mac_cost, knees against min_mantissa_bits, and one colour per format in
every figure (hbfpsim.palette)."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from statistics import fmean

import numpy as np
import pytest
from matplotlib.colors import to_hex

from hbfpsim import formats, plots
from hbfpsim.accuracy.vrr import min_mantissa_bits, vrr
from hbfpsim.array import load, simulate
from hbfpsim.cost import density_table, mac_cost
from hbfpsim.palette import FORMAT_COLOURS, format_colour
from hbfpsim.plots import sweep as sweep_plots
from hbfpsim.plots import timeline as timeline_plots
from hbfpsim.plots import vrr as vrr_plots
from hbfpsim.plots.common import unit_for
from hbfpsim.sweep import parse
from hbfpsim.sweep.driver import run
from hbfpsim.sweep.store import Store

ROOT = Path(__file__).resolve().parents[1]
TRACE = str(ROOT / "traces" / "mlp_digits")
VARIANTS = [{"name": "fp32", "input": "fp32"},
            {"name": "hbfp4", "input": "hbfp4", "block_accumulator": "fixed13"}]
TIMING = {"sweep": {"name": "tiny", "traces": [TRACE], "base": "array32",
                    "constraints": ["rows * cols < 2048"]},
          "axes": {"rows": [16, 32, 64], "cols": [16, 32], "dataflow": ["ws", "os"],
                   "dram_bytes_per_cycle": [8, 32]},
          "variant": VARIANTS}
ACCURACY = {"sweep": {"name": "tiny_acc", "traces": [TRACE], "base": "array32",
                      "compute": "accuracy", "max_outputs": 16},
            "axes": {"rows": [16, 32]},
            "variant": [*VARIANTS, {"name": "bf16", "input": "bf16"}]}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """A timing sweep (2 variants x 5 shapes x 2 dataflows x 2 bandwidths = 40 runs) and an
    accuracy sweep (3 variants x 2 shapes), each in its own store."""
    tmp = tmp_path_factory.mktemp("stores")
    out = {}
    for name, spec in (("timing", TIMING), ("accuracy", ACCURACY)):
        out[name] = tmp / f"{name}.sqlite"
        run(parse(spec, source=f"{name}.toml"), out[name], workers=1, progress=False)
    return out


def table(store: Path) -> list[dict]:
    with Store(store) as db:
        header, rows = db.rows()
    return [dict(zip(header, r)) for r in rows]


def brute_front(points: list[tuple[float, float]], better: tuple[str, str]) -> set[int]:
    """The points no other point beats: at least as good on both, better on one."""
    sign = [1 if b == "higher" else -1 for b in better]

    def beats(p, q):
        return all(s * a >= s * b for s, a, b in zip(sign, p, q)) and p != q
    return {i for i, q in enumerate(points) if not any(beats(p, q) for p in points)}


# ---- one colour per format -------------------------------------------------------------

def test_format_colour_is_one_per_format():
    assert format_colour("hbfp4") == format_colour("hbfp4@64") == format_colour(" HBFP4@64")
    assert format_colour("hbfp4@32") != format_colour("hbfp4")      # another block: another
    assert format_colour("booster") == format_colour("booster 99% hbfp4@64 + 1% hbfp6@64")
    names = [*formats.STANDARD, "booster"]
    colours = [format_colour(n) for n in names]
    assert len(set(colours)) == len(names) == len(FORMAT_COLOURS)
    assert all(c == FORMAT_COLOURS[n] for n, c in zip(names, colours))
    with pytest.raises(TypeError, match="name"):
        format_colour(None)


def test_unknown_names_get_a_stable_colour_of_their_own():
    names = ["hbfp4_fixed12", "my variant", "hbfp4@32"]
    colours = [format_colour(n) for n in names]
    assert all(len(c) == 7 and c.startswith("#") and int(c[1:], 16) >= 0 for c in colours)
    assert len(set(colours)) == 3 and not set(colours) & set(FORMAT_COLOURS.values())
    probe = f"from hbfpsim.palette import format_colour; print(format_colour({names[0]!r}))"
    for seed in ("1", "2"):                      # not Python's per-process string hash
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True, env={"PYTHONHASHSEED": seed, "PATH": ""})
        assert done.stdout.strip() == colours[0]


def test_density_figure_bars_and_lines_agree_per_format():
    rows = density_table()
    fig = plots.density_figure(rows)
    bars, lines = fig.axes
    bar_colour = {r.format.replace("@64", ""): to_hex(p.get_facecolor())
                  for r, p in zip(rows, bars.patches)}
    assert len(set(bar_colour.values())) == len(rows)            # every format its own
    # the palette's colours for these formats, written out (hbfpsim.palette.FORMAT_COLOURS)
    assert bar_colour["fp32"] == "#252525" and bar_colour["hbfp4"] == "#a50f15"
    assert bar_colour[rows[-1].format.replace("@64", "")] == "#ff7f0e"          # booster
    named = [line for line in lines.lines if not line.get_label().startswith("_")]
    assert len(named) == 6
    for line in named:
        name = line.get_label()
        assert to_hex(line.get_color()) == bar_colour[name], name
    rings = [line for line in lines.lines if line.get_label().startswith("_")]
    assert {to_hex(r.get_color()) for r in rings} <= set(bar_colour.values())


def test_replay_error_vs_density_colours_variants_by_format():
    from hbfpsim.replay.figures import error_vs_density
    from helpers import report
    fig = error_vs_density(report(variants=("fp32", "narrow")).summary())
    points = fig.axes[0].collections[0]
    # FP32's published colour, and the one derived from the name "narrow" (recorded: stable
    # across runs and machines, see test_unknown_names_get_a_stable_colour_of_their_own)
    assert [to_hex(c) for c in points.get_facecolors()] == ["#252525", "#3fb75a"]
    legend = {t.get_text(): to_hex(h.get_color()) for t, h in
              zip(fig.axes[0].get_legend().get_texts(), fig.axes[0].get_legend().legend_handles)}
    assert legend["fp32"] == FORMAT_COLOURS["fp32"]


# ---- the Pareto front ------------------------------------------------------------------

POINTS = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 6), (5, 5), (4, 1)]


@pytest.mark.parametrize("better, expected", [
    (("lower", "lower"), [0, 1, 3, 6]),          # equal points (4, 1) both stay
    (("higher", "higher"), [4, 5]),
    (("higher", "lower"), [3, 6, 5]),
    (("lower", "higher"), [0, 4]),
])
def test_front_of_a_hand_made_set(better, expected):
    assert sweep_plots.front(POINTS, better) == expected
    assert set(expected) == brute_front(POINTS, better)


def test_front_matches_brute_force_on_random_points():
    rng = np.random.default_rng(5)
    for better in itertools.product(("lower", "higher"), repeat=2):
        for _ in range(20):
            points = [tuple(p) for p in rng.integers(0, 6, size=(12, 2)).tolist()]
            got = sweep_plots.front(points, better)
            assert set(got) == brute_front(points, better)
            assert [points[i][0] for i in got] == sorted(points[i][0] for i in got)
    with pytest.raises(ValueError, match="better"):
        sweep_plots.front(POINTS, ("lower", "smaller"))


def offsets(fig, gid: str) -> np.ndarray:
    return next(c for c in fig.axes[0].collections if c.get_gid() == gid).get_offsets()


def test_pareto_figure_time_energy(stores):
    runs = table(stores["timing"])
    fig = plots.pareto_figure(stores["timing"])
    fx, ux = unit_for([r["seconds"] for r in runs], sweep_plots.MEASURES["seconds"].units)
    fy, uy = unit_for([r["energy_pj"] for r in runs], sweep_plots.MEASURES["energy_pj"].units)
    ax = fig.axes[0]
    assert ax.get_xlabel() == f"time ({ux}), lower is better"
    assert ax.get_ylabel() == f"energy ({uy}), lower is better"
    for variant in ("fp32", "hbfp4"):            # every run, in its variant's colour
        mine = [r for r in runs if r["variant"] == variant]
        got = offsets(fig, f"runs:{variant}")
        np.testing.assert_allclose(got, [(r["seconds"] / fx, r["energy_pj"] / fy)
                                         for r in mine], rtol=1e-12)
        collection = next(c for c in ax.collections if c.get_gid() == f"runs:{variant}")
        assert to_hex(collection.get_facecolor()[0]) == format_colour(variant)
    points = [(r["seconds"], r["energy_pj"]) for r in runs]
    best = sorted(brute_front(points, ("lower", "lower")), key=lambda i: points[i])
    expected = [(points[i][0] / fx, points[i][1] / fy) for i in best]
    np.testing.assert_allclose(offsets(fig, "pareto-rings"), expected, rtol=1e-12)
    line = next(line for line in ax.lines if line.get_gid() == "pareto-front")
    np.testing.assert_allclose(np.column_stack(line.get_data()), expected, rtol=1e-12)
    assert line.get_drawstyle() == "steps-post"
    titles = " ".join(t.get_text() for t in fig.texts)
    assert "sweep tiny (40 runs, store timing.sqlite)" in titles


def test_pareto_figure_accuracy_vs_density(stores):
    runs = table(stores["accuracy"])
    with Store(stores["accuracy"]) as db:               # an open Store works as well
        fig = plots.pareto_figure(db, x="density", y="sqnr_db_median")
    points = [(r["density"], r["sqnr_db_median"]) for r in runs]
    best = sorted(brute_front(points, ("higher", "higher")), key=lambda i: points[i])
    np.testing.assert_allclose(offsets(fig, "pareto-rings"), [points[i] for i in best])
    assert {r["variant"] for r in runs} == {"fp32", "hbfp4", "bf16"}
    assert fig.axes[0].get_ylabel() == "median SQNR (dB), higher is better"
    w1 = plots.pareto_figure(stores["accuracy"], x="density", y="w1_median")
    points = [(r["density"], r["w1_median"]) for r in runs]
    best = sorted(brute_front(points, ("higher", "lower")), key=lambda i: points[i])
    np.testing.assert_allclose(offsets(w1, "pareto-rings"), [points[i] for i in best])
    line = next(line for line in w1.axes[0].lines if line.get_gid() == "pareto-front")
    assert line.get_drawstyle() == "steps-pre"


def test_pareto_refusals(stores, tmp_path):
    with pytest.raises(ValueError, match=r"y: the column 'sqnr_db_median' is empty .*timing"):
        plots.pareto_figure(stores["timing"], x="density", y="sqnr_db_median")
    with pytest.raises(ValueError, match="x: 'bogus' is not a run total"):
        plots.pareto_figure(stores["timing"], x="bogus")
    with pytest.raises(ValueError, match="x, y: both are 'seconds'"):
        plots.pareto_figure(stores["timing"], x="seconds", y="seconds")
    with pytest.raises(ValueError, match="no such sweep store"):
        plots.pareto_figure(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()
    Store(tmp_path / "empty.sqlite").close()
    with pytest.raises(ValueError, match="holds no finished run"):
        plots.pareto_figure(tmp_path / "empty.sqlite")
    with pytest.raises(ValueError, match="a figure file"):        # before reading the store
        plots.plot_sweep_pareto(tmp_path / "absent.sqlite", tmp_path / "fig.txt")


# ---- the heat map ----------------------------------------------------------------------

def cell_means(runs: list[dict], value: str) -> dict[tuple, float]:
    cells: dict[tuple, list[float]] = {}
    for r in runs:
        cells.setdefault((r["dataflow"], r["rows"], r["cols"]), []).append(r[value])
    return {k: 100 * fmean(v) for k, v in cells.items()}


def panel_cells(ax, first) -> dict[tuple, float]:
    """{(rows, cols): value} of a panel, its sides read back from the tick labels (2^k; the
    rows' on the ``first`` panel, which the others share)."""
    side = {"$2^{4}$": 16, "$2^{5}$": 32, "$2^{6}$": 64}
    rows = [side[t.get_text()] for t in first.get_yticklabels()]
    cols = [side[t.get_text()] for t in ax.get_xticklabels()]
    grid = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    return {(rows[i], cols[j]): v for (i, j), v in np.ndenumerate(grid) if np.isfinite(v)}


@pytest.mark.parametrize("value", ["utilization", "stall_share"])
def test_heatmap_cells_are_means_of_the_rows(stores, value):
    runs = table(stores["timing"])
    want = cell_means(runs, value)
    fig = plots.heatmap_figure(stores["timing"], value)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["dataflow ws", "dataflow os"]
    for ax, flow in zip(panels, ("ws", "os")):
        got = panel_cells(ax, panels[0])
        assert set(got) == {(r, c) for f, r, c in want if f == flow}     # 64 x 32: no run
        for (r, c), v in got.items():
            assert v == pytest.approx(want[flow, r, c], rel=1e-12)
        texts = {t.get_text() for t in ax.texts}
        assert {f"{v:.1f}" for v in got.values()} <= texts
    colourbar = fig.axes[-1]
    unit = "%" if value == "utilization" else "% of cycles"
    assert colourbar.get_ylabel() == f"mean {value.replace('_', ' ')} ({unit})"


def test_heatmap_of_one_variant_and_dataflow(stores):
    runs = [r for r in table(stores["timing"]) if r["variant"] == "hbfp4"]
    want = cell_means(runs, "utilization")
    fig = plots.heatmap_figure(stores["timing"], "utilization", variant="hbfp4",
                               dataflow="os")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 1 and panels[0].get_title() == "dataflow os"
    got = panel_cells(panels[0], panels[0])
    assert got == pytest.approx({(r, c): v for (f, r, c), v in want.items() if f == "os"})
    assert "variant hbfp4, dataflow os" in " ".join(t.get_text() for t in fig.texts)


def test_heatmap_refusals(stores):
    with pytest.raises(ValueError, match="value: expected one of utilization, stall_share"):
        plots.heatmap_figure(stores["timing"], "energy_pj")
    with pytest.raises(ValueError, match=r"variant: 'bf16' is not in .* \(it has fp32, hbfp4\)"):
        plots.heatmap_figure(stores["timing"], variant="bf16")
    with pytest.raises(ValueError, match="dataflow: 'is' is not in"):
        plots.heatmap_figure(stores["timing"], dataflow="is")
    with pytest.raises(ValueError, match="do not sweep rows and cols .* swept: variant, rows"):
        plots.heatmap_figure(stores["accuracy"])


# ---- the timeline ----------------------------------------------------------------------

@pytest.mark.parametrize("shown", [60, 1000])
def test_timeline_one_bar_per_fold(shown):
    report = simulate(load("small16"), 300, 200, 500, events=True)
    events = report.events
    fig = plots.timeline_figure("small16", 300, 200, 500, max_folds=shown)
    ax = fig.axes[0]
    (bars,) = ax.containers
    count = min(shown, report.folds)
    assert len(bars.patches) == len(ax.patches) == count
    assert [p.get_width() for p in bars.patches] == \
        (events.end[:count] - events.start[:count]).tolist()
    assert [p.get_x() for p in bars.patches] == events.start[:count].tolist()
    assert [p.get_y() + p.get_height() / 2 for p in bars.patches] == pytest.approx(list(range(count)))
    colour = {kind: c for kind, _, c in timeline_plots.WAITS}
    assert [to_hex(p.get_facecolor()) for p in bars.patches] == \
        [colour[w] for w in events.waited_on[:count]]
    note = " ".join(t.get_text() for t in fig.texts)
    assert (f"first {count} of {report.folds} folds shown" in note) == (count < report.folds)
    assert f"{report.total_cycles:,} cycles" in note


def test_timeline_refusals():
    with pytest.raises(ValueError, match="max_folds: expected an integer >= 1"):
        plots.timeline_figure("small16", 8, 8, 8, max_folds=0)
    with pytest.raises(ValueError):
        plots.timeline_figure("no_such_preset", 8, 8, 8)


# ---- area and VRR ----------------------------------------------------------------------

def test_area_bars_sum_to_the_mac_area():
    names = ["fp32", "int8", "mxfp4", "hbfp4", "hbfp6@32"]
    accs = {"hbfp4": "fixed16"}
    fig = plots.area_figure(names, accs)
    ax = fig.axes[0]
    heights = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}
    for i, name in enumerate(names):
        cost = mac_cost(name, accs.get(name))
        assert sum(h[i] for h in heights.values()) == pytest.approx(cost.area, rel=1e-12)
        for part, value in cost.parts.items():
            assert heights[part][i] == pytest.approx(value)
        assert to_hex(ax.get_xticklabels()[i].get_color()) == format_colour(cost.format.name)
    assert ax.get_xticklabels()[3].get_text() == "hbfp4\nfixed16"
    assert ax.get_xticklabels()[4].get_text() == "hbfp6@32\nfixed16"
    assert ax.get_ylabel() == "area per MAC (µm², 28 nm model)"


def test_area_refusals():
    with pytest.raises(ValueError, match="formats: expected a list"):
        plots.area_figure([])
    with pytest.raises(ValueError, match="accumulators: mxfp4 is not among the formats"):
        plots.area_figure(["hbfp4"], {"mxfp4": "fixed16"})
    with pytest.raises(ValueError, match="unknown format"):
        plots.area_figure(["fp7"])


def test_vrr_knee_marks_min_mantissa_bits():
    lengths, panels = (256, 4096), (("rne", None), ("rtz", None))
    fig = plots.vrr_knee_figure(lengths, panels)
    tops = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in tops] == ["round to nearest even, sequential",
                                               "round toward zero, sequential"]
    for ax, (rounding, chunk) in zip(tops, panels):
        for n in lengths:
            knee = min_mantissa_bits(n, rounding=rounding)
            marker = next(line for line in ax.lines if line.get_gid() == f"knee:{n}")
            assert marker.get_xdata().tolist() == [knee]
            assert marker.get_ydata()[0] == pytest.approx(vrr(n, knee, rounding=rounding))
            assert f"(knee: {knee} bits)" in " ".join(t.get_text() for t in
                                                      ax.get_legend().get_texts())
    beyond = plots.vrr_knee_figure((2**30,), (("rtz", None),))   # needs more than 52 bits
    assert not [line for line in beyond.axes[0].lines if line.get_gid()]
    assert "(no knee up to 52 bits)" in beyond.axes[0].get_legend().get_texts()[0].get_text()
    assert len(beyond.axes[0].lines[0].get_xdata()) == 52
    with pytest.raises(ValueError, match="max_lost: expected a positive number"):
        plots.vrr_knee_figure((256,), max_lost=float("nan"))
    with pytest.raises(ValueError, match="lengths: 100 is not a multiple of the chunk 64"):
        plots.vrr_knee_figure((100,), (("rne", 64),))
    with pytest.raises(ValueError, match="lengths: expected one or more integers"):
        plots.vrr_knee_figure((1,))


def test_vrr_figure_and_the_docs_script(monkeypatch, tmp_path):
    """plot_vrr draws the model and a marker per measured point (the MAC engine replaced by
    a fake here: the real figure takes minutes), and docs/make_vrr_plot.py only calls it."""
    calls = []

    def fake(n, m_acc, *, chunk, rounding, trials, seed):
        calls.append((n, m_acc, trials))
        return vrr(n, m_acc, chunk=chunk, rounding=rounding), 0.01
    monkeypatch.setattr(vrr_plots, "measured_vrr", fake)
    lines: list[str] = []
    fig = plots.vrr_figure(budget=1_000_000, bits=(10,), panels=(("rtz", None),),
                           log=lines.append)
    assert [(n, m) for n, m, _ in calls] == [(4**k, 10) for k in range(2, 11)]
    assert all(t == max(256, 1_000_000 // n) for n, _, t in calls)
    assert len(lines) == 1 + len(calls) and lines[0].startswith("panel, m_acc")
    ax = fig.axes[0]
    assert ax.get_title() == "round toward zero, sequential" and ax.get_xscale() == "log"
    model = ax.lines[0]
    np.testing.assert_allclose(model.get_ydata(), [vrr(int(n), 10, rounding="rtz")
                                                   for n in model.get_xdata()])
    spec = importlib.util.spec_from_file_location("make_vrr_plot",
                                                  ROOT / "docs" / "make_vrr_plot.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    seen = {}
    monkeypatch.setattr(script, "plot_vrr", lambda out, budget, log: seen.update(
        out=out, budget=budget) or out)
    assert script.main(["--out", str(tmp_path / "v.png"), "--budget", "123"]) == \
        tmp_path / "v.png"
    assert seen == {"out": tmp_path / "v.png", "budget": 123}


# ---- files -----------------------------------------------------------------------------

def test_plot_functions_write_their_files(stores, tmp_path):
    written = [
        plots.plot_sweep_pareto(stores["timing"], tmp_path / "pareto.svg"),
        plots.plot_sweep_heatmap(stores["timing"], tmp_path / "heat.png", "stall_share"),
        plots.plot_timeline("small16", 64, 64, 64, tmp_path / "timeline.pdf"),
        plots.plot_area_breakdown(["bf16", "hbfp8"], tmp_path / "area.png"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    svg = ET.parse(written[0]).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[2].read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="a figure file"):
        plots.plot_timeline("small16", 8, 8, 8, tmp_path / "t.jpg")
