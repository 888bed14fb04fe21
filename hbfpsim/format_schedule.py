"""Format schedules: which numerics each GEMM of a training run uses, by layer, phase, epoch.

A schedule is a default ``Numerics`` and an ordered list of rules; a GEMM takes the numerics
of the first rule that matches it, else the default. A rule matches by

- ``layers``: ``fnmatch`` patterns of layer names, plus ``@first`` and ``@last`` for the
  model's first and last layer (in the order the forward pass meets them);
- ``phases``: any of ``fwd``, ``bwd_data``, ``bwd_weight``;
- ``epochs``: an inclusive range ``(first, last)``, either end None for open;
- ``steps``: the same over a training run's optimizer steps (counted from 0 over the whole
  run), so that a boost can cover the last N steps; traces know epochs only.

An end of either range is an integer >= 0, ``"last"`` (the run's last epoch or step),
``"last-N"`` (N before it) or ``"P%"`` (the epoch or step P percent into the run:
``floor(P / 100 x count)``, so ``["99%", "last"]`` is the last 1%).

A fixed format is the schedule with no rules. The Accuracy Booster schedule (Harma et al.,
arXiv 2211.10737) ships as the preset ``booster``: HBFP4 everywhere, HBFP6 for the first and
last layers and for the last epoch, each accumulating inside its blocks of 64 in the narrowest
fixed-point register that never overflows (13 and 17 bits: ``cost.default_accumulator``) and
across blocks in FP32.

In a run file (replay, sweep or training), each ``[[variant]]`` table is a schedule
(``variant_tables`` reads and checks them, errors naming the file, table and key): the keys
of an array's ``[numerics]`` (the default), or ``schedule = "booster"`` (a preset), and any
``[[variant.rule]]`` tables with ``layers``, ``phases``, ``epochs`` (and in training run
files ``steps``) and the numerics keys they change.

>>> from hbfpsim.format_schedule import PRESETS, RunContext
>>> s = PRESETS["booster"]
>>> context = RunContext(first_layer="conv1", last_layer="fc", last_epoch=89)
>>> [s.numerics_for(layer, "fwd", epoch, context).input.name
...  for layer, epoch in (("conv1", 0), ("layer2.conv", 0), ("layer2.conv", 89))]
['hbfp6@64', 'hbfp4@64', 'hbfp6@64']
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from hbfpsim.numerics import KEYS, Numerics
from hbfpsim.trace import PHASES
from hbfpsim.validate import ConfigError, is_integer, known_keys

FIRST, LAST = "@first", "@last"


@dataclass(frozen=True)
class RunContext:
    """What ``@first``, ``@last`` and the epoch ``"last"`` mean for one trace or run."""

    first_layer: str | None = None
    last_layer: str | None = None
    last_epoch: int | None = None
    last_step: int | None = None


@dataclass(frozen=True)
class Rule:
    """GEMMs of matching layers, phases and epochs use ``numerics``."""

    numerics: Numerics
    layers: tuple[str, ...] = ("*",)
    phases: tuple[str, ...] = PHASES
    epochs: tuple[int | str | None, int | str | None] = (None, None)
    steps: tuple[int | str | None, int | str | None] = (None, None)

    def __post_init__(self) -> None:
        if not isinstance(self.numerics, Numerics):
            raise TypeError(f"rule numerics: expected a Numerics (Numerics.create(...)), got "
                            f"{self.numerics!r}")
        for key in ("layers", "phases"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not value or \
                    not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"rule {key}: expected a non-empty tuple of names, got "
                                 f"{value!r}")
        bad = [p for p in self.phases if p not in PHASES]
        if bad:
            raise ValueError(f"rule phases: {bad[0]!r} is not one of {', '.join(PHASES)}")
        for key in ("epochs", "steps"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or len(value) != 2 or \
                    not all(e is None or _end(e) for e in value):
                raise ValueError(f"rule {key}: expected [first, last] with integers >= 0, "
                                 f"'last', 'last-N' or 'P%', got {value!r}")
            if all(is_integer(e) for e in value) and value[0] > value[1]:
                raise ValueError(f"rule {key}: first {value[0]} is after last {value[1]}, "
                                 "so the rule would never apply")

    @property
    def by_step(self) -> bool:
        """Whether the rule depends on the step (not only on the epoch)."""
        return self.steps != (None, None)

    def check(self, context: RunContext) -> None:
        """A ValueError if the epochs or steps range, its relative ends (``"last"``,
        ``"last-N"``, ``"P%"``) resolved against ``context``, has its first end after its
        last: the rule would never apply. Ranges whose relative ends ``context`` cannot
        resolve (the last epoch or step unknown) are left to ``matches``."""
        for key, last in (("epochs", context.last_epoch), ("steps", context.last_step)):
            ends = getattr(self, key)
            if last is None and any(isinstance(e, str) for e in ends):
                continue
            _ordered(ends, (_resolve(e, last, key[:-1]) for e in ends), last, key[:-1])

    def matches(self, layer: str, phase: str, epoch: int, context: RunContext,
                step: int | None = None) -> bool:
        if phase not in self.phases:
            return False
        named = {FIRST: context.first_layer, LAST: context.last_layer}
        if not any(layer == named[p] if p in named else fnmatchcase(layer, p)
                   for p in self.layers):
            return False
        if not _within(epoch, self.epochs, context.last_epoch, "epoch"):
            return False
        if not self.by_step:
            return True
        if step is None:
            raise ValueError("a rule selects steps, which only a training run has (traces "
                             "know epochs): use epochs")
        return _within(step, self.steps, context.last_step, "step")


_RELATIVE = re.compile(r"last(?:-([0-9]{1,9}))?|([0-9]{1,3}(?:\.[0-9]+)?)%")


def _end(e: object) -> bool:
    """An integer >= 0, 'last', 'last-N' or 'P%' with 0 <= P <= 100."""
    if is_integer(e, 0):
        return True
    found = isinstance(e, str) and _RELATIVE.fullmatch(e)
    return bool(found) and (found[2] is None or float(found[2]) <= 100)


def _resolve(e: int | str | None, last: int | None, what: str) -> int | None:
    if e is None or is_integer(e):
        return e
    if last is None:
        raise ValueError(f"a rule names {e!r}, but the run's last {what} is unknown: give "
                         f"RunContext(last_{what}=...)")
    found = _RELATIVE.fullmatch(e)
    if found[2] is not None:
        return math.floor(float(found[2]) / 100 * (last + 1))
    return last - int(found[1] or 0)


def _ordered(ends: tuple, resolved: Iterable[int | None], last: int | None,
             what: str) -> tuple[int | None, int | None]:
    """The resolved ``(low, high)`` of the range ``ends``; a ValueError naming the range and
    both resolved ends when low is after high."""
    low, high = resolved
    if low is not None and high is not None and low > high:
        raise ValueError(f"{what}s {list(ends)}: the first end resolves to {what} {low} "
                         f"and the last to {what} {high} (the run's last {what} is {last}), "
                         "so the rule would never apply")
    return low, high


def _within(value: int, ends: tuple, last: int | None, what: str) -> bool:
    low, high = _ordered(ends, (_resolve(e, last, what) for e in ends), last, what)
    return (low is None or value >= low) and (high is None or value <= high)


@dataclass(frozen=True)
class Schedule:
    """The numerics of every GEMM of a run: the first matching rule's, else ``default``."""

    name: str
    default: Numerics
    rules: tuple[Rule, ...] = ()

    def numerics_for(self, layer: str, phase: str, epoch: int,
                     context: RunContext = RunContext(), step: int | None = None) -> Numerics:
        """The numerics of ``layer``'s ``phase`` GEMM in ``epoch`` (and, for rules by step,
        at the run's optimizer ``step``)."""
        if not isinstance(layer, str) or phase not in PHASES or not is_integer(epoch, 0) or \
                not (step is None or is_integer(step, 0)):
            raise ValueError(f"numerics_for: expected a layer name, a phase in "
                             f"{', '.join(PHASES)}, an epoch >= 0 and a step >= 0 or None, "
                             f"got {layer!r}, {phase!r}, {epoch!r}, {step!r}")
        for i, rule in enumerate(self.rules, 1):
            try:
                if rule.matches(layer, phase, epoch, context, step):
                    return rule.numerics
            except ValueError as err:
                raise ValueError(f"schedule {self.name!r} rule {i}: {err}") from None
        return self.default

    def check(self, context: RunContext) -> None:
        """Every rule against a run's ``context`` (``Rule.check``), before the run's work:
        a ValueError naming the schedule, the rule, its range and both resolved ends if a
        rule would never apply."""
        for i, rule in enumerate(self.rules, 1):
            try:
                rule.check(context)
            except ValueError as err:
                raise ValueError(f"schedule {self.name!r} rule {i}: {err}") from None

    def to_dict(self) -> dict:
        """The canonical form (the name left out: it labels, it does not compute); a rule's
        ``steps`` appear only when it selects steps."""
        return {"default": self.default.to_dict(),
                "rules": [{"layers": list(r.layers), "phases": list(r.phases),
                           "epochs": list(r.epochs), "numerics": r.numerics.to_dict(),
                           **({"steps": list(r.steps)} if r.by_step else {})}
                          for r in self.rules]}

    @property
    def by_step(self) -> bool:
        """Whether any rule selects steps (the schedule then changes within an epoch)."""
        return any(rule.by_step for rule in self.rules)

    @property
    def numerics(self) -> tuple[Numerics, ...]:
        """Every distinct numerics the schedule may use, the default first."""
        seen = [self.default]
        for rule in self.rules:
            if rule.numerics not in seen:
                seen.append(rule.numerics)
        return tuple(seen)

    @classmethod
    def fixed(cls, numerics: Numerics, name: str | None = None) -> Schedule:
        """One numerics for every GEMM."""
        return cls(name or numerics.input.name, numerics)


def run_context(layers: Iterable[tuple[str, str]], epochs: Iterable[int],
             last_epoch: int | None = None) -> RunContext:
    """``RunContext`` for a run whose GEMMs have these (layer, phase) pairs in order and these
    epochs: first and last layer in forward order (any phase when no ``fwd`` GEMM is
    given); the last epoch is ``last_epoch`` when known (a training run of E epochs has
    E - 1), else the largest seen."""
    pairs = list(layers)
    order = [layer for layer, phase in pairs if phase == "fwd"] or [layer for layer, _ in pairs]
    seen = list(epochs)
    return RunContext(order[0] if order else None, order[-1] if order else None,
                 last_epoch if last_epoch is not None else max(seen, default=None))


def _booster() -> Schedule:
    hbfp4 = Numerics.create("hbfp4", block_accumulator="fixed13", source="preset booster")
    hbfp6 = Numerics.create("hbfp6", block_accumulator="fixed17", source="preset booster")
    return Schedule("booster", hbfp4, (Rule(hbfp6, layers=(FIRST, LAST)),
                                       Rule(hbfp6, epochs=("last", "last"))))


PRESETS = {"booster": _booster()}


def variant_tables(raw: list, source: str, steps: bool = False,
                   presets: dict[str, Schedule] = PRESETS) -> tuple[Schedule, ...]:
    """The ``[[variant]]`` tables, each checked, names unique. ``steps``: rules may select
    optimizer steps; ``presets``: the schedules ``schedule = NAME`` may name (training run
    files have more)."""
    variants = tuple(variant_table(v, f"{source}: [[variant]] {i + 1}", steps, presets)
                     for i, v in enumerate(raw))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{source}: [[variant]] name {dup!r} is used twice")
    return variants


def _numerics(table: dict, where: str, inherit: dict | None = None) -> Numerics:
    names = {**(inherit or {}), **{k: table[k] for k in KEYS if k in table}}
    for key, value in names.items():
        if not (isinstance(value, str) and value.strip()):
            raise ConfigError(f"{where} {key}: expected a name such as 'hbfp4', got {value!r}")
    return Numerics.create(**names, source=where)


def variant_table(raw: Any, where: str, steps: bool = False,
                  presets: dict[str, Schedule] = PRESETS) -> Schedule:
    """One ``[[variant]]`` table (``where``: its file and position, for errors)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    known_keys(raw, ("name", "schedule", "rule", *KEYS), where)
    name = raw.get("name")
    if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name)):
        raise ConfigError(f"{where} name: expected 1 to 64 ASCII letters, digits, '-', '_', "
                          f"'.', starting with a letter or digit (it names figure files), "
                          f"got {reprlib.repr(name)}")
    if "schedule" in raw:
        extra = sorted(set(raw) - {"name", "schedule"})
        if extra:
            raise ConfigError(f"{where} ({name}) {extra[0]}: a preset schedule takes no other "
                              "keys (write a variant with rules to change its numerics)")
        preset = presets.get(raw["schedule"])
        if preset is None:
            raise ConfigError(f"{where} schedule: expected one of {', '.join(presets)}, "
                              f"got {raw['schedule']!r}")
        return Schedule(name, preset.default, preset.rules)
    inherit = {k: raw[k] for k in KEYS if k in raw}
    rules = raw.get("rule", [])
    if not isinstance(rules, list):
        raise ConfigError(f"{where} rule: expected [[variant.rule]] tables")
    return Schedule(name, _numerics(raw, f"{where} ({name})"),
                    tuple(_rule(r, f"{where} ({name}) rule {i + 1}:", inherit, steps)
                          for i, r in enumerate(rules)))


def _rule(raw: Any, where: str, inherit: dict, steps: bool) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    if "steps" in raw and not steps:
        raise ConfigError(f"{where} steps: rules by step apply to training run files; "
                          "traces know epochs only")
    known_keys(raw, ("layers", "phases", "epochs", "steps", *KEYS), where)
    if not set(raw) & set(KEYS):
        raise ConfigError(f"{where} gives no numerics (input, weight, accumulator, ...)")
    layers = raw.get("layers", ["*"])
    phases = raw.get("phases", list(PHASES))
    epochs = raw.get("epochs", [None, None])
    by_step = raw.get("steps", [None, None])
    for key, value in (("layers", layers), ("phases", phases)):
        if not isinstance(value, list) or not value or not all(isinstance(v, str)
                                                                for v in value):
            raise ConfigError(f"{where} {key}: expected a non-empty list of strings, "
                              f"got {value!r}")
    for key, value in (("epochs", epochs), ("steps", by_step)):
        if not isinstance(value, list):
            raise ConfigError(f"{where} {key}: expected [first, last], got {value!r}")
    try:
        return Rule(_numerics(raw, where, inherit), tuple(layers), tuple(phases),
                    tuple(epochs), tuple(by_step))
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where} {err}") from None


__all__ = ["PHASES", "PRESETS", "Rule", "RunContext", "Schedule", "run_context", "variant_table",
           "variant_tables"]
