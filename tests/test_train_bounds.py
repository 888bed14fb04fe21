"""Training run files at their boundaries: values legal alone but not together are refused
where they enter, before any work starts, naming both fields. The capture's trace folder
against the output folder, the digits batch against the training set, the text task's
context against its validation text, the warm-up, schedule rules, ``exact`` epochs and the
capture's steps against the run's length, layer patterns against the model, and ``[train]``
method keys no variant takes. Each case goes through the command line (one line, exit 2,
nothing written) or the run file parser (a ConfigError naming the keys); the legal inputs
next to each boundary still parse."""

import os
from pathlib import Path

import pytest

pytest.importorskip("torch")

from hbfpsim.config import ConfigError  # noqa: E402
from hbfpsim.train import data  # noqa: E402
from hbfpsim.train import spec as train_spec  # noqa: E402
from helpers import rejected  # noqa: E402

TRAIN = """[train]
task = "digits"
variants = ["fp32"]
seeds = [0]
epochs = 1
out = "tout"
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Run in an empty folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path



def refused(table: dict, *words: str, variants: list | None = None) -> str:
    """``parse`` of ``[train]`` = ``table`` (and ``[[variant]]`` tables) raises a ConfigError
    naming the run file and holding ``words``."""
    with pytest.raises(ConfigError) as err:
        train_spec.parse({"train": table, "variant": variants or []}, source="run.toml")
    message = str(err.value)
    assert "run.toml" in message, message
    for word in words:
        assert word in message, (word, message)
    return message


def digits(**keys) -> dict:
    return {"task": "digits", "variants": ["fp32"], "epochs": 1, **keys}


def text(**keys) -> dict:
    return {"task": "text", "variants": ["fp32"], "epochs": 1, **keys}


# --- the capture's trace folder against the output folder ------------------------------------

@pytest.mark.parametrize("path,how", [("tout", "is the output folder"),
                                      ("tout/trace", "is inside the output folder"),
                                      (".", "holds the output folder"),
                                      ("./tout/../tout", "is the output folder")])
def test_a_capture_overlapping_the_output_folder_is_refused(here, capsys, path, how):
    (here / "t.toml").write_text(TRAIN + f'[train.capture]\npath = "{path}"\n')
    rejected(["train", "t.toml", "--quiet"], capsys, "[train.capture] path", "[train] out",
             how)
    assert sorted(p.name for p in here.iterdir()) == ["t.toml"]


def test_a_capture_overlapping_the_out_option_names_it(here, capsys):
    (here / "t.toml").write_text(TRAIN + '[train.capture]\npath = "elsewhere"\n')
    rejected(["train", "t.toml", "--out", "elsewhere/run", "--quiet"], capsys,
             "[train.capture] path", "--out", "holds the output folder")
    assert sorted(p.name for p in here.iterdir()) == ["t.toml"]


def test_paths_are_resolved_before_they_are_compared(here, capsys):
    (here / "real").mkdir()
    os.symlink(here / "real", here / "alias")
    (here / "t.toml").write_text(TRAIN.replace('"tout"', '"real/run"')
                                 + '[train.capture]\npath = "alias/run"\n')
    rejected(["train", "t.toml", "--quiet"], capsys, "[train.capture] path", "[train] out")
    assert sorted(p.name for p in here.iterdir()) == ["alias", "real", "t.toml"]
    assert not any((here / "real").iterdir())


def test_a_capture_beside_the_output_folder_parses(tmp_path):
    run = train_spec.parse({"train": digits(out=str(tmp_path / "out"),
                                            capture={"path": str(tmp_path / "out-trace")})})
    assert run.capture.path == tmp_path / "out-trace"


# --- the digits batch against the training set --------------------------------------------------

def test_a_batch_larger_than_the_digits_training_set_is_refused(here, capsys):
    (here / "t.toml").write_text(TRAIN + "batch = 4096\n")
    rejected(["train", "t.toml", "--quiet"], capsys, "batch: 4096", "training set",
             "1437 images")
    assert sorted(p.name for p in here.iterdir()) == ["t.toml"]
    refused(digits(batch=1438), "batch: 1438", "1437 images")
    assert train_spec.parse({"train": digits(batch=1437)}).settings["batch"] == 1437


def test_the_digits_training_set_size_is_the_loaded_split():
    pytest.importorskip("sklearn")
    x, y, vx, vy = data.digits(0)
    assert len(y) == data.DIGITS_TRAIN == 1437 and len(y) + len(vy) == data.DIGITS_IMAGES


# --- the text task's context against its validation text --------------------------------------

def test_a_context_longer_than_the_validation_text_is_refused(here, capsys):
    refused(text(context=1000, text_bytes=10000), "context: 1000", "text_bytes = 10000")
    run = train_spec.parse({"train": text(context=999, text_bytes=10000, width=8, heads=2)})
    assert run.settings["context"] == 999
    small = "width = 8\nheads = 2\ndepth = 1\nbatch = 2\nsteps_per_epoch = 1\n"
    (here / "t.toml").write_text(TRAIN.replace('"digits"', '"text"') + small
                                 + "context = 1024\ntext_bytes = 10000\n")
    rejected(["train", "t.toml", "--quiet"], capsys, "context: 1024", "text_bytes = 10000",
             "(1000, its last 10%)")
    assert sorted(p.name for p in here.iterdir()) == ["t.toml"]


def test_text_sizes_are_those_of_the_loaded_text():
    train, val, _ = data.stdlib_text(10_000)
    assert data.text_sizes(10_000) == (train.numel(), val.numel()) == (9000, 1000)


def test_more_validation_windows_than_the_text_holds_are_refused():
    refused(text(context=64, text_bytes=20000, val_windows=32), "val_windows: 32",
            "context 64", "text_bytes = 20000", "holds (31)")
    assert train_spec.parse({"train": text(context=64, text_bytes=20000,
                                           val_windows=31)}).settings["val_windows"] == 31
    # the default asks for at most 256: a shorter text evaluates the windows it holds
    assert train_spec.parse({"train": text(context=64, text_bytes=20000)})


# --- keys given twice: the TOML reader refuses a key defined in two places ----------------------

@pytest.mark.parametrize("body", [
    TRAIN + 'capture = {path = "a"}\n[train.capture]\nseed = 0\n',
    TRAIN + 'exact = {layers = ["*"]}\n[train.exact]\nphases = ["fwd"]\n',
    TRAIN + "batch = 8\nbatch = 16\n",
    TRAIN + '"batch" = 8\nbatch = 16\n',
])
def test_a_key_given_twice_is_refused(here, capsys, body):
    (here / "t.toml").write_text(body)
    rejected(["train", "t.toml", "--quiet"], capsys, "t.toml", "not valid TOML")
    assert sorted(p.name for p in here.iterdir()) == ["t.toml"]


# --- values against the run's length -----------------------------------------------------------

def test_a_warm_up_as_long_as_the_run_is_refused(here, capsys):
    # digits: 1437 // 32 = 44 steps per epoch; 2 epochs = 88 steps
    (here / "t.toml").write_text(TRAIN.replace("epochs = 1", "epochs = 2")
                                 + 'lr_schedule = "cosine"\nwarmup_steps = 88\n')
    rejected(["train", "t.toml", "--quiet"], capsys, "warmup_steps: 88", "epochs = 2",
             "44 steps per epoch", "batch = 32", "88 steps", "'cosine'")
    assert sorted(p.name for p in here.iterdir()) == ["t.toml"]
    assert train_spec.parse({"train": digits(epochs=2, warmup_steps=87)}).rate.warmup == 87
    refused(text(steps_per_epoch=10, epochs=3, warmup_steps=30), "warmup_steps: 30",
            "steps_per_epoch = 10", "epochs = 3")


def test_a_variant_s_own_warm_up_is_held_to_the_run(tmp_path):
    refused(digits(), "[[variant]] 1 (mine)", "warmup_steps: 500", "epochs = 1",
            variants=[{"name": "mine", "input": "hbfp8", "warmup_steps": 500}])


@pytest.mark.parametrize("rule,words", [
    ({"epochs": [3, 5]}, ["rule 1: epochs [3, 5] selects none", "epochs = 3: 0 to 2"]),
    ({"epochs": ["last-5", "last-4"]}, ["epochs ['last-5', 'last-4'] selects none"]),
    ({"epochs": ["last", 1]}, ["epochs ['last', 1] selects none"]),
    ({"steps": [500, 600]}, ["steps [500, 600] selects none", "0 to 131",
                             "epochs = 3 x 44 steps per epoch"]),
    ({"steps": ["100%", "last"]}, ["steps ['100%', 'last'] selects none"]),
    ({"epochs": [0, 0], "steps": [44, 60]}, ["steps [44, 60] selects none",
                                             "in epochs [0, 0]"]),
])
def test_a_rule_beyond_the_run_is_refused(rule, words):
    refused(digits(epochs=3), "[[variant]] 1 (mine)", "the rule would never apply", *words,
            variants=[{"name": "mine", "input": "hbfp4",
                       "rule": [{"input": "hbfp8", **rule}]}])


@pytest.mark.parametrize("rule", [{"epochs": [2, 100]}, {"epochs": ["last-9", "last"]},
                                  {"steps": [131, 5000]}, {"steps": ["99%", "last"]},
                                  {"epochs": [0, 0], "steps": [43, 60]}])
def test_a_rule_reaching_into_the_run_parses(rule):
    run = train_spec.parse({"train": digits(epochs=3), "variant": [
        {"name": "mine", "input": "hbfp4", "rule": [{"input": "hbfp8", **rule}]}]})
    assert len(run.variants[1].schedule.rules) == 1


def test_exact_epochs_beyond_the_run_are_refused():
    refused(digits(epochs=3, exact={"epochs": [3, 9]}), "exact epochs: [3, 9] selects none",
            "epochs = 3")
    refused(digits(epochs=3, exact={"epochs": [2, 1]}), "exact epochs: [2, 1] selects none")
    assert train_spec.parse({"train": digits(epochs=3, exact={"epochs": [2, 9]})}).exact


def test_capture_steps_beyond_an_epoch_are_refused(tmp_path):
    refused(digits(batch=1000, capture={"steps": 2, "path": str(tmp_path / "t")}),
            "capture steps: 2", "1 steps per epoch", "batch = 1000")
    refused(text(steps_per_epoch=5, capture={"steps": 6, "path": str(tmp_path / "t")}),
            "capture steps: 6", "steps_per_epoch = 5")
    run = train_spec.parse({"train": text(steps_per_epoch=5,
                                          capture={"steps": 5, "path": str(tmp_path / "t")})})
    assert run.capture.steps == 5


# --- method keys of [train] that no variant takes ----------------------------------------------

def test_a_train_method_key_no_variant_takes_is_refused():
    refused(digits(variants=["booster-cnn"], rounding="even"), "[train] rounding",
            "applies to no variant")
    alone = {"task": "digits", "epochs": 1}
    refused({**alone, "blocking": "gemm"}, "[train] blocking", "applies to no variant",
            variants=[{"name": "a", "input": "hbfp4", "blocking": "emulator"},
                      {"name": "b", "schedule": "booster-transformer"}])
    # one variant takes it: the others' own settings are documented overrides
    run = train_spec.parse({"train": digits(variants=["booster-cnn", "hbfp4"],
                                            rounding="stochastic")})
    assert [str(v.method.rounding) for v in run.variants][1] == "stochastic"
    run = train_spec.parse({"train": {**alone, "blocking": "emulator"}, "variant": [
        {"name": "a", "input": "hbfp4", "blocking": "gemm"}, {"name": "b", "input": "hbfp6"}]})
    assert [v.method.blocking for v in run.variants] == ["gemm", "emulator"]


# --- layer patterns against the model, before any run starts -----------------------------------

@pytest.mark.parametrize("extra,words", [
    ('exact = {layers = ["nope*"]}\n', ["[train] exact layers: 'nope*' matches no converted"]),
    ('[train.capture]\npath = "tr"\nlayers = ["nope*"]\n',
     ["[train] capture layers: 'nope*' matches no converted"]),
])
def test_layer_patterns_matching_no_layer_are_refused_before_training(here, capsys, extra,
                                                                       words):
    pytest.importorskip("sklearn")
    (here / "t.toml").write_text(TRAIN.replace('["fp32"]', '["fp32", "hbfp8"]') + extra)
    rejected(["train", "t.toml", "--quiet"], capsys, "t.toml", *words, "(the layers are 0, 2, 6)")
    assert sorted(p.name for p in here.iterdir()) == ["t.toml"]


def test_a_relative_capture_path_is_the_run_file_s(tmp_path, monkeypatch):
    """The capture path is relative to the run file's folder, the output folder to the
    working folder: the same text names different folders from elsewhere."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.toml").write_text(TRAIN + '[train.capture]\npath = "tout"\n')
    monkeypatch.chdir(tmp_path)
    run = train_spec.load(Path("sub/t.toml"))
    assert run.capture.path.resolve() == tmp_path / "sub" / "tout"
    with pytest.raises(ConfigError, match=r"\[train.capture\] path .* is the output folder"):
        train_spec.load(Path("sub/t.toml"), out="sub/tout")
