"""Sweep specs (TOML): axes over configuration keys, constraints, traces, what to compute.

::

    [sweep]
    name = "demo"                        # labels the store and its plots (default: file stem)
    traces = ["../traces/resnet50_step"] # trace directories, relative to this file
    base = "array32"                     # the configuration the axes vary (preset or file)
    compute = "timing"                   # "timing" (timing + cost) or "accuracy" (+ sampled
    #                                      accuracy: seed, max_outputs, max_macs, synthetic,
    #                                      fit as in run files)
    constraints = ["rows * cols <= 65536"]

    [axes]                               # any configuration key (flat names, or by section)
    rows = [16, 32, 64, 128]
    cols = {start = 16, stop = 128, step = 16}      # inclusive arithmetic range
    dram_bytes_per_cycle = {start = 4, stop = 64, factor = 2}   # inclusive geometric range
    dataflow = ["ws", "os"]

    [[variant]]                          # optional: numerics as run files give them (a
    name = "hbfp4"                       # format, a preset schedule or rules); they form
    input = "hbfp4"                      # the axis "variant"
    block_accumulator = "fixed13"

A key is an axis in one place only: ``rows`` both in ``[axes]`` and in ``[axes.array]`` is
refused, naming both (``validate.once_each``).

Numerics keys (``input``, ``weight``, ``accumulator``, ``output``, ``block_accumulator``,
``"none"`` for no block accumulator) may be axes instead of variants, not both; ``weight``
follows ``input`` unless it is an axis itself. Runs are the product of the axes (variants
first, then the axes in the order given, the last fastest) that pass every constraint. Each is keyed by the SHA-256 of its fully resolved
configuration (canonical JSON: every configuration value, the schedule's numerics by
canonical name, each trace's manifest hash, what is computed), so the same spec gives the
same keys on any machine, and runs shared by two specs have the same key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from hbfpsim.array.grouped import checked_bits
from hbfpsim.config import SCHEMA, ArrayConfig, ConfigError, read_toml
from hbfpsim.formats import resolve
from hbfpsim.mac import parse_accumulator
from hbfpsim.numerics import KEYS as NUMERICS_KEYS
from hbfpsim.numerics import Numerics
from hbfpsim.format_schedule import Schedule, variant_tables
from hbfpsim.replay.run import check_schedules
from hbfpsim.replay.runfile import Sampling, accuracy_keys, array_named, trace_dirs
from hbfpsim.staging import as_path
from hbfpsim.trace import open as open_trace
from hbfpsim.sweep.expr import Constraint
from hbfpsim.validate import main_table, once_each

COMPUTE = ("timing", "accuracy")
SWEEP_KEYS = ("name", "traces", "base", "compute", "constraints", "seed", "max_outputs",
              "max_macs", "synthetic", "fit")
KEYS = tuple(f.name for f in fields(ArrayConfig) if f.name not in ("name", "source"))
FLOAT_KEYS = frozenset(f.name for f in fields(ArrayConfig) if f.type == "float")
MAX_VALUES = 10**6           # values on one axis
MAX_RUNS = 10**7             # runs before constraints: a typo fails here, not in memory
CHUNK = 10_000               # runs expanded (and registered in a store) at a time
NONE = "none"                # block_accumulator = "none": no block accumulator


@dataclass(frozen=True)
class Run:
    """One configuration of a sweep: its key, the swept values (axis: value), the array
    configuration (the hardware: what a run times and costs), the schedule whose numerics
    it runs, and the canonical JSON its key hashes."""

    key: str
    values: dict
    config: ArrayConfig
    schedule: Schedule
    resolved: str


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep (see the module docstring)."""

    name: str
    traces: tuple[Path, ...]
    base: ArrayConfig
    axes: tuple[tuple[str, tuple], ...]           # (key, values), in the spec's order
    constraints: tuple[Constraint, ...]
    variants: tuple[Schedule, ...] = ()
    compute: str = "timing"
    sampling: Sampling = Sampling()
    synthetic: str = "none"
    fit: Path | None = None
    source: str = "<code>"
    text: str = ""

    @property
    def size(self) -> int:
        """Runs before constraints: the product of the axes' lengths."""
        return math.prod(len(values) for _, values in self.axes)

    def runs(self) -> list[Run]:
        """Every run that passes the constraints, each checked as a configuration (its
        numerics resolve, its buffers hold an array tile), as a list: ``iter_runs`` or
        ``chunks`` for a sweep too large to hold (a run takes about 1.4 KB)."""
        return list(self.iter_runs())

    def iter_runs(self) -> Iterator[Run]:
        """``runs()`` one at a time, in the same order, each made as it is asked for: memory
        does not grow with the number of runs."""
        identity = _identity(self)
        by_name = {v.name: v for v in self.variants}
        keys = [key for key, _ in self.axes]
        base = {f: getattr(self.base, f) for f in KEYS}
        memo: dict = {}
        for combo in itertools.product(*(values for _, values in self.axes)):
            values = dict(zip(keys, combo))
            scope = {**base, **values}
            if "input" in values and "weight" not in values:
                scope["weight"] = values["input"]
            if not all(c.holds(scope) for c in self.constraints):
                continue
            yield self._run(values, scope, by_name, identity, memo)

    def chunks(self, size: int = CHUNK) -> Iterator[list[Run]]:
        """``iter_runs()`` in lists of at most ``size`` runs (the last one shorter)."""
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"chunks: size: expected a positive integer, got {size!r}")
        runs = self.iter_runs()
        while chunk := list(itertools.islice(runs, size)):
            yield chunk

    def _run(self, values: dict, scope: dict, by_name: dict, identity: dict,
             memo: dict | None = None) -> Run:
        """The run of ``values`` (``scope``: every configuration key's value). ``memo``: JSON
        kept from run to run (the identity's, each schedule's), which makes the same
        ``resolved`` as ``_dumps`` of the whole."""
        settings = {k: (None if k == "block_accumulator" and v == NONE else v)
                    for k, v in scope.items() if k in KEYS}
        try:
            config = self.base.varied(settings, self.name, self.source)   # each checked
            if self.variants:
                schedule = by_name[values["variant"]] if "variant" in values \
                    else self.variants[0]
            else:
                schedule = Schedule.fixed(Numerics.of(config))
            for numerics in schedule.numerics:
                checked_bits(config, numerics)
        except ValueError as err:          # ConfigError, or a buffer smaller than a tile
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ConfigError(f"{self.source}: the run {shown}: {err} (exclude such runs "
                              "with a constraint)") from None
        memo = {} if memo is None else memo
        if "identity" not in memo:
            memo["identity"] = {k: _dumps(v) for k, v in identity.items()}
        if schedule not in memo:
            memo[schedule] = _dumps(schedule.to_dict())
        parts = {**memo["identity"], "config": _dumps(_canonical_config(config)),
                 "schedule": memo[schedule]}
        resolved = "{" + ",".join(f"{_dumps(k)}:{parts[k]}" for k in sorted(parts)) + "}"
        return Run(hashlib.sha256(resolved.encode()).hexdigest()[:32], values, config,
                   schedule, resolved)


def _dumps(value: Any) -> str:
    """Canonical JSON: keys sorted, no spaces, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def load(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec."""
    path = as_path(path, "sweep.load: path")
    data, text = read_toml(path, "sweep spec")
    return parse(data, source=str(path), base=path.resolve().parent, text=text)


def parse(data: dict, *, source: str = "<dict>", base: Path = Path("."),
          text: str = "") -> SweepSpec:
    """Validate a sweep given as nested dicts (the TOML structure)."""
    sweep = main_table(data, "sweep", ("sweep", "axes", "variant"), SWEEP_KEYS, source,
                       "traces and the base array")
    where = f"{source}: [sweep]"
    name = sweep.get("name", Path(source).stem)
    if not (isinstance(name, str) and 0 < len(name) <= 64 and name.isprintable()):
        raise ConfigError(f"{where} name: expected 1 to 64 printable characters, got {name!r}")
    traces = trace_dirs(sweep, where, base)
    if not isinstance(sweep.get("base"), str):
        raise ConfigError(f"{where} base: expected an array preset or configuration file, "
                          f"got {sweep.get('base')!r}")
    base_config = array_named(sweep["base"], base, where)
    compute = sweep.get("compute", "timing")
    if compute not in COMPUTE:
        raise ConfigError(f"{where} compute: expected one of {', '.join(COMPUTE)}, "
                          f"got {compute!r}")
    sampling, synthetic, fit = accuracy_keys(sweep, where, base)
    variants = _variants(data.get("variant"), source)
    for trace in map(open_trace, traces):     # rules that never apply: refused before any run
        if len(trace):
            check_schedules(variants, source, trace)
    axes = _axes(data.get("axes", {}), source, base_config, variants)
    scope = [*KEYS, *(["variant"] if variants else [])]
    raw = sweep.get("constraints", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{where} constraints: expected a list of expressions, got {raw!r}")
    constraints = tuple(Constraint(c, scope, f"{where} constraints[{i}]")
                        for i, c in enumerate(raw))
    spec = SweepSpec(name, traces, base_config, axes, constraints, variants, compute,
                     sampling, synthetic, fit, source, text)
    if spec.size > MAX_RUNS:
        raise ConfigError(f"{source}: [axes] make {spec.size:,} runs, more than {MAX_RUNS:,}")
    return spec


def _variants(raw: Any, source: str) -> tuple[Schedule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: [[variant]]: expected one or more tables")
    return variant_tables(raw, source)


def _axes(raw: Any, source: str, base: ArrayConfig, variants: tuple[Schedule, ...]
          ) -> tuple[tuple[str, tuple], ...]:
    where = f"{source}: [axes]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table of keys")
    flat = once_each(_axis_tables(raw, where), source)
    axes = []
    for key, value in flat.items():
        if key not in KEYS:
            raise ConfigError(f"{where} unknown key '{key}' (expected a configuration key: "
                              f"{', '.join(KEYS)})")
        if variants and key in NUMERICS_KEYS:
            raise ConfigError(f"{where} {key}: numerics come from [[variant]] tables here; "
                              "give them either as axes or as variants, not both")
        values = _values(value, f"{where} {key}")
        for v in values:
            _check_value(base, key, v, f"{where} {key}")
        axes.append((key, values))
    if variants:       # outermost: runs next to each other share the numerics
        axes.insert(0, ("variant", tuple(v.name for v in variants)))
    return tuple(axes)


def _axis_tables(raw: dict, where: str) -> Iterator[tuple[str, dict]]:
    """(place, {flat key: value}) of each axis as written, in order: ``[axes] rows`` in
    ("axes", ...), ``[axes.dram] bytes_per_cycle`` as dram_bytes_per_cycle in ("axes.dram",
    ...), so that a key given in two places is named with both."""
    for key, value in raw.items():
        if key in SCHEMA and isinstance(value, dict) and not {"start", "stop"} & set(value):
            for sub in value:                 # [axes.dram] bytes_per_cycle = [...]
                if sub not in SCHEMA[key]:
                    raise ConfigError(f"{where} {key}.{sub}: unknown key (expected one of "
                                      f"{', '.join(SCHEMA[key])})")
            yield f"axes.{key}", {(f"dram_{sub}" if key == "dram" else sub): v
                                  for sub, v in value.items()}
        else:
            yield "axes", {key: value}


def _values(value: Any, where: str) -> tuple:
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: an empty list gives no runs")
        if len(value) > MAX_VALUES:
            raise ConfigError(f"{where}: {len(value):,} values, more than {MAX_VALUES:,}")
        if len(set(map(repr, value))) != len(value):
            raise ConfigError(f"{where}: a value is listed twice")
        return tuple(value)
    if isinstance(value, dict):
        return _range(value, where)
    return (value,)


def _range(table: dict, where: str) -> tuple:
    keys = set(table)
    if keys not in ({"start", "stop", "step"}, {"start", "stop", "factor"}):
        raise ConfigError(f"{where}: a range is {{start, stop, step}} or {{start, stop, "
                          f"factor}}, got keys {sorted(keys)}")
    nums = {k: table[k] for k in keys}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in nums.values()):
        raise ConfigError(f"{where}: range bounds must be finite numbers, got {table!r}")
    start, stop = nums["start"], nums["stop"]
    if "step" in nums:
        step = nums["step"]
        if step <= 0 or stop < start:
            raise ConfigError(f"{where}: expected start <= stop and step > 0, got {table!r}")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > MAX_VALUES:
            raise ConfigError(f"{where}: {count:,} values, more than {MAX_VALUES:,}")
        return tuple(start + i * step for i in range(count))
    factor = nums["factor"]
    if factor <= 1 or start <= 0 or stop < start:
        raise ConfigError(f"{where}: expected 0 < start <= stop and factor > 1, got {table!r}")
    count = math.floor(math.log(stop / start) / math.log(factor) + 1e-9) + 1
    if count > MAX_VALUES:
        raise ConfigError(f"{where}: {count:,} values, more than {MAX_VALUES:,}")
    return tuple(start * factor**i for i in range(count))


def _check_value(base: ArrayConfig, key: str, value: Any, where: str) -> None:
    """One axis value on its own: its type and range (the configuration's own checks), or
    that its numerics name resolves (whether a combination does is checked per run)."""
    if key not in NUMERICS_KEYS:
        replace(base, **{key: value}, source=where)
        return
    if key == "block_accumulator" and value == NONE:
        return
    if not (isinstance(value, str) and value.strip()):
        raise ConfigError(f"{where}: expected names such as 'hbfp4', got {value!r}")
    try:
        if key in ("input", "weight"):
            resolve(value)
        elif parse_accumulator(value).kind != "fixed" and key == "block_accumulator":
            raise ValueError(f"expected a fixed-point accumulator such as 'fixed16' or "
                             f"'{NONE}', got {value!r}")
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def trace_hashes(spec: SweepSpec) -> list[str]:
    """SHA-256 of each trace's manifest: a trace's identity in run keys and in stores."""
    return [hashlib.sha256((t / "manifest.json").read_bytes()).hexdigest()
            for t in spec.traces]


def _identity(spec: SweepSpec) -> dict:
    """What every run of ``spec`` shares: the traces (manifest hashes), what is computed."""
    traces = trace_hashes(spec)
    compute: Any = spec.compute
    if compute == "accuracy":
        s = spec.sampling
        compute = {"accuracy": {"seed": s.seed, "max_outputs": s.max_outputs,
                                "max_macs": s.max_macs, "synthetic": spec.synthetic,
                                "fit": None if spec.fit is None else hashlib.sha256(
                                    (spec.fit / "manifest.json").read_bytes()).hexdigest()}}
    return {"traces": traces, "compute": compute}


def _canonical_config(config: ArrayConfig) -> dict:
    """Every value that shapes time and cost, numerics left to the schedule; numbers of
    float keys as floats (8 and 8.0 are one bandwidth), infinity as "inf"."""
    out = {}
    for k in KEYS:
        if k in NUMERICS_KEYS:
            continue
        v = getattr(config, k)
        out[k] = "inf" if v == math.inf else float(v) if k in FLOAT_KEYS else v
    return out
