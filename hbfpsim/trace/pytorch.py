"""Capture the GEMMs of real PyTorch training steps into a trace (optional extra ``torch``).

    with capture("traces/my_model", model, steps=[0, 100], max_bytes=50e6) as cap:
        for epoch in range(epochs):
            for x, y in loader:
                cap.start_step(epoch)           # numbers steps 0, 1, 2, ...
                loss = loss_fn(model(x), y)
                opt.zero_grad(); loss.backward(); opt.step()

A ``TorchDispatchMode`` sees every ATen GEMM the step runs, forward and backward: ``mm``,
``addmm``, ``bmm``, ``baddbmm`` (their matrix product) and 2-D ``convolution`` /
``convolution_backward``, lowered to GEMMs by im2col (per group). Labels:

- layer: forward, the innermost module running (forward hooks); backward, the module whose
  forward created the autograd node now running (module forward hooks tag the nodes they
  create; the backward op asks ``torch._C._current_autograd_node()``). Ops outside modules
  are "<functional>".
- phase: ``fwd`` outside backward. In backward, a matrix product that uses one of the
  module's parameters computes the activation gradient (``bwd_data``); one that does not,
  under a node whose forward used a parameter, computes the weight gradient
  (``bwd_weight``); products of two activations (attention) give ``bwd_data`` twice.

Controls: ``steps`` (global step numbers to record, None: all), ``layers`` (fnmatch
patterns of module names; each must match a module), ``max_bytes`` (operand storage budget,
filled in order: from the first record whose operands do not fit, every record keeps its
shape only, and the manifest says ``truncated``), ``force`` (replace an existing trace).
The trace appears at ``path`` only when the ``with`` block ends normally.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from hbfpsim.staging import check_free
from hbfpsim.trace.format import TraceWarning, TraceWriter
from hbfpsim.trace.manifest import MAX_INDEX, show
from hbfpsim.validate import is_integer, is_number

TAG = "hbfpsim_layer"
FUNCTIONAL = "<functional>"
# autograd nodes of ops that only re-view a tensor: a parameter seen through them is still
# the op's own operand (Linear's weight arrives as TBackward0 -> AccumulateGrad)
_VIEWS = re.compile(r"(T|Transpose|Permute|View|UnsafeView|Reshape\w*|Expand|Squeeze|Unsqueeze|"
                    r"AsStrided|Alias|Slice|Select|Clone|ToCopy)Backward\d*")


OPTIONS = ("steps", "layers", "max_bytes", "name", "description", "force")


class Capture:
    """The capture context (see the module docstring). Options: see ``OPTIONS``."""

    def __init__(self, path: str | Path, model: torch.nn.Module, *, steps=None, layers=None,
                 max_bytes: float | None = None, name: str | None = None,
                 description: str = "", force: bool = False, **unknown):
        if unknown:
            raise ValueError(f"capture: unknown option {min(unknown)!r} (the options are "
                             f"{', '.join(OPTIONS)})")
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._names = {module: name or model.__class__.__name__
                       for name, module in model.named_modules()}
        self.steps = _steps(steps)
        self.layers = _layers(layers, set(self._names.values()))
        if max_bytes is not None:
            if not is_number(max_bytes, 0):
                raise ValueError(f"capture: max_bytes must be a finite number >= 0 (or None "
                                 f"for no limit), got {show(max_bytes)}")
            max_bytes = int(max_bytes) if is_integer(max_bytes) else float(max_bytes)
        self.max_bytes = max_bytes
        for key, value in (("name", name or ""), ("description", description)):
            if not isinstance(value, str):
                raise ValueError(f"capture: {key} must be a string, got {show(value)}")  # noqa: TRY004
        self.path, self.force = check_free(path, force), force
        self.settings = (name or type(model).__name__, description, {
            "tool": f"hbfpsim {version('hbfpsim')}", "torch": torch.__version__,
            "steps": sorted(self.steps) if self.steps is not None else "all",
            "layers": self.layers or "all", "max_bytes": max_bytes, "budget_rule": "prefix"})
        self.writer: TraceWriter | None = None        # opened by ``with``
        self.step, self.epoch = -1, 0
        self.bytes = 0
        self.truncated = False
        self._stack: list[tuple[str, set]] = []   # (module name, its inputs' autograd nodes)
        self._handles: list = []
        self._mode = _Spy(self)
        self._params = {p.data_ptr() for p in model.parameters()}

    # --- the user's side ---------------------------------------------------------------
    def start_step(self, epoch: int | None = None) -> None:
        """Call at the start of each training step (steps are numbered from 0)."""
        if epoch is not None:
            if not is_integer(epoch, 0, MAX_INDEX):
                raise ValueError(f"start_step: epoch must be an integer >= 0, got {show(epoch)}")
            self.epoch = int(epoch)
        self.step += 1

    @property
    def recording(self) -> bool:
        return self.step >= 0 and (self.steps is None or self.step in self.steps)

    def __enter__(self) -> Capture:
        if self.writer is not None:
            raise ValueError(f"{self.path}: this capture has already run")
        name, description, settings = self.settings
        self.writer = TraceWriter(self.path, name, description, settings, force=self.force)
        try:
            for module in self.model.modules():
                self._handles.append(module.register_forward_pre_hook(self._enter_module))
                self._handles.append(module.register_forward_hook(self._leave_module))
            self._mode.__enter__()
        except BaseException:
            self._unhook()
            self.writer.abort()
            raise
        return self

    def __exit__(self, kind, value, tb) -> None:
        try:
            try:
                self._mode.__exit__(kind, value, tb)
            finally:
                self._unhook()
        except BaseException:
            self.writer.abort()
            raise
        if kind is not None:
            self.writer.abort()         # an exception or Ctrl-C in the block: nothing is left
            return
        self.writer.capture["truncated"] = self.truncated
        self.writer.close()
        self._warn_if_little()

    def _unhook(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _warn_if_little(self) -> None:
        """Say so when the trace is empty or steps asked for were never reached."""
        missed = sorted(s for s in self.steps or () if s > self.step)
        if missed:
            more = f" ... ({len(missed)} in all)" if len(missed) > 5 else ""
            warnings.warn(f"{self.path}: steps {', '.join(map(str, missed[:5]))}{more} were "
                          f"never reached (the last step was {self.step})", TraceWarning,
                          stacklevel=3)
        if not self.writer.records:
            warnings.warn(f"{self.path}: the trace has 0 records (no GEMM ran in a recorded "
                          "step; call cap.start_step() at the start of each step)",
                          TraceWarning, stacklevel=3)

    # --- labelling -----------------------------------------------------------------------
    def _enter_module(self, module, args):
        self._stack.append((self._names[module], {
            id(t.grad_fn) for t in args if isinstance(t, torch.Tensor) and t.grad_fn is not None}))

    def _leave_module(self, module, args, output):
        name, boundary = self._stack.pop()
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        todo = [t.grad_fn for t in outputs if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        seen = set()
        while todo:                         # nodes this module's forward created
            node = todo.pop()
            if node is None or id(node) in seen or id(node) in boundary or \
                    type(node).__name__ == "AccumulateGrad":
                continue
            seen.add(id(node))
            node.metadata.setdefault(TAG, name)
            todo.extend(n for n, _ in node.next_functions)

    def _uses_parameter(self, node) -> bool:
        """Whether this node's forward op took a parameter, directly or through views."""
        todo = [n for n, _ in node.next_functions]
        while todo:
            n = todo.pop()
            if n is None:
                continue
            kind = type(n).__name__
            if kind == "AccumulateGrad":
                if n.variable.data_ptr() in self._params:
                    return True
            elif _VIEWS.fullmatch(kind):
                todo.extend(m for m, _ in n.next_functions)
        return False

    # --- recording -----------------------------------------------------------------------
    def wanted(self, layer: str) -> bool:
        return self.recording and (self.layers is None or any(
            fnmatch.fnmatchcase(layer, pattern) for pattern in self.layers))

    def record(self, layer, phase, a: torch.Tensor, b: torch.Tensor) -> None:
        """a: ([count,] M, K), b: ([count,] K, N)."""
        count = a.shape[0] if a.dim() == 3 else 1
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        size = 4 * (a.numel() + b.numel())
        # the budget is a prefix: once one record's operands do not fit, none are kept
        keep = not self.truncated and (self.max_bytes is None
                                       or self.bytes + size <= self.max_bytes)
        self.truncated = not keep
        operands = {}
        if keep:
            self.bytes += size
            operands = {"a": _numpy(a), "b": _numpy(b)}
        self.writer.add(layer, phase, m, n, k, step=self.step, epoch=self.epoch, count=count,
                        **operands)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


class _Spy(TorchDispatchMode):
    def __init__(self, cap: Capture):
        super().__init__()
        self.cap = cap

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = func.overloadpacket.__name__
        if op in _HANDLERS:
            cap = self.cap
            node = torch._C._current_autograd_node()
            if node is None:
                layer = cap._stack[-1][0] if cap._stack else FUNCTIONAL
            else:
                layer = node.metadata.get(TAG, FUNCTIONAL)
            if cap.wanted(layer):
                _HANDLERS[op](cap, layer, node, args, kwargs)
        return out


def _product_phase(cap: Capture, node, operands) -> str:
    if node is None:
        return "fwd"
    if any(t.data_ptr() in cap._params for t in operands):
        return "bwd_data"
    return "bwd_weight" if cap._uses_parameter(node) else "bwd_data"


def _mm(cap, layer, node, args, kwargs):
    a, b = args[0], args[1]
    cap.record(layer, _product_phase(cap, node, (a, b)), a, b)


def _addmm(cap, layer, node, args, kwargs):          # addmm / baddbmm: input, a, b
    a, b = args[1], args[2]
    cap.record(layer, _product_phase(cap, node, (a, b)), a, b)


def _conv_setup(x, w, stride, padding, dilation, groups):
    if x.dim() != 4:
        warnings.warn(f"hbfpsim capture: only 2-D convolutions are lowered to GEMMs; a "
                      f"{x.dim() - 2}-D one was skipped", TraceWarning, stacklevel=3)
        return None
    cols = F.unfold(x, w.shape[2:], dilation=dilation, padding=padding, stride=stride)
    batch, taps, pixels = cols.shape
    per_group = taps // groups
    cols = cols.view(batch, groups, per_group, pixels).permute(1, 0, 3, 2)
    return cols.reshape(groups, batch * pixels, per_group)      # (G, B*L, Cg*kh*kw)


def _conv(cap, layer, node, args, kwargs):
    x, w, _bias, stride, padding, dilation, transposed, _out_pad, groups = args[:9]
    if transposed:
        warnings.warn("hbfpsim capture: transposed convolutions are not lowered; skipped",
                      TraceWarning, stacklevel=2)
        return
    cols = _conv_setup(x, w, stride, padding, dilation, groups)
    if cols is not None:
        weights = w.reshape(groups, w.shape[0] // groups, -1).transpose(1, 2)  # (G, Cg*k, Cog)
        cap.record(layer, "fwd", _squeeze(cols), _squeeze(weights))


def _conv_backward(cap, layer, node, args, kwargs):
    grad, x, w = args[0], args[1], args[2]
    stride, padding, dilation, transposed, _out_pad, groups, mask = args[4:11]
    if transposed:
        return
    cols = _conv_setup(x, w, stride, padding, dilation, groups)
    if cols is None:
        return
    g_out = grad.permute(0, 2, 3, 1).reshape(-1, groups, grad.shape[1] // groups).transpose(0, 1)
    if mask[0]:   # dcols = dY W^T, then col2im gives dX
        weights = w.reshape(groups, w.shape[0] // groups, -1)                  # (G, Cog, Cg*k)
        cap.record(layer, "bwd_data", _squeeze(g_out), _squeeze(weights))
    if mask[1]:   # dW^T = cols^T dY
        cap.record(layer, "bwd_weight", _squeeze(cols.transpose(1, 2)), _squeeze(g_out))


def _squeeze(t: torch.Tensor) -> torch.Tensor:
    return t[0] if t.shape[0] == 1 else t


_HANDLERS = {"mm": _mm, "bmm": _mm, "addmm": _addmm, "baddbmm": _addmm,
             "convolution": _conv, "convolution_backward": _conv_backward}


def capture(path: str | Path, model: torch.nn.Module, **options) -> Capture:
    """A Capture context writing the trace at ``path`` (see the module docstring)."""
    return Capture(path, model, **options)


def _steps(steps) -> set[int] | None:
    if steps is None:
        return None
    if not isinstance(steps, (str, bytes)) and hasattr(steps, "__iter__"):
        steps = list(steps)
        if all(is_integer(s, 0, MAX_INDEX) for s in steps):
            return {int(s) for s in steps}
    raise ValueError(f"capture: steps must be a list of integers >= 0 (or None for all), "
                     f"got {show(steps)}")


def _layers(layers, names: set[str]) -> list[str] | None:
    """The patterns, each matching at least one of the model's module names."""
    if layers is None:
        return None
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__") or \
            not all(isinstance(p, str) for p in layers):
        raise ValueError(f"capture: layers must be a list of module name patterns (strings), "
                         f"got {show(layers)}")
    layers = list(layers)
    names = names | {FUNCTIONAL}
    for pattern in layers:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            shown = sorted(names)
            more = f", ... ({len(shown)} in all)" if len(shown) > 8 else ""
            raise ValueError(f"capture: layers pattern {pattern!r} matches no module of the "
                             f"model (its modules: {', '.join(shown[:8])}{more})")
    return layers
