"""Reading and checking a trace's files: the manifest's keys, types and ranges, and each
operand file's header and size (docs/traces.md is the specification).

Every problem is a ``TraceError`` naming the file, the record and what was expected. Files
are only opened when they are regular files (a FIFO or a device would block or never end),
a manifest above ``MAX_MANIFEST_BYTES`` is refused before it is read, and operand paths must
stay inside the trace directory once symbolic links are resolved. Sizes are bounded so that
nothing downstream can overflow int64: m, n, k and count and the elements of A, B and C at
most 2**40 each (so a record's MACs are below 2**60), id, step and epoch at most 2**62.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import stat
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy

from hbfpsim.validate import is_integer

SCHEMA = "hbfpsim-trace/1"
PHASES = ("fwd", "bwd_data", "bwd_weight")
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 256 * 2**20
MAX_SIZE = 2**40       # m, n, k, count; elements of A (m k count), B (k n count), C (m n count)
MAX_INDEX = 2**62      # id, step, epoch
# top-level keys: JSON type; schema, model and records are required
TOP_LEVEL = {"schema": "string", "model": "string", "description": "string",
             "capture": "object", "records": "array"}
REQUIRED = ("schema", "model", "records")
FIELDS = ("id", "step", "epoch", "layer", "phase", "m", "n", "k", "count", "a", "b")
SIZES = ("m", "n", "k", "count")
_TYPES = {"string": str, "object": dict, "array": list}


class TraceError(ValueError):
    """A trace is malformed: the message names the file and the record."""


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def show(value: Any) -> str:
    """A short repr for messages (long lists and strings are cut)."""
    return _REPR.repr(value)


def open_regular(path: Path, missing: str, where: str | None = None) -> tuple[BinaryIO, int]:
    """``path`` opened for binary reading, with its size, if it is a regular file; never
    blocks on a FIFO. ``missing``: the message when it does not exist; ``where``: how
    messages name the file (default: its path)."""
    where = where or str(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise TraceError(f"{where}: not a regular file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise TraceError(f"{where}: {missing}") from None
    except (OSError, ValueError) as err:        # permissions, a loop of links, a NUL byte
        if isinstance(err, TraceError):
            raise
        raise TraceError(f"{where}: cannot open: {err}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):           # replaced since the stat
        os.close(fd)
        raise TraceError(f"{where}: not a regular file")
    return os.fdopen(fd, "rb"), info.st_size


def read_text(path: Path, missing: str, limit: int, what: str) -> str:
    """The UTF-8 text (a leading BOM dropped) of the regular file ``path`` of at most
    ``limit`` bytes; larger files are refused unread. ``what`` names the kind of file."""
    f, size = open_regular(path, missing)
    with f:
        if size > limit:
            raise TraceError(f"{path}: {size:,} bytes, more than a {what} may have "
                             f"({limit:,})")
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise TraceError(f"{path}: more than {limit:,} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TraceError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None


def read_manifest(root: Path) -> dict:
    """The manifest of the trace in ``root``, parsed and checked at the top level."""
    manifest = root / MANIFEST
    if root.exists() and not root.is_dir():
        raise TraceError(f"{root}: not a folder (a trace is a folder holding {MANIFEST})")
    text = read_text(manifest, "no trace manifest here", MAX_MANIFEST_BYTES, "manifest")
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite,
                          object_pairs_hook=_unique)
    except RecursionError:
        raise TraceError(f"{manifest}: not valid JSON: nested too deeply") from None
    except ValueError as err:          # JSONDecodeError, the hooks, ints of > 4300 digits
        raise TraceError(f"{manifest}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise TraceError(f"{manifest}: must be a JSON object, got {show(data)}")
    if data.get("schema") != SCHEMA:
        raise TraceError(f"{manifest}: unknown schema {show(data.get('schema'))} "
                         f"(expected {SCHEMA!r})")
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise TraceError(f"{manifest}: unknown key {show(unknown[0])} (a manifest has "
                         f"{', '.join(TOP_LEVEL)})")
    for key, kind in TOP_LEVEL.items():
        if (key in data or key in REQUIRED) and not isinstance(data.get(key), _TYPES[kind]):
            raise TraceError(f"{manifest}: '{key}' must be a JSON {kind}, got "
                             f"{show(data.get(key))}")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of the float range")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        keys = [k for k, _ in pairs]
        raise ValueError(f"duplicate key {show(next(k for k in keys if keys.count(k) > 1))}")
    return data


def check_values(values: dict) -> None:
    """Raise ValueError (no location) unless ``values`` (every field of a record) are valid."""
    for key in ("id", "step", "epoch", *SIZES):
        v = values[key]
        low, high, top = (1, MAX_SIZE, "2**40") if key in SIZES else (0, MAX_INDEX, "2**62")
        if not is_integer(v, low, high):
            raise ValueError(f"'{key}' must be an integer from {low} to {top}, got {show(v)}")
    m, n, k, count = (values[key] for key in SIZES)
    for name, elements in (("A", m * k * count), ("B", k * n * count), ("C", m * n * count)):
        if elements > MAX_SIZE:
            raise ValueError(f"{name} would have {elements:,} elements (m {m}, n {n}, k {k}, "
                             f"count {count}); at most 2**40")
    if not isinstance(values["layer"], str):
        raise ValueError(f"'layer' must be a string, got {show(values['layer'])}")  # noqa: TRY004
    if values["phase"] not in PHASES:
        raise ValueError(f"'phase' must be one of {', '.join(PHASES)}, "
                         f"got {show(values['phase'])}")
    if (values["a"] is None) != (values["b"] is None):
        raise ValueError("give both operand files or neither")
    for key in ("a", "b"):
        name = values[key]
        if name is not None and (not isinstance(name, str) or not name.endswith(".npy")
                                 or "\0" in name or PurePath(name).is_absolute()
                                 or name.startswith(("/", "\\"))
                                 or ".." in PurePath(name).parts):
            raise ValueError(f"'{key}' must be a relative .npy path inside the trace, "
                             f"got {show(name)}")


def check_record(where: str, raw: Any) -> dict:
    """The fields of one manifest record (defaults filled in); ``where`` prefixes errors."""
    if not isinstance(raw, dict):
        raise TraceError(f"{where}: must be an object, got {show(raw)}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise TraceError(f"{where}: unknown field {show(unknown[0])}")
    values = {"count": 1, "a": None, "b": None, **raw}
    missing = [key for key in FIELDS if key not in values]
    if missing:
        raise TraceError(f"{where}: missing field '{missing[0]}'")
    try:
        check_values(values)
    except ValueError as err:
        raise TraceError(f"{where}: {err}") from None
    return values


def capture_epochs(capture: dict) -> tuple[int | None, tuple[str, frozenset[int]] | None]:
    """What a capture says about its epochs: (``capture.epochs`` when it is an integer >= 1,
    the epochs the training ran, else None; (field, epochs) of the list of captured epochs,
    ``capture.captured_epochs`` or ``capture.epochs`` when it is a list of integers >= 0,
    as ``hbfpsim train`` writes, else None). Fields of other types are free-form settings
    and say nothing."""
    total = capture.get("epochs")
    total = total if is_integer(total, 1) else None
    for key in ("captured_epochs", "epochs"):
        listed = capture.get(key)
        if isinstance(listed, list) and listed and all(is_integer(e, 0) for e in listed):
            return total, (f"capture.{key}", frozenset(listed))
    return total, None


def check_epochs(where: str, capture: dict, records: list[tuple[str, int]]) -> None:
    """A TraceError unless every record's epoch lies inside what ``capture`` says was
    captured (``capture_epochs``): below ``capture.epochs`` when that counts the epochs the
    training ran, and among the listed epochs when the capture lists them. ``records``:
    (how messages name the record, its epoch)."""
    total, listed = capture_epochs(capture)
    for name, epoch in records:
        if total is not None and epoch >= total:
            raise TraceError(f"{where}: {name}: epoch {epoch} is outside the capture: "
                             f"capture.epochs is {total} (epochs 0 to {total - 1})")
        if listed is not None and epoch not in listed[1]:
            raise TraceError(f"{where}: {name}: epoch {epoch} is not one of the captured "
                             f"epochs ({listed[0]}: {show(sorted(listed[1]))})")


def check_operand(root: Path, name: str, shape: tuple[int, ...], where: str) -> None:
    """Header and size of one operand file, without reading its data: inside ``root`` once
    links are resolved, a regular file, float32 ``.npy`` of ``shape`` in C order."""
    path = root / name
    where = f"{path} ({where})"
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as err:          # a loop of symbolic links
        raise TraceError(f"{where}: cannot resolve: {err}") from None
    if not inside:
        raise TraceError(f"{where}: resolves to {path.resolve()}, outside the trace directory")
    f, size = open_regular(path, "missing operand file", where)
    try:
        with f:
            version = npy.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format {version[0]}.{version[1]} (expected 1.0 or 2.0)")
            header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            found_shape, fortran, dtype = header(f)
            offset = f.tell()
    except (OSError, ValueError) as err:
        raise TraceError(f"{where}: not a valid .npy file: {err}") from None
    if dtype != np.float32:
        raise TraceError(f"{where}: dtype {dtype} (expected float32; objects are never "
                         "unpickled)")
    if fortran:
        raise TraceError(f"{where}: Fortran order (expected C order)")
    if tuple(found_shape) != shape:
        raise TraceError(f"{where}: shape {tuple(found_shape)}, the manifest says {shape}")
    expected = offset + 4 * math.prod(shape)
    if size != expected:
        raise TraceError(f"{where}: {size} bytes, expected {expected} (truncated or padded)")
