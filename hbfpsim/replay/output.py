"""A run's output folder: ``gemms.csv``, ``summary.csv``, ``run.json`` and the figures.

Everything is written into a temporary sibling folder (``hbfpsim.staging``), which is renamed
to the output folder only when complete: a failed or interrupted run leaves no half-written
results. An existing output folder is replaced only with ``force``.
"""

from __future__ import annotations

import csv
import json
import platform
from dataclasses import astuple
from importlib import metadata
from pathlib import Path

from hbfpsim.replay.record import COLUMNS, row_values
from hbfpsim.replay.run import Report
from hbfpsim.replay.summary import COLUMNS as SUMMARY_COLUMNS
from hbfpsim.staging import staged_dir

PACKAGES = ("hbfpsim", "numpy", "numba", "scipy", "ml_dtypes", "matplotlib")


def write(report: Report, out: str | Path, force: bool = False, figures: bool = True
          ) -> list[Path]:
    """Write the report's files into ``out`` (atomically); returns the files written."""
    out = Path(out)
    with staged_dir(out, force) as tmp:
        _csv(tmp / "gemms.csv", COLUMNS, map(row_values, report.rows))
        if report.summary():
            _csv(tmp / "summary.csv", SUMMARY_COLUMNS, map(astuple, report.summary()))
        (tmp / "run.json").write_text(json.dumps(_run_json(report), indent=1) + "\n")
        if figures and report.spec.figures:
            from hbfpsim.replay.figures import draw
            draw(report, tmp, report.spec.figures)
    return sorted(out.iterdir())


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv(path: Path, header: tuple[str, ...], rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([_cell(v) for v in row] for row in rows)


def _run_json(report: Report) -> dict:
    spec = report.spec
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "source": spec.source,
        "traces": [str(t) for t in spec.traces],
        "arrays": [{"name": a.name, "source": a.source, "rows": a.rows, "cols": a.cols,
                    "dataflow": a.dataflow} for a in spec.arrays],
        "variants": [{"name": v.name, **v.to_dict()} for v in spec.variants],
        "sampling": {"max_outputs": spec.sampling.max_outputs,
                     "max_macs": spec.sampling.max_macs, "seed": spec.sampling.seed},
        "synthetic": spec.synthetic, "fit": None if spec.fit is None else str(spec.fit),
        "run_file": spec.text,
        "versions": versions, "python": platform.python_version(),
        "machine": platform.platform(), "wall_seconds": report.wall_seconds,
    }
