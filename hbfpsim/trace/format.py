"""The trace format: what work arrives. A directory holding ``manifest.json`` and, for traces
with operands, one ``.npy`` file per operand (docs/traces.md is the specification).

Manifest (JSON, schema ``hbfpsim-trace/1``)::

    {"schema": "hbfpsim-trace/1", "model": "...", "description": "...",
     "capture": {...free-form settings...},
     "records": [{"id": 0, "step": 0, "epoch": 0, "layer": "fc1", "phase": "fwd",
                  "m": 32, "n": 128, "k": 64, "count": 1,
                  "a": "operands/000000_a.npy", "b": "operands/000000_b.npy"}, ...]}

A record is ``count`` independent GEMMs C = A B of one shape (count > 1 for batched matmul and
grouped convolutions): A is M x K, B is K x N, stored as float32 ``.npy`` of shape (M, K) and
(K, N), or (count, M, K) and (count, K, N). ``a``/``b`` are null for shape-only records.
Phases: ``fwd``, ``bwd_data`` (gradient with respect to activations), ``bwd_weight``.

Reading (``open_trace``, checks in ``hbfpsim.trace.manifest``) validates the whole manifest and
every operand file's header and size before the first record is returned, so a bad trace
fails at once with an error naming the file and record, and nothing is half loaded. Operands
are memory-mapped and released record by record, so a trace larger than RAM replays. ``.npy``
files are never unpickled. Writing (``TraceWriter``) builds the trace in a hidden temporary
folder and renames it into place when complete, so a failed or interrupted write leaves
nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hbfpsim.staging import as_path, staged_dir
from hbfpsim.trace.manifest import (MANIFEST, PHASES, SCHEMA, TraceError, check_epochs,
                                    check_operand, check_record, check_values, read_manifest,
                                    show)
from hbfpsim.validate import is_integer


class TraceWarning(UserWarning):
    """Something in a trace's making the user should know about (the command line prints it
    as one line)."""


@dataclass(frozen=True)
class GemmRecord:
    """One manifest record: ``count`` GEMMs (M x K) @ (K x N)."""

    id: int
    step: int
    epoch: int
    layer: str
    phase: str
    m: int
    n: int
    k: int
    count: int = 1
    a: str | None = None       # operand file, relative to the trace directory
    b: str | None = None

    @property
    def macs(self) -> int:
        return self.count * self.m * self.n * self.k

    @property
    def operand_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        lead = (self.count,) if self.count > 1 else ()
        return lead + (self.m, self.k), lead + (self.k, self.n)


@dataclass(frozen=True)
class Gemm:
    """A record with its operands (float32, memory-mapped; None for shape-only traces)."""

    record: GemmRecord
    a: np.ndarray | None
    b: np.ndarray | None


@dataclass(frozen=True)
class Trace:
    """An opened, validated trace. Iterate it for records with operands (streamed)."""

    path: Path
    model: str
    description: str
    capture: dict
    records: tuple[GemmRecord, ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def has_operands(self) -> bool:
        return any(r.a is not None for r in self.records)

    def __iter__(self) -> Iterator[Gemm]:
        for record in self.records:
            a = self._map(record.a) if record.a else None
            b = self._map(record.b) if record.b else None
            yield Gemm(record, a, b)
            del a, b     # the caller's references aside, the maps close here

    def _map(self, name: str) -> np.ndarray:
        return np.load(self.path / name, mmap_mode="r", allow_pickle=False)

    def summary(self) -> dict:
        """Records, GEMMs and MACs per phase, operand bytes, layers (in first-seen order)."""
        per_phase = {p: {"records": 0, "gemms": 0, "macs": 0} for p in PHASES}
        layers: dict[str, int] = {}
        for r in self.records:
            per_phase[r.phase]["records"] += 1
            per_phase[r.phase]["gemms"] += r.count
            per_phase[r.phase]["macs"] += r.macs
            layers[r.layer] = layers.get(r.layer, 0) + 1
        operand_bytes = sum(os.path.getsize(self.path / f) for r in self.records
                            for f in (r.a, r.b) if f)
        return {"model": self.model, "records": len(self.records),
                "steps": sorted({r.step for r in self.records}),
                "epochs": sorted({r.epoch for r in self.records}),
                "phases": per_phase, "macs": sum(r.macs for r in self.records),
                "operand_bytes": operand_bytes, "layers": layers}


def open_trace(path: str | Path) -> Trace:
    """Open and validate the trace in directory ``path`` (raises TraceError)."""
    path = as_path(path, "trace.open: path")
    data = read_manifest(path)
    where = path / MANIFEST
    records = tuple(GemmRecord(**check_record(f"{where}: record {i}", raw))
                    for i, raw in enumerate(data["records"]))
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise TraceError(f"{where}: record ids must be unique")
    capture = data.get("capture", {})
    check_epochs(str(where), capture, [(f"record {i} (id {r.id})", r.epoch)
                                       for i, r in enumerate(records)])
    for r in records:
        for name, shape in zip((r.a, r.b), r.operand_shapes):
            if name is not None:
                check_operand(path, name, shape, f"record {r.id}, {r.layer} {r.phase}")
    return Trace(path, data["model"], data.get("description", ""), data.get("capture", {}),
                 records)


_WRITING: set[Path] = set()     # outputs the open writers of this process are building


def _as_int(value: Any) -> Any:
    """NumPy and other integers as int; anything else (bool, float) left for the check."""
    return int(value) if is_integer(value) else value


def _to_json(data: dict, what: str) -> str:
    try:
        return json.dumps(data, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be plain JSON (strings, finite numbers, lists, "
                         f"objects): {err}") from None


def _discard(tmp: Path, key: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    _WRITING.discard(key)


class TraceWriter:
    """Write a trace: ``add`` records (with or without operands), then ``close`` (or use it
    as a context manager). Everything goes into a hidden temporary folder beside ``path``
    (``hbfpsim.staging``), the manifest last, renamed to ``path`` by ``close``: an exception
    in the ``with`` block, ``abort()``, or a writer dropped unclosed leaves nothing. An
    existing ``path`` is refused unless ``force``, and then replaced only by ``close``."""

    def __init__(self, path: str | Path, model: str, description: str = "",
                 capture: dict | None = None, *, force: bool = False):
        for name, value, kind in (("model", model, str), ("description", description, str),
                                  ("capture", capture or {}, dict)):
            if not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__name__}, got {show(value)}")  # noqa: TRY004
        self.model, self.description = model, description
        self.capture = dict(capture or {})
        _to_json(self.capture, "capture settings")
        self.path = as_path(path, "TraceWriter: path")
        self._key = self.path.absolute()
        if self._key in _WRITING:
            raise ValueError(f"{self.path}: another writer of this process is writing it")
        self._stage = staged_dir(self.path, force)
        self._dir = self._stage.__enter__()
        _WRITING.add(self._key)
        self._cleanup = weakref.finalize(self, _discard, self._dir, self._key)
        self.records: list[GemmRecord] = []
        self.closed = False             # by close or abort
        self.written = False            # by close: the trace is at ``path``

    def add(self, layer: str, phase: str, m: int, n: int, k: int, *, step: int = 0,
            epoch: int = 0, count: int = 1, a: np.ndarray | None = None,
            b: np.ndarray | None = None) -> GemmRecord:
        """Append a record; with ``a`` and ``b`` (float32 of the record's shapes) it stores
        the operands too."""
        if self.closed:
            raise ValueError(f"{self.path}: the trace writer is closed")
        index = len(self.records)
        values = {"id": index, "step": step, "epoch": epoch, "layer": layer, "phase": phase,
                  "m": m, "n": n, "k": k, "count": count, "a": None, "b": None}
        values = {key: _as_int(v) for key, v in values.items()}
        try:
            check_values(values)
        except ValueError as err:
            raise ValueError(f"record {index} ({show(layer)} {show(phase)}): {err}") from None
        record = GemmRecord(**values)
        if (a is None) != (b is None):
            raise ValueError(f"record {index}: give both operands or neither")
        if a is not None:
            names = []
            for tag, array, shape in zip("ab", (a, b), record.operand_shapes):
                array = np.ascontiguousarray(array, dtype=np.float32)
                if array.shape != shape:
                    raise ValueError(f"operand {tag} of record {index} has shape {array.shape}, "
                                     f"expected {shape}")
                name = f"operands/{index:06d}_{tag}.npy"
                (self._dir / "operands").mkdir(exist_ok=True)
                np.save(self._dir / name, array, allow_pickle=False)
                names.append(name)
            record = GemmRecord(**{**asdict(record), "a": names[0], "b": names[1]})
        self.records.append(record)
        return record

    def close(self) -> Path:
        """Write the manifest and move the finished trace to ``path``."""
        if self.closed:
            raise ValueError(f"{self.path}: the trace writer is already closed")
        try:
            check_epochs(str(self.path), self.capture, [(f"record {r.id} ({r.layer} {r.phase})",
                                                         r.epoch) for r in self.records])
            manifest = {"schema": SCHEMA, "model": self.model, "description": self.description,
                        "capture": self.capture,
                        "records": [{k: v for k, v in asdict(r).items()
                                     if not (k in ("a", "b") and v is None)
                                     and not (k == "count" and v == 1)} for r in self.records]}
            (self._dir / MANIFEST).write_text(_to_json(manifest, "capture settings"))
        except BaseException:
            self.abort()
            raise
        self._finish(None)
        self.written = True
        return self.path

    def abort(self) -> None:
        """Drop everything written so far (nothing appears at ``path``)."""
        if not self.closed:
            self._finish(TraceError(f"{self.path}: writing abandoned"))

    def _finish(self, error: BaseException | None) -> None:
        self.closed = True
        self._cleanup.detach()
        _WRITING.discard(self._key)
        if error is None:
            self._stage.__exit__(None, None, None)      # the rename; on failure, removal
        else:
            self._stage.__exit__(type(error), error, None)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
