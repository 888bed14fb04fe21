"""How an emulated training run rounds, blocks and stores its tensors: the settings that let
hbfpsim follow a published training method, next to the format schedule that says which
format each GEMM uses.

- ``rounding`` per tensor role: ``activations`` (a layer's input, both operands of an
  activation product), ``weights`` (a layer's weight as a GEMM reads it), ``gradients`` (the
  gradient of a layer's output) and ``storage`` (the wide copy of the parameters kept
  between optimizer steps); each any mode of ``hbfpsim.formats.Rounding``.
- ``blocking``: ``gemm`` quantizes each GEMM's operands in blocks along that GEMM's own
  reduction axis, again for every product (forward, backward-data, backward-weight): what a
  block-floating-point accelerator computes. ``emulator`` quantizes the input, the weight
  and the output gradient once each, in 1-D blocks along the tensor's last memory axis, and
  the backward products reuse them: what the HBFP emulators compute (HBFPEmulator's
  ``float_to_bfp_blocked``). The block size is the format's (``hbfp4@8``).
- ``attention``: the products of two activations (``MatMul`` modules) ``emulated`` or in
  ``fp32``.
- ``storage``: the format of the parameters' wide copy after each step (``auto``: HBFP16
  with the schedule's block when it uses HBFP, else none; a name or a Format), and
  ``stored``: which parameters
  it holds, the converted layers' ``weights`` or ``all`` trainable parameters (biases and
  normalization scales too, as the HBFP emulators' optimizer does).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from hbfpsim import formats
from hbfpsim.formats import Format
from hbfpsim.formats.rounding import Rounding
from hbfpsim.numerics import Numerics
from hbfpsim.format_schedule import FIRST, LAST, PRESETS, Rule, Schedule
from hbfpsim.train.rates import LearningRate

ROLES = ("activations", "weights", "gradients", "storage")
BLOCKINGS = ("gemm", "emulator")
ATTENTION = ("emulated", "fp32")
STORED = ("weights", "all")


@dataclass(frozen=True)
class Roundings:
    """The rounding mode of each tensor role."""

    activations: Rounding = Rounding.RNE
    weights: Rounding = Rounding.RNE
    gradients: Rounding = Rounding.RNE
    storage: Rounding = Rounding.RNE

    @classmethod
    def of(cls, value: Any, what: str = "rounding") -> Roundings:
        """From a Roundings, one mode for every role (``"stochastic"``) or a table by role
        (``{"weights": "even", "gradients": "stochastic"}``; roles not given round to
        nearest even)."""
        if isinstance(value, Roundings):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(ROLES))
            if unknown:
                raise ValueError(f"{what}: unknown role {unknown[0]!r} (expected "
                                 f"{', '.join(ROLES)})")
            return cls(**{role: Rounding.parse(mode, f"{what}.{role}")
                          for role, mode in value.items()})
        mode = Rounding.parse(value, what)
        return cls(mode, mode, mode, mode)

    @property
    def stochastic(self) -> bool:
        return Rounding.STOCHASTIC in self.modes

    @property
    def modes(self) -> tuple[Rounding, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def __str__(self) -> str:
        if len(set(self.modes)) == 1:
            return self.activations.label
        return " ".join(f"{role}={mode.label}" for role, mode in zip(ROLES, self.modes))


@dataclass(frozen=True)
class Method:
    """Rounding, blocking, attention and storage of an emulated run (module docstring)."""

    rounding: Roundings = Roundings()
    blocking: str = "gemm"
    attention: str = "emulated"
    storage: str | Format | None = "auto"
    stored: str = "weights"

    def __post_init__(self) -> None:
        for key, allowed in (("blocking", BLOCKINGS), ("attention", ATTENTION),
                             ("stored", STORED)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}: expected one of {', '.join(allowed)}, got "
                                 f"{getattr(self, key)!r}")
        if not isinstance(self.rounding, Roundings):
            raise TypeError(f"rounding: expected a Roundings, got {self.rounding!r}")

    def to_dict(self) -> dict:
        """The canonical form, for keys and identities."""
        storage = self.storage.canonical if isinstance(self.storage, Format) else self.storage
        return {"rounding": dict(zip(ROLES, (m.label for m in self.rounding.modes))),
                "blocking": self.blocking, "attention": self.attention, "storage": storage,
                "stored": self.stored}

    def __str__(self) -> str:
        storage = ("fp32" if self.storage is None else getattr(self.storage, "name",
                                                                   self.storage))
        return (f"{self.blocking} blocking, {self.rounding} rounding, attention "
                f"{self.attention}, storage {storage} ({self.stored})")


@dataclass(frozen=True)
class Variant:
    """One arithmetic a training run compares: a format schedule and a method (and, when it
    has one of its own, a learning-rate schedule)."""

    schedule: Schedule
    method: Method = Method()
    rate: LearningRate | None = field(default=None, repr=False)    # None: the run's

    @property
    def name(self) -> str:
        return self.schedule.name

    def to_dict(self) -> dict:
        """The canonical form of what it computes (schedule, method, its own rate if any)."""
        return {"schedule": self.schedule.to_dict(), "method": self.method.to_dict(),
                "rate": None if self.rate is None else self.rate.to_dict()}

    def __str__(self) -> str:
        return f"{self.schedule}; {self.method}" + (f"; learning rate {self.rate}"
                                                    if self.rate else "")


def _method_preset(name: str, block: int, attention: str, keep_wide: bool,
                   epochs: tuple = (None, None), steps: tuple = (None, None)) -> Variant:
    def hbfp(bits: int) -> Format:
        return formats.get(f"hbfp{bits}@{block}", compat="hbfpemulator")

    narrow = Numerics.create(hbfp(4), source=f"preset {name}")
    wide = Numerics.create(hbfp(6), source=f"preset {name}")
    rules = ((Rule(wide, layers=(FIRST, LAST)),) if keep_wide else ()) + (
        Rule(wide, epochs=epochs, steps=steps),)
    return Variant(Schedule(name, narrow, rules),
                   Method(Roundings.of("stochastic"), "emulator", attention, hbfp(16), "all"))


# The Accuracy Booster as its authors train (Harma et al., arXiv 2211.10737, and the public
# HBFPEmulator fork): HBFP4 with stochastic rounding everywhere and the emulator's exponent
# rule (compat="hbfpemulator"), x, W and the output gradient quantized once in 1-D blocks
# along their last axis, every parameter's wide copy in HBFP16;
# the CNN recipe (CIFAR ResNets: blocks of 8) keeps the first and last layers in HBFP6 and
# boosts the last epoch, the transformer recipe (blocks of 64, attention in floating point)
# boosts the last 1% of the steps.
METHOD_PRESETS = {
    "booster-cnn": _method_preset("booster-cnn", 8, "emulated", True, epochs=("last", "last")),
    "booster-transformer": _method_preset("booster-transformer", 64, "fp32", False,
                                          steps=("99%", "last")),
}


def as_variant(schedule: str | Schedule | Variant) -> Variant:
    """A Variant from a Variant, a Schedule (the default method), a method preset
    (``booster-cnn``, ``booster-transformer``: schedule and method), a schedule preset
    (``booster``) or a format name (the fixed schedule: FP32 accumulation, no block
    accumulator, as the public emulators compute)."""
    if isinstance(schedule, Variant):
        return schedule
    if isinstance(schedule, Schedule):
        return Variant(schedule)
    if not isinstance(schedule, str):
        raise ValueError(f"schedule: expected a format name, a preset "
                         f"({', '.join([*PRESETS, *METHOD_PRESETS])}) or a Schedule, got "
                         f"{schedule!r}")
    if schedule in METHOD_PRESETS:
        return METHOD_PRESETS[schedule]
    if schedule in PRESETS:
        return Variant(PRESETS[schedule])
    return Variant(Schedule.fixed(Numerics.create(schedule, source="schedule")))


def with_changes(method: Method, **changes: Any) -> Method:
    """``method`` with the settings given (not None) replaced; ``rounding`` a mode or a
    table by role, ``storage`` a format name, ``auto`` or ``none``."""
    given = {k: v for k, v in changes.items() if v is not None}
    if "rounding" in given:
        given["rounding"] = Roundings.of(given["rounding"])
    if "storage" in given:
        given["storage"] = storage_name(given["storage"])
    return replace(method, **given)


def storage_name(value: Any) -> str | None:
    """A storage setting: ``auto``, ``none`` (None: parameters stay FP32) or a format's
    canonical name."""
    if value is None or value == "none":
        return None
    if value == "auto":
        return value
    try:
        return formats.get(value).name
    except ValueError as err:
        raise ValueError(f"storage: expected auto, none or a format name: {err}") from None
