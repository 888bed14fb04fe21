"""Built-in capture examples: small networks trained on scikit-learn's digits dataset (1797
8x8 images of handwritten digits, bundled with scikit-learn: nothing is downloaded).
Needs the ``examples`` extra (torch, scikit-learn).

Training is seeded end to end (data split, initialization, batch order), so a rerun
regenerates the same trace. The first step of an early, a middle and the last epoch is
captured, and the manifest records the final test accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from hbfpsim.staging import check_free
from hbfpsim.trace.pytorch import Capture
from hbfpsim.validate import is_integer, is_number

EXAMPLES = ("mlp-digits", "cnn-digits")
MAX_EPOCHS = 10_000
NETWORKS = {"mlp-digits": "An MLP 64-128-64-10 (ReLU)",
            "cnn-digits": "A CNN (3x3 convolutions 1 -> 8 and 8 -> 16 with ReLU, 2x2 max pool, "
                          "linear 256 -> 10)"}


def digits(seed: int = 0):
    """(x_train, y_train, x_test, y_test): 1437 / 360 images, pixels scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the built-in examples need scikit-learn: pip install "
                          "'hbfpsim[examples]'") from None

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)   # (N, 1, 8, 8)
    y = torch.tensor(data.target)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    x, y = x[order], y[order]
    split = int(0.8 * len(y))
    return x[:split], y[:split], x[split:], y[split:]


def build(kind: str) -> nn.Module:
    """The untrained network of example ``kind`` (one of EXAMPLES)."""
    if kind == "mlp-digits":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64),
                             nn.ReLU(), nn.Linear(64, 10))
    if kind == "cnn-digits":
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    raise ValueError(f"unknown example {kind!r}; expected one of {', '.join(EXAMPLES)}")


def train_and_capture(kind: str, out: str | Path, *, epochs: int = 30, batch: int = 32,
                      lr: float = 0.05, seed: int = 0, max_bytes: float | None = None,
                      force: bool = False) -> dict:
    """Train ``kind`` on digits with SGD (momentum 0.9) and write the capture to ``out`` (an
    existing one only with ``force``). Returns the captured epochs, steps and the final test
    accuracy."""
    model = build(kind)
    for name, value, low, high in (("epochs", epochs, 1, MAX_EPOCHS), ("batch", batch, 1, 1437),
                                   ("seed", seed, 0, 2**32 - 1)):
        if not is_integer(value, low, high):
            raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    if not (is_number(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    epochs, batch, seed = int(epochs), int(batch), int(seed)
    check_free(out, force)
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = digits(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    per_epoch = len(y_train) // batch
    capture_epochs = sorted({0, epochs // 2, epochs - 1})
    steps = [e * per_epoch for e in capture_epochs]
    rng = np.random.default_rng(seed + 1)
    description = (f"{NETWORKS[kind]} trained on scikit-learn's 8 x 8 digits ({len(y_train)} "
                   f"training images) with SGD (lr {lr}, momentum 0.9), batch {batch}, {epochs} "
                   f"epochs; the first step of epochs {', '.join(map(str, capture_epochs))} "
                   "captured.")
    with Capture(out, model, steps=steps, max_bytes=max_bytes, name=kind,
                 description=description, force=force) as cap:
        for epoch in range(epochs):
            order = torch.from_numpy(rng.permutation(len(y_train)))
            for i in range(per_epoch):
                idx = order[i * batch:(i + 1) * batch]
                cap.start_step(epoch)
                loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        cap.writer.capture.update(test_accuracy=round(accuracy, 4), epochs=epochs,
                                  captured_epochs=capture_epochs, seed=seed)
    return {"epochs": capture_epochs, "steps": steps, "test_accuracy": accuracy}
