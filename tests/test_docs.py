"""The README's worked example and the docstring examples run as shown."""

import doctest
import re
from pathlib import Path

import hbfpsim.array
import hbfpsim.cost
import hbfpsim.formats
import hbfpsim.mac
import hbfpsim.trace

README = Path(__file__).resolve().parents[1] / "README.md"


def run_examples(text: str, name: str) -> doctest.TestResults:
    test = doctest.DocTestParser().get_doctest(text, {}, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    return runner.summarize(verbose=False)


def test_readme_example(monkeypatch):
    monkeypatch.chdir(README.parent)        # the examples read traces/ by relative path
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    result = run_examples("".join(blocks), "README.md")
    assert result.attempted > 5 and result.failed == 0


def test_docstring_examples(monkeypatch):
    monkeypatch.chdir(README.parent)
    for module in (hbfpsim.formats, hbfpsim.mac, hbfpsim.array, hbfpsim.trace, hbfpsim.cost):
        result = run_examples(module.__doc__, module.__name__)
        assert result.attempted >= 2 and result.failed == 0, module.__name__


def test_readme_formats_table_is_current(capsys):
    from hbfpsim import cli

    assert cli.main(["formats"]) == 0
    table = capsys.readouterr().out.strip()
    assert len(table.splitlines()) == 16 and table in README.read_text()


def test_cost_doc_density_table_is_current(capsys):
    from hbfpsim import cli

    assert cli.main(["density"]) == 0
    table = capsys.readouterr().out.strip()
    assert len(table.splitlines()) > 17 and table in (README.parent / "docs" / "cost.md").read_text()


def test_readme_quickstart_table_is_current(tmp_path, monkeypatch, capsys):
    """The README's first command prints the table the README shows (all but the last
    line, which holds the wall time)."""
    from hbfpsim import cli

    monkeypatch.chdir(README.parent)
    assert cli.main(["run", "configs/quickstart.toml", "--out", str(tmp_path / "qs"),
                     "--quiet", "--no-plots"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) >= 50 and printed[-1].startswith("28 summary rows in")
    assert "\n".join(printed[:-1]) in README.read_text()


def test_schedule_and_accuracy_docstring_examples():
    import hbfpsim.accuracy
    import hbfpsim.format_schedule

    for module in (hbfpsim.accuracy, hbfpsim.format_schedule):
        result = run_examples(module.__doc__, module.__name__)
        assert result.attempted >= 2 and result.failed == 0, module.__name__
