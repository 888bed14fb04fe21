"""The two built-in models: the digits CNN of the shipped traces and a small character-level
transformer language model whose attention products go through ``MatMul`` (so that
``emulate`` reaches them too)."""

from __future__ import annotations

import math

import torch
from torch import nn

from hbfpsim.train.emulate import MatMul
from hbfpsim.trace.examples import build


def digits_cnn() -> nn.Module:
    """Conv 3x3 1 -> 8, ReLU, conv 3x3 8 -> 16, ReLU, max pool 2x2, linear 256 -> 10."""
    return build("cnn-digits")


class Block(nn.Module):
    """A pre-norm transformer block: causal multi-head self-attention and a 4x MLP (GELU)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.scores, self.mix = MatMul(), MatMul()
        self.proj = nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (z.reshape(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        att = self.scores(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = self.mix(att, v).transpose(1, 2).reshape(b, t, width)
        x = x + self.proj(y)
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class CharTransformer(nn.Module):
    """Embedding + learned positions, ``depth`` blocks, a final norm and a linear head."""

    def __init__(self, vocab: int = 128, width: int = 64, heads: int = 4, depth: int = 2,
                 context: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(context, width))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(x)))
