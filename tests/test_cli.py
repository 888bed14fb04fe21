"""The command line: `hbfpsim formats`, `hbfpsim gemm`."""

import subprocess
import sys
from pathlib import Path

from hbfpsim import cli


def test_formats_lists_the_standard_set_with_bits(capsys):
    assert cli.main(["formats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["format", "family", "elem", "block", "shared", "bits/elem"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["hbfp4@64"][5] == "4.125" and rows["mxfp6_e3m2"][5] == "6.250"
    assert rows["fp32"][5] == "32.000" and len(rows) == 15


def test_formats_takes_names(capsys):
    assert cli.main(["formats", "hbfp5@32", "MXFP4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:]] == ["hbfp5@32", "mxfp4"]
    assert out[1].split()[5] == "5.250"


def test_bad_format_is_one_line_and_status_2(capsys):
    assert cli.main(["formats", "hbfp4", "fp7"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "unknown format 'fp7'" in captured.err


def test_module_entry_point(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hbfpsim", "formats", "mxint8"],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.splitlines()[1].split()[:6] == ["mxint8", "mx", "8", "32", "8", "8.250"]
    bad = subprocess.run([sys.executable, "-m", "hbfpsim", "nonsense"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_gemm_prints_the_report(capsys):
    config = str(Path(__file__).resolve().parents[1] / "hbfpsim" / "presets" / "small16.toml")
    assert cli.main(["gemm", config, "8", "4", "8", "--events"]) == 0
    out = capsys.readouterr().out
    assert "small16: 16 x 16 WS, hbfp4@64 x hbfp4@64, plan fixed16*16 > fp32" in out
    assert "GEMM 8 x 4 x 8 (M x N x K): 1 folds, 256 MACs" in out
    assert "cycles        54 = 54 compute + 0 stall" in out      # 2*16 + 16 + 8 - 2
    assert out.splitlines()[-1].split() == ["0", "0", "54", "-"]
    assert cli.main(["gemm", config, "8", "4", "8", "--events", "--engine", "simpy"]) == 0
    assert capsys.readouterr().out == out                     # the discrete-event engine agrees


def test_gemm_errors_are_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[array]\nrows = 4\n")
    assert cli.main(["gemm", str(bad), "1", "2", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[array] cols is missing" in err and str(bad) in err


def _parsers(parser, path=("hbfpsim",)):
    """(command path, parser) for the command and every sub-command, depth first."""
    import argparse
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_help_says_what_each_command_and_argument_is():
    """Every command's --help starts with a description, and every argument and option
    (but -h) has a help line."""
    import argparse

    from hbfpsim.cli import _parser
    seen = 0
    for path, parser in _parsers(_parser()):
        assert parser.description, " ".join(path)
        for action in parser._actions:
            if action.dest not in ("help", "version") and not isinstance(
                    action, argparse._SubParsersAction):       # its commands are checked
                assert action.help, f"{' '.join(path)}: {action.dest}"
        seen += 1
    assert seen >= 25
