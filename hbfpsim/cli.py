"""The ``hbfpsim`` command line. Errors print one line and exit with status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hbfpsim import __version__, formats


def _formats_table(names: Sequence[str]) -> str:
    rows = [("format", "family", "elem", "block", "shared", "bits/elem", "grid")]
    for name in names or formats.STANDARD:
        f = formats.get(name)
        rows.append((f.name, f.family, str(f.element_bits), str(f.block or "-"),
                     str(f.scale_bits or "-"), f"{f.storage_bits:.3f}", f.describe()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    right = {2, 3, 4, 5}
    return "\n".join("  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) + "  " + r[-1]
                     for r in rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hbfpsim", description=(
        "Time, cost and accuracy of HBFP / MX / FP systolic-array training accelerators."))
    parser.add_argument("--version", action="version", version=f"hbfpsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("formats", help="list number formats with their bits per element",
                       description="List number formats: element bits, block, shared-exponent "
                                   "bits, storage bits per element and the element grid.")
    p.add_argument("names", nargs="*", metavar="FORMAT",
                   help="formats to show, e.g. hbfp5@32 mxfp4 (default: the standard set)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "formats":
            print(_formats_table(args.names))
    except (ValueError, OSError) as err:
        print(f"hbfpsim: error: {err}", file=sys.stderr)
        return 2
    return 0
