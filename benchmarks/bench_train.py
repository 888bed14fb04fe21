"""Per-step time of emulated training against plain FP32 training of the same model, in the
same run (issue 14: under 3x for the fast path).

For each built-in task (the digits CNN, the character-level transformer at its default
size) it times whole training steps (forward, loss, backward, optimizer step) of the plain
PyTorch model, then of the same model converted by ``hbfpsim.train.emulate`` with the fp32
schedule (the emulation's own overhead), HBFP8 and HBFP4 (operands quantized along each
GEMM's reduction axis, FP32 accumulation by torch, HBFP16 weight storage), and prints the
median step time and its ratio to plain FP32. Rounds alternate the variants, so a slow
moment of the shared machine falls on all of them.

    python benchmarks/bench_train.py [--steps N] [--rounds 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from hbfpsim.train import emulate
from hbfpsim.train.spec import DEFAULTS
from hbfpsim.train.tasks import TASKS
from timing import machine

TARGET = 3.0
STEPS = {"digits": 200, "text": 30}
VARIANTS = (None, "fp32", "hbfp8", "hbfp4")


def setup(task, variant):
    torch.manual_seed(0)
    model = task.model()
    optimizer = task.optimizer(model.parameters())
    if variant is not None:
        emulate(model, variant, optimizer=optimizer)
    return model, optimizer


def steps(task, model, optimizer, batches) -> float:
    start = time.perf_counter()
    for batch in batches:
        loss = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="steps per timed round (default: 200 for "
                        "digits, 30 for text: a round of each takes a fraction of a second "
                        "to a few seconds)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine(), f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"median over {args.rounds} rounds; ratio to plain FP32 torch in the same rounds\n")
    print(f"{'task':8} {'variant':14} {'ms/step':>9} {'vs FP32':>8}")
    for name in ("digits", "text"):
        settings = {k: v for k, v in DEFAULTS[name].items() if k != "epochs"}
        task = TASKS[name](**settings)
        count = args.steps or STEPS[name]
        batches = list(itertools.islice(
            (b for epoch in itertools.count() for b in task.batches(0, epoch)), count))
        runs = {v: setup(task, v) for v in VARIANTS}
        times = {v: [] for v in VARIANTS}
        for v in VARIANTS:                     # warm-up: numba kernels, allocator
            steps(task, *runs[v], batches[:3])
        for _ in range(args.rounds):
            for v in VARIANTS:
                times[v].append(steps(task, *runs[v], batches))
        base = statistics.median(times[None])
        for v in VARIANTS:
            t = statistics.median(times[v])
            label = "plain torch" if v is None else f"emulated {v}"
            verdict = "" if v is None else ("  ok" if t / base < TARGET else "  above target")
            print(f"{name:8} {label:14} {t * 1e3:9.2f} {t / base:7.2f}x{verdict}"
                  + (f"   ({count} steps a round)" if v is None else ""))
    print(f"\nTarget: emulated (fast path) under {TARGET:.0f}x plain FP32 per step.")


if __name__ == "__main__":
    main()
