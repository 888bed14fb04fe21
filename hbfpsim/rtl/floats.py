"""Verilog for the floating-point steps of an accumulation plan, as ``hbfpsim.mac`` rounds them:
one rounding per operation, exact for every IEEE-style layout e{E}m{M} the accumulators take.

Three combinational modules per float accumulator (``FloatAccumulator``: E exponent bits, M
fraction bits, bias 2^(E-1) - 1, subnormals or flush-to-zero, overflow to Inf or saturation,
rounding to nearest even, to nearest away from zero, or toward zero):

- ``round``: the value (mag + sticky) 2^q of an unsigned integer ``mag``, a ``sticky`` bit
  (the true value lies strictly between mag and mag + 1 in units of 2^q) and a sign, rounded
  once into the format: the leading one fixes the exponent (at least emin), the bits below
  the result's last place are a guard bit and a sticky OR, and the mode decides. An exact
  zero takes the sign ``zsign``; a non-zero value that rounds to zero keeps its own.
- ``fadd``: x + y rounded once. The smaller operand is aligned to the larger with three
  extra bits and its shifted-out bits ORed into a sticky bit; a subtraction with that bit
  set subtracts one more unit and keeps the bit (the true difference lies strictly inside
  that unit), so ``round`` sees the exact value's interval. Inf and NaN combine as IEEE
  says (and count no overflow), as ``mac.arith.float_add`` does.
- ``from_fixed``: a w-bit two's complement integer times 2^q rounded into the format (a
  block accumulator's result entering the chain), and ``from_float``: another layout's
  float rounded into this one (the chain's result entering the output buffer).

Module names carry the layout and the modifiers (``e8m23_rne_inf_sub``), so one design
holds the units of several levels. Exponents inside are 18-bit signed (the accumulators'
layouts reach 2^1023 and the products' LSBs 2^-1100).
"""

from __future__ import annotations

from hbfpsim.formats.rounding import Rounding
from hbfpsim.mac import FloatAccumulator

XW = 18            # bits of the signed exponents inside the units
GUARD = 3          # extra bits the adder aligns its smaller operand into
MODES = {Rounding.RNE: "rne", Rounding.RNA: "rna", Rounding.RTZ: "rtz"}


def tag(acc: FloatAccumulator) -> str:
    """The suffix naming ``acc``'s units: layout, rounding, overflow, subnormals."""
    if acc.rounding not in MODES:
        raise ValueError(f"RTL float units round to nearest even, away or toward zero; "
                         f"{acc} rounds {acc.rounding.name.lower()}")
    return (f"e{acc.exp_bits}m{acc.man_bits}_{MODES[acc.rounding]}_"
            f"{'sat' if acc.saturate else 'inf'}_{'sub' if acc.subnormals else 'ftz'}")


def bits(acc: FloatAccumulator) -> int:
    """Bits of a value of ``acc``'s layout: sign, E exponent bits, M fraction bits."""
    return 1 + acc.exp_bits + acc.man_bits


def _lead(width: int, src: str, out: str) -> list[str]:
    """Statements setting the integer ``out`` to the position of ``src``'s leading one (0
    when it is zero)."""
    return [f"    {out} = 0;", f"    for (i = 0; i < {width}; i = i + 1)",
            f"      if ({src}[i]) {out} = i;"]


def round_unit(acc: FloatAccumulator, width: int) -> str:
    """``round_<tag>_w<width>``: (mag + sticky) 2^q with sign s into ``acc``'s layout; ``over``
    when the magnitude passed the largest finite value, ``inexact`` when the result is not
    the exact value."""
    e, m = acc.exp_bits, acc.man_bits
    bias, n = 2 ** (e - 1) - 1, bits(acc)
    emin, emax = 1 - bias, bias
    floor = emin - 1 if not acc.subnormals else emin
    ones, top = (1 << e) - 1, (1 << (e + m)) - 1 - (1 << m)   # Inf's field; max's bits
    mode = MODES[acc.rounding]
    up = {"rne": "guard & (rest | kept[0])", "rna": "guard", "rtz": "1'b0"}[mode]
    name = f"round_{tag(acc)}_w{width}"
    lines = [
        f"module {name}(input s, input [{width - 1}:0] mag, input sticky,",
        f"    input signed [{XW - 1}:0] q, input zsign, output reg [{n - 1}:0] f,",
        "    output reg over, output reg inexact);",
        "  integer i, p;",
        f"  reg signed [{XW - 1}:0] er, sh, biased;",
        f"  reg [{width + m + 1}:0] kept;",
        "  reg guard, rest, up;",
        "  always @* begin",
        *_lead(width, "mag", "p"),
        "    er = q + p;",
        f"    if (er < {signed(floor)}) er = {signed(floor)};",
        f"    sh = q - (er - {m});                 // > 0: mag moves up; < 0: bits drop",
        "    guard = 1'b0; rest = sticky;",
        "    if (sh >= 0) kept = mag << sh;",
        f"    else if (-sh > {width}) begin kept = 0; rest = sticky | (|mag); end",
        "    else begin",
        "      kept = mag >> (-sh);",
        "      guard = mag[-sh - 1];",
        f"      rest = sticky | (|(mag & (({width}'d1 << (-sh - 1)) - 1)));",
        "    end",
        f"    up = {up};",
        "    kept = kept + up;",
        f"    if (kept[{m + 1}]) begin kept = kept >> 1; er = er + 1; end",
        f"    biased = er + {bias};",
        "    over = 1'b0; inexact = guard | rest;",
        "    if (mag == 0 && !sticky) f = {zsign, " + f"{n - 1}'d0}};",
        "    else if (kept == 0) f = {s, " + f"{n - 1}'d0}};",
        f"    else if (er > {emax}) begin",
        "      over = 1'b1; inexact = 1'b1;",
        f"      f = {{s, {e + m}'d{top if acc.saturate else ones << m}}};",
        "    end",
    ]
    if not acc.subnormals:
        lines += [f"    else if (er < {emin}) begin f = {{s, {n - 1}'d0}}; inexact = 1'b1; end"
                  "   // flushed to zero"]
    lines += [
        f"    else if (kept[{m}]) f = {{s, biased[{e - 1}:0], kept[{m - 1}:0]}};",
        f"    else f = {{s, {e}'d0, kept[{m - 1}:0]}};",
        "  end",
        "endmodule", ""]
    return "\n".join(lines)


def _unpack(acc: FloatAccumulator, x: str) -> list[str]:
    """Declarations splitting ``x`` into sign, significand (hidden bit included), unbiased
    exponent (emin for subnormals) and Inf / NaN flags."""
    e, m = acc.exp_bits, acc.man_bits
    bias, n = 2 ** (e - 1) - 1, bits(acc)
    return [f"  wire {x}s = {x}[{n - 1}];",
            f"  wire [{e - 1}:0] {x}e = {x}[{n - 2}:{m}];",
            f"  wire [{m}:0] {x}g = {{|{x}e, {x}[{m - 1}:0]}};",
            f"  wire signed [{XW - 1}:0] {x}x = ({x}e == 0) ? {signed(1 - bias)}"
            f" : $signed({{{XW - e}'d0, {x}e}}) - {bias};",
            f"  wire {x}inf = (&{x}e) && {x}[{m - 1}:0] == 0;",
            f"  wire {x}nan = (&{x}e) && {x}[{m - 1}:0] != 0;"]


def signed(v: int) -> str:
    """The XW-bit signed Verilog constant ``v``."""
    return f"-{XW}'sd{-v}" if v < 0 else f"{XW}'sd{v}"


def _nan(acc: FloatAccumulator) -> str:
    e, m = acc.exp_bits, acc.man_bits
    return f"{{1'b0, {{{e}{{1'b1}}}}, 1'b1, {m - 1}'d0}}" if m > 1 else f"{{1'b0, {{{e + 1}{{1'b1}}}}}}"


def add_unit(acc: FloatAccumulator) -> dict[str, str]:
    """``fadd_<tag>`` (f = x + y in ``acc``'s layout, one rounding) and the rounder it uses,
    by module name. Its flags count as ``mac.arith.float_add`` does, for finite operands:
    ``over`` overflow, ``inexact`` the sum rounded, ``full`` a nonzero y left x unchanged (a
    full swamp), ``partial`` an inexact sum whose y was not larger than x and changed it."""
    m, n = acc.man_bits, bits(acc)
    w = m + 1 + GUARD                       # aligned significands
    t = tag(acc)
    return {f"round_{t}_w{w + 1}": round_unit(acc, w + 1), f"fadd_{t}": "\n".join([
        f"module fadd_{t}(input [{n - 1}:0] x, y, output [{n - 1}:0] f, output over, inexact,",
        "    output partial, full);",
        *_unpack(acc, "x"), *_unpack(acc, "y"),
        f"  wire swap = y[{n - 2}:0] > x[{n - 2}:0];          // |y| > |x|",
        "  wire sa = swap ? ys : xs, sb = swap ? xs : ys;",
        f"  wire [{m}:0] ag = swap ? yg : xg, bg = swap ? xg : yg;",
        f"  wire signed [{XW - 1}:0] ax = swap ? yx : xx, bx = swap ? xx : yx;",
        f"  wire signed [{XW - 1}:0] d = ax - bx;",
        f"  wire [{w - 1}:0] a_al = {{ag, {GUARD}'d0}};",
        f"  wire [{w - 1}:0] b_full = {{bg, {GUARD}'d0}};",
        f"  wire [{w - 1}:0] b_al = (d >= {w}) ? {w}'d0 : b_full >> d;",
        f"  wire lost = (d >= {w}) ? |bg : |(b_full & (({w}'d1 << d) - 1));",
        f"  wire [{w}:0] sum = (sa == sb) ? a_al + b_al : a_al - b_al - lost;",
        f"  wire [{n - 1}:0] r;",
        "  wire r_over, r_inexact;",
        f"  round_{t}_w{w + 1} rnd(.s(sa), .mag(sum), .sticky(lost),",
        f"      .q(ax - {m + GUARD}), .zsign(sa & sb), .f(r), .over(r_over), "
        ".inexact(r_inexact));",
        "  wire special = xinf | xnan | yinf | ynan;",
        f"  assign f = (xnan | ynan | (xinf & yinf & (xs != ys))) ? {_nan(acc)}",
        "      : xinf ? x : yinf ? y : r;",
        "  assign over = r_over & ~special;",
        "  assign inexact = r_inexact & ~special;",
        f"  wire unchanged = r == x || (r[{n - 2}:0] == 0 && x[{n - 2}:0] == 0);   // as values",
        f"  assign full = ~special && y[{n - 2}:0] != 0 && unchanged;",
        f"  assign partial = inexact && !full && y[{n - 2}:0] <= x[{n - 2}:0];",
        "endmodule", ""])}


def fixed_unit(acc: FloatAccumulator, width: int) -> dict[str, str]:
    """``from_fixed<width>_<tag>`` (the ``width``-bit two's complement v times 2^q in
    ``acc``'s layout; an exact zero is +0; ``inexact`` when it rounded) and its rounder,
    by module name."""
    t, n = tag(acc), bits(acc)
    return {f"round_{t}_w{width}": round_unit(acc, width), f"from_fixed{width}_{t}": "\n".join([
        f"module from_fixed{width}_{t}(input signed [{width - 1}:0] v,",
        f"    input signed [{XW - 1}:0] q, output [{n - 1}:0] f, output over, inexact);",
        f"  wire [{width - 1}:0] mag = v[{width - 1}] ? -v : v;",
        f"  round_{t}_w{width} rnd(.s(v[{width - 1}]), .mag(mag), .sticky(1'b0), .q(q),",
        "      .zsign(1'b0), .f(f), .over(over), .inexact(inexact));",
        "endmodule", ""])}


def float_unit(source: FloatAccumulator, acc: FloatAccumulator) -> dict[str, str]:
    """``from_<source tag>_to_<tag>`` (a value of ``source``'s layout in ``acc``'s: Inf and
    NaN carried over, a zero keeping its sign) and its rounder, by module name."""
    t, n, m = tag(acc), bits(acc), source.man_bits
    e2, m2 = acc.exp_bits, acc.man_bits
    return {f"round_{t}_w{m + 1}": round_unit(acc, m + 1),
            f"from_{tag(source)}_to_{t}": "\n".join([
        f"module from_{tag(source)}_to_{t}(input [{bits(source) - 1}:0] x,",
        f"    output [{n - 1}:0] f, output over, inexact);",
        *_unpack(source, "x"),
        f"  wire [{n - 1}:0] r;",
        "  wire r_over, r_inexact;",
        f"  round_{t}_w{m + 1} rnd(.s(xs), .mag(xg), .sticky(1'b0), .q(xx - {m}),",
        "      .zsign(xs), .f(r), .over(r_over), .inexact(r_inexact));",
        f"  assign f = xnan ? {_nan(acc)} : xinf ? {{xs, {{{e2}{{1'b1}}}}, {m2}'d0}} : r;",
        "  assign over = r_over & ~(xnan | xinf);",
        "  assign inexact = r_inexact & ~(xnan | xinf);",
        "endmodule", ""])}
