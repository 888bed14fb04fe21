"""RTL co-simulation (the ``rtl`` extra): a generated Verilog systolic array, built and run in
Verilator, compared bit for bit with the MAC engine and cycle for cycle with the array
model (docs/rtl.md)."""

from hbfpsim.rtl.array import RTLError, Spec, spec_for, verilog
from hbfpsim.rtl.cosim import Result, cosim
from hbfpsim.rtl.emit import emit, with_format

__all__ = ["RTLError", "Result", "Spec", "cosim", "emit", "spec_for", "verilog", "with_format"]
