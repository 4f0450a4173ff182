"""Published figures name no folder of the machine that measured them.

`fcn_keras.results.figures_only` (the results recipe's `--json-copy`) strips
or reduces every path; `bench/_common.write_figures` (every benchmark's
`--json`) refuses a result naming one; the committed `docs/results/*.json`
hold none. No TensorFlow model is built here: seconds.
"""

import glob
import json
import os

import pytest

from fcn_keras.results import figures_only, is_machine_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")


def _strings(value):
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def _results(data_dir):
    report = {"mean_iu": 0.5, "trimap_mean_iu": {"2": 0.3},
              "evaluation_settings": {"source": "camvid", "source_kwargs": {"data_dir": data_dir,
                                                                          "image_size": 32},
                                      "split": "val", "scale": 1.0}}  # fmt: skip
    return {"settings": {"out": "/tmp/runs", "data_dir": data_dir, "json_copy": "docs/x.json",
                         "backbone_weights": "/opt/weights/vgg16.weights.h5", "seed": 0,
                         "note": "~/elsewhere/model.keras"},
            "host": {"cpu": "Some CPU", "cpu_count": 2},
            "rows": {"fcn8s": {"epochs": 1, "init_from": "/tmp/runs/fcn16s/final.keras",
                               "files": {"model": "/tmp/runs/fcn8s/final.keras"},
                               "val": report, "test": report}}}  # fmt: skip


@pytest.mark.parametrize("data_dir", ["/work/shared/data/camvid", "C:\\data\\camvid"])
def test_figures_only_writes_no_machine_path_and_keeps_every_figure(data_dir):
    results = _results(data_dir)
    published = figures_only(results)
    assert not any(is_machine_path(s) for s in _strings(published))
    assert not any(data_dir in s or "/tmp" in s for s in _strings(published))
    row = published["rows"]["fcn8s"]
    assert row["val"]["evaluation_settings"]["source_kwargs"] == {"image_size": 32}
    assert row["val"]["mean_iu"] == 0.5 and row["test"]["trimap_mean_iu"] == {"2": 0.3}
    assert published["settings"]["backbone_weights"] == "vgg16.weights.h5"
    assert published["settings"]["note"] == "model.keras" and published["settings"]["seed"] == 0
    assert "files" not in row and "init_from" not in row
    assert results["rows"]["fcn8s"]["val"]["evaluation_settings"]["source_kwargs"]["data_dir"] == data_dir


def test_is_machine_path():
    assert is_machine_path("/work/x") and is_machine_path("~/x") and is_machine_path("D:/x")
    assert not any(is_machine_path(v) for v in ("../shared/data", "camvid", "", 3, None, "a:b"))


def test_write_figures_refuses_a_machine_path_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(BENCH)
    from _common import write_figures

    target = tmp_path / "figures.json"
    with pytest.raises(ValueError, match=r"\['model'\]\['file'\] = '/work/runs/final.keras'"):
        write_figures({"model": {"file": "/work/runs/final.keras"}}, "| x |\n", str(target))
    assert not target.exists()
    write_figures({"model": {"file": "final.keras"}}, "| x |\n", str(target), str(tmp_path / "f.md"))
    assert json.loads(target.read_text()) == {"model": {"file": "final.keras"}}
    assert (tmp_path / "f.md").read_text() == "| x |\n"


def test_committed_figures_name_no_machine_path():
    files = sorted(glob.glob(os.path.join(REPO, "docs", "results", "*.json")))
    assert files
    for path in files:
        with open(path) as f:
            found = [s for s in _strings(json.load(f)) if is_machine_path(s)]
        assert not found, f"{os.path.relpath(path, REPO)} names {found[:3]}"
