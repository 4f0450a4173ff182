"""The `fcn-keras` command line starts fast and quiet: help and argument errors never import TensorFlow,
and a command that runs keeps TensorFlow's start-up logs off stderr unless `--verbose` is given.

Run in fresh interpreters (subprocesses): the pytest process has imported TensorFlow already.
"""

import os
import subprocess
import sys

import pytest


def _env():
    # Without TF_CPP_MIN_LOG_LEVEL (conftest sets it): the CLI alone must keep the logs quiet.
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())  # fmt: skip


def _imported_after(*argv):
    """Run `python -m fcn_keras ARGV` and return which of tensorflow/keras it imported."""
    result = _run("-X", "importtime", "-m", "fcn_keras", *argv)
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    return sorted(m for m in ("tensorflow", "keras") if m in modules), result.returncode


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["data", "--help"],
                                  ["export", "--help"], ["serve", "--help"]])  # fmt: skip
def test_help_prints_usage_without_tensorflow_logs(argv):
    result = _run("-m", "fcn_keras", *argv)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: fcn-keras")
    assert result.stderr == ""


def test_help_and_argument_errors_do_not_import_tensorflow():
    for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["demo", "--help"],
                 ["predict", "--help"], ["export", "--help"],
                 ["serve", "--help"], ["serve"],
                 ["train"], ["train", "fcn8s", "--out", "x", "--optimizer", "rmsprop"]):  # fmt: skip
        imported, code = _imported_after(*argv)
        assert imported == [] and code == (0 if "--help" in argv else 2), (argv, imported, code)


@pytest.mark.slow
def test_a_plain_import_registers_the_layers_for_keras(tmp_path):
    # Outside the command line `import fcn_keras` loads everything, so a .keras file loads.
    code = ("import sys, fcn_keras, keras\n"
            "fcn_keras.FCN32s(num_classes=3, backbone_weights=None, fc_units=8).save(sys.argv[1])\n")
    assert _run("-c", code, str(tmp_path / "m.keras")).returncode == 0
    code = ("import sys, fcn_keras, keras\n"
            "print(type(keras.saving.load_model(sys.argv[1])).__name__)")
    result = _run("-c", code, str(tmp_path / "m.keras"))
    assert result.stdout.strip().splitlines()[-1] == "FCNModel", result.stderr[-2000:]


def test_help_lists_every_command():
    out = _run("-m", "fcn_keras", "--help").stdout
    for command in ("model", "data", "train", "evaluate", "demo", "export", "predict", "serve"):
        assert f"    {command} " in out, command


@pytest.mark.slow
def test_user_error_is_one_line_without_tensorflow_logs(tmp_path):
    # A command that runs imports TensorFlow; its start-up lines must not reach stderr.
    result = _run("-m", "fcn_keras", "train", "fcn32s", "--source", "camvid", "--data-dir",
                  str(tmp_path), "--source-arg", "image_size=64", "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "fcn-keras train: error: source 'camvid' does not take option(s) ['image_size']; it takes: data_dir"
    )


@pytest.mark.slow
def test_verbose_lets_tensorflow_logs_through(tmp_path):
    # With --verbose the CLI hides nothing: TF_CPP_MIN_LOG_LEVEL is 0 for TensorFlow.
    code = ("import os, sys; from fcn_keras import cli\n"
            "rc = cli.main(['--verbose', 'model', 'fcn32s', '--fc-units', '8', '--num-classes', '3', '--json'])\n"
            "print(rc, os.environ['TF_CPP_MIN_LOG_LEVEL'])")  # fmt: skip
    result = _run("-c", code)
    assert result.stdout.strip().splitlines()[-1] == "0 0"
    quiet = _run("-m", "fcn_keras", "model", "fcn32s", "--fc-units", "8", "--num-classes", "3", "--json")
    assert quiet.returncode == 0 and '"model": "fcn32s"' in quiet.stdout
    assert quiet.stderr == ""
