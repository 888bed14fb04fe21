"""The configuration a command names, with a format of its own, and its Verilog on disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hbfpsim.config import ArrayConfig
from hbfpsim.mac import FixedAccumulator, default_plan
from hbfpsim.numerics import Numerics
from hbfpsim.rtl.array import spec_for, verilog
from hbfpsim.staging import staged_dir

FILE = "hbfpsim_array.v"


def with_format(config: ArrayConfig, fmt: str | None) -> ArrayConfig:
    """``config`` with operand format ``fmt`` on both sides (None: as it is). Without a block
    accumulator of its own it takes the format's default one (``mac.default_plan``: the
    narrowest that cannot overflow)."""
    if fmt is None:
        return config
    changed = dataclasses.replace(config, input=fmt, weight=fmt)
    if config.block_accumulator is None:
        first = default_plan(fmt).levels[0].accumulator
        if isinstance(first, FixedAccumulator):
            changed = dataclasses.replace(changed, block_accumulator=str(first))
    return changed


def emit(config: ArrayConfig, out: str | Path, force: bool = False) -> list[Path]:
    """Write ``config``'s array (``hbfpsim_array`` and the modules it instantiates) to the
    folder ``out``, created whole or not at all; the files written."""
    text = verilog(spec_for(config, Numerics.of(config)))
    with staged_dir(out, force=force) as tmp:
        (tmp / FILE).write_text(text)
    return [Path(out) / FILE]
