"""Convert a PyTorch model to emulated arithmetic by swapping its modules.

    emu = hbfpsim.train.emulate(model, "hbfp4", optimizer=opt, epochs=30)
    for epoch in range(30):
        emu.epoch = epoch
        ...   # the user's loop, unchanged

``nn.Linear`` and ``nn.Conv2d`` (groups = 1) become ``EmulatedLinear`` / ``EmulatedConv2d``
and ``hbfpsim.train.MatMul`` (a module a model uses for ``a @ b`` of two activations, plain
``torch.matmul`` until converted) becomes ``EmulatedMatMul``. They keep the original
``Parameter`` objects, so an optimizer built before or after the swap trains the same
tensors. Each of their GEMMs (forward, backward-data, backward-weight) takes its numerics
from the schedule by layer name, phase and ``emu.epoch``.

With ``optimizer``, the weights are stored in a wide block floating point after every
``optimizer.step()`` (``storage``, default HBFP16: 16-bit mantissas, blocks of 64 along each
weight's forward reduction axis), as the HBFP papers train: no FP32 master copy, and every
GEMM reads a narrow copy quantized from the wide one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase
from typing import Any

import torch
from torch import nn

from hbfpsim import formats
from hbfpsim.formats.threads import calling_thread_only
from hbfpsim.numerics import Numerics
from hbfpsim.schedule import PHASES, PRESETS, Schedule, Where
from hbfpsim.train.gemm import Conv2dFn, LinearFn, MatmulFn, quantize

# (layer, phase, numerics, A, B, whether A is the weight) of every GEMM while counting
Recorder = Callable[[str, str, Numerics, torch.Tensor, torch.Tensor, bool], None]


class MatMul(nn.Module):
    """``a @ b`` of two activations as a module, so that ``emulate`` can swap it."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class _Site:
    """One converted layer's link to its emulation."""

    def __init__(self, emulation: Emulation, layer: str):
        self.emulation, self.layer = emulation, layer

    def numerics(self, phase: str) -> Numerics:
        return self.emulation.numerics_for(self.layer, phase)

    def exact_plan(self, phase: str) -> str | None:
        return self.emulation.exact_plan(self.layer, phase)

    def record(self, phase, numerics, a, b, a_weight) -> None:
        self.emulation.count(self.layer, phase, numerics, a, b, a_weight)


class EmulatedLinear(nn.Linear):
    site: _Site

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LinearFn.apply(x, self.weight, self.bias, self.site)


class EmulatedConv2d(nn.Conv2d):
    site: _Site

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros":
            x = nn.functional.pad(x, self._reversed_padding_repeated_twice, self.padding_mode)
            padding = (0, 0)
        else:
            padding = self.padding
        return Conv2dFn.apply(x, self.weight, self.bias, self.site, self.stride, padding,
                              self.dilation)


class EmulatedMatMul(MatMul):
    site: _Site

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return MatmulFn.apply(a, b, self.site)


_SWAPS = ((nn.Conv2d, EmulatedConv2d), (nn.Linear, EmulatedLinear), (MatMul, EmulatedMatMul))


class Emulation:
    """The state every converted layer reads: schedule, epoch, which GEMMs accumulate
    bit-exactly, MAC counts per numerics, and an optional GEMM recorder (capture)."""

    def __init__(self, schedule: Schedule, layers: list[str], epochs: int | None,
                 exact: dict | None):
        self.schedule = schedule
        self.layers = tuple(layers)
        self.where = Where(layers[0] if layers else None, layers[-1] if layers else None,
                           None if epochs is None else epochs - 1)
        self.epoch = 0
        self.exact = exact_spec(exact)
        self.macs: Counter[str] = Counter()
        self.recorder: Recorder | None = None
        self.counting = True
        self._numerics: dict[tuple[str, str, int], Numerics] = {}

    def numerics_for(self, layer: str, phase: str) -> Numerics:
        key = (layer, phase, self.epoch)
        found = self._numerics.get(key)
        if found is None:
            found = self._numerics[key] = self.schedule.numerics_for(layer, phase, self.epoch,
                                                                     self.where)
        return found

    def exact_plan(self, layer: str, phase: str) -> str | None:
        spec = self.exact
        if spec is None or not any(fnmatchcase(layer, p) for p in spec["layers"]):
            return None
        low, high = spec["epochs"]
        if not (low <= self.epoch <= high) or phase not in spec["phases"]:
            return None
        return pe_plan(self.numerics_for(layer, phase))

    def count(self, layer, phase, numerics, a, b, a_weight) -> None:
        if not self.counting:
            return
        # K is shared; every other dimension of either operand is an output dimension
        self.macs[numerics.input.name] += max(a.numel() * b.shape[-1], b.numel() * a.shape[-2])
        if self.recorder is not None:
            self.recorder(layer, phase, numerics, a, b, a_weight)

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        """GEMMs in this block (validation, probes) are neither counted nor recorded."""
        self.counting = False
        try:
            yield
        finally:
            self.counting = True

    def mac_fractions(self) -> dict[str, float]:
        """Share of all emulated MACs so far per operand format (of the input operand)."""
        total = sum(self.macs.values())
        return {name: count / total for name, count in sorted(self.macs.items())} if total else {}


def pe_plan(numerics: Numerics) -> str:
    """The accumulation plan of one output-stationary PE: all of K in the chain accumulator,
    inside the block accumulator per shared block when there is one."""
    acc = str(numerics.accumulator)
    if numerics.block_accumulator is None:
        return acc
    shared = math.gcd(numerics.input.block or 0, numerics.weight.block or 0)
    if not shared:                 # scalar formats: one block spans K, all of it integer
        return str(numerics.block_accumulator)
    return f"{numerics.block_accumulator}*{shared} > {acc}"


def exact_spec(exact: dict | None) -> dict | None:
    if exact is None:
        return None
    if not isinstance(exact, dict):
        raise ValueError(f"exact: expected a dict with layers, phases, epochs; got {exact!r}")
    extra = sorted(set(exact) - {"layers", "phases", "epochs"})
    if extra:
        raise ValueError(f"exact: unknown key {extra[0]!r} (expected layers, phases, epochs)")
    layers = exact.get("layers", ["*"])
    phases = exact.get("phases", list(PHASES))
    epochs = exact.get("epochs", [0, 2**31])
    if not (isinstance(layers, (list, tuple)) and layers and all(isinstance(x, str) for x in layers)):
        raise ValueError(f"exact layers: expected a list of name patterns, got {layers!r}")
    if not (isinstance(phases, (list, tuple)) and phases
            and all(p in PHASES for p in phases)):
        raise ValueError(f"exact phases: expected a list of fwd, bwd_data, bwd_weight, got "
                         f"{phases!r}")
    if not (isinstance(epochs, (list, tuple)) and len(epochs) == 2 and all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in epochs)):
        raise ValueError(f"exact epochs: expected [first, last] (integers >= 0), got {epochs!r}")
    return {"layers": tuple(layers), "phases": tuple(phases), "epochs": tuple(epochs)}


def as_schedule(schedule: str | Schedule) -> Schedule:
    """A Schedule from a Schedule, a preset name (``booster``) or a format name (the fixed
    schedule: FP32 accumulation, no block accumulator, as the public emulators compute)."""
    if isinstance(schedule, Schedule):
        return schedule
    if not isinstance(schedule, str):
        raise ValueError(f"schedule: expected a format name, a preset ({', '.join(PRESETS)}) "
                         f"or a Schedule, got {schedule!r}")
    if schedule in PRESETS:
        return PRESETS[schedule]
    return Schedule.fixed(Numerics.create(schedule, source="schedule"))


def emulate(model: nn.Module, schedule: str | Schedule, *, optimizer: torch.optim.Optimizer
            | None = None, storage: str | None = "auto", epochs: int | None = None,
            exact: dict | None = None) -> Emulation:
    """Swap ``model``'s Linear, Conv2d and MatMul modules for emulated ones (in place) and
    return the Emulation they share. ``schedule``: a format name (``"hbfp4"``), a preset
    (``"booster"``) or a Schedule; ``@first`` / ``@last`` are the first and last converted
    layers in registration order. ``epochs``: the run's length (for the epoch ``"last"``).
    ``exact``: GEMMs that accumulate bit-exactly through the MAC engine, ``{"layers":
    [patterns], "phases": [...], "epochs": [first, last]}`` (the PE plan of ``pe_plan``).
    ``optimizer`` + ``storage``: weights kept in ``storage`` after each step (None: FP32;
    "auto": HBFP16 when the schedule uses an HBFP format, else FP32)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"emulate: model must be a torch.nn.Module, got {type(model).__name__}")
    schedule = as_schedule(schedule)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")
    targets = []
    for name, module in model.named_modules():
        for plain, emulated in _SWAPS:
            if type(module) in (plain, emulated):
                if isinstance(module, nn.Conv2d) and module.groups != 1:
                    raise ValueError(f"{name}: grouped convolutions (groups={module.groups}) "
                                     "are not emulated")
                targets.append((name or type(module).__name__, module, emulated))
                break
    if not targets:
        raise ValueError("emulate: the model has no Linear, Conv2d or hbfpsim.train.MatMul "
                         "module to convert")
    emu = Emulation(schedule, [name for name, _, _ in targets], epochs, exact)
    for name, module, emulated in targets:
        module.__class__ = emulated
        module.site = _Site(emu, name)
    if storage == "auto":
        storage = "hbfp16" if any(n.input.family == "hbfp" or n.weight.family == "hbfp"
                                  for n in schedule.numerics) else None
    if optimizer is not None and storage is not None:
        wide = formats.get(storage)
        weights = [m.weight for _, m, _ in targets if hasattr(m, "weight")]
        optimizer.register_step_post_hook(lambda *_: store(weights, wide))
        store(weights, wide)
    return emu


@torch.no_grad()
def store(weights: list[torch.Tensor], fmt: formats.Format) -> None:
    """Round each weight in place to ``fmt``, blocks along its forward reduction axis (all
    but the first dimension, flattened)."""
    with calling_thread_only():
        for w in weights:
            w.copy_(quantize(w.reshape(w.shape[0], -1), fmt, 1).reshape(w.shape))


def converted(model: nn.Module) -> list[tuple[str, Any]]:
    """The emulated modules of ``model``, by name."""
    return [(name, m) for name, m in model.named_modules() if hasattr(m, "site")]
