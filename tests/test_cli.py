"""The command line: `hbfpsim formats`."""

import subprocess
import sys

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


def test_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "hbfpsim", "formats", "mxint8"],
                          capture_output=True, text=True, check=True)
    assert "8.250" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "hbfpsim", "nonsense"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
