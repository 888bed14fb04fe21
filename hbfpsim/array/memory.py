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

Each buffer must hold at least one R x C tile of its data (operand elements at their storage
width, partial sums at the chain's): the stationary tile a WS or IS fold loads, the R x C
outputs an OS fold drains, the tile's worth of rows a streamed operand needs to keep every
PE busy. A smaller buffer cannot feed the array at all, so ``check_buffers`` rejects it
rather than timing it as if it were large enough.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def sram(self) -> dict[str, dict[str, int]]:
        """Total bytes read from and written to each buffer (both sides: array and DRAM)."""
        total = lambda *xs: int(sum(int(x.sum()) for x in xs))  # noqa: E731
        return {"input": {"reads": total(self.read_a), "writes": total(self.load_a)},
                "weight": {"reads": total(self.read_b), "writes": total(self.load_b)},
                "output": {"reads": total(self.psum_read, self.store),
                           "writes": total(self.psum_write, self.load_out)}}

    def dram(self) -> dict[str, int]:
        return {"reads": int(self.load_a.sum() + self.load_b.sum() + self.load_out.sum()),
                "writes": int(self.store.sum())}


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
