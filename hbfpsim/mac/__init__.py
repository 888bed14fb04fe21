"""The MAC engine: what a PE computes. Exact products, fixed- and floating-point
accumulators that round once per operation, accumulation plans, and ``matmul``.

>>> import numpy as np
>>> from hbfpsim.mac import matmul
>>> A = np.full((1, 128), 0.1, np.float32); B = np.ones((128, 1), np.float32)
>>> out, stats = matmul(A, B, "hbfp4", plan="fixed16*64 > fp32")
>>> float(out[0, 0])   # 0.1 -> 0.09375 in HBFP4; 128 x 0.09375 = 12 exactly
12.0
>>> stats.levels[0].fast_path
True
>>> str(matmul(A, B, "hbfp4").stats.plan)     # no plan: the format's hardware (default_plan)
'fixed13*64 > fp32'
"""

from hbfpsim.mac.accumulators import (Accumulator, FixedAccumulator, FloatAccumulator,
                                      parse_accumulator)
from hbfpsim.mac.engine import LevelStats, MatmulResult, MatmulStats, matmul
from hbfpsim.mac.plan import AccumulationPlan, Level, as_plan, default_plan

__all__ = ["AccumulationPlan", "Accumulator", "FixedAccumulator", "FloatAccumulator", "Level",
           "LevelStats", "MatmulResult", "MatmulStats", "as_plan", "default_plan", "matmul",
           "parse_accumulator"]
