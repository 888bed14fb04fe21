"""A 2-D convolution lowered to GEMMs: ``im2col`` (the input's patches as the columns of a
matrix) and its adjoint ``col2im`` (a patch matrix scatter-added back into an image).

Both use one layout for the patch matrix, (C kh kw) x (N L) C-contiguous (L = out_h
out_w positions, the batch outside them), so that all three products of an emulated
convolution are 2-D products that read it without a copy: the forward ``W @ cols``, the
backward-data ``W^T @ dy`` whose result ``col2im`` scatters back, and the backward-weight
``dy @ cols^T``, with dy as an (out, N L) matrix. On CPU tensors numba kernels copy and
scatter a patch row at a time (vectorized for stride 1; faster than torch's strided copy
and ``fold`` at the sizes of the built-in tasks); on other devices torch operations do the
same.
"""

from __future__ import annotations

import torch
from numba import njit

Pair = tuple[int, int]


def out_size(size: Pair, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair) -> Pair:
    """(out_h, out_w) of a convolution of an image of ``size`` (h, w)."""
    return tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                 for s, k, d, p, st in zip(size, kernel, dilation, padding, stride))


def im2col(x: torch.Tensor, kernel: Pair, dilation: Pair, padding: Pair, stride: Pair
           ) -> torch.Tensor:
    """The patches of the (N, C, H, W) ``x``: a new C-contiguous (C kh kw, N L) tensor
    holding ``torch.nn.functional.unfold(x, kernel, dilation, padding, stride)`` (N, C kh kw,
    L) with its first two axes swapped."""
    n, c = x.shape[:2]
    (kh, kw), (ho, wo) = kernel, out_size(x.shape[2:], kernel, dilation, padding, stride)
    (ph, pw), (dh, dw), (sh, sw) = padding, dilation, stride
    padded = torch.nn.functional.pad(x.detach(), (pw, pw, ph, ph)) if ph or pw \
        else x.detach().contiguous()
    cols = x.new_empty((c * kh * kw, n, ho * wo))
    if _numba_takes(x):
        _im2col(padded.numpy(), kh, kw, dh, dw, sh, sw,
                cols.numpy().reshape(c, kh, kw, n, ho, wo))
    else:
        hp, wp = padded.shape[2:]
        view = padded.as_strided((n, c, kh, kw, ho, wo),
                                 (c * hp * wp, hp * wp, dh * wp, dw, sh * wp, sw))
        cols.view(c, kh, kw, n, ho, wo).permute(3, 0, 1, 2, 4, 5).copy_(view)
    return cols.view(c * kh * kw, n * ho * wo)


def col2im(cols: torch.Tensor, size: Pair, kernel: Pair, dilation: Pair, padding: Pair,
           stride: Pair) -> torch.Tensor:
    """The adjoint of ``im2col``: the (N, C, H, W) image whose every pixel is the sum of the
    entries of the (C kh kw, N L) ``cols`` that read it, added in (kh, kw) order (as
    ``torch.nn.functional.fold`` of the matching (N, C kh kw, L) tensor)."""
    (kh, kw), (ho, wo) = kernel, out_size(size, kernel, dilation, padding, stride)
    ckk, n = cols.shape[0], cols.shape[1] // (ho * wo)
    if not _numba_takes(cols):
        return torch.nn.functional.fold(cols.view(ckk, n, -1).transpose(0, 1), size, kernel,
                                        dilation, padding, stride)
    (h, w), (ph, pw), c = size, padding, ckk // (kh * kw)
    padded = cols.new_zeros((n, c, h + 2 * ph, w + 2 * pw))
    source = cols.detach().contiguous().numpy().reshape(c, kh, kw, n, ho, wo)
    _col2im(source, *dilation, *stride, padded.numpy())
    return padded[:, :, ph:ph + h, pw:pw + w].contiguous() if ph or pw else padded


def _numba_takes(t: torch.Tensor) -> bool:
    return t.is_cpu and t.dtype in (torch.float32, torch.float64) and t.numel() > 0


@njit(cache=True)
def _im2col(padded, kh, kw, dh, dw, sh, sw, out):
    """``out[c, i, j, b, y, x] = padded[b, c, y sh + i dh, x sw + j dw]``."""
    n, c, hp, wp = padded.shape
    ho, wo = out.shape[4], out.shape[5]
    planes = padded.reshape(n * c, hp * wp)
    rows = out.reshape(c * kh * kw * n, ho * wo)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for b in range(n):
                    src, dst = planes[b * c + ci], rows[((ci * kh + i) * kw + j) * n + b]
                    for y in range(ho):
                        at, base = y * wo, (y * sh + i * dh) * wp + j * dw
                        if sw == 1:                 # a contiguous run: vectorized
                            for x in range(wo):
                                dst[at + x] = src[base + x]
                        else:
                            for x in range(wo):
                                dst[at + x] = src[base + x * sw]


@njit(cache=True)
def _col2im(cols, dh, dw, sh, sw, padded):
    """``padded[b, c, y sh + i dh, x sw + j dw] += cols[c, i, j, b, y, x]``, (i, j) in order."""
    c, kh, kw, n, ho, wo = cols.shape
    hp, wp = padded.shape[2], padded.shape[3]
    planes = padded.reshape(n * c, hp * wp)
    rows = cols.reshape(c * kh * kw * n, ho * wo)
    for b in range(n):
        for ci in range(c):
            dst = planes[b * c + ci]
            for i in range(kh):
                for j in range(kw):
                    src = rows[((ci * kh + i) * kw + j) * n + b]
                    for y in range(ho):
                        at, base = y * wo, (y * sh + i * dh) * wp + j * dw
                        if sw == 1:                 # a contiguous run: vectorized
                            for x in range(wo):
                                dst[base + x] += src[at + x]
                        else:
                            for x in range(wo):
                                dst[base + x * sw] += src[at + x]
