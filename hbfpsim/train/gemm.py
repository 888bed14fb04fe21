"""The emulated GEMMs of training: every matrix product of a layer's forward pass and of its
two backward products, with operands quantized along that product's own reduction axis.

A product ``C = A @ B`` (A: M x K, B: K x N, any leading batch dimensions) quantizes A in
blocks along its last axis and B along its second-to-last, the K both share, so every block
holds the elements one dot product multiplies together, as an HBFP or MX array reads them.
Each layer arranges its three products so that K is the right axis:

=================  =====================  ========================  ===========================
layer              fwd (K)                bwd_data (K)              bwd_weight (K)
=================  =====================  ========================  ===========================
Linear             x @ W^T (in)           dy @ W (out)              dy^T @ x (batch rows)
Conv2d (im2col)    W @ cols (C kh kw)     W^T @ dy (out channels)   dy @ cols^T (N positions)
matmul a @ b       a @ b (a's last)       dy @ b^T (b's last)       a^T @ dy (a's rows)
=================  =====================  ========================  ===========================

(matmul multiplies two activations: both of its backward products are ``bwd_data``, as
the trace capture labels them.) A ``Site`` says which numerics a product uses (its layer,
phase and the current epoch, through the schedule), the rounding and stream of each
operand's role (activations, weights, gradients), and whether it accumulates bit-exactly
through ``hbfpsim.mac.matmul`` instead of in FP32 by torch (the emulators' semantics).

That is ``gemm`` blocking. ``emulator`` blocking (``emulator_op``) quantizes a layer's input,
weight and output gradient once each along their last axis, as HBFPEmulator does, and lets
the layer's native op and its autograd compute all three products from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from hbfpsim.formats import Format
from hbfpsim.formats.threads import calling_thread_only
from hbfpsim.mac import matmul as mac_matmul
from hbfpsim.numerics import Numerics
from hbfpsim.train.lowering import col2im, im2col, out_size
from hbfpsim.train.quantizer import round_tensor


class Site(Protocol):
    """Where a product runs: the emulation answers for one named layer."""

    layer: str

    def numerics(self, phase: str) -> Numerics: ...

    def exact_plan(self, phase: str) -> str | None: ...

    def rounding(self, role: str) -> tuple[int, int]: ...

    def record(self, phase: str, numerics: Numerics, a: torch.Tensor, b: torch.Tensor,
               a_weight: bool) -> None: ...

    def count(self, phase: str, numerics: Numerics, macs: int) -> None: ...


def operand_format(numerics: Numerics, role: str) -> Format:
    """The format a tensor of ``role`` takes: the weight format for weights, the input
    format for activations and gradients."""
    return numerics.weight if role == "weights" else numerics.input


def product(site: Site, phase: str, a: torch.Tensor, b: torch.Tensor, roles: tuple[str, str],
            *, lowered: Callable | None = None) -> torch.Tensor:
    """``a @ b`` as ``site`` computes it in ``phase``, blocks along K. ``roles``: the tensor
    roles of a and b (activations, weights, gradients), which choose each one's format and
    rounding. ``lowered`` maps the product to what the layer needs (col2im)."""
    numerics = site.numerics(phase)
    fa, fb = operand_format(numerics, roles[0]), operand_format(numerics, roles[1])
    site.record(phase, numerics, a, b, roles[0] == "weights")
    plan = site.exact_plan(phase)
    (ma, sa), (mb, sb) = site.rounding(roles[0]), site.rounding(roles[1])
    with calling_thread_only():          # torch's threads have the cores; numba's stay idle
        if plan is not None:
            if ma or mb:                 # the MAC engine rounds to nearest even: round first
                a, b = round_tensor(a, fa, -1, ma, sa), round_tensor(b, fb, -2, mb, sb)
            out = _exact(a, b, fa, fb, plan)
        else:
            qa, qb = round_tensor(a, fa, -1, ma, sa), round_tensor(b, fb, -2, mb, sb)
    if plan is None:
        out = qa @ qb
    return out if lowered is None else lowered(out)


def _exact(a: torch.Tensor, b: torch.Tensor, fa: Format, fb: Format, plan: str) -> torch.Tensor:
    """Bit-exact accumulation, one 2-D product per batch entry, through the MAC engine (which
    quantizes A per row and B per column along K itself; on the CPU, whatever the tensors'
    device)."""
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3 = a.detach().expand(*batch, *a.shape[-2:]).reshape(-1, *a.shape[-2:]).cpu().numpy()
    b3 = b.detach().expand(*batch, *b.shape[-2:]).reshape(-1, *b.shape[-2:]).cpu().numpy()
    out = np.stack([mac_matmul(x, y, fa, fb, plan=plan).out for x, y in zip(a3, b3)])
    return torch.from_numpy(out.astype(np.float32)).reshape(
        *batch, a.shape[-2], b.shape[-1]).to(a.device)


class LinearFn(torch.autograd.Function):
    """y = x W^T + b with its three products emulated."""

    @staticmethod
    def forward(ctx, x, weight, bias, site):
        ctx.site = site
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        x2 = x.reshape(-1, x.shape[-1])
        y = product(site, "fwd", x2, weight.t(), ("activations", "weights"))
        if bias is not None:
            y = y + bias
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = product(ctx.site, "bwd_data", dy2, weight, ("gradients", "weights")
                         ).reshape(x.shape)
        if ctx.needs_input_grad[1]:
            dw = product(ctx.site, "bwd_weight", dy2.t(), x2, ("gradients", "activations"))
        db = dy2.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db, None


class Conv2dFn(torch.autograd.Function):
    """A 2-D convolution (groups = 1) lowered to GEMMs by im2col, its three products
    emulated."""

    @staticmethod
    def forward(ctx, x, weight, bias, site, stride, padding, dilation):
        n, _, h, w = x.shape
        out_ch, _, kh, kw = weight.shape
        geometry = ((h, w), (kh, kw), dilation, padding, stride)
        cols = im2col(x, *geometry[1:])                                         # CKK, N L
        y = product(site, "fwd", weight.reshape(out_ch, -1), cols,
                    ("weights", "activations")).view(out_ch, n, -1)               # out, N, L
        if bias is not None:
            y = y + bias[:, None, None]
        ctx.site, ctx.geometry, ctx.has_bias = site, geometry, bias is not None
        ctx.save_for_backward(cols, weight)
        # N, out, H, W as a view of the (out, N, L) product: no copy
        return y.transpose(0, 1).reshape(n, out_ch, *out_size(*geometry))

    @staticmethod
    def backward(ctx, dy):
        cols, weight = ctx.saved_tensors
        out_ch = weight.shape[0]
        dy2 = dy.transpose(0, 1).reshape(out_ch, -1)       # out, N L: a view as y was made
        w2 = weight.reshape(out_ch, -1)
        dx = dw = None
        if ctx.needs_input_grad[0]:      # W^T dy: CKK, N L, then col2im
            dx = product(ctx.site, "bwd_data", w2.t(), dy2, ("weights", "gradients"),
                         lowered=lambda dcols: col2im(dcols, *ctx.geometry))
        if ctx.needs_input_grad[1]:
            dw = product(ctx.site, "bwd_weight", dy2, cols.t(), ("gradients", "activations")
                         ).reshape(weight.shape)
        db = dy2.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db, None, None, None, None


class MatmulFn(torch.autograd.Function):
    """a @ b of two activations (attention), its three products emulated."""

    @staticmethod
    def forward(ctx, a, b, site):
        ctx.site = site
        ctx.save_for_backward(a, b)
        return product(site, "fwd", a, b, ("activations", "activations"))

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved_tensors
        da = db = None
        if ctx.needs_input_grad[0]:
            da = _unbroadcast(product(ctx.site, "bwd_data", dy, b.transpose(-1, -2),
                                      ("gradients", "activations")), a.shape)
        if ctx.needs_input_grad[1]:
            db = _unbroadcast(product(ctx.site, "bwd_data", a.transpose(-1, -2), dy,
                                      ("activations", "gradients")), b.shape)
        return da, db, None


def _unbroadcast(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a gradient over the batch dimensions its operand was broadcast along."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    for i, size in enumerate(shape[:-2]):
        if size == 1 and grad.shape[i] != 1:
            grad = grad.sum(i, keepdim=True)
    return grad


class OperandsFn(torch.autograd.Function):
    """``emulator`` blocking, before a layer's op: its input and weight (or both
    activations of a product), each quantized once along its last axis; their gradients
    pass through unchanged (the op's own backward computes them from the quantized
    tensors)."""

    @staticmethod
    def forward(ctx, a, b, site, roles):
        numerics = site.numerics("fwd")
        with calling_thread_only():
            return tuple(round_tensor(t, operand_format(numerics, role), -1,
                                      *site.rounding(role)) for t, role in zip((a, b), roles))

    @staticmethod
    def backward(ctx, da, db):
        return da, db, None, None


class GradientFn(torch.autograd.Function):
    """``emulator`` blocking, after a layer's op: the identity forward; backward, the output
    gradient quantized once along its last axis, which the backward products then read.
    ``macs`` (per product) counts the backward products of ``phases``."""

    @staticmethod
    def forward(ctx, y, site, macs, phases):
        ctx.site, ctx.macs, ctx.phases = site, macs, phases
        return y.view_as(y)

    @staticmethod
    def backward(ctx, dy):
        site = ctx.site
        for phase in ctx.phases:
            site.count(phase, site.numerics(phase), ctx.macs)
        with calling_thread_only():
            dq = round_tensor(dy, site.numerics("bwd_data").input, -1,
                              *site.rounding("gradients"))
        return dq, None, None, None


def emulator_op(site: Site, a: torch.Tensor, b: torch.Tensor, roles: tuple[str, str],
                op: Callable, macs: int) -> torch.Tensor:
    """``op(a, b)`` in ``emulator`` blocking: operands quantized once, the op native (FP32),
    the output gradient quantized once. ``macs``: of each of the three products (the
    backward product of an operand that needs no gradient is not computed)."""
    site.count("fwd", site.numerics("fwd"), macs)
    backward = ("bwd_data", "bwd_weight" if roles[1] == "weights" else "bwd_data")
    phases = tuple(p for t, p in zip((a, b), backward) if t.requires_grad)
    qa, qb = OperandsFn.apply(a, b, site, roles)
    return GradientFn.apply(op(qa, qb), site, macs, phases)
