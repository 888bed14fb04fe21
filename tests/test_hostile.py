"""The hostile-input catalogue (tests/hostile.py): the catalogue itself is checked on every
run; running all of it takes minutes, so that test is marked slow (``pytest -m slow``)."""

import argparse
import os
from collections import Counter

import hostile
import pytest

from hbfpsim import cli


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) of every leaf command: ("gemm",), ("trace", "info"), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))
            return
    yield path, parser


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """The long spelling of every option but --help and --version."""
    return [max(a.option_strings, key=len) for a in parser._actions
            if a.option_strings and not isinstance(a, (argparse._HelpAction,
                                                       argparse._VersionAction))]


def test_the_catalogue_is_large_unique_and_well_formed():
    cases = hostile.cases()
    assert len(cases) >= 400
    twice = [name for name, n in Counter(c.name for c in cases).items() if n > 1]
    assert not twice, f"case names used twice: {twice}"
    for case in cases:
        assert case.kind in ("cli", "api"), case.name
        if case.kind == "cli":
            assert case.call is None and all(isinstance(a, str) for a in case.argv), case.name
        else:
            assert callable(case.call) and not case.argv, case.name
        assert case.expect == "error" or callable(case.expect), case.name
        assert not (case.refusal_ok and case.expect == "error"), case.name
        assert case.timeout > 0 and (case.setup is None or callable(case.setup)), case.name
        assert case.signal is None or case.kind == "cli", case.name
    assert sum(c.expect == "error" for c in cases) >= 300          # mostly wrong inputs


def test_every_command_and_option_is_attacked():
    argvs = [c.argv for c in hostile.cases() if c.kind == "cli"]
    missing = []
    for path, parser in _commands(cli._parser()):
        mine = [argv for argv in argvs if argv[:len(path)] == path]
        if not mine:
            missing.append(" ".join(path))
        for option in _options(parser):
            if not any(option in argv for argv in mine):
                missing.append(f"{' '.join(path)} {option}")
    assert not missing, f"no hostile case for: {', '.join(missing)}"


def test_the_public_api_is_attacked():
    groups = {c.group for c in hostile.cases() if c.kind == "api"}
    for api in ("quantize", "formats.get", "parse_accumulator", "matmul", "array", "trace",
                "replay", "schedule", "cost", "train"):
        assert f"api {api}" in groups, api


@pytest.mark.slow
def test_every_hostile_input_is_handled():
    """Every case of the catalogue: refused in one line (wrong inputs) or answered right (legal
    extremes), with no traceback, no hang and nothing left behind. HOSTILE_FILTER=SUBSTR runs
    only the cases whose name holds SUBSTR."""
    selected = [c for c in hostile.cases() if os.environ.get("HOSTILE_FILTER", "") in c.name]
    assert selected, "HOSTILE_FILTER matches no case"
    hostile.warm_up()
    outcomes = hostile.run_all(selected, jobs=2)
    bad = [o for o in outcomes if o.outcome != "clean"]
    counts = Counter(o.outcome for o in bad)
    lines = [f"{o.outcome:9}  {o.name}\n           {o.call}\n           -> {o.detail}"
             for o in bad]
    if bad:
        pytest.fail(f"{len(bad)} of {len(outcomes)} hostile inputs mishandled "
                    f"({', '.join(f'{k} {v}' for k, v in counts.most_common())}):\n"
                    + "\n".join(lines), pytrace=False)
