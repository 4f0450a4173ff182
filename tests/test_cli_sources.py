"""The data-source registry: one base class below, the registry above, and options checked by name.

`resolve_source` checks a source's options against its constructor (and its
base classes' when it passes `**kwargs` on), through the library and the CLI.
"""

import ast
import inspect
from pathlib import Path

import pytest

from fcn_keras.cli import main
from fcn_keras.data import base, sources
from fcn_keras.data.sources import SOURCE_NAMES, resolve_source, source_class, source_options

DATA_DIR = Path(base.__file__).parent


def test_base_module_imports_nothing_from_the_package_and_sources_import_the_base():
    tree = ast.parse(Path(base.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert imported == ["abc"]
    for name in ("synthetic", "files", "folders", "voc", "tfds_source"):
        text = (DATA_DIR / f"{name}.py").read_text()
        assert "fcn_keras.data.sources" not in text, name  # no module imports the registry back
    assert sources.Source is base.Source  # still importable from the registry


@pytest.mark.parametrize("name", [n.replace("NAME", "some_set") for n in SOURCE_NAMES])
def test_every_registered_source_is_a_source_with_listed_options(name):
    cls = source_class(name)
    assert issubclass(cls, base.Source)
    options = source_options(name)
    assert options and "ignore_label" in options
    # Every listed option is a keyword of the class's own or an inherited constructor.
    keywords = {p for klass in cls.__mro__ if "__init__" in vars(klass)
                for p in inspect.signature(klass.__init__).parameters}  # fmt: skip
    assert set(options) <= keywords


def test_options_a_source_fills_itself_are_not_offered():
    assert "num_classes" not in source_options("camvid") and "name" not in source_options("camvid")
    assert "num_classes" in source_options("folders") and "num_classes" in source_options("voc")
    assert source_options("synthetic") == ("image_size", "num_examples", "seed", "ignore_label")


@pytest.mark.parametrize("name, kwargs, refused", [
    ("camvid", {"data_dir": ".", "image_size": 64}, ["image_size"]),
    ("camvid", {"data_dir": ".", "num_classes": 12}, ["num_classes"]),
    ("synthetic", {"data_dir": "x", "colour": 1}, ["colour", "data_dir"]),
    ("folders", {"num_classes": 2, "data_dir": ".", "image_sise": 3}, ["image_sise"]),
])  # fmt: skip
def test_an_option_the_source_does_not_take_is_named(name, kwargs, refused):
    with pytest.raises(ValueError) as e:
        resolve_source(name, **kwargs)
    message = str(e.value)
    assert message.startswith(f"source {name!r} does not take option(s) {refused}; it takes: ")
    assert message.endswith(", ".join(source_options(name)) + ".")


def test_accepted_options_still_build_the_source(tmp_path):
    src = resolve_source("camvid", data_dir=str(tmp_path), ignore_label=255, check_values=False)
    assert src.info().num_classes == 11 and src.info().name == "camvid"
    assert resolve_source("synthetic", image_size=32, num_examples=3).num_examples("val") == 3
    with pytest.raises(ValueError, match="unknown data source 'camvids'"):
        resolve_source("camvids")


def test_cli_refuses_an_option_with_one_line_and_exit_code_2(tmp_path, capsys):
    code = main(["data", "camvid", "--data-dir", str(tmp_path), "--image-size", "64"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("fcn-keras data: error: source 'camvid' does not take option(s) "
                             "['image_size']; it takes: data_dir, ")  # fmt: skip
    assert main(["train", "fcn32s", "--source", "synthetic", "--source-arg", "data_dir=x",
                 "--out", str(tmp_path / "run")]) == 2  # fmt: skip
    assert "source 'synthetic' does not take option(s) ['data_dir']" in capsys.readouterr().err
