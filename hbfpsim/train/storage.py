"""The parameters' wide copy between optimizer steps: after every ``optimizer.step()`` the
stored parameters are rounded to the storage format with the storage rounding, then the
step is counted (``Emulation.stepped``), as the HBFP papers train (no FP32 master copy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from hbfpsim import formats
from hbfpsim.formats.threads import calling_thread_only
from hbfpsim.train.quantizer import round_tensor

if TYPE_CHECKING:
    from hbfpsim.train.emulate import Emulation


def keep_stored(emu: Emulation, model: nn.Module, optimizer: torch.optim.Optimizer,
                weights: list[torch.Tensor]) -> None:
    """After every optimizer step: the stored parameters rounded to the storage format,
    then the step counted."""
    method = emu.method
    storage = method.storage
    if storage == "auto":
        hbfp = [f for n in emu.schedule.numerics for f in (n.input, n.weight)
                if f.family == "hbfp"]
        storage = f"hbfp16@{hbfp[0].block}" if hbfp else None
    if storage is None:
        optimizer.register_step_post_hook(lambda *_: emu.stepped())
        return
    wide = storage if isinstance(storage, formats.Format) else formats.get(storage)
    if method.stored == "all":
        ids = {id(w) for w in weights}
        extra = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    else:
        extra = []
    # weights: blocks along the forward reduction axis (gemm) or the last axis (emulator)
    by_row = weights if method.blocking == "gemm" else []
    by_last = [*extra, *(weights if method.blocking == "emulator" else [])]

    def after_step(*_):
        store(emu, by_row, by_last, wide)
        emu.stepped()
    optimizer.register_step_post_hook(after_step)
    store(emu, by_row, by_last, wide)
    emu.draws = 0                # the first step's streams as after any other step


@torch.no_grad()
def store(emu: Emulation, by_row: list[torch.Tensor], by_last: list[torch.Tensor],
          fmt: formats.Format) -> None:
    """Round parameters in place to ``fmt`` with the storage rounding: ``by_row`` in blocks
    along their forward reduction axis (all but the first dimension, flattened), ``by_last``
    along their last axis."""
    with calling_thread_only():
        for w in by_row:
            w.copy_(round_tensor(w.reshape(w.shape[0], -1), fmt, -1,
                                 *emu.rounding("storage")).reshape(w.shape))
        for p in by_last:
            p.copy_(round_tensor(p, fmt, -1, *emu.rounding("storage")))
