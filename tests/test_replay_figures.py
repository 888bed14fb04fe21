"""The replay's figures: files written and valid, labels and names in them, the Pareto front,
shape-only runs and non-finite metrics. A small Report is built by hand from Rows."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from hbfpsim.replay import figures
from hbfpsim.replay.figures import SQNR_CAP, draw, error_vs_density, pareto, sqnr_map
from helpers import LONG, VARIANTS, WRITTEN, report, report_of, row


def svg_text(path: Path) -> str:
    """Every text of an SVG: <text> elements and the comments matplotlib writes for text
    drawn as paths (svg.fonttype = "path", the default)."""
    root = ET.parse(path, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))).getroot()
    return "\n".join(e.text or "" for e in root.iter()
                     if e.tag is ET.Comment or e.tag.endswith("text") or e.tag.endswith("tspan"))


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("figures")
    return folder, draw(report(variants=WRITTEN), folder, ("png", "svg"))


def test_files_written_and_valid(written):
    folder, paths = written
    names = ["error_vs_density", *(f"sqnr_{v}" for v in WRITTEN), "time_energy"]
    assert [p.name for p in paths] == [f"{n}.{ext}" for n in names for ext in ("png", "svg")]
    assert sorted(folder.iterdir()) == sorted(paths)
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
        else:
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize("name, needed", [
    ("error_vs_density", ["density vs FP32 (× FP32 MAC/s per µm²)", "median SQNR (dB)",
                          "median W1 (output units, log scale)", "Pareto front",
                          "trace toy on array arr8", *WRITTEN]),
    ("sqnr_fp32", ["SQNR (dB)", "epoch (captured)", "layer", "conv1", "fc", "fwd",
                   "bwd_data", "bwd_weight", "fp32, trace toy on array arr8"]),
    (f"sqnr_{LONG}", [LONG]),
    ("time_energy", ["cycles (array clock)", "energy (µJ)", "compute", "SRAM", "DRAM",
                     "fwd", "bwd_weight", "trace toy on array arr8", *WRITTEN]),
])
def test_svg_labels(written, name, needed):
    text = svg_text(written[0] / f"{name}.svg")
    missing = [s for s in needed if s not in text]
    assert not missing


@pytest.mark.parametrize("points, front", [
    ([], []),
    ([(1, 1)], [0]),
    ([(1, 1), (2, 2)], [1]),
    ([(3, 1), (1, 3), (2, 2), (1, 1), (2, 1)], [1, 2, 0]),
    ([(1, 2), (1, 2), (0, 0)], [0, 1]),                         # equal points both stay
    ([(1, 5), (1, 4), (2, 4)], [0, 2]),                         # same x: higher y only
    ([(1, 4), (2, 4), (0, 3)], [1]),                            # same y: larger x only
    ([(1, math.inf), (2, 0), (3, float("nan"))], [0, 1, 2]),
    ([(1.0, -1e-9), (2.0, -1e-4), (1.5, -1e-3)], [0, 1]),       # W1 negated: lower is better
])
def test_pareto(points, front):
    assert pareto(points) == front


def test_front_drawn_on_known_report():
    fig = error_vs_density(report().summary())
    sqnr, w1 = fig.axes[0].lines[0], fig.axes[1].lines[0]
    assert fig.axes[0].get_xlabel() == figures.DENSITY
    np.testing.assert_allclose(sqnr.get_xdata(), [0.5, 1.0, 2.0])
    np.testing.assert_allclose(sqnr.get_ydata(), [SQNR_CAP, 140.0, 50.0])  # +inf clipped
    np.testing.assert_allclose(w1.get_xdata(), [0.5, 1.0, 2.0])
    np.testing.assert_allclose(w1.get_ydata(), [1e-10, 1e-9, 1e-4])        # 0 at a floor
    assert sqnr.get_drawstyle() == w1.get_drawstyle() == "steps-pre"
    assert fig.axes[1].get_yscale() == "log"


def test_heat_map_cells():
    rows = report().rows
    fig = sqnr_map(rows, "fp32", "arr8", "toy")
    panels = [ax.images[0].get_array() for ax in fig.axes[:3]]
    fwd, bwd_data = (np.ma.filled(p.astype(float), np.nan) for p in panels[:2])
    assert fwd.shape == (2, 2)                                   # layers conv1, fc x epochs
    assert np.isnan(bwd_data[0]).all() and np.isfinite(bwd_data[1]).all()  # conv1 blank
    assert fwd.tolist() == [[139.0, 141.0], [140.0, 139.0]]      # records 0, 5; 1, 6
    assert sqnr_map(rows, "absent", "arr8", "toy") is None


def test_shape_only_writes_time_energy_only(tmp_path):
    paths = draw(report(accuracy=False), tmp_path)
    assert [p.name for p in paths] == ["time_energy.png"]        # PNG alone by default
    assert sorted(p.name for p in tmp_path.iterdir()) == ["time_energy.png"]


def test_pdf_files(tmp_path):
    paths = draw(report(accuracy=False), tmp_path, ("pdf",))
    assert [p.name for p in paths] == ["time_energy.pdf"]
    assert paths[0].read_bytes().startswith(b"%PDF-")


def test_non_finite_sqnr_does_not_crash():
    rows = [row("v", i, 0, layer, "fwd", 1.0, sqnr, w1) for i, (layer, sqnr, w1) in
            enumerate([("a", math.inf, 0.0), ("b", -math.inf, math.inf),
                       ("c", math.nan, math.nan), ("d", 10.0, math.nan)])]
    rep = report_of(rows)
    for fig in (error_vs_density(rep.summary()), sqnr_map(rows, "v", "arr8", "toy")):
        fig.canvas.draw()
    panel = fig.axes[0].images[0].get_array()
    assert list(np.ma.filled(panel.astype(float), np.nan)[:, 0][:2]) == [SQNR_CAP, -SQNR_CAP]
    assert np.ma.is_masked(panel[2, 0]) or np.isnan(panel[2, 0])       # NaN: blank


def test_names_with_several_arrays(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "usable_cpus", lambda: 1)       # all drawn in this process
    monkeypatch.setattr(figures, "_save", lambda fig, folder, name, formats: [folder / name])
    names = [p.name for p in draw(report(arrays=("arr8", "big")), tmp_path)]
    assert sorted(names) == sorted(["error_vs_density", "time_energy",
                                    *(f"sqnr_{v}_{a}_toy" for v in VARIANTS
                                      for a in ("arr8", "big"))])


@pytest.mark.slow
def test_quickstart(tmp_path):
    from hbfpsim import replay

    rep = replay.run(replay.load(Path(__file__).parents[1] / "configs/quickstart.toml"),
                     progress=False)
    names = {p.name for p in draw(rep, tmp_path)}
    variants = dict.fromkeys(r.variant for r in rep.rows)
    assert names == {f"{n}.{e}" for n in ["error_vs_density", "time_energy",
                                          *(f"sqnr_{v}" for v in variants)]
                     for e in ("png",)}


def test_names_of_close_points_do_not_overlap():
    """The quickstart's medians, where four variants lie within a few points of one another:
    every name is drawn, and no two names' boxes intersect once the figure is laid out."""
    close = {"fp32": (1.0, 142.2, 1.3e-10), "bf16": (2.4, 54.5, 2.4e-6),
             "mxfp6_e2m3": (9.8, 29.0, 2.8e-5), "hbfp6": (11.6, 30.7, 2.0e-5),
             "booster": (17.7, 29.8, 4.9e-5), "hbfp4": (18.9, 18.6, 5.9e-5)}
    rows = [row(v, i, 0, "fc", "fwd", density, sqnr, w1)
            for i, (v, (density, sqnr, w1)) in enumerate(close.items())]
    fig = error_vs_density(report_of(rows).summary())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        names = [t for t in ax.texts if t.get_text() in close]
        assert sorted(t.get_text() for t in names) == sorted(close)
        boxes = [t.get_window_extent(renderer) for t in names]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_a_helper_process_draws_the_same_files(tmp_path, monkeypatch):
    """Eight SQNR maps: with a second CPU a helper process draws some of them; the files,
    their order and the PNGs' bytes are those of drawing everything in this process (SVGs
    carry random element ids)."""
    rep = report(arrays=("arr8", "big"))
    (tmp_path / "shared").mkdir()
    (tmp_path / "alone").mkdir()
    shared = draw(rep, tmp_path / "shared", ("png", "svg"))
    monkeypatch.setattr(figures, "usable_cpus", lambda: 1)
    alone = draw(rep, tmp_path / "alone", ("png", "svg"))
    assert [p.name for p in shared] == [p.name for p in alone] and len(shared) == 2 * 10
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(shared, alone)
               if a.suffix == ".png")
