"""What each fold moves between DRAM, the SRAM buffers and the array, in bytes.

Per fold (execution order) the array needs one tile of A, one of B, and a tile of output
partial sums (all per mapping.py):

    WS  A: M x k_used (streamed)      B: k_used x n_used (stationary)  out: M x n_used
    OS  A: m_used x K (streamed)      B: K x n_used (streamed)         out: m_used x n_used
    IS  A: m_used x k_used (stationary) B: k_used x N (streamed)       out: m_used x N

where the *_used extents are the fold's share of the spatial dimensions. Bytes of a tile are
``ceil(elements x storage_bits / 8)`` (HBFP/MX shared exponents included); partial sums take
the output accumulator's width.

Reuse policy (static, decided per GEMM): an operand whose whole matrix fits its buffer is
fetched once, each tile on first use; otherwise a tile is fetched whenever the previous fold
used a different one (consecutive folds share it). An output tile whose partial sums fit the
output buffer stays on chip across the folds that accumulate it and is written once, after
its last fold; otherwise every fold writes its partial sums and every fold but the first of
its tile reads them back first.

``demand`` gives arrays over every fold; ``kind_demand`` the same numbers for a few folds
(one per kind, grouped.py) in Python ints.

Each buffer must hold at least one R x C tile of its data (operand elements at their storage
width, partial sums at the chain's): the stationary tile a WS or IS fold loads, the R x C
outputs an OS fold drains, the tile's worth of rows a streamed operand needs to keep every
PE busy. A smaller buffer cannot feed the array at all, so ``check_buffers`` rejects it
rather than timing it as if it were large enough.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from hbfpsim.array.mapping import Mapping

KIB = 1024


@dataclass(frozen=True)
class FoldDemand:
    """Per-fold arrays (length = folds), in bytes."""

    load_a: np.ndarray      # DRAM -> input buffer, before the fold
    load_b: np.ndarray      # DRAM -> weight buffer, before the fold
    load_out: np.ndarray    # DRAM -> output buffer: partial sums read back, before the fold
    store: np.ndarray       # output buffer -> DRAM, after the fold
    read_a: np.ndarray      # input buffer -> array, during the fold
    read_b: np.ndarray      # weight buffer -> array, during the fold
    psum_write: np.ndarray  # array -> output buffer, during the fold
    psum_read: np.ndarray   # output buffer -> accumulator (folds after a tile's first)

    def totals(self) -> dict[str, int]:
        """Each field summed over the folds, in bytes."""
        return {f.name: int(getattr(self, f.name).sum()) for f in fields(self)}


def sram_traffic(t: dict[str, int]) -> dict[str, dict[str, int]]:
    """Total bytes read from and written to each buffer (both sides: array and DRAM), from
    the FoldDemand ``totals`` ``t``."""
    return {"input": {"reads": t["read_a"], "writes": t["load_a"]},
            "weight": {"reads": t["read_b"], "writes": t["load_b"]},
            "output": {"reads": t["psum_read"] + t["store"],
                       "writes": t["psum_write"] + t["load_out"]}}


def dram_traffic(t: dict[str, int]) -> dict[str, int]:
    """Total bytes read from and written to DRAM, from the FoldDemand ``totals`` ``t``."""
    return {"reads": t["load_a"] + t["load_b"] + t["load_out"], "writes": t["store"]}


FIELDS = tuple(f.name for f in fields(FoldDemand))


def check_buffers(sizes_kib: dict[str, float], rows: int, cols: int,
                  bits: dict[str, float], source: str) -> None:
    """Refuse a buffer (``sizes_kib``: input, weight, output in KiB) smaller than one
    ``rows`` x ``cols`` tile at ``bits`` per element; the message names ``source``."""
    for name, kib in sizes_kib.items():
        tile = rows * cols * bits[name] / 8
        if kib * KIB < tile:
            raise ValueError(f"{source}: [buffers] {name}_kib = {kib:g} holds less than one "
                             f"{rows} x {cols} tile ({tile:g} bytes at {bits[name]:g} bits "
                             "per element): the array could not be fed")


def _bytes(elements: np.ndarray, bits: float) -> np.ndarray:
    return np.ceil(elements * bits / 8).astype(np.int64)


def _first_use(ids: np.ndarray) -> np.ndarray:
    _, first = np.unique(ids, return_index=True)
    mask = np.zeros(ids.size, bool)
    mask[first] = True
    return mask


def _changed(ids: np.ndarray) -> np.ndarray:
    return np.concatenate([[True], ids[1:] != ids[:-1]])


def demand(mapping: Mapping, bits_a: float, bits_b: float, bits_psum: float,
           bits_out: float, kib_a: float, kib_b: float, kib_out: float) -> FoldDemand:
    """Per-fold traffic for ``mapping``: element storage bits of A, B, a partial sum and a
    final output, and the three buffer sizes in KiB."""
    m, n, k = mapping.m, mapping.n, mapping.k
    fr, fc, rows_used, cols_used = mapping.fold_extents()
    df = mapping.dataflow
    if df == "ws":     # rows: K chunks, cols: N chunks
        a_elems, a_ids = m * rows_used, fr
        b_elems, b_ids = rows_used * cols_used, fc * mapping.row_folds + fr
        out_elems, out_ids = m * cols_used, fc
    elif df == "os":   # rows: M chunks, cols: N chunks
        a_elems, a_ids = rows_used * k, fr
        b_elems, b_ids = k * cols_used, fc
        out_elems, out_ids = rows_used * cols_used, fc * mapping.row_folds + fr
    else:              # is: rows: K chunks, cols: M chunks
        a_elems, a_ids = rows_used * cols_used, fc * mapping.row_folds + fr
        b_elems, b_ids = rows_used * n, fr
        out_elems, out_ids = cols_used * n, fc
    a_bytes, b_bytes = _bytes(a_elems, bits_a), _bytes(b_elems, bits_b)
    total_a = int(np.ceil(m * k * bits_a / 8))
    total_b = int(np.ceil(k * n * bits_b / 8))
    load_a = np.where(_first_use(a_ids) if total_a <= kib_a * KIB else _changed(a_ids), a_bytes, 0)
    load_b = np.where(_first_use(b_ids) if total_b <= kib_b * KIB else _changed(b_ids), b_bytes, 0)

    first = _changed(out_ids)
    last = np.concatenate([out_ids[1:] != out_ids[:-1], [True]])
    psum = _bytes(out_elems, bits_psum)
    fits = psum <= kib_out * KIB
    store = np.where(last, _bytes(out_elems, bits_out), np.where(fits, 0, psum))
    load_out = np.where(~first & ~fits, psum, 0)
    return FoldDemand(load_a.astype(np.int64), load_b.astype(np.int64), load_out, store,
                      a_bytes, b_bytes, psum, np.where(first, 0, psum))


def kind_demand(mapping: Mapping, row_kinds: Sequence[int], col_kinds: Sequence[int],
                bits_a: float, bits_b: float, bits_psum: float, bits_out: float, kib_a: float,
                kib_b: float, kib_out: float) -> dict[str, tuple[int, ...]]:
    """``demand``'s fields (name: bytes per fold, in Python ints) for only the folds of the
    given row and column fold indices (column outer: ``demand`` on that sequence of folds).
    ``mapping`` is the whole GEMM's; the other arguments are ``demand``'s. The bytes are
    demand's exactly: Python rounds ``e * bits / 8`` as NumPy does on int64 elements (all
    below 2^57, so none wraps there)."""
    m, n, k, rows, cols, rf = (mapping.m, mapping.n, mapping.k, mapping.rows, mapping.cols,
                               mapping.row_folds)
    df, (sr, sc, _) = mapping.dataflow, mapping.spatial
    tiles = []      # per fold: elements and id of its A tile, B tile, output tile
    for fc in col_kinds:
        cu = min(cols, sc - fc * cols)
        for fr in row_kinds:
            ru = min(rows, sr - fr * rows)
            tiles.append((m * ru, fr, ru * cu, fc * rf + fr, m * cu, fc) if df == "ws" else
                         (ru * k, fr, k * cu, fc, ru * cu, fc * rf + fr) if df == "os" else
                         (ru * cu, fc * rf + fr, ru * n, fr, cu * n, fc))
    once_a = math.ceil(m * k * bits_a / 8) <= kib_a * KIB     # fetched once, on first use
    once_b = math.ceil(k * n * bits_b / 8) <= kib_b * KIB
    room, following = kib_out * KIB, [t[5] for t in tiles[1:]] + [None]
    per_fold = []   # FoldDemand's fields, in order
    seen_a, seen_b, last_a, last_b, last_out = set(), set(), None, None, None
    for (ea, ia, eb, ib, eo, io), next_out in zip(tiles, following):
        a, b, psum = math.ceil(ea * bits_a / 8), math.ceil(eb * bits_b / 8), \
            math.ceil(eo * bits_psum / 8)
        first, fits = io != last_out, psum <= room
        per_fold.append((a if (ia not in seen_a if once_a else ia != last_a) else 0,
                         b if (ib not in seen_b if once_b else ib != last_b) else 0,
                         0 if first or fits else psum,
                         math.ceil(eo * bits_out / 8) if io != next_out else 0 if fits else psum,
                         a, b, psum, 0 if first else psum))
        seen_a.add(ia)
        seen_b.add(ib)
        last_a, last_b, last_out = ia, ib, io
    return dict(zip(FIELDS, zip(*per_fold)))
