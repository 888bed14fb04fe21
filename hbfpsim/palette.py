"""One colour per number format, the same in every figure (``plots`` and ``replay``'s).

Families keep a hue (FP greys and browns, integers purple, MX blues and greens, HBFP reds,
the Accuracy Booster orange) and each format its own shade. Names are matched without case;
``hbfp{m}@64`` is ``hbfp{m}`` (64 is the default block) and any name starting with
``booster`` (a variant, or the density table's mix) is the Booster's. Any other name (a
variant called ``hbfp4_fixed12``, ``hbfp4@32``) gets a colour derived from a hash of its
name: the same in every figure and every process. This module imports nothing from hbfpsim,
so every layer may use it.
"""

from __future__ import annotations

import colorsys
import hashlib
import re

FORMAT_COLOURS = {
    "fp32": "#252525", "bf16": "#8c8c8c", "fp16": "#8c564b", "fp8_e4m3": "#bcbd22",
    "fp8_e5m2": "#c49c94",
    "int8": "#9467bd",
    "mxfp8_e4m3": "#1f77b4", "mxfp8_e5m2": "#6baed6", "mxfp6_e3m2": "#17becf",
    "mxfp6_e2m3": "#2ca02c", "mxfp4": "#74c476", "mxint8": "#3f007d",
    "hbfp8": "#fc9272", "hbfp6": "#ef3b2c", "hbfp4": "#a50f15",
    "booster": "#ff7f0e",
}
_DEFAULT_BLOCK = re.compile(r"(hbfp\d+)@64")


def format_key(name: str) -> str:
    """The key of ``name`` in ``FORMAT_COLOURS`` (lower case, ``@64`` dropped from HBFP
    names, ``booster ...`` as ``booster``); other names come back lower-cased."""
    key = name.strip().lower()
    if key.startswith("booster"):
        return "booster"
    default = _DEFAULT_BLOCK.fullmatch(key)
    return default[1] if default else key


def format_colour(name: str) -> str:
    """The colour (``#rrggbb``) of the format or variant ``name``: its entry in
    ``FORMAT_COLOURS``, else one derived from the SHA-256 of its key (stable across runs)."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a format or variant name (str), got {name!r:.80}")
    key = format_key(name)
    if key in FORMAT_COLOURS:
        return FORMAT_COLOURS[key]
    digest = hashlib.sha256(key.encode()).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    saturation, value = 0.45 + digest[2] / 255 * 0.35, 0.55 + digest[3] / 255 * 0.3
    return "#" + "".join(f"{round(255 * c):02x}"
                         for c in colorsys.hsv_to_rgb(hue, saturation, value))
