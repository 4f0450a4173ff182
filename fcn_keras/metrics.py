"""The paper's segmentation metrics from one confusion matrix, as a stateful Keras metric.

With `n_ij` the number of pixels of class `i` predicted as class `j`,
`t_i = sum_j n_ij` the pixels of class `i` and `n_cl` the number of classes
(Long et al. 2015, Section 5):

- pixel accuracy:          `sum_i n_ii / sum_i t_i`
- mean accuracy:           `(1/n_cl) sum_i n_ii / t_i`
- mean IU:                 `(1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)`
- frequency weighted IU:   `(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)`

Pixels whose label is the ignore label (void) are not counted at all.

Classes that are absent: as in the reference implementation (`score.py` of
shelhamer/fcn.berkeleyvision.org, which takes `np.nanmean`), a class's
accuracy is undefined (NaN) when it has no ground-truth pixels, and its IU is
undefined when it appears neither in the ground truth nor in the prediction.
Mean accuracy averages over the classes present in the ground truth; mean IU
averages over the classes present in the ground truth *or* the prediction (a
class predicted but absent from the ground truth has IU 0 and counts);
frequency-weighted IU gives absent classes weight 0. Per-class IoU reports
NaN for undefined classes (JSON `null` in `fcn-keras evaluate`).

Boundary quality (trimap): `boundary_band_mask` marks the valid pixels within
`width` pixels, in Chebyshev distance (a `(2 width + 1)`-pixel square window),
of a valid pixel with a different label; `trimap_confusion` is the confusion
matrix of those pixels only, so its mean IU measures the predictions near
ground-truth class boundaries (the trimap evaluation of Kohli et al. 2009,
used for segmentation by Chen et al., DeepLab, Section 4.1). Void pixels
neither count nor make a boundary. `fcn_keras.evaluate(..., trimap_widths=)`
reports it.

NumPy confusion matrices: `confusion_matrix(labels, predictions,
num_classes, ignore_label)` and `scores_from_confusion(matrix)` are the one
NumPy path from label maps to the metrics. `ConfusionAccumulator` streams
them over batches (`update(labels, predictions)`, then `result()`, trimap
bands included): the one accumulator behind `fcn_keras.evaluate`,
`fcn_keras.evaluation.evaluate_predictions`, the export verification and the
benchmarks.

The Keras metric's confusion matrix is a float64 variable (exact counts up to 2**53 pixels)
with SUM aggregation, so replicas' counts add up under `tf.distribute`.
"""

import keras
import numpy as np
from keras import ops

__all__ = ["SegmentationMetrics", "ConfusionAccumulator", "confusion_matrix",
           "scores_from_confusion", "boundary_band_mask", "trimap_confusion",
           "TRIMAP_WIDTHS"]  # fmt: skip

SCORE_NAMES = ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu")
TRIMAP_WIDTHS = (2, 4, 8, 16)


def confusion_matrix(labels, predictions, num_classes, ignore_label=255):
    """NumPy confusion matrix `(num_classes, num_classes)`: rows truth, columns prediction.

    Args:
        labels: integer array of true classes (any shape).
        predictions: integer array of predicted classes, same shape.
        num_classes: number of classes.
        ignore_label: label of pixels to leave out, or None (count every
            pixel). Defaults to 255.

    Returns:
        int64 array; entry `[i, j]` counts pixels of class `i` predicted `j`.

    Example:
    >>> m = confusion_matrix([[0, 1], [1, 255]], [[0, 1], [0, 0]], num_classes=2)
    >>> m.tolist(), scores_from_confusion(m)["mean_iu"]
    ([[1, 0], [1, 1]], 0.5)
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions must have the same number of pixels; received "
            f"{labels.size} and {predictions.size}."
        )
    if ignore_label is not None:
        keep = labels != ignore_label
        labels, predictions = labels[keep], predictions[keep]
    bad = (labels < 0) | (labels >= num_classes)
    if np.any(bad):
        raise ValueError(
            f"labels {sorted(set(labels[bad].tolist()))[:10]} are outside [0, {num_classes}) "
            f"and are not the ignore label {ignore_label}."
        )
    return np.bincount(
        labels * num_classes + predictions, minlength=num_classes * num_classes
    ).reshape(num_classes, num_classes)


def scores_from_confusion(matrix):
    """The paper's four metrics and per-class IoU/accuracy from a confusion matrix (NumPy).

    Args:
        matrix: `(num_classes, num_classes)` counts, rows truth, columns prediction.

    Returns:
        Dict with `pixel_accuracy`, `mean_accuracy`, `mean_iu`,
        `frequency_weighted_iu` (floats; NaN when no pixel was counted),
        `per_class_iou` and `per_class_accuracy` (lists, NaN where undefined).
    """
    hist = np.asarray(matrix, dtype=np.float64)
    diag = np.diag(hist)
    truth = hist.sum(axis=1)
    predicted = hist.sum(axis=0)
    union = truth + predicted - diag
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(truth > 0, diag / truth, np.nan)
        iou = np.where(union > 0, diag / union, np.nan)
        total = truth.sum()
        pixel_accuracy = diag.sum() / total if total > 0 else np.nan
        freq = truth / total if total > 0 else np.zeros_like(truth)
    nan_if_empty = lambda v: float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")  # noqa: E731
    return {
        "pixel_accuracy": float(pixel_accuracy),
        "mean_accuracy": nan_if_empty(accuracy),
        "mean_iu": nan_if_empty(iou),
        "frequency_weighted_iu": float(np.nansum(freq * iou)) if total > 0 else float("nan"),
        "per_class_iou": [float(v) for v in iou],
        "per_class_accuracy": [float(v) for v in accuracy],
    }


def _window_extreme(values, width, reduce, fill):
    """Max/min of `values` (..., H, W) over a `(2 width + 1)` square window, borders `fill`."""
    out = values
    for axis in (-2, -1):
        size = values.shape[axis]
        pad = [(0, 0)] * values.ndim
        pad[axis] = (width, width)
        padded = np.pad(out, pad, constant_values=fill)
        result = np.take(padded, np.arange(0, size), axis=axis)
        for shift in range(1, 2 * width + 1):
            result = reduce(result, np.take(padded, np.arange(shift, shift + size), axis=axis))
        out = result
    return out


def boundary_band_mask(mask, width, ignore_label=255):
    """Valid pixels within `width` px (Chebyshev distance) of a valid pixel of another class.

    A pixel `p` with a valid label is in the band when some pixel `q` with
    `max(|p_y - q_y|, |p_x - q_x|) <= width` has a valid label different
    from `p`'s. Void pixels (`ignore_label`) are never in the band and never
    make a boundary; nothing wraps around the image borders.

    Args:
        mask: integer label map `(H, W)` or a batch `(B, H, W)`.
        width: band half-width in pixels, an int >= 1.
        ignore_label: void label, or None. Defaults to 255.

    Returns:
        Boolean array of `mask`'s shape.

    Example:
    >>> boundary_band_mask(np.array([[0, 0, 0, 1]]), width=1).astype(int).tolist()
    [[0, 0, 1, 1]]

    Reference: Kohli et al. 2009 ("trimap" band around object boundaries).
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"boundary_band_mask: width must be an int >= 1; received {width!r}.")
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(
            f"boundary_band_mask: mask must be (H, W) or (B, H, W); received shape {mask.shape}."
        )
    labels = mask.astype(np.int64)
    valid = np.ones(labels.shape, bool) if ignore_label is None else labels != ignore_label
    low, high = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    largest = _window_extreme(np.where(valid, labels, low), int(width), np.maximum, low)
    smallest = _window_extreme(np.where(valid, labels, high), int(width), np.minimum, high)
    return valid & ((largest != labels) | (smallest != labels))


def trimap_confusion(labels, predictions, num_classes, width, ignore_label=255):
    """`confusion_matrix` of the pixels in `boundary_band_mask(labels, width)` only.

    Args:
        labels: integer label map `(H, W)` or batch `(B, H, W)`.
        predictions: predicted classes, same shape.
        num_classes: number of classes.
        width: band half-width in pixels (Chebyshev distance).
        ignore_label: void label. Defaults to 255.

    Returns:
        int64 `(num_classes, num_classes)` matrix (rows truth); its
        `scores_from_confusion(...)["mean_iu"]` is the trimap mean IU.

    Example:
    >>> m = trimap_confusion(labels, predictions, 11, width=4)
    >>> scores_from_confusion(m)["mean_iu"]
    """
    labels = np.asarray(labels)
    band = boundary_band_mask(labels, width, ignore_label)
    predictions = np.asarray(predictions)
    if predictions.shape != labels.shape:
        raise ValueError(
            f"trimap_confusion: predictions of shape {predictions.shape} do not match labels "
            f"of shape {labels.shape}."
        )
    return confusion_matrix(labels[band], predictions[band], num_classes, ignore_label=None)


class ConfusionAccumulator:
    """Confusion matrix of label maps, streamed over batches, with the trimap bands' matrices.

    `update(labels, predictions)` adds a batch (`confusion_matrix`, and
    `trimap_confusion` for every band width); `result()` gives the scores.
    The NumPy counterpart of `SegmentationMetrics` (which runs inside
    `model.fit`), for evaluation loops over predictions made any way.

    Args:
        num_classes: number of classes.
        ignore_label: void label, not counted (nor a boundary), or None.
            Defaults to 255.
        trimap_widths: band half-widths in pixels for the trimap mean IU
            (e.g. `(2, 4, 8, 16)`). Defaults to none.

    Attributes:
        matrix: int64 `(num_classes, num_classes)` counts, rows truth.
        trimaps: `{width: matrix}` of the pixels in each band.
        images: label maps counted so far.

    Example:
    >>> accumulator = ConfusionAccumulator(11, ignore_label=255, trimap_widths=(2, 4))
    >>> for images, labels in batches:
    ...     accumulator.update(labels, np.argmax(model.predict(images), axis=-1))
    >>> accumulator.result()["mean_iu"], accumulator.result()["trimap_mean_iu"][4]

    Reference: Long et al. 2015, Section 5 (the four metrics); Kohli et al.
    2009 (the trimap bands).
    """

    def __init__(self, num_classes, ignore_label=255, trimap_widths=()):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"ConfusionAccumulator: num_classes must be an int >= 1; received {num_classes!r}.")
        self.num_classes = int(num_classes)
        self.ignore_label = None if ignore_label is None else int(ignore_label)
        self.trimap_widths = tuple(int(w) for w in trimap_widths or ())
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.trimaps = {w: np.zeros_like(self.matrix) for w in self.trimap_widths}
        self.images = 0

    def update(self, labels, predictions):
        """Add a batch `(B, H, W)` (or one map `(H, W)`) of labels and predicted classes.

        Args:
            labels: integer label maps.
            predictions: predicted classes, same shape.

        Returns:
            None.

        Raises:
            ValueError: shapes differ, or a label is neither a class nor void.
        """
        labels, predictions = np.asarray(labels), np.asarray(predictions)
        if labels.shape != predictions.shape or labels.ndim not in (2, 3):
            raise ValueError(
                f"ConfusionAccumulator.update: labels {labels.shape} and predictions "
                f"{predictions.shape} must be the same (H, W) or (B, H, W) shape."
            )
        self.matrix += confusion_matrix(labels, predictions, self.num_classes, self.ignore_label)
        for width in self.trimap_widths:
            self.trimaps[width] += trimap_confusion(labels, predictions, self.num_classes, width,
                                                    self.ignore_label)  # fmt: skip
        self.images += 1 if labels.ndim == 2 else labels.shape[0]

    def result(self):
        """The scores of everything added so far.

        Returns:
            `scores_from_confusion(matrix)` (the four metrics, `per_class_iou`,
            `per_class_accuracy`; NaN where undefined) plus `confusion_matrix`
            (the int64 array), `pixels` (counted), `images`, and
            `trimap_mean_iu` / `trimap_pixels` (`{width: value}`, empty
            without trimap widths).
        """
        result = scores_from_confusion(self.matrix)
        result.update(
            confusion_matrix=self.matrix.copy(), pixels=int(self.matrix.sum()), images=self.images,
            trimap_mean_iu={w: scores_from_confusion(m)["mean_iu"] for w, m in self.trimaps.items()},
            trimap_pixels={w: int(m.sum()) for w, m in self.trimaps.items()},
        )  # fmt: skip
        return result


@keras.saving.register_keras_serializable(package="fcn_keras")
class SegmentationMetrics(keras.metrics.Metric):
    """Pixel accuracy, mean accuracy, mean IU and frequency-weighted IU on one confusion matrix.

    Takes integer masks `y_true` `(batch, H, W)` and logits (or
    probabilities) `y_pred` `(batch, H, W, num_classes)`; the predicted class
    is the argmax over the last axis. `result()` is a dict of scalars, which
    `model.fit` flattens into its logs: `pixel_accuracy`, `mean_accuracy`,
    `mean_iu`, `frequency_weighted_iu` (prefixed `val_` on validation data)
    and, with `per_class=True`, `iou_<class>` for every class. See the module
    docstring for how absent classes are treated. Before any update the
    scores are 0.

    Args:
        num_classes: number of classes.
        ignore_label: void label, not counted. Defaults to 255.
        class_names: optional names for the per-class keys. Defaults to the
            class ids.
        per_class: whether `result()` also holds the per-class IoUs.
            Defaults to `False` (keeps the progress bar short); they are
            always available from `per_class_iou()` and `scores()`.
        name: metric name. Defaults to `"segmentation_metrics"`.

    Example:
    >>> model.compile(optimizer="adam", loss=fcn_keras.SegmentationCrossEntropy(),
    ...               metrics=[fcn_keras.SegmentationMetrics(num_classes=21)])
    >>> history = model.fit(train, validation_data=val)
    >>> history.history["val_mean_iu"]

    Reference: Long et al. 2015, Section 5 (the four metrics).
    """

    def __init__(
        self,
        num_classes,
        ignore_label=255,
        class_names=None,
        per_class=False,
        name="segmentation_metrics",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"SegmentationMetrics: num_classes must be an integer >= 2; "
                f"received {num_classes!r}."
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"SegmentationMetrics: {len(class_names)} class_names given for "
                f"{num_classes} classes."
            )
        self.num_classes = num_classes
        self.ignore_label = int(ignore_label)
        self.class_names = list(class_names) if class_names is not None else None
        self.per_class = bool(per_class)
        self.confusion = self.add_variable(
            shape=(num_classes, num_classes),
            initializer="zeros",
            dtype="float64",
            aggregation="sum",
            name="confusion_matrix",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                "SegmentationMetrics does not take sample weights; void pixels are "
                "excluded through ignore_label."
            )
        y_true = ops.cast(y_true, "int32")
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        y_true = ops.reshape(y_true, (-1,))
        predicted = ops.reshape(predicted, (-1,))
        valid = ops.logical_and(
            ops.not_equal(y_true, self.ignore_label),
            ops.logical_and(ops.greater_equal(y_true, 0), ops.less(y_true, self.num_classes)),
        )
        n = self.num_classes
        # Invalid pixels go to an extra bin n*n that is dropped.
        index = ops.where(valid, y_true * n + predicted, n * n)
        # segment_sum with a static number of segments compiles under XLA (bincount does not).
        counts = ops.segment_sum(ops.ones_like(index), index, num_segments=n * n + 1)
        counts = ops.reshape(ops.cast(counts[: n * n], "float64"), (n, n))
        self.confusion.assign_add(counts)

    def _scores(self, hist):
        hist = ops.cast(hist, "float64")
        diag = ops.diagonal(hist)
        truth = ops.sum(hist, axis=1)
        predicted = ops.sum(hist, axis=0)
        union = truth + predicted - diag
        total = ops.sum(truth)
        accuracy = ops.divide_no_nan(diag, truth)
        iou = ops.divide_no_nan(diag, union)
        has_truth = ops.cast(truth > 0, "float64")
        has_union = ops.cast(union > 0, "float64")
        scores = {
            "pixel_accuracy": ops.divide_no_nan(ops.sum(diag), total),
            "mean_accuracy": ops.divide_no_nan(ops.sum(accuracy), ops.sum(has_truth)),
            "mean_iu": ops.divide_no_nan(ops.sum(iou), ops.sum(has_union)),
            "frequency_weighted_iu": ops.divide_no_nan(ops.sum(truth * iou), total),
        }
        return {k: ops.cast(v, "float32") for k, v in scores.items()}, iou, has_union

    def result(self):
        scores, iou, has_union = self._scores(self.confusion)
        if self.per_class:
            nan = ops.full_like(iou, float("nan"))
            iou = ops.cast(ops.where(has_union > 0, iou, nan), "float32")
            for index, key in enumerate(self._class_keys()):
                scores[f"iou_{key}"] = iou[index]
        return scores

    def _class_keys(self):
        return self.class_names or [str(i) for i in range(self.num_classes)]

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), "float64"))

    def confusion_matrix(self):
        """Return the accumulated confusion matrix as an int64 NumPy array."""
        return np.asarray(ops.convert_to_numpy(self.confusion)).astype(np.int64)

    def scores(self):
        """Return `scores_from_confusion` of the accumulated matrix (NumPy floats, NaN-aware)."""
        return scores_from_confusion(self.confusion_matrix())

    def per_class_iou(self):
        """Return `{class name or id: IoU}` (NaN for classes absent from truth and prediction)."""
        return dict(zip(self._class_keys(), self.scores()["per_class_iou"]))

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            ignore_label=self.ignore_label,
            class_names=self.class_names,
            per_class=self.per_class,
        )
        return config
