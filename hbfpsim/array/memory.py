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
(one per kind, grouped.py), in numba (``kind_bytes``, which many.py also runs over many
GEMMs at once).

Each buffer must hold at least one R x C tile of its data (operand elements at their storage
width, partial sums at the chain's): the stationary tile a WS or IS fold loads, the R x C
outputs an OS fold drains, the tile's worth of rows a streamed operand needs to keep every
PE busy. A smaller buffer cannot feed the array at all, so ``check_buffers`` rejects it
rather than timing it as if it were large enough.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numba import njit

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


DATAFLOWS = ("ws", "os", "is")          # dataflow codes of the numba kernels: index here


def kind_demand(mapping: Mapping, bits_a: float, bits_b: float, bits_psum: float,
                bits_out: float, kib_a: float, kib_b: float, kib_out: float) -> np.ndarray:
    """``demand``'s fields (rows, FIELDS order; bytes) for one representative fold of each
    kind (columns: kind c * row kinds + r, the row and column fold indices of
    ``fold_classes``), with ``demand``'s arguments."""
    sr, sc, _ = mapping.spatial
    return kind_bytes(mapping.m, mapping.n, mapping.k, sr, sc, mapping.row_folds,
                      mapping.col_folds, mapping.rows, mapping.cols,
                      DATAFLOWS.index(mapping.dataflow),
                      (float(bits_a), float(bits_b), float(bits_psum), float(bits_out)),
                      (float(kib_a), float(kib_b), float(kib_out)))


@njit(cache=True)
def fold_classes(folds):
    """The first, middle and last of ``folds`` folds (those there are): (a representative
    fold index of each, how many folds each holds), int64 arrays."""
    at, count = np.arange(min(folds, 3)), np.ones(min(folds, 3), np.int64)
    if folds > 2:
        at[2], count[1] = folds - 1, folds - 2
    return at, count


@njit(cache=True)
def kind_bytes(m, n, k, sr, sc, rf, cf, rows, cols, df, bits, kib):
    """``kind_demand`` from the mapping's numbers (Sr, Sc, RF, CF; ``df`` an index in
    DATAFLOWS), ``bits`` (A, B, partial sum, output) and ``kib`` (input, weight, output
    buffers): int64 (8, kinds) bytes. Exactly ``demand``'s: elements stay below 2^57 and
    bytes below 2^60 (M, N, K <= 2^40, R, C <= 2^16, 64 bits at most), each rounded from
    ``e * bits / 8`` in float64 as NumPy does; a tile id is a pair (fc * RF + fr as (fc,
    fr)), so none wraps."""
    row_kinds, col_kinds = fold_classes(rf)[0], fold_classes(cf)[0]
    nr = row_kinds.size
    tiles = np.empty((nr * col_kinds.size, 9), np.int64)   # elements, id pair of A, B, out
    for c in range(col_kinds.size):
        fc = col_kinds[c]
        cu = min(cols, sc - fc * cols)
        for r in range(nr):
            fr = row_kinds[r]
            ru = min(rows, sr - fr * rows)
            tile = (m * ru, fr, -1, ru * cu, fc, fr, m * cu, fc, -1) if df == 0 \
                else (ru * k, fr, -1, k * cu, fc, -1, ru * cu, fc, fr) if df == 1 \
                else (ru * cu, fc, fr, ru * n, fr, -1, cu * n, fc, -1)
            for i in range(9):
                tiles[c * nr + r, i] = tile[i]
    once = (np.ceil(float(m) * float(k) * bits[0] / 8) <= kib[0] * KIB,   # fetched once,
            np.ceil(float(k) * float(n) * bits[1] / 8) <= kib[1] * KIB)   # on first use
    out = np.zeros((8, tiles.shape[0]), np.int64)   # FIELDS, per kind
    for j in range(tiles.shape[0]):
        t = tiles[j]
        a, b, psum = _tile_bytes(t[0], bits[0]), _tile_bytes(t[3], bits[1]), \
            _tile_bytes(t[6], bits[2])
        first, fits = j == 0 or _other(tiles, j, j - 1, 7), psum <= kib[2] * KIB
        out[0, j] = a if _fetched(tiles, j, 1, once[0]) else 0
        out[1, j] = b if _fetched(tiles, j, 4, once[1]) else 0
        out[2, j] = 0 if first or fits else psum
        out[3, j] = _tile_bytes(t[6], bits[3]) if j + 1 == tiles.shape[0] or \
            _other(tiles, j, j + 1, 7) else 0 if fits else psum
        out[4, j], out[5, j], out[6, j], out[7, j] = a, b, psum, 0 if first else psum
    return out


@njit(inline="always", cache=True)
def _tile_bytes(elements, bits):
    return np.int64(np.ceil(elements * bits / 8))


@njit(inline="always", cache=True)
def _other(tiles, i, j, at):
    """Whether folds i and j use different tiles (the id pair at column ``at``)."""
    return tiles[i, at] != tiles[j, at] or tiles[i, at + 1] != tiles[j, at + 1]


@njit(inline="always", cache=True)
def _fetched(tiles, j, at, once):
    """Whether fold j loads its tile (id pair at column ``at``): on first use if ``once``,
    else when the previous fold used another."""
    if not once:
        return j == 0 or _other(tiles, j, j - 1, at)
    for i in range(j):
        if not _other(tiles, j, i, at):
            return False
    return True
