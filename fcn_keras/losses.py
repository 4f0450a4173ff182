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

Reference: Long et al. 2015, Section 4.3 ("per-pixel multinomial logistic
loss ... ignoring ambiguous or difficult pixels").
"""

import keras
import numpy as np
from keras import ops

__all__ = ["SegmentationCrossEntropy", "FocalLoss", "median_frequency_weights"]


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


def _pixel_weights(labels, class_weights, num_classes):
    if class_weights is None:
        return None
    if len(class_weights) != num_classes:
        raise ValueError(
            f"class_weights has {len(class_weights)} entries but the logits have "
            f"{num_classes} classes; give one weight per class."
        )
    return ops.take(ops.convert_to_tensor(class_weights, "float32"), labels)


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
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
            raise ValueError(f"FocalLoss: gamma must be a number >= 0; received {gamma!r}.")
        self.gamma = float(gamma)
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
