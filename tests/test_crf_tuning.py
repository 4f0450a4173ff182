"""The CRF's tuning as API: `tune_crf` (grid search on a split) and `fine_tune_crf` (end to end, FCN frozen).

The grid search is checked against an oracle that builds a fresh `DenseCRF`
for every setting and scores its argmax with the NumPy confusion matrix;
fine-tuning on a tiny FCN (random backbone, fc_units 8, 32x32 synthetic
crops, 2 steps) keeps the best checkpoint's weights and leaves the FCN as it
was. Seconds.
"""

import numpy as np
import pytest

import fcn_keras
from fcn_keras.crf import (CRF_GRID, DenseCRF, crf_grid, fine_tune_crf, grid_edges, split_scores,
                           structure_key, tune_crf)  # fmt: skip
from fcn_keras.metrics import confusion_matrix, scores_from_confusion

GRID = {"structure": [{"window": 3, "downsample": 2}, {"window": 5, "downsample": 1}],
        "appearance_xy": [10.0], "appearance_rgb": [5.0, 30.0], "appearance_weight": [1.0, 20.0],
        "smoothness": [{"smoothness_weight": 0.0}, {"smoothness_weight": 3.0, "smoothness_xy": 3.0}]}  # fmt: skip


def _split(seed=0, count=5, size=(16, 24), classes=3):
    """Images whose colour follows the labels, and noisy logits: a CRF has something to fix."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((count, *size), np.uint8)
    labels[:, :, size[1] // 3:] = 1
    labels[:, size[0] // 2:, 2 * size[1] // 3:] = 2
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]])
    images = np.clip(colours[labels] + rng.normal(0, 10, (*labels.shape, 3)), 0, 255).astype(np.uint8)
    logits = (3.0 * np.eye(classes)[labels] + rng.normal(0, 1.6, (*labels.shape, classes))).astype(np.float32)
    labels[:, 0, 0] = 255  # void, not counted
    return images, logits, labels


def test_grid_and_edges():
    assert len(crf_grid()) == 72 and len(crf_grid(GRID)) == 16
    assert all(s["iterations"] == 5 and s["compatibility"] == "potts" for s in crf_grid(GRID))
    assert grid_edges({"appearance_weight": 30.0, "appearance_xy": 80.0, "appearance_rgb": 5.0},
                      CRF_GRID) == ["appearance_rgb 5 (grid 5..30)", "appearance_weight 30 (grid 3..30)"]  # fmt: skip
    with pytest.raises(ValueError, match=r"no values for \['appearance_xy'\]"):
        crf_grid({**GRID, "appearance_xy": []})


def test_tune_crf_chooses_what_an_oracle_scores_best():
    images, logits, labels = _split()
    tuned = tune_crf(images, logits, labels, grid=GRID, iterations=3, batch_size=2)
    assert len(tuned["rows"]) == 16 and len(tuned["crfs"]) == 4  # 2 windows x smoothness on/off
    oracle = []
    for settings in crf_grid(GRID, iterations=3):
        layer = DenseCRF(3, **settings)
        classes = np.argmax(np.asarray(layer([images, logits])), axis=-1)
        oracle.append(scores_from_confusion(confusion_matrix(labels, classes, 3))["mean_iu"])
    found = [row["val_mean_iu"] for row in tuned["rows"]]
    # The traced layer gets its bandwidths as log(value) assigned in place, the oracle's layer
    # from its constructor: the same float32 maths, so the same argmax but for exact ties.
    np.testing.assert_allclose(found, oracle, rtol=0, atol=1e-9)
    assert tuned["settings"] == crf_grid(GRID, iterations=3)[int(np.argmax(oracle))]
    assert tuned["mean_iu"] == max(oracle)
    fcn_only = split_scores(lambda i, l: l, images, logits, labels)["mean_iu"]
    assert tuned["mean_iu"] > fcn_only  # the CRF fixes the noise on this split
    assert set(tuned["seconds_per_image"]) == {structure_key(s) for s in crf_grid(GRID)}


def test_fine_tune_crf_keeps_the_best_checkpoint_and_the_fcn():
    import keras

    keras.utils.set_random_seed(0)
    fcn = fcn_keras.FCN8s(num_classes=6, fc_units=8, head="mobile", backbone_weights=None)
    fcn.input_scale = 0.5
    before = [np.array(w) for w in fcn.get_weights()]
    train = fcn_keras.load_dataset("synthetic", "train", batch_size=1, crop_size=(32, 32),
                                   image_size=48, num_examples=4, repeat=True)  # fmt: skip
    val_images, val_labels = (np.asarray(t) for t in next(iter(
        fcn_keras.load_dataset("synthetic", "val", batch_size=2, image_size=32, num_examples=2,
                               shuffle=False, augment=False))))  # fmt: skip
    from fcn_keras.evaluation import scaled_logits

    val_logits = scaled_logits(lambda x: np.asarray(fcn(x, training=False)), val_images, 0.5)
    start = {**crf_grid(GRID, iterations=2)[0], "appearance_weight": 3.0}
    layer, record = fine_tune_crf(fcn, start, train, (val_images, val_logits, val_labels),
                                  steps=2, checkpoint=1, learning_rate=0.05)  # fmt: skip
    assert [c["step"] for c in record["curve"]] == [0, 1, 2]
    best = max(record["curve"], key=lambda c: c["val_mean_iu"])
    assert record["chosen_step"] == best["step"] and record["val_mean_iu"] == best["val_mean_iu"]
    assert len(record["train_loss_per_checkpoint"]) == 2 and record["seconds_per_step"] > 0
    assert np.asarray(record["settings"]["compatibility"]).shape == (6, 6)
    # The layer holds the chosen checkpoint's weights: its split score is the recorded one.
    again = split_scores(lambda i, l: np.argmax(np.asarray(layer([i, l])), -1),
                         val_images, val_logits, val_labels)["mean_iu"]  # fmt: skip
    assert again == pytest.approx(record["val_mean_iu"], abs=1e-12)
    assert fcn.trainable and fcn.input_scale == 0.5
    for after, was in zip(fcn.get_weights(), before):
        np.testing.assert_array_equal(after, was)
    with pytest.raises(ValueError, match=r"steps \(3\) must be a positive multiple of checkpoint \(2\)"):
        fine_tune_crf(fcn, start, train, (val_images, val_logits, val_labels), steps=3, checkpoint=2)


def test_train_appends_the_crf_and_trains_both(tmp_path):
    from fcn_keras.training import train

    model, history = train("fcn8s", "synthetic", out_dir=str(tmp_path), fc_units=8, head="mobile",
                           source_kwargs={"image_size": 32, "num_examples": {"train": 2, "val": 2}},
                           batch_size=2, epochs=1, crf={"iterations": 1, "window": 3, "downsample": 2,
                                                        "compatibility": "learned"},
                           input_scale=0.5, mixed_precision="float32", tensorboard=False, verbose=0)  # fmt: skip
    crf = model.get_layer("crf")
    assert crf.settings()["iterations"] == 1 and np.isfinite(history.history["loss"]).all()
    assert model.input_scale == 0.5 and model.dataset_info.name == "synthetic"
    import json

    with open(tmp_path / "train_config.json") as f:
        assert json.load(f)["arguments"]["crf"]["window"] == 3


def test_cached_logits_are_computed_once_per_key(tmp_path):
    from fcn_keras.crf import cached_logits

    images, logits, labels = _split(count=3)
    batches = [(images[i:i + 1], labels[i:i + 1]) for i in range(3)]
    calls = []

    def predict(image):
        calls.append(image.shape)
        index = int(np.flatnonzero([np.array_equal(image, x) for x in images])[0])
        return logits[index]

    first = cached_logits(predict, batches, 3, str(tmp_path), "val", key={"model": "a"})
    assert len(calls) == 3 and first[3] >= 0
    for cached, expected in zip(first[:3], (images, labels, logits)):
        np.testing.assert_array_equal(cached, expected)
    again = cached_logits(predict, batches, 3, str(tmp_path), "val", key={"model": "a"})
    assert len(calls) == 3  # read back: the FCN is not run again
    np.testing.assert_array_equal(again[2], logits)
    cached_logits(predict, batches, 2, str(tmp_path), "val", key={"model": "b"})
    assert len(calls) == 5  # another key computes anew
    with pytest.raises(ValueError, match="val: 3 images to cache, 4 expected"):
        cached_logits(predict, batches, 4, str(tmp_path), "val", key={"model": "c"})
