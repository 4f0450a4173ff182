"""The `fcn-keras` parser: one module per subcommand, the library's choice lists, `train --at-once`.

Also the lazy `fcn_keras` package the command line relies on: its public
names load on first use, and `from fcn_keras import *` gives all of them.
"""

import importlib
import types

import pytest

import fcn_keras
from fcn_keras import choices
from fcn_keras.cli import COMMANDS, build_parser, main


def _choices_of(command, flag):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return next(a.choices for a in sub._actions if flag in a.option_strings)


def test_each_command_has_its_own_module_with_register():
    parser = build_parser()
    registered = parser._subparsers._group_actions[0].choices
    assert list(registered) == list(COMMANDS)
    for name in COMMANDS:
        module = importlib.import_module(f"fcn_keras.commands.{name}")
        assert callable(module.register), name
        assert registered[name].get_default("handler").__module__ == module.__name__, name


def test_source_arguments_are_the_shared_ones():
    # Same flags and help in every command that reads data: declared once in commands/sources.py.
    helps = {}
    for command in ("data", "train", "evaluate", "export"):
        sub = build_parser()._subparsers._group_actions[0].choices[command]
        helps[command] = {a.option_strings[0]: a.help for a in sub._actions
                          if a.option_strings and a.option_strings[0] in
                          ("--data-dir", "--image-size", "--source-arg")}  # fmt: skip
        assert len(helps[command]) == 3, command
    assert helps["data"] == helps["train"] == helps["evaluate"] == helps["export"]


def test_train_choices_come_from_the_library_lists():
    assert _choices_of("train", "--optimizer") == choices.OPTIMIZERS == ("sgd", "adam", "adamw")
    assert _choices_of("train", "--schedule") == choices.SCHEDULES
    assert _choices_of("train", "--loss") == choices.LOSSES
    assert _choices_of("train", "--strategy") == choices.STRATEGIES
    assert _choices_of("train", "--mixed-precision") == choices.PRECISIONS
    assert _choices_of("demo", "--mixed-precision") == choices.PRECISIONS
    assert "auto" in choices.PRECISIONS


def test_choice_lists_agree_with_the_modules_that_validate_them():
    import fcn_keras.distribute as distribute
    import fcn_keras.models as models
    import fcn_keras.training as training

    assert tuple(training.OPTIMIZERS) == choices.OPTIMIZERS
    assert tuple(training.SCHEDULES) == choices.SCHEDULES
    assert tuple(training.LOSSES) == choices.LOSSES
    assert dict(training.DEFAULT_LEARNING_RATES) == choices.DEFAULT_LEARNING_RATES
    assert tuple(distribute.PRECISIONS) == choices.PRECISIONS
    assert tuple(distribute.STRATEGIES) == choices.STRATEGIES
    assert tuple(models.VARIANTS) == choices.VARIANTS


def test_export_and_predict_choices_are_the_export_package_lists():
    from fcn_keras import export
    from fcn_keras.export import predictor

    # One list each, defined in fcn_keras.choices: the package re-exports the same objects.
    assert export.FORMATS is choices.FORMATS and export.QUANTIZATIONS is choices.QUANTIZATIONS
    assert predictor.ENGINES is choices.ENGINES
    assert _choices_of("predict", "--engine") == choices.ENGINES == ("onnx", "tflite", "savedmodel", "keras")
    args = build_parser().parse_args(["export", "--model", "m.keras", "--out", "o"])
    assert tuple(args.formats) == choices.DEFAULT_FORMATS and args.quantization == ["float32"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--model", "m.keras", "--out", "o", "--quantization", "int4"])


def test_global_verbose_does_not_clash_with_train_verbose():
    args = build_parser().parse_args(["--verbose", "train", "fcn8s", "--out", "x", "--verbose", "2"])
    assert args.show_logs is True and args.verbose == 2
    args = build_parser().parse_args(["train", "fcn8s", "--out", "x"])
    assert args.show_logs is False and args.verbose == 1 and args.at_once is False


def test_train_at_once_and_auto_precision_reach_the_library(monkeypatch, capsys):
    import fcn_keras.training

    seen = {}

    def fake_train(variant, source, **kwargs):
        seen.update(kwargs, variant=variant, source=source)
        history = types.SimpleNamespace(history={"loss": [0.5, 0.25]})
        return types.SimpleNamespace(name="fcn8s_atonce"), history

    monkeypatch.setattr(fcn_keras.training, "train", fake_train)
    code = main(["train", "fcn8s", "--at-once", "--mixed-precision", "auto", "--out", "o",
                 "--image-size", "32", "--source-arg", "num_examples=4"])  # fmt: skip
    assert code == 0
    assert seen["at_once"] is True and seen["mixed_precision"] == "auto"
    assert seen["source_kwargs"] == {"num_examples": 4, "image_size": 32}
    assert "trained fcn8s_atonce: loss 0.25" in capsys.readouterr().out
    assert main(["train", "fcn8s", "--out", "o"]) == 0 and seen["at_once"] is False


def test_public_names_and_star_import_give_them_all():
    assert fcn_keras.FCN8s.__module__ == "fcn_keras.models"
    assert fcn_keras.train.__module__ == "fcn_keras.training"
    namespace = {}
    exec("from fcn_keras import *", namespace)
    public = {k for k in namespace if not k.startswith("__")}
    assert public == set(fcn_keras.__all__) and len(public) == 38
    assert set(fcn_keras.__all__) <= set(dir(fcn_keras))
    with pytest.raises(AttributeError, match="no attribute 'FCN4s'"):
        fcn_keras.FCN4s  # noqa: B018
