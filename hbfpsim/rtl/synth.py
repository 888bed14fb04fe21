"""The generated array synthesized by Yosys (the ``hw`` extra), next to the cost model's
estimate of the same configuration.

Yosys maps the design (without the co-simulation's statistics counters) to generic gates,
keeping the hierarchy, so a PE is synthesized once however many the array holds, and
estimates CMOS transistors (``stat -tech cmos``, after ``dffunmap`` turns flip-flops with
enables and resets into plain ones and logic, which that estimate counts). Transistors
become um^2 at 28 nm with the calibration's constant (``cost.components.fitted``), as
``hbfpsim cost synth`` does for a single PE.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hbfpsim.config import ArrayConfig
from hbfpsim.cost import ArrayCost, array_cost, components
from hbfpsim.cost.calibrate import SynthesisError, yosys
from hbfpsim.numerics import Numerics
from hbfpsim.rtl.array import Spec, spec_for, verilog


@dataclass(frozen=True)
class ArraySynthesis:
    """Transistors (CMOS estimate) and um^2 at 28 nm of one PE (its float units included)
    and of the whole array (PEs, skew registers, controller, the output buffer's adder),
    with the cost model's estimate of the same configuration."""

    spec: Spec
    pe_transistors: int
    array_transistors: int
    um2_per_transistor: float
    model: ArrayCost

    @property
    def pe_um2(self) -> float:
        return self.pe_transistors * self.um2_per_transistor

    @property
    def array_um2(self) -> float:
        return self.array_transistors * self.um2_per_transistor


def synthesize_array(config: ArrayConfig, numerics: Numerics | None = None) -> ArraySynthesis:
    """Synthesize ``config``'s generated array (and its PE alone) with Yosys."""
    numerics = Numerics.of(config) if numerics is None else numerics
    spec = spec_for(config, numerics)
    text = verilog(spec, counters=False)
    return ArraySynthesis(spec, _transistors(text, "pe"), _transistors(text, "hbfpsim_array"),
                          components.fitted()["um2_per_transistor"],
                          array_cost(config, numerics))


def _transistors(text: str, top: str) -> int:
    """Yosys's transistor estimate of module ``top`` of ``text``, submodules included."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, "design.v").write_text(text)
        done = subprocess.run([yosys(), "-q", "-p", f"read_verilog -sv design.v; synth -top "
                               f"{top}; dffunmap; tee -q -o stat.txt stat -tech cmos"],
                              cwd=work, capture_output=True, text=True)
        if done.returncode:
            raise SynthesisError(f"yosys failed: {(done.stderr or done.stdout).strip()[-400:]}")
        report = Path(work, "stat.txt").read_text()
    found = re.findall(r"Estimated number of transistors:\s+(\d+)(\+?)", report)
    if not found or found[-1][1]:
        raise SynthesisError(f"no complete transistor estimate in the Yosys report: "
                             f"{report[-400:]}")
    return int(found[-1][0])                 # the last: the whole hierarchy's
