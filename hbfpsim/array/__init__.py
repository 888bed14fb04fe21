"""The array model: where data is when. Mapping GEMMs onto a systolic array, a fold-level
discrete-event timing model with a DRAM channel and SRAM buffers, and a cycle-stepped
per-PE reference for small arrays.

>>> from hbfpsim.array import simulate
>>> from hbfpsim.config import ArrayConfig
>>> array = ArrayConfig(rows=4, cols=4, dataflow="ws")
>>> report = simulate(array, 5, 6, 7)       # M, N, K with ideal memory
>>> report.folds, report.total_cycles       # 4 folds x (2R + C + T - 2 = 15)
(4, 60)
"""

from hbfpsim.array.many import simulate_many
from hbfpsim.array.mapping import Mapping, plan_for
from hbfpsim.array.simulate import ENGINES, FoldEvents, GemmReport, load, simulate

__all__ = ["ENGINES", "FoldEvents", "GemmReport", "Mapping", "load", "plan_for", "simulate",
           "simulate_many"]
