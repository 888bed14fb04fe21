"""Training in the loop (``torch`` extra): emulated HBFP / MX / FP training on a CPU.

``emulate(model, schedule)`` swaps a model's Linear, Conv2d and ``MatMul`` modules for
emulated ones whose three GEMMs each quantize their operands along their own reduction axis
(``hbfpsim.train.gemm``); ``hbfpsim.train.run`` is the ``hbfpsim train RUN.toml`` job.
"""

from hbfpsim.train.emulate import (EmulatedConv2d, EmulatedLinear, EmulatedMatMul, Emulation,
                                   MatMul, as_schedule, emulate, pe_plan)

__all__ = ["EmulatedConv2d", "EmulatedLinear", "EmulatedMatMul", "Emulation", "MatMul",
           "as_schedule", "emulate", "pe_plan"]
