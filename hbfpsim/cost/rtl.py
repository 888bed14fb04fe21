"""Verilog for the components and PEs that ``hbfpsim cost calibrate`` and ``hbfpsim cost
synth`` synthesize. Every module is combinational but for explicit registers, two's
complement; the top module is ``top``."""

from __future__ import annotations

from hbfpsim.formats import Format
from hbfpsim.mac import Accumulator, FixedAccumulator


def multiplier(bits: int) -> str:
    """Signed bits x bits -> 2 bits multiplier, module ``top``."""
    return (f"module top(input signed [{bits - 1}:0] a, b, output signed [{2 * bits - 1}:0] p);\n"
            f"  assign p = a * b;\nendmodule\n")


def adder(bits: int) -> str:
    """Signed ``bits``-bit adder, module ``top``."""
    return (f"module top(input signed [{bits - 1}:0] a, b, output signed [{bits - 1}:0] s);\n"
            f"  assign s = a + b;\nendmodule\n")


def register(bits: int) -> str:
    return (f"module top(input clk, input [{bits - 1}:0] d, output reg [{bits - 1}:0] q);\n"
            f"  always @(posedge clk) q <= d;\nendmodule\n")


def mux(bits: int) -> str:
    return (f"module top(input [{bits - 1}:0] a, b, input s, output [{bits - 1}:0] y);\n"
            f"  assign y = s ? a : b;\nendmodule\n")


def xor(bits: int) -> str:
    return (f"module top(input [{bits - 1}:0] a, b, output [{bits - 1}:0] y);\n"
            f"  assign y = a ^ b;\nendmodule\n")


def fixed_sum(w: int, acc: str, term: str, saturate: bool, out: str = "next",
              over: str | None = None) -> list[str]:
    """Verilog declaring the w-bit wire ``out`` = the w-bit register value ``acc`` plus the
    w-bit two's complement ``term``: wrapping (keep the low w bits) or saturating (a w+1-bit
    sum; when its top two bits differ the true sum left the range, and the result clamps to
    2^(w-1) - 1 or -2^(w-1) by the sign), as ``FixedAccumulator`` does; with ``over``, also
    the wire of that name, set when the sum left the range. The PEs here and the arrays of
    ``hbfpsim.rtl`` share it."""
    wide = [f"  wire [{w}:0] {out}_s = {{{acc}[{w - 1}], {acc}}} + {{{term}[{w - 1}], {term}}};"]
    flag = [f"  wire {over} = {out}_s[{w}] != {out}_s[{w - 1}];"] if over else []
    if not saturate:
        return [*(wide + flag if over else []), f"  wire [{w - 1}:0] {out} = {acc} + {term};"]
    return [*wide, *flag,
            f"  wire [{w - 1}:0] {out} = ({out}_s[{w}] == {out}_s[{w - 1}]) ? {out}_s[{w - 1}:0]"
            f" : {{{out}_s[{w}], {{{w - 1}{{~{out}_s[{w}]}}}}}};"]


def _accumulate(w: int, term: str, saturate: bool) -> list[str]:
    """Verilog adding the w-bit two's complement ``term`` to the w-bit register ``acc`` every
    cycle (``fixed_sum``), with the operand registers a and b."""
    return [f"  wire [{w - 1}:0] t = {term};", *fixed_sum(w, "acc", "t", saturate),
            "  always @(posedge clk) begin", "    a <= a_in;\n    b <= b_in;",
            "    acc <= next;", "  end"]


def pe(mantissa_bits: int, acc_bits: int, saturate: bool = False) -> str:
    """An integer systolic PE: operand registers a and b (``mantissa_bits`` each, forwarded
    to the neighbours) and an ``acc_bits`` accumulator register adding their product every
    cycle (wrapping, or saturating with ``saturate``), module ``top``. The datapath of an HBFP
    (or INT) PE inside a block."""
    m, w = mantissa_bits, acc_bits
    if w < 2 * m:
        raise ValueError(f"a {w}-bit accumulator cannot hold a {m} x {m}-bit product")
    extend = f"{{{{{w - 2 * m}{{p[{2 * m - 1}]}}}}, p}}" if w > 2 * m else "p"
    return "\n".join([f"module top(input clk, input signed [{m - 1}:0] a_in, b_in,",
                      f"           output reg signed [{m - 1}:0] a, b, output reg signed "
                      f"[{w - 1}:0] acc);",
                      f"  wire signed [{2 * m - 1}:0] p = a * b;",
                      *_accumulate(w, extend, saturate), "endmodule", ""])


def mx_term(exp_bits: int, man_bits: int, acc_bits: int, a: str = "a", b: str = "b"
            ) -> tuple[list[str], str]:
    """Verilog multiplying the MX floating-point elements ``a`` and ``b`` (sign, ``exp_bits``
    exponent, ``man_bits`` fraction, subnormals; NaN/Inf codes not special-cased): the
    significand product shifted left by the exponent sum into the block's fixed point (units
    of the two elements' LSBs) and the sign applied, as the signed wire ``term``; and the
    expression of ``term`` at ``acc_bits`` bits. An accumulator narrower than the aligned
    product keeps its top bits. The PE here and the arrays of ``hbfpsim.rtl`` share it."""
    e, m, w = exp_bits, man_bits, acc_bits
    n, sig = 1 + e + m, m + 1
    span = 2 * (2**e - 2)                       # exponent fields 1 .. 2^E - 1 (0: subnormal)
    aligned = 2 * sig + span
    keep = min(aligned, w - 1)
    lines = []
    for x in (a, b):
        field = f"{x}[{n - 2}:{m}]"
        lines += [f"  wire [{sig - 1}:0] s{x} = {{|{field}, {x}[{m - 1}:0]}};",
                  f"  wire [{e - 1}:0] e{x} = ({field} == 0) ? {e}'d1 : {field};"]
    lines += [f"  wire [{e}:0] shift = e{a} + e{b} - 2;",
              f"  wire [{2 * sig - 1}:0] product = s{a} * s{b};",
              f"  wire [{aligned - 1}:0] p = {{{{{span}{{1'b0}}}}, product}} << shift;",
              f"  wire [{keep}:0] mag = {{1'b0, p[{aligned - 1}:{aligned - keep}]}};",
              f"  wire signed [{keep}:0] term = ({a}[{n - 1}] ^ {b}[{n - 1}]) ? -mag : mag;"]
    return lines, (f"{{{{{w - keep - 1}{{term[{keep}]}}}}, term}}" if w > keep + 1 else "term")


def mx_aligned_bits(exp_bits: int, man_bits: int) -> int:
    """Bits of ``mx_term``'s aligned product magnitude."""
    return 2 * (man_bits + 1) + 2 * (2**exp_bits - 2)


def mx_pe(exp_bits: int, man_bits: int, acc_bits: int, saturate: bool = False) -> str:
    """A systolic PE for MX floating-point elements: registers a and b, their product
    (``mx_term``) and an ``acc_bits`` accumulator (wrapping, or saturating with
    ``saturate``). Module ``top``."""
    e, m, w = exp_bits, man_bits, acc_bits
    n = 1 + e + m
    term, extended = mx_term(e, m, w)
    return "\n".join([
        f"module top(input clk, input [{n - 1}:0] a_in, b_in, output reg [{n - 1}:0] a, b,",
        f"           output reg signed [{w - 1}:0] acc);",
        *term, *_accumulate(w, extended, saturate), "endmodule", ""])


def pe_for(fmt: Format, acc: Accumulator) -> str:
    """The PE datapath of a block or integer format with a ``fixed{w}`` accumulator: HBFP,
    INT8 and MXINT8 multiply integers (``pe``), the MX float formats align (``mx_pe``)."""
    if not isinstance(acc, FixedAccumulator):
        raise ValueError(f"synthesis needs a fixed-point accumulator (fixed{{w}}), got {acc}")
    if fmt.family == "fp":
        raise ValueError(f"{fmt.name}: Verilog is generated for integer and block formats "
                         "(hbfp*, int8, mx*); floating-point MACs are costed from the 28 nm table")
    if fmt.family == "mx" and fmt.element is not None:
        return mx_pe(fmt.element.exp_bits, fmt.element.man_bits, acc.width, not acc.wrap)
    return pe(fmt.mantissa_bits if fmt.family == "hbfp" else 8, acc.width, not acc.wrap)
