"""The benchmark scripts are drivers: they import only the package and bench/_common.py.

No script imports another; the shared-data path is defined once (in
`_common.SHARED`, from `$FCN_KERAS_SHARED` or `../shared`); the CRF benchmarks
write CRF settings beside a model only when told (`--save-settings`) and read
them only from a named file (`--crf-settings`). No TensorFlow model is built
here: seconds.
"""

import ast
import importlib
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.name != "_common.py")


def _imported_modules(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


# `torch_fcn.py` is the PyTorch reference network `latency.py` times (torch is a benchmark-only
# dependency the package never imports): a module with a self-check, not a benchmark.
REFERENCE_MODULES = {"torch_fcn"}


def test_scripts_import_no_other_script():
    scripts = {p.stem for p in SCRIPTS} - REFERENCE_MODULES
    for path in SCRIPTS:
        assert not (_imported_modules(path) & scripts), f"{path.name} imports {_imported_modules(path) & scripts}"


def test_the_shared_data_path_is_defined_once_and_honours_the_environment(monkeypatch, tmp_path):
    for path in SCRIPTS:
        text = path.read_text()
        assert '"shared"' not in text and "'shared'" not in text, f"{path.name} defines its own shared path"
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("FCN_KERAS_SHARED", str(tmp_path))
    import _common

    try:
        _common = importlib.reload(_common)
        assert _common.SHARED == str(tmp_path)
        assert _common.CAMVID_DIR == os.path.join(str(tmp_path), "data", "camvid")
        monkeypatch.delenv("FCN_KERAS_SHARED")
        _common = importlib.reload(_common)
        assert _common.SHARED == os.path.join(str(REPO.parent), "shared")
    finally:
        monkeypatch.delenv("FCN_KERAS_SHARED", raising=False)
        importlib.reload(_common)


def test_crf_benchmarks_write_and_read_settings_only_where_told(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import crf_camvid
    import crf_joint_camvid

    model = tmp_path / "final.keras"
    model.write_bytes(b"")
    data = tmp_path / "camvid"
    data.mkdir()
    common = ["--model", str(model), "--data-dir", str(data), "--out", str(tmp_path / "out")]
    args = crf_camvid._parse_args(common)
    assert args.save_settings is None
    args = crf_camvid._parse_args(common + ["--save-settings", str(tmp_path / "m.crf.json")])
    assert args.save_settings == str(tmp_path / "m.crf.json")
    with pytest.raises(SystemExit):
        crf_camvid._parse_args(common + ["--save-settings", str(tmp_path / "m.txt")])
    assert "expected a .json file" in capsys.readouterr().err
    # The joint benchmark no longer looks beside the model: the settings file is named.
    (tmp_path / "final.keras.crf.json").write_text("{}")
    with pytest.raises(SystemExit):
        crf_joint_camvid._parse_args(common)
    assert "--crf-settings" in capsys.readouterr().err
    assert crf_joint_camvid._parse_args(common + ["--crf-settings", str(tmp_path / "final.keras.crf.json")])


def test_shared_argument_types_and_per_class_table(monkeypatch, tmp_path):
    import argparse

    monkeypatch.syspath_prepend(str(BENCH))
    import _common

    assert _common.positive_int("3") == 3
    for text in ("0", "-2", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
            _common.positive_int(text)
    model = tmp_path / "m.keras"
    model.write_bytes(b"")
    assert _common.named_model(f"fcn8s={model}") == ("fcn8s", str(model))
    parser = argparse.ArgumentParser()
    _common.add_figure_arguments(parser)
    args = parser.parse_args(["--json", str(tmp_path / "f.json")])
    assert args.json == str(tmp_path / "f.json") and args.markdown is None
    lines = _common.per_class_iou_table("Per-class IoU (test):", ["Model", "f"],
                                        [(["fcn8s", 2], {"Sky": 0.9, "Road": None}),
                                         (["fcn32s", 1], {"Sky": 0.25, "Road": 0.5})])  # fmt: skip
    assert lines == ["", "Per-class IoU (test):", "", "| Model | f | Sky | Road |",
                     "| --- | --- | ---: | ---: |", "| fcn8s | 2 | 90.00 | n/a |",
                     "| fcn32s | 1 | 25.00 | 50.00 |"]  # fmt: skip
