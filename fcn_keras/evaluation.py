"""Evaluating a trained FCN on a dataset split: the paper's metrics as JSON and Markdown.

`evaluate(model, source, split)` runs the model over every batch of the
split, accumulates one confusion matrix (void pixels left out) and reports
pixel accuracy, mean accuracy, mean IU, frequency-weighted IU and per-class
IoU (see `fcn_keras/metrics.py` for the definitions and the treatment of
absent classes), next to the trivial baseline that always predicts the most
frequent ground-truth class of that split. `fcn-keras evaluate` prints the
same report.

Class names and the ignore label default to the ones the model carries
(`model.dataset_info`, set by `fcn_keras.train`) when the model was trained
on the evaluated source (same dataset name) or the source is given as
batches; on another named source they are that source's own.
`ignore_label_of(model)` is the one rule for a model's ignore label
(the one it carries, else 255).
With `trimap_widths` the report also gives the mean IU within bands of those
widths around ground-truth class boundaries (`fcn_keras.metrics.trimap_confusion`).
A model trained at reduced scale carries its `input_scale`
(`fcn_keras.models.FCNModel`, saved with it; `load_model` reads the
`stage.json` of an older results row instead): `scaled_logits`, the one place
that applies it, resizes the images by that factor before the model and the
logits bilinearly back to the labels' size before the argmax, so such a model
is always scored on full-size labels (`evaluate(input_scale=)` overrides it).

One loop: `evaluate_predictions(predict_fn, batches, num_classes)` runs any
predict function over `(inputs, labels)` batches into one
`fcn_keras.metrics.ConfusionAccumulator`; `evaluate` (and the export
verification and the benchmarks) are built on it.
With `shift_and_stitch=f` the model's coarse score map is made `f` times denser
by shift-and-stitch (`fcn_keras.shift_and_stitch`, the paper's Section 3.2)
and upsampled bilinearly to the image in place of the model's own upsampling;
`fcn_keras.shift_and_stitch.logits_function` is the forward pass `evaluate`
scores, for callers that time or inspect it.
"""

import json
import math
import os

import numpy as np

from fcn_keras.metrics import SCORE_NAMES, ConfusionAccumulator, scores_from_confusion
from fcn_keras.models import checked_input_scale

__all__ = ["evaluate", "evaluate_predictions", "load_model", "majority_baseline", "ignore_label_of",
           "input_scale_of", "scaled_logits", "report_to_markdown", "report_to_json",
           "scale_images", "logits_at_size"]  # fmt: skip

DEFAULT_IGNORE_LABEL = 255


def scale_images(images, input_scale):
    """Resize a batch of images by `input_scale` the way every reduced-scale evaluation does.

    Antialiased bilinear resizing, then rounded back to uint8, which is what a
    deployed model (SavedModel, TFLite, ONNX, all taking uint8) would be given:
    Keras and the exported engines then see the same pixels.

    Args:
        images: `(batch, H, W, 3)` images (uint8 or float in [0, 255]).
        input_scale: resize factor in (0, 1].

    Returns:
        `(batch, round(H * s), round(W * s), 3)` uint8 `tf.Tensor` (sides at least 1).

    Example:
    >>> scale_images(np.zeros((1, 360, 480, 3), "uint8"), 0.5).shape
    TensorShape([1, 180, 240, 3])
    """
    import tensorflow as tf

    input_scale = checked_input_scale(input_scale) or 1.0
    size = tf.shape(images)[1:3]
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * float(input_scale)), tf.int32), 1)
    resized = tf.image.resize(tf.cast(images, tf.float32), small, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def logits_at_size(logits, size):
    """Bring logits computed on a scaled image back to `size` (bilinear), before the argmax.

    Args:
        logits: `(batch, h, w, num_classes)` logits.
        size: the target `(H, W)`.

    Returns:
        `(batch, H, W, num_classes)` float32 `tf.Tensor`.

    Example:
    >>> logits_at_size(np.zeros((1, 180, 240, 11), "float32"), (360, 480)).shape
    TensorShape([1, 360, 480, 11])
    """
    import tensorflow as tf

    return tf.image.resize(tf.cast(logits, tf.float32), size, method="bilinear")


def input_scale_of(model_or_metadata):
    """The input scale a model was trained at: the one its config or an artifact's metadata carries.

    Args:
        model_or_metadata: a `keras.Model` (an `FCNModel`'s `input_scale`), a
            `fcn_keras.export.Predictor`, or an artifact's metadata dict
            (`read_metadata`, its `input_scale` entry).

    Returns:
        The scale as a float in (0, 1]; 1.0 when none is recorded.

    Example:
    >>> input_scale_of(keras.saving.load_model("runs/camvid_half/fcn8s/final.keras"))
    0.5
    """
    if isinstance(model_or_metadata, dict):
        scale = model_or_metadata.get("input_scale")
    else:
        scale = getattr(model_or_metadata, "input_scale", None)
    scale = checked_input_scale(scale, "the model's metadata" if isinstance(model_or_metadata, dict)
                                else f"model {getattr(model_or_metadata, 'name', '')!r}")  # fmt: skip
    return 1.0 if scale is None else scale


def scaled_logits(forward, images, input_scale=None):
    """Logits of `forward` for `images` at `input_scale`: the one place a model's scale is applied.

    With a scale below 1 the images are shrunk (`scale_images`), run through
    `forward`, and the logits resized bilinearly back to the images' size
    (`logits_at_size`), so predictions always have the input's size.

    Args:
        forward: `images -> logits` (a Keras call, an engine's batch runner ...).
        images: `(batch, H, W, 3)` images, a `tf.Tensor` or a NumPy array.
        input_scale: the model's scale (`input_scale_of`), or None / 1.0 for
            full size. Defaults to None.

    Returns:
        `(batch, H, W, num_classes)` logits; a NumPy array when `images` is one
        (a scaled call), else what `forward` returns.

    Example:
    >>> logits = scaled_logits(lambda x: model(x, training=False), images, input_scale_of(model))
    """
    scale = checked_input_scale(input_scale)
    if scale is None or scale == 1.0:
        return forward(images)
    small = scale_images(images, scale)
    numpy = isinstance(images, np.ndarray)
    logits = forward(small.numpy() if numpy else small)
    if numpy:
        return logits_at_size(logits, images.shape[1:3]).numpy()
    import tensorflow as tf

    return logits_at_size(logits, tf.shape(images)[1:3])


def ignore_label_of(model, default=DEFAULT_IGNORE_LABEL):
    """The void label of a model: the one its `dataset_info` carries, else `default`.

    The one rule for "which label does this model ignore" (evaluation,
    export verification, the export command).

    Args:
        model: a `keras.Model`; a `fcn_keras.models.FCNModel` saved by
            `fcn_keras.train` carries `dataset_info`, other models do not.
        default: label returned when the model carries no dataset facts.
            Defaults to 255.

    Returns:
        The ignore label as an int.

    Example:
    >>> model = keras.saving.load_model("runs/camvid/best.keras", compile=False)
    >>> ignore_label_of(model)  # CamVid's void class, mapped to 255 by the pipeline
    255
    """
    info = getattr(model, "dataset_info", None)
    if info is None or info.ignore_label is None:
        return int(default)
    return int(info.ignore_label)


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
        A `keras.Model`. A `.keras` FCN that records no `input_scale` (saved
        before models carried it) gets the `scale` of a results row's
        `stage.json` beside it, when there is one.

    Example:
    >>> model = load_model("runs/camvid/fcn8s/final.keras")
    >>> model = load_model("fcn8s.weights.h5", variant="fcn8s", num_classes=11, fc_units=1024)
    """
    import keras

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path!r}.")
    if path.endswith(".keras"):
        model = keras.saving.load_model(path, compile=False)
        stage = os.path.join(os.path.dirname(os.path.abspath(path)), "stage.json")
        if hasattr(model, "input_scale") and model.input_scale is None and os.path.isfile(stage):
            from fcn_keras.results import recorded_scale

            model.input_scale = recorded_scale(path)[0]
        return model
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
             trimap_widths=(), input_scale=None, shift_and_stitch=None):  # fmt: skip
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
        class_names: defaults to `model.dataset_info`'s when the model was
            trained on this source (`dataset_info.name` equals the named
            source's) or `source` is batches; else the source's; else the
            class ids.
        ignore_label: defaults like `class_names` (the model's for its own
            dataset or for batches, else the named source's); 255 for
            batches and a model carrying none (`ignore_label_of`).
        max_batches: optional limit on batches. Defaults to all.
        source_kwargs: dict of source options (`data_dir`, `image_size` ...).
        trimap_widths: band widths in pixels (e.g. `(2, 4, 8, 16)`) for the
            trimap mean IU near class boundaries. Defaults to none.
        input_scale: resize factor of the model's input (e.g. 0.5 for a
            model trained on half-size images); logits are resized back
            bilinearly to the labels' size (`scaled_logits`). Defaults to
            None: the scale the model carries (`input_scale_of`, 1.0 when none).
        shift_and_stitch: densification factor `f` (a power of 2 dividing the
            model's coarse stride: 32 for FCN-32s, 16 for FCN-16s, 8 for
            FCN-8s): the coarse scores are computed on the `f x f` shifted
            inputs, interleaved, and upsampled bilinearly to the image instead
            of by the model's own upsampling (`fcn_keras.shift_and_stitch.
            ShiftAndStitch`). Defaults to None (the model's own output).

    Returns:
        Dict: `pixel_accuracy`, `mean_accuracy`, `mean_iu`,
        `frequency_weighted_iu`, `per_class_iou` (`{name: IoU or None}`),
        `per_class_accuracy`, `pixels` (counted), `images`, `confusion_matrix`
        (list of lists), `shift_and_stitch` (the factor, or None), `baseline` (`{"class": name, "pixel_accuracy": ...,
        "mean_iu": ...}` of the majority-class predictor), `source`, `split`,
        and with `trimap_widths` `trimap_mean_iu` (`{width: mean IU}`) and
        `trimap_pixels` (`{width: pixels in the band}`).

    Example:
    >>> report = fcn_keras.evaluate("runs/demo/best.keras", "synthetic", "val")
    >>> report["mean_iu"], report["baseline"]["mean_iu"]
    >>> fcn_keras.evaluate(model, "synthetic", "val", shift_and_stitch=2)["mean_iu"]
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
    trimap_widths = tuple(int(w) for w in trimap_widths or ())
    checked_input_scale(input_scale)  # before any data is read
    source_name = source
    if isinstance(source, str):
        from fcn_keras.data.sources import resolve_source

        source = resolve_source(source, **source_kwargs)  # options never collide with seed=
        info = dataset_info(source)
        # The model's class names and ignore label describe the dataset it was trained
        # on: they apply to that dataset only, whatever another one's class count.
        own = carried if carried is not None and carried.name == info.name else info
        num_classes = info.num_classes if num_classes is None else num_classes
        class_names = list(own.class_names) if class_names is None else class_names
        ignore_label = own.ignore_label if ignore_label is None else ignore_label
        if int(ignore_label) != info.ignore_label:  # the source maps its void ids onto it
            source = resolve_source(source_name, **{**source_kwargs, "ignore_label": ignore_label})
        data = load_dataset(source, split, batch_size=batch_size, augment=False, shuffle=False,
                            ignore_label=ignore_label)  # fmt: skip
    else:
        data = source
        num_classes = model_classes if num_classes is None else num_classes
        if class_names is None and carried is not None:
            class_names = list(carried.class_names)
        ignore_label = ignore_label_of(model) if ignore_label is None else ignore_label
    if model_classes != num_classes:
        raise ValueError(
            f"model {model.name!r} predicts {model_classes} classes but {source_name!r} has "
            f"{num_classes}."
        )
    class_names = [str(c) for c in (class_names or range(num_classes))]
    from fcn_keras.shift_and_stitch import logits_function

    scale = input_scale_of(model) if input_scale is None else checked_input_scale(input_scale)
    logits = logits_function(model, shift_and_stitch, scale)  # validates the factor
    predict = tf.function(lambda x: tf.argmax(logits(x), axis=-1), reduce_retracing=True)
    result = evaluate_predictions(lambda x: predict(x).numpy(), data, num_classes,
                                  ignore_label=ignore_label, trimap_widths=trimap_widths,
                                  max_batches=max_batches)  # fmt: skip
    if result["images"] == 0:
        raise ValueError(f"split {split!r} of {source_name!r} yielded no images to evaluate.")
    matrix = result["confusion_matrix"]
    majority, base = majority_baseline(matrix)
    finite = lambda v: None if v is None or math.isnan(v) else float(v)  # noqa: E731
    report = {name: finite(result[name]) for name in SCORE_NAMES}
    report.update(
        per_class_iou={n: finite(v) for n, v in zip(class_names, result["per_class_iou"])},
        per_class_accuracy={n: finite(v)
                            for n, v in zip(class_names, result["per_class_accuracy"])},  # fmt: skip
        pixels=result["pixels"],
        images=result["images"],
        confusion_matrix=matrix.tolist(),
        shift_and_stitch=shift_and_stitch,
        baseline={"class": class_names[majority],
                  **{name: finite(base[name]) for name in SCORE_NAMES}},  # fmt: skip
        source=source_name if isinstance(source_name, str) else type(source_name).__name__,
        split=split,
    )
    if trimap_widths:
        report["trimap_mean_iu"] = {w: finite(v) for w, v in result["trimap_mean_iu"].items()}
        report["trimap_pixels"] = dict(result["trimap_pixels"])
    return report


def evaluate_predictions(predict_fn, batches, num_classes, *, ignore_label=DEFAULT_IGNORE_LABEL,
                         trimap_widths=(), max_batches=None):  # fmt: skip
    """The evaluation loop: `predict_fn` over `(inputs, labels)` batches into one confusion matrix.

    Every evaluation in the package runs through here (`evaluate`, the
    export verification's ground-truth scores, the benchmarks' engines, CRFs
    and post-processings): only the predict function differs.

    Args:
        predict_fn: `inputs -> predictions` for one batch: class maps
            `(B, H, W)`, or logits `(B, H, W, num_classes)` (one axis more
            than the labels: the argmax is taken).
        batches: an iterable of `(inputs, labels)`; `inputs` is whatever
            `predict_fn` takes (images, or e.g. `(images, logits)`), `labels`
            integer maps `(B, H, W)`.
        num_classes: number of classes.
        ignore_label: void label, not counted. Defaults to 255.
        trimap_widths: band widths for the trimap mean IU. Defaults to none.
        max_batches: stop after this many batches. Defaults to all.

    Returns:
        `fcn_keras.metrics.ConfusionAccumulator.result()`: the four metrics,
        per-class IoU / accuracy lists, `confusion_matrix`, `pixels`,
        `images`, `trimap_mean_iu`, `trimap_pixels`; plus `predict_seconds`,
        the time spent in `predict_fn`.

    Example:
    >>> result = evaluate_predictions(lambda x: predictor.predict_classes(x), batches, 11,
    ...                               trimap_widths=(2, 4, 8))
    >>> result["mean_iu"], result["trimap_mean_iu"][4]
    """
    import time

    accumulator = ConfusionAccumulator(num_classes, ignore_label, trimap_widths)
    seconds = 0.0
    for index, (inputs, labels) in enumerate(batches):
        if max_batches is not None and index >= max_batches:
            break
        start = time.perf_counter()
        predictions = np.asarray(predict_fn(inputs))
        seconds += time.perf_counter() - start
        labels = np.asarray(labels)
        if predictions.ndim == labels.ndim + 1:
            predictions = np.argmax(predictions, axis=-1)
        accumulator.update(labels, predictions)
    return {**accumulator.result(), "predict_seconds": seconds}


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
