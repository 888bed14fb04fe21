"""Learning-rate schedules: the rate at every optimizer step of a run, a pure function of the
step, so a resumed run sets the same rates as one that never stopped.

- ``constant``: ``base`` throughout;
- ``cosine``: from ``base`` down to ``final x base`` at the last step along half a cosine
  (SGDR, Loshchilov and Hutter 2017; nanoGPT's decay);
- ``step``: ``base`` multiplied by ``gamma`` at the start of each epoch in ``milestones``
  (the ResNet recipes: x 0.1 at epochs 30, 60 and 80 of 90).

Each can start with ``warmup`` steps of linear warm-up, ``base x (step + 1) / warmup``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHAPES = ("constant", "cosine", "step")


@dataclass(frozen=True)
class LearningRate:
    """A learning-rate schedule (module docstring); ``milestones`` are epochs."""

    base: float
    shape: str = "constant"
    warmup: int = 0
    final: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"lr_schedule: expected one of {', '.join(SHAPES)}, got "
                             f"{self.shape!r}")

    def to_dict(self) -> dict:
        """The canonical form, for keys and identities."""
        return {"base": self.base, "shape": self.shape, "warmup": self.warmup,
                "final": self.final, "milestones": list(self.milestones), "gamma": self.gamma}

    def at(self, step: int, steps: int, steps_per_epoch: int) -> float:
        """The rate of optimizer step ``step`` (from 0) of a run of ``steps`` steps."""
        if step < self.warmup:
            return self.base * (step + 1) / self.warmup
        if self.shape == "cosine":
            span = max(steps - 1 - self.warmup, 1)
            progress = min((step - self.warmup) / span, 1.0)
            return self.base * (self.final + (1 - self.final) * 0.5 *
                                (1 + math.cos(math.pi * progress)))
        if self.shape == "step":
            epoch = step // steps_per_epoch
            return self.base * self.gamma ** sum(epoch >= m for m in self.milestones)
        return self.base

    def __str__(self) -> str:
        text = {"constant": f"constant {self.base:g}",
                "cosine": f"cosine {self.base:g} -> {self.base * self.final:g}",
                "step": f"{self.base:g} x {self.gamma:g} at epochs "
                        f"{', '.join(map(str, self.milestones))}"}[self.shape]
        return text + (f" after {self.warmup} warm-up steps" if self.warmup else "")
