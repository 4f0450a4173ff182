"""The package's one JSON writer (`fcn_keras.files.write_json`): atomic, and used everywhere."""

import ast
import json
import os
import pathlib

import pytest

from fcn_keras.files import write_json

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_write_json_writes_indented_json_with_a_final_newline(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json(str(path), {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert json.loads(text) == {"b": 1, "a": [1, 2]} and text.endswith("\n")
    assert list(json.loads(text)) == ["b", "a"]  # insertion order by default
    write_json(str(path), {"b": 1, "a": 2}, sort_keys=True)
    assert list(json.loads(path.read_text())) == ["a", "b"]
    assert os.listdir(tmp_path / "sub") == ["a.json"]  # no temporary left behind


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    write_json(str(path), {"epochs": 3})
    with pytest.raises(TypeError):
        write_json(str(path), {"epochs": object()})  # fails half-way through the dump
    assert json.loads(path.read_text()) == {"epochs": 3}
    assert os.listdir(tmp_path) == ["a.json"]


def _imports(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_there_is_one_json_writer_and_the_crf_does_not_import_training():
    defining = [p.relative_to(REPO).as_posix()
                for folder in ("fcn_keras", "export", "bench") for p in (REPO / folder).rglob("*.py")
                if "def write_json(" in p.read_text()]  # fmt: skip
    assert defining == ["fcn_keras/files.py"]
    assert not any(name.startswith("fcn_keras.training") for name in _imports(REPO / "fcn_keras" / "crf.py"))
    assert "fcn_keras.files.write_json" in _imports(REPO / "export" / "_artifacts.py")
