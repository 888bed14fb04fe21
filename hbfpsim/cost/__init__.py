"""What it costs: area (um^2) and energy (pJ) per MAC, per array and per simulated GEMM, and
arithmetic density, at 28 nm, from published synthesis tables (see docs/cost.md).

>>> from hbfpsim.cost import mac_cost
>>> fp32, hbfp4 = mac_cost("fp32"), mac_cost("hbfp4")
>>> str(hbfp4.accumulator)                  # 2 x 3 magnitude bits + log2(64) + sign: exact
'fixed13'
>>> round(fp32.area / hbfp4.area, 1)        # density relative to FP32 at equal clock
18.9
>>> round(mac_cost("hbfp4", "fixed32").area / hbfp4.area, 2)   # a 32-bit accumulator instead
1.54
"""

from hbfpsim.cost.array import ArrayCost, Energy, array_cost, gemm_energy
from hbfpsim.cost.density import DensityRow, density_table, mixed_density, width_sweep
from hbfpsim.cost.mac import MacCost, default_accumulator, mac_cost

__all__ = ["ArrayCost", "DensityRow", "Energy", "MacCost", "array_cost", "default_accumulator",
           "density_table", "gemm_energy", "mac_cost", "mixed_density", "width_sweep"]
