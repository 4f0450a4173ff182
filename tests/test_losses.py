"""Losses: ignore-label cross-entropy, class weights, focal, Lovasz-Softmax, Dice, class balancing.

The Lovasz-Softmax and Dice losses are checked against independent NumPy
references written here from the papers' definitions (void pixels removed,
loops over images and classes), for the value and for the gradient with
respect to the logits.
"""

import math

import keras
import numpy as np
import pytest

from fcn_keras.losses import (CrossEntropyLovasz, DiceLoss, FocalLoss, LovaszSoftmax,
                              SegmentationCrossEntropy, median_frequency_weights)  # fmt: skip


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
                                  SegmentationCrossEntropy(class_weights=[1.0, 3.0, 0.5]),
                                  LovaszSoftmax(), LovaszSoftmax(per_image=True, classes="all"),
                                  DiceLoss(), DiceLoss(classes="all", smooth=0.0),
                                  CrossEntropyLovasz(per_image=True)])
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


# === Lovasz-Softmax and Dice against NumPy references ===


def _softmax(x):
    return np.exp(_log_softmax(np.asarray(x, "float64")))


def _np_lovasz_gradient(fg_sorted):
    """Berman et al.'s `lovasz_grad`: differences of the Jaccard loss of growing prefixes."""
    gts = fg_sorted.sum()
    intersection = gts - np.cumsum(fg_sorted)
    union = gts + np.cumsum(1.0 - fg_sorted)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def _np_lovasz_flat(probs, labels, classes, class_weights):
    """Lovasz-Softmax of valid pixels: probs (N, C), labels (N,) -> (value, dL/dprobs)."""
    num_classes = probs.shape[1]
    weights = np.ones(num_classes) if class_weights is None else np.asarray(class_weights, float)
    losses, used, grads = [], [], np.zeros((num_classes,) + probs.shape)
    for c in range(num_classes):
        fg = (labels == c).astype("float64")
        if classes == "present" and fg.sum() == 0:
            continue
        errors = np.abs(fg - probs[:, c])
        order = np.argsort(-errors, kind="stable")
        grad = _np_lovasz_gradient(fg[order])
        losses.append(errors[order] @ grad)
        used.append(c)
        # d(error_i)/d(p_ic) = +1 where fg is 0, -1 where it is 1.
        grads[c][order, c] = grad * np.where(fg[order] > 0, -1.0, 1.0)
    if not used:
        return 0.0, np.zeros_like(probs)
    w = weights[used]
    value = float(np.dot(w, losses) / w.sum())
    return value, np.tensordot(w / w.sum(), grads[used], axes=1)


def np_lovasz(labels, logits, per_image=False, classes="present", class_weights=None,
              ignore_label=255):  # fmt: skip
    """NumPy Lovasz-Softmax and its gradient w.r.t. the logits (void pixels removed first)."""
    logits = np.asarray(logits, "float64")
    probs = _softmax(logits)
    groups = [np.arange(len(labels))] if not per_image else [[b] for b in range(len(labels))]
    values, grad = [], np.zeros_like(logits)
    for group in groups:
        lab, prob = labels[group].reshape(-1), probs[group].reshape(-1, probs.shape[-1])
        valid = lab != ignore_label
        if not valid.any():
            continue  # an image without valid pixels is left out of the mean
        value, dprob = _np_lovasz_flat(prob[valid], lab[valid], classes, class_weights)
        values.append(value)
        full = np.zeros_like(prob)
        full[valid] = dprob
        # Softmax Jacobian: dL/dz = p * (dL/dp - sum(p * dL/dp)).
        dz = prob * (full - (prob * full).sum(-1, keepdims=True))
        grad[group] += dz.reshape(grad[group].shape)
    if not values:
        return 0.0, grad
    return float(np.mean(values)), grad / len(values)


def np_dice(labels, logits, smooth=1.0, classes="present", class_weights=None, ignore_label=255):
    """NumPy soft Dice loss over the valid pixels of the batch."""
    probs = _softmax(logits).reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    valid = labels != ignore_label
    if not valid.any():
        return 0.0
    probs, labels = probs[valid], labels[valid]
    num_classes = probs.shape[1]
    weights = np.ones(num_classes) if class_weights is None else np.asarray(class_weights, float)
    losses, used = [], []
    for c in range(num_classes):
        g = (labels == c).astype("float64")
        if classes == "present" and g.sum() == 0:
            continue
        p = probs[:, c]
        losses.append(1.0 - (2.0 * (p * g).sum() + smooth) / (p.sum() + g.sum() + smooth))
        used.append(c)
    return float(np.dot(weights[used], losses) / weights[used].sum())


def _case(seed=3, shape=(2, 3, 4), num_classes=4, void=((0, 0, 1), (1, 2, 3))):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=shape + (num_classes,)).astype("float32")
    # Class 3 never appears: "present" and "all" then differ.
    labels = rng.integers(0, num_classes - 1, shape).astype("int32")
    for index in void:
        labels[index] = 255
    return labels, logits


def _value_and_grad(loss, labels, logits, dtype="float32"):
    import tensorflow as tf

    x = tf.Variable(tf.cast(logits, dtype))
    with tf.GradientTape() as tape:
        value = loss(labels, x)
    return value, tape.gradient(value, x)


def test_lovasz_gradient_golden_values():
    from fcn_keras.losses import _lovasz_gradient

    # fg sorted = [1, 0, 1]: Jaccard losses of prefixes 1 - [1/2, 1/3, 0] / [2, 3, 3] ...
    # J = [1 - 1/2, 1 - 1/3, 1 - 0/3] = [0.5, 2/3, 1] -> differences [0.5, 1/6, 1/3].
    fg_sorted = keras.ops.convert_to_tensor([[1.0, 0.0, 1.0]])
    grad = keras.ops.convert_to_numpy(_lovasz_gradient(fg_sorted))
    np.testing.assert_allclose(grad, [[0.5, 1 / 6, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(_np_lovasz_gradient(np.array([1.0, 0.0, 1.0])), grad[0], rtol=1e-6)


def test_lovasz_hand_example():
    # 1 image, 1x2 pixels, 2 classes, probabilities p(class 0) = [0.5, 1/(1+e^2)].
    logits = np.array([[[[0.0, 0.0], [0.0, 2.0]]]], "float32")
    labels = np.array([[[0, 1]]], "int32")
    q = 1.0 / (1.0 + math.e**2)  # p(class 0) at pixel 2; p(class 1) there is 1 - q.
    # Class 0: fg [1, 0], errors [0.5, q], already in decreasing order; Jaccard losses of the
    # prefixes J = [1 - 0/1, 1 - 0/2] = [1, 1], gradient [1, 0] -> 0.5.
    # Class 1: fg [0, 1], errors [0.5, q]; J = [1 - 1/2, 1 - 0/2] = [0.5, 1], gradient
    # [0.5, 0.5] -> 0.25 + q / 2. Mean over the two present classes: 0.375 + q / 4.
    expected = 0.375 + q / 4
    assert float(LovaszSoftmax()(labels, logits)) == pytest.approx(expected, rel=1e-6)
    assert np_lovasz(labels, logits)[0] == pytest.approx(expected, rel=1e-12)
    # At a perfect 0/1 prediction the Lovasz extension equals the Jaccard loss (0 here).
    sharp = np.array([[[[30.0, 0.0], [0.0, 30.0]]]], "float32")
    assert float(LovaszSoftmax()(labels, sharp)) == pytest.approx(0.0, abs=1e-6)  # the loss is in [0, 1]


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_value_and_gradient_match_numpy(per_image, classes):
    labels, logits = _case()
    weights = [1.0, 2.0, 0.5, 3.0] if classes == "all" else None
    loss = LovaszSoftmax(per_image=per_image, classes=classes, class_weights=weights)
    value, grad = _value_and_grad(loss, labels, logits)
    expected, expected_grad = np_lovasz(labels, logits, per_image, classes, weights)
    # float32 softmax and sums over 22 pixels against float64: ~1e-6 relative.
    assert float(value) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-4, atol=1e-5 * np.abs(expected_grad).max())
    assert np.all(grad.numpy()[labels == 255] == 0)


def test_numpy_lovasz_gradient_matches_finite_differences():
    # Validates the reference's analytic gradient (the one the TF gradient is compared to):
    # the loss is piecewise linear in the errors, smooth here since no two errors tie.
    labels, logits = _case(seed=5, shape=(1, 2, 3), num_classes=3, void=((0, 1, 2),))
    logits = logits.astype("float64")
    _, analytic = np_lovasz(labels, logits)
    numeric = np.zeros_like(logits)
    eps = 1e-6
    for index in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = (np_lovasz(labels, up)[0] - np_lovasz(labels, down)[0]) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-6 * np.abs(numeric).max())


@pytest.mark.parametrize("classes", ["present", "all"])
def test_dice_matches_numpy(classes):
    labels, logits = _case(seed=7)
    for smooth, weights in ((1.0, None), (0.0, [1.0, 2.0, 0.5, 3.0])):
        loss = DiceLoss(smooth=smooth, classes=classes, class_weights=weights)
        expected = np_dice(labels, logits, smooth, classes, weights)
        assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # Hand value: one pixel of class 0 with p0 = 1/2; smooth 0: 1 - 2 * 0.5 / (0.5 + 1) = 1/3.
    hand = DiceLoss(smooth=0.0)(np.array([[[0]]], "int32"), np.zeros((1, 1, 1, 2), "float32"))
    assert float(hand) == pytest.approx(1 / 3, rel=1e-6)


def test_cross_entropy_lovasz_is_the_weighted_sum():
    labels, logits = _case(seed=9)
    weights = [1.0, 2.0, 0.5, 3.0]
    combined = CrossEntropyLovasz(lovasz_weight=0.3, per_image=True, class_weights=weights)
    ce = float(SegmentationCrossEntropy(class_weights=weights)(labels, logits))
    lovasz = float(LovaszSoftmax(per_image=True, class_weights=weights)(labels, logits))
    assert float(combined(labels, logits)) == pytest.approx(ce + 0.3 * lovasz, rel=1e-6)
    assert float(CrossEntropyLovasz(lovasz_weight=0.0)(labels, logits)) == pytest.approx(
        float(SegmentationCrossEntropy()(labels, logits)), rel=1e-6
    )


@pytest.mark.parametrize("loss", [LovaszSoftmax(), LovaszSoftmax(per_image=True), DiceLoss(),
                                  CrossEntropyLovasz(),
                                  CrossEntropyLovasz(per_image=True)])  # fmt: skip
def test_set_losses_take_sample_weights_per_set(loss):
    """A sample weight of ones changes nothing; other weights weight each image's loss
    (`per_image=True` Lovasz, one value per image) or scale the one batch value by
    their mean (every other set loss, one value per batch)."""
    labels, logits = _case(seed=21, void=())
    value = float(loss(labels, logits))
    ones = np.ones(len(labels), "float32")
    assert float(loss(labels, logits, sample_weight=ones)) == pytest.approx(value, rel=1e-6)
    weights = np.array([1.0, 3.0], "float32")
    weighted = float(loss(labels, logits, sample_weight=weights))
    if loss.call(labels, logits).shape == (2,):
        alone = [float(loss(labels[i : i + 1], logits[i : i + 1])) for i in range(2)]
        assert weighted == pytest.approx((alone[0] + 3.0 * alone[1]) / 2, rel=1e-5)
        assert weighted != pytest.approx(2.0 * value, rel=1e-3)  # not the mean weight
    else:
        assert loss.call(labels, logits).shape == (1,)
        assert weighted == pytest.approx(2.0 * value, rel=1e-6)
        pixels = np.ones(labels.shape, "float32")
        assert float(loss(labels, logits, sample_weight=pixels)) == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("loss", [LovaszSoftmax(), LovaszSoftmax(per_image=True), DiceLoss(),
                                  CrossEntropyLovasz()])  # fmt: skip
def test_void_pixels_change_nothing(loss):
    labels, logits = _case(seed=11, shape=(1, 1, 6), void=((0, 0, 5),))
    value = float(loss(labels, logits))
    # Any logits at the void pixel give the same value ...
    other = logits.copy()
    other[0, 0, 5] = [40.0, -40.0, 7.0, 0.0]
    assert float(loss(labels, other)) == value
    # ... and the value equals that of the image without the void pixel.
    assert float(loss(labels[:, :, :5], logits[:, :, :5])) == pytest.approx(value, rel=1e-6)


def test_per_image_and_per_batch():
    labels, logits = _case(seed=13, void=())
    batch = float(LovaszSoftmax()(labels, logits))
    per_image = float(LovaszSoftmax(per_image=True)(labels, logits))
    singles = [float(LovaszSoftmax()(labels[i : i + 1], logits[i : i + 1])) for i in range(2)]
    assert per_image == pytest.approx(np.mean(singles), rel=1e-6)
    assert abs(batch - per_image) > 1e-3  # the batch is one set: not the mean of the images
    one = (labels[:1], logits[:1])
    assert float(LovaszSoftmax(per_image=True)(*one)) == pytest.approx(
        float(LovaszSoftmax()(*one)), rel=1e-6
    )
    # An all-void image is left out of the per-image mean.
    labels[1] = 255
    only_first = float(LovaszSoftmax(per_image=True)(labels, logits))
    assert only_first == pytest.approx(singles[0], rel=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("loss", [LovaszSoftmax(), LovaszSoftmax(per_image=True), DiceLoss(),
                                  CrossEntropyLovasz()])  # fmt: skip
def test_reduced_precision_logits_give_finite_float32_loss_and_gradients(loss, dtype):
    import tensorflow as tf

    labels, logits = _case(seed=17)
    value, grad = _value_and_grad(loss, labels, logits, dtype)
    assert value.dtype == tf.float32 and grad.dtype == dtype
    assert np.all(np.isfinite(tf.cast(grad, "float32").numpy()))
    # The loss runs in float32 on the rounded logits: equal to the float32 loss of those.
    rounded = tf.cast(tf.cast(logits, dtype), "float32").numpy()
    assert float(value) == pytest.approx(float(loss(labels, rounded)), rel=1e-6)


def test_losses_and_gradients_trace_with_unknown_shapes():
    import tensorflow as tf

    labels, logits = _case(seed=19)
    spec = [tf.TensorSpec([None, None, None], tf.int32), tf.TensorSpec([None, None, None, 4])]
    for loss in (LovaszSoftmax(per_image=True), DiceLoss(), CrossEntropyLovasz()):

        def value_and_grad(y, x, loss=loss):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = loss(y, x)
            return value, tape.gradient(value, x)

        value, grad = tf.function(value_and_grad, input_signature=spec)(labels, logits)
        eager_value, eager_grad = _value_and_grad(loss, labels, logits)
        assert float(value) == pytest.approx(float(eager_value), rel=1e-6)
        np.testing.assert_allclose(grad.numpy(), eager_grad.numpy(), rtol=1e-5,
                                   atol=1e-5 * np.abs(eager_grad.numpy()).max())  # fmt: skip


def test_set_loss_arguments_are_checked():
    with pytest.raises(ValueError, match="classes must be one of \\['present', 'all'\\]; "
                                         "received 'some'"):  # fmt: skip
        LovaszSoftmax(classes="some")
    with pytest.raises(ValueError, match="per_image must be True or False; received 'yes'"):
        LovaszSoftmax(per_image="yes")
    with pytest.raises(ValueError, match="smooth must be a number >= 0; received -1"):
        DiceLoss(smooth=-1)
    with pytest.raises(ValueError, match="lovasz_weight must be a number >= 0"):
        CrossEntropyLovasz(lovasz_weight=-0.5)
    with pytest.raises(ValueError, match="FocalLoss: gamma must be a number >= 0; received -1"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="received True"):
        FocalLoss(gamma=True)
    assert FocalLoss(gamma=1).gamma == 1.0
    labels, logits = _case()
    with pytest.raises(ValueError, match="2 entries but the logits have 4 classes"):
        LovaszSoftmax(class_weights=[1.0, 2.0])(labels, logits)


# === make_loss, the command line and model.fit ===


def test_make_loss_builds_each_name_with_its_options():
    from fcn_keras.choices import LOSSES
    from fcn_keras.training import make_loss

    classes = {"cross_entropy": SegmentationCrossEntropy, "focal": FocalLoss,
               "lovasz": LovaszSoftmax, "dice": DiceLoss,
               "cross_entropy+lovasz": CrossEntropyLovasz}  # fmt: skip
    assert set(classes) == set(LOSSES)
    for name, cls in classes.items():
        loss = make_loss(name, ignore_label=11, class_weights=[1.0, 2.0])
        assert type(loss) is cls and loss.ignore_label == 11 and loss.class_weights == [1.0, 2.0]
    loss = make_loss({"name": "cross_entropy+lovasz", "lovasz_weight": 0.5, "per_image": True,
                      "classes": "all"}, ignore_label=11)  # fmt: skip
    assert (loss.lovasz_weight, loss.per_image, loss.classes) == (0.5, True, "all")
    assert make_loss("dice", dice_smooth=0.0, classes="all").smooth == 0.0
    assert make_loss("lovasz", per_image=None).per_image is False  # None: the loss's default
    with pytest.raises(ValueError, match=r"'lovasz_weight' applies to \['cross_entropy\+lovasz'\], "
                                         "not to loss 'focal'"):  # fmt: skip
        make_loss("focal", lovasz_weight=1.0)
    with pytest.raises(ValueError, match="Unknown loss option 'gamma'"):
        make_loss("focal", gamma=1.0)
    with pytest.raises(ValueError, match="needs a 'name' key"):
        make_loss({"per_image": True})


def test_cli_loss_options(tmp_path, capsys):
    from fcn_keras.cli import build_parser, main
    from fcn_keras.commands.train import _loss

    args = build_parser().parse_args(["train", "fcn32s", "--out", str(tmp_path), "--loss",
                                      "cross_entropy+lovasz", "--lovasz-weight", "0.5",
                                      "--per-image"])  # fmt: skip
    assert _loss(args) == {"name": "cross_entropy+lovasz", "lovasz_weight": 0.5, "per_image": True}
    args = build_parser().parse_args(["train", "fcn32s", "--out", str(tmp_path), "--loss", "dice"])
    assert _loss(args) == "dice"
    assert main(["train", "fcn32s", "--out", str(tmp_path), "--loss", "lovasz",
                 "--dice-smooth", "2"]) == 2  # fmt: skip
    assert "'dice_smooth' applies to ['dice'], not to loss 'lovasz'" in capsys.readouterr().err


@pytest.mark.slow
def test_each_loss_name_compiles_and_fits():
    # Eager train steps keep this fast (a traced VGG16 train step costs ~5 s per loss on a
    # 2-core CPU); the losses' graph path is checked in the test above.
    import fcn_keras
    from fcn_keras.choices import LOSSES
    from fcn_keras.training import make_loss

    rng = np.random.default_rng(23)
    images = rng.integers(0, 256, (4, 32, 32, 3)).astype("float32")
    masks = rng.integers(0, 3, (4, 32, 32)).astype("int32")
    masks[:, :4] = 255
    model = fcn_keras.FCN32s(num_classes=3, backbone_weights=None, fc_units=8)
    initial = model.get_weights()
    for name in LOSSES:
        model.set_weights(initial)
        model.compile(optimizer="adam", loss=make_loss(name, ignore_label=255), run_eagerly=True)
        history = model.fit(images, masks, batch_size=2, epochs=1, verbose=0)  # 2 steps
        assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0]), name
        assert any(np.any(w != w0) for w, w0 in zip(model.get_weights(), initial)), name
