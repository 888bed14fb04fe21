"""Helpers shared by several test modules: the published 28 nm area table as the cost model
ships it, a small replay Report built by hand from Rows (for the figure tests), the check of
a command line's one-line refusal, and the processes of a group or session (from /proc)."""

from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

from hbfpsim import cli
from hbfpsim.config import ArrayConfig
from hbfpsim.replay.record import Row
from hbfpsim.replay.run import Report
from hbfpsim.trace import GemmRecord


def table_28nm() -> dict:
    text = resources.files("hbfpsim.cost").joinpath("data/area_28nm.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(r["component"], r["format"], int(r["bits"]), r["block"]): float(r["area_um2"])
            for r in rows}


LONG = "dominated_by_narrow_variant"
# variant: (density vs FP32, SQNR dB, W1); fronts (denser and better): exact, fp32, narrow
VARIANTS = {"exact": (0.5, math.inf, 0.0), "fp32": (1.0, 140.0, 1e-9),
            LONG: (1.5, 30.0, 1e-3), "narrow": (2.0, 50.0, 1e-4)}
WRITTEN = ("fp32", LONG)          # variants of the report written to files (fast)
RECORDS = [(e, layer, phase) for e in (0, 5) for layer, phase in
           (("conv1", "fwd"), ("fc", "fwd"), ("fc", "bwd_data"), ("fc", "bwd_weight"),
            ("conv1", "bwd_weight"))]


def row(variant: str, record: int, epoch: int, layer: str, phase: str, density: float = 1.0,
        sqnr: float | None = None, w1: float | None = None, array: str = "arr8",
        trace: str = "toy") -> Row:
    accuracy = {} if sqnr is None else {"sampled": 4, "sqnr_db": sqnr, "w1": w1, "overflows": 0,
                                        "full_swamps": 0, "partial_swamps": 0}
    return Row(variant=variant, array=array, trace=trace,
               trace_record=GemmRecord(record, record, epoch, layer, phase, 4, 4, 4),
               input="x", weight="x", plan="plan", cycles=1000 + 100 * record,
               stall_cycles=10, utilization=0.5, seconds=1e-6, energy_pj=3e6, compute_pj=1e6,
               sram_pj=1e6, dram_pj=1e6, mac_area_um2=10.0, density=density, epochs=1,
               synthetic="", **accuracy)


def report(accuracy: bool = True, arrays: tuple[str, ...] = ("arr8",),
           variants: tuple[str, ...] = tuple(VARIANTS)) -> Report:
    rows = []
    for array in arrays:
        for variant in variants:
            density, sqnr, w1 = VARIANTS[variant]
            for i, (epoch, layer, phase) in enumerate(RECORDS):
                shift = i % 3 - 1          # medians over records are the values above
                rows.append(row(variant, i, epoch, layer, phase, density,
                                sqnr + shift if accuracy else None,
                                w1 * 10 ** (shift / 10) if accuracy else None, array))
    return report_of(rows, arrays)


def report_of(rows: list[Row], arrays=("arr8",)) -> Report:
    """A Report of ``rows`` on 8 x 8 arrays named ``arrays``; its spec a stand-in that
    holds only the arrays (what the summary reads)."""
    spec = SimpleNamespace(arrays=[ArrayConfig(rows=8, cols=8, dataflow="ws", name=a)
                                   for a in arrays])
    return Report(spec, rows)


def rejected(argv: list[str], capsys, *words: str) -> str:
    """Run the CLI; assert status 2, nothing on stdout, one line on stderr holding ``words``."""
    assert cli.main(argv) == 2, argv
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("hbfpsim: error: "), err
    for word in words:
        assert word in err, (word, err)
    return err


def processes_of(*, group: int | None = None, session: int | None = None) -> list[str]:
    """The live (not zombie) processes of process group ``group`` or session ``session``
    (Linux /proc): 'pid command' each."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        command = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()      # state, ppid, pgrp, session, ...
        if fields[0] != "Z" and (int(fields[2]) == group or int(fields[3]) == session):
            members.append(f"{entry.name} {command}")
    return members
