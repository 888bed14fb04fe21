"""``hbfpsim train`` run files: what to train, in which formats, over which seeds.

    [train]
    task = "digits"                 # digits | text
    variants = ["fp32", "hbfp8", "hbfp6", "hbfp4", "booster"]   # formats or presets
    seeds = [0, 1, 2]
    epochs = 30
    out = "runs/train_digits"

plus, optionally, ``batch``, ``lr`` and its schedule (``lr_schedule``: constant, cosine or
step; ``warmup_steps``, ``lr_final`` (cosine: the last step's rate over ``lr``),
``lr_milestones`` and ``lr_gamma`` (step decay at those epochs); ``hbfpsim.train.rates``),
the method (``hbfpsim.train.method``: ``rounding``, a mode or a table by role;
``blocking``, gemm or emulator; ``attention``, emulated or fp32; ``storage``, auto, none or a
format name; ``stored``, weights or all), the text task's model and data sizes,
``[train.exact]`` (GEMMs accumulated bit-exactly by the MAC engine: ``layers``, ``phases``,
``epochs``), ``[train.capture]`` (write a trace of one run's GEMMs: ``variant``, ``seed``,
``epochs``, ``steps`` per epoch, ``layers`` (name patterns), ``path``, ``max_bytes``) and
``[[variant]]`` tables with their own numerics and rules, as in replay run files (one
schedule object for both; rules may also select ``steps``), and their own method keys.
The method keys of ``[train]`` apply to every variant that does not set them itself (a
method preset, ``booster-cnn`` or ``booster-transformer``, sets them all).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hbfpsim.config import ConfigError, read_toml
from hbfpsim.replay.runfile import variant_tables
from hbfpsim.schedule import PRESETS, Schedule
from hbfpsim.staging import as_path
from hbfpsim.train.emulate import exact_spec
from hbfpsim.train.method import METHOD_PRESETS, Method, Variant, as_variant, with_changes
from hbfpsim.train.rates import SHAPES, LearningRate
from hbfpsim.validate import integer_key, is_integer, known_keys, main_table, name_list

METHOD_KEYS = ("rounding", "blocking", "attention", "storage", "stored")
LR_KEYS = ("lr_schedule", "warmup_steps", "lr_final", "lr_milestones", "lr_gamma")
SHAPE_KEYS = ("lr_final", "lr_milestones", "lr_gamma")   # each for one lr_schedule only
TRAIN_KEYS = ("task", "variants", "seeds", "epochs", "batch", "lr", "out", "steps_per_epoch",
              "context", "width", "depth", "heads", "text_bytes", "val_windows", "exact",
              "capture", *METHOD_KEYS, *LR_KEYS)
CAPTURE_KEYS = ("variant", "seed", "epochs", "steps", "layers", "path", "max_bytes")
DEFAULTS = {"digits": {"epochs": 30, "batch": 32, "lr": 0.05},
            "text": {"epochs": 6, "batch": 32, "lr": 3e-3, "steps_per_epoch": 100,
                     "context": 64, "width": 64, "depth": 2, "heads": 4,
                     "text_bytes": 2_000_000, "val_windows": 256}}
TEXT_LIMITS = {"steps_per_epoch": (1, 10**6), "context": (2, 1024), "width": (4, 1024),
               "depth": (1, 32), "heads": (1, 64), "text_bytes": (10_000, 50_000_000),
               "val_windows": (1, 10**5)}


@dataclass(frozen=True)
class Capture:
    variant: str
    seed: int
    epochs: tuple[int, ...]
    steps: int
    layers: tuple[str, ...]      # fnmatch patterns of converted layer names
    path: Path
    max_bytes: float | None


@dataclass(frozen=True)
class TrainSpec:
    task: str
    settings: dict               # the task's keyword arguments (batch, lr, sizes)
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    epochs: int
    out: Path
    rate: LearningRate
    exact: dict | None
    capture: Capture | None
    source: str

    def key(self, variant: Variant, seed: int) -> str:
        """What a checkpoint must match to be resumed: everything that changes the run."""
        text = json.dumps({"task": self.task, "settings": self.settings, "seed": seed,
                           "variant": variant.to_dict(), "epochs": self.epochs,
                           "rate": (variant.rate or self.rate).to_dict(), "exact": self.exact},
                          sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def load(path: str | Path, out: str | Path | None = None) -> TrainSpec:
    """Read and validate a training run file; ``out`` overrides its ``[train] out``."""
    path = as_path(path, "train.load: path")
    data, _ = read_toml(path, "training run file")
    return parse(data, source=str(path), base=path.resolve().parent, out=out)


def parse(data: dict, *, source: str = "<dict>", base: Path = Path("."),
          out: str | Path | None = None) -> TrainSpec:
    """Validate a training run given as nested dicts (the TOML structure)."""
    table = main_table(data, "train", ("train", "variant"), TRAIN_KEYS, source,
                       "the task and variants")
    where = f"{source}: [train]"
    task = table.get("task")
    if task not in DEFAULTS:
        raise ConfigError(f"{where} task: expected one of {', '.join(DEFAULTS)}, got {task!r}")
    defaults = DEFAULTS[task]
    if task == "digits":
        stray = sorted(set(table) & set(TEXT_LIMITS))
        if stray:
            raise ConfigError(f"{where} {stray[0]}: only the text task takes it")
    settings = {"batch": integer_key(table, "batch", where, defaults["batch"], 1, 4096),
                "lr": _base_rate(table.get("lr", defaults["lr"]), where)}
    if task == "text":
        for key, (low, high) in TEXT_LIMITS.items():
            settings[key] = integer_key(table, key, where, defaults[key], low, high)
        if settings["width"] % settings["heads"]:
            raise ConfigError(f"{where} width: {settings['width']} is not a multiple of "
                              f"heads ({settings['heads']})")
    try:
        method = with_changes(Method(), **{k: table.get(k) for k in METHOD_KEYS})
    except ValueError as err:
        raise ConfigError(f"{where} {err}") from None
    epochs = integer_key(table, "epochs", where, defaults["epochs"], 1, 10_000)
    rate = _rate(table, where, settings["lr"], epochs)
    lr_table = {k: table[k] for k in ("lr", *LR_KEYS) if k in table}
    variants = _variants(table, data.get("variant", []), where, source, method,
                         (lr_table, settings["lr"], epochs))
    seeds = _seeds(table.get("seeds", [0]), where)
    out = out if out is not None else table.get("out", f"runs/{Path(source).stem}")
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise ConfigError(f"{where} out: expected a folder path, got {out!r}")
    try:
        exact = exact_spec(table.get("exact"))
    except ValueError as err:
        raise ConfigError(f"{where} {err}") from None
    names = [v.name for v in variants]
    capture = _capture(table.get("capture"), names, seeds, epochs, where, base)
    if capture is not None and variants[names.index(capture.variant)].method.blocking != "gemm":
        raise ConfigError(f"{where} capture: variant {capture.variant!r} uses emulator "
                          "blocking; a trace records each GEMM's operands as the hardware "
                          "reads them (blocking gemm)")
    if exact is not None and any(v.method.blocking != "gemm" for v in variants):
        raise ConfigError(f"{where} exact: bit-exact accumulation needs blocking gemm in "
                          "every variant")
    return TrainSpec(task, settings, variants, seeds, epochs, Path(out), rate, exact, capture,
                     source)


def _rate(table: dict, where: str, base: float, epochs: int) -> LearningRate:
    shape = table.get("lr_schedule", "constant")
    if shape not in SHAPES:
        raise ConfigError(f"{where} lr_schedule: expected one of {', '.join(SHAPES)}, got "
                          f"{shape!r}")
    warmup = integer_key(table, "warmup_steps", where, 0, 0, 10**7)
    final = table.get("lr_final", 0.0)
    if isinstance(final, bool) or not isinstance(final, (int, float)) or \
            not 0 <= final <= 1:
        raise ConfigError(f"{where} lr_final: expected a fraction of lr in [0, 1], got "
                          f"{final!r}")
    gamma = table.get("lr_gamma", 0.1)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ConfigError(f"{where} lr_gamma: expected a factor in (0, 1], got {gamma!r}")
    milestones = table.get("lr_milestones", [])
    if not isinstance(milestones, list) or not all(
            is_integer(m, 1, epochs - 1)
            for m in milestones) or milestones != sorted(set(milestones)):
        raise ConfigError(f"{where} lr_milestones: expected increasing epochs in [1, "
                          f"{epochs - 1}], got {milestones!r}")
    for key, needs in (("lr_final", "cosine"), ("lr_milestones", "step"),
                       ("lr_gamma", "step")):
        if key in table and shape != needs:
            raise ConfigError(f"{where} {key}: applies to lr_schedule = \"{needs}\", not "
                              f"{shape!r}")
    if shape == "step" and not milestones:
        raise ConfigError(f"{where} lr_milestones: lr_schedule = \"step\" needs the epochs "
                          "at which the rate drops")
    return LearningRate(base, shape, warmup, float(final), tuple(milestones), float(gamma))


def _base_rate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not (math.isfinite(value) and 0 < value <= 10):
        raise ConfigError(f"{where} lr: expected a number in (0, 10], got {value!r}")
    return float(value)


def _variants(table: dict, raw: Any, where: str, source: str, method: Method,
              lr: tuple) -> tuple[Variant, ...]:
    named = []
    if "variants" in table:
        for name in name_list(table, "variants", where):
            try:
                variant = as_variant(name)
            except (ConfigError, ValueError) as err:
                raise ConfigError(f"{where} variants: {name!r}: {err}") from None
            chosen = variant.method if name in METHOD_PRESETS else method
            named.append(Variant(Schedule(name, variant.schedule.default,
                                          variant.schedule.rules), chosen))
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: variant: expected [[variant]] tables")
    tables = (*named, *_variant_tables(raw, source, method, lr))
    if not tables:
        raise ConfigError(f"{where} variants: give at least one format or preset (or a "
                          "[[variant]] table)")
    names = [v.name for v in tables]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"{where} variants: {dup!r} is named twice")
    return tables


def _variant_tables(raw: list, source: str, method: Method, lr: tuple
                    ) -> tuple[Variant, ...]:
    """``[[variant]]`` tables: a schedule as in replay run files, plus method keys and a
    learning rate of its own (``lr`` and the schedule keys; those not given come from
    ``[train]``, except, when the variant sets ``lr_schedule``, the keys of one shape)."""
    presets = {**PRESETS, **{name: v.schedule for name, v in METHOD_PRESETS.items()}}
    own = (*METHOD_KEYS, "lr", *LR_KEYS)
    plain = [{k: v for k, v in t.items() if k not in own} if isinstance(t, dict) else t
             for t in raw]
    schedules = variant_tables(plain, source, steps=True, presets=presets)
    lr_table, base, epochs = lr
    out = []
    for i, (t, schedule) in enumerate(zip(raw, schedules)):
        where = f"{source}: [[variant]] {i + 1} ({schedule.name})"
        preset = METHOD_PRESETS.get(t.get("schedule"))
        rate = None
        if any(k in t for k in ("lr", *LR_KEYS)):
            inherited = {k: v for k, v in lr_table.items()
                         if "lr_schedule" not in t or k not in SHAPE_KEYS}
            table = {**inherited, **{k: t[k] for k in ("lr", *LR_KEYS) if k in t}}
            rate = _rate(table, where, _base_rate(table.get("lr", base), where), epochs)
        try:
            out.append(Variant(schedule, with_changes(
                preset.method if preset else method, **{k: t.get(k) for k in METHOD_KEYS}),
                rate))
        except ValueError as err:
            raise ConfigError(f"{where} {err}") from None
    return tuple(out)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 100 or not all(
            is_integer(s, 0, 2**32 - 1) for s in value) \
            or len(set(value)) != len(value):
        raise ConfigError(f"{where} seeds: expected 1 to 100 distinct integers in [0, 2^32), "
                          f"got {value!r}")
    return tuple(value)


def _capture(raw: Any, names: list[str], seeds: tuple[int, ...], epochs: int, where: str,
             base: Path) -> Capture | None:
    if raw is None:
        return None
    where = f"{where} capture"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    known_keys(raw, CAPTURE_KEYS, where)
    variant = raw.get("variant", names[0])
    if variant not in names:
        raise ConfigError(f"{where} variant: expected one of {', '.join(names)}, got "
                          f"{variant!r}")
    seed = raw.get("seed", seeds[0])
    if seed not in seeds or isinstance(seed, bool):
        raise ConfigError(f"{where} seed: expected one of the run's seeds {list(seeds)}, got "
                          f"{seed!r}")
    chosen = raw.get("epochs", [0])
    if not isinstance(chosen, list) or not chosen or not all(
            is_integer(e, 0, epochs - 1) for e in chosen):
        raise ConfigError(f"{where} epochs: expected a list of epochs in [0, {epochs - 1}], "
                          f"got {chosen!r}")
    steps = integer_key(raw, "steps", where, 1, 1, 10**6)
    layers = raw.get("layers", ["*"])
    if not isinstance(layers, list) or not layers or not all(
            isinstance(p, str) and p.strip() for p in layers):
        raise ConfigError(f"{where} layers: expected a list of layer name patterns, got "
                          f"{layers!r}")
    path = raw.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where} path: expected the trace folder to write, got {path!r}")
    budget = raw.get("max_bytes")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or not (math.isfinite(budget) and budget >= 0)):
        raise ConfigError(f"{where} max_bytes: expected a number >= 0, got {budget!r}")
    return Capture(variant, seed, tuple(sorted(set(chosen))), steps, tuple(layers), base / path,
                   budget)
