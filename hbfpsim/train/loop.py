"""One training run (a variant and a seed), resumable: after every epoch its checkpoint
(model, optimizer, history, MAC counts, optimizer steps) replaces the previous one, written whole under a
temporary name and renamed. A rerun loads it with ``torch.load(weights_only=True)`` (tensors
and plain containers only: no pickled objects) and goes on from the next epoch; batches come
from generators seeded by (seed, epoch), so a resumed run ends with the same weights as one
that never stopped.

After every epoch a probe batch (fixed validation data) runs forward and backward without
training, and each converted layer's weights, outputs (activations) and weight gradients go
to ``probes/VARIANT/seedS/epochE.npz``: the inputs of the Wasserstein analysis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hbfpsim.config import ConfigError
from hbfpsim.staging import staged_file
from hbfpsim.trace.format import TraceWriter
from hbfpsim.train.emulate import Emulation, converted, emulate
from hbfpsim.train.method import Variant
from hbfpsim.train.spec import TrainSpec

PROBE_VALUES = 8192          # values kept per probed tensor (evenly spaced)


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch of a run: the mean training loss (nats), the validation loss and metric
    (the task's), and its wall time (s)."""

    epoch: int
    train_loss: float
    val_loss: float
    metric: float
    seconds: float


@dataclass
class RunResult:
    variant: str
    seed: int
    history: list[EpochMetrics]
    macs: dict[str, int]         # emulated MACs per input format


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block (restored afterwards). A run's results then do
    not depend on the machine's CPU count or on how many runs share it, and a busy core
    slows one run instead of stalling every parallel operation of all of them: torch's
    threads wait for each other at the end of every operation, so one of two threads on a
    core another process keeps busy made a digits CNN step 35 times slower on this
    project's two-core machine. ``job`` runs as many runs at once as there are CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def checkpoint_path(out: Path, variant: str, seed: int) -> Path:
    return out / "checkpoints" / f"{variant}-seed{seed}.pt"


def build(spec: TrainSpec, task: Any, variant: Variant, seed: int
          ) -> tuple[nn.Module, torch.optim.Optimizer, Emulation]:
    """The seeded, converted model of one run, its optimizer and emulation."""
    torch.manual_seed(seed)
    model = task.model()
    optimizer = task.optimizer(model.parameters())
    emu = emulate(model, variant, optimizer=optimizer, epochs=spec.epochs,
                  steps=spec.epochs * task.steps_per_epoch(), exact=spec.exact, seed=seed)
    return model, optimizer, emu


def train_one(spec: TrainSpec, task: Any, variant: Variant, seed: int, out: Path,
              progress: Any = None) -> RunResult:
    """Train (or resume, or just load a finished) run; ``progress.update(1)`` per step."""
    model, optimizer, emu = build(spec, task, variant, seed)
    path = checkpoint_path(out, variant.name, seed)
    key = spec.key(variant, seed)
    history: list[EpochMetrics] = []
    if path.exists():
        state = load_checkpoint(path, key)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [EpochMetrics(**h) for h in state["history"]]
        emu.macs.update(state["macs"])
        emu.step = state["step"]
        if progress is not None:
            progress.update(len(history) * task.steps_per_epoch())
    writer = _writer(spec, variant, seed, len(history), task.about)
    if writer is not None:
        _check_layers(spec.capture.layers, emu.layers, writer)
    try:
        for epoch in range(len(history), spec.epochs):
            history.append(_epoch(task, model, optimizer, emu, seed, epoch, writer, spec,
                                  variant.rate or spec.rate, progress))
            _probe(task, model, emu, out / "probes" / variant.name / f"seed{seed}" /
                   f"epoch{epoch:03d}.npz")
            if writer is not None and epoch == spec.capture.epochs[-1]:
                writer.close()
                writer = None
            with staged_file(path) as tmp:
                torch.save({"key": key, "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "history": [asdict(h) for h in history],
                            "macs": dict(emu.macs), "step": emu.step}, tmp)
    finally:
        if writer is not None:
            writer.abort()
    return RunResult(variant.name, seed, history, dict(emu.macs))


def load_checkpoint(path: Path, key: str) -> dict:
    """A checkpoint's contents, refused (ConfigError) when it is not a regular file, not a
    checkpoint, or of another run (``key`` differs)."""
    if not path.is_file():
        raise ConfigError(f"{path}: expected a checkpoint file")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:   # torch raises many kinds for a damaged or foreign file
        raise ConfigError(f"{path}: not a readable hbfpsim checkpoint "
                          f"({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("key") != key:
        raise ConfigError(f"{path}: a checkpoint of a different run (task, variant, seed, "
                          "epochs or settings changed); delete it or choose another out")
    return state


def _epoch(task, model, optimizer, emu, seed, epoch, writer, spec, rate,
           progress) -> EpochMetrics:
    emu.epoch = epoch
    model.train()
    start, total, steps = time.perf_counter(), 0.0, 0
    run_steps = spec.epochs * task.steps_per_epoch()
    for step, batch in enumerate(task.batches(seed, epoch)):
        emu.recorder = (_recorder(writer, epoch, step, spec.capture)
                        if writer is not None and epoch in spec.capture.epochs
                        and step < spec.capture.steps else None)
        for group in optimizer.param_groups:
            group["lr"] = rate.at(emu.step, run_steps, task.steps_per_epoch())
        loss = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
        steps += 1
        if progress is not None:
            progress.update(1)
    emu.recorder = None
    model.eval()
    with emu.uncounted():
        val_loss, metric = task.evaluate(model)
    return EpochMetrics(epoch, total / max(steps, 1), val_loss, metric,
                        time.perf_counter() - start)


def _writer(spec: TrainSpec, variant: Variant, seed: int, done: int, about: str
            ) -> TraceWriter | None:
    cap = spec.capture
    if cap is None or cap.variant != variant.name or cap.seed != seed:
        return None
    if cap.path.exists() or cap.path.is_symlink():
        if not (cap.path / "manifest.json").is_file():
            raise ConfigError(f"capture path {cap.path}: exists and is not a trace")
        return None                  # written by an earlier, interrupted run of this file
    if done > cap.epochs[-1]:
        return None
    capture = {"source": "hbfpsim train", "task": spec.task, "variant": variant.name,
               "seed": seed, "epochs": list(cap.epochs), "steps_per_epoch": cap.steps,
               "layers": list(cap.layers)}
    return TraceWriter(cap.path, f"{spec.task}-{variant.name}",
                       f"GEMMs of the emulated {spec.task} training run ({variant.name}, seed "
                       f"{seed}; {about}; settings {spec.settings}), raw FP32 operands before "
                       f"quantization; the first {cap.steps} step(s) of epochs "
                       f"{list(cap.epochs)}.", capture)


def _check_layers(patterns: tuple[str, ...], layers: tuple[str, ...], writer) -> None:
    try:
        check_layers(patterns, layers, "capture layers")
    except ConfigError:
        writer.abort()
        raise


def check_layers(patterns: tuple[str, ...], layers: tuple[str, ...], what: str) -> None:
    """A ConfigError naming ``what`` unless every name pattern matches a converted layer."""
    for pattern in patterns:
        if not any(fnmatchcase(layer, pattern) for layer in layers):
            raise ConfigError(f"{what}: {pattern!r} matches no converted layer (the layers "
                              f"are {', '.join(layers)})")


def _recorder(writer: TraceWriter, epoch: int, step: int, cap):
    budget = cap.max_bytes

    def record(layer, phase, numerics, a, b, a_weight):
        if not any(fnmatchcase(layer, p) for p in cap.layers):
            return
        if a_weight:                  # C^T = B^T A^T: activations as A, weights as B
            a, b = b.transpose(-1, -2), a.transpose(-1, -2)
        count = 1
        if b.dim() > 2 and a.dim() > 2:     # a batch of products (attention): count of them
            batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            count = batch.numel()
            a = a.expand(*batch, *a.shape[-2:]).reshape(count, *a.shape[-2:])
            b = b.expand(*batch, *b.shape[-2:]).reshape(count, *b.shape[-2:])
        elif a.dim() > 2:
            a = a.reshape(-1, a.shape[-1])
        elif b.dim() > 2:
            b = b.movedim(-2, 0).reshape(b.shape[-2], -1)
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        stored = sum((r.m * r.k + r.k * r.n) * r.count for r in writer.records if r.a)
        keep = budget is None or (stored + (m * k + k * n) * count) * 4 <= budget
        writer.add(layer, phase, m, n, k, step=step, epoch=epoch, count=count,
                   a=a.detach().numpy() if keep else None,
                   b=b.detach().numpy() if keep else None)
    return record


def _probe(task, model: nn.Module, emu: Emulation, path: Path) -> None:
    layers = converted(model)
    outputs: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_hook(
        lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach()))
        for name, module in layers]
    try:
        with emu.uncounted():
            model.zero_grad(set_to_none=True)
            task.loss(model, task.probe()).backward()
        arrays = {}
        for name, module in layers:
            arrays[f"{name}/activation"] = _sample(outputs[name])
            if hasattr(module, "weight"):
                arrays[f"{name}/weight"] = _sample(module.weight.detach())
                arrays[f"{name}/gradient"] = _sample(module.weight.grad)
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
    with staged_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _sample(t: torch.Tensor) -> np.ndarray:
    flat = t.reshape(-1).float().numpy()
    if flat.size <= PROBE_VALUES:
        return flat.copy()
    return flat[np.linspace(0, flat.size - 1, PROBE_VALUES).astype(np.int64)].copy()
