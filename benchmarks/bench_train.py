"""Per-step time of emulated training against plain FP32 training of the same model, in the
same run: the target is at most 2x.

For each built-in task (the digits CNN, the character-level transformer at its default
size) it times whole training steps (forward, loss, backward, optimizer step) of the plain
PyTorch model, then of the same model converted by ``hbfpsim.train.emulate`` with the fp32
schedule (the emulation's own overhead), HBFP8 and HBFP4 (operands quantized along each
GEMM's reduction axis, FP32 accumulation by torch, HBFP16 weight storage), HBFP4 with
stochastic rounding in both blockings, and the method's preset; the HBFP4 rows with both
quantizer engines (``auto``: hbfpsim's numba kernels on the tensors' memory; ``torch``: the
same arithmetic in PyTorch operations, what runs on a GPU), and prints the median step time,
its ratio to plain FP32 and the range of the rounds' own ratios (each round's emulated step
over the plain step of the same round). Every step runs on one torch thread, as
``hbfpsim train`` runs them (``loop.one_thread``). Rounds alternate the variants, so a slow
moment of the shared machine falls on all of them. ``--busy`` times every round twice:
on the machine as it is, then beside a process that keeps one CPU busy (a Python loop),
and prints how much each ratio grew. ``--clock cpu`` times the calling thread's CPU time
instead of wall time: every step's work runs on that thread, and on a shared machine the CPU
time leaves out the waits for a core that other processes hold.

    python benchmarks/bench_train.py [--task digits|text] [--steps N] [--rounds 5] [--busy]
                                     [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time

import torch

from hbfpsim.train import emulate
from hbfpsim.train.quantizer import engine
from hbfpsim.train.spec import DEFAULTS
from hbfpsim.train.tasks import TASKS
from timing import machine

TARGET = 2.0
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
STEPS = {"digits": 200, "text": 30}
PRESET = {"digits": "booster-cnn", "text": "booster-transformer"}
STOCHASTIC = {"rounding": "stochastic"}
# label, schedule (None: plain torch), emulate's method keywords, quantizer engine
VARIANTS = (("plain torch", None, {}, "auto"), ("fp32", "fp32", {}, "auto"),
            ("hbfp8", "hbfp8", {}, "auto"), ("hbfp4", "hbfp4", {}, "auto"),
            ("hbfp4 [torch]", "hbfp4", {}, "torch"),
            ("hbfp4 sr", "hbfp4", STOCHASTIC, "auto"),
            ("hbfp4 sr [torch]", "hbfp4", STOCHASTIC, "torch"),
            ("hbfp4 sr emu", "hbfp4", {**STOCHASTIC, "blocking": "emulator"}, "auto"),
            ("hbfp4 sr emu [torch]", "hbfp4", {**STOCHASTIC, "blocking": "emulator"}, "torch"),
            ("method preset", "preset", {}, "auto"))


def setup(task, name, variant):
    label, schedule, method, chosen = variant
    torch.manual_seed(0)
    model = task.model()
    optimizer = task.optimizer(model.parameters())
    if schedule is not None:
        emulate(model, PRESET[name] if schedule == "preset" else schedule,
                optimizer=optimizer, epochs=1000, steps=10**6, **method)
    return model, optimizer, chosen


def steps(task, model, optimizer, chosen, batches, clock=time.perf_counter) -> float:
    """Seconds per training step over ``batches`` by ``clock``."""
    with engine(chosen):
        start = clock()
        for batch in batches:
            loss = task.loss(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return (clock() - start) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="steps per timed round (default: 200 for "
                        "digits, 30 for text: a round of each takes a fraction of a second "
                        "to a few seconds)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--task", choices=tuple(STEPS), action="append",
                        help="a task to time (default: both)")
    parser.add_argument("--busy", action="store_true",
                        help="also time every round beside a process that keeps a CPU busy")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall time, or this thread's CPU time (default: wall)")
    args = parser.parse_args()
    torch.set_num_threads(1)                   # as hbfpsim train runs (loop.one_thread)
    print(machine(), f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    print(f"median over {args.rounds} rounds ({args.clock} time); ratio to plain FP32 torch in "
          "the same rounds\n")
    loads = ("idle", "busy") if args.busy else ("idle",)
    print(f"{'task':8} {'variant':26} " + " ".join(f"{'ms/step':>9} {'vs FP32':>8}"
                                                   for _ in loads)
          + f" {'per round':>11}" + ("   busy/idle ratio" if args.busy else ""))
    for name in args.task or STEPS:
        settings = {k: v for k, v in DEFAULTS[name].items() if k != "epochs"}
        task = TASKS[name](**settings)
        count = args.steps or STEPS[name]
        batches = list(itertools.islice(
            (b for epoch in itertools.count() for b in task.batches(0, epoch)), count))
        runs = {v[0]: setup(task, name, v) for v in VARIANTS}
        for v in runs:                         # warm-up: numba kernels, allocator
            steps(task, *runs[v], batches[:3])
        times = {load: rounds(task, runs, batches, args.rounds, load, CLOCKS[args.clock])
                 for load in loads}
        for line in report(name, times, args.busy):
            print(line + (f"   ({count} steps a round)" if line.split()[1] == "plain" else ""))
    print(f"\nTarget: emulated (numba engine) at most {TARGET:.0f}x plain FP32 per step. "
          "sr: stochastic rounding; emu: emulator blocking; [torch]: the PyTorch engine.")


def report(name: str, times: dict, busy: bool) -> list[str]:
    """One line per variant of task ``name``: median ms per step and median ratio to plain
    FP32 under each load of ``times`` (load -> variant -> seconds per step of each round),
    the range of the idle rounds' own ratios, and with ``busy`` how much the ratio grew."""
    medians = {load: {v: statistics.median(t) for v, t in by.items()}
               for load, by in times.items()}
    lines = []
    for v, idle in times["idle"].items():
        plain = v == "plain torch"
        label = v if plain else (PRESET[name] if v == "method preset" else f"emulated {v}")
        ratio = {load: m[v] / m["plain torch"] for load, m in medians.items()}
        own = [t / p for t, p in zip(idle, times["idle"]["plain torch"])]
        cells = " ".join(f"{m[v] * 1e3:9.2f} {ratio[load]:7.2f}x" for load, m in medians.items())
        spread = f" {min(own):5.2f}-{max(own):<5.2f}"
        grew = f"   {ratio['busy'] / ratio['idle']:.2f}" if busy and not plain else ""
        verdict = "" if plain or "[torch]" in v else (
            "  ok" if ratio["idle"] <= TARGET else "  above target")
        lines.append(f"{name:8} {label:26} {cells}{spread}{grew}{verdict}")
    return lines


def rounds(task, runs, batches, count: int, load: str, clock) -> dict:
    """Seconds per step (by ``clock``) of each variant in each of ``count`` alternating
    rounds, with ``load`` "busy": beside a process spinning on one CPU."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) \
        if load == "busy" else None
    try:
        times = {v: [] for v in runs}
        for _ in range(count):
            for v in runs:
                times[v].append(steps(task, *runs[v], batches, clock))
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return times


if __name__ == "__main__":
    main()
