"""What an accelerator's arithmetic is: its operand formats and accumulators, resolved once.

A configuration names its numerics as text (``[numerics]`` in TOML: ``input = "hbfp4"``,
``accumulator = "fp32"``, ...). ``Numerics.of(config)`` is the one place those names become
objects (Formats, accumulators), with errors naming the configuration's file and key; every
layer above (the array model, the cost model, later the replay) reads the same object, so no
two layers can disagree about what the hardware is. ``Numerics.create`` builds one from code.

>>> from hbfpsim.numerics import Numerics
>>> n = Numerics.create(input="hbfp4", accumulator="fp32", block_accumulator="fixed16")
>>> n.weight.name, str(n.block_accumulator), n.psum_bits
('hbfp4@64', 'fixed16', 32)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from hbfpsim.config import ArrayConfig, ConfigError
from hbfpsim.formats import Format, resolve
from hbfpsim.mac import Accumulator, FixedAccumulator, parse_accumulator

KEYS = ("input", "weight", "block_accumulator", "accumulator", "output")
_TYPES = {"input": (Format, "a Format"), "weight": (Format, "a Format"),
          "accumulator": (Accumulator, "an accumulator"), "output": (Accumulator, "an accumulator"),
          "block_accumulator": (FixedAccumulator | None, "a FixedAccumulator or None")}


@dataclass(frozen=True)
class Numerics:
    """Operand formats and accumulators of one array.

    ``input`` (A, activations) and ``weight`` (B) are the operand formats; ``accumulator`` is
    the register of the PE chain (a column in WS/IS, a PE in OS); ``output`` the output
    buffer's, which sums the folds; ``block_accumulator``, when set, the fixed-point register
    that sums products inside a block shared by both operands before they enter the chain.
    """

    input: Format
    weight: Format
    accumulator: Accumulator
    output: Accumulator
    block_accumulator: FixedAccumulator | None = None

    def __post_init__(self) -> None:
        for key, (kinds, expected) in _TYPES.items():
            if not isinstance(getattr(self, key), kinds):
                raise TypeError(f"Numerics.{key} must be {expected}, got {getattr(self, key)!r} "
                                "(Numerics.create takes names)")
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, key) for key in KEYS)))

    def __hash__(self) -> int:
        """Computed once: a replay looks numerics up per record."""
        return self._hash

    def __reduce__(self) -> tuple:
        """Rebuilt from its fields, so another process hashes it afresh (string hashes are
        salted per process)."""
        return Numerics, (self.input, self.weight, self.accumulator, self.output,
                          self.block_accumulator)

    @classmethod
    def create(cls, input: str | Format = "fp32", weight: str | Format | None = None,
               accumulator: str | Accumulator = "fp32", output: str | Accumulator = "fp32",
               block_accumulator: str | FixedAccumulator | None = None, *,
               source: str = "<code>") -> Numerics:
        """Numerics from names or objects (``weight`` defaults to ``input``). A bad value
        raises a ConfigError naming ``source`` and the key."""
        given = {"input": input, "weight": input if weight is None else weight,
                 "accumulator": accumulator, "output": output,
                 "block_accumulator": block_accumulator}
        values: dict[str, Any] = {}
        for key, spec in given.items():
            try:
                values[key] = (resolve(spec) if key in ("input", "weight") else
                               None if spec is None else parse_accumulator(spec))
            except ValueError as err:
                raise ConfigError(f"{source}: [numerics] {key}: {err}") from None
        if values["block_accumulator"] is not None and \
                not isinstance(values["block_accumulator"], FixedAccumulator):
            raise ConfigError(f"{source}: [numerics] block_accumulator: expected a fixed-point "
                              f"accumulator such as 'fixed16', got {block_accumulator!r}")
        if values["output"].kind == "fixed" and values["accumulator"].kind != "fixed":
            raise ConfigError(f"{source}: [numerics] output: a fixed-point output buffer "
                              f"({values['output']}) cannot sum the floating-point results of "
                              f"accumulator {values['accumulator']}")
        floating = [k for k in ("input", "weight")
                    if values["block_accumulator"] is not None and values[k].family == "fp"]
        if floating:
            raise ConfigError(f"{source}: [numerics] block_accumulator: sums products in fixed "
                              f"point under a shared exponent, which needs block or integer "
                              f"operands (hbfp, mx, int8); {floating[0]} is "
                              f"{values[floating[0]].name}: remove block_accumulator")
        return cls(**values)

    @classmethod
    def of(cls, config: ArrayConfig) -> Numerics:
        """The numerics a configuration names, resolved once per distinct set of names (and
        source file, which errors name)."""
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"expected an ArrayConfig (hbfpsim.array.load(...)), got "
                            f"{config!r:.80}")
        return _resolved(*(getattr(config, key) for key in KEYS), config.source)

    @property
    def psum_bits(self) -> int:
        """Bits of a partial sum in the output buffer."""
        return self.output.bits

    def to_dict(self) -> dict:
        """The canonical form (formats by canonical name, accumulators by spec): what keys
        and identities hash, equal for equal numerics."""
        return {"input": self.input.canonical, "weight": self.weight.canonical,
                "accumulator": str(self.accumulator), "output": str(self.output),
                "block_accumulator": None if self.block_accumulator is None
                else str(self.block_accumulator)}

    def __str__(self) -> str:
        block = f"{self.block_accumulator} blocks > " if self.block_accumulator else ""
        return (f"{self.input.name} x {self.weight.name}, {block}{self.accumulator} chain > "
                f"{self.output} output")


@lru_cache(maxsize=4096)
def _resolved(input: str, weight: str, block_accumulator: str | None, accumulator: str,
              output: str, source: str) -> Numerics:
    return Numerics.create(input, weight, accumulator, output, block_accumulator, source=source)
