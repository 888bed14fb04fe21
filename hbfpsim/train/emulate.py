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

How tensors are rounded and blocked follows a ``Method`` (``hbfpsim.train.method``):
rounding per tensor role (nearest even by default, or stochastic), ``gemm`` or ``emulator``
blocking, attention products emulated or in FP32, which parameters the wide copy holds.
Stochastic rounding draws from the counter-based stream of ``hbfpsim.formats``, one stream
per quantization, keyed by (``seed``, ``emu.step``, the quantization's ordinal within the
step): a run is reproducible, and resuming at a step boundary continues the same streams.
``emu.step`` counts optimizer steps (the optimizer's step hook advances it; without an
optimizer, set it) and selects schedule rules by step.
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

from hbfpsim.formats.rounding import Rounding
from hbfpsim.numerics import Numerics
from hbfpsim.format_schedule import PHASES, RunContext, Schedule
from hbfpsim.train.gemm import Conv2dFn, LinearFn, MatmulFn, emulator_op
from hbfpsim.train.method import ROLES, Method, Variant, as_variant, with_changes
from hbfpsim.train.storage import keep_stored
from hbfpsim.validate import is_integer, known_keys

# (layer, phase, numerics, A, B, whether A is the weight) of every GEMM while counting
Recorder = Callable[[str, str, Numerics, torch.Tensor, torch.Tensor, bool], None]
EXACT_KEYS = ("layers", "phases", "epochs")
_STOCHASTIC = int(Rounding.STOCHASTIC)


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

    def rounding(self, role: str) -> tuple[int, int]:
        return self.emulation.rounding(role)

    def record(self, phase, numerics, a, b, a_weight) -> None:
        self.emulation.count(self.layer, phase, numerics, a, b, a_weight)

    def count(self, phase: str, numerics: Numerics, macs: int) -> None:
        self.emulation.count_macs(numerics, macs)

    @property
    def by_tensor(self) -> bool:
        """``emulator`` blocking: tensors quantized once along their last axis."""
        return self.emulation.method.blocking == "emulator"


class EmulatedLinear(nn.Linear):
    site: _Site

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.site.by_tensor:
            return LinearFn.apply(x, self.weight, self.bias, self.site)
        y = emulator_op(self.site, x, self.weight, ("activations", "weights"),
                        nn.functional.linear, x.numel() * self.out_features)
        return y if self.bias is None else y + self.bias


class EmulatedConv2d(nn.Conv2d):
    site: _Site

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros":
            x = nn.functional.pad(x, self._reversed_padding_repeated_twice, self.padding_mode)
            padding = (0, 0)
        else:
            padding = self.padding
        if not self.site.by_tensor:
            return Conv2dFn.apply(x, self.weight, self.bias, self.site, self.stride, padding,
                                  self.dilation)

        def conv(qx, qw):
            return nn.functional.conv2d(qx, qw, None, self.stride, padding, self.dilation)

        positions = math.prod((size + 2 * p - d * (k - 1) - 1) // st + 1 for size, p, d, k, st
                              in zip(x.shape[2:], padding, self.dilation, self.kernel_size,
                                     self.stride))
        macs = x.shape[0] * positions * self.weight.numel()
        y = emulator_op(self.site, x, self.weight, ("activations", "weights"), conv, macs)
        return y if self.bias is None else y + self.bias[:, None, None]


class EmulatedMatMul(MatMul):
    site: _Site

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if not self.site.by_tensor:
            return MatmulFn.apply(a, b, self.site)
        batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]).numel()
        return emulator_op(self.site, a, b, ("activations", "activations"), torch.matmul,
                           batch * a.shape[-2] * a.shape[-1] * b.shape[-1])


_SWAPS = ((nn.Conv2d, EmulatedConv2d), (nn.Linear, EmulatedLinear), (MatMul, EmulatedMatMul))


def _stream(seed: int, step: int, draw: int) -> int:
    """The stochastic-rounding stream of one quantization: SplitMix64's finalizer over
    (seed, step, draw), in [0, 2^63)."""
    z = seed
    for part in (step, draw):
        z = (z + part * 0x9E3779B97F4A7C15 + 0x9E3779B97F4A7C15) & MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
    return z >> 1


MASK64 = 2**64 - 1


class Emulation:
    """The state every converted layer reads: schedule, method, epoch and step, which GEMMs
    accumulate bit-exactly, MAC counts per numerics, and an optional GEMM recorder
    (capture)."""

    def __init__(self, schedule: Schedule, method: Method, layers: list[str],
                 epochs: int | None, steps: int | None, exact: dict | None, seed: int):
        self.schedule, self.method, self.seed = schedule, method, int(seed)
        self.layers = tuple(layers)
        self.context = RunContext(layers[0] if layers else None,
                                  layers[-1] if layers else None,
                                  None if epochs is None else epochs - 1,
                                  None if steps is None else steps - 1)
        self.epoch = 0
        self.step = 0                  # optimizer steps so far
        self.draws = 0                 # stochastic quantizations in this step
        self.exact = exact_spec(exact)
        self.macs: Counter[str] = Counter()
        self.recorder: Recorder | None = None
        self.counting = True
        self._numerics: dict[tuple, Numerics] = {}
        self._modes = {role: int(getattr(method.rounding, role)) for role in ROLES}

    def numerics_for(self, layer: str, phase: str) -> Numerics:
        step = self.step if self.schedule.by_step else None
        key = (layer, phase, self.epoch, step)
        found = self._numerics.get(key)
        if found is None:
            found = self._numerics[key] = self.schedule.numerics_for(layer, phase, self.epoch,
                                                                     self.context, step)
        return found

    def rounding(self, role: str) -> tuple[int, int]:
        """(Rounding code, stream seed) of the next quantization of a ``role`` tensor."""
        mode = self._modes[role]
        if mode != _STOCHASTIC:
            return mode, 0
        self.draws += 1
        return mode, _stream(self.seed, self.step, self.draws)

    def stepped(self) -> None:
        """One optimizer step done."""
        self.step += 1
        self.draws = 0

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

    def count_macs(self, numerics: Numerics, macs: int) -> None:
        if self.counting:
            self.macs[numerics.input.name] += macs

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        """GEMMs in this block (validation, probes) are neither counted nor recorded, and
        leave the step's stochastic streams where they were."""
        self.counting, draws = False, self.draws
        try:
            yield
        finally:
            self.counting, self.draws = True, draws

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
    """The GEMMs that accumulate bit-exactly, checked, with defaults filled in: ``layers``
    (name patterns, default all), ``phases`` (default all) and ``epochs`` ([first, last],
    default all); None stays None."""
    if exact is None:
        return None
    if not isinstance(exact, dict):
        raise ValueError(f"exact: expected a dict with layers, phases, epochs; got {exact!r}")
    known_keys(exact, EXACT_KEYS, "exact:")
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
            is_integer(e, 0) for e in epochs)):
        raise ValueError(f"exact epochs: expected [first, last] (integers >= 0), got {epochs!r}")
    return {"layers": tuple(layers), "phases": tuple(phases), "epochs": tuple(epochs)}


def emulate(model: nn.Module, schedule: str | Schedule | Variant, *,
            optimizer: torch.optim.Optimizer | None = None, epochs: int | None = None,
            steps: int | None = None, exact: dict | None = None, seed: int = 0,
            rounding: Any = None, blocking: str | None = None, attention: str | None = None,
            storage: str | None = None, stored: str | None = None) -> Emulation:
    """Swap ``model``'s Linear, Conv2d and MatMul modules for emulated ones (in place) and
    return the Emulation they share.

    ``schedule``: a format name (``"hbfp4"``, ``"hbfp4@8"``), a preset (``"booster"``, or a
    method preset ``"booster-cnn"`` / ``"booster-transformer"``, which also set the method),
    a Schedule or a Variant; ``@first`` / ``@last`` are the first and last converted layers
    in registration order. ``epochs`` and ``steps``: the run's length in epochs and
    optimizer steps (for ``"last"`` and percentages in rules). ``exact``: GEMMs that
    accumulate bit-exactly through the MAC engine, ``{"layers": [patterns], "phases": [...],
    "epochs": [first, last]}`` (the PE plan of ``pe_plan``; ``gemm`` blocking only).

    The method (``hbfpsim.train.method``; not given: the preset's, else nearest-even
    rounding, ``gemm`` blocking, attention emulated, HBFP16 storage of the weights):
    ``rounding`` a mode (``"even"``, ``"stochastic"``, ...) or a table by role
    (activations, weights, gradients, storage); ``seed`` keys the stochastic streams;
    ``blocking`` ``"gemm"`` or ``"emulator"``; ``attention`` ``"emulated"`` or ``"fp32"``;
    ``storage`` the parameters' format after each ``optimizer.step()`` (``"auto"``: HBFP16
    for HBFP schedules, ``"none"``: FP32; needs ``optimizer``) and ``stored`` which
    parameters it holds (``"weights"`` of converted layers or ``"all"``)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"emulate: model must be a torch.nn.Module, got {type(model).__name__}")
    variant = as_variant(schedule)
    method = with_changes(variant.method, rounding=rounding, blocking=blocking,
                          attention=attention, storage=storage, stored=stored)
    for key, value in (("epochs", epochs), ("steps", steps)):
        if value is not None and not is_integer(value, 1):
            raise ValueError(f"{key}: expected an integer >= 1, got {value!r}")
    if not is_integer(seed, 0, 2**63 - 1):
        raise ValueError(f"seed: expected an integer in [0, 2^63), got {seed!r}")
    if exact is not None and method.blocking == "emulator":
        raise ValueError("exact: bit-exact accumulation reads each GEMM's operands in blocks "
                         "along its own K, which needs blocking='gemm'")
    targets = _targets(model, _SWAPS if method.attention == "emulated" else _SWAPS[:2])
    emu = Emulation(variant.schedule, method, [name for name, _, _ in targets], epochs, steps,
                    exact, seed)
    for name, module, emulated in targets:
        module.__class__ = emulated
        module.site = _Site(emu, name)
    if optimizer is not None:
        keep_stored(emu, model, optimizer, [m.weight for _, m, _ in targets
                                            if hasattr(m, "weight")])
    return emu


def _targets(model: nn.Module, swaps: tuple[tuple[type, type], ...]
             ) -> list[tuple[str, nn.Module, type]]:
    """(name, module, emulated class) of every module of ``model`` that ``swaps`` converts,
    in registration order; a ValueError for a grouped convolution or for none at all."""
    targets = []
    for name, module in model.named_modules():
        for plain, emulated in swaps:
            if type(module) in (plain, emulated):
                if isinstance(module, nn.Conv2d) and module.groups != 1:
                    raise ValueError(f"{name}: grouped convolutions (groups={module.groups}) "
                                     "are not emulated")
                targets.append((name or type(module).__name__, module, emulated))
                break
    if not targets:
        raise ValueError("emulate: the model has no Linear, Conv2d or hbfpsim.train.MatMul "
                         "module to convert")
    return targets


def converted(model: nn.Module) -> list[tuple[str, Any]]:
    """The emulated modules of ``model``, by name."""
    return [(name, m) for name, m in model.named_modules() if hasattr(m, "site")]
