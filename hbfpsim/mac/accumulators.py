"""Accumulator specifications: what one register of a MAC unit holds and how it rounds.

Parsed from strings, ``base[:modifier...]``:

- fixed point ``fixed{w}``: w-bit two's complement integer (8 <= w <= 64) counting in units
  of the products' least significant bit; modifiers ``sat`` (default: clamp to the range on
  overflow) or ``wrap`` (keep the low w bits).
- floating point ``fp32`` (= e8m23), ``bf16`` (= e8m7), ``fp16`` (= e5m10) or ``e{E}m{M}``
  (2 <= E <= 11, 1 <= M <= 52): IEEE-style binary float, bias 2^(E-1) - 1, the all-ones
  exponent reserved for Inf/NaN (``formats.FloatSpec.ieee``). Modifiers: a rounding mode
  (``rne`` (default), ``rna``, ``rtz``, ``stochastic``, or any spelling ``Rounding.parse``
  accepts: ``even``, ``away``, ``zero``); ``sub`` (default: subnormals kept) or ``ftz``
  (results below the smallest normal flush to zero); ``inf`` (default: overflow gives Inf)
  or ``sat`` (clamp to +-max).

Examples: ``fixed16``, ``fixed12:wrap``, ``fp32``, ``e5m10:stochastic``, ``bf16:rtz:ftz:sat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hbfpsim.formats.base import ArgumentTypeError, check_rounding_type, type_name
from hbfpsim.formats.floating import FloatSpec
from hbfpsim.formats.rounding import SPELLINGS, Rounding
from hbfpsim.validate import is_integer

FLOAT_NAMES = {"fp32": (8, 23), "bf16": (8, 7), "fp16": (5, 10)}
_FIXED = re.compile(r"fixed([0-9]+)")
_FLOAT = re.compile(r"e([0-9]+)m([0-9]+)")


@dataclass(frozen=True)
class FixedAccumulator:
    """w-bit two's complement integer accumulator."""

    width: int
    wrap: bool = False
    kind = "fixed"

    def __post_init__(self) -> None:
        if not is_integer(self.width):
            raise ArgumentTypeError(f"accumulator fixed: width must be an integer, got "
                                    f"{type_name(self.width)}")
        if not isinstance(self.wrap, (bool, np.bool_)):
            raise ArgumentTypeError(f"accumulator fixed{self.width}: wrap must be True or "
                                    f"False, got {type_name(self.wrap)}")
        if not is_integer(self.width, 8, 64):
            raise ValueError(f"accumulator fixed{self.width}: fixed-point width must be in "
                             "[8, 64]")

    @property
    def bits(self) -> int:
        """Bits of the register."""
        return self.width

    @property
    def max(self) -> int:
        return 2 ** (self.width - 1) - 1

    @property
    def min(self) -> int:
        return -(2 ** (self.width - 1))

    def __str__(self) -> str:
        return f"fixed{self.width}" + (":wrap" if self.wrap else "")


@dataclass(frozen=True)
class FloatAccumulator:
    """Binary floating-point accumulator, one rounding per operation. Its range is that of
    the IEEE-style layout ``spec`` (``formats.FloatSpec.ieee``); ``rounding`` takes a
    :class:`Rounding` or any of its spellings."""

    exp_bits: int
    man_bits: int
    rounding: Rounding = Rounding.RNE
    subnormals: bool = True
    saturate: bool = False
    kind = "float"

    def __post_init__(self) -> None:
        for key in ("exp_bits", "man_bits"):
            if not is_integer(getattr(self, key)):
                raise ArgumentTypeError(f"accumulator e{{E}}m{{M}}: {key} must be an integer, "
                                        f"got {type_name(getattr(self, key))}")
        for key in ("subnormals", "saturate"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise ArgumentTypeError(f"accumulator e{self.exp_bits}m{self.man_bits}: {key} "
                                        f"must be True or False, got "
                                        f"{type_name(getattr(self, key))}")
        if not (is_integer(self.exp_bits, 2, 11) and is_integer(self.man_bits, 1, 52)):
            raise ValueError(f"accumulator e{self.exp_bits}m{self.man_bits}: e{{E}}m{{M}} needs "
                             "2 <= E <= 11 and 1 <= M <= 52")
        object.__setattr__(self, "rounding",
                           Rounding.parse(check_rounding_type(self.rounding, "rounding")))

    @cached_property
    def spec(self) -> FloatSpec:
        """The register's layout: emin, max and bits derive from it."""
        return FloatSpec.ieee(self.exp_bits, self.man_bits)

    @property
    def bits(self) -> int:
        """Bits of the register: sign, exponent, fraction."""
        return self.spec.bits

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal."""
        return self.spec.emin

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value."""
        return self.spec.emax

    @property
    def max(self) -> float:
        """Largest finite value, (2 - 2^-M) 2^emax."""
        return self.spec.max

    @property
    def base(self) -> str:
        """The layout's name: ``fp32``, ``bf16``, ... or ``eXmY``."""
        return _FLOAT_BASES.get((self.exp_bits, self.man_bits),
                                f"e{self.exp_bits}m{self.man_bits}")

    def __str__(self) -> str:
        mods = [m for m, default in ((self.rounding.label, "rne"),
                                     ("sub" if self.subnormals else "ftz", "sub"),
                                     ("sat" if self.saturate else "inf", "inf")) if m != default]
        return ":".join([self.base, *mods])


Accumulator = FixedAccumulator | FloatAccumulator
_FLOAT_BASES = {layout: name for name, layout in FLOAT_NAMES.items()}


def parse_accumulator(spec: str | Accumulator) -> Accumulator:
    """An accumulator from its spec string (see the module docstring); objects pass through.
    Anything else is an ``ArgumentTypeError`` (a TypeError); a bad spec a ValueError."""
    if isinstance(spec, (FixedAccumulator, FloatAccumulator)):
        return spec
    if not isinstance(spec, str):
        raise ArgumentTypeError(f"an accumulator spec must be a string or an Accumulator, got "
                                f"{type_name(spec)}")
    base, *mods = [part.strip() for part in spec.strip().lower().split(":")]
    if m := _FIXED.fullmatch(base):
        options = _modifiers(spec, mods, {"overflow": ("sat", "wrap")})
        return FixedAccumulator(int(m[1]), options.get("overflow") == "wrap")
    if base in FLOAT_NAMES:
        exp_bits, man_bits = FLOAT_NAMES[base]
    elif m := _FLOAT.fullmatch(base):
        exp_bits, man_bits = int(m[1]), int(m[2])
    else:
        raise ValueError(f"unknown accumulator {spec!r}; expected fixed<w>, fp32, bf16, fp16 "
                         "or e<E>m<M>, with :modifiers")
    options = _modifiers(spec, mods, {"rounding": tuple(SPELLINGS), "subnormals": ("sub", "ftz"),
                                      "overflow": ("inf", "sat")})
    return FloatAccumulator(exp_bits, man_bits, Rounding.parse(options.get("rounding", "rne")),
                            options.get("subnormals", "sub") == "sub",
                            options.get("overflow", "inf") == "sat")


def _modifiers(spec: str, mods: list[str], groups: dict[str, tuple[str, ...]]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for mod in mods:
        group = next((g for g, values in groups.items() if mod in values), None)
        if group is None:
            allowed = ", ".join(v for values in groups.values() for v in values)
            raise ValueError(f"accumulator {spec!r}: unknown modifier {mod!r} (allowed: {allowed})")
        if group in chosen:
            raise ValueError(f"accumulator {spec!r}: {group} given twice")
        chosen[group] = mod
    return chosen
