"""Figures for papers, drawn with matplotlib's object API (no pyplot state, no display):
every ``plot_*`` function writes one file (the format follows its suffix: .png, .pdf, .svg)
and returns its path; the matching ``*_figure`` function returns the Figure. Every format
or variant has one colour in all of them (``format_colour``). docs/figures.md describes each.

- cost (``plots.cost``): ``plot_density``, ``plot_area_breakdown``;
- sweeps (``plots.sweep``): ``plot_sweep_pareto``, ``plot_sweep_heatmap``;
- the array model (``plots.timeline``): ``plot_timeline``;
- accumulation (``plots.vrr``): ``plot_vrr`` (docs/vrr.png), ``plot_vrr_knee``.
"""

from hbfpsim.palette import FORMAT_COLOURS, format_colour
from hbfpsim.plots.common import check_figure_path, save
from hbfpsim.plots.cost import area_figure, density_figure, plot_area_breakdown, plot_density
from hbfpsim.plots.sweep import (front, heatmap_figure, pareto_figure, plot_sweep_heatmap,
                                 plot_sweep_pareto, sweep_runs)
from hbfpsim.plots.timeline import plot_timeline, timeline_figure
from hbfpsim.plots.vrr import plot_vrr, plot_vrr_knee, vrr_figure, vrr_knee_figure

__all__ = ["FORMAT_COLOURS", "area_figure", "check_figure_path", "density_figure",
           "format_colour", "front", "heatmap_figure", "pareto_figure", "plot_area_breakdown",
           "plot_density", "plot_sweep_heatmap", "plot_sweep_pareto", "plot_timeline",
           "plot_vrr", "plot_vrr_knee", "save", "sweep_runs", "timeline_figure", "vrr_figure",
           "vrr_knee_figure"]
