"""Per-pixel segmentation losses that respect the ignore label, and class weights.

All losses take integer masks `y_true` of shape `(batch, H, W)` (a trailing
axis of 1 is accepted) and float logits `y_pred` of shape
`(batch, H, W, num_classes)`, and return the **mean over the valid pixels of
the whole batch**: pixels labelled `ignore_label` contribute nothing, neither
to the sum nor to the count, and a batch in which every pixel is ignored has
loss 0 (not NaN). Computations run in float32 whatever the dtype policy.

- `SegmentationCrossEntropy`: softmax cross-entropy from logits, optionally
  class-weighted. Unweighted, it equals
  `keras.losses.SparseCategoricalCrossentropy(from_logits=True,
  ignore_class=ignore_label)` (checked in the tests).
- `FocalLoss`: the focal loss of Lin et al. (2017), `-(1 - p_t)**gamma log p_t`.
- `LovaszSoftmax`: the Lovasz-Softmax loss of Berman et al. (2018), a convex
  surrogate of the per-class Jaccard (IoU) loss on softmax probabilities.
- `DiceLoss`: the soft Dice loss `1 - 2|P.G| / (|P| + |G|)` per class.
- `CrossEntropyLovasz`: `SegmentationCrossEntropy + lovasz_weight * LovaszSoftmax`,
  the combination used in practice (cross-entropy for stable early training,
  Lovasz for the IoU the benchmark measures).
- `median_frequency_weights`: median-frequency class balancing computed from
  a dataset (Eigen & Fergus 2015, as used by SegNet on CamVid).

Normalisation: the paper's Caffe nets sum the loss over pixels ("unnormalized
loss", hence its learning rates of 1e-10 .. 1e-14); here the loss is the mean
over valid pixels, so learning rates are about `pixels per batch` times larger
(see `fcn_keras/training.py`). With class weights the weighted per-pixel losses
are still divided by the number of valid pixels (Caffe's "VALID"
normalisation), not by the sum of the weights.

Under `tf.distribute` each replica computes the mean over its own valid
pixels and Keras averages the replicas' losses; this equals the global mean
whenever the replicas hold the same number of valid pixels.

`LovaszSoftmax` and `DiceLoss` are not means of per-pixel terms: they are set
functions of all the pixels they see (with `per_image=False`, the whole
batch). Under `tf.distribute` each replica computes them on its own share of
the batch and Keras averages the replicas' values, which is an approximation
of the loss of the global batch (the average of per-replica IoU surrogates,
not the surrogate of the pooled pixels); the two agree with one replica, and
`LovaszSoftmax(per_image=True)` agrees exactly when every replica holds the
same number of images with valid pixels.

Reference: Long et al. 2015, Section 4.3 ("per-pixel multinomial logistic
loss ... ignoring ambiguous or difficult pixels").
"""

import keras
import numpy as np
from keras import ops

__all__ = ["SegmentationCrossEntropy", "FocalLoss", "LovaszSoftmax", "DiceLoss",
           "CrossEntropyLovasz", "median_frequency_weights"]  # fmt: skip


def _valid_pixels(y_true, y_pred, ignore_label):
    """Flatten masks/logits to per-pixel rows; return (labels, logits, valid, scale)."""
    y_pred = ops.cast(y_pred, "float32")
    num_classes = y_pred.shape[-1]
    y_true = ops.cast(y_true, "int32")
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
    valid = ops.not_equal(y_true, ignore_label)
    # Ignored pixels get a harmless label 0 and are multiplied by 0 afterwards.
    labels = ops.where(valid, y_true, ops.zeros_like(y_true))
    valid_f = ops.cast(valid, "float32")
    total = ops.cast(ops.size(valid_f), "float32")
    count = ops.sum(valid_f)
    # Keras reduces with "sum_over_batch_size" (sum / number of pixels): scaling each
    # valid pixel by total / count turns that into the mean over the valid pixels.
    scale = valid_f * ops.divide_no_nan(total, count)
    return labels, y_pred, num_classes, scale


def _check_class_weights(class_weights, name):
    if class_weights is None:
        return None
    values = np.asarray(class_weights, dtype="float32")
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)) or np.any(
        values < 0
    ):
        raise ValueError(
            f"{name}: class_weights must be a 1-D sequence of at least 2 finite "
            f"non-negative numbers (one per class); received {class_weights!r}."
        )
    return [float(v) for v in values]


def _class_weight_vector(class_weights, num_classes):
    """The class weights as a float32 `(num_classes,)` tensor (all 1 when None)."""
    if class_weights is None:
        return ops.ones((num_classes,), "float32")
    if len(class_weights) != num_classes:
        raise ValueError(
            f"class_weights has {len(class_weights)} entries but the logits have "
            f"{num_classes} classes; give one weight per class."
        )
    return ops.convert_to_tensor(class_weights, "float32")


def _pixel_weights(labels, class_weights, num_classes):
    if class_weights is None:
        return None
    return ops.take(_class_weight_vector(class_weights, num_classes), labels)


@keras.saving.register_keras_serializable(package="fcn_keras")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy from logits, mean over non-ignored pixels.

    Args:
        ignore_label: label of void pixels, excluded from the loss. Defaults
            to 255 (PASCAL VOC).
        class_weights: optional sequence of one weight per class (e.g. from
            `median_frequency_weights`); each pixel's loss is multiplied by
            the weight of its true class. Defaults to `None` (all 1).
        reduction: Keras reduction. Defaults to `"sum_over_batch_size"`,
            which (with the scaling described in the module docstring) is the
            mean over valid pixels; other reductions see per-pixel losses
            scaled by `pixels / valid pixels`.
        name: loss name. Defaults to `"segmentation_cross_entropy"`.

    Returns:
        Called as `loss(y_true, y_pred)`: a float32 scalar.

    Example:
    >>> model.compile(optimizer="adam",
    ...               loss=fcn_keras.SegmentationCrossEntropy(ignore_label=255))

    Reference: Long et al. 2015, Section 4.3.
    """

    def __init__(
        self,
        ignore_label=255,
        class_weights=None,
        reduction="sum_over_batch_size",
        name="segmentation_cross_entropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.ignore_label = int(ignore_label)
        self.class_weights = _check_class_weights(class_weights, type(self).__name__)

    def call(self, y_true, y_pred):
        labels, logits, num_classes, scale = _valid_pixels(y_true, y_pred, self.ignore_label)
        per_pixel = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        weights = _pixel_weights(labels, self.class_weights, num_classes)
        if weights is not None:
            per_pixel = per_pixel * weights
        return per_pixel * scale

    def get_config(self):
        config = super().get_config()
        config.update(ignore_label=self.ignore_label, class_weights=self.class_weights)
        return config


@keras.saving.register_keras_serializable(package="fcn_keras")
class FocalLoss(keras.losses.Loss):
    """Focal loss `-(1 - p_t)**gamma * log(p_t)` from logits, mean over valid pixels.

    Down-weights well-classified pixels so that training concentrates on the
    hard ones (object boundaries, rare classes). `gamma=0` is the cross-entropy.

    Args:
        gamma: focusing parameter >= 0. Defaults to 2.0 (Lin et al.).
        ignore_label: label of void pixels. Defaults to 255.
        class_weights: optional per-class weights (the "alpha" of Lin et al.),
            multiplied in like `SegmentationCrossEntropy`'s. Defaults to `None`.
        reduction: Keras reduction. Defaults to `"sum_over_batch_size"`.
        name: loss name. Defaults to `"focal_loss"`.

    Returns:
        Called as `loss(y_true, y_pred)`: a float32 scalar.

    Example:
    >>> model.compile(optimizer="adam", loss=fcn_keras.FocalLoss(gamma=2.0))

    Reference: Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object
    Detection", ICCV 2017 (arXiv:1708.02002), Eq. 5.
    """

    def __init__(
        self,
        gamma=2.0,
        ignore_label=255,
        class_weights=None,
        reduction="sum_over_batch_size",
        name="focal_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = _check_non_negative(gamma, "gamma", type(self).__name__)
        self.ignore_label = int(ignore_label)
        self.class_weights = _check_class_weights(class_weights, type(self).__name__)

    def call(self, y_true, y_pred):
        labels, logits, num_classes, scale = _valid_pixels(y_true, y_pred, self.ignore_label)
        log_probs = ops.log_softmax(logits, axis=-1)
        log_pt = ops.sum(log_probs * ops.one_hot(labels, num_classes, dtype="float32"), axis=-1)
        per_pixel = -ops.power(1.0 - ops.exp(log_pt), self.gamma) * log_pt
        weights = _pixel_weights(labels, self.class_weights, num_classes)
        if weights is not None:
            per_pixel = per_pixel * weights
        return per_pixel * scale

    def get_config(self):
        config = super().get_config()
        config.update(
            gamma=self.gamma, ignore_label=self.ignore_label, class_weights=self.class_weights
        )
        return config


# === Set losses: Lovasz-Softmax and Dice ===

_CLASS_CHOICES = ("present", "all")


def _check_choice(value, name, owner):
    if value not in _CLASS_CHOICES:
        raise ValueError(
            f"{owner}: {name} must be one of {list(_CLASS_CHOICES)}; received {value!r}."
        )
    return value


def _check_bool(value, name, owner):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {name} must be True or False; received {value!r}.")
    return bool(value)


def _check_non_negative(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{owner}: {name} must be a number >= 0; received {value!r}.")
    return float(value)


def _grouped_probabilities(y_true, y_pred, ignore_label, per_image):
    """Softmax probabilities and one-hot masks grouped as `(groups, classes, pixels)`.

    A group is the whole batch (`per_image=False`, one group) or one image.
    Returns `(probs, fg, valid, num_classes)`: `probs` and `fg` float32
    `(G, C, P)` with `fg` zero on void pixels, `valid` float32 `(G, 1, P)`.
    """
    labels, logits, num_classes, _ = _valid_pixels(y_true, y_pred, ignore_label)
    valid = ops.not_equal(ops.cast(y_true, "int32"), ignore_label)
    if len(valid.shape) == len(y_pred.shape):
        valid = ops.squeeze(valid, axis=-1)
    groups = ops.shape(logits)[0] if per_image else 1
    probs = ops.reshape(ops.softmax(logits, axis=-1), (groups, -1, num_classes))
    valid = ops.reshape(ops.cast(valid, "float32"), (groups, 1, -1))
    fg = ops.reshape(ops.one_hot(labels, num_classes, dtype="float32"), (groups, -1, num_classes))
    probs = ops.transpose(probs, (0, 2, 1))
    fg = ops.transpose(fg, (0, 2, 1)) * valid
    return probs, fg, valid, num_classes


def _class_mean(per_class, present, valid, classes, class_weights, num_classes):
    """Weighted mean over the chosen classes of `(G, C)` values; 0 for groups without valid pixels.

    Returns `(values, group_has_valid)`, both `(G,)` float32.
    """
    has_valid = ops.cast(ops.sum(valid, axis=(1, 2)) > 0, "float32")
    chosen = present if classes == "present" else ops.ones_like(present) * has_valid[:, None]
    weights = chosen * _class_weight_vector(class_weights, num_classes)[None, :]
    values = ops.divide_no_nan(ops.sum(weights * per_class, axis=1), ops.sum(weights, axis=1))
    return values * has_valid, has_valid


def _mean_over_groups(values, has_valid):
    """Scale `(G,)` values so that Keras's mean is the mean over groups with valid pixels."""
    total = ops.cast(ops.shape(values)[0], "float32")
    return values * ops.divide_no_nan(total, ops.sum(has_valid))


def _lovasz_gradient(fg_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss at ground truth sorted by error.

    With `fg_sorted` the 0/1 ground truth of one class ordered by decreasing
    error, entry `i` is `J(i) - J(i - 1)` where `J(i)` is the Jaccard loss of
    predicting the first `i + 1` pixels as the class. Operates on the last axis.

    Args:
        fg_sorted: float tensor `(..., P)` of 0/1 values.

    Returns:
        A float tensor of the same shape.

    Example:
    >>> _lovasz_gradient(keras.ops.convert_to_tensor([[1.0, 0.0, 1.0]]))  # [[0.5, 0.1667, 0.3333]]

    Reference: Berman et al. 2018, Algorithm 1 (arXiv:1705.08790).
    """
    gts = ops.sum(fg_sorted, axis=-1, keepdims=True)
    intersection = gts - ops.cumsum(fg_sorted, axis=-1)
    union = gts + ops.cumsum(1.0 - fg_sorted, axis=-1)  # >= 1 from the first pixel on
    jaccard = 1.0 - intersection / union
    return ops.concatenate([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)


@keras.saving.register_keras_serializable(package="fcn_keras")
class LovaszSoftmax(keras.losses.Loss):
    """Lovasz-Softmax loss: a convex surrogate of the mean Jaccard (IoU) loss.

    For each class `c`, the errors `|fg_c - p_c|` of the softmax probabilities
    are sorted in decreasing order and dotted with the Lovasz gradient of the
    ground truth in that order: the Lovasz extension of the class's Jaccard
    loss, exact at 0/1 predictions. The class losses are averaged (weighted by
    `class_weights` if given) over the classes present in the ground truth
    (`classes="present"`) or over all classes. Void pixels are ordered after
    every valid pixel with error 0, which is the same as removing them before
    sorting (the gradient at a position depends only on the pixels before it).

    With `per_image=False` the whole batch is one set of pixels (the paper's
    choice for segmentation); with `per_image=True` the loss is computed per
    image and averaged over the images holding valid pixels (the reference
    code counts an all-void image as 0 in that mean; here it is left out, as
    void pixels are everywhere else). A batch with no valid pixel gives 0.

    Under `tf.distribute` each replica computes the loss of its own share of
    the batch and Keras averages the replicas' values: for `per_image=False`
    this approximates the loss of the global batch (the Lovasz loss is not a
    mean of per-pixel terms, so the average of per-replica losses differs from
    the loss of the pooled pixels); for `per_image=True` it is exact when the
    replicas hold equally many images with valid pixels.

    Args:
        per_image: compute per image and average. Defaults to False.
        classes: `"present"` (classes in the ground truth of the set) or
            `"all"`. Defaults to `"present"`.
        ignore_label: label of void pixels. Defaults to 255.
        class_weights: optional per-class weights of the class mean. Defaults
            to `None` (all 1).
        reduction: Keras reduction. Defaults to `"sum_over_batch_size"`.
        name: loss name. Defaults to `"lovasz_softmax"`.

    Returns:
        Called as `loss(y_true, y_pred)` with logits `y_pred`: a float32 scalar,
        Keras's reduction of `call`'s one value per set of pixels: shape `(G,)`,
        `G` the batch size with `per_image=True`, else `(1,)`. A `sample_weight`
        (of `loss(...)` or `fit`) therefore weights sets, not pixels: a
        `(batch,)` weight multiplies each image's loss with `per_image=True`
        (the mean of `w_i * loss_i` over the images with valid pixels), and
        the one batch value by the mean weight otherwise; a per-pixel
        `(batch, H, W)` weight is broadcast the same way with
        `per_image=False` and refused with `per_image=True`. Weights of 1
        change nothing. `fit(class_weight=...)` is no per-class weight here
        (Keras reads the mask as one label per sample to make a sample
        weight of it): pass `class_weights` instead.

    Example:
    >>> model.compile(optimizer="adam", loss=fcn_keras.LovaszSoftmax(ignore_label=11))

    Reference: Berman, Rannen Triki, Blaschko, "The Lovasz-Softmax loss: A
    tractable surrogate for the optimization of the intersection-over-union
    measure in neural networks", CVPR 2018 (arXiv:1705.08790), Eq. 8-9.
    """

    def __init__(
        self,
        per_image=False,
        classes="present",
        ignore_label=255,
        class_weights=None,
        reduction="sum_over_batch_size",
        name="lovasz_softmax",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        owner = type(self).__name__
        self.per_image = _check_bool(per_image, "per_image", owner)
        self.classes = _check_choice(classes, "classes", owner)
        self.ignore_label = int(ignore_label)
        self.class_weights = _check_class_weights(class_weights, owner)

    def call(self, y_true, y_pred):
        probs, fg, valid, num_classes = _grouped_probabilities(
            y_true, y_pred, self.ignore_label, self.per_image
        )
        errors = ops.abs(fg - probs) * valid
        # Descending errors, void pixels (key -1) after every valid one.
        order = ops.argsort(-ops.where(valid > 0, errors, -1.0), axis=-1)
        errors_sorted = ops.take_along_axis(errors, order, axis=-1)
        fg_sorted = ops.take_along_axis(fg, order, axis=-1)
        grad = ops.stop_gradient(_lovasz_gradient(fg_sorted))
        per_class = ops.sum(errors_sorted * grad, axis=-1)  # (G, C)
        present = ops.cast(ops.sum(fg, axis=-1) > 0, "float32")
        values, has_valid = _class_mean(per_class, present, valid, self.classes,
                                        self.class_weights, num_classes)  # fmt: skip
        return _mean_over_groups(values, has_valid)

    def get_config(self):
        config = super().get_config()
        config.update(per_image=self.per_image, classes=self.classes,
                      ignore_label=self.ignore_label, class_weights=self.class_weights)  # fmt: skip
        return config


@keras.saving.register_keras_serializable(package="fcn_keras")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss `1 - (2 sum(p_c g_c) + s) / (sum(p_c) + sum(g_c) + s)` averaged over classes.

    Computed on the softmax probabilities over the valid pixels of the whole
    batch (void pixels count in neither sum). The class losses are averaged
    (weighted by `class_weights` if given) over the classes present in the
    batch's ground truth (`classes="present"`) or over all classes. A batch
    with no valid pixel gives 0. Under `tf.distribute` the average of the
    replicas' losses approximates the loss of the global batch (see the
    module docstring).

    Args:
        smooth: the term `s` added to numerator and denominator; it keeps
            the loss defined for absent classes (`classes="all"`). Defaults
            to 1.0.
        classes: `"present"` or `"all"`. Defaults to `"present"`.
        ignore_label: label of void pixels. Defaults to 255.
        class_weights: optional per-class weights of the class mean. Defaults
            to `None` (all 1).
        reduction: Keras reduction. Defaults to `"sum_over_batch_size"`.
        name: loss name. Defaults to `"dice_loss"`.

    Returns:
        Called as `loss(y_true, y_pred)` with logits `y_pred`: a float32 scalar,
        Keras's reduction of `call`'s one value for the batch, shape `(1,)`. A
        `sample_weight` (of `loss(...)` or `fit`), per image or per pixel, is
        broadcast against it and multiplies the batch value by the mean
        weight: it weights no image or pixel more than another, and weights
        of 1 change nothing. `fit(class_weight=...)` is no per-class weight
        here (Keras reads the mask as one label per sample to make a sample
        weight of it): pass `class_weights` instead.

    Example:
    >>> model.compile(optimizer="adam", loss=fcn_keras.DiceLoss(ignore_label=11))

    Reference: Milletari, Navab, Ahmadi, "V-Net", 3DV 2016 (arXiv:1606.04797),
    Eq. 1 (here with the un-squared denominator and a smoothing term).
    """

    def __init__(
        self,
        smooth=1.0,
        classes="present",
        ignore_label=255,
        class_weights=None,
        reduction="sum_over_batch_size",
        name="dice_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        owner = type(self).__name__
        self.smooth = _check_non_negative(smooth, "smooth", owner)
        self.classes = _check_choice(classes, "classes", owner)
        self.ignore_label = int(ignore_label)
        self.class_weights = _check_class_weights(class_weights, owner)

    def call(self, y_true, y_pred):
        probs, fg, valid, num_classes = _grouped_probabilities(
            y_true, y_pred, self.ignore_label, per_image=False
        )
        intersection = ops.sum(probs * fg, axis=-1)  # (1, C)
        sizes = ops.sum(probs * valid, axis=-1) + ops.sum(fg, axis=-1)
        dice = ops.divide_no_nan(2.0 * intersection + self.smooth, sizes + self.smooth)
        present = ops.cast(ops.sum(fg, axis=-1) > 0, "float32")
        values, has_valid = _class_mean(1.0 - dice, present, valid, self.classes,
                                        self.class_weights, num_classes)  # fmt: skip
        return _mean_over_groups(values, has_valid)

    def get_config(self):
        config = super().get_config()
        config.update(smooth=self.smooth, classes=self.classes, ignore_label=self.ignore_label,
                      class_weights=self.class_weights)  # fmt: skip
        return config


@keras.saving.register_keras_serializable(package="fcn_keras")
class CrossEntropyLovasz(keras.losses.Loss):
    """`SegmentationCrossEntropy + lovasz_weight * LovaszSoftmax`, from one set of logits.

    The cross-entropy term is the mean over valid pixels (class-weighted per
    pixel if `class_weights` is given); the Lovasz term is `LovaszSoftmax`
    with the same ignore label and class weights (weighting its class mean).

    Args:
        lovasz_weight: weight of the Lovasz term, >= 0. Defaults to 1.0.
        per_image, classes: passed to `LovaszSoftmax`. Default to False and
            `"present"`.
        ignore_label: label of void pixels. Defaults to 255.
        class_weights: optional per-class weights. Defaults to `None`.
        reduction: Keras reduction. Defaults to `"sum_over_batch_size"`.
        name: loss name. Defaults to `"cross_entropy_lovasz"`.

    Returns:
        Called as `loss(y_true, y_pred)` with logits `y_pred`: a float32 scalar,
        Keras's reduction of `call`'s one value for the batch, shape `(1,)`
        (whatever `per_image`). A `sample_weight` (of `loss(...)` or `fit`),
        per image or per pixel, is broadcast against it and multiplies the
        batch value by the mean weight, so weights of 1 change nothing and
        no image or pixel is weighted more than another. `fit(class_weight=...)`
        is no per-class weight here (Keras reads the mask as one label per
        sample to make a sample weight of it): pass `class_weights` instead.

    Example:
    >>> model.compile(optimizer="adam",
    ...               loss=fcn_keras.CrossEntropyLovasz(lovasz_weight=0.5, ignore_label=11))

    Reference: the weighted sum is this package's; it is motivated by the
    practice of Berman et al. 2018 (arXiv:1705.08790), Section 4, who train
    with cross-entropy first and then switch to Lovasz-Softmax (the paper
    defines no sum of the two).
    """

    def __init__(
        self,
        lovasz_weight=1.0,
        per_image=False,
        classes="present",
        ignore_label=255,
        class_weights=None,
        reduction="sum_over_batch_size",
        name="cross_entropy_lovasz",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        owner = type(self).__name__
        self.lovasz_weight = _check_non_negative(lovasz_weight, "lovasz_weight", owner)
        self._cross_entropy = SegmentationCrossEntropy(ignore_label, class_weights)
        self._lovasz = LovaszSoftmax(per_image, classes, ignore_label, class_weights)
        self.per_image, self.classes = self._lovasz.per_image, self._lovasz.classes
        self.ignore_label = self._lovasz.ignore_label
        self.class_weights = self._lovasz.class_weights

    def call(self, y_true, y_pred):
        cross_entropy = ops.mean(self._cross_entropy.call(y_true, y_pred))
        lovasz = ops.mean(self._lovasz.call(y_true, y_pred))
        return ops.reshape(cross_entropy + self.lovasz_weight * lovasz, (1,))

    def get_config(self):
        config = super().get_config()
        config.update(lovasz_weight=self.lovasz_weight, per_image=self.per_image,
                      classes=self.classes, ignore_label=self.ignore_label,
                      class_weights=self.class_weights)  # fmt: skip
        return config


def median_frequency_weights(dataset, num_classes, ignore_label=255, max_batches=None):
    """Median-frequency class weights computed from a dataset's masks.

    `freq(c)` is the number of pixels of class `c` divided by the number of
    pixels (non-ignored) in the images where `c` appears; the weight is
    `median(freq) / freq(c)`, the median taken over the classes that appear.
    Classes that never appear get weight 1.0 (they contribute no loss on this
    data anyway) and are named in the returned `absent` list.

    Args:
        dataset: iterable of `(images, masks)` batches (a `tf.data.Dataset`
            from `fcn_keras.load_dataset`, or NumPy arrays); masks are integer
            `(batch, H, W)`. A dataset that repeats forever needs `max_batches`.
        num_classes: number of classes; mask values outside `[0, num_classes)`
            other than `ignore_label` raise a ValueError.
        ignore_label: void label, not counted. Defaults to 255.
        max_batches: optional limit on the batches read. Defaults to all.

    Returns:
        A `(weights, absent)` tuple: a list of `num_classes` floats and the
        sorted list of class ids that never appeared.

    Example:
    >>> weights, _ = fcn_keras.median_frequency_weights(
    ...     fcn_keras.load_dataset("camvid", "train", data_dir=d), num_classes=11,
    ...     ignore_label=11)
    >>> loss = fcn_keras.SegmentationCrossEntropy(ignore_label=11, class_weights=weights)

    Reference: Eigen & Fergus, "Predicting Depth, Surface Normals and Semantic
    Labels with a Common Multi-Scale Convolutional Architecture", ICCV 2015.
    """
    class_pixels = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)  # pixels of images containing c
    for index, batch in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        masks = np.asarray(batch[1])
        if masks.ndim == 2:
            masks = masks[None]
        masks = masks.reshape(masks.shape[0], -1).astype(np.int64)
        for mask in masks:
            mask = mask[mask != ignore_label]
            bad = (mask < 0) | (mask >= num_classes)
            if np.any(bad):
                raise ValueError(
                    f"median_frequency_weights: mask values {sorted(set(mask[bad].tolist()))[:10]} "
                    f"are outside [0, {num_classes}) and are not the ignore label "
                    f"{ignore_label}."
                )
            counts = np.bincount(mask, minlength=num_classes)
            class_pixels += counts
            image_pixels[counts > 0] += mask.size
    present = class_pixels > 0
    if not np.any(present):
        raise ValueError(
            "median_frequency_weights: the dataset holds no labelled pixels "
            f"(every pixel is {ignore_label} or the dataset is empty)."
        )
    freq = np.where(present, class_pixels / np.maximum(image_pixels, 1), 0.0)
    median = float(np.median(freq[present]))
    weights = np.where(present, median / np.where(present, freq, 1.0), 1.0)
    return [float(w) for w in weights], [int(c) for c in np.flatnonzero(~present)]
