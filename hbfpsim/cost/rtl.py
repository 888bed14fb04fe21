"""Verilog for the components and integer-datapath PEs that ``hbfpsim cost calibrate``
synthesizes. Every module is combinational but for explicit registers, two's complement."""

from __future__ import annotations


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


def pe(mantissa_bits: int, acc_bits: int) -> str:
    """An integer systolic PE: operand registers a and b (``mantissa_bits`` each, forwarded
    to the neighbours) and an ``acc_bits`` accumulator register adding their product every
    cycle (wrapping), module ``top``. The datapath of an HBFP (or INT) PE inside a block."""
    m, w = mantissa_bits, acc_bits
    return (f"module top(input clk, input signed [{m - 1}:0] a_in, b_in,\n"
            f"           output reg signed [{m - 1}:0] a, b, output reg signed [{w - 1}:0] acc);\n"
            f"  wire signed [{2 * m - 1}:0] p = a * b;\n"
            f"  always @(posedge clk) begin\n"
            f"    a <= a_in;\n    b <= b_in;\n"
            f"    acc <= acc + {{{{{w - 2 * m}{{p[{2 * m - 1}]}}}}, p}};\n"
            f"  end\nendmodule\n")
