"""hbfpsim: time, cost and accuracy of HBFP / MX / FP systolic-array training accelerators.

``hbfpsim.quantize`` and ``hbfpsim.matmul`` are loaded on first use (PEP 562), so that
``import hbfpsim`` and the leaf modules (``hbfpsim.config``) stay cheap: the numba kernels
come in with the layers that run them. Before numba is first imported, ``numba_cache`` makes
sure it has a folder to cache the compiled kernels in."""

from __future__ import annotations

from typing import Any

from hbfpsim import numba_cache

__version__ = "0.1.0"
__all__ = ["matmul", "quantize", "__version__"]

numba_cache.install()


def __getattr__(name: str) -> Any:
    if name == "quantize":
        from hbfpsim.formats import quantize
        return quantize
    if name == "matmul":
        from hbfpsim.mac import matmul
        return matmul
    raise AttributeError(f"module 'hbfpsim' has no attribute {name!r}")
