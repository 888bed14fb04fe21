"""hbfpsim.format_schedule: rule matching, first rule wins, run_context, the Accuracy Booster preset.

Expected numerics are worked by hand from the rules' meaning (module docstring of
hbfpsim.format_schedule and Harma et al., arXiv 2211.10737): HBFP6 for the first and the last layer
and for the last epoch, HBFP4 elsewhere.
"""

from __future__ import annotations

import itertools

import pytest

from hbfpsim.numerics import Numerics
from hbfpsim.format_schedule import PHASES, PRESETS, Rule, RunContext, Schedule, run_context

FP32 = Numerics.create("fp32")
BF16 = Numerics.create("bf16")
H4 = Numerics.create("hbfp4", block_accumulator="fixed13")
H6 = Numerics.create("hbfp6", block_accumulator="fixed17")
H8 = Numerics.create("hbfp8", block_accumulator="fixed21")
WHERE = RunContext(first_layer="conv1", last_layer="fc", last_epoch=29)


def test_phase_names():
    assert PHASES == ("fwd", "bwd_data", "bwd_weight")


@pytest.mark.parametrize("pattern, layer, expected", [
    ("*", "anything", True),
    ("layer2.*", "layer2.conv1", True),
    ("layer2.*", "layer20.conv1", False),       # '.' is literal
    ("layer2.*", "Layer2.conv1", False),        # case-sensitive
    ("layer?.conv1", "layer3.conv1", True),
    ("layer?.conv1", "layer33.conv1", False),
    ("fc*", "fc", True),
    ("fc*", "head.fc", False),                  # a pattern matches the whole name
    ("[ab]*", "attn", True),
    ("[ab]*", "ffn", False),
    ("@first", "conv1", True),
    ("@first", "conv2", False),
    ("@last", "fc", True),
    ("@last", "conv1", False),
])
def test_rule_layer_patterns(pattern, layer, expected):
    rule = Rule(H6, layers=(pattern,))
    assert rule.matches(layer, "fwd", 0, WHERE) is expected


def test_rule_layer_list_is_any_of():
    rule = Rule(H6, layers=("@first", "layer4.*"))
    assert rule.matches("conv1", "fwd", 3, WHERE)
    assert rule.matches("layer4.1.conv2", "fwd", 3, WHERE)
    assert not rule.matches("layer3.1.conv2", "fwd", 3, WHERE)
    assert not rule.matches("fc", "fwd", 3, WHERE)


def test_first_last_unknown_match_nothing():
    rule = Rule(H6, layers=("@first", "@last"))
    nowhere = RunContext()
    for layer in ("conv1", "fc", "@first", "@last", ""):
        assert not rule.matches(layer, "fwd", 0, nowhere)


def test_rule_phases():
    rule = Rule(H6, phases=("bwd_weight", "bwd_data"))
    assert not rule.matches("x", "fwd", 0, WHERE)
    assert rule.matches("x", "bwd_data", 0, WHERE)
    assert rule.matches("x", "bwd_weight", 0, WHERE)
    default = Rule(H6)
    assert all(default.matches("x", p, 0, WHERE) for p in PHASES)


@pytest.mark.parametrize("epochs, matching", [
    ((None, None), set(range(30))),
    ((3, 5), {3, 4, 5}),                        # inclusive at both ends
    ((None, 2), {0, 1, 2}),
    ((27, None), {27, 28, 29}),
    (("last", "last"), {29}),
    ((28, "last"), {28, 29}),
    ((0, 0), {0}),
])
def test_rule_epochs(epochs, matching):
    rule = Rule(H6, epochs=epochs)
    assert {e for e in range(30) if rule.matches("x", "fwd", e, WHERE)} == matching


def test_last_epoch_follows_the_run_context():
    rule = Rule(H6, epochs=("last", "last"))
    assert rule.matches("x", "fwd", 89, RunContext(last_epoch=89))
    assert not rule.matches("x", "fwd", 29, RunContext(last_epoch=89))


@pytest.mark.parametrize("kwargs", [
    {"phases": ("forward",)},
    {"phases": ("fwd", "bwd")},
    {"epochs": ("x", 1)},
    {"epochs": (1,)},
    {"epochs": (1, 2, 3)},
    {"epochs": (-1, 2)},
    {"epochs": (True, 2)},
    {"epochs": (1.5, None)},
    {"epochs": ("first", "last")},
])
def test_rule_rejects_bad_phases_and_epochs(kwargs):
    with pytest.raises(ValueError):
        Rule(H6, **kwargs)


def test_first_matching_rule_wins():
    s = Schedule("mix", H4, (Rule(H8, layers=("fc",)),
                             Rule(H6, layers=("fc", "conv*")),
                             Rule(BF16, phases=("bwd_weight",))))
    assert s.numerics_for("fc", "bwd_weight", 0, WHERE) == H8      # rule 1 before 2 and 3
    assert s.numerics_for("conv2", "bwd_weight", 0, WHERE) == H6   # rule 2 before 3
    assert s.numerics_for("pool", "bwd_weight", 0, WHERE) == BF16
    assert s.numerics_for("pool", "fwd", 0, WHERE) == H4           # the default
    swapped = Schedule("mix", H4, (Rule(H6, layers=("fc", "conv*")), Rule(H8, layers=("fc",))))
    assert swapped.numerics_for("fc", "fwd", 0, WHERE) == H6


def test_fixed_schedule():
    s = Schedule.fixed(BF16)
    assert s.name == "bf16" and s.rules == ()
    assert s.numerics == (BF16,)
    for layer, phase, epoch in itertools.product(("a", "b"), PHASES, (0, 7)):
        assert s.numerics_for(layer, phase, epoch) == BF16
    assert Schedule.fixed(BF16, "mine").name == "mine"


def test_numerics_distinct_default_first():
    s = Schedule("s", H4, (Rule(H6, layers=("a",)), Rule(H4, layers=("b",)),
                           Rule(H6, phases=("fwd",)), Rule(FP32, epochs=(1, 1))))
    assert s.numerics == (H4, H6, FP32)


# --- run_context --------------------------------------------------------------------------------


def test_run_context_forward_order():
    pairs = [("conv1", "fwd"), ("conv2", "fwd"), ("fc", "fwd"),
             ("fc", "bwd_data"), ("fc", "bwd_weight"), ("conv2", "bwd_data"),
             ("conv2", "bwd_weight"), ("conv1", "bwd_weight"),
             ("conv1", "fwd"), ("conv2", "fwd"), ("fc", "fwd")]
    where = run_context(pairs, [0, 0, 0, 0, 0, 0, 0, 0, 5, 5, 5])
    assert where == RunContext("conv1", "fc", 5)
    # backward phases first in the list do not change which layers are first and last
    where = run_context([("fc", "bwd_weight"), ("head", "bwd_data")] + pairs[:3], [0] * 5)
    assert (where.first_layer, where.last_layer) == ("conv1", "fc")


def test_run_context_falls_back_to_any_phase():
    where = run_context([("fc", "bwd_weight"), ("mid", "bwd_data"), ("conv1", "bwd_weight")],
                     [2, 4, 3])
    assert where == RunContext("fc", "conv1", 4)


def test_run_context_last_epoch_given_overrides_seen():
    where = run_context([("a", "fwd"), ("b", "fwd")], [0, 15, 29], last_epoch=89)
    assert where.last_epoch == 89
    assert run_context([("a", "fwd")], [3, 1, 2]).last_epoch == 3


def test_run_context_empty():
    assert run_context([], []) == RunContext(None, None, None)


# --- the Accuracy Booster preset ----------------------------------------------------------------


def test_booster_preset_numerics():
    booster = PRESETS["booster"]
    assert booster.name == "booster"
    assert booster.default == H4
    assert booster.numerics == (H4, H6)
    assert str(booster.default.block_accumulator) == "fixed13"
    assert booster.numerics[1].input.name == "hbfp6@64"
    assert str(booster.numerics[1].block_accumulator) == "fixed17"


def test_booster_on_three_layers_thirty_epochs():
    """conv1 -> conv2 -> fc, 30 epochs: HBFP6 for conv1 and fc (every phase, every epoch) and
    for every GEMM of epoch 29; the rest (conv2, epochs 0-28) is HBFP4."""
    layers = ("conv1", "conv2", "fc")
    order = ([(layer, "fwd") for layer in layers]
             + [("fc", "bwd_data"), ("fc", "bwd_weight"), ("conv2", "bwd_data"),
                ("conv2", "bwd_weight"), ("conv1", "bwd_weight")])
    where = run_context(order, range(30), last_epoch=29)
    assert where == RunContext("conv1", "fc", 29)
    booster = PRESETS["booster"]
    six = set()
    for layer, phase, epoch in itertools.product(layers, PHASES, range(30)):
        got = booster.numerics_for(layer, phase, epoch, where)
        assert got in (H4, H6)
        if got == H6:
            six.add((layer, phase, epoch))
    expected = ({(layer, phase, epoch) for layer in ("conv1", "fc") for phase in PHASES
                 for epoch in range(30)}
                | {("conv2", phase, 29) for phase in PHASES})
    assert six == expected
    assert len(six) == 2 * 3 * 30 + 3
    assert booster.numerics_for("conv2", "fwd", 0, where).input.name == "hbfp4@64"


def test_last_epoch_unknown_does_not_match_every_epoch():
    rule = Rule(H6, epochs=("last", "last"))
    try:
        matched = [e for e in range(30) if rule.matches("conv2", "fwd", e, RunContext())]
        got = PRESETS["booster"].numerics_for("conv2", "fwd", 0)
    except ValueError:
        return
    assert matched == []
    assert got == H4
