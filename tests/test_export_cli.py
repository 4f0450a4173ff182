"""`fcn-keras export --verify` and `fcn-keras predict`, end to end on a small model saved as .keras.

The data is a tiny CamVid-style folder written here (SegNet layout: train/,
trainannot/, val/, valannot/; raw label 11 is void), read through
`fcn_keras.load_dataset`, so the verification's labels carry the pipeline's
void id 255, not the raw 11.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import randomize_score_layers

NUM_CLASSES = 11


def _write_camvid(root, rng):
    """Two train and two val pairs of odd sizes; every label has void (11) pixels."""
    for split, sizes in (("train", ((40, 56), (36, 50))), ("val", ((40, 56), (37, 53)))):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for index, size in enumerate(sizes):
            name = f"{split}_{index}.png"
            Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(root / split / name)
            label = rng.integers(0, NUM_CLASSES + 1, size, dtype=np.uint8)  # 0..11, 11 = void
            label[:4] = 11
            Image.fromarray(label).save(root / f"{split}annot" / name)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import keras

    import fcn_keras

    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    _write_camvid(root / "camvid", rng)
    keras.utils.set_random_seed(0)
    model = randomize_score_layers(
        fcn_keras.FCN8s(num_classes=NUM_CLASSES, fc_units=32, backbone_weights=None))
    model.dataset_info = fcn_keras.dataset_info("camvid", data_dir=str(root / "camvid"))
    model.save(root / "small.keras")
    return root


@pytest.mark.slow
def test_export_verifies_on_camvid_val_with_void_255(workspace, capsys):
    import keras

    from fcn_keras.cli import main
    from fcn_keras.export import with_odd_crops
    from fcn_keras.metrics import confusion_matrix, scores_from_confusion

    out = workspace / "exports"
    rc = main(["export", "--model", str(workspace / "small.keras"), "--out", str(out),
               "--quantization", "float32", "--source", "camvid",
               "--data-dir", str(workspace / "camvid"), "--verify-split", "val",
               "--limit", "2", "--verify"])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert sorted(os.listdir(out)) == sorted([
        "fcn8s_savedmodel", "fcn8s_float32.tflite", "fcn8s_float32.tflite.json", "fcn8s.onnx",
        "verification.json", "verification.md"])  # fmt: skip
    with open(out / "verification.json") as f:
        report = json.load(f)
    assert report["passed"] and report["images"]["count"] == 4  # 2 val images + 2 odd crops
    assert report["images"]["ignore_label"] == 255  # the pipeline's void, from the model
    # The SavedModel's bfloat16 signature is run where the CPU has bfloat16 units, else named
    # in not_run: either way it is accounted for.
    assert {a["name"] for a in report["artifacts"]} | {n["name"] for n in report["not_run"]} == {
        "fcn8s_savedmodel", "fcn8s_float32.tflite", "fcn8s.onnx", "fcn8s_savedmodel:bfloat16"}  # fmt: skip
    assert all(a["miou"] is not None for a in report["artifacts"])
    assert "Verification: **PASSED**" in printed

    # Mean IU recomputed from the raw files: void 11 -> 255 and left out.
    model = keras.saving.load_model(workspace / "small.keras")
    images, labels = [], []
    for name in ("val_0.png", "val_1.png"):
        images.append(np.asarray(Image.open(workspace / "camvid" / "val" / name)))
        raw = np.asarray(Image.open(workspace / "camvid" / "valannot" / name)).astype(np.int32)
        assert (raw == 11).sum() > 0
        labels.append(np.where(raw == 11, 255, raw))
    images, labels = with_odd_crops(images, labels)
    matrix = sum(confusion_matrix(label, np.asarray(model(image[None]))[0].argmax(-1), NUM_CLASSES, 255)
                 for image, label in zip(images, labels))  # fmt: skip
    assert matrix.sum() == sum(int((label != 255).sum()) for label in labels)
    assert report["keras_miou"]["dynamic"] == pytest.approx(scores_from_confusion(matrix)["mean_iu"],
                                                            abs=1e-12)  # fmt: skip


@pytest.mark.slow
def test_int8_calibrates_on_train_never_on_the_verification_split(workspace, capsys):
    from fcn_keras.cli import main

    base = ["export", "--model", str(workspace / "small.keras"), "--formats", "tflite",
            "--quantization", "int8", "--source", "camvid", "--data-dir", str(workspace / "camvid")]  # fmt: skip
    rc = main(base + ["--out", str(workspace / "same"), "--verify", "--verify-split", "train"])
    assert rc == 2 and "--verify-split and --calibration-split are both 'train'" in capsys.readouterr().err
    assert not (workspace / "same").exists()
    out = workspace / "int8"
    rc = main(base + ["--out", str(out), "--calibration-limit", "2"])
    assert rc == 0
    with open(out / "fcn8s_int8.tflite.json") as f:
        meta = json.load(f)
    assert meta["quantization"] == "int8" and meta["dataset_info"]["name"] == "camvid"
    rc = main(["export", "--model", str(workspace / "small.keras"), "--out", str(workspace / "x"),
               "--formats", "tflite", "--quantization", "int8"])  # fmt: skip
    assert rc == 2 and "int8 needs real images to calibrate on" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_every_engine_with_the_model_palette_and_names(workspace, capsys):
    from fcn_keras.cli import main
    from fcn_keras.data.folders import CAMVID_PALETTE

    out = workspace / "exports"
    if not (out / "fcn8s.onnx").exists():
        pytest.skip("needs the artifacts of test_export_verifies_on_camvid_val_with_void_255")
    images = workspace / "camvid" / "val"
    predictions = workspace / "predictions"
    for engine, model in (("onnx", out / "fcn8s.onnx"), ("tflite", out / "fcn8s_float32.tflite"),
                          ("savedmodel", out / "fcn8s_savedmodel"), ("keras", workspace / "small.keras")):  # fmt: skip
        target = predictions / engine
        rc = main(["predict", str(images), "--engine", engine, "--model", str(model),
                   "--out", str(target), "--num-threads", "1", "--alpha", "0.4"])  # fmt: skip
        printed = capsys.readouterr().out
        assert rc == 0
        assert "colours from the model's palette" in printed
        assert any(name in printed for name in ("Sky", "Road", "Building", "Car"))
        assert sorted(os.listdir(target)) == sorted(
            f"val_{i}_{kind}.png" for i in (0, 1) for kind in ("mask", "overlay", "classes"))
        assert Image.open(target / "val_1_mask.png").size == (53, 37)
        colours = np.unique(np.asarray(Image.open(target / "val_0_mask.png")).reshape(-1, 3), axis=0)
        assert {tuple(c) for c in colours} <= {tuple(c) for c in CAMVID_PALETTE}
    # Every engine wrote the same class map (fp32 engines agree to rounding).
    maps = [np.asarray(Image.open(predictions / e / "val_0_classes.png")) for e in ("onnx", "tflite", "keras")]
    assert all(np.array_equal(maps[0], m) for m in maps[1:])
    assert maps[0].max() < NUM_CLASSES
    # --palette voc overrides the model's colours.
    rc = main(["predict", str(images / "val_0.png"), "--model", str(workspace / "small.keras"),
               "--out", str(predictions / "voc"), "--palette", "voc"])  # fmt: skip
    assert rc == 0 and "colours from the VOC palette" in capsys.readouterr().out


def test_predict_goes_on_past_bad_inputs(workspace, capsys):
    from fcn_keras.cli import main

    folder = workspace / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (33, 45, 3), dtype=np.uint8)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # corrupt PNG
    Image.fromarray(rng.integers(0, 256, (33, 45), dtype=np.uint8)).save(folder / "c.png")  # grayscale
    Image.fromarray(rng.integers(0, 2**16, (20, 20), dtype=np.uint16)).save(folder / "d.png")  # 16-bit
    model = str(workspace / "small.keras")
    out = workspace / "mixed_out"
    rc = main(["predict", str(folder), "--model", model, "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1
    assert sorted(os.listdir(out)) == sorted(
        f"{s}_{kind}.png" for s in ("a", "c") for kind in ("mask", "overlay", "classes"))
    assert captured.out.count("c.png: grayscale image converted to RGB") == 1
    assert "2 of 4 image(s) segmented" in captured.out
    failed = captured.err.split("2 image(s) failed:")[1]
    assert "b.png: cannot be decoded: not a recognised image format" in failed
    assert "d.png: 16-bit" in failed
    rc = main(["predict", str(folder), "--model", model, "--out", str(workspace / "fast"), "--fail-fast"])
    err = capsys.readouterr().err
    assert rc == 2 and "b.png" in err
    assert sorted(os.listdir(workspace / "fast")) == ["a_classes.png", "a_mask.png", "a_overlay.png"]


@pytest.mark.slow
def test_export_verifies_on_unlabelled_images(workspace, capsys):
    from fcn_keras.cli import main

    out = workspace / "unlabelled"
    rc = main(["export", "--model", str(workspace / "small.keras"), "--out", str(out), "--formats",
               "onnx", "--images", str(workspace / "camvid" / "val"), "--verify", "--name", "camvid"])  # fmt: skip
    assert rc == 0, capsys.readouterr().out
    with open(out / "verification.json") as f:
        report = json.load(f)
    assert report["passed"] and not report["images"]["labelled"] and report["images"]["count"] == 4
    assert [a["name"] for a in report["artifacts"]] == ["camvid.onnx"]
    assert report["artifacts"][0]["miou"] is None


def test_cli_errors(workspace, capsys):
    from fcn_keras.cli import main

    rc = main(["export", "--model", str(workspace / "small.keras"), "--out", str(workspace / "x"),
               "--formats", "onnx", "--verify"])  # fmt: skip
    assert rc == 2 and "--verify needs real images" in capsys.readouterr().err
    rc = main(["predict", str(workspace / "camvid" / "val" / "val_0.png"), "--model",
               str(workspace / "small.keras"), "--out", str(workspace / "p"), "--num-classes", "21"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "small.keras' was exported for 11 classes, but num_classes=21" in err
    rc = main(["predict", str(workspace / "missing.png"), "--model", str(workspace / "small.keras"),
               "--out", str(workspace / "p")])  # fmt: skip
    assert rc == 2 and "missing.png" in capsys.readouterr().err


def test_predict_names_inputs_with_colliding_stems_apart(workspace, capsys):
    from fcn_keras.cli import main

    folder = workspace / "collide"
    folder.mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (33, 45, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)).save(folder / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (21, 25, 3), dtype=np.uint8)).save(folder / "b.png")
    out = workspace / "collide_out"
    rc = main(["predict", str(folder), "--model", str(workspace / "small.keras"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    kinds = ("mask", "overlay", "classes")
    assert sorted(os.listdir(out)) == sorted(f"{base}_{kind}.png" for base in ("a.png", "a.jpg", "b")
                                             for kind in kinds)  # fmt: skip
    assert printed.count("share a file stem with another") == 1
    assert "2 input(s) share a file stem with another (a.jpg, a.png)" in printed
    # Each output is its own input's: sizes (W, H) of the two "a" images, neither overwritten.
    assert Image.open(out / "a.png_classes.png").size == (45, 33)
    assert Image.open(out / "a.jpg_classes.png").size == (41, 29)
    assert "3 of 3 image(s) segmented" in printed


def test_predict_records_any_per_image_failure_and_goes_on(workspace, monkeypatch, capsys):
    import tensorflow as tf

    from fcn_keras import export
    from fcn_keras.cli import main

    folder = workspace / "runtime_errors"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name, size in (("a.png", (33, 45)), ("b.png", (20, 30)), ("c.png", (25, 27))):
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(folder / name)
    out = workspace / "runtime_errors_out"
    (out / "c_mask.png").mkdir(parents=True)  # writing c's mask fails: a folder is in the way
    predict_classes = export.Predictor.predict_classes

    def failing_on_b(self, image):  # a runtime error such as a SavedModel raises for one input
        if image.shape[:2] == (20, 30):
            raise tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [1,20,30]")
        return predict_classes(self, image)

    monkeypatch.setattr(export.Predictor, "predict_classes", failing_on_b)
    rc = main(["predict", str(folder), "--model", str(workspace / "small.keras"), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "1 of 3 image(s) segmented" in captured.out
    failed = captured.err.split("2 image(s) failed:")[1]
    assert "b.png: InvalidArgumentError: Incompatible shapes: [1,20,30]" in failed
    assert "c.png: IsADirectoryError" in failed and "c_mask.png" in failed
    assert sorted(os.listdir(out)) == ["a_classes.png", "a_mask.png", "a_overlay.png", "c_mask.png"]
    rc = main(["predict", str(folder), "--model", str(workspace / "small.keras"),
               "--out", str(workspace / "runtime_fast"), "--fail-fast"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 2 and "b.png: InvalidArgumentError: Incompatible shapes" in captured.err
    assert "of 3 image(s) segmented" not in captured.out  # ended at b.png


def _synthetic_val_images(**options):
    from fcn_keras import load_dataset
    from fcn_keras.data.sources import resolve_source

    dataset = load_dataset(resolve_source("synthetic", **options), "val", batch_size=1,
                           augment=False, shuffle=False)  # fmt: skip
    return [np.asarray(image[0], np.uint8) for image, _ in dataset]


def test_export_source_arg_seed_is_the_source_seed(workspace, monkeypatch, capsys):
    from fcn_keras import export
    from fcn_keras.cli import main

    seen = {}

    def fake_export_all(model, out_dir, **kwargs):
        seen.update(kwargs)
        return {"artifacts": {}, "verification": None, "passed": None, "report_files": None}

    monkeypatch.setattr(export, "export_all", fake_export_all)
    base = ["export", "--model", str(workspace / "small.keras"), "--out", str(workspace / "seeded"),
            "--formats", "onnx", "--source", "synthetic", "--image-size", "32",
            "--source-arg", "num_examples=2", "--verify", "--limit", "2"]  # fmt: skip
    assert main(base + ["--source-arg", "seed=3"]) == 0
    seeded = seen["verify_images"]
    expected = _synthetic_val_images(image_size=32, num_examples=2, seed=3)
    unseeded = _synthetic_val_images(image_size=32, num_examples=2)
    assert len(seeded) == len(expected) == 2
    assert all(np.array_equal(a, b) for a, b in zip(seeded, expected))
    # seed=3 reached the source: other images than the default seed's.
    assert not any(np.array_equal(a, b) for a, b in zip(seeded, unseeded))
    assert main(base) == 0
    assert all(np.array_equal(a, b) for a, b in zip(seen["verify_images"], unseeded))


def test_export_images_or_report_without_verify_is_an_error(workspace, capsys):
    from fcn_keras.cli import main

    out = workspace / "not_verified"
    base = ["export", "--model", str(workspace / "small.keras"), "--out", str(out), "--formats", "onnx"]
    rc = main(base + ["--images", str(workspace / "camvid" / "val")])
    assert rc == 2 and "--images given without --verify" in capsys.readouterr().err
    rc = main(base + ["--images", str(workspace / "camvid" / "val"), "--report", str(out / "r")])
    assert rc == 2 and "--images and --report given without --verify" in capsys.readouterr().err
    assert not out.exists()
