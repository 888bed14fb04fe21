"""Array configurations: what the hardware is, read from TOML and validated at the boundary.

A configuration file has four sections (see the shipped presets, ``hbfpsim/presets/*.toml``:
``small16``, ``array32``, ``tpu128``, ``array256``, loadable by name)::

    [array]     rows, cols, dataflow ("ws" | "os" | "is"), clock_ghz
    [numerics]  input, weight (operand formats), accumulator (PE / column chain),
                output (output-buffer accumulator), block_accumulator (optional: integer
                accumulation inside a block of a block format)
    [buffers]   input_kib, weight_kib, output_kib, double_buffered, sram_bytes_per_cycle
    [dram]      bytes_per_cycle, latency_cycles

Every value is checked for type and range; an error names the file, the section and key, and
what was expected. Format and accumulator names are strings here; ``hbfpsim.numerics``
resolves them, once (and reports errors with the same file and key). This module imports
nothing from hbfpsim but ``staging`` and ``validate``, and no numba, so every layer may read
it cheaply.
"""

from __future__ import annotations

import math
import reprlib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hbfpsim.staging import as_path
from hbfpsim.validate import (ConfigError, integer_in, is_number, is_text, known_keys,
                              number_in)

DATAFLOWS = ("ws", "os", "is")
PRESETS = Path(__file__).resolve().parent / "presets"

# Ranges keep every timing quantity far inside int64 (array/simulate.py checks the totals)
# and refuse values no hardware has: a typo fails here, not as a 200 GiB allocation.
MAX_SIDE = 2**16                  # PEs per array row or column
MAX_KIB = 2.0**40                 # a buffer of 1 PiB ("ideal memory" uses this)
MIN_BANDWIDTH, MAX_BANDWIDTH = 2.0**-10, 2.0**40   # bytes/cycle
MAX_LATENCY = 2**32               # cycles
MAX_CLOCK_GHZ = 100.0

# section -> key -> (check, expected, default or REQUIRED)
REQUIRED = object()
SCHEMA: dict[str, dict[str, tuple]] = {
    "array": {
        "rows": (integer_in(1, MAX_SIDE), f"an integer in [1, {MAX_SIDE}]", REQUIRED),
        "cols": (integer_in(1, MAX_SIDE), f"an integer in [1, {MAX_SIDE}]", REQUIRED),
        "dataflow": (lambda v: v in DATAFLOWS, "one of 'ws', 'os', 'is'", REQUIRED),
        "clock_ghz": (number_in(1e-6, MAX_CLOCK_GHZ),
                      f"a number in (0, {MAX_CLOCK_GHZ:g}] (GHz)", 1.0),
    },
    "numerics": {
        "input": (is_text, "a format name such as 'hbfp4'", "fp32"),
        "weight": (is_text, "a format name such as 'hbfp4'", "fp32"),
        "block_accumulator": (lambda v: v is None or is_text(v), ("an accumulator such as "
                              "'fixed16'"), None),
        "accumulator": (is_text, "an accumulator such as 'fp32'", "fp32"),
        "output": (is_text, "an accumulator such as 'fp32'", "fp32"),
    },
    "buffers": {
        "input_kib": (number_in(2.0**-10, MAX_KIB), "a positive number up to 2^40 (KiB)",
                      REQUIRED),
        "weight_kib": (number_in(2.0**-10, MAX_KIB), "a positive number up to 2^40 (KiB)",
                       REQUIRED),
        "output_kib": (number_in(2.0**-10, MAX_KIB), "a positive number up to 2^40 (KiB)",
                       REQUIRED),
        "double_buffered": (lambda v: isinstance(v, bool), "true or false", True),
        "sram_bytes_per_cycle": (lambda v: is_number(v, 0, 0)
                                 or is_number(v, MIN_BANDWIDTH, MAX_BANDWIDTH),
                                 "0 (unlimited) or a number in [2^-10, 2^40] (bytes/cycle)", 0),
    },
    "dram": {
        "bytes_per_cycle": (number_in(MIN_BANDWIDTH, MAX_BANDWIDTH),
                            "a number in [2^-10, 2^40] (bytes/cycle)", REQUIRED),
        "latency_cycles": (integer_in(0, MAX_LATENCY), "an integer in [0, 2^32] (cycles)", 0),
    },
}


@dataclass(frozen=True)
class ArrayConfig:
    """One accelerator: an R x C systolic array, its numerics, buffers and DRAM.

    Sizes in KiB (1024 bytes), bandwidths in bytes per cycle of the array clock, latency in
    cycles. ``sram_bytes_per_cycle = 0`` and an infinite ``dram_bytes_per_cycle`` model ideal
    memory."""

    rows: int
    cols: int
    dataflow: str
    clock_ghz: float = 1.0
    input: str = "fp32"
    weight: str = "fp32"
    block_accumulator: str | None = None
    accumulator: str = "fp32"
    output: str = "fp32"
    input_kib: float = 64.0
    weight_kib: float = 64.0
    output_kib: float = 64.0
    double_buffered: bool = True
    sram_bytes_per_cycle: float = 0.0
    dram_bytes_per_cycle: float = math.inf
    dram_latency_cycles: int = 0
    name: str = "custom"
    source: str = field(default="<code>", compare=False)

    def __post_init__(self) -> None:
        for section, keys in SCHEMA.items():
            for key, (check, expected, _) in keys.items():
                value = getattr(self, _attribute(section, key))
                if section == "dram" and key == "bytes_per_cycle" and value == math.inf:
                    continue
                if not check(value):
                    raise ConfigError(f"{self.source}: [{section}] {key}: expected {expected}, "
                                      f"got {reprlib.repr(value)}")

    def varied(self, values: dict[str, Any], name: str, source: str) -> ArrayConfig:
        """This configuration with ``values`` (keys: field names), each already passed by
        its key's ``SCHEMA`` check, named ``name`` from ``source``: built without checking
        every field again (a sweep makes millions; about 1 us against 13 us). The checks
        look at one value at a time, so any combination of checked values passes them."""
        config = object.__new__(ArrayConfig)
        config.__dict__.update(self.__dict__)
        config.__dict__.update(values, name=name, source=source)
        return config

    def ideal(self) -> ArrayConfig:
        """The same array with ideal memory: no DRAM or SRAM bandwidth limit, no latency,
        buffers large enough to hold every operand."""
        from dataclasses import replace
        return replace(self, dram_bytes_per_cycle=math.inf, dram_latency_cycles=0,
                       sram_bytes_per_cycle=0.0, input_kib=2.0**40, weight_kib=2.0**40,
                       output_kib=2.0**40, name=f"{self.name} (ideal memory)")


def _attribute(section: str, key: str) -> str:
    return f"dram_{key}" if section == "dram" else key


def presets() -> list[str]:
    """Names of the shipped array configurations."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def load(spec: str | Path, base: str | Path | None = None) -> ArrayConfig:
    """Read and validate an array configuration: a TOML file (relative paths from ``base``,
    default the current directory) or the name of a shipped preset (``array32``)."""
    path = as_path("." if base is None else base, "load: base") / as_path(spec, "load: spec")
    if not path.exists() and isinstance(spec, str) and spec in presets():
        path = PRESETS / f"{spec}.toml"
    elif not path.exists():
        hint = f" nor a preset ({', '.join(presets())})" if "/" not in str(spec) else ""
        raise ConfigError(f"{path}: no such configuration file{hint}")
    return from_dict(read_toml(path, "configuration file")[0], source=str(path),
                     name=path.stem)


MAX_TOML_BYTES = 2**20     # configuration and run files are a few KiB


def read_toml(path: Path, what: str) -> tuple[dict, str]:
    """(data, text) of the TOML file ``path``: a regular file of at most 1 MiB, UTF-8, valid
    TOML; anything else is a ConfigError naming the file (``what`` says what it should be)."""
    if not path.exists():
        raise ConfigError(f"{path}: no such {what}")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file")
    try:
        if path.stat().st_size > MAX_TOML_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes, more than a {what} "
                              f"holds (at most {MAX_TOML_BYTES:,})")
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text), text
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None


def from_scalesim(path: str | Path, **overrides: Any) -> ArrayConfig:
    """An ArrayConfig from a SCALE-Sim ``.cfg`` file: [architecture_presets] ArrayHeight,
    ArrayWidth, Dataflow, IfmapSramSzkB / FilterSramSzkB / OfmapSramSzkB (input, weight,
    output buffers) and, when [run_presets] InterfaceBandwidth is USER, Bandwidth (SCALE-Sim
    words per cycle; its words are 1 byte, so bytes per cycle); with CALC, DRAM is unlimited.
    SCALE-Sim has no number formats: operands become int8 (1 byte, as its words) with int32
    accumulation, unless ``overrides`` say otherwise (any ArrayConfig field)."""
    import configparser

    path = Path(path)
    parser = configparser.ConfigParser()
    if not path.exists():
        raise ConfigError(f"{path}: no such SCALE-Sim configuration file")
    if not path.is_file() or path.stat().st_size > MAX_TOML_BYTES:
        raise ConfigError(f"{path}: not a regular file of at most {MAX_TOML_BYTES:,} bytes")
    try:
        parser.read_string(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    except configparser.Error as err:
        raise ConfigError(f"{path}: not a valid SCALE-Sim .cfg: {err}") from None

    def get(section, key, convert=str):
        try:
            return convert(parser.get(section, key).strip())
        except (configparser.Error, ValueError) as err:
            raise ConfigError(f"{path}: [{section}] {key}: {err}") from None

    arch = "architecture_presets"
    user_bandwidth = parser.has_option("run_presets", "InterfaceBandwidth") and \
        get("run_presets", "InterfaceBandwidth").upper() == "USER"
    bandwidth = (min(float(b) for b in get(arch, "Bandwidth").split(","))
                 if user_bandwidth else math.inf)
    values = {"rows": get(arch, "ArrayHeight", int), "cols": get(arch, "ArrayWidth", int),
                  "dataflow": get(arch, "Dataflow").lower(), "input": "int8", "weight": "int8",
                  "accumulator": "fixed32", "output": "fixed32",
                  "input_kib": get(arch, "IfmapSramSzkB", float),
                  "weight_kib": get(arch, "FilterSramSzkB", float),
                  "output_kib": get(arch, "OfmapSramSzkB", float),
                  "dram_bytes_per_cycle": bandwidth,
                  "name": parser.get("general", "run_name", fallback=path.stem).strip(),
                  "source": str(path)}
    return ArrayConfig(**{**values, **overrides})


def from_dict(data: dict, source: str = "<dict>", name: str = "custom") -> ArrayConfig:
    """Validate a configuration given as nested dicts (the TOML structure)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a configuration is a table of sections ([array], "
                          f"[buffers], ...), got {type(data).__name__}")
    unknown = sorted(set(data) - set(SCHEMA))
    if unknown:
        raise ConfigError(f"{source}: unknown section [{unknown[0]}] (expected "
                          f"{', '.join(f'[{s}]' for s in SCHEMA)})")
    values: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        known_keys(given, tuple(keys), f"{source}: [{section}]")
        for key, (_, expected, default) in keys.items():
            if key not in given and default is REQUIRED:
                raise ConfigError(f"{source}: [{section}] {key} is missing: expected {expected}")
            values[_attribute(section, key)] = given.get(key, default)
    names = {f.name for f in fields(ArrayConfig)}
    return ArrayConfig(**{k: v for k, v in values.items() if k in names}, name=name,
                       source=source)
