"""Losses: ignore-label cross-entropy, class weights, focal loss, median-frequency weights."""

import math

import keras
import numpy as np
import pytest

from fcn_keras.losses import FocalLoss, SegmentationCrossEntropy, median_frequency_weights


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_cross_entropy_hand_example_ignores_void_pixels():
    # One image, 1x3 pixels, 2 classes. Pixel 3 is void and has a huge wrong logit.
    logits = np.array([[[[0.0, 0.0], [2.0, 0.0], [-50.0, 50.0]]]], "float32")
    labels = np.array([[[0, 1, 255]]], "int32")
    # Hand values: pixel 1: -log(1/2) = log 2; pixel 2: -log(e^0/(e^2+1)) = log(1+e^2).
    expected = (math.log(2.0) + math.log(1.0 + math.e**2)) / 2
    loss = float(SegmentationCrossEntropy()(labels, logits))
    assert loss == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_is_mean_over_valid_pixels_of_the_whole_batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    labels = rng.integers(0, 6, (3, 4, 5)).astype("int32")
    labels[0, :3] = 255  # different valid counts per image: 5, 20, 19
    labels[2, 0, 0] = 255
    valid = labels != 255
    per_pixel = -np.take_along_axis(_log_softmax(logits), np.where(valid, labels, 0)[..., None], -1)
    expected = per_pixel[..., 0][valid].mean()
    ours = float(SegmentationCrossEntropy()(labels, logits))
    builtin = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    assert ours == pytest.approx(expected, rel=1e-5)
    # Keras's built-in with ignore_class gives the same mean over valid pixels.
    assert float(builtin(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # A trailing channel axis on the mask is accepted.
    assert float(SegmentationCrossEntropy()(labels[..., None], logits)) == pytest.approx(ours)


@pytest.mark.parametrize("loss", [SegmentationCrossEntropy(), FocalLoss(),
                                  SegmentationCrossEntropy(class_weights=[1.0, 3.0, 0.5])])
def test_fully_ignored_batch_has_zero_loss_and_zero_gradient(loss):
    import tensorflow as tf

    logits = tf.Variable(np.random.default_rng(1).normal(size=(2, 3, 3, 3)).astype("float32"))
    labels = np.full((2, 3, 3), 255, "int32")
    with tf.GradientTape() as tape:
        value = loss(labels, logits)
    grad = tape.gradient(value, logits)
    assert float(value) == 0.0
    assert np.all(np.isfinite(grad.numpy())) and np.all(grad.numpy() == 0)


def test_class_weighted_cross_entropy_hand_example():
    logits = np.array([[[[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]]]], "float32")
    labels = np.array([[[0, 1, 255]]], "int32")
    loss = SegmentationCrossEntropy(class_weights=[2.0, 0.5])
    # Weighted sum divided by the number of valid pixels (2), not by the weights' sum.
    expected = (2.0 * math.log(2.0) + 0.5 * math.log(1.0 + math.e**2)) / 2
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="3 entries but the logits have 2 classes"):
        SegmentationCrossEntropy(class_weights=[1, 1, 1])(labels, logits)
    with pytest.raises(ValueError, match="non-negative"):
        SegmentationCrossEntropy(class_weights=[1, -1])


def test_focal_loss_hand_example_and_gamma_zero_is_cross_entropy():
    logits = np.array([[[[0.0, 0.0], [2.0, 0.0], [0.0, 9.0]]]], "float32")
    labels = np.array([[[0, 1, 255]]], "int32")
    p1, p2 = 0.5, 1.0 / (1.0 + math.e**2)
    expected = (-(1 - p1) ** 2 * math.log(p1) - (1 - p2) ** 2 * math.log(p2)) / 2
    assert float(FocalLoss(gamma=2.0)(labels, logits)) == pytest.approx(expected, rel=1e-5)
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    labels = rng.integers(0, 3, (2, 4, 4)).astype("int32")
    labels[1, 1] = 255
    assert float(FocalLoss(gamma=0.0)(labels, logits)) == pytest.approx(
        float(SegmentationCrossEntropy()(labels, logits)), rel=1e-5
    )


def test_median_frequency_weights_hand_example():
    # Image A (4 px): class 0 x3, class 1 x1. Image B (4 px): class 0 x2, void x2.
    masks = np.array([[[0, 0], [0, 1]], [[0, 0], [255, 255]]], "int32")
    images = np.zeros((2, 2, 2, 3), "uint8")
    weights, absent = median_frequency_weights([(images, masks)], num_classes=3)
    # freq0 = 5 / (4 + 2) ; freq1 = 1 / 4 ; median of [5/6, 1/4] = 13/24.
    f0, f1 = 5 / 6, 1 / 4
    median = (f0 + f1) / 2
    assert weights == pytest.approx([median / f0, median / f1, 1.0])
    assert absent == [2]
    masks[0, 0, 0] = 5
    with pytest.raises(ValueError, match=r"\[5\] are outside \[0, 3\)"):
        median_frequency_weights([(images, masks)], num_classes=3)
