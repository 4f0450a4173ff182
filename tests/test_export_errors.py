"""Bad input to the exporters, the Predictor and verify; atomic writes after forced failures.

Every error must name the file (or input) and the values received and
expected. Atomicity: a failing export leaves no half-written artifact, no
temporary file, and an earlier artifact at the target path untouched.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_close, randomize_score_layers


@pytest.fixture(scope="module")
def model():
    import fcn_keras

    keras.utils.set_random_seed(0)
    return randomize_score_layers(fcn_keras.FCN8s(num_classes=5, fc_units=32, backbone_weights=None))


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    from fcn_keras import export

    return export.export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")


@keras.saving.register_keras_serializable(package="fcn_keras_tests")
class Erfinv(keras.layers.Layer):
    """An op with no TFLite builtin (would need Flex)."""

    def call(self, x):
        return tf.math.erfinv(tf.clip_by_value(x / 256.0, -0.9, 0.9))


def _flex_model():
    image = keras.Input((None, None, 3), name="image")
    x = Erfinv()(keras.layers.Rescaling(1.0)(image))
    logits = keras.layers.Conv2D(4, 1, name="score_fr")(x)
    return keras.Model(image, logits, name="needs_flex")


def _dir_listing(path):
    return sorted(os.listdir(path))


def test_flex_op_fails_conversion_clearly_and_atomically(tmp_path):
    from fcn_keras import export

    target = tmp_path / "model.tflite"
    target.write_bytes(b"previous artifact")
    with pytest.raises(ValueError, match=r"needs_flex.*Erfinv.*builtin"):
        export.export_tflite(_flex_model(), target)
    assert target.read_bytes() == b"previous artifact"  # untouched
    assert _dir_listing(tmp_path) == ["model.tflite"]  # no temp file, no sidecar left behind


def test_onnx_write_failure_leaves_nothing(model, tmp_path, monkeypatch):
    import onnx

    from fcn_keras import export

    def failing_save(proto, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(proto.SerializeToString()[:1000])  # half-written
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(onnx, "save_model", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export.export_onnx(model, tmp_path / "model.onnx")
    assert _dir_listing(tmp_path) == []


def test_savedmodel_failure_keeps_previous_version(model, tmp_path, monkeypatch):
    from fcn_keras import export
    import fcn_keras.export.savedmodel as savedmodel

    target = export.export_savedmodel(model, tmp_path / "sm")
    before = _dir_listing(target)

    def failing_write(model, path, **kwargs):
        os.makedirs(os.path.join(path, "variables"))
        open(os.path.join(path, "saved_model.pb"), "wb").close()
        raise RuntimeError("interrupted (simulated)")

    monkeypatch.setattr(savedmodel, "write_savedmodel", failing_write)
    with pytest.raises(RuntimeError, match="interrupted"):
        export.export_savedmodel(model, target)
    assert _dir_listing(target) == before and os.path.getsize(os.path.join(target, "saved_model.pb")) > 0
    assert _dir_listing(tmp_path) == ["sm"]


def test_missing_and_corrupt_artifacts(tmp_path):
    from fcn_keras import export

    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        export.Predictor(tmp_path / "nothing.onnx")
    for name in ("broken.onnx", "broken.tflite"):
        (tmp_path / name).write_bytes(b"\x00 not a model \xff" * 10)
        with pytest.raises(ValueError, match=name):
            export.Predictor(tmp_path / name)
    broken_dir = tmp_path / "broken_savedmodel"
    broken_dir.mkdir()
    (broken_dir / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="broken_savedmodel"):
        export.Predictor(broken_dir)
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot tell the engine of .*x.bin"):
        export.Predictor(tmp_path / "x.bin")


def test_wrong_rank_channels_and_values(onnx_path):
    from fcn_keras import export

    predictor = export.Predictor(onnx_path)
    with pytest.raises(ValueError, match=r"rank 2 with shape \(32, 32\)"):
        predictor.predict(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"3 channels.*\(1, 32, 32, 4\) with 4 channels"):
        predictor.predict(np.zeros((1, 32, 32, 4), np.uint8))
    image = np.full((32, 32, 3), 300.0)
    image[0, 0, 0] = -1.0
    with pytest.raises(ValueError, match=r"\[0, 255\].*\[-1, 300\] \(dtype float64\)"):
        predictor.predict(image)
    with pytest.raises(ValueError, match="rank 5"):
        predictor.predict(np.zeros((1, 1, 32, 32, 3), np.uint8))


def test_class_count_mismatch(model, onnx_path, tmp_path):
    from fcn_keras import export
    import fcn_keras

    with pytest.raises(ValueError, match=r"model.onnx' was exported for 5 classes, but num_classes=21"):
        export.Predictor(onnx_path, num_classes=21)
    images = [np.zeros((32, 32, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"num_classes=7 given.*outputs 5 classes"):
        export.verify(model, {"onnx": onnx_path}, images, num_classes=7)
    other = fcn_keras.FCN32s(num_classes=3, fc_units=8, backbone_weights=None)
    other_path = export.export_onnx(other, tmp_path / "three_classes.onnx")
    with pytest.raises(ValueError, match=r"three_classes.onnx.*3 classes.*expect 5"):
        export.verify(model, {"onnx": onnx_path, "other": other_path}, images)


def test_bad_export_arguments(model, tmp_path):
    from fcn_keras import export

    with pytest.raises(ValueError, match=r"opset must be an integer in \[13, 18\].*19"):
        export.export_onnx(model, tmp_path / "m.onnx", opset=19)
    with pytest.raises(ValueError, match="quantization must be one of.*'int4'"):
        export.export_tflite(model, tmp_path / "m.tflite", quantization="int4")
    with pytest.raises(ValueError, match="int8 export needs representative_images"):
        export.export_tflite(model, tmp_path / "m.tflite", quantization="int8")
    with pytest.raises(ValueError, match=r"input_size must be \(height, width\).*\(0, 3\)"):
        export.export_tflite(model, tmp_path / "m.tflite", input_size=(0, 3))
    with pytest.raises(ValueError, match="must end with '.tflite'"):
        export.export_tflite(model, tmp_path / "m.lite")
    with pytest.raises(ValueError, match="version must be a positive integer"):
        export.export_savedmodel(model, tmp_path / "sm", version=0)
    assert _dir_listing(tmp_path) == []


def test_onnx_opset_13_with_external_data_runs(model, tmp_path):
    import onnx

    from fcn_keras import export

    path = export.export_onnx(model, tmp_path / "opset13.onnx", opset=13, external_data=True)
    assert _dir_listing(tmp_path) == ["opset13.onnx", "opset13.onnx.data"]
    assert os.path.getsize(path) < 1e6 < os.path.getsize(path + ".data")  # weights stored outside
    assert {op.domain: op.version for op in onnx.load(path).opset_import}[""] == 13
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    logits = export.Predictor(path).predict(image)
    assert_close(logits, np.asarray(model(image[None]))[0], 1e-4)  # onnxruntime vs TensorFlow kernels


def test_export_all_refuses_calibrating_on_verification_images(model, tmp_path):
    from fcn_keras import export

    rng = np.random.default_rng(0)
    val = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(3)]
    train = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(2)]
    with pytest.raises(ValueError, match=r"1 of 3 int8 calibration images are also verification"):
        export.export_all(model, tmp_path / "out", formats=("tflite",), quantizations=("int8",),
                          verify_images=val, calibration_images=train + [val[1].copy()])  # fmt: skip
    with pytest.raises(ValueError, match=r"formats must be a non-empty subset.*'tf'"):
        export.export_all(model, tmp_path / "out", formats=("tf",))
    with pytest.raises(ValueError, match=r"quantizations must be.*'int4'"):
        export.export_all(model, tmp_path / "out", quantizations=("int4",))
    assert _dir_listing(tmp_path) == []  # checked before anything is written


def test_export_all_checks_int8_and_labels_before_writing(model, tmp_path):
    from fcn_keras import export

    # int8 without calibration images: refused up front, before SavedModel and float32 TFLite.
    with pytest.raises(ValueError, match=r"'int8' needs calibration_images.*received none"):
        export.export_all(model, tmp_path / "out", quantizations=("float32", "int8"))
    with pytest.raises(ValueError, match="calibration_images holds no image"):
        export.export_all(model, tmp_path / "out", formats=("tflite",), quantizations=("int8",),
                          calibration_images=[])  # fmt: skip
    masks = [np.zeros((32, 40), np.uint8)] * 2
    with pytest.raises(ValueError, match=r"verify_labels holds 2 mask\(s\) but verify_images is None"):
        export.export_all(model, tmp_path / "out", formats=("onnx",), verify_labels=masks)
    with pytest.raises(ValueError, match=r"verify_labels holds 2 mask\(s\) for 3 verify_images"):
        export.export_all(model, tmp_path / "out", formats=("onnx",), verify_labels=masks,
                          verify_images=[np.zeros((32, 40, 3), np.uint8)] * 3)  # fmt: skip
    assert _dir_listing(tmp_path) == []


def test_with_odd_crops_adds_two_odd_sized_crops():
    from fcn_keras import export

    images = [np.arange(40 * 56 * 3, dtype=np.uint32).reshape(40, 56, 3).astype(np.uint8),
              np.ones((37, 53, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)]  # fmt: skip
    labels = [np.arange(40 * 56).reshape(40, 56) % 7, np.ones((37, 53), int), np.zeros((32, 32), int)]
    out_images, out_labels = export.with_odd_crops(images, labels)
    # odd(3H/4) x odd(2W/3): 40x56 -> 31x37, 37x53 -> 27x35; the inputs are kept, in order.
    assert [i.shape[:2] for i in out_images] == [(40, 56), (37, 53), (32, 32), (31, 37), (27, 35)]
    assert [l.shape for l in out_labels] == [i.shape[:2] for i in out_images]
    np.testing.assert_array_equal(out_images[3], images[0][:31, :37])
    np.testing.assert_array_equal(out_labels[3], labels[0][:31, :37])
    assert len(images) == 3 and export.with_odd_crops(images[:1])[1] is None


def test_artifact_names_are_one_scheme():
    from fcn_keras import export

    assert list(export.artifact_names("fcn8s", quantizations=("float32", "int8"), input_size=(48, 64))) == [
        "fcn8s_savedmodel", "fcn8s_float32_48x64.tflite", "fcn8s_int8_48x64.tflite", "fcn8s.onnx",
        "fcn8s_int8.onnx"]
