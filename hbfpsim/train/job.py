"""``hbfpsim train RUN.toml``: every variant x seed of a training run file, resumable, then
the results over seeds.

The output folder holds ``checkpoints/`` (one per run, replaced after every epoch),
``probes/`` (per-epoch tensors for the Wasserstein analysis), ``history.csv`` (per run and
epoch: train loss, validation loss and metric, seconds), ``results.csv`` (per variant: its
blocking, rounding and whole method, its learning rate, the final validation metric's mean, standard deviation,
min and max over seeds, and the share of MACs per format), ``run.json`` (settings, Python and torch versions, wall time) and
``curves.png``, ``methods.png`` when the variants differ in method (final metric by schedule
and method), and, when a variant is named ``fp32``, ``wasserstein.csv`` and
``wasserstein.png`` (``hbfpsim.train.analysis``). Each file is written whole under a
temporary name and renamed; rerunning the same file resumes every unfinished run and reloads
the finished ones.

Runs train one per CPU at a time (``usable_cpus``), each in a worker process of its own
(``python -m hbfpsim.train.worker``, a child that dies with this process) on one torch
thread (``loop.one_thread``): a run's results are the same whatever the machine and the
number of runs, and the cores are used by the runs, not by threads waiting for each other.
A single run trains in this process, also on one thread.
"""

from __future__ import annotations

import csv
import json
import platform
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from hbfpsim import children
from hbfpsim.config import ConfigError
from hbfpsim.formats.threads import usable_cpus
from hbfpsim.staging import staged_file
from hbfpsim.train.analysis import wasserstein, write_wasserstein
from hbfpsim.train.figures import curves, methods
from hbfpsim.train.loop import RunResult, build, check_layers, one_thread, train_one
from hbfpsim.train.method import Method, Roundings
from hbfpsim.train.spec import TrainSpec
from hbfpsim.train.tasks import TASKS, Metric


REFERENCE = "fp32"      # the variant the Wasserstein analysis measures the others against


@dataclass(frozen=True)
class VariantResult:
    variant: str
    method: Method
    finals: tuple[float, ...]          # final validation metric per seed
    mac_shares: dict[str, float]       # share of training MACs per input format

    @property
    def mean(self) -> float:
        return statistics.fmean(self.finals)

    @property
    def std(self) -> float:
        return statistics.stdev(self.finals) if len(self.finals) > 1 else 0.0


@dataclass(frozen=True)
class TrainReport:
    spec: TrainSpec
    metric: Metric
    about: str
    runs: tuple[RunResult, ...]
    variants: tuple[VariantResult, ...]
    wall_seconds: float


def make_task(spec: TrainSpec) -> Any:
    return TASKS[spec.task](**spec.settings)


def run(spec: TrainSpec, progress: bool | None = None) -> TrainReport:
    """Train (or resume) every run of ``spec`` into ``spec.out``. ``progress``: None shows a
    bar on a terminal, False never."""
    from tqdm import tqdm
    check_out(spec.out)
    start = time.perf_counter()
    task = make_task(spec)
    check_patterns(spec, task)
    total = len(spec.variants) * len(spec.seeds) * spec.epochs * task.steps_per_epoch()
    pairs = [(i, seed) for i in range(len(spec.variants)) for seed in spec.seeds]
    workers = min(usable_cpus(), len(pairs))
    done: dict[tuple[int, int], RunResult] = {}
    with tqdm(total=total, unit="step", disable=None if progress is None else not progress,
              desc="train", dynamic_ncols=True) as bar:
        if workers == 1:
            with one_thread():
                for i, seed in pairs:
                    bar.set_postfix_str(f"{spec.variants[i].name} seed {seed}")
                    done[i, seed] = train_one(spec, task, spec.variants[i], seed, spec.out,
                                              bar)
        else:
            bar.set_postfix_str(f"{workers} runs at a time")
            with children.Pool("hbfpsim.train.worker", workers,
                               env=children.ONE_THREAD) as pool:
                for (_, i, seed), kind, value in pool.run((spec, i, seed) for i, seed in pairs):
                    if kind == "done":
                        done[i, seed] = value
                    else:
                        bar.update(value)
    runs = [done[pair] for pair in pairs]
    report = TrainReport(spec, task.metric, task.about, tuple(runs), _variants(runs, spec),
                         time.perf_counter() - start)
    write(report)
    return report


def check_out(out: Path) -> None:
    """``out`` must be new, empty, or a training output folder (it has ``checkpoints/``):
    resuming writes into it, and a folder of other files could lose some of them to ours
    (``run.json``, ``history.csv``, ...)."""
    if out.is_dir() and any(out.iterdir()) and not (out / "checkpoints").is_dir():
        raise ConfigError(f"{out}: a folder of other files, not an hbfpsim train output "
                          "(no checkpoints/); choose a new or empty --out")


def check_patterns(spec: TrainSpec, task: Any) -> None:
    """The layer name patterns of ``[train.capture] layers`` (on the captured variant's model)
    and of ``exact`` (on some variant's) must each match a converted layer, checked before
    any run starts: the names are the model's, known once it is built."""
    if spec.capture is None and spec.exact is None:
        return
    layers = {}
    for variant in spec.variants:
        if spec.exact is None and variant.name != spec.capture.variant:
            continue
        with one_thread():
            layers[variant.name] = build(spec, task, variant, spec.seeds[0])[2].layers
    if spec.capture is not None:
        check_layers(spec.capture.layers, layers[spec.capture.variant],
                     f"{spec.source}: [train] capture layers")
    if spec.exact is not None:
        names = tuple(dict.fromkeys(n for found in layers.values() for n in found))
        check_layers(spec.exact["layers"], names, f"{spec.source}: [train] exact layers")


def _variants(runs: list[RunResult], spec: TrainSpec) -> tuple[VariantResult, ...]:
    out = []
    methods = {v.name: v.method for v in spec.variants}
    for name in dict.fromkeys(r.variant for r in runs):
        mine = [r for r in runs if r.variant == name]
        macs: dict[str, int] = {}
        for r in mine:
            for fmt, count in r.macs.items():
                macs[fmt] = macs.get(fmt, 0) + count
        total = sum(macs.values()) or 1
        out.append(VariantResult(name, methods[name],
                                 tuple(r.history[-1].metric for r in mine),
                                 {f: c / total for f, c in sorted(macs.items())}))
    return tuple(out)


def write(report: TrainReport) -> None:
    """history.csv, results.csv, run.json and curves.png into the run's out folder."""
    out = report.spec.out
    with staged_file(out / "history.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "seed", "epoch", "train_loss", "val_loss", "metric", "seconds"])
        for r in report.runs:
            for h in r.history:
                w.writerow([r.variant, r.seed, h.epoch, f"{h.train_loss:.6g}",
                            f"{h.val_loss:.6g}", f"{h.metric:.6g}", f"{h.seconds:.3f}"])
    with staged_file(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "blocking", "rounding", "method", "learning_rate", "metric",
                    "mean", "std", "min", "max", "seeds", "mac_shares"])
        rates = {v.name: v.rate or report.spec.rate for v in report.spec.variants}
        for v in report.variants:
            w.writerow([v.variant, v.method.blocking, str(v.method.rounding), str(v.method),
                        str(rates[v.variant]),
                        report.metric.name, f"{v.mean:.6g}", f"{v.std:.6g}",
                        f"{min(v.finals):.6g}", f"{max(v.finals):.6g}", len(v.finals),
                        " ".join(f"{k}={s:.4f}" for k, s in v.mac_shares.items())])
    spec = report.spec
    meta = {"task": spec.task, "about": report.about, "settings": spec.settings,
            "variants": {v.name: str(v.method) + (f"; learning rate {v.rate}" if v.rate else "")
                         for v in spec.variants},
            "schedules": {v.name: v.schedule.to_dict() for v in spec.variants},
            "seeds": list(spec.seeds),
            "epochs": spec.epochs, "lr": str(spec.rate), "exact": spec.exact,
            "python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "wall_seconds": round(report.wall_seconds, 2)}
    with staged_file(out / "run.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    curves(report.runs, report.metric, out / "curves.png",
           title=f"{spec.task}: {report.about}; learning rate {spec.rate}",
           methods={v.name: v.method for v in spec.variants})
    if len({v.method for v in spec.variants}) > 1:
        setups = {v.name: (v.schedule.default, v.schedule.rules, v.rate,
                           replace(v.method, rounding=Roundings(), blocking="gemm"))
                  for v in spec.variants}
        methods(report.variants, setups, report.metric,
                out / "methods.png", title=f"{spec.task}: final {report.metric.name} by "
                f"schedule and method ({len(spec.seeds)} seeds; whiskers: min to max)")
    if len(spec.variants) > 1 and any(v.name == REFERENCE for v in spec.variants):
        write_wasserstein(wasserstein(out, REFERENCE), out, REFERENCE)
