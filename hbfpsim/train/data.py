"""Training data that ships with the installed software: nothing is downloaded.

- ``digits``: scikit-learn's 1797 8 x 8 handwritten digits (``examples`` extra), the same
  fixed 80/20 split as the shipped digits traces (``hbfpsim.trace.examples.digits``):
  ``DIGITS_TRAIN`` (1437) training images, known without loading them.
- ``stdlib_text``: the source of the running interpreter's standard library (the top-level
  ``Lib/*.py`` modules, sorted by name), as ASCII bytes (other bytes dropped): token = byte
  value, 128 tokens. The first 90% is the training text, the last 10% the validation text.
  The text, and so the results, depend on the Python version, which the run records.
"""

from __future__ import annotations

import platform
import sysconfig
from pathlib import Path

import numpy as np
import torch

from hbfpsim.trace.examples import digits
from hbfpsim.validate import is_integer

VOCAB = 128                 # ASCII
DEFAULT_TEXT_BYTES = 2_000_000
MAX_TEXT_BYTES = 50_000_000
DIGITS_IMAGES = 1797        # scikit-learn's load_digits
DIGITS_TRAIN = int(0.8 * DIGITS_IMAGES)     # the training split of ``digits``: 1437 images


def stdlib_files() -> list[Path]:
    """The standard library's top-level modules, sorted by name."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in lib.glob("*.py") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no Python source in {lib}: the text task reads the "
                                "standard library's .py files")
    return files


def stdlib_text(max_bytes: int = DEFAULT_TEXT_BYTES) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train tokens, validation tokens, a description of the text) from the first
    ``max_bytes`` ASCII bytes of the standard library's source, int64 token ids."""
    chunks = _ascii_chunks(max_bytes)
    used = len(chunks)
    tokens = torch.from_numpy(np.concatenate(chunks).astype(np.int64))
    split = _split(tokens.numel())
    about = (f"Python {platform.python_version()} standard library source, {used} top-level "
             f"modules, {tokens.numel()} ASCII bytes ({split} train, "
             f"{tokens.numel() - split} validation)")
    return tokens[:split], tokens[split:], about


def text_sizes(max_bytes: int = DEFAULT_TEXT_BYTES) -> tuple[int, int]:
    """(training, validation) lengths in characters of ``stdlib_text(max_bytes)``, counted
    without building its tensors (a run file's checks need them before training)."""
    size = sum(chunk.size for chunk in _ascii_chunks(max_bytes))
    return _split(size), size - _split(size)


def _split(size: int) -> int:
    """The training text's length of a text of ``size`` characters: its first 90%."""
    return int(0.9 * size)


def _ascii_chunks(max_bytes: int) -> list[np.ndarray]:
    """The ASCII bytes of the standard library's modules in order, ``max_bytes`` in all (or
    fewer if it has fewer), one array per module read."""
    if not is_integer(max_bytes, 10_000, MAX_TEXT_BYTES):
        raise ValueError(f"text bytes: expected an integer from 10000 to {MAX_TEXT_BYTES}, "
                         f"got {max_bytes!r}")
    chunks, size = [], 0
    for path in stdlib_files():
        data = np.frombuffer(path.read_bytes(), np.uint8)
        data = data[data < VOCAB][: max_bytes - size]
        chunks.append(data)
        size += data.size
        if size >= max_bytes:
            break
    return chunks


def windows(tokens: torch.Tensor, starts: torch.Tensor, length: int) -> tuple[torch.Tensor,
                                                                            torch.Tensor]:
    """Inputs and next-character targets of the windows at ``starts``: (B, length) each."""
    idx = starts[:, None] + torch.arange(length + 1)[None, :]
    chunk = tokens[idx]
    return chunk[:, :-1], chunk[:, 1:]


__all__ = ["DIGITS_TRAIN", "VOCAB", "digits", "stdlib_text", "text_sizes", "windows"]
