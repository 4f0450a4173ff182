"""Evaluating a trained FCN on a dataset split: the paper's metrics as JSON and Markdown.

`evaluate(model, source, split)` runs the model over every batch of the
split, accumulates one confusion matrix (void pixels left out) and reports
pixel accuracy, mean accuracy, mean IU, frequency-weighted IU and per-class
IoU (see `fcn_keras/metrics.py` for the definitions and the treatment of
absent classes), next to the trivial baseline that always predicts the most
frequent ground-truth class of that split. `fcn-keras evaluate` prints the
same report.

Class names and the ignore label default to the ones the model carries
(`model.dataset_info`, set by `fcn_keras.train`), then to the source's.
With `trimap_widths` the report also gives the mean IU within bands of those
widths around ground-truth class boundaries (`fcn_keras.metrics.trimap_confusion`).
With `input_scale` the images are resized by that factor before the model
and the logits resized bilinearly back to the labels' size before the argmax,
so a model trained at reduced scale is always scored on full-size labels.
"""

import json
import math
import os

import numpy as np

from fcn_keras.metrics import (SCORE_NAMES, confusion_matrix, scores_from_confusion,
                               trimap_confusion)  # fmt: skip

__all__ = ["evaluate", "load_model", "majority_baseline", "report_to_markdown", "report_to_json"]


def load_model(path=None, *, variant=None, num_classes=None, fc_units=4096, **build_kwargs):
    """Load an FCN from a `.keras` file, or build `variant` and load a `.weights.h5` into it.

    Args:
        path: a `.keras` model file, or a whole-FCN `.weights.h5` (then
            `variant` and `num_classes`, and `fc_units` if not 4096, are needed).
        variant: FCN variant for a weights file.
        num_classes: classes for a weights file.
        fc_units: fc6/fc7 width for a weights file. Defaults to 4096.
        **build_kwargs: other `build_fcn` arguments (e.g. `trainable_upsampling`).

    Returns:
        A `keras.Model`.
    """
    import keras

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path!r}.")
    if path.endswith(".keras"):
        import fcn_keras.models  # noqa: F401 - registers the custom layers and FCNModel

        return keras.saving.load_model(path, compile=False)
    if path.endswith(".weights.h5"):
        if variant is None or num_classes is None:
            raise ValueError(
                f"{path!r} holds weights only: give the variant and num_classes it was "
                "trained with (and fc_units if not 4096)."
            )
        from fcn_keras.models import build_fcn

        return build_fcn(variant, num_classes=num_classes, backbone_weights=None,
                         weights=path, fc_units=fc_units, **build_kwargs)  # fmt: skip
    raise ValueError(f"model file {path!r}: expected a '.keras' or '.weights.h5' file.")


def majority_baseline(matrix):
    """Scores of always predicting the most frequent ground-truth class of `matrix`.

    Args:
        matrix: `(n, n)` confusion matrix (rows truth) of the evaluated split.

    Returns:
        `(class_id, scores)`: the majority class and `scores_from_confusion`
        of the prediction "every pixel is that class".
    """
    matrix = np.asarray(matrix)
    truth = matrix.sum(axis=1)
    majority = int(np.argmax(truth))
    baseline = np.zeros_like(matrix)
    baseline[:, majority] = truth
    return majority, scores_from_confusion(baseline)


def evaluate(model, source="synthetic", split="val", *, batch_size=8, num_classes=None,
             class_names=None, ignore_label=None, max_batches=None, source_kwargs=None,
             trimap_widths=(), input_scale=None):  # fmt: skip
    """Evaluate a model on a split; return the report as a dict.

    Args:
        model: a `keras.Model` or a path for `load_model` (`.keras`).
        source: a source name for `fcn_keras.load_dataset`, or an iterable
            of `(images, masks)` batches. Defaults to `"synthetic"`.
        split: split to evaluate. Defaults to `"val"`.
        batch_size: batch size. Defaults to 8 (use 1 for sources whose
            images differ in size if padding is unwanted; padded pixels are
            void and not counted either way).
        num_classes: defaults to the source's, else the model's output width.
        class_names: defaults to `model.dataset_info`'s, else the source's,
            else the class ids.
        ignore_label: defaults to `model.dataset_info`'s, else the source's,
            else 255.
        max_batches: optional limit on batches. Defaults to all.
        source_kwargs: dict of source options (`data_dir`, `image_size` ...).
        trimap_widths: band widths in pixels (e.g. `(2, 4, 8, 16)`) for the
            trimap mean IU near class boundaries. Defaults to none.
        input_scale: resize factor of the model's input (e.g. 0.5 for a
            model trained on half-size images); logits are resized back
            bilinearly to the labels' size. Defaults to None (full size).

    Returns:
        Dict: `pixel_accuracy`, `mean_accuracy`, `mean_iu`,
        `frequency_weighted_iu`, `per_class_iou` (`{name: IoU or None}`),
        `per_class_accuracy`, `pixels` (counted), `images`, `confusion_matrix`
        (list of lists), `baseline` (`{"class": name, "pixel_accuracy": ...,
        "mean_iu": ...}` of the majority-class predictor), `source`, `split`,
        and with `trimap_widths` `trimap_mean_iu` (`{width: mean IU}`) and
        `trimap_pixels` (`{width: pixels in the band}`).

    Example:
    >>> report = fcn_keras.evaluate("runs/demo/best.keras", "synthetic", "val")
    >>> report["mean_iu"], report["baseline"]["mean_iu"]
    >>> fcn_keras.evaluate(model, "camvid", "test", trimap_widths=(2, 4, 8, 16),
    ...                    source_kwargs={"data_dir": "data/camvid"})["trimap_mean_iu"]
    """
    import tensorflow as tf

    from fcn_keras.data import dataset_info, load_dataset

    if not hasattr(model, "predict"):
        model = load_model(model)
    source_kwargs = dict(source_kwargs or {})
    model_classes = int(model.output_shape[-1])
    carried = getattr(model, "dataset_info", None)
    if carried is not None:
        class_names = list(carried.class_names) if class_names is None else class_names
        ignore_label = carried.ignore_label if ignore_label is None else ignore_label
    trimap_widths = tuple(int(w) for w in trimap_widths or ())
    if input_scale is not None and not 0 < float(input_scale) <= 1:
        raise ValueError(f"input_scale must be in (0, 1]; received {input_scale!r}.")
    source_name = source
    if isinstance(source, str):
        from fcn_keras.data.sources import resolve_source

        source = resolve_source(source, **source_kwargs)  # options never collide with seed=
        source_kwargs = {}
        info = dataset_info(source)
        num_classes = info.num_classes if num_classes is None else num_classes
        class_names = list(info.class_names) if class_names is None else class_names
        ignore_label = info.ignore_label if ignore_label is None else ignore_label
        data = load_dataset(source, split, batch_size=batch_size, augment=False, shuffle=False,
                            ignore_label=ignore_label, **source_kwargs)  # fmt: skip
    else:
        data = source
        num_classes = model_classes if num_classes is None else num_classes
        ignore_label = 255 if ignore_label is None else ignore_label
    if model_classes != num_classes:
        raise ValueError(
            f"model {model.name!r} predicts {model_classes} classes but {source_name!r} has "
            f"{num_classes}."
        )
    class_names = [str(c) for c in (class_names or range(num_classes))]

    def logits_of(x):
        if input_scale is None or float(input_scale) == 1.0:
            return model(x, training=False)
        size = tf.shape(x)[1:3]
        small = tf.cast(tf.round(tf.cast(size, tf.float32) * float(input_scale)), tf.int32)
        resized = tf.image.resize(tf.cast(x, tf.float32), small, antialias=True)
        logits = tf.cast(model(resized, training=False), tf.float32)
        return tf.image.resize(logits, size, method="bilinear")

    predict = tf.function(lambda x: tf.argmax(logits_of(x), axis=-1), reduce_retracing=True)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    trimaps = {w: np.zeros_like(matrix) for w in trimap_widths}
    images = 0
    for index, (x, y) in enumerate(data):
        if max_batches is not None and index >= max_batches:
            break
        predictions = predict(x).numpy()
        labels = np.asarray(y)
        matrix += confusion_matrix(labels, predictions, num_classes, ignore_label)
        for width in trimap_widths:
            trimaps[width] += trimap_confusion(labels, predictions, num_classes, width,
                                               ignore_label)  # fmt: skip
        images += int(predictions.shape[0])
    if images == 0:
        raise ValueError(f"split {split!r} of {source_name!r} yielded no images to evaluate.")
    scores = scores_from_confusion(matrix)
    majority, base = majority_baseline(matrix)
    finite = lambda v: None if v is None or math.isnan(v) else float(v)  # noqa: E731
    report = {name: finite(scores[name]) for name in SCORE_NAMES}
    report.update(
        per_class_iou={n: finite(v) for n, v in zip(class_names, scores["per_class_iou"])},
        per_class_accuracy={n: finite(v)
                            for n, v in zip(class_names, scores["per_class_accuracy"])},  # fmt: skip
        pixels=int(matrix.sum()),
        images=images,
        confusion_matrix=matrix.tolist(),
        baseline={"class": class_names[majority],
                  **{name: finite(base[name]) for name in SCORE_NAMES}},  # fmt: skip
        source=source_name if isinstance(source_name, str) else type(source_name).__name__,
        split=split,
    )
    if trimap_widths:
        report["trimap_mean_iu"] = {w: finite(scores_from_confusion(m)["mean_iu"])
                                    for w, m in trimaps.items()}  # fmt: skip
        report["trimap_pixels"] = {w: int(m.sum()) for w, m in trimaps.items()}
    return report


_LABELS = {"pixel_accuracy": "Pixel accuracy", "mean_accuracy": "Mean accuracy",
           "mean_iu": "Mean IU", "frequency_weighted_iu": "Frequency weighted IU"}


def report_to_json(report):
    """Serialise an `evaluate` report as indented JSON (undefined values are `null`)."""
    return json.dumps(report, indent=2)


def report_to_markdown(report, title=None):
    """Render an `evaluate` report as Markdown: a metrics table and a per-class IoU table."""
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    base = report.get("baseline", {})
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines += [
        f"{report['images']} images, {report['pixels']:,} labelled pixels "
        f"(source `{report['source']}`, split `{report['split']}`).",
        "",
        f"| Metric | Model | Baseline (always `{base.get('class', '?')}`) |",
        "| --- | ---: | ---: |",
    ]
    for name in SCORE_NAMES:
        lines.append(f"| {_LABELS[name]} | {fmt(report[name])} | {fmt(base.get(name))} |")
    for width, value in (report.get("trimap_mean_iu") or {}).items():
        lines.append(f"| Trimap mean IU ({width} px band) | {fmt(value)} | |")
    lines += ["", "| Class | IoU | Accuracy |", "| --- | ---: | ---: |"]
    for name, value in report["per_class_iou"].items():
        lines.append(f"| {name} | {fmt(value)} | {fmt(report['per_class_accuracy'][name])} |")
    return "\n".join(lines) + "\n"
