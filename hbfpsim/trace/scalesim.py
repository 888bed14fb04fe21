"""Import SCALE-Sim topology files as shape-only traces.

SCALE-Sim (v2/v3) topologies are CSV files of inference layers, one per row, each row ending
with a comma:

- convolution: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
  Channels, Num Filter, Strides[, N:M sparsity],`` (IFMAP sizes include any padding; the
  stride applies to both axes; a name containing "DP" is a depthwise layer: one GEMM per
  channel);
- GEMM: ``Layer, M, N, K[, N:M sparsity],``.

A convolution becomes the forward GEMM M = out_h x out_w x batch, K = kh x kw x channels,
N = filters, with ``out = floor((in - k) / stride) + 1``. SCALE-Sim itself computes
``ceil((in - k + stride) / stride)``, one more whenever the stride does not divide
``in - k``; ``rounding="scalesim"`` reproduces that.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from hbfpsim.trace.format import TraceError, TraceWriter

ROUNDINGS = ("pytorch", "scalesim")


def out_size(size: int, kernel: int, stride: int, rounding: str = "pytorch") -> int:
    if rounding == "scalesim":
        return math.ceil((size - kernel + stride) / stride)
    return (size - kernel) // stride + 1


def import_topology(csv_path: str | Path, out_dir: str | Path, *, batch: int = 1,
                    rounding: str = "pytorch", model: str | None = None) -> Path:
    """Write the shape-only trace of a SCALE-Sim topology file (conv or GEMM, detected from
    the header) to ``out_dir``."""
    csv_path = Path(csv_path)
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r} is not one of {ROUNDINGS}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    try:
        rows = [r for r in csv.reader(csv_path.read_text().splitlines()) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as err:
        raise TraceError(f"{csv_path}: cannot read: {err}") from None
    if not rows:
        raise TraceError(f"{csv_path}: empty topology file")
    header = [c.strip().lower() for c in rows[0]]
    conv = any("ifmap" in c for c in header)
    with TraceWriter(out_dir, model or csv_path.stem,
                     description=f"SCALE-Sim {'convolution' if conv else 'GEMM'} topology "
                                 f"{csv_path.name}",
                     capture={"kind": "shape-only", "source": csv_path.name, "batch": batch,
                              "rounding": rounding}) as writer:
        for line, row in enumerate(rows[1:], 2):
            cells = [c.strip() for c in row if c.strip()]
            try:
                if conv:
                    _conv_row(writer, cells, batch, rounding)
                else:
                    _gemm_row(writer, cells, batch)
            except ValueError as err:
                raise TraceError(f"{csv_path}, line {line}: {err}") from None
    return Path(out_dir)


def _numbers(cells: list[str], count: int, names: str) -> list[int]:
    values = [c for c in cells[1:] if ":" not in c][:count]     # drop an N:M sparsity column
    if len(values) < count:
        raise ValueError(f"expected {count} numbers ({names}), got {len(values)}")
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        raise ValueError(f"expected integers ({names}), got {values}") from None
    if min(numbers) < 1:
        raise ValueError(f"{names} must be positive, got {numbers}")
    return numbers


def _conv_row(writer, cells, batch, rounding):
    h, w, kh, kw, channels, filters, stride = _numbers(
        cells, 7, "ifmap height, width, filter height, width, channels, filters, stride")
    if kh > h or kw > w:
        raise ValueError(f"filter {kh}x{kw} is larger than the ifmap {h}x{w}")
    pixels = out_size(h, kh, stride, rounding) * out_size(w, kw, stride, rounding) * batch
    if "DP" in cells[0]:       # depthwise: one single-channel GEMM per channel
        writer.add(cells[0], "fwd", pixels, filters, kh * kw, count=channels)
    else:
        writer.add(cells[0], "fwd", pixels, filters, kh * kw * channels)


def _gemm_row(writer, cells, batch):
    m, n, k = _numbers(cells, 3, "M, N, K")
    writer.add(cells[0], "fwd", m * batch, n, k)
