"""The one rounding vocabulary of hbfpsim: formats (operand quantization) and accumulators
(every addition) round with the same four modes, named and numbered here once.

=============  ===============================  ==========================================
``Rounding``   spellings accepted               what it does (IEEE 754-2019 name)
=============  ===============================  ==========================================
``RNE`` (0)    ``rne``, ``even``                to nearest, ties to even (roundTiesToEven)
``RNA`` (1)    ``rna``, ``away``                to nearest, ties away from zero
                                                (roundTiesToAway; microxcaling's "nearest")
``RTZ`` (2)    ``rtz``, ``zero``                toward zero, i.e. truncate the magnitude
                                                (roundTowardZero)
``STOCHASTIC``  ``stochastic``                   up in magnitude with probability equal to
(3)                                             the discarded fraction (seeded, reproducible)
=============  ===============================  ==========================================

``even`` and ``away`` are the names format rounding has always used; ``rne`` and ``rtz``
the accumulator-spec modifiers (``fp16:rtz``). All of them are accepted everywhere; text
output uses the first spelling. The integer values are what the numba kernels receive.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Rounding(IntEnum):
    """A rounding mode. ``Rounding.parse`` reads any accepted spelling."""

    RNE = 0
    RNA = 1
    RTZ = 2
    STOCHASTIC = 3

    @property
    def label(self) -> str:
        """The canonical spelling: rne, rna, rtz or stochastic."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: Any, what: str = "rounding") -> Rounding:
        """The mode named by ``value`` (a Rounding or an accepted spelling, any case);
        a ValueError naming ``what`` otherwise."""
        if isinstance(value, Rounding):
            return value
        if isinstance(value, str) and value.strip().lower() in SPELLINGS:
            return SPELLINGS[value.strip().lower()]
        raise ValueError(f"{what}={value!r} is not a rounding mode; expected one of "
                         f"{', '.join(SPELLINGS)}")

    def __str__(self) -> str:
        return self.label

    def __format__(self, spec: str) -> str:
        return format(self.label, spec)


SPELLINGS = {"rne": Rounding.RNE, "even": Rounding.RNE, "rna": Rounding.RNA,
             "away": Rounding.RNA, "rtz": Rounding.RTZ, "zero": Rounding.RTZ,
             "stochastic": Rounding.STOCHASTIC}
