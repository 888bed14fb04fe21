"""Training in the loop (``torch`` extra): emulated HBFP / MX / FP training.

``emulate(model, schedule, rounding=..., blocking=...)`` swaps a model's Linear, Conv2d and
``MatMul`` modules for emulated ones whose GEMMs quantize their operands as a method says
(``hbfpsim.train.method``: along each GEMM's own reduction axis, or once per tensor as the
HBFP emulators do; ``hbfpsim.train.gemm``); ``quantize(tensor, fmt, axis, rounding, seed)``
is ``hbfpsim.quantize`` for torch tensors on any device; ``hbfpsim.train.job.run`` is the
``hbfpsim train RUN.toml`` job.
"""

from hbfpsim.train.emulate import (EmulatedConv2d, EmulatedLinear, EmulatedMatMul, Emulation,
                                   MatMul, emulate, pe_plan)
from hbfpsim.train.method import Method, Roundings, Variant, as_variant
from hbfpsim.train.quantizer import quantize

__all__ = ["EmulatedConv2d", "EmulatedLinear", "EmulatedMatMul", "Emulation", "MatMul",
           "Method", "Roundings", "Variant", "as_variant", "emulate", "pe_plan", "quantize"]
