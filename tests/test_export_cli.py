"""`fcn-keras export --verify` and `fcn-keras predict`, end to end on a small model saved as .keras."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import randomize_score_layers


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import keras

    import fcn_keras

    root = tmp_path_factory.mktemp("cli")
    keras.utils.set_random_seed(0)
    model = randomize_score_layers(fcn_keras.FCN8s(num_classes=5, fc_units=32, backbone_weights=None))
    model.save(root / "small.keras")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for name, size in (("a.png", (40, 56)), ("b.png", (37, 53))):
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(root / "images" / name)
        Image.fromarray(rng.integers(0, 5, size, dtype=np.uint8)).save(root / "labels" / name)
    return root


def test_export_verify_then_predict(workspace, capsys):
    from fcn_keras.cli import main

    out = workspace / "exports"
    rc = main(["export", "--model", str(workspace / "small.keras"), "--out", str(out),
               "--quantization", "float32", "--images", str(workspace / "images"),
               "--labels", str(workspace / "labels"), "--verify"])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert sorted(os.listdir(out)) == sorted([
        "savedmodel", "model_float32.tflite", "model_float32.tflite.json", "model.onnx",
        "verification.json", "verification.md"])  # fmt: skip
    with open(out / "verification.json") as f:
        report = json.load(f)
    assert report["passed"] and report["images"]["count"] == 4  # 2 images + 2 odd crops
    assert {a["name"] for a in report["artifacts"]} == {
        "savedmodel", "model_float32.tflite", "model.onnx"}  # fmt: skip
    assert all(a["miou"] is not None for a in report["artifacts"])
    assert "Verification: **PASSED**" in printed

    predictions = workspace / "predictions"
    for engine, model in (("onnx", out / "model.onnx"), ("tflite", out / "model_float32.tflite"),
                          ("savedmodel", out / "savedmodel"), ("keras", workspace / "small.keras")):  # fmt: skip
        target = predictions / engine
        rc = main(["predict", str(workspace / "images"), "--engine", engine, "--model", str(model),
                   "--out", str(target), "--num-threads", "1", "--alpha", "0.4"])  # fmt: skip
        assert rc == 0
        assert sorted(os.listdir(target)) == sorted(
            f"{s}_{kind}.png" for s in ("a", "b") for kind in ("mask", "overlay", "classes"))
        assert Image.open(target / "b_mask.png").size == (53, 37)
    # Every engine wrote the same class map (fp32 engines agree to rounding).
    maps = [np.asarray(Image.open(predictions / e / "a_classes.png")) for e in ("onnx", "tflite", "keras")]
    assert all(np.array_equal(maps[0], m) for m in maps[1:])
    assert maps[0].max() < 5


def test_cli_errors(workspace, capsys):
    from fcn_keras.cli import main

    rc = main(["export", "--model", str(workspace / "small.keras"), "--out", str(workspace / "x"),
               "--formats", "onnx", "--verify"])  # fmt: skip
    assert rc == 2 and "need real images" in capsys.readouterr().err
    rc = main(["predict", str(workspace / "images" / "a.png"), "--model", str(workspace / "small.keras"),
               "--out", str(workspace / "p"), "--num-classes", "21"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "small.keras' was exported for 5 classes, but num_classes=21" in err
    rc = main(["predict", str(workspace / "missing.png"), "--model", str(workspace / "small.keras"),
               "--out", str(workspace / "p")])  # fmt: skip
    assert rc == 2 and "missing.png" in capsys.readouterr().err
