"""One evaluation loop and one input scale.

`ConfusionAccumulator` and `evaluate_predictions` equal a NumPy reference
(bincount over valid pixels, brute-force trimap bands); `evaluate` is that
loop over a Keras forward pass. A model's `input_scale` is saved with it
(`.keras` round trip, the `stage.json` fallback of older rows), written into
an export's metadata, and applied in one place (`scaled_logits`) by
`evaluate`, `Predictor` and `verify`. Tiny models (fc_units 8-32, random
backbone, images up to 64x80).
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from fcn_keras.evaluation import (evaluate, evaluate_predictions, input_scale_of, load_model,
                                  scale_images, scaled_logits)  # fmt: skip
from fcn_keras.metrics import ConfusionAccumulator


def _reference_confusion(labels, predictions, num_classes, ignore, keep=None):
    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    valid = labels != ignore
    if keep is not None:
        valid &= np.asarray(keep).ravel()
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels[valid], predictions[valid]), 1)
    return matrix


def _reference_band(label, width, ignore):
    """Brute force: a valid pixel with a valid pixel of another class within Chebyshev `width`."""
    height, wide = label.shape
    band = np.zeros(label.shape, bool)
    for y in range(height):
        for x in range(wide):
            if label[y, x] == ignore:
                continue
            window = label[max(y - width, 0):y + width + 1, max(x - width, 0):x + width + 1]
            band[y, x] = np.any((window != ignore) & (window != label[y, x]))
    return band


def _reference_mean_iu(matrix):
    diag = np.diag(matrix).astype(float)
    union = matrix.sum(0) + matrix.sum(1) - diag
    return float(np.mean(diag[union > 0] / union[union > 0]))


def _random_batches(seed=0, batches=3, shape=(2, 12, 15), classes=4, ignore=255):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        labels = rng.integers(0, classes, shape)
        labels[rng.random(shape) < 0.1] = ignore
        logits = rng.normal(size=(*shape, classes)).astype("float32")
        out.append((logits, labels))
    return out


def test_evaluate_predictions_equals_a_numpy_reference_with_trimap_bands():
    batches = _random_batches()
    widths = (1, 3)
    result = evaluate_predictions(lambda logits: logits, batches, 4, ignore_label=255,
                                  trimap_widths=widths)  # fmt: skip
    labels = np.concatenate([b[1] for b in batches])
    predictions = np.argmax(np.concatenate([b[0] for b in batches]), -1)
    matrix = _reference_confusion(labels, predictions, 4, 255)
    np.testing.assert_array_equal(result["confusion_matrix"], matrix)
    assert result["images"] == 6 and result["pixels"] == int(matrix.sum())
    assert result["mean_iu"] == pytest.approx(_reference_mean_iu(matrix), abs=1e-12)
    assert result["pixel_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-12)
    for width in widths:
        bands = np.stack([_reference_band(label, width, 255) for label in labels])
        band_matrix = _reference_confusion(labels, predictions, 4, 255, keep=bands)
        assert result["trimap_pixels"][width] == int(band_matrix.sum()) > 0
        assert result["trimap_mean_iu"][width] == pytest.approx(_reference_mean_iu(band_matrix), abs=1e-12)
    # Class maps instead of logits, and a batch limit.
    first = evaluate_predictions(lambda logits: np.argmax(logits, -1), batches, 4, max_batches=1)
    np.testing.assert_array_equal(first["confusion_matrix"],
                                  _reference_confusion(batches[0][1], np.argmax(batches[0][0], -1), 4, 255))
    assert first["images"] == 2 and first["predict_seconds"] >= 0


def test_the_accumulator_adds_up_and_names_bad_input():
    batches = _random_batches(seed=1)
    whole = ConfusionAccumulator(4, 255, trimap_widths=(2,))
    for logits, labels in batches:
        for one_logits, one_label in zip(logits, labels):  # single maps add up like batches
            whole.update(one_label, np.argmax(one_logits, -1))
    batched = evaluate_predictions(lambda x: x, batches, 4, trimap_widths=(2,))
    np.testing.assert_array_equal(whole.result()["confusion_matrix"], batched["confusion_matrix"])
    assert whole.result()["trimap_mean_iu"] == batched["trimap_mean_iu"] and whole.images == 6
    with pytest.raises(ValueError, match=r"labels \(2, 3\) and predictions \(2, 4\)"):
        whole.update(np.zeros((2, 3), int), np.zeros((2, 4), int))
    with pytest.raises(ValueError, match=r"labels \[7\] are outside \[0, 4\)"):
        whole.update(np.full((2, 3), 7), np.zeros((2, 3), int))


@pytest.fixture(scope="module")
def tiny():
    import keras

    import fcn_keras
    from conftest import randomize_score_layers

    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=3, fc_units=8, head="mobile", backbone_weights=None)
    return randomize_score_layers(model, seed=0, scale=0.05)


def test_input_scale_round_trips_through_a_keras_file_and_is_checked(tiny, tmp_path):
    import keras

    assert tiny.input_scale is None and input_scale_of(tiny) == 1.0
    tiny.input_scale = 0.5
    try:
        path = str(tmp_path / "m.keras")
        tiny.save(path)
        loaded = keras.saving.load_model(path, compile=False)
        assert loaded.input_scale == 0.5 and input_scale_of(loaded) == 0.5
        assert type(tiny).from_config(tiny.get_config()).input_scale == 0.5
    finally:
        tiny.input_scale = None
    for bad in (0, 1.5, "half", True):
        with pytest.raises(ValueError, match="input_scale must be a number in \\(0, 1\\]"):
            tiny.input_scale = bad
    assert input_scale_of({"input_scale": 0.25}) == 0.25 and input_scale_of({}) == 1.0


def test_older_rows_get_their_scale_from_stage_json(tiny, tmp_path):
    path = str(tmp_path / "final.keras")
    tiny.save(path)
    assert load_model(path).input_scale is None
    with open(tmp_path / "stage.json", "w") as f:
        json.dump({"stage": "fcn32s", "scale": 0.5}, f)
    assert load_model(path).input_scale == 0.5


def test_evaluate_applies_the_scale_the_model_carries(tiny):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 40, 48, 3)).astype("uint8")
    masks = rng.integers(0, 3, (2, 40, 48)).astype("int32")
    explicit = evaluate(tiny, [(images, masks)], input_scale=0.5, trimap_widths=(2,))
    tiny.input_scale = 0.5
    try:
        carried = evaluate(tiny, [(images, masks)], trimap_widths=(2,))
        full = evaluate(tiny, [(images, masks)], input_scale=1.0)
    finally:
        tiny.input_scale = None
    assert carried["confusion_matrix"] == explicit["confusion_matrix"]
    assert carried["trimap_mean_iu"] == explicit["trimap_mean_iu"] and carried["pixels"] == 2 * 40 * 48
    assert full["pixels"] == carried["pixels"]
    # NumPy in, NumPy out, at the images' size: the small image's logits resized back.
    logits = scaled_logits(lambda x: np.asarray(tiny(x, training=False)), images, 0.5)
    assert isinstance(logits, np.ndarray) and logits.shape == (2, 40, 48, 3)
    small = np.asarray(tiny(scale_images(images, 0.5), training=False))
    assert small.shape == (2, 20, 24, 3)
    np.testing.assert_allclose(logits, tf.image.resize(small, (40, 48)).numpy(), rtol=0, atol=0)
    assert np.abs(logits - np.asarray(tiny(images, training=False))).max() > 0  # the scale matters


def test_an_export_carries_the_scale_and_its_predictor_applies_it(tiny, tmp_path):
    from fcn_keras.export import Predictor, export_onnx, read_metadata, verify

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 80, 3)).astype("uint8")
    tiny.input_scale = 0.5
    try:
        path = export_onnx(tiny, str(tmp_path / "tiny.onnx"))
        expected = scaled_logits(lambda x: np.asarray(tiny(x, training=False)), image[None], 0.5)[0]
        in_memory = Predictor(tiny, jit_compile=False)
        assert in_memory.input_scale == 0.5
        np.testing.assert_array_equal(in_memory.predict(image), expected)
        report = verify(tiny, [path], [image, image[:37, :53]], pairwise=False)
    finally:
        tiny.input_scale = None
    assert read_metadata(path)["input_scale"] == 0.5
    predictor = Predictor(path)
    assert predictor.input_scale == 0.5
    logits = predictor.predict(image)
    assert logits.shape == (64, 80, 3)
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(logits, expected, atol=1e-4 * scale)  # float32 kernels, rounding only
    assert report.passed and report.artifacts[0]["vs_keras"]["max_rel_delta"] < 1e-4
    with pytest.raises(ValueError, match="runs at input scale 0.5; the Keras model was trained at 1"):
        verify(tiny, [path], [image])


def test_training_sets_the_scale_and_a_continued_model_keeps_it(tiny):
    from fcn_keras.training import make_model

    assert make_model("fcn8s", 3, init_from=tiny, input_scale=0.5).input_scale == 0.5
    tiny.input_scale = 0.25
    try:
        assert make_model("fcn8s", 3, init_from=tiny).input_scale == 0.25
    finally:
        tiny.input_scale = None
