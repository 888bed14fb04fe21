"""hbfpsim: time, cost and accuracy of HBFP / MX / FP systolic-array training accelerators."""

from hbfpsim.formats import quantize
from hbfpsim.mac import matmul

__version__ = "0.1.0"
__all__ = ["matmul", "quantize", "__version__"]
