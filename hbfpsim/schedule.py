"""Format schedules: which numerics each GEMM of a training run uses, by layer, phase, epoch.

A schedule is a default ``Numerics`` and an ordered list of rules; a GEMM takes the numerics
of the first rule that matches it, else the default. A rule matches by

- ``layers``: ``fnmatch`` patterns of layer names, plus ``@first`` and ``@last`` for the
  model's first and last layer (in the order the forward pass meets them);
- ``phases``: any of ``fwd``, ``bwd_data``, ``bwd_weight``;
- ``epochs``: an inclusive range ``(first, last)``, either end None for open; ``"last"`` is
  the run's last epoch.

A fixed format is the schedule with no rules. The Accuracy Booster schedule (Harma et al.,
arXiv 2211.10737) ships as the preset ``booster``: HBFP4 everywhere, HBFP6 for the first and
last layers and for the last epoch, each accumulating inside its blocks of 64 in the narrowest
fixed-point register that never overflows (13 and 17 bits: ``cost.default_accumulator``) and
across blocks in FP32.

>>> from hbfpsim.schedule import PRESETS, Where
>>> s = PRESETS["booster"]
>>> where = Where(first_layer="conv1", last_layer="fc", last_epoch=89)
>>> [s.numerics_for(layer, "fwd", epoch, where).input.name
...  for layer, epoch in (("conv1", 0), ("layer2.conv", 0), ("layer2.conv", 89))]
['hbfp6@64', 'hbfp4@64', 'hbfp6@64']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from hbfpsim.numerics import Numerics
from hbfpsim.trace import PHASES

FIRST, LAST = "@first", "@last"


@dataclass(frozen=True)
class Where:
    """What ``@first``, ``@last`` and the epoch ``"last"`` mean for one trace or run."""

    first_layer: str | None = None
    last_layer: str | None = None
    last_epoch: int | None = None


@dataclass(frozen=True)
class Rule:
    """GEMMs of matching layers, phases and epochs use ``numerics``."""

    numerics: Numerics
    layers: tuple[str, ...] = ("*",)
    phases: tuple[str, ...] = PHASES
    epochs: tuple[int | str | None, int | str | None] = (None, None)

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
        if not isinstance(self.epochs, tuple) or len(self.epochs) != 2 or \
                not all(e is None or e == "last" or _epoch(e) for e in self.epochs):
            raise ValueError(f"rule epochs: expected [first, last] with integers >= 0 or "
                             f"'last', got {self.epochs!r}")

    def matches(self, layer: str, phase: str, epoch: int, where: Where) -> bool:
        if phase not in self.phases:
            return False
        named = {FIRST: where.first_layer, LAST: where.last_layer}
        if not any(layer == named[p] if p in named else fnmatchcase(layer, p)
                   for p in self.layers):
            return False
        if "last" in self.epochs and where.last_epoch is None:
            raise ValueError("a rule names the last epoch, but the run's last epoch is "
                             "unknown: give Where(last_epoch=...)")
        low, high = (where.last_epoch if e == "last" else e for e in self.epochs)
        return (low is None or epoch >= low) and (high is None or epoch <= high)


def _epoch(e: object) -> bool:
    return isinstance(e, int) and not isinstance(e, bool) and e >= 0


@dataclass(frozen=True)
class Schedule:
    """The numerics of every GEMM of a run: the first matching rule's, else ``default``."""

    name: str
    default: Numerics
    rules: tuple[Rule, ...] = ()

    def numerics_for(self, layer: str, phase: str, epoch: int, where: Where = Where()
                     ) -> Numerics:
        if not isinstance(layer, str) or phase not in PHASES or not _epoch(epoch):
            raise ValueError(f"numerics_for: expected a layer name, a phase in "
                             f"{', '.join(PHASES)} and an epoch >= 0, got {layer!r}, "
                             f"{phase!r}, {epoch!r}")
        for rule in self.rules:
            if rule.matches(layer, phase, epoch, where):
                return rule.numerics
        return self.default

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


def where_of(layers: Iterable[tuple[str, str]], epochs: Iterable[int],
             last_epoch: int | None = None) -> Where:
    """``Where`` for a run whose GEMMs have these (layer, phase) pairs in order and these
    epochs: first and last layer in forward order (any phase when no ``fwd`` GEMM is
    given); the last epoch is ``last_epoch`` when known (a training run of E epochs has
    E - 1), else the largest seen."""
    pairs = list(layers)
    order = [layer for layer, phase in pairs if phase == "fwd"] or [layer for layer, _ in pairs]
    seen = list(epochs)
    return Where(order[0] if order else None, order[-1] if order else None,
                 last_epoch if last_epoch is not None else max(seen, default=None))


def _booster() -> Schedule:
    hbfp4 = Numerics.create("hbfp4", block_accumulator="fixed13", source="preset booster")
    hbfp6 = Numerics.create("hbfp6", block_accumulator="fixed17", source="preset booster")
    return Schedule("booster", hbfp4, (Rule(hbfp6, layers=(FIRST, LAST)),
                                       Rule(hbfp6, epochs=("last", "last"))))


PRESETS = {"booster": _booster()}

__all__ = ["PHASES", "PRESETS", "Rule", "Schedule", "Where", "where_of"]
