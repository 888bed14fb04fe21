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

Values legal alone but not together are refused here, before any work, naming both: the
capture's ``path`` and the output folder (resolved; neither may be or hold the other), a
digits ``batch`` beyond the training set (``data.DIGITS_TRAIN``), a text ``context`` (and
a ``val_windows`` given) beyond the validation text of ``text_bytes``, and, against the
run's length (``epochs`` x its steps per epoch): ``warmup_steps`` taking the whole run,
rules and ``exact`` epochs selecting none of it, capture ``steps`` beyond an epoch; and a
``[train]`` method key that no variant takes. Layer patterns need the model: ``job.run``
checks them before training.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hbfpsim.config import ConfigError, read_toml
from hbfpsim.format_schedule import PRESETS, Rule, Schedule, _resolve, variant_tables
from hbfpsim.staging import as_path
from hbfpsim.train.data import DIGITS_TRAIN, text_sizes
from hbfpsim.train.emulate import exact_spec
from hbfpsim.train.method import METHOD_PRESETS, Method, Variant, as_variant, with_changes
from hbfpsim.train.rates import SHAPES, LearningRate
from hbfpsim.validate import (checked_key, choice_key, integer_key, is_integer, is_number,
                              is_text, known_keys, main_table, name_list, number_in)

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
    task = choice_key(table, "task", where, None, tuple(DEFAULTS))
    defaults = DEFAULTS[task]
    settings = _task_settings(table, task, where)
    try:
        method = with_changes(Method(), **{k: table.get(k) for k in METHOD_KEYS})
    except ValueError as err:
        raise ConfigError(f"{where} {err}") from None
    epochs = integer_key(table, "epochs", where, defaults["epochs"], 1, 10_000)
    run = (Length(epochs, settings["steps_per_epoch"]) if task == "text"
           else Length(epochs, DIGITS_TRAIN // settings["batch"], settings["batch"]))
    rate = _rate(table, where, settings["lr"], run)
    lr_table = {k: table[k] for k in ("lr", *LR_KEYS) if k in table}
    variants = _variants(table, data.get("variant", []), where, source, method,
                         (lr_table, settings["lr"], run))
    seeds = tuple(checked_key(table, "seeds", where, [0], _seed_list,
                              "1 to 100 distinct integers in [0, 2^32)"))
    out_key = "[train] out" if out is None else "--out"
    out = out if out is not None else table.get("out", f"runs/{Path(source).stem}")
    if not (isinstance(out, (str, Path)) and is_text(str(out))):
        raise ConfigError(f"{where} out: expected a folder path, got {out!r}")
    try:
        exact = exact_spec(table.get("exact"))
    except ValueError as err:
        raise ConfigError(f"{where} {err}") from None
    if exact is not None and not exact["epochs"][0] <= min(exact["epochs"][1], epochs - 1):
        raise ConfigError(f"{where} exact epochs: {list(exact['epochs'])} selects none of the "
                          f"run's epochs (epochs = {epochs}: 0 to {epochs - 1})")
    names = [v.name for v in variants]
    capture = _capture(table.get("capture"), names, seeds, run, where, base)
    if capture is not None:
        _apart(capture.path, Path(out), source, out_key)
    if capture is not None and variants[names.index(capture.variant)].method.blocking != "gemm":
        raise ConfigError(f"{where} capture: variant {capture.variant!r} uses emulator "
                          "blocking; a trace records each GEMM's operands as the hardware "
                          "reads them (blocking gemm)")
    if exact is not None and any(v.method.blocking != "gemm" for v in variants):
        raise ConfigError(f"{where} exact: bit-exact accumulation needs blocking gemm in "
                          "every variant")
    return TrainSpec(task, settings, variants, seeds, epochs, Path(out), rate, exact, capture,
                     source)


def _task_settings(table: dict, task: str, where: str) -> dict:
    """The task's model and data settings (``batch``, ``lr``, and the text task's
    ``TEXT_LIMITS`` keys), each checked, and checked against the task's data."""
    defaults = DEFAULTS[task]
    if task == "digits":
        stray = sorted(set(table) & set(TEXT_LIMITS))
        if stray:
            raise ConfigError(f"{where} {stray[0]}: only the text task takes it")
    settings = {"batch": integer_key(table, "batch", where, defaults["batch"], 1, 4096),
                "lr": _base_rate(table, where, defaults["lr"])}
    if task == "text":
        for key, (low, high) in TEXT_LIMITS.items():
            settings[key] = integer_key(table, key, where, defaults[key], low, high)
        if settings["width"] % settings["heads"]:
            raise ConfigError(f"{where} width: {settings['width']} is not a multiple of "
                              f"heads ({settings['heads']})")
        _text_fits(table, settings, where)
    elif settings["batch"] > DIGITS_TRAIN:
        raise ConfigError(f"{where} batch: {settings['batch']} is more than the digits "
                          f"task's training set ({DIGITS_TRAIN} images): an epoch would "
                          "run no step")
    return settings


def _apart(capture: Path, out: Path, source: str, out_key: str) -> None:
    """The capture's trace folder and the output folder, resolved, must not overlap: the
    trace writer replaces its folder whole, and the run writes into its own."""
    try:
        a, b = capture.resolve(), out.resolve()
    except (OSError, ValueError, RuntimeError) as err:     # a NUL byte, a link loop
        raise ConfigError(f"{source}: [train.capture] path {str(capture)!r} or the output "
                          f"folder {str(out)!r} ({out_key}): not a usable path ({err})"
                          ) from None
    if a == b or a in b.parents or b in a.parents:
        how = ("is" if a == b else "is inside" if b in a.parents else "holds")
        raise ConfigError(f"{source}: [train.capture] path {capture} {how} the output "
                          f"folder {out} ({out_key}); the trace and the run's outputs need "
                          "folders of their own")


def _text_fits(table: dict, settings: dict, where: str) -> None:
    """The text task's windows (``context`` + 1 characters) must fit in its validation text
    (the last 10% of ``text_bytes``), and ``val_windows``, when given, must be there."""
    context, size = settings["context"], settings["text_bytes"]
    _, val = text_sizes(size)
    if context >= val:
        raise ConfigError(f"{where} context: {context} needs {context + 1} characters per "
                          f"window, more than the validation text of text_bytes = {size} "
                          f"holds ({val}, its last 10%)")
    fit = (val - 1) // context
    if "val_windows" in table and settings["val_windows"] > fit:
        raise ConfigError(f"{where} val_windows: {settings['val_windows']} windows of context "
                          f"{context} are more than the validation text of text_bytes = "
                          f"{size} ({val} characters) holds ({fit})")


@dataclass(frozen=True)
class Length:
    """A run's length: ``epochs`` of ``per_epoch`` optimizer steps (the digits task's training
    images over ``batch``, the text task's ``steps_per_epoch``)."""

    epochs: int
    per_epoch: int
    batch: int | None = None     # the digits task's: its steps per epoch follow from it

    @property
    def steps(self) -> int:
        return self.epochs * self.per_epoch

    @property
    def epoch(self) -> str:
        """An epoch's steps and where they come from."""
        if self.batch is None:
            return f"steps_per_epoch = {self.per_epoch}"
        return (f"{self.per_epoch} steps per epoch: {DIGITS_TRAIN} training images // batch "
                f"= {self.batch}")

    def __str__(self) -> str:
        return f"{self.steps} steps: epochs = {self.epochs} x {self.epoch}"


def _reach(rule: Rule, run: Length) -> str | None:
    """Why ``rule`` selects no GEMM of ``run`` (its epochs, or its steps within them), or
    None when it selects some."""
    last = run.epochs - 1
    low, high = (_resolve(e, last, "epoch") for e in rule.epochs)
    low, high = max(low or 0, 0), min(last if high is None else high, last)
    if low > high:
        return (f"epochs {list(rule.epochs)} selects none of the run's epochs "
                f"(epochs = {run.epochs}: 0 to {last})")
    if not rule.by_step:
        return None
    first, final = (_resolve(e, run.steps - 1, "step") for e in rule.steps)
    first = max(first or 0, low * run.per_epoch)
    final = min(run.steps - 1 if final is None else final, (high + 1) * run.per_epoch - 1)
    if first > final:
        return (f"steps {list(rule.steps)} selects none of the run's steps"
                + ("" if rule.epochs == (None, None) else f" in epochs {list(rule.epochs)}")
                + f" (0 to {run.steps - 1}; {run})")
    return None


def _rate(table: dict, where: str, base: float, run: Length) -> LearningRate:
    epochs = run.epochs
    shape = choice_key(table, "lr_schedule", where, "constant", SHAPES)
    warmup = integer_key(table, "warmup_steps", where, 0, 0, 10**7)
    if warmup >= run.steps:
        raise ConfigError(f"{where} warmup_steps: {warmup} warm-up steps take the whole run "
                          f"({run}), leaving no step to lr_schedule = {shape!r}")
    final = checked_key(table, "lr_final", where, 0.0, number_in(0, 1),
                        "a fraction of lr in [0, 1]")
    gamma = checked_key(table, "lr_gamma", where, 0.1, lambda v: is_number(v, 0, 1) and v > 0,
                        "a factor in (0, 1]")
    milestones = checked_key(
        table, "lr_milestones", where, [],
        lambda v: isinstance(v, list) and all(is_integer(m, 1, epochs - 1) for m in v)
        and v == sorted(set(v)), f"increasing epochs in [1, {epochs - 1}]")
    for key, needs in (("lr_final", "cosine"), ("lr_milestones", "step"),
                       ("lr_gamma", "step")):
        if key in table and shape != needs:
            raise ConfigError(f"{where} {key}: applies to lr_schedule = \"{needs}\", not "
                              f"{shape!r}")
    if shape == "step" and not milestones:
        raise ConfigError(f"{where} lr_milestones: lr_schedule = \"step\" needs the epochs "
                          "at which the rate drops")
    return LearningRate(base, shape, warmup, float(final), tuple(milestones), float(gamma))


def _base_rate(table: dict, where: str, default: float) -> float:
    """``lr``: the base learning rate (``default`` when absent), in (0, 10]."""
    return float(checked_key(table, "lr", where, default,
                             lambda v: is_number(v, 0, 10) and v > 0, "a number in (0, 10]"))


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
    for key in METHOD_KEYS:
        if key in table and not _inherits(key, table, raw):
            raise ConfigError(f"{where} {key}: applies to no variant (each is a method "
                              f"preset in variants, which sets the whole method, or a "
                              f"[[variant]] that sets {key} or names a method preset)")
    return tables


def _inherits(key: str, table: dict, raw: list) -> bool:
    """Whether some variant takes the method key ``key`` from ``[train]``: a format or
    schedule preset in ``variants``, or a ``[[variant]]`` that neither sets ``key`` nor names
    a method preset."""
    named = name_list(table, "variants", "") if "variants" in table else []
    return (any(name not in METHOD_PRESETS for name in named)
            or any(key not in t and t.get("schedule") not in METHOD_PRESETS for t in raw))


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
    lr_table, base, run = lr
    out = []
    for i, (t, schedule) in enumerate(zip(raw, schedules)):
        where = f"{source}: [[variant]] {i + 1} ({schedule.name})"
        if "schedule" not in t:
            for j, rule in enumerate(schedule.rules):
                why = _reach(rule, run)
                if why is not None:
                    raise ConfigError(f"{where} rule {j + 1}: {why}: the rule would never "
                                      "apply")
        preset = METHOD_PRESETS.get(t.get("schedule"))
        rate = None
        if any(k in t for k in ("lr", *LR_KEYS)):
            inherited = {k: v for k, v in lr_table.items()
                         if "lr_schedule" not in t or k not in SHAPE_KEYS}
            table = {**inherited, **{k: t[k] for k in ("lr", *LR_KEYS) if k in t}}
            rate = _rate(table, where, _base_rate(table, where, base), run)
        try:
            out.append(Variant(schedule, with_changes(
                preset.method if preset else method, **{k: t.get(k) for k in METHOD_KEYS}),
                rate))
        except ValueError as err:
            raise ConfigError(f"{where} {err}") from None
    return tuple(out)


def _seed_list(value: Any) -> bool:
    """1 to 100 distinct integers in [0, 2^32)."""
    return (isinstance(value, list) and 1 <= len(value) <= 100
            and all(is_integer(s, 0, 2**32 - 1) for s in value) and len(set(value)) == len(value))


def _capture(raw: Any, names: list[str], seeds: tuple[int, ...], run: Length, where: str,
             base: Path) -> Capture | None:
    if raw is None:
        return None
    epochs = run.epochs
    where = f"{where} capture"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    known_keys(raw, CAPTURE_KEYS, where)
    variant = choice_key(raw, "variant", where, names[0], tuple(names))
    seed = checked_key(raw, "seed", where, seeds[0], lambda v: is_integer(v) and v in seeds,
                       f"one of the run's seeds {list(seeds)}")
    chosen = checked_key(raw, "epochs", where, [0],
                         lambda v: isinstance(v, list) and bool(v)
                         and all(is_integer(e, 0, epochs - 1) for e in v),
                         f"a list of epochs in [0, {epochs - 1}]")
    steps = integer_key(raw, "steps", where, 1, 1, 10**6)
    if steps > run.per_epoch:
        raise ConfigError(f"{where} steps: {steps} steps are more than an epoch has "
                          f"({run.epoch})")
    layers = checked_key(raw, "layers", where, ["*"],
                         lambda v: isinstance(v, list) and bool(v) and all(map(is_text, v)),
                         "a list of layer name patterns")
    path = checked_key(raw, "path", where, None, is_text, "the trace folder to write")
    budget = checked_key(raw, "max_bytes", where, None, lambda v: v is None or is_number(v, 0),
                         "a number >= 0")
    return Capture(variant, seed, tuple(sorted(set(chosen))), steps, tuple(layers), base / path,
                   budget)
