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

Reading validates the whole manifest and every operand file's header and size before the
first record is returned, so a bad trace fails at once with an error naming the file and
record, and nothing is half loaded. Operands are memory-mapped and released record by
record, so a trace larger than RAM replays. ``.npy`` files are never unpickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy

SCHEMA = "hbfpsim-trace/1"
PHASES = ("fwd", "bwd_data", "bwd_weight")
MANIFEST = "manifest.json"
_INT_FIELDS = ("id", "step", "epoch", "m", "n", "k", "count")


class TraceError(ValueError):
    """A trace is malformed: the message names the file and the record."""


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
    """Open and validate the trace in directory ``path``."""
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise TraceError(f"{manifest}: no trace manifest here")
    try:
        data = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TraceError(f"{manifest}: not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise TraceError(f"{manifest}: unknown schema {found!r} (expected {SCHEMA!r})")
    for key, kind in (("model", str), ("records", list)):
        if not isinstance(data.get(key), kind):
            raise TraceError(f"{manifest}: '{key}' must be a {kind.__name__}")
    records = tuple(_record(manifest, i, raw) for i, raw in enumerate(data["records"]))
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise TraceError(f"{manifest}: record ids must be unique")
    for record in records:
        for name, shape in zip((record.a, record.b), record.operand_shapes):
            if name is not None:
                _check_operand(path, name, shape, record)
    return Trace(path, data["model"], str(data.get("description", "")),
                 dict(data.get("capture") or {}), records)


def _record(manifest: Path, index: int, raw: Any) -> GemmRecord:
    where = f"{manifest}: record {index}"
    if not isinstance(raw, dict):
        raise TraceError(f"{where}: must be an object")
    unknown = sorted(set(raw) - {f for f in GemmRecord.__dataclass_fields__})
    if unknown:
        raise TraceError(f"{where}: unknown field '{unknown[0]}'")
    values = {"count": 1, "a": None, "b": None, **raw}
    for key in _INT_FIELDS:
        v = values.get(key)
        low = 1 if key in ("m", "n", "k", "count") else 0
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise TraceError(f"{where}: '{key}' must be an integer >= {low}, got {v!r}")
    if not isinstance(values.get("layer"), str):
        raise TraceError(f"{where}: 'layer' must be a string")
    if values.get("phase") not in PHASES:
        raise TraceError(f"{where}: 'phase' must be one of {', '.join(PHASES)}, "
                         f"got {values.get('phase')!r}")
    if (values["a"] is None) != (values["b"] is None):
        raise TraceError(f"{where}: give both operand files or neither")
    for key in ("a", "b"):
        name = values[key]
        if name is not None and (not isinstance(name, str) or Path(name).is_absolute()
                                 or ".." in Path(name).parts or not name.endswith(".npy")):
            raise TraceError(f"{where}: '{key}' must be a relative .npy path inside the trace, "
                             f"got {name!r}")
    return GemmRecord(**values)


def _check_operand(root: Path, name: str, shape: tuple[int, ...], record: GemmRecord) -> None:
    """Header and size of one operand file, without reading its data."""
    path = root / name
    where = f"{path} (record {record.id}, {record.layer} {record.phase})"
    try:
        with open(path, "rb") as f:
            version = npy.read_magic(f)
            header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            found_shape, fortran, dtype = header(f)
            offset = f.tell()
    except FileNotFoundError:
        raise TraceError(f"{where}: missing operand file") from None
    except (OSError, ValueError) as err:
        raise TraceError(f"{where}: not a valid .npy file: {err}") from None
    if dtype != np.float32:
        raise TraceError(f"{where}: dtype {dtype} (expected float32; objects are never "
                         "unpickled)")
    if fortran:
        raise TraceError(f"{where}: Fortran order (expected C order)")
    if tuple(found_shape) != shape:
        raise TraceError(f"{where}: shape {tuple(found_shape)}, the manifest says {shape}")
    expected = offset + 4 * int(np.prod(shape))
    actual = os.path.getsize(path)
    if actual != expected:
        raise TraceError(f"{where}: {actual} bytes, expected {expected} (truncated or padded)")


class TraceWriter:
    """Write a trace: ``add`` records (with or without operands), then ``close`` (or use it
    as a context manager), which writes the manifest last so a crash leaves no manifest."""

    def __init__(self, path: str | Path, model: str, description: str = "",
                 capture: dict | None = None):
        self.path = Path(path)
        if (self.path / MANIFEST).exists():
            raise TraceError(f"{self.path / MANIFEST}: a trace is already here")
        self.path.mkdir(parents=True, exist_ok=True)
        self.model, self.description = model, description
        self.capture = dict(capture or {})
        self.records: list[GemmRecord] = []

    def add(self, layer: str, phase: str, m: int, n: int, k: int, *, step: int = 0,
            epoch: int = 0, count: int = 1, a: np.ndarray | None = None,
            b: np.ndarray | None = None) -> GemmRecord:
        """Append a record; with ``a`` and ``b`` (float32 of the record's shapes) it stores
        the operands too."""
        index = len(self.records)
        record = GemmRecord(index, step, epoch, layer, phase, int(m), int(n), int(k), int(count))
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if (a is None) != (b is None):
            raise ValueError("give both operands or neither")
        if a is not None:
            names = []
            for tag, array, shape in zip("ab", (a, b), record.operand_shapes):
                array = np.ascontiguousarray(array, dtype=np.float32)
                if array.shape != shape:
                    raise ValueError(f"operand {tag} of record {index} has shape {array.shape}, "
                                     f"expected {shape}")
                name = f"operands/{index:06d}_{tag}.npy"
                (self.path / "operands").mkdir(exist_ok=True)
                np.save(self.path / name, array, allow_pickle=False)
                names.append(name)
            record = GemmRecord(**{**asdict(record), "a": names[0], "b": names[1]})
        self.records.append(record)
        return record

    def close(self) -> Path:
        manifest = {"schema": SCHEMA, "model": self.model, "description": self.description,
                    "capture": self.capture,
                    "records": [{k: v for k, v in asdict(r).items()
                                 if not (k in ("a", "b") and v is None)
                                 and not (k == "count" and v == 1)} for r in self.records]}
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        tmp.replace(self.path / MANIFEST)
        return self.path

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.close()
