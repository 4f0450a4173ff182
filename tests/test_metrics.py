"""SegmentationMetrics: the paper's four metrics on one confusion matrix, ignoring void."""

import keras
import numpy as np
import pytest

from fcn_keras.metrics import SegmentationMetrics, confusion_matrix, scores_from_confusion


def _reference(labels, predictions, n, ignore=255):
    """The reference implementation's score.py formulas, written out independently."""
    keep = labels != ignore
    hist = np.zeros((n, n))
    for t, p in zip(labels[keep].ravel(), predictions[keep].ravel()):
        hist[t, p] += 1
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.diag(hist) / hist.sum(1)
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    freq = hist.sum(1) / hist.sum()
    return {
        "pixel_accuracy": np.diag(hist).sum() / hist.sum(),
        "mean_accuracy": np.nanmean(acc),
        "mean_iu": np.nanmean(iu),
        "frequency_weighted_iu": (freq[freq > 0] * iu[freq > 0]).sum(),
    }, iu


def _one_hot_logits(predictions, n):
    return np.eye(n, dtype="float32")[predictions] * 5.0


def test_hand_example():
    # truth:  0 0 1 1 2 255      prediction: 0 1 1 1 0 2
    labels = np.array([[[0, 0, 1, 1, 2, 255]]])
    predictions = np.array([[[0, 1, 1, 1, 0, 2]]])
    metric = SegmentationMetrics(num_classes=4)
    metric.update_state(labels, _one_hot_logits(predictions, 4))
    result = {k: float(v) for k, v in metric.result().items()}
    # n00=1 n01=1 n11=2 n20=1 ; class 3 absent everywhere.
    # pixel acc 3/5; acc: 1/2, 1, 0 -> 1/2; IU: 1/3, 2/3, 0 -> 1/3 (class 3 excluded);
    # fwIU: (2*1/3 + 2*2/3 + 1*0)/5 = 2/5.
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)
    assert result["mean_accuracy"] == pytest.approx(1 / 2)
    assert result["mean_iu"] == pytest.approx(1 / 3)
    assert result["frequency_weighted_iu"] == pytest.approx(2 / 5)
    iou = metric.per_class_iou()
    assert iou["0"] == pytest.approx(1 / 3) and iou["2"] == 0.0 and np.isnan(iou["3"])
    assert metric.confusion_matrix().sum() == 5  # the void pixel is not counted


def test_class_predicted_but_absent_from_truth_counts_with_iu_zero():
    labels = np.array([[0, 0, 0, 0]])
    predictions = np.array([[0, 0, 0, 1]])
    scores = scores_from_confusion(confusion_matrix(labels, predictions, 3))
    # IU_0 = 3/4, IU_1 = 0 (predicted, absent from truth), class 2 undefined.
    assert scores["mean_iu"] == pytest.approx((3 / 4 + 0) / 2)
    assert scores["mean_accuracy"] == pytest.approx(3 / 4)  # only class 0 has truth


def test_matches_numpy_reference_on_random_batches():
    rng = np.random.default_rng(0)
    n = 6
    metric = SegmentationMetrics(num_classes=n, ignore_label=255, per_class=True)
    all_labels, all_predictions = [], []
    for _ in range(4):
        labels = rng.integers(0, n - 1, (2, 9, 7))  # class 5 never in truth
        labels[rng.random(labels.shape) < 0.2] = 255
        logits = rng.normal(size=(2, 9, 7, n)).astype("float32")
        metric.update_state(labels, logits)
        all_labels.append(labels)
        all_predictions.append(logits.argmax(-1))
    expected, iu = _reference(np.concatenate(all_labels), np.concatenate(all_predictions), n)
    result = metric.result()
    for key, value in expected.items():
        assert float(result[key]) == pytest.approx(value, rel=1e-6), key
        assert metric.scores()[key] == pytest.approx(value, rel=1e-12), key
    np.testing.assert_allclose([float(result[f"iou_{i}"]) for i in range(n)], iu, rtol=1e-6)
    metric.reset_state()
    assert metric.confusion_matrix().sum() == 0
    assert float(metric.result()["mean_iu"]) == 0.0


def test_in_compile_metrics_reports_flat_keys_in_fit_logs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    y = (x[..., 0] > 0).astype("int32")
    y[:, 0, 0] = 255
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    metric = SegmentationMetrics(num_classes=2, class_names=["bg", "fg"], per_class=True)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=255), metrics=[metric])  # fmt: skip
    history = model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, verbose=0)
    for key in ("mean_iu", "val_mean_iu", "val_pixel_accuracy", "frequency_weighted_iu",
                "val_iou_fg", "mean_accuracy"):  # fmt: skip
        assert key in history.history, sorted(history.history)
    # evaluate() on the same data equals the NumPy reference on the model's predictions.
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    expected, _ = _reference(y, model.predict(x, verbose=0).argmax(-1), 2)
    assert logs["mean_iu"] == pytest.approx(expected["mean_iu"], rel=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        SegmentationMetrics(num_classes=1)
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        confusion_matrix([0, 3], [0, 0], 2)


# === Trimap: mean IU in a band around ground-truth boundaries ===


def _band_reference(mask, width, ignore=255):
    """Brute force: valid pixels with a valid, different label within Chebyshev distance `width`."""
    h, w = mask.shape
    band = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if mask[y, x] == ignore:
                continue
            window = mask[max(y - width, 0) : y + width + 1, max(x - width, 0) : x + width + 1]
            band[y, x] = np.any((window != ignore) & (window != mask[y, x]))
    return band


def test_boundary_band_on_a_hand_made_mask():
    from fcn_keras.metrics import boundary_band_mask, trimap_confusion

    # Class 0 in columns 0-2, void in column 3, class 1 in columns 4-5 (5 rows).
    mask = np.array([[0, 0, 0, 255, 1, 1]] * 5)
    # Width 1: column 2's neighbour is void, which makes no boundary: the band is empty.
    assert not boundary_band_mask(mask, 1).any()
    # Width 2: columns 2 and 4 see each other (distance 2): 10 pixels.
    band2 = boundary_band_mask(mask, 2)
    assert band2.sum() == 10 and band2[:, [2, 4]].all()
    # Width 4: columns 0..2 and 4..5 all lie within 4 of the other class: 25 pixels.
    assert boundary_band_mask(mask, 4).sum() == 25
    # Predicting class 0 everywhere: in the width-2 band 5 class-0 pixels are right and
    # 5 class-1 pixels wrong: IoU 5/10 and 0, mean IU 0.25.
    matrix = trimap_confusion(mask, np.zeros_like(mask), 2, width=2)
    assert matrix.tolist() == [[5, 0], [5, 0]]
    assert scores_from_confusion(matrix)["mean_iu"] == pytest.approx(0.25)
    # Diagonal neighbours count (Chebyshev distance): one class-1 pixel in a corner.
    corner = np.zeros((5, 5), int)
    corner[0, 0] = 1
    assert boundary_band_mask(corner, 1).sum() == 4  # (0,0) and its 3 neighbours
    assert boundary_band_mask(corner, 2).sum() == 9
    with pytest.raises(ValueError, match="width must be an int >= 1; received 0"):
        boundary_band_mask(mask, 0)


def test_boundary_band_matches_brute_force_on_random_masks():
    from fcn_keras.metrics import boundary_band_mask

    rng = np.random.default_rng(3)
    # Blocky masks (class regions of 4x4 pixels) with some void, and a batch axis.
    masks = np.kron(rng.integers(0, 4, (2, 10, 12)), np.ones((1, 4, 4), int))
    masks[rng.random(masks.shape) < 0.05] = 255
    for width in (2, 4, 8, 16):
        band = boundary_band_mask(masks, width)
        for index in range(len(masks)):
            np.testing.assert_array_equal(band[index], _band_reference(masks[index], width))


def test_evaluate_reports_trimap_mean_iu(small_fcn):
    from fcn_keras.evaluation import evaluate
    from fcn_keras.metrics import boundary_band_mask

    model = small_fcn("fcn32s", num_classes=3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 40, 48, 3)).astype("uint8")
    masks = np.kron(rng.integers(0, 3, (2, 5, 6)), np.ones((1, 8, 8), int)).astype("int32")
    masks[:, :3, :3] = 255
    report = evaluate(model, [(images, masks)], trimap_widths=(2, 4, 8, 16))
    predictions = np.argmax(model.predict(images, verbose=0), axis=-1)
    for width in (2, 4, 8, 16):
        band = np.stack([_band_reference(m, width) for m in masks])
        expected, _ = _reference(np.where(band, masks, 255), predictions, 3)
        assert report["trimap_pixels"][width] == band.sum()
        assert band.sum() == boundary_band_mask(masks, width).sum()
        assert report["trimap_mean_iu"][width] == pytest.approx(expected["mean_iu"], abs=1e-12)
    assert report["trimap_pixels"][2] < report["trimap_pixels"][16] <= report["pixels"]


def test_model_class_names_and_ignore_label_apply_to_its_own_dataset_only(small_fcn):
    from fcn_keras import DatasetInfo
    from fcn_keras.data.synthetic import SYNTHETIC_CLASS_NAMES
    from fcn_keras.evaluation import evaluate, ignore_label_of

    model = small_fcn("fcn32s", num_classes=6)
    assert ignore_label_of(model) == 255 and ignore_label_of(model, default=0) == 0
    names = tuple(f"class{i}" for i in range(6))
    options = {"source_kwargs": {"image_size": 32, "num_examples": {"val": 2}}, "batch_size": 2}

    # Trained on the evaluated dataset: its class names (and ignore label) are the model's.
    model.dataset_info = DatasetInfo(name="synthetic", num_classes=6, class_names=names,
                                     ignore_label=7)  # fmt: skip
    assert ignore_label_of(model) == 7
    report = evaluate(model, "synthetic", "val", **options)
    assert list(report["per_class_iou"]) == list(names) and report["pixels"] == 2 * 32 * 32

    # Trained on another dataset with as many classes: the evaluated source's own names.
    model.dataset_info = DatasetInfo(name="other", num_classes=6, class_names=names)
    report = evaluate(model, "synthetic", "val", **options)
    assert list(report["per_class_iou"]) == list(SYNTHETIC_CLASS_NAMES)

    # Batches: the model's names and ignore label (pixels labelled 7 are left out).
    model.dataset_info = DatasetInfo(name="synthetic", num_classes=6, class_names=names,
                                     ignore_label=7)  # fmt: skip
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 16, 16, 3)).astype("uint8")
    masks = rng.integers(0, 6, (2, 16, 16)).astype("int32")
    masks[:, :4] = 7
    report = evaluate(model, [(images, masks)])
    assert list(report["per_class_iou"]) == list(names)
    assert report["pixels"] == 2 * 16 * 16 - 2 * 4 * 16
    expected, _ = _reference(np.where(masks == 7, 255, masks),
                             np.argmax(model.predict(images, verbose=0), axis=-1), 6)
    assert report["mean_iu"] == pytest.approx(expected["mean_iu"], abs=1e-12)
