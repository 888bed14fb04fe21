"""Number formats: what a number is. Quantize, encode to integer fields, storage bits.

>>> from hbfpsim import formats
>>> formats.get("hbfp4").storage_bits
4.125
>>> formats.quantize([0.3, -1.2, 2.5], "mxfp4").tolist()
[0.25, -1.0, 2.0]
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from hbfpsim.formats.base import NONFINITE_POLICIES, ArgumentTypeError, Encoded, Format, type_name
from hbfpsim.formats.floating import SCALAR_SPECS, FloatFormat, FloatSpec
from hbfpsim.formats.hbfp import HBFPFormat
from hbfpsim.formats.integer import Int8Format
from hbfpsim.formats.mx import ELEMENTS as MX_ELEMENTS, MXFormat
from hbfpsim.formats.rounding import Rounding

__all__ = ["ArgumentTypeError", "Encoded", "FloatSpec", "Format", "NONFINITE_POLICIES", "Rounding",
           "STANDARD", "get", "quantize"]

STANDARD = ("fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "int8", "hbfp8", "hbfp6", "hbfp4",
            "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8")
_HBFP = re.compile(r"hbfp([0-9]+)(?:@([0-9]+))?")
_OPTIONS = {"fp": ("saturate",), "int8": ("per",), "hbfp": ("compat",), "mx": ()}


def get(name: str, **options: Any) -> Format:
    """The format called ``name`` (case-insensitive), e.g. ``"hbfp4"`` (= ``"hbfp4@64"``),
    ``"hbfp6@32"``, ``"mxfp6_e3m2"``, ``"fp8_e4m3"``. Options: ``saturate`` (fp formats),
    ``per="tensor"|"channel"`` (int8), ``compat="hbfpemulator"`` (hbfp). A name or option of
    the wrong type is an :class:`ArgumentTypeError` (a TypeError), a wrong value a
    ValueError."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"a format name must be a string, got {type_name(name)}")
    key = name.strip().lower()
    hbfp = _HBFP.fullmatch(key)
    kind = ("fp" if key in SCALAR_SPECS else "int8" if key == "int8" else
            "hbfp" if hbfp else "mx" if key in MX_ELEMENTS else None)
    if kind is None:
        raise ValueError(f"unknown format {name!r}; expected one of {', '.join(STANDARD)} "
                         "or hbfp<m>@<block>")
    unknown = sorted(set(options) - set(_OPTIONS[kind]))
    if unknown:
        takes = ", ".join(_OPTIONS[kind]) or "no options"
        raise ValueError(f"format {key!r} has no option {unknown[0]!r} (it takes: {takes})")
    if kind == "fp":
        return FloatFormat.create(key, **options)
    if kind == "int8":
        return Int8Format.create(**options)
    if kind == "mx":
        return MXFormat.create(key)
    return HBFPFormat.create(int(hbfp[1]), int(hbfp[2] or 64), **options)


def resolve(fmt: str | Format, **options: Any) -> Format:
    """A Format from a name (with options) or a Format object (without); anything else is
    an :class:`ArgumentTypeError`."""
    if isinstance(fmt, Format):
        if options:
            raise ValueError(f"options {sorted(options)} apply to format names, not to {fmt!r}")
        return fmt
    if not isinstance(fmt, str):
        raise ArgumentTypeError(f"fmt must be a format name or a Format, got "
                                f"{type_name(fmt)}")
    return get(fmt, **options)


def quantize(x: Any, fmt: str | Format, axis: int = -1, rounding: str | Rounding = "even", *,
             seed: int | None = None, nonfinite: str = "raise", **options: Any) -> np.ndarray:
    """``x`` rounded to format ``fmt`` (a name or a Format) along ``axis``: same shape,
    float32 for float32 input, float64 for float64/int input. ``rounding``: even (= rne) |
    away (= rna) | rtz | stochastic (needs ``seed``), see :class:`Rounding`. ``nonfinite``:
    raise | propagate. Other keyword options go to :func:`get` (``compat``, ``saturate``,
    ``per``)."""
    return resolve(fmt, **options).quantize(x, axis=axis, rounding=rounding, seed=seed,
                                            nonfinite=nonfinite)
