"""Run files: which traces, arrays and numerics variants one replay covers (TOML).

::

    [run]
    traces = ["../traces/cnn_digits"]    # trace directories, relative to this file
    arrays = ["array32"]                 # presets by name, or configuration files
    out = "runs/quickstart"              # output folder, relative to the current directory
    seed = 0                             # sampling and stochastic rounding
    max_outputs = 16384                  # outputs evaluated per record, at most
    max_macs = 67108864                  # MACs spent on one record's accuracy, at most
    synthetic = "none"                   # shape-only records: "none", "gaussian", "fitted"
    fit = "../traces/cnn_digits"         # with "fitted": the captured trace to fit
    figures = ["png"]                    # figure files: any of "png", "svg", "pdf"; [] none

    [[variant]]                          # numerics: the keys of an array's [numerics]
    name = "hbfp4"
    input = "hbfp4"
    block_accumulator = "fixed13"

    [[variant]]                          # or a preset schedule
    name = "booster"
    schedule = "booster"

    [[variant]]                          # or numerics plus rules (format_schedule)
    name = "mine"
    input = "hbfp4"
    [[variant.rule]]
    layers = ["@first", "fc*"]
    phases = ["bwd_weight"]
    epochs = [10, "last"]
    input = "hbfp6"                      # keys not given come from the variant

A variant's numerics replace the array's ``[numerics]`` as a whole (keys not given take the
configuration defaults: FP32 accumulators, no block accumulator, weight = input). Every value
is checked here; an error names the file, the table and the key.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from pathlib import Path

from hbfpsim.array import load as load_array
from hbfpsim.config import ArrayConfig, ConfigError, read_toml
from hbfpsim.format_schedule import Schedule, variant_tables
from hbfpsim.staging import as_path
from hbfpsim.validate import integer_key, main_table, name_list

SYNTHETIC = ("none", "gaussian", "fitted")
RUN_KEYS = ("traces", "arrays", "out", "seed", "max_outputs", "max_macs", "synthetic", "fit",
            "figures")
FIGURE_FORMATS = ("png", "svg", "pdf")
MAX_OUTPUTS = 2**26         # outputs evaluated per record: 512 MiB per float64 copy
MAX_MACS = 2**40            # MACs per record: hours of MAC-engine time


@dataclass(frozen=True)
class Sampling:
    """Accuracy budget per record: at most ``max_outputs`` outputs and ``max_macs`` MACs
    (see ``accuracy.choose``); ``seed`` fixes the sample and stochastic rounding."""

    max_outputs: int = 16384
    max_macs: int = 2**26
    seed: int = 0


@dataclass(frozen=True)
class RunSpec:
    """A validated run: every trace x array x variant is replayed."""

    traces: tuple[Path, ...]
    arrays: tuple[ArrayConfig, ...]
    variants: tuple[Schedule, ...]
    out: Path
    sampling: Sampling = Sampling()
    synthetic: str = "none"
    fit: Path | None = None
    source: str = "<code>"
    text: str = ""              # the run file as written, kept in run.json
    figures: tuple[str, ...] = ("png",)     # a file per figure in each of these formats

    @property
    def inputs(self) -> list[Path]:
        """Every file and folder the run reads: run file, traces, fit, array files."""
        files = [Path(self.source), *self.traces, *([self.fit] if self.fit else []),
                 *(Path(a.source) for a in self.arrays)]
        return [f for f in files if f.exists()]


def load(path: str | Path, out: str | Path | None = None) -> RunSpec:
    """Read and validate a run file; ``out`` overrides its ``[run] out``."""
    path = as_path(path, "replay.load: path")
    data, text = read_toml(path, "run file")
    return parse(data, source=str(path), base=path.resolve().parent, out=out, text=text)


def parse(data: dict, *, source: str = "<dict>", base: Path = Path("."),
          out: str | Path | None = None, text: str = "") -> RunSpec:
    """Validate a run given as nested dicts (the TOML structure)."""
    run = main_table(data, "run", ("run", "variant"), RUN_KEYS, source,
                     "traces, arrays and out")
    where = f"{source}: [run]"
    traces = trace_dirs(run, where, base)
    arrays = tuple(array_named(name, base, where) for name in name_list(run, "arrays", where))
    out = out if out is not None else run.get("out", f"runs/{Path(source).stem}")
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise ConfigError(f"{where} out: expected a folder path, got {out!r}")
    sampling, synthetic, fit = accuracy_keys(run, where, base)
    raw = data.get("variant")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: no [[variant]]: give at least one (numerics or a "
                          "schedule)")
    variants = variant_tables(raw, source)
    return RunSpec(traces, arrays, variants, Path(out), sampling, synthetic, fit, source, text,
                   figure_formats(run, where))


def figure_formats(run: dict, where: str) -> tuple[str, ...]:
    """``figures``: formats of the figure files, each once ([] for none)."""
    value = run.get("figures", ["png"])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or any(v not in FIGURE_FORMATS for v in value) \
            or len(set(value)) != len(value):
        raise ConfigError(f"{where} figures: expected a list of distinct formats among "
                          f"{', '.join(map(repr, FIGURE_FORMATS))}, got {reprlib.repr(value)}")
    return tuple(value)


def trace_dirs(table: dict, where: str, base: Path) -> tuple[Path, ...]:
    """``traces``: trace directories relative to ``base``, each holding a manifest."""
    traces = tuple(base / t for t in name_list(table, "traces", where))
    for trace in traces:
        if not (trace / "manifest.json").is_file():
            raise ConfigError(f"{where} traces: {trace} holds no trace (no manifest.json)")
    return traces


def accuracy_keys(table: dict, where: str, base: Path) -> tuple[Sampling, str, Path | None]:
    """``max_outputs``, ``max_macs``, ``seed``, ``synthetic`` and ``fit`` (relative to
    ``base``): the sampling, the synthetic operand source and the trace it is fitted to."""
    synthetic = table.get("synthetic", "none")
    if synthetic not in SYNTHETIC:
        raise ConfigError(f"{where} synthetic: expected one of {', '.join(SYNTHETIC)}, "
                          f"got {synthetic!r}")
    fit = None
    if synthetic == "fitted":
        if not isinstance(table.get("fit"), str):
            raise ConfigError(f"{where} fit: synthetic = 'fitted' needs fit = a captured "
                              "trace directory")
        fit = base / table["fit"]
        if not (fit / "manifest.json").is_file():
            raise ConfigError(f"{where} fit: {fit} holds no trace (no manifest.json)")
    sampling = Sampling(integer_key(table, "max_outputs", where, Sampling.max_outputs, 1,
                                    MAX_OUTPUTS),
                        integer_key(table, "max_macs", where, Sampling.max_macs, 1, MAX_MACS),
                        integer_key(table, "seed", where, 0, 0, 2**63 - 1))
    return sampling, synthetic, fit


def array_named(name: str, base: Path, where: str) -> ArrayConfig:
    try:
        return load_array(name, base)
    except ConfigError as err:
        raise ConfigError(f"{where} arrays: {err}") from None
