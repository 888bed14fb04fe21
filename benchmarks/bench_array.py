"""Array-model throughput: simulated GEMMs per second on one core, and SCALE-Sim side by side.

    (a) GEMM 3136 x 64 x 576 (a ResNet-50 3x3 conv at 56x56, batch 1) on the array32 preset
    (b) GEMM 512 x 3072 x 768 (a BERT-base FFN GEMM) on the tpu128 preset
    (c) every GEMM of one ResNet-50 training step (ImageNet 224 x 224, batch 32: forward,
        backward-data, backward-weight; traces/resnet50_step) on the array32 preset
    (d) every GEMM of one BERT-base training step (sequence 128, batch 8;
        traces/bert_base_step) on the tpu128 preset

(a) and (b) time one ``simulate`` call. (c) and (d) time one configuration: one
``simulate_many`` call over the step's shapes (each distinct shape timed once, all in one numba
call), and beside it the per-GEMM loop (``simulate`` on every record, one by one) measured in
the same run, with the ratio of the two.

Wall time is the best of --repeats runs after a warm-up (numba compiles or loads its cache);
a run of (c) or (d) is 10 calls, and its time per call is reported. Targets: one ResNet-50
layer (a) under 100 us, the whole ResNet-50 step (c) <= 1 ms per configuration, and the
BERT-base step (d) no slower than (c).

With --scalesim-python PATH (an interpreter that has ``pip install scalesim``; SCALE-Sim 3.0
needs numpy < 2), SCALE-Sim runs (a) in the same session, with the same array and ideal
memory, and the speed ratio is printed; its cycle count is checked against ours.

    python benchmarks/bench_array.py [--repeats 3] [--scalesim-python /path/to/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numba
from timing import best_time, machine

from hbfpsim import trace
from hbfpsim.array import load, simulate, simulate_many

ROOT = Path(__file__).resolve().parents[1]


SCALESIM_DRIVER = r"""
import contextlib, csv, io, json, os, sys, tempfile, time
from scalesim.scale_sim import scalesim
R, C, df, M, N, K = json.loads(sys.argv[1])
d = tempfile.mkdtemp()
open(os.path.join(d, "c.cfg"), "w").write(f'''[general]
run_name = b
[architecture_presets]
ArrayHeight: {R}
ArrayWidth: {C}
IfmapSramSzkB: 1048576
FilterSramSzkB: 1048576
OfmapSramSzkB: 1048576
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {df}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32
[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40
[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
''')
open(os.path.join(d, "t.csv"), "w").write(f"Layer, M, N, K,\nL0, {M}, {N}, {K},\n")
open(os.path.join(d, "l.csv"), "w").write("Layer name,\n")
s = scalesim(save_disk_space=True, verbose=False, config=os.path.join(d, "c.cfg"),
             topology=os.path.join(d, "t.csv"), layout=os.path.join(d, "l.csv"),
             input_type_gemm=True)
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    s.run_scale(top_path=d)
wall = time.perf_counter() - t0
rows = list(csv.reader(open(os.path.join(d, "b", "COMPUTE_REPORT.csv"))))
print(json.dumps({"wall": wall, "cycles": int(rows[1][2])}))
"""


def scalesim(python: str, rows: int, cols: int, dataflow: str, m: int, n: int, k: int) -> dict:
    """Run SCALE-Sim in another interpreter; its wall time (simulation only) and cycles."""
    done = subprocess.run([python, "-c", SCALESIM_DRIVER, json.dumps([rows, cols, dataflow, m, n, k])],
                          capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)
    if done.returncode:
        raise SystemExit(f"SCALE-Sim failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scalesim-python", help="interpreter with scalesim installed")
    args = parser.parse_args()
    numba.set_num_threads(1)
    array32, tpu128 = load("array32"), load("tpu128")
    def shapes(name):
        return [(r.layer, r.m, r.n, r.k) for r in trace.open(ROOT / "traces" / name).records]

    resnet, bert = shapes("resnet50_step"), shapes("bert_base_step")
    single = [("(a) 3136 x 64 x 576 on array32 (32x32 WS)", array32, 3136, 64, 576),
              ("(b) 512 x 3072 x 768 on tpu128 (128x128 WS)", tpu128, 512, 3072, 768)]
    steps = [(f"(c) ResNet-50 training step, {len(resnet)} records, on array32", array32, resnet),
             (f"(d) BERT-base training step, {len(bert)} records, on tpu128", tpu128, bert)]
    print(machine())
    print(f"one core, best of {args.repeats}\n")
    print(f"{'case':50} {'wall':>10} {'folds':>9}")
    for label, config, m, n, k in single:
        report = simulate(config, m, n, k)                                 # warm-up
        wall = best_time(lambda c=config, g=(m, n, k): simulate(c, *g), args.repeats)
        print(f"{label:50} {wall * 1e3:8.3f}ms {report.folds:9d}")
    print(f"\n{'case':53} {'per configuration':>17} {'distinct':>8} {'per-GEMM loop':>13} "
          f"{'ratio':>6}")
    for label, config, records in steps:
        gemms = [(m, n, k) for _, m, n, k in records]
        many = _per_call(lambda c=config, g=gemms: simulate_many(c, g), args.repeats)
        loop = _per_call(lambda c=config, g=gemms: [simulate(c, *x) for x in g], args.repeats)
        print(f"{label:53} {many * 1e3:15.3f}ms {len(set(gemms)):8d} {loop * 1e3:11.3f}ms "
              f"{loop / many:5.1f}x")
    print("\ntargets: (a) < 100 us; (c) <= 1 ms per configuration (the whole ResNet-50 step); "
          "(d) no slower than (c)")
    if args.scalesim_python:
        ideal = array32.ideal()
        ours = best_time(lambda: simulate(ideal, 3136, 64, 576), args.repeats)
        ss = scalesim(args.scalesim_python, 32, 32, "ws", 3136, 64, 576)
        cycles = simulate(ideal, 3136, 64, 576).total_cycles
        agree = "agree" if ss["cycles"] + 1 == cycles else "DISAGREE"
        print(f"\nSCALE-Sim on (a), ideal memory: {ss['wall']:.2f} s vs hbfpsim "
              f"{ours * 1e3:.2f} ms: {ss['wall'] / ours:,.0f}x faster; cycles {agree} "
              f"(SCALE-Sim {ss['cycles']} = last index, hbfpsim {cycles})")
    else:
        print("\nSCALE-Sim: not compared (pass --scalesim-python to run it side by side)")


def _per_call(fn, repeats: int, calls: int = 10) -> float:
    """Seconds per call of ``fn``: the best of ``repeats`` runs of ``calls`` calls, after a
    warm-up."""
    fn()
    return best_time(lambda: [fn() for _ in range(calls)], repeats) / calls


if __name__ == "__main__":
    main()
