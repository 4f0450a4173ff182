"""Test-time augmentation (`fcn_keras.with_tta`): exact where the maths is exact, and exports.

Exactness: one view at scale 1 without flip is the model itself; flip only is
the mean of `model(x)` and the mirrored `model(mirror(x))`, computed here in
NumPy from the plain model's outputs; the views' resizes match
`tf.image.resize` ("bilinear", half-pixel centres) to float32 rounding of the
sample positions. Exports (SavedModel, TFLite builtins, ONNX) of a tiny
FCN-8s (fc_units 16) with three scales and flip are verified against Keras
by `fcn_keras.export.verify` on 64x64 and odd-sized images.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fcn_keras
from conftest import randomize_score_layers
from fcn_keras.geometry import resize_bilinear
from fcn_keras.tta import TTAView, scaled_size, tta_settings, wrapped_model

NUM_CLASSES = 5


@pytest.fixture(scope="module")
def fcn():
    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=NUM_CLASSES, fc_units=16, backbone_weights=None)
    names = [f"c{i}" for i in range(NUM_CLASSES)]
    model.dataset_info = fcn_keras.DatasetInfo("toy", NUM_CLASSES, names, ignore_label=255,
                                               palette=np.arange(15).reshape(5, 3))  # fmt: skip
    return randomize_score_layers(model, seed=0, scale=0.01)


def _images(height, width, batch=2, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3)).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_one_view_without_flip_is_the_model(fcn):
    images = _images(97, 131)
    tta = fcn_keras.with_tta(fcn, scales=(1.0,), flip=False)
    np.testing.assert_array_equal(_np(tta(images)), _np(fcn(images)))
    assert tta.name == "fcn8s_tta" and tta.dataset_info == fcn.dataset_info


def test_flip_only_is_the_mean_of_the_image_and_its_mirror(fcn):
    images = _images(97, 131)
    expected = (_np(fcn(images)) + _np(fcn(images[:, :, ::-1].copy()))[:, :, ::-1]) / np.float32(2)
    got = _np(fcn_keras.with_tta(fcn, scales=(1.0,), flip=True)(images))
    # Same kernels on the same inputs, summed in the same order: equal to the last bit.
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size", [(73, 98), (121, 164), (97, 131), (5, 7), (200, 3)])
def test_resize_bilinear_is_tf_image_resize(size):
    x = np.random.default_rng(3).normal(size=(2, 97, 131, 4)).astype("float32")
    got, expected = _np(resize_bilinear(x, size)), tf.image.resize(x, size, "bilinear").numpy()
    # Sample positions are computed in float32 another way than TF's (up to ~1e-5 px at 130 px):
    # the values differ by that times the local slope, far below 1e-4 of the values' range.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert got.shape == (2, *size, 4)


def test_scaled_sides_round_half_up():
    assert [int(scaled_size(n, s)) for n, s in [(97, 0.75), (131, 0.75), (97, 1.25), (131, 1.25),
                                                  (2, 0.75), (10, 0.25), (1, 0.1)]] == [
        73, 98, 121, 164, 2, 3, 1]  # fmt: skip
    view = TTAView(0.75, flip=True)
    assert tuple(view(_images(97, 131)).shape) == (2, 73, 98, 3)
    assert view.compute_output_shape((None, 97, 131, 3)) == (None, 73, 98, 3)


def test_three_scales_and_flip_by_hand(fcn):
    images = _images(97, 131)
    scales = (0.75, 1.0, 1.25)
    views = []
    for scale in scales:
        size = (int(np.floor(97 * scale + 0.5)), int(np.floor(131 * scale + 0.5)))
        small = images if scale == 1.0 else _np(resize_bilinear(images, size))
        for flip in (False, True):
            view = small[:, :, ::-1].copy() if flip else small
            logits = _np(fcn(view))
            logits = logits[:, :, ::-1] if flip else logits
            views.append(logits if scale == 1.0 else _np(resize_bilinear(logits.copy(), (97, 131))))
    expected = np.mean(views, axis=0)
    tta = fcn_keras.with_tta(fcn, scales=scales, flip=True)
    got = _np(tta(images))
    assert got.shape == (2, 97, 131, NUM_CLASSES)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    # Not the plain model: the views do change the logits.
    assert np.abs(got - _np(fcn(images))).max() > 1e-3 * np.abs(expected).max()
    assert tta_settings(tta) == {"scales": [0.75, 1.0, 1.25], "flip": True, "model": "fcn8s"}
    assert wrapped_model(tta) is fcn and tta_settings(fcn) is None
    assert tta.count_params() == fcn.count_params()  # the weights are shared, not copied


def test_keras_file_round_trip(fcn, tmp_path):
    tta = fcn_keras.with_tta(fcn, scales=(0.5, 1.0), flip=True)
    tta.save(tmp_path / "tta.keras")
    restored = keras.saving.load_model(tmp_path / "tta.keras")
    images = _images(37, 45, batch=1)
    np.testing.assert_array_equal(_np(restored(images)), _np(tta(images)))
    assert type(restored) is fcn_keras.FCNModel and restored.dataset_info == fcn.dataset_info
    assert tta_settings(restored) == tta_settings(tta)
    assert fcn_keras.variant_of(wrapped_model(restored)) == "fcn8s"


@pytest.mark.parametrize("bad, match", [
    ({"scales": ()}, "scales is empty"),
    ({"scales": (1.0, 0.0)}, r"scale 0\.0 in \(1\.0, 0\.0\) must be a positive finite number"),
    ({"scales": (1.0, float("nan"))}, "must be a positive finite number"),
    ({"scales": (1.0, 1)}, "repeated values"),
    ({"scales": "1.0"}, "must be a positive finite number"),
    ({"flip": "yes"}, "flip must be True or False; received 'yes'"),
])  # fmt: skip
def test_bad_settings_are_named(fcn, bad, match):
    with pytest.raises(ValueError, match=match):
        fcn_keras.with_tta(fcn, **bad)


def test_fixed_size_model_needs_scale_one():
    fixed = fcn_keras.FCN32s(num_classes=3, fc_units=8, backbone_weights=None, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="fixed 64x64 input, so it cannot run views at scales"):
        fcn_keras.with_tta(fixed, scales=(0.75, 1.0))
    assert fcn_keras.with_tta(fixed, scales=(1.0,), flip=True).output_shape == (None, 64, 64, 3)
    with pytest.raises(ValueError, match="received Sequential"):
        fcn_keras.with_tta(keras.Sequential([keras.layers.Dense(2)]))


def test_with_crf_on_tta_logits(fcn):
    model = fcn_keras.with_crf(fcn_keras.with_tta(fcn, scales=(1.0, 0.5), flip=False), iterations=1)
    assert tuple(model(_images(40, 56, batch=1)).shape) == (1, 40, 56, NUM_CLASSES)


@pytest.fixture(scope="module")
def exported(fcn, tmp_path_factory):
    from fcn_keras import export

    root = tmp_path_factory.mktemp("tta_exports")
    tta = fcn_keras.with_tta(fcn, scales=(0.75, 1.0, 1.25), flip=True)
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, size, dtype=np.uint8) for size in [(64, 64, 3), (37, 53, 3)]]
    paths = {"savedmodel": export.export_savedmodel(tta, root / "savedmodel", version=1)}
    paths["float32"] = export.export_tflite(tta, root / "tta.tflite", saved_model=paths["savedmodel"])
    paths["fixed"] = export.export_tflite(tta, root / "tta_64x64.tflite", input_size=(64, 64))
    paths["onnx"] = export.export_onnx(tta, root / "tta.onnx")
    return tta, paths, images


@pytest.mark.slow
def test_exports_match_keras(exported):
    from fcn_keras import export

    tta, paths, images = exported
    report = export.verify(tta, paths, images, bfloat16=False)
    results = {a["name"]: a for a in report.artifacts}
    assert set(results) == set(paths)
    for name, result in results.items():
        figures = result["vs_keras"]
        # float32 runtimes differ from Keras by rounding only.
        assert result["passed"] and figures["max_rel_delta"] <= 1e-4, (name, figures)
        assert figures["argmax_agreement"] >= 0.9999, (name, figures)


@pytest.mark.slow
def test_exports_carry_the_tta_settings_and_builtin_ops_only(exported):
    from ai_edge_litert.interpreter import Interpreter

    from fcn_keras.export import read_metadata

    tta, paths, _ = exported
    for name, path in paths.items():
        meta = read_metadata(path)
        assert meta["tta"] == {"scales": [0.75, 1.0, 1.25], "flip": True, "model": "fcn8s"}, name
        assert meta["variant"] == "fcn8s" and meta["fc_units"] == 16 and meta["model_name"] == "fcn8s_tta"
        assert meta["dataset_info"]["class_names"] == list(tta.dataset_info.class_names)
    # A builtin-only file: the plain interpreter (no Flex delegate) runs it.
    runner = Interpreter(model_path=str(paths["fixed"])).get_signature_runner("serving_default")
    out = runner(image=np.zeros((1, 64, 64, 3), np.uint8))
    assert out["logits"].shape == (1, 64, 64, NUM_CLASSES)



@pytest.mark.slow
def test_predict_and_export_with_tta(fcn, tmp_path, capsys):
    from PIL import Image

    from fcn_keras.cli import main
    from fcn_keras.export import Predictor, read_metadata

    path = tmp_path / "m.keras"
    fcn.save(path)
    image = np.random.default_rng(7).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "a.png"), "--model", str(path), "--out", str(tmp_path / "out"),
                 "--tta", "--tta-scales", "0.75,1", "--no-jit-compile"]) == 0  # fmt: skip
    assert "test-time augmentation: scales 0.75, 1, with mirror images" in capsys.readouterr().out
    written = np.asarray(Image.open(tmp_path / "out" / "a_classes.png"))
    tta = fcn_keras.with_tta(fcn, scales=(0.75, 1.0), flip=True)
    expected = np.argmax(_np(tta(image[None].astype("float32")))[0], axis=-1)
    assert (written == expected).mean() >= 0.999  # XLA-free Keras engine: near-ties only may flip
    # Exported with --tta, the artifact carries the views inside its graph.
    assert main(["export", "--model", str(path), "--out", str(tmp_path / "exp"), "--formats", "onnx", "--tta",
                 "--tta-scales", "0.75,1"]) == 0  # fmt: skip
    onnx_path = tmp_path / "exp" / "fcn8s_tta.onnx"
    assert read_metadata(onnx_path)["tta"]["scales"] == [0.75, 1.0]
    assert (Predictor(str(onnx_path)).predict_classes(image) == expected).mean() >= 0.999
    # An exported artifact's graph is fixed: --tta on it is refused with what to do instead.
    assert main(["predict", str(tmp_path / "a.png"), "--model", str(onnx_path), "--out",
                 str(tmp_path / "out2"), "--tta"]) == 2  # fmt: skip
    assert "export the model with it (fcn-keras export --tta)" in capsys.readouterr().err


def test_latency_bench_states_the_pixels_ratio():
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
    from tta_latency import pixel_ratio

    # 270x360 + 360x480 + 450x600, twice (flip), over 360x480.
    assert pixel_ratio(360, 480, (0.75, 1.0, 1.25), True) == 6.25
    # Padded to 32: 288x384 + 384x480 + 480x608, twice, over 384x480.
    assert pixel_ratio(360, 480, (0.75, 1.0, 1.25), True, multiple=32) == pytest.approx(
        2 * (288 * 384 + 384 * 480 + 480 * 608) / (384 * 480), rel=1e-12)  # fmt: skip
    assert pixel_ratio(97, 131, (1.0,), False) == 1.0
