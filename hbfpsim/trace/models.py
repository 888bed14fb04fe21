"""Shape-only GEMM lists of one training step of well-known networks, from the architectures.

Each entry is ``(layer, phase, M, N, K, count)`` with the conventions of the trace format:
A is M x K, B is K x N. A layer y = x W (x: T x I, W: I x O) gives

    fwd         M = T, N = O, K = I
    bwd_data    M = T, N = I, K = O        (dX = dY W^T)
    bwd_weight  M = I, N = O, K = T        (dW = X^T dY)

and a convolution lowered by im2col has T = batch x out_h x out_w, I = kh x kw x C_in,
O = C_out. The first layer computes no input gradient. A batched matmul of activations
(attention) is one record with ``count`` = batch x heads, and both of its gradients are
``bwd_data``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from hbfpsim.trace.format import TraceWriter
from hbfpsim.validate import is_integer

Entry = tuple[str, str, int, int, int, int]


def _dense(name: str, t: int, i: int, o: int, first: bool = False) -> list[Entry]:
    gemms = [(name, "fwd", t, o, i, 1)]
    if not first:
        gemms.append((name, "bwd_data", t, i, o, 1))
    gemms.append((name, "bwd_weight", i, o, t, 1))
    return gemms


def resnet50_training_step(batch: int = 32, image: int = 224) -> list[Entry]:
    """ResNet-50 v1.5 (torchvision: the stride on the 3x3 conv of each bottleneck) on
    ``batch`` ImageNet images of ``image`` x ``image`` pixels: 53 convolutions and the
    classifier."""
    def conv(name, size, kernel, stride, c_in, c_out, first=False):
        out = (size + 2 * (kernel // 2) - kernel) // stride + 1
        return _dense(name, batch * out * out, kernel * kernel * c_in, c_out, first), out

    gemms, size = conv("conv1", image, 7, 2, 3, 64, first=True)
    size = (size + 2 - 3) // 2 + 1                           # 3x3 max pool, stride 2
    c_in = 64
    for stage, (mid, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2),
                                                   (512, 3, 2)], 1):
        for block in range(blocks):
            s = stride if block == 0 else 1
            tag = f"layer{stage}.{block}"
            g1, _ = conv(f"{tag}.conv1", size, 1, 1, c_in, mid)
            g2, out = conv(f"{tag}.conv2", size, 3, s, mid, mid)
            g3, _ = conv(f"{tag}.conv3", out, 1, 1, mid, 4 * mid)
            gemms += g1 + g2 + g3
            if block == 0:
                gemms += conv(f"{tag}.downsample.0", size, 1, s, c_in, 4 * mid)[0]
            size, c_in = out, 4 * mid
    return gemms + _dense("fc", batch, 2048, 1000)


def bert_base_training_step(batch: int = 8, seq: int = 128, vocab: int = 30522) -> list[Entry]:
    """BERT-base pretraining (12 layers, hidden 768, 12 heads of 64, FFN 3072) on ``batch``
    sequences of ``seq`` tokens: per layer the Q, K, V and output projections, the two
    attention batched matmuls, the two FFN layers; then the masked-LM head (768 -> 768
    transform, 768 -> vocab decoder). Embedding lookups are not GEMMs."""
    t, hidden, heads, head, ffn = batch * seq, 768, 12, 64, 3072
    bh = batch * heads
    gemms: list[Entry] = []
    for layer in range(12):
        p = f"encoder.layer.{layer}"
        for proj in ("query", "key", "value"):
            gemms += _dense(f"{p}.attention.self.{proj}", t, hidden, hidden)
        gemms += [(f"{p}.attention.scores", "fwd", seq, seq, head, bh),       # Q K^T
                  (f"{p}.attention.scores", "bwd_data", seq, head, seq, bh),  # dQ = dS K
                  (f"{p}.attention.scores", "bwd_data", seq, head, seq, bh),  # dK = dS^T Q
                  (f"{p}.attention.context", "fwd", seq, head, seq, bh),      # P V
                  (f"{p}.attention.context", "bwd_data", seq, seq, head, bh),  # dP = dC V^T
                  (f"{p}.attention.context", "bwd_data", seq, head, seq, bh)]  # dV = P^T dC
        gemms += _dense(f"{p}.attention.output.dense", t, hidden, hidden)
        gemms += _dense(f"{p}.intermediate.dense", t, hidden, ffn)
        gemms += _dense(f"{p}.output.dense", t, ffn, hidden)
    return (gemms + _dense("cls.predictions.transform.dense", t, hidden, hidden)
            + _dense("cls.predictions.decoder", t, hidden, vocab))


def _resnet50_description(batch: int = 32, image: int = 224) -> str:
    return (f"One training step of ResNet-50 v1.5 (torchvision layout: the stride on the 3x3 "
            f"convolution of each bottleneck) on a batch of {batch} ImageNet images of {image} x "
            f"{image} pixels: its 53 convolutions, lowered to GEMMs by im2col, and the 2048 -> "
            "1000 classifier, each forward, backward-data (all but the first convolution) and "
            "backward-weight.")


def _bert_description(batch: int = 8, seq: int = 128, vocab: int = 30522) -> str:
    return (f"One pretraining step of BERT-base (12 layers, hidden 768, 12 heads of 64, FFN "
            f"3072) on a batch of {batch} sequences of {seq} tokens: per layer the Q, K, V and "
            "output projections, the two attention batched matmuls and the two FFN layers, then "
            f"the masked-LM head (a 768 -> 768 transform and the 768 -> {vocab} vocabulary "
            "decoder), each forward and backward. Embedding lookups are not GEMMs.")


# name -> (the GEMM list of one step, its description from the same settings)
MODELS = {"resnet50": (resnet50_training_step, _resnet50_description),
          "bert-base": (bert_base_training_step, _bert_description)}


def shape_trace(path: str | Path, model: str, *, force: bool = False, **settings: int) -> Path:
    """Write the shape-only trace of one training step of ``model`` (a key of MODELS) to
    ``path`` (an existing one only with ``force``). ``settings``: the generator's keywords
    (resnet50: batch, image; bert-base: batch, seq, vocab), positive integers."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    generator, describe = MODELS[model]
    accepted = list(inspect.signature(generator).parameters)
    for key, value in settings.items():
        if key not in accepted:
            raise ValueError(f"{model}: unknown setting {key!r} (the settings are "
                             f"{', '.join(accepted)})")
        if not is_integer(value, 1, 2**20):
            raise ValueError(f"{model}: {key} must be an integer from 1 to 2**20, got {value!r}")
    settings = {key: int(value) for key, value in settings.items()}
    gemms = generator(**settings)         # a size too small for the network fails in add
    with TraceWriter(path, model, description=describe(**settings), force=force,
                     capture={"kind": "shape-only", "generator": f"hbfpsim.trace.models."
                              f"{generator.__name__}", **settings}) as writer:
        for layer, phase, m, n, k, count in gemms:
            writer.add(layer, phase, m, n, k, count=count)
    return Path(path)
