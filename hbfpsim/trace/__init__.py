"""GEMM traces: what work arrives. The trace format (a manifest plus float32 ``.npy``
operands, streamed), shape-only traces of well-known networks, capture from PyTorch training
(``hbfpsim.trace.capture``, in ``hbfpsim.trace.pytorch``; needs the ``torch`` extra) and SCALE-Sim topology import.

>>> from hbfpsim import trace
>>> t = trace.open("traces/resnet50_step")
>>> t.model, len(t), t.summary()["phases"]["fwd"]["records"]
('resnet50', 161, 54)
"""

from pathlib import Path
from typing import Any

from hbfpsim.trace.format import (PHASES, SCHEMA, Gemm, GemmRecord, Trace, TraceError,
                                  TraceWarning, TraceWriter, open_trace as open)
from hbfpsim.trace.models import MODELS, shape_trace


def capture(path: str | Path, model: Any, **options: Any) -> Any:
    """Record the GEMMs of PyTorch training steps (see hbfpsim.trace.pytorch); needs torch.
    Options: steps, layers, max_bytes, name, description, force (others are refused)."""
    try:
        from hbfpsim.trace.pytorch import Capture
    except ImportError as err:  # pragma: no cover
        raise ImportError("hbfpsim.trace.capture needs PyTorch: pip install 'hbfpsim[torch]'") \
            from err
    return Capture(path, model, **options)


__all__ = ["MODELS", "PHASES", "SCHEMA", "Gemm", "GemmRecord", "Trace", "TraceError",
           "TraceWarning", "TraceWriter", "capture", "open", "shape_trace"]
