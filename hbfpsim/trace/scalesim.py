"""Import SCALE-Sim topology files as shape-only traces.

SCALE-Sim (v2/v3) topologies are CSV files of inference layers, one per row after a header,
rows usually ending with a comma. Columns are read by their header names (case and spacing
ignored):

- convolution: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
  Channels, Num Filter, Strides`` (or ``Stride height, Stride width``; IFMAP sizes include
  any padding; a name containing "DP" is a depthwise layer: one GEMM per channel);
- GEMM: ``Layer`` (or ``Layer name``), ``M, N, K``.

Any other column (``Sparsity``, ``Batch Size``...) is ignored, with a ``TraceWarning`` naming
it, and listed in the manifest (``capture.ignored_columns``). Every row's cells must line up
with the header: a row with a missing or an extra value is refused with its line number.
Trailing empty cells and trailing ``#`` comments are allowed. Numbers are integers from 1 to
2**31.

A convolution becomes the forward GEMM M = out_h x out_w x batch, K = kh x kw x channels,
N = filters, with ``out = floor((in - k) / stride) + 1``. SCALE-Sim itself computes
``ceil((in - k + stride) / stride)``, one more whenever the stride does not divide
``in - k``; ``rounding="scalesim"`` reproduces that.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from pathlib import Path

from hbfpsim.staging import check_free
from hbfpsim.trace.format import TraceError, TraceWarning, TraceWriter
from hbfpsim.trace.manifest import read_text, show
from hbfpsim.validate import is_integer

ROUNDINGS = ("pytorch", "scalesim")
MAX_VALUE = 2**31                  # every number of a topology, and the batch
MAX_BYTES = 64 * 2**20             # larger topology files are refused unread
# header name (lowercase, single spaces) -> field
CONV = {"layer name": "name", "layer": "name", "ifmap height": "h", "ifmap width": "w",
        "filter height": "kh", "filter width": "kw", "channels": "channels",
        "num filter": "filters", "num filters": "filters", "strides": "stride",
        "stride": "stride", "stride height": "stride_h", "stride width": "stride_w"}
GEMM = {"layer name": "name", "layer": "name", "m": "m", "n": "n", "k": "k"}
CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides")
GEMM_HEADER = "Layer, M, N, K"


def out_size(size: int, kernel: int, stride: int, rounding: str = "pytorch") -> int:
    """Output size of a convolution along one axis (see the module docstring)."""
    if rounding == "scalesim":
        return math.ceil((size - kernel + stride) / stride)
    return (size - kernel) // stride + 1


def import_topology(csv_path: str | Path, out_dir: str | Path, *, batch: int = 1,
                    rounding: str = "pytorch", model: str | None = None,
                    force: bool = False) -> Path:
    """Write the shape-only trace of a SCALE-Sim topology file (conv or GEMM, detected from
    the header) to ``out_dir`` (an existing one only with ``force``). Ignored columns are
    reported with a ``TraceWarning``."""
    csv_path = Path(csv_path)
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r} is not one of {ROUNDINGS}")
    if not is_integer(batch, 1, MAX_VALUE):
        raise ValueError(f"batch must be an integer from 1 to 2**31, got {show(batch)}")
    batch = int(batch)
    if model is not None and not isinstance(model, str):
        raise ValueError(f"model must be a string, got {show(model)}")
    check_free(out_dir, force)
    rows = _rows(csv_path)
    if not rows:
        raise TraceError(f"{csv_path}: empty topology file (expected a header, then layers)")
    if len(rows) == 1:
        raise TraceError(f"{csv_path}: no layers, only a header")
    conv, names, columns, ignored = _header(csv_path, *rows[0])
    gemms = []
    for line, cells in rows[1:]:
        try:
            values = _values(cells, names, columns)
            gemms.append((line, *(_conv(values, batch, rounding) if conv
                                  else _gemm(values, batch))))
        except ValueError as err:
            raise TraceError(f"{csv_path}, line {line}: {err}") from None
    if ignored:
        warnings.warn(f"{csv_path}: ignored column{'s' if len(ignored) > 1 else ''} "
                      f"{', '.join(map(repr, ignored))} (not part of a layer's GEMM shape)",
                      TraceWarning, stacklevel=2)
    with TraceWriter(out_dir, model or csv_path.stem, force=force,
                     description=f"SCALE-Sim {'convolution' if conv else 'GEMM'} topology "
                                 f"{csv_path.name}",
                     capture={"kind": "shape-only", "source": csv_path.name, "batch": batch,
                              "rounding": rounding, "ignored_columns": ignored}) as writer:
        for line, name, m, n, k, count in gemms:
            try:
                writer.add(name, "fwd", m, n, k, count=count)
            except ValueError as err:
                raise TraceError(f"{csv_path}, line {line}: {err}") from None
    return Path(out_dir)


def _rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) of the non-blank rows."""
    text = read_text(csv_path, "no such topology file", MAX_BYTES, "topology file")
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        for cells in reader:
            cells = [c.strip() for c in cells]
            if any(cells):
                rows.append((reader.line_num, cells))
    except csv.Error as err:
        raise TraceError(f"{csv_path}, line {reader.line_num}: not CSV: {err}") from None
    return rows


def _header(csv_path: Path, line: int, names: list[str]):
    """(is a convolution topology, column names, {field: column index}, ignored columns)."""
    while names and not names[-1]:
        names = names[:-1]                              # the trailing comma
    keys = [" ".join(name.lower().split()) for name in names]
    conv = any(key.startswith("ifmap") for key in keys)
    if not conv and not {"m", "n", "k"} <= set(keys):
        raise TraceError(f"{csv_path}, line {line}: the header names neither a convolution "
                         f"topology ({CONV_HEADER}) nor a GEMM one ({GEMM_HEADER}); got "
                         f"{show(', '.join(names))}")
    table = CONV if conv else GEMM
    columns, ignored = {}, []
    for i, (name, key) in enumerate(zip(names, keys)):
        if key in table and table[key] not in columns:
            columns[table[key]] = i
        else:
            ignored.append(name or f"column {i + 1} (no name)")
    for axis in ("stride_h", "stride_w"):
        if "stride" in columns:
            columns.setdefault(axis, columns["stride"])
    wanted = ("name", "h", "w", "kh", "kw", "channels", "filters", "stride_h", "stride_w") \
        if conv else ("name", "m", "n", "k")
    missing = [field for field in wanted if field not in columns]
    if missing:
        raise TraceError(f"{csv_path}, line {line}: the header lacks "
                         f"{'a stride' if missing[0].startswith('stride') else missing[0]!r} "
                         f"column (expected {CONV_HEADER if conv else GEMM_HEADER})")
    return conv, names, columns, ignored


def _values(cells: list[str], names: list[str], columns: dict[str, int]) -> dict:
    """The row's values by field, each cell where the header puts its column."""
    extra = [c for c in cells[len(names):] if c and not c.startswith("#")]
    if extra:
        raise ValueError(f"{len(names) + len(extra)} values for the header's {len(names)} "
                         f"columns (extra {show(', '.join(extra))}): cells must line up with "
                         "the header")
    values = {}
    for field, i in columns.items():
        cell = cells[i] if i < len(cells) else ""
        if not cell:
            raise ValueError(f"no value in column {names[i]!r} (cells must line up with the "
                             "header)")
        if field != "name":
            if not re.fullmatch(r"[0-9]+", cell) or not 1 <= int(cell) <= MAX_VALUE:
                raise ValueError(f"{names[i]} must be an integer from 1 to 2**31, got "
                                 f"{show(cell)}")
            cell = int(cell)
        values[field] = cell
    return values


def _conv(v: dict, batch: int, rounding: str) -> tuple[str, int, int, int, int]:
    """(layer, M, N, K, count) of a convolution row."""
    if v["kh"] > v["h"] or v["kw"] > v["w"]:
        raise ValueError(f"filter {v['kh']}x{v['kw']} is larger than the ifmap "
                         f"{v['h']}x{v['w']}")
    pixels = (out_size(v["h"], v["kh"], v["stride_h"], rounding)
              * out_size(v["w"], v["kw"], v["stride_w"], rounding) * batch)
    if "DP" in v["name"]:       # depthwise: one single-channel GEMM per channel
        return v["name"], pixels, v["filters"], v["kh"] * v["kw"], v["channels"]
    return v["name"], pixels, v["filters"], v["kh"] * v["kw"] * v["channels"], 1


def _gemm(v: dict, batch: int) -> tuple[str, int, int, int, int]:
    """(layer, M, N, K, count) of a GEMM row."""
    return v["name"], v["m"] * batch, v["n"], v["k"], 1
