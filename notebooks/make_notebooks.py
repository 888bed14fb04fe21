"""Build the analysis notebooks in this folder, cell by cell, without outputs.

    python notebooks/make_notebooks.py           # (re)write every notebook
    python notebooks/make_notebooks.py --check   # exit 1 if a notebook differs from this file

The notebooks are generated so that they can be reviewed as code: edit the cells here and
rerun. Cell ids are derived from the notebook's name and the cell's position, so the same
source always gives the same bytes. ``tests/test_notebooks.py`` executes every notebook and
checks that the files on disk are what this script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE = {"name": "python", "pygments_lexer": "ipython3",
            "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
            "mimetype": "text/x-python", "nbconvert_exporter": "python"}


def md(text: str):
    return new_markdown_cell(dedent(text).strip("\n"))


def code(text: str):
    return new_code_cell(dedent(text).strip("\n"))


SETUP = code('''
    %matplotlib inline
    from pathlib import Path

    import matplotlib.pyplot as plt

    ROOT = Path.cwd().parent   # the repository: this notebook runs from notebooks/
    assert (ROOT / "traces").is_dir(), f"open this notebook from notebooks/ (cwd: {Path.cwd()})"
''')


# ---- 1. quickstart ------------------------------------------------------------------------

QUICKSTART = [
    md('''
        # Quickstart: one training trace, six number formats

        This notebook replays the shipped trace of a small CNN trained on scikit-learn's
        digits (`traces/cnn_digits`: the real operands of the first step of epochs 0, 15 and
        29, 24 GEMMs over the forward, backward-data and backward-weight phases) on the
        `array32` preset, a 32 x 32 weight-stationary systolic array at 1 GHz with 64 KiB
        buffers, in six number formats. For every GEMM hbfpsim reports

        * **time**: array clock cycles (and seconds at the array's clock), utilization and
          the share of cycles stalled on memory;
        * **cost**: energy in pJ (shown here in uJ: compute, SRAM and DRAM at 28 nm) and the
          **arithmetic density** of the format's MAC relative to an FP32 MAC (MAC/s per
          um^2 at equal clock: 10x means ten times the throughput in the same silicon area);
        * **accuracy**: the bit-exact hardware result (`hbfpsim.mac`, under the accumulation
          plan the dataflow implies) against the exact product: SQNR in dB (higher is
          better, about 6 dB per mantissa bit) and the Wasserstein-1 distance W1 between the
          two output distributions, in the outputs' own units (lower is better).

        It is the same replay as `hbfpsim run configs/quickstart.toml`, called from Python
        with a smaller sampling budget (at most 2048 outputs and 2^22 MACs evaluated per
        GEMM) so that it runs in a few seconds. See `docs/replay.md` for every column.
    '''),
    SETUP,
    md('''
        ## The run

        A run names traces, arrays and numerics *variants*. It is usually a TOML file
        (`hbfpsim.replay.load("../configs/quickstart.toml")`); here it is the same structure
        as a dict, validated by `hbfpsim.replay.runfile.parse` (paths relative to `base`).
        The HBFP variants sum each block of 64 products in the narrowest fixed-point register
        that never overflows (13, 17 and 21 bits), then FP32 across blocks and folds.
    '''),
    code('''
        from hbfpsim import replay
        from hbfpsim.replay.runfile import parse

        VARIANTS = [
            {"name": "fp32", "input": "fp32"},
            {"name": "bf16", "input": "bf16"},
            {"name": "mxfp6_e2m3", "input": "mxfp6_e2m3"},
            {"name": "hbfp8", "input": "hbfp8", "block_accumulator": "fixed21"},
            {"name": "hbfp6", "input": "hbfp6", "block_accumulator": "fixed17"},
            {"name": "hbfp4", "input": "hbfp4", "block_accumulator": "fixed13"},
        ]
        run_file = {
            "run": {"traces": ["traces/cnn_digits"], "arrays": ["array32"], "seed": 0,
                    "max_outputs": 2048, "max_macs": 2**22},
            "variant": VARIANTS,
        }
        spec = parse(run_file, source="quickstart notebook", base=ROOT)
        report = replay.run(spec, progress=False)
        print(f"{len(report.rows)} rows (GEMM records x variants) in {report.wall_seconds:.1f} s")
    '''),
    md('''
        ## Summary per variant

        `report.summary()` gives one dict per variant x array x trace x phase, plus the phase
        `all`. Cycles, seconds and energies add up over the GEMMs; utilization is
        MAC-weighted; density is the MAC mix of the records (every record of a fixed format
        has the same); SQNR and W1 are medians over the GEMMs evaluated.
    '''),
    code('''
        summary = report.summary()
        overall = {s["variant"]: s for s in summary if s["phase"] == "all"}

        print(f"{'variant':<11} {'cycles':>8} {'util':>6} {'stalls':>7} {'time us':>8} "
              f"{'energy uJ':>10} {'density':>8} {'SQNR dB':>8} {'W1':>9}")
        for name, s in overall.items():
            print(f"{name:<11} {s['cycles']:>8} {s['utilization']:>6.1%} {s['stall_share']:>7.1%} "
                  f"{s['seconds'] * 1e6:>8.1f} {s['energy_pj'] / 1e6:>10.2f} {s['density']:>7.2f}x "
                  f"{s['sqnr_db_median']:>8.1f} {s['w1_median']:>9.2e}")
    '''),
    md('''
        The median SQNR (dB) per phase: the backward-weight GEMMs reduce over the batch and
        every position (long reductions), the backward-data ones carry tiny gradients.
    '''),
    code('''
        PHASES = ("fwd", "bwd_data", "bwd_weight", "all")
        sqnr = {(s["variant"], s["phase"]): s["sqnr_db_median"] for s in summary}
        print(f"{'SQNR dB':<11}" + "".join(f"{p:>12}" for p in PHASES))
        for name in overall:
            print(f"{name:<11}" + "".join(f"{sqnr[name, p]:>12.1f}" for p in PHASES))
    '''),
    md('''
        ## Accuracy against density

        Each format is a point: its density relative to FP32 (x, log scale) against the
        median SQNR of its GEMMs (y, dB). The Pareto front (denser *and* more accurate than
        any other point) comes from `hbfpsim.replay.figures.pareto`, which maximizes both
        coordinates.
    '''),
    code('''
        from hbfpsim.replay.figures import pareto

        names = list(overall)
        points = [(overall[n]["density"], overall[n]["sqnr_db_median"]) for n in names]
        front = pareto(points)

        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for name, (x, y) in zip(names, points):
            ax.scatter(x, y, s=40, zorder=3)
            below = name.startswith("mx")                 # MXFP6 sits next to HBFP6
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(-10 if below else 6, -14 if below else 4),
                        fontsize=9)
        ax.step([points[i][0] for i in front], [points[i][1] for i in front], where="post",
                color="0.5", linestyle="--", label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("density vs FP32 (x FP32 MAC/s per um^2)")
        ax.set_ylabel("median SQNR (dB)")
        ax.set_title("cnn_digits on array32: accuracy against density")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        plt.show()
        print("on the front:", ", ".join(names[i] for i in front))
    '''),
    md('''
        Each HBFP mantissa bit is worth about 6 dB of SQNR (HBFP8 > HBFP6 > HBFP4, two bits
        apart), and density buys what SQNR loses. The checks below fail the notebook if the
        replay produced nonsense.
    '''),
    code('''
        import math

        assert len(report.rows) == 24 * len(VARIANTS)
        assert all(r.cycles > 0 and r.energy_pj > 0 for r in report.rows), "a GEMM took no time"
        assert all(r.sampled and math.isfinite(r.sqnr_db) for r in report.rows if r.variant != "fp32")
        d = {n: s["density"] for n, s in overall.items()}
        assert d["fp32"] == 1.0 and d["hbfp4"] > d["hbfp6"] > d["hbfp8"] > d["bf16"] > d["fp32"]
        q = {n: s["sqnr_db_median"] for n, s in overall.items()}
        assert q["fp32"] > q["bf16"] > q["hbfp8"] > q["hbfp6"] > q["hbfp4"] > 0
        slope = (q["hbfp8"] - q["hbfp4"]) / 4          # dB per mantissa bit, HBFP4 -> HBFP8
        assert 4.5 < slope < 7.5, slope
        assert front and names.index("hbfp4") in front and names.index("fp32") in front
        print(f"checks passed: {slope:.2f} dB per mantissa bit, HBFP4 at {d['hbfp4']:.1f}x FP32")
    '''),
]


# ---- 2. density and area ------------------------------------------------------------------

DENSITY = [
    md('''
        # Arithmetic density, MAC area and array area

        `hbfpsim.cost` prices hardware at 28 nm from published synthesis tables
        (`docs/cost.md`):

        * **MAC area** in um^2 per MAC (one lane of a dot-product unit: operand registers,
          multiplier, the adder tree at the accumulator's width, and per block the exponent
          adder, fixed-to-float converter and FP32 accumulator, amortized over the block);
          **energy** in pJ per MAC;
        * **arithmetic density** relative to FP32: at equal clock every MAC does one MAC per
          cycle, so density = area(FP32 MAC) / area(MAC), in x FP32 MAC/s per um^2;
        * **array area** of a configuration: R x C processing elements (a MAC plus a
          partial-sum register), the float-to-block converters at the output edge, and the
          SRAM buffers, shown in mm^2 (1 mm^2 = 10^6 um^2).

        Every format uses its default accumulator unless said otherwise: the narrowest
        fixed-point register that never overflows a block's sum (HBFP4@64: 13 bits), or the
        FP format's own (FP16 for FP8).
    '''),
    SETUP,
    md('''
        ## Density per format

        `density_table()` has a row per standard format, then the Accuracy Booster mix
        (99 % of the MACs in HBFP4, 1 % in HBFP6; a mix's density is the MAC-weighted
        harmonic mean).
    '''),
    code('''
        from hbfpsim.cost import density_table

        table = density_table()
        print(f"{'format':<30} {'accumulator':<16} {'um2/MAC':>8} {'pJ/MAC':>7} {'bits/elem':>9} {'density':>8}")
        for r in table:
            print(f"{r.format:<30} {r.accumulator:<16} {r.area:>8.1f} {r.energy:>7.3f} "
                  f"{r.storage_bits:>9.3f} {r.density:>7.2f}x")
        density = {r.format: r.density for r in table}
    '''),
    code('''
        rows = sorted(table, key=lambda r: r.density)
        colors = ["tab:red" if r.format.startswith(("hbfp", "booster")) else
                  "tab:green" if r.format.startswith("mx") else "tab:blue" for r in rows]
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.barh([r.format.split(" + ")[0] for r in rows], [r.density for r in rows], color=colors)
        ax.axvline(1.0, color="k", linewidth=0.8)
        ax.set_xlabel("density vs FP32 (x FP32 MAC/s per um^2, 28 nm, equal clock)")
        ax.set_title("Arithmetic density per format (red: HBFP, green: MX, blue: FP/INT)")
        ax.grid(True, axis="x", alpha=0.3)
        plt.show()
    '''),
    md('''
        ## MAC area by part

        `mac_cost(format, accumulator)` breaks one MAC into parts (um^2 per MAC). FP formats
        spend their area in the multiplier and FP adders; block formats in small integer
        multipliers and the adder tree, whose width the accumulator sets: the second panel
        widens HBFP4's block accumulator from the exact 13 bits.
    '''),
    code('''
        from hbfpsim.cost import mac_cost

        FORMATS = ["fp32", "bf16", "fp8_e4m3", "int8", "mxfp6_e2m3", "mxfp4", "hbfp8", "hbfp6", "hbfp4"]
        macs = {f: mac_cost(f) for f in FORMATS}
        parts = list(dict.fromkeys(p for m in macs.values() for p in m.parts))
        short = {p: p.replace("operand registers", "operands").replace("fixed-to-float", "fix->float")
                 .replace("block exponent", "block exp").replace("FP32 accumulator", "FP32 acc")
                 for p in parts}
        print("um^2 per MAC, by part ('-': the MAC has no such part)")
        print(f"{'format':<11} {'acc':<8}" + "".join(f"{short[p]:>12}" for p in parts) + f"{'total':>9}")
        for f, m in macs.items():
            cells = "".join(f"{m.parts[p]:>12.1f}" if p in m.parts else f"{'-':>12}" for p in parts)
            print(f"{f:<11} {str(m.accumulator):<8}{cells}{m.area:>9.1f}")
    '''),
    code('''
        WIDTHS = list(range(13, 33))
        hbfp4_area = [mac_cost("hbfp4", f"fixed{w}").area for w in WIDTHS]

        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
        bottom = [0.0] * len(FORMATS)
        for p in parts:
            heights = [100 * macs[f].parts.get(p, 0.0) / macs[f].area for f in FORMATS]
            left.bar(FORMATS, heights, bottom=bottom, label=p)
            bottom = [b + h for b, h in zip(bottom, heights)]
        for i, f in enumerate(FORMATS):
            left.annotate(f"{macs[f].area:.0f}", (i, 100), xytext=(0, 3), textcoords="offset points",
                          ha="center", fontsize=8)
        left.set_ylim(0, 135)
        left.set_ylabel("share of the MAC's area (%)")
        left.set_title("MAC area by part (total um^2 above each bar)")
        left.tick_params(axis="x", rotation=45)
        left.legend(fontsize=7, ncol=3, loc="upper center")
        right.plot(WIDTHS, hbfp4_area, marker="o")
        right.set_xlabel("HBFP4 block accumulator width (bits)")
        right.set_ylabel("area per MAC (um^2)")
        right.set_title("HBFP4@64: the accumulator as an axis")
        right.grid(True, alpha=0.3)
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        ## Array area

        `array_cost(config)` for a few configurations: the shipped presets (`small16`,
        `array32`, `tpu128`, `array256`) and `array32` with other numerics
        (`dataclasses.replace` on the loaded configuration). PE = MAC + partial-sum register
        (um^2); PEs, edge converters and SRAM in mm^2.
    '''),
    code('''
        from dataclasses import replace

        from hbfpsim.array import load
        from hbfpsim.cost import array_cost

        array32 = load("array32")
        CONFIGS = {
            "small16": load("small16"),
            "array32": array32,
            "array32 hbfp4 fixed13": replace(array32, block_accumulator="fixed13"),
            "array32 hbfp8": replace(array32, input="hbfp8", weight="hbfp8", block_accumulator="fixed21"),
            "array32 bf16": replace(array32, input="bf16", weight="bf16", accumulator="bf16", block_accumulator=None),
            "array32 fp32": replace(array32, input="fp32", weight="fp32", block_accumulator=None),
            "tpu128": load("tpu128"),
            "array256": load("array256"),
        }
        costs = {name: array_cost(c) for name, c in CONFIGS.items()}
        print(f"{'configuration':<22} {'shape':>9} {'format':>9} {'acc':>8} {'PE um2':>8} "
              f"{'PEs mm2':>8} {'edge mm2':>9} {'SRAM mm2':>9} {'total mm2':>10}")
        for name, a in costs.items():
            c = CONFIGS[name]
            print(f"{name:<22} {f'{c.rows}x{c.cols}':>9} {a.mac.format.name:>9} {str(a.mac.accumulator):>8} "
                  f"{a.pe:>8.1f} {a.pes / 1e6:>8.3f} {a.edge / 1e6:>9.4f} {a.sram / 1e6:>9.3f} {a.area / 1e6:>10.3f}")
    '''),
    code('''
        PARTS = (("pes", "PEs", "tab:blue"), ("edge", "edge converters", "tab:orange"),
                 ("sram", "SRAM buffers", "tab:gray"))
        same_shape = [n for n in costs if n.startswith("array32")]
        presets = ["small16", "array32", "tpu128", "array256"]

        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
        bottom = [0.0] * len(same_shape)
        for part, label, color in PARTS:
            heights = [getattr(costs[n], part) / 1e6 for n in same_shape]
            left.bar(same_shape, heights, bottom=bottom, label=label, color=color)
            bottom = [b + h for b, h in zip(bottom, heights)]
        left.set_ylabel("area (mm^2, stacked)")
        left.set_title("32 x 32 array, 64 KiB buffers each: numerics")
        left.tick_params(axis="x", rotation=30)
        left.legend()
        left.grid(True, axis="y", alpha=0.3)
        bottom = [0.0] * len(presets)
        for part, label, color in PARTS:
            heights = [100 * getattr(costs[n], part) / costs[n].area for n in presets]
            right.bar(presets, heights, bottom=bottom, label=label, color=color)
            bottom = [b + h for b, h in zip(bottom, heights)]
        for i, n in enumerate(presets):
            right.annotate(f"{costs[n].area / 1e6:.2f} mm^2", (i, 100), xytext=(0, 3),
                           textcoords="offset points", ha="center", fontsize=8)
        right.set_ylim(0, 112)
        right.set_ylabel("share of the array's area (%)")
        right.set_title("Presets (total above each bar)")
        fig.tight_layout()
        plt.show()
    '''),
    code('''
        import math

        assert density["fp32"] == 1.0
        assert density["hbfp4@64"] > density["hbfp6@64"] > density["hbfp8@64"] > density["bf16"] > density["fp32"]
        assert 17 < density["hbfp4@64"] < 25, density["hbfp4@64"]       # docs/cost.md: 18.9x
        for m in macs.values():
            assert all(v > 0 for v in m.parts.values()) and math.isclose(sum(m.parts.values()), m.area)
        assert 1.5 <= hbfp4_area[-1] / hbfp4_area[0] <= 2.2                # fixed32 / fixed13 (Sakr et al.)
        assert all(b > a for a, b in zip(hbfp4_area, hbfp4_area[1:]))      # wider is bigger
        for name, a in costs.items():
            c = CONFIGS[name]
            assert math.isclose(a.pes, a.pe * c.rows * c.cols) and a.pe > a.mac.area
            assert math.isclose(a.area, a.pes + a.edge + a.sram)
        assert costs["array32 fp32"].pes > 10 * costs["array32 hbfp4 fixed13"].pes
        assert costs["array32"].sram == costs["array32 fp32"].sram        # same buffers
        print("checks passed")
    '''),
]


# ---- 3. accumulator width -----------------------------------------------------------------

ACCUMULATOR = [
    md('''
        # How narrow may a floating-point accumulator be?

        A narrow floating-point accumulator *swamps* small addends: once the partial sum is
        large, a product smaller than half its ulp vanishes. Sakr et al. (ICLR 2019) judge an
        accumulator by the **variance retention ratio**

        VRR = Var(computed sum) / Var(exact sum)   (dimensionless; 1 = nothing lost)

        over an ensemble of dot products of n i.i.d. zero-mean products.
        `hbfpsim.accuracy.vrr` (`docs/vrr.md`) models it for an `e8m<M>` accumulator with M
        fraction (mantissa) bits and measures it with the bit-exact MAC engine. The **knee**
        is the fewest bits losing at most ln 50 = 3.9 product variances,
        n (1 - VRR) <= ln 50 (Sakr et al.'s cut-off).

        This notebook draws VRR against the accumulator's mantissa bits for several
        accumulation lengths n, theory (lines) against measurement (markers, +-2 standard
        errors), the knee for sequential and chunked (chunks of 64) accumulation, and the
        MAC engine's swamping counts for a narrow against a wide accumulator.
    '''),
    SETUP,
    code('''
        from hbfpsim.accuracy.vrr import measured_vrr, min_mantissa_bits, vrr

        LENGTHS = [2**8, 2**10, 2**12, 2**14]            # products per dot product, n
        BITS = list(range(2, 15))                         # accumulator fraction bits, M
        MEASURED_BITS = [4, 6, 8, 10]
        TRIALS = 1024                                     # sums per measured point

        theory = {n: [vrr(n, m) for m in BITS] for n in LENGTHS}
        measured = {(n, m): measured_vrr(n, m, trials=TRIALS, seed=1) for n in LENGTHS for m in MEASURED_BITS}
        knee = {n: min_mantissa_bits(n) for n in LENGTHS}

        print(f"{'n':>6} {'M':>3} {'model':>7} {'measured':>9} {'+-se':>7}")
        for (n, m), (value, se) in measured.items():
            print(f"{n:>6} {m:>3} {vrr(n, m):>7.4f} {value:>9.4f} {se:>7.4f}")
    '''),
    md('''
        ## The knee, sequential and in chunks of 64

        Chunk-based accumulation (sum chunks of 64 products, then the chunk sums, in the same
        format) keeps VRR at 1 with 3 to 4 fewer bits: the partial sums stay small for longer.
    '''),
    code('''
        KNEE_LENGTHS = [2**e for e in range(10, 21, 2)]
        knees = {n: (min_mantissa_bits(n), min_mantissa_bits(n, chunk=64)) for n in KNEE_LENGTHS}
        print(f"{'n':>9} {'sequential':>11} {'chunks of 64':>13}   (fraction bits at the knee)")
        for n, (seq, chunked) in knees.items():
            print(f"{'2^' + str(n.bit_length() - 1):>9} {seq:>11} {chunked:>13}")
    '''),
    code('''
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        for i, n in enumerate(LENGTHS):
            color = f"C{i}"
            left.plot(BITS, theory[n], color=color, label=f"n = 2^{n.bit_length() - 1}")
            values = [measured[n, m] for m in MEASURED_BITS]
            left.errorbar(MEASURED_BITS, [v for v, _ in values], yerr=[2 * se for _, se in values],
                          fmt="o", color=color, capsize=3)
            left.axvline(knee[n], color=color, linestyle=":", linewidth=1)
        left.set_xlabel("accumulator fraction bits M (e8m<M>)")
        left.set_ylabel("variance retention ratio VRR")
        left.set_title("VRR: model (lines), MAC engine (markers, 2 s.e.), knee (dotted)")
        left.grid(True, alpha=0.3)
        left.legend()
        exps = [n.bit_length() - 1 for n in KNEE_LENGTHS]
        right.plot(exps, [s for s, _ in knees.values()], marker="o", label="sequential")
        right.plot(exps, [c for _, c in knees.values()], marker="s", label="chunks of 64")
        right.set_xlabel("log2 of the accumulation length n")
        right.set_ylabel("fraction bits at the knee (bits)")
        right.set_title("Knee: n (1 - VRR) <= ln 50")
        right.grid(True, alpha=0.3)
        right.legend()
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        ## Swamping in the MAC engine: narrow against wide

        FP8 (E4M3) operands, K = 4096 products per output, accumulated bit-exactly by
        `hbfpsim.mac.matmul` in three plans: sequential FP32 (wide), sequential FP16
        (`e5m10`, narrow), and FP16 in chunks of 64 (Sakr et al.'s chunk-based accumulation).
        The statistics count, summed over outputs, the addends lost entirely (*full swamps*)
        and those that lost low bits (*partial swamps*); the errors are against the exact
        product of the quantized operands (float64): relative Frobenius error and VRR over
        the outputs.
    '''),
    code('''
        import numpy as np

        from hbfpsim import matmul, quantize

        rng = np.random.default_rng(0)
        A = rng.standard_normal((64, 4096)).astype(np.float32)
        B = rng.standard_normal((4096, 64)).astype(np.float32)
        exact = quantize(A, "fp8_e4m3").astype(np.float64) @ quantize(B, "fp8_e4m3", axis=0).astype(np.float64)

        PLANS = {"FP32 (wide)": "fp32", "FP16 (narrow)": "e5m10", "FP16, chunks of 64": "e5m10*64 > e5m10"}
        swamps = {}
        print(f"{'plan':<20} {'full swamps/out':>16} {'partial/out':>12} {'rel error':>10} {'VRR':>7}")
        for label, plan in PLANS.items():
            out, stats = matmul(A, B, "fp8_e4m3", plan=plan)
            full = sum(int(lv.full_swamps) for lv in stats.levels) / out.size
            partial = sum(int(lv.partial_swamps) for lv in stats.levels) / out.size
            rel = float(np.linalg.norm(out - exact) / np.linalg.norm(exact))
            retained = float(np.sum(out**2) / np.sum(exact**2))
            swamps[label] = (full, partial, rel, retained)
            print(f"{label:<20} {full:>16.1f} {partial:>12.1f} {rel:>10.2e} {retained:>7.4f}")
        print()
        print(stats.summary())
    '''),
    code('''
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = list(swamps)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, [swamps[k][0] for k in labels], 0.4, label="full swamps (addend lost)")
        ax.bar(x + 0.2, [swamps[k][1] for k in labels], 0.4, label="partial swamps (low bits lost)")
        ax.set_xticks(x, labels)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(0, 3 * max(max(v[0], v[1]) for v in swamps.values()))
        ax.set_ylabel("events per output (K = 4096 products)")
        ax.set_title("FP8 products, K = 4096: swamping by accumulator")
        ax.legend()
        ax.grid(True, axis="y", alpha=0.3)
        plt.show()
    '''),
    code('''
        for n in LENGTHS:
            assert all(b >= a - 1e-12 for a, b in zip(theory[n], theory[n][1:])), "VRR must grow with M"
            assert theory[n][-1] > 0.999
        for (n, m), (value, se) in measured.items():
            model = vrr(n, m)
            if model >= 0.9:                                  # docs/vrr.md: within 0.02 there
                assert abs(value - model) <= 0.02 + 3 * se, (n, m, value, model, se)
            else:                                             # deep stagnation: within 2x
                assert model / 2 <= value <= 2 * model, (n, m, value, model)
        assert knees[2**16] == (13, 10)                        # docs/vrr.md's table
        assert all(seq > chunked for seq, chunked in knees.values())
        wide, narrow, chunked = (swamps[k] for k in PLANS)
        assert narrow[0] > 10 * max(wide[0], 1) and narrow[2] > 10 * wide[2]
        assert chunked[0] < narrow[0] and chunked[2] < narrow[2]
        assert wide[2] < 1e-6 and abs(wide[3] - 1) < 1e-6
        print("checks passed")
    '''),
]


# ---- 4. accuracy booster ------------------------------------------------------------------

BOOSTER = [
    md('''
        # The Accuracy Booster schedule against HBFP4, HBFP6 and FP32

        The Accuracy Booster (Harma et al., arXiv 2211.10737) trains in HBFP4 and switches
        to HBFP6 where 4 bits hurt most: the first and last layers, and the last epoch. It
        ships as the schedule preset `booster` (`hbfpsim.schedule.PRESETS`). Here it is
        replayed with HBFP4, HBFP6 and FP32 on the shipped CNN trace (`traces/cnn_digits`,
        the real operands of epochs 0, 15 and 29 of a 30-epoch training run) on `array32`.

        Shown per phase: median SQNR (dB) and W1 (outputs' units) of the GEMMs against the
        exact product, and density relative to FP32 (x FP32 MAC/s per um^2); for the
        Booster, which format each GEMM ran in and the fraction of the MACs in each. A
        schedule's density is the MAC mix of its records weighted by the training epochs
        each captured epoch stands for (epochs 0, 15 and 29 of 30 stand for 15, 14 and 1
        epochs), so the last-epoch rule weighs 1/30 of the training, not 1/3.
    '''),
    SETUP,
    code('''
        from hbfpsim.schedule import PRESETS

        booster = PRESETS["booster"]

        def numerics(n):
            return f"{n.input.name} (block accumulator {n.block_accumulator}, then {n.accumulator})"

        print("default:", numerics(booster.default))
        for rule in booster.rules:
            print(f"rule: layers {', '.join(rule.layers)}; phases {', '.join(rule.phases)}; "
                  f"epochs {rule.epochs}: {numerics(rule.numerics)}")
    '''),
    code('''
        from hbfpsim import replay
        from hbfpsim.replay.runfile import parse

        run_file = {
            "run": {"traces": ["traces/cnn_digits"], "arrays": ["array32"], "seed": 0,
                    "max_outputs": 2048, "max_macs": 2**22},
            "variant": [
                {"name": "fp32", "input": "fp32"},
                {"name": "hbfp6", "input": "hbfp6", "block_accumulator": "fixed17"},
                {"name": "hbfp4", "input": "hbfp4", "block_accumulator": "fixed13"},
                {"name": "booster", "schedule": "booster"},
            ],
        }
        report = replay.run(parse(run_file, source="booster notebook", base=ROOT), progress=False)
        VARIANTS = [v["name"] for v in run_file["variant"]]
        print(f"{len(report.rows)} rows in {report.wall_seconds:.1f} s")
    '''),
    md('''
        ## Which format each GEMM ran in under the Booster

        Rows are layers in forward order, columns the captured epochs; `4` is HBFP4, `6`
        HBFP6. The CNN has three GEMM layers (`0`, `2`: convolutions; `6`: the linear
        classifier), so the first and last layers are two of three, but they hold few of the
        MACs.
    '''),
    code('''
        rows = [r for r in report.rows if r.variant == "booster"]
        layers = list(dict.fromkeys(r.layer for r in rows if r.phase == "fwd"))
        epochs = sorted({r.epoch for r in rows})
        PHASES = ("fwd", "bwd_data", "bwd_weight")
        label = {"hbfp4@64": "4", "hbfp6@64": "6"}
        print(f"{'phase':<12}{'layer':<7}" + "".join(f"{'epoch ' + str(e):>10}" for e in epochs))
        for phase in PHASES:
            for layer in layers:
                cells = {r.epoch: label[r.input] for r in rows if r.phase == phase and r.layer == layer}
                if cells:
                    print(f"{phase:<12}{layer:<7}" + "".join(f"{cells.get(e, '-'):>10}" for e in epochs))
    '''),
    md('''
        ## Fraction of the MACs in each format

        Two views: the MACs of the captured trace as they are, and weighted by the training
        epochs each captured epoch stands for (`Row.epochs`), which is what the density of
        a whole training run uses.
    '''),
    code('''
        from collections import defaultdict

        raw, weighted = defaultdict(int), defaultdict(int)
        for r in rows:
            raw[r.input] += r.macs
            weighted[r.input] += r.macs * r.epochs
        share_raw = {f: m / sum(raw.values()) for f, m in raw.items()}
        share = {f: m / sum(weighted.values()) for f, m in weighted.items()}
        print(f"{'format':<10} {'trace MACs':>12} {'share':>7} {'epoch-weighted share':>21}")
        for f in sorted(raw):
            print(f"{f:<10} {raw[f]:>12,} {share_raw[f]:>7.1%} {share[f]:>21.2%}")
    '''),
    md('''
        ## Per phase: accuracy and density

        Medians over each phase's GEMMs. The Booster's median SQNR is a median over
        *records*, most of which (first and last layers, last epoch) run in HBFP6, while its
        density follows the *MACs*, most of which run in HBFP4.
    '''),
    code('''
        summary = report.summary()
        by = {(s["variant"], s["phase"]): s for s in summary}
        ALL_PHASES = (*PHASES, "all")
        print(f"{'variant':<9} {'phase':<11} {'records':>7} {'SQNR dB':>8} {'W1':>10} {'density':>8} {'energy uJ':>10}")
        for v in VARIANTS:
            for p in ALL_PHASES:
                s = by[v, p]
                print(f"{v:<9} {p:<11} {s['records']:>7} {s['sqnr_db_median']:>8.1f} {s['w1_median']:>10.2e} "
                      f"{s['density']:>7.2f}x {s['energy_pj'] / 1e6:>10.2f}")
    '''),
    code('''
        import numpy as np

        fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4.2),
                                                  gridspec_kw={"width_ratios": [3, 2, 1.3]})
        x = np.arange(len(ALL_PHASES))
        width = 0.8 / len(VARIANTS)
        for i, v in enumerate(VARIANTS):
            left.bar(x + (i - (len(VARIANTS) - 1) / 2) * width,
                     [by[v, p]["sqnr_db_median"] for p in ALL_PHASES], width, label=v)
        left.set_xticks(x, ALL_PHASES)
        left.set_ylabel("median SQNR (dB)")
        left.set_title("Accuracy per phase")
        left.legend(fontsize=8)
        left.grid(True, axis="y", alpha=0.3)
        middle.bar(VARIANTS, [by[v, "all"]["density"] for v in VARIANTS], color=[f"C{i}" for i in range(len(VARIANTS))])
        middle.set_ylabel("density vs FP32 (x FP32 MAC/s per um^2)")
        middle.set_title("Density (whole training run)")
        middle.grid(True, axis="y", alpha=0.3)
        bottom = np.zeros(2)
        for f in sorted(raw):
            heights = np.array([share_raw[f], share[f]]) * 100
            right.bar(["trace", "epoch-\\nweighted"], heights, bottom=bottom, label=f)
            bottom += heights
        right.set_ylim(0, 125)
        right.set_ylabel("share of the Booster's MACs (%)")
        right.set_title("Format mix")
        right.legend(fontsize=8, loc="upper center", ncol=2)
        fig.tight_layout()
        plt.show()
    '''),
    code('''
        import math

        from hbfpsim.cost import mixed_density

        d = {v: by[v, "all"]["density"] for v in VARIANTS}
        assert all(r.cycles > 0 for r in report.rows)
        assert set(raw) == {"hbfp4@64", "hbfp6@64"} and math.isclose(sum(share.values()), 1.0)
        assert 0 < share["hbfp6@64"] < share_raw["hbfp6@64"] < 0.5     # the last epoch weighs 1/30
        # the Booster's density is the epoch-weighted harmonic mix of HBFP4's and HBFP6's
        mix = mixed_density([(d["hbfp4"], share["hbfp4@64"]), (d["hbfp6"], share["hbfp6@64"])])
        assert math.isclose(d["booster"], mix, rel_tol=1e-9), (d["booster"], mix)
        assert d["hbfp6"] < d["booster"] < d["hbfp4"] and d["booster"] > 0.9 * d["hbfp4"]
        for p in ALL_PHASES:
            q = {v: by[v, p]["sqnr_db_median"] for v in VARIANTS}
            assert q["fp32"] > q["hbfp6"] > q["hbfp4"], (p, q)
            assert q["booster"] > q["hbfp4"] + 6, (p, q)             # at least a bit better
        print(f"checks passed: Booster {d['booster']:.2f}x FP32 (HBFP4 {d['hbfp4']:.2f}x), "
              f"{share['hbfp6@64']:.1%} of the training's MACs in HBFP6")
    '''),
]


# ---- 5. sweep and Pareto front ------------------------------------------------------------

SWEEP = [
    md('''
        # A design-space sweep and its energy-time Pareto front

        `hbfpsim.sweep` expands a spec of axes and constraints into runs, executes them on a
        process pool and stores the results in one SQLite file that a killed sweep resumes
        from. Here: one ResNet-50 training step (`traces/resnet50_step`, 161 GEMMs, shapes
        only: time and cost, no accuracy) on square arrays of 16 to 128 PEs a side, weight-
        or output-stationary, in four numerics variants: 32 runs.

        Units: time in seconds of array clock (1 GHz, from `array32`, the base every run
        varies), energy in J (the store keeps pJ: compute, SRAM and DRAM at 28 nm), array
        area in mm^2. Lower time and lower energy are both better; the Pareto front is the
        set of runs no other run beats on both.
    '''),
    SETUP,
    code('''
        import json
        import tempfile

        from hbfpsim.sweep import load

        tmp = tempfile.TemporaryDirectory(prefix="hbfpsim-sweep-")
        folder = Path(tmp.name)
        trace = json.dumps((ROOT / "traces" / "resnet50_step").as_posix())   # a TOML string
        (folder / "sweep.toml").write_text(f"""
        [sweep]
        name = "notebook"
        traces = [{trace}]
        base = "array32"
        compute = "timing"
        constraints = ["rows == cols"]

        [axes]
        rows = [16, 32, 64, 128]
        cols = [16, 32, 64, 128]
        dataflow = ["ws", "os"]

        [[variant]]
        name = "fp32"
        input = "fp32"

        [[variant]]
        name = "bf16"
        input = "bf16"

        [[variant]]
        name = "hbfp8"
        input = "hbfp8"
        block_accumulator = "fixed21"

        [[variant]]
        name = "hbfp4"
        input = "hbfp4"
        block_accumulator = "fixed13"
        """)
        spec = load(folder / "sweep.toml")
        print(f"{spec.size} combinations, {len(spec.runs())} runs after the constraint")
    '''),
    md('''
        ## Run it

        `driver.run(spec, store, workers=2)` runs the pending runs on two worker processes
        and writes each result to the store as it arrives.
    '''),
    code('''
        from hbfpsim.sweep.driver import run
        from hbfpsim.sweep.store import open_existing

        store = folder / "sweep.sqlite"
        outcome = run(spec, store, workers=2, progress=False)
        print(outcome)
        with open_existing(store) as db:
            header, table = db.rows()
            status = db.status()
        runs = [dict(zip(header, row)) for row in table]
        print(status)
    '''),
    code('''
        print(f"{'variant':<7} {'array':>8} {'flow':>4} {'time s':>8} {'energy J':>9} {'util':>6} "
              f"{'stalls':>7} {'area mm2':>9}")
        for r in sorted(runs, key=lambda r: r["energy_pj"]):
            print(f"{r['variant']:<7} {str(r['rows']) + 'x' + str(r['cols']):>8} {r['dataflow']:>4} "
                  f"{r['seconds']:>8.3f} {r['energy_pj'] / 1e12:>9.3f} {r['utilization']:>6.1%} "
                  f"{r['stall_share']:>7.1%} {r['array_area_um2'] / 1e6:>9.3f}")
    '''),
    md('''
        ## Energy against time, and the Pareto fronts

        `hbfpsim.replay.figures.pareto` keeps the points no other point beats with both
        coordinates *maximized*, so it is given (-time, -energy). Colours are variants,
        markers dataflows; each front is a dashed step line through its ringed runs.

        In this model a ResNet-50 step's energy and its time are both dominated by DRAM
        traffic (the DRAM share of each run's energy is printed below): the configuration
        that moves the fewest DRAM bytes is the fastest *and* the most frugal, so the
        energy-time front can shrink to a single run. The trade-off an architect pays for
        speed is silicon: the right panel puts the same runs against the array's area
        (PEs, edge converters and SRAM, mm^2), where the front has several runs.
    '''),
    code('''
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        from hbfpsim.replay.figures import pareto

        times = [r["seconds"] for r in runs]
        energies = [r["energy_pj"] / 1e12 for r in runs]
        areas = [r["array_area_um2"] / 1e6 for r in runs]
        front = sorted(pareto([(-t, -e) for t, e in zip(times, energies)]), key=lambda i: times[i])
        area_front = sorted(pareto([(-t, -a) for t, a in zip(times, areas)]), key=lambda i: times[i])
        dram_share = [r["dram_pj"] / r["energy_pj"] for r in runs]
        print(f"DRAM share of the energy: {min(dram_share):.1%} to {max(dram_share):.1%} over the runs")

        variants = list(dict.fromkeys(r["variant"] for r in runs))
        markers = {"ws": "o", "os": "s"}

        def draw(ax, ys, front, ylabel, title, yticks):
            for i, v in enumerate(variants):
                for flow, marker in markers.items():
                    pick = [j for j, r in enumerate(runs) if r["variant"] == v and r["dataflow"] == flow]
                    ax.scatter([times[j] for j in pick], [ys[j] for j in pick], color=f"C{i}",
                               marker=marker, label=f"{v}, {flow}")
            ax.step([times[i] for i in front], [ys[i] for i in front], where="post",
                    color="k", linestyle="--", linewidth=1, label="Pareto front")
            ax.scatter([times[i] for i in front], [ys[i] for i in front], s=160,
                       facecolors="none", edgecolors="k")
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis, ticks in ((ax.xaxis, [0.2, 0.5, 1, 2, 5]), (ax.yaxis, yticks)):
                axis.set_ticks(ticks)
                axis.set_major_formatter(ScalarFormatter())
                axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("time of one training step (s, 1 GHz array clock)")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)

        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
        draw(left, energies, front, "energy of one training step (J)",
             "ResNet-50 step: energy against time", [1, 2, 5, 10, 20, 50])
        draw(right, areas, area_front, "array area (mm^2: PEs, edge, SRAM)",
             "ResNet-50 step: area against time", [0.5, 1, 2, 5, 10, 20])
        left.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        plt.show()
        for title, indices in (("energy-time", front), ("area-time", area_front)):
            for i in indices:
                r = runs[i]
                print(f"{title} front: {r['variant']} {r['rows']}x{r['cols']} {r['dataflow']}: "
                      f"{times[i]:.3f} s, {energies[i]:.3f} J, {areas[i]:.3f} mm^2")
    '''),
    md('''
        The checks: every run is done and took time and energy, each front is non-empty and
        non-dominated, every other run is dominated by a run on the front, and running the
        sweep again computes nothing (the store already holds every run).
    '''),
    code('''
        assert outcome.runs == len(spec.runs()) == len(runs) == 32 and outcome.computed == 32
        assert status["sweeps"]["notebook"] == {"done": 32, "failed": 0, "pending": 0}
        assert all(r["cycles"] > 0 and r["energy_pj"] > 0 and r["seconds"] > 0 for r in runs)
        assert all(r["records"] == 161 for r in runs)

        def dominates(a, b, ys):
            return times[a] <= times[b] and ys[a] <= ys[b] and (times[a], ys[a]) != (times[b], ys[b])

        for ys, indices in ((energies, front), (areas, area_front)):
            assert indices, "empty Pareto front"
            assert not any(dominates(j, i, ys) for i in indices for j in range(len(runs)))
            assert all(any(dominates(i, j, ys) for i in indices) for j in range(len(runs)) if j not in indices)
        assert len(area_front) > 1                       # speed costs area
        assert min(dram_share) > 0.5                     # the premise of the text above
        again = run(spec, store, workers=2, progress=False)
        assert (again.skipped, again.computed) == (32, 0)
        tmp.cleanup()
        print(f"checks passed: {len(front)} run(s) on the energy-time front, {len(area_front)} on the area-time front")
    '''),
]


NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "density_and_area.ipynb": DENSITY,
    "accumulator_width.ipynb": ACCUMULATOR,
    "accuracy_booster.ipynb": BOOSTER,
    "sweep_pareto.ipynb": SWEEP,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name``, with deterministic cell ids and no outputs."""
    stem = name.removesuffix(".ipynb").replace("_", "-")
    cells = []
    for i, cell in enumerate(NOTEBOOKS[name]):
        cell = nbformat.from_dict(dict(cell))     # SETUP is shared: copy it
        cell.id = f"{stem}-{i:02d}"
        cells.append(cell)
    nb = new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC, "language_info": LANGUAGE})
    nbformat.validate(nb)
    return nb


def text(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print(__doc__.strip().splitlines()[0], "\nusage: make_notebooks.py [--check]")
        return 2
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text(name):
                stale.append(name)
        else:
            path.write_text(text(name), encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python notebooks/make_notebooks.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
