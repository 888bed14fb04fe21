"""The two built-in training tasks: what model, data, optimizer, batches and validation
metric each uses. Everything random is drawn from generators seeded by (seed, epoch), so an
epoch's batches are the same however the run got there (a resumed run included)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from hbfpsim.train import data, models

Batch = tuple[torch.Tensor, torch.Tensor]


def generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


@dataclass(frozen=True)
class Metric:
    name: str          # as printed
    unit: str
    higher_is_better: bool


class DigitsTask:
    """The digits CNN, SGD with momentum 0.9, validation accuracy (%)."""

    name = "digits"
    metric = Metric("val accuracy", "%", True)

    def __init__(self, batch: int, lr: float, **_):
        self.batch, self.lr = batch, lr
        self.x, self.y, self.vx, self.vy = data.digits(0)
        self.about = (f"scikit-learn digits, {len(self.y)} training and {len(self.vy)} "
                      "validation images (fixed split)")

    def model(self) -> nn.Module:
        return models.digits_cnn()

    def optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=0.9)

    def steps_per_epoch(self) -> int:
        return len(self.y) // self.batch

    def batches(self, seed: int, epoch: int) -> Iterator[Batch]:
        order = torch.randperm(len(self.y), generator=generator(seed, epoch))
        for i in range(self.steps_per_epoch()):
            idx = order[i * self.batch:(i + 1) * self.batch]
            yield self.x[idx], self.y[idx]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def probe(self) -> Batch:
        return self.vx[:256], self.vy[:256]

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> tuple[float, float]:
        """(validation loss in nats, validation accuracy in %)."""
        logits = model(self.vx)
        loss = nn.functional.cross_entropy(logits, self.vy).item()
        return loss, 100.0 * (logits.argmax(1) == self.vy).float().mean().item()


class TextTask:
    """The character-level transformer on the standard library's source, AdamW, validation
    loss in bits per character."""

    name = "text"
    metric = Metric("val bits/char", "bits", False)

    def __init__(self, batch: int, lr: float, steps_per_epoch: int, context: int, width: int,
                 depth: int, heads: int, text_bytes: int, val_windows: int, **_):
        self.batch, self.lr, self.steps = batch, lr, steps_per_epoch
        self.context, self.width, self.depth, self.heads = context, width, depth, heads
        self.train, self.val, self.about = data.stdlib_text(text_bytes)
        count = min(val_windows, (self.val.numel() - 1) // context)
        self.val_starts = torch.arange(count) * context

    def model(self) -> nn.Module:
        return models.CharTransformer(data.VOCAB, self.width, self.heads, self.depth,
                                      self.context)

    def optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01)

    def steps_per_epoch(self) -> int:
        return self.steps

    def batches(self, seed: int, epoch: int) -> Iterator[Batch]:
        gen = generator(seed, epoch)
        high = self.train.numel() - self.context - 1
        for _ in range(self.steps):
            starts = torch.randint(0, high, (self.batch,), generator=gen)
            yield data.windows(self.train, starts, self.context)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def probe(self) -> Batch:
        return data.windows(self.val, self.val_starts[:16], self.context)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> tuple[float, float]:
        """(validation loss in nats per character, in bits per character)."""
        total = 0.0
        for part in self.val_starts.split(64):
            total += self.loss(model, data.windows(self.val, part, self.context)).item() * len(part)
        nats = total / len(self.val_starts)
        return nats, nats / math.log(2)


TASKS = {"digits": DigitsTask, "text": TextTask}
