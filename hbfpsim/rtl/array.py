"""Synthesizable Verilog for an R x C systolic array that computes what ``hbfpsim.mac`` computes
with the plan ``hbfpsim.array.plan_for`` gives, in the cycles ``hbfpsim.array`` counts.

The design follows the cycle-stepped reference (``array/reference.py``) register for
register. Output stationary (OS): a controller reads column k of the A tile and row k of
the B tile from an ideal memory in cycle k of a fold (``rd_en``, ``rd_k``); skew registers
delay array row r's A element by r cycles and column c's B element by c; every PE
multiplies what reaches it in the cycle it arrives and hands it on through a register, to
the right (A) and down (B), so that PE (r, c) meets product k in cycle k + r + c. Flags
travel with A: valid, the fold's first product, a block's last product and the fold's last
product. A PE adds each integer product into its block accumulator (``fixed{w}``: wrapping
or saturating, ``cost.rtl.fixed_sum``, the same Verilog as the PEs ``hbfpsim cost``
synthesizes); a block's last product converts the block into the PE's chain register (a
float accumulator: ``rtl.floats``) and clears the block. When the whole fold is one block
(K at most the block length) the block's integer is the PE's result, as the plan's
integer chain says. ``done`` is the bottom-right PE's last product: the fold's last
multiply, in the fold's cycle K + R + C - 3 (SCALE-Sim's T + R + C - 2 cycles).

The output buffer's adder (``ou_*`` ports) is one combinational unit: it rounds a PE's
result (chain float, or block integer times 2^lsb) into the output format and adds it to
the buffer's value, as the plan's last level does; the testbench holds the buffer (ideal
memory) and passes every output through it.

Operands arrive as the MAC engine's integers: each element an integer mantissa (``wa`` /
``wb`` bits, two's complement) and its block's LSB exponent (``floats.XW`` bits), from
``mac.operands.prepare``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hbfpsim.config import ArrayConfig
from hbfpsim.cost.rtl import fixed_sum, mx_aligned_bits, mx_term
from hbfpsim.mac import FixedAccumulator, FloatAccumulator
from hbfpsim.mac.operands import element_int_max
from hbfpsim.numerics import Numerics
from hbfpsim.rtl import floats
from hbfpsim.rtl.floats import XW

DATAFLOWS = ("os", "ws", "is")
FAMILIES = ("hbfp", "mx")


class RTLError(ValueError):
    """A configuration the generated array cannot build, said in one line."""


@dataclass(frozen=True)
class Spec:
    """What one generated array is: shape, dataflow, operand widths (bits of the integer
    mantissas, two's complement), elements per block and the plan's accumulators."""

    rows: int
    cols: int
    dataflow: str
    wa: int
    wb: int
    block: int
    fixed: FixedAccumulator
    chain: FloatAccumulator
    out: FloatAccumulator
    element: tuple[int, int] | None = None   # MX float elements' (E, M): operands are codes

    @property
    def chain_bits(self) -> int:
        return floats.bits(self.chain)

    @property
    def widths(self) -> tuple[int, int]:
        """(stationary, streamed) mantissa bits of WS (B, A) and IS (A, B)."""
        return (self.wb, self.wa) if self.dataflow == "ws" else (self.wa, self.wb)

    @property
    def integer_chain(self) -> bool:
        """WS and IS: a column's products all lie in one block (blocks of at least R), so its
        partial sum stays an integer down the column (``plan_for``'s integer chain)."""
        return self.block >= self.rows

    @property
    def out_bits(self) -> int:
        return floats.bits(self.out)


def spec_for(config: ArrayConfig, numerics: Numerics) -> Spec:
    """The array ``config`` describes with ``numerics``; an RTLError naming what it cannot
    build: a dataflow other than OS, formats that are not block formats sharing a block
    length, a missing block accumulator, one narrower than a product, float levels that
    round stochastically."""
    if config.dataflow not in DATAFLOWS:
        raise RTLError(f"{config.name}: the RTL array is generated for the dataflows "
                       f"{', '.join(DATAFLOWS)}; this configuration is {config.dataflow}")
    fa, fb = numerics.input, numerics.weight
    for role, fmt in (("input", fa), ("weight", fb)):
        if fmt.family not in FAMILIES:
            raise RTLError(f"{config.name}: {role} format {fmt.name}: the RTL PEs multiply "
                           "block formats' integer mantissas (hbfp*, mx*)")
    block = math.gcd(fa.block or 0, fb.block or 0)
    if block != fa.block or block != fb.block:
        raise RTLError(f"{config.name}: {fa.name} and {fb.name} have different block lengths; "
                       "the RTL PE converts one shared block at a time")
    fixed = numerics.block_accumulator
    if fixed is None:
        raise RTLError(f"{config.name}: the RTL PE sums each block in a fixed-point block "
                       "accumulator: set [numerics] block_accumulator (e.g. fixed16)")
    for level, acc in (("accumulator", numerics.accumulator), ("output", numerics.output)):
        if not isinstance(acc, FloatAccumulator):
            raise RTLError(f"{config.name}: {level} {acc}: the RTL chain and output buffer "
                           "are floating point (e{E}m{M}, fp32, bf16, fp16)")
        if acc.rounding not in floats.MODES:
            raise RTLError(f"{config.name}: {level} {acc}: the RTL float units round to "
                           "nearest (even or away) or toward zero, not stochastically")
    elements = [(f.element.exp_bits, f.element.man_bits) if f.family == "mx" and
                 f.element is not None else None for f in (fa, fb)]
    if elements[0] is not None or elements[1] is not None:   # codes in, decoded in the PE
        if elements[0] != elements[1]:
            raise RTLError(f"{config.name}: {fa.name} x {fb.name}: the RTL MX PE multiplies "
                           "elements of one kind (both operands the same MX float format)")
        e, m = elements[0]
        wa = wb = 1 + e + m
        product = mx_aligned_bits(e, m) + 1
    else:                                                   # integer mantissas
        wa, wb = (element_int_max(f).bit_length() + 1 for f in (fa, fb))
        product = wa + wb
    if product > fixed.width:
        raise RTLError(f"{config.name}: the block accumulator {fixed} is narrower than one "
                       f"product ({product} bits)")
    return Spec(config.rows, config.cols, config.dataflow, wa, wb, block, fixed,
                numerics.accumulator, numerics.output, elements[0])


def verilog(spec: Spec, counters: bool = True) -> str:
    """The design: float units, the PE and the array (module ``hbfpsim_array``: controller,
    skew registers, PEs and the output buffer's adder). ``counters``: each PE counts its
    block overflows and its chain's roundings, overflows and swamps in 32-bit registers
    (``STATS``, output ports ``{stat}_{r}_{c}``), for co-simulation; without them, the
    array alone (for synthesis and for ``hbfpsim rtl emit``)."""
    w, chain, out = spec.fixed.width, spec.chain, spec.out
    modules = {**floats.fixed_unit(chain, w), **floats.add_unit(chain),
               **floats.fixed_unit(out, w), **floats.float_unit(chain, out),
               **floats.add_unit(out)}
    if spec.dataflow == "os":
        parts = [_pe(spec, counters), _array(spec, counters)]
    else:
        parts = [_pe_stationary(spec, counters), _array_stationary(spec, counters)]
    return "\n".join([*modules.values(), *parts])


def _product(spec: Spec, a: str, b: str) -> list[str]:
    """Verilog declaring the w-bit ``addend``: the product of the PE's operands ``a`` and
    ``b`` in units of their LSBs. Integer mantissas multiply as they are; MX float codes
    are decoded and aligned by ``cost.rtl.mx_term``, the datapath of the MX PE that
    ``hbfpsim cost synth`` synthesizes."""
    w = spec.fixed.width
    if spec.element is not None:
        lines, extended = mx_term(*spec.element, w, a, b)
        return [*lines, f"  wire [{w - 1}:0] addend = {extended};"]
    wa, wb = (spec.wa, spec.wb) if a == "a_in" else spec.widths
    p = wa + wb
    return [f"  wire signed [{p - 1}:0] p = {a} * {b};",
            f"  wire [{w - 1}:0] addend = {{{{{w - p}{{p[{p - 1}]}}}}, p}};" if w > p
            else f"  wire [{w - 1}:0] addend = p;"]


STATS = ("n_bover", "n_conv", "n_cover", "n_inexact", "n_partial", "n_full")
_CHAIN_FLAGS = ["  wire conv_over, conv_inexact, add_over, add_inexact, add_partial, add_full;"]


def _counter_decl(counters: bool) -> str:
    """The end of a PE's port list: the counters' output registers, or nothing."""
    return (",\n    " + ", ".join(f"output reg [31:0] {c}" for c in STATS) + ");\n  initial begin "
            + " ".join(f"{c} = 0;" for c in STATS) + " end") if counters else ");"


def _connect(counters: bool, place: str) -> str:
    """The end of a PE instance: its counters wired to the top's ports, or nothing."""
    return (",\n      " + ", ".join(f".{x}({x}_{place})" for x in STATS) + ");") if counters \
        else ");"


def _count(event: str, counters: bool = True) -> list[str]:
    """Statements counting a block's entry into the chain when ``event`` is set: its
    conversion's rounding, overflows (conversion and addition), the addition's rounding and
    swamps (as ``mac`` counts the chain level's statistics); none without counters."""
    if not counters:
        return []
    return [f"      if ({event}) begin",
            "        n_conv <= n_conv + conv_inexact;",
            "        n_cover <= n_cover + conv_over + add_over;",
            "        n_inexact <= n_inexact + add_inexact; n_partial <= n_partial + add_partial;",
            "        n_full <= n_full + add_full;",
            "      end"]


def _pe(spec: Spec, counters: bool) -> str:
    wa, wb, w, nc = spec.wa, spec.wb, spec.fixed.width, spec.chain_bits
    t = floats.tag(spec.chain)
    return "\n".join([
        "module pe(input clk,",
        f"    input signed [{wa - 1}:0] a_in, input signed [{XW - 1}:0] qa_in,",
        "    input v_in, first_in, bend_in, last_in,",
        f"    input signed [{wb - 1}:0] b_in, input signed [{XW - 1}:0] qb_in,",
        f"    output reg signed [{wa - 1}:0] a, output reg signed [{XW - 1}:0] qa,",
        "    output reg v, first, bend, last,",
        f"    output reg signed [{wb - 1}:0] b, output reg signed [{XW - 1}:0] qb,",
        f"    output reg [{w - 1}:0] blk, output reg [{nc - 1}:0] chain,",
        f"    output reg signed [{XW - 1}:0] lsb, output reg whole, output done"
        + _counter_decl(counters),
        *_product(spec, "a_in", "b_in"),
        "  reg fresh;                 // the last product ended a block: this one starts one",
        "  reg ended;                 // a block of this fold has entered the chain",
        f"  wire [{w - 1}:0] base = (first_in || fresh) ? {w}'d0 : blk;",
        *fixed_sum(w, "base", "addend", not spec.fixed.wrap, "sum", "b_over"),
        f"  wire signed [{XW - 1}:0] q = qa_in + qb_in;",
        "  wire earlier = !first_in && ended;         // the chain holds earlier blocks",
        f"  wire [{nc - 1}:0] conv, total;",
        *_CHAIN_FLAGS,
        f"  from_fixed{w}_{t} to_chain(.v(sum), .q(q), .f(conv), .over(conv_over), "
        ".inexact(conv_inexact));",
        f"  fadd_{t} add(.x(earlier ? chain : {nc}'d0), .y(conv), .f(total), .over(add_over),",
        "      .inexact(add_inexact), .partial(add_partial), .full(add_full));",
        "  assign done = v_in & last_in;",
        "  always @(posedge clk) begin",
        "    a <= a_in; qa <= qa_in; v <= v_in; first <= first_in; bend <= bend_in;",
        "    last <= last_in; b <= b_in; qb <= qb_in;",
        "    if (v_in) begin",
        "      blk <= sum; lsb <= q; fresh <= bend_in;",
        *(["      n_bover <= n_bover + b_over;"] if counters else []),
        "      if (bend_in) begin chain <= total; ended <= 1'b1; end",
        *_count("bend_in", counters),
        "      else if (first_in) ended <= 1'b0;",
        "      if (last_in) whole <= !earlier;     // the fold was one block",
        "    end",
        "  end",
        "endmodule", ""])


def _array(spec: Spec, counters: bool) -> str:
    R, C = spec.rows, spec.cols
    wa, wb, w, nc, no = spec.wa, spec.wb, spec.fixed.width, spec.chain_bits, spec.out_bits
    ports = ["module hbfpsim_array(input clk, input rst, input start, input [31:0] k_len,",
             "    output rd_en, output [31:0] rd_k, output done,"]
    ports += [f"    input signed [{wa - 1}:0] a_{r}, input signed [{XW - 1}:0] qa_{r},"
              for r in range(R)]
    ports += [f"    input signed [{wb - 1}:0] b_{c}, input signed [{XW - 1}:0] qb_{c},"
              for c in range(C)]
    ports += [f"    output [{w - 1}:0] blk_{r}_{c}, output [{nc - 1}:0] chain_{r}_{c},"
              f" output signed [{XW - 1}:0] lsb_{r}_{c}, output whole_{r}_{c},"
              for r in range(R) for c in range(C)]
    if counters:
        ports += _counter_ports([f"{r}_{c}" for r in range(R) for c in range(C)])
    ports += [f"    input [{no - 1}:0] ou_prev, input [{w - 1}:0] ou_fixed,",
              f"    input signed [{XW - 1}:0] ou_lsb, input [{nc - 1}:0] ou_chain,",
              f"    input ou_whole, {_ou_flags(no)});"]
    body = [
        "  // the controller: one fold of k_len cycles from a start pulse",
        "  reg busy; reg [31:0] k, in_block;",
        "  assign rd_en = busy; assign rd_k = k;",
        "  always @(posedge clk) begin",
        "    if (rst) busy <= 1'b0;",
        "    else if (start) begin busy <= 1'b1; k <= 0; in_block <= 0; end",
        "    else if (busy) begin",
        "      if (k == k_len - 1) busy <= 1'b0;",
        "      k <= k + 1;",
        f"      in_block <= (in_block == {spec.block - 1}) ? 0 : in_block + 1;",
        "    end",
        "  end",
        "  wire first = k == 0;",
        "  wire last = k == k_len - 1;",
        f"  wire bend = last || in_block == {spec.block - 1};",
    ]
    # skew: row r's A (with the flags) delayed r cycles, column c's B delayed c cycles
    for r in range(R):
        body += _skew(f"a{r}", r, [(wa, f"a_{r}"), (XW, f"qa_{r}"), (1, "busy"), (1, "first"),
                                   (1, "bend"), (1, "last")])
    for c in range(C):
        body += _skew(f"b{c}", c, [(wb, f"b_{c}"), (XW, f"qb_{c}")])
    for r in range(R):
        for c in range(C):
            left = [f"a{r}_{i}" for i in range(6)] if c == 0 else [
                f"pe_{r}_{c - 1}_{x}" for x in ("a", "qa", "v", "first", "bend", "last")]
            top = [f"b{c}_{i}" for i in range(2)] if r == 0 else [
                f"pe_{r - 1}_{c}_{x}" for x in ("b", "qb")]
            n = f"pe_{r}_{c}"
            body += [f"  wire signed [{wa - 1}:0] {n}_a; wire signed [{XW - 1}:0] {n}_qa;",
                     f"  wire {n}_v, {n}_first, {n}_bend, {n}_last, {n}_done;",
                     f"  wire signed [{wb - 1}:0] {n}_b; wire signed [{XW - 1}:0] {n}_qb;",
                     f"  pe {n}(.clk(clk), .a_in({left[0]}), .qa_in({left[1]}), "
                     f".v_in({left[2]}), .first_in({left[3]}), .bend_in({left[4]}), "
                     f".last_in({left[5]}), .b_in({top[0]}), .qb_in({top[1]}),",
                     f"      .a({n}_a), .qa({n}_qa), .v({n}_v), .first({n}_first), "
                     f".bend({n}_bend), .last({n}_last), .b({n}_b), .qb({n}_qb),",
                     f"      .blk(blk_{r}_{c}), .chain(chain_{r}_{c}), .lsb(lsb_{r}_{c}), "
                     f".whole(whole_{r}_{c}), .done({n}_done)" + _connect(counters, f"{r}_{c}")]
    body += [f"  assign done = pe_{R - 1}_{C - 1}_done;",
             *_output_unit(spec, "ou_whole")]
    return "\n".join(ports + body)


def _skew(name: str, depth: int, signals: list[tuple[int, str]]) -> list[str]:
    """Wires ``{name}_{i}``: signal i delayed ``depth`` cycles through a register chain."""
    lines = []
    for i, (width, src) in enumerate(signals):
        if depth == 0:
            lines.append(f"  wire [{width - 1}:0] {name}_{i} = {src};")
            continue
        lines += [f"  reg [{width - 1}:0] {name}_{i}_d [0:{depth - 1}];",
                  f"  wire [{width - 1}:0] {name}_{i} = {name}_{i}_d[{depth - 1}];",
                  "  always @(posedge clk) begin",
                  f"    {name}_{i}_d[0] <= {src};"]
        lines += [f"    {name}_{i}_d[{j}] <= {name}_{i}_d[{j - 1}];" for j in range(1, depth)]
        lines += ["  end"]
    return lines


def _pe_stationary(spec: Spec, counters: bool) -> str:
    """The WS / IS PE: a stationary element (loaded from above, with its row's flags: a K
    index inside the GEMM, a block's last), the streamed element passing right, the partial
    sum (block integer, chain float, LSB exponent) passing down."""
    ws, wt = spec.widths
    w, nc, t = spec.fixed.width, spec.chain_bits, floats.tag(spec.chain)
    convert = not spec.integer_chain
    return "\n".join([
        "module pe(input clk, input load,",
        f"    input signed [{ws - 1}:0] w_in, input signed [{XW - 1}:0] qw_in, input kv_in, kb_in,",
        f"    output reg signed [{ws - 1}:0] w, output reg signed [{XW - 1}:0] qw,",
        "    output reg kv, kb,",
        f"    input signed [{wt - 1}:0] x_in, input signed [{XW - 1}:0] qx_in, input xv_in,",
        "    input xlast_in,",
        f"    output reg signed [{wt - 1}:0] x, output reg signed [{XW - 1}:0] qx,",
        "    output reg xv, xlast,",
        f"    input [{w - 1}:0] blk_in, input [{nc - 1}:0] chain_in,",
        f"    input signed [{XW - 1}:0] lsb_in,",
        f"    output reg [{w - 1}:0] blk, output reg [{nc - 1}:0] chain,",
        f"    output reg signed [{XW - 1}:0] lsb, output done" + _counter_decl(counters),
        *_product(spec, "w", "x_in"),
        *fixed_sum(w, "blk_in", "addend", not spec.fixed.wrap, "sum", "b_over"),
        f"  wire signed [{XW - 1}:0] q = qw + qx_in;",
        *([f"  wire [{nc - 1}:0] conv, total;", *_CHAIN_FLAGS,
           f"  from_fixed{w}_{t} to_chain(.v(sum), .q(q), .f(conv), .over(conv_over), "
           ".inexact(conv_inexact));",
           f"  fadd_{t} add(.x(chain_in), .y(conv), .f(total), .over(add_over),",
           "      .inexact(add_inexact), .partial(add_partial), .full(add_full));"]
          if convert else []),
        "  assign done = xv_in & xlast_in;",
        "  always @(posedge clk) begin",
        "    if (load) begin w <= w_in; qw <= qw_in; kv <= kv_in; kb <= kb_in; end",
        "    x <= x_in; qx <= qx_in; xv <= xv_in; xlast <= xlast_in;",
        "    if (xv_in && kv) begin",
        *(["      n_bover <= n_bover + b_over;"] if counters else []),
        *(["      if (kb) begin blk <= 0; chain <= total; end",
           "      else begin blk <= sum; chain <= chain_in; end", *_count("kb", counters)]
          if convert else
          ["      blk <= sum; chain <= chain_in;"]),
        "      lsb <= q;",
        "    end else begin",
        "      blk <= blk_in; chain <= chain_in; lsb <= lsb_in;",
        "    end",
        "  end",
        "endmodule", ""])


def _array_stationary(spec: Spec, counters: bool) -> str:
    """WS / IS: the controller loads the stationary tile from the top in R cycles (row R - 1
    first, so that each row's element shifts down into place), then streams T elements
    into the rows, skewed by row; the partial sums leave at the bottom (``out_*``), one
    per column per cycle, in stream order."""
    R, C = spec.rows, spec.cols
    ws, wt = spec.widths
    w, nc, no = spec.fixed.width, spec.chain_bits, spec.out_bits
    ports = ["module hbfpsim_array(input clk, input rst, input start, input [31:0] t_len,",
             "    input [31:0] k_len, input [31:0] row_base,",
             "    output ld_en, output [31:0] ld_row, output rd_en, output [31:0] rd_k,",
             "    output done,"]
    ports += [f"    input signed [{ws - 1}:0] w_{c}, input signed [{XW - 1}:0] qw_{c},"
              for c in range(C)]
    ports += [f"    input signed [{wt - 1}:0] x_{r}, input signed [{XW - 1}:0] qx_{r},"
              for r in range(R)]
    ports += [f"    output [{w - 1}:0] blk_{c}, output [{nc - 1}:0] chain_{c},"
              f" output signed [{XW - 1}:0] lsb_{c}, output ov_{c},"
              for c in range(C)]
    if counters:
        ports += _counter_ports([f"{r}_{c}" for r in range(R) for c in range(C)])
    ports += [f"    input [{no - 1}:0] ou_prev, input [{w - 1}:0] ou_fixed,",
              f"    input signed [{XW - 1}:0] ou_lsb, input [{nc - 1}:0] ou_chain,",
              f"    {_ou_flags(no)});"]
    body = [
        "  // the controller: R load cycles, then t_len stream cycles, from a start pulse",
        "  reg loading, streaming; reg [31:0] t;",
        f"  assign ld_en = loading; assign ld_row = {R - 1} - t;",
        "  assign rd_en = streaming; assign rd_k = t;",
        "  always @(posedge clk) begin",
        "    if (rst) begin loading <= 1'b0; streaming <= 1'b0; end",
        "    else if (start) begin loading <= 1'b1; streaming <= 1'b0; t <= 0; end",
        "    else if (loading) begin",
        f"      if (t == {R - 1}) begin loading <= 1'b0; streaming <= 1'b1; t <= 0; end",
        "      else t <= t + 1;",
        "    end else if (streaming) begin",
        "      if (t == t_len - 1) streaming <= 1'b0;",
        "      t <= t + 1;",
        "    end",
        "  end",
        "  // the row being loaded: its K index, inside the GEMM, a block's last",
        f"  wire [31:0] ld_k = row_base + {R - 1} - t;",
        "  wire ld_kv = loading && ld_k < k_len;",
        f"  wire ld_kb = ld_k == k_len - 1 || (ld_k % {spec.block}) == {spec.block - 1};",
        "  wire last = t == t_len - 1;",
    ]
    for r in range(R):
        body += _skew(f"x{r}", r, [(wt, f"x_{r}"), (XW, f"qx_{r}"), (1, "streaming"),
                                   (1, "last")])
    for r in range(R):
        for c in range(C):
            n = f"pe_{r}_{c}"
            up = (f"w_{c}", f"qw_{c}", "ld_kv", "ld_kb") if r == 0 else tuple(
                f"pe_{r - 1}_{c}_{x}" for x in ("w", "qw", "kv", "kb"))
            left = tuple(f"x{r}_{i}" for i in range(4)) if c == 0 else tuple(
                f"pe_{r}_{c - 1}_{x}" for x in ("x", "qx", "xv", "xlast"))
            psum = (f"{w}'d0", f"{nc}'d0", f"{XW}'sd0") if r == 0 else tuple(
                f"pe_{r - 1}_{c}_{x}" for x in ("blk", "chain", "lsb"))
            body += [f"  wire signed [{ws - 1}:0] {n}_w; wire signed [{XW - 1}:0] {n}_qw;",
                     f"  wire {n}_kv, {n}_kb, {n}_xv, {n}_xlast, {n}_done;",
                     f"  wire signed [{wt - 1}:0] {n}_x; wire signed [{XW - 1}:0] {n}_qx;",
                     f"  wire [{w - 1}:0] {n}_blk; wire [{nc - 1}:0] {n}_chain;",
                     f"  wire signed [{XW - 1}:0] {n}_lsb;",
                     f"  pe {n}(.clk(clk), .load(loading), .w_in({up[0]}), .qw_in({up[1]}), "
                     f".kv_in({up[2]}), .kb_in({up[3]}), .w({n}_w), .qw({n}_qw), "
                     f".kv({n}_kv), .kb({n}_kb),",
                     f"      .x_in({left[0]}), .qx_in({left[1]}), .xv_in({left[2]}), "
                     f".xlast_in({left[3]}), .x({n}_x), .qx({n}_qx), .xv({n}_xv), "
                     f".xlast({n}_xlast),",
                     f"      .blk_in({psum[0]}), .chain_in({psum[1]}), .lsb_in({psum[2]}), "
                     f".blk({n}_blk), .chain({n}_chain), .lsb({n}_lsb), .done({n}_done)"
                     + _connect(counters, f"{r}_{c}")]
    for c in range(C):
        n = f"pe_{R - 1}_{c}"
        body += [f"  assign blk_{c} = {n}_blk; assign chain_{c} = {n}_chain;",
                 f"  assign lsb_{c} = {n}_lsb; assign ov_{c} = {n}_xv;"]
    body += [f"  assign done = pe_{R - 1}_{C - 1}_done;",
             *_output_unit(spec, "1'b1" if spec.integer_chain else "1'b0")]
    return "\n".join(ports + body)


def _ou_flags(no: int) -> str:
    """The output buffer adder's outputs: the sum and its statistics flags."""
    return (f"output [{no - 1}:0] ou_out, output ou_cover, ou_conv, ou_aover, ou_inexact, "
            "ou_partial, ou_full")


def _counter_ports(places: list[str]) -> list[str]:
    """The statistics counters of the PEs at ``places`` ("r_c") as output ports."""
    return ["    output [31:0] " + ", ".join(f"{x}_{p}" for x in STATS) + "," for p in places]


def _output_unit(spec: Spec, whole: str) -> list[str]:
    """The output buffer's adder: a result into the output format (from the block integer
    when ``whole``, else from the chain), added to ``ou_prev``, with the flags ``mac``
    counts at the output level."""
    w, no = spec.fixed.width, spec.out_bits
    tc, to = floats.tag(spec.chain), floats.tag(spec.out)
    return ["  // the output buffer's adder: a result into the output format, added",
            f"  wire [{no - 1}:0] from_fixed, from_chain;",
            "  wire fixed_over, chain_over, fixed_inexact, chain_inexact;",
            f"  from_fixed{w}_{to} ou_f(.v(ou_fixed), .q(ou_lsb), .f(from_fixed), "
            ".over(fixed_over), .inexact(fixed_inexact));",
            f"  from_{tc}_to_{to} ou_c(.x(ou_chain), .f(from_chain), .over(chain_over), "
            ".inexact(chain_inexact));",
            f"  assign ou_cover = {whole} ? fixed_over : chain_over;",
            f"  assign ou_conv = {whole} ? fixed_inexact : chain_inexact;",
            f"  fadd_{to} ou_add(.x(ou_prev), .y({whole} ? from_fixed : from_chain), "
            ".f(ou_out), .over(ou_aover),",
            "      .inexact(ou_inexact), .partial(ou_partial), .full(ou_full));",
            "endmodule", ""]
