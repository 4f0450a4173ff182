"""Test-time augmentation: an FCN's logits averaged over horizontal flips and input scales.

`with_tta(model, scales=(0.75, 1.0, 1.25), flip=True)` returns a Keras model
from raw images to logits at the input size, like the FCN it wraps, so it
evaluates, saves, exports (SavedModel, TFLite builtins, ONNX) and predicts
like any other model. For every scale `s` and, with `flip`, for the image
and its mirror image, one view of the batch is made (`TTAView`), the FCN
(shared weights, one copy) maps it to logits, the view is undone on the
logits (`TTARestore`: mirrored back, resized bilinearly to the input's
height and width) and the views' logits are averaged (`keras.layers.Average`).

What is averaged: logits. Their mean is a score map of the FCN's own kind,
which every consumer of a model's output takes as it is: the argmax, the
softmax of a `Predictor`, the dense CRF's unaries (`with_crf`) and the
losses. Softmaxing the mean of logits gives the normalised geometric mean of
the views' probabilities, which lets a confident view outvote unsure ones;
averaging probabilities instead would need another output contract.

Scaled sizes: a view at scale `s` of an `H x W` image is `max(1, floor(s * H + 0.5))
x max(1, floor(s * W + 0.5))` pixels (each side rounded half up, computed in
float32 inside the graph, so every runtime rounds alike); the FCN pads it to
a multiple of 32 itself. Images are resized with half-pixel-centred bilinear
interpolation without antialiasing (`tf.image.resize`'s "bilinear"), and the
logits back the same way (`fcn_keras.geometry.resize_bilinear`: gathers that
trace with dynamic sizes and export as builtin ops). A scale of 1 is not
resized and a view without flip is not mirrored (the view is the image, cast
to float32, the FCN's input type): `with_tta(model, (1.0,), flip=False)`
computes exactly `model(x)`.

Cost: one FCN pass per view, on `s^2` times the pixels, plus the resizes;
`bench/tta_latency.py` measures it (docs/benchmarks.md).
"""

import math

import keras
from keras import ops

from fcn_keras.geometry import resize_bilinear

__all__ = ["with_tta", "tta_settings", "wrapped_model", "TTAView", "TTARestore", "scaled_size"]


def scaled_size(size, scale):
    """The side of a view at `scale`: `max(1, floor(scale * size + 0.5))`, in float32 like the graph.

    Args:
        size: int or scalar int tensor, a side of the image.
        scale: float, the view's scale.

    Returns:
        int32 scalar tensor.

    Example:
    >>> int(scaled_size(97, 0.75))
    73
    """
    scaled = ops.floor(ops.cast(size, "float32") * ops.cast(scale, "float32") + 0.5)
    return ops.maximum(ops.cast(scaled, "int32"), 1)


def _static_scaled(size, scale):
    """`scaled_size` of a static side (None stays None), for shape inference."""
    if size is None:
        return None
    import numpy as np

    return max(1, int(np.floor(np.float32(size) * np.float32(scale) + np.float32(0.5))))


def _check_scale(scale, what):
    if (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale)
            or scale <= 0):  # fmt: skip
        raise ValueError(f"{what} must be a positive finite number; received {scale!r}.")
    return float(scale)


@keras.saving.register_keras_serializable(package="fcn_keras")
class TTAView(keras.layers.Layer):
    """One test-time view of an image batch: resized by `scale`, then mirrored left-right if `flip`.

    Args:
        scale: positive float, the view's scale (sides rounded as `scaled_size`).
            Defaults to 1.0 (not resized).
        flip: bool, mirror the width axis. Defaults to False.
        **kwargs: base `keras.layers.Layer` arguments.

    Input: `(batch, H, W, C)` images. Output: float32 `(batch, h, w, C)`.

    Example:
    >>> TTAView(0.75, flip=True)(keras.ops.zeros((1, 97, 131, 3))).shape
    TensorShape([1, 73, 98, 3])
    """

    def __init__(self, scale=1.0, flip=False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.scale = _check_scale(scale, "TTAView scale")
        if not isinstance(flip, bool):
            raise ValueError(f"TTAView flip must be True or False; received {flip!r}.")
        self.flip = flip

    def call(self, images):
        x = ops.cast(images, "float32")
        if self.scale != 1.0:
            shape = ops.shape(x)
            x = resize_bilinear(x, (scaled_size(shape[1], self.scale), scaled_size(shape[2], self.scale)))
        if self.flip:
            x = ops.flip(x, axis=2)
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, _static_scaled(height, self.scale), _static_scaled(width, self.scale), channels)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "flip": self.flip}


@keras.saving.register_keras_serializable(package="fcn_keras")
class TTARestore(keras.layers.Layer):
    """Undo a `TTAView` on logits: mirror back if `flip`, resize to the reference images' size.

    Called on `[logits, images]`; returns float32 logits of the images' height
    and width.

    Args:
        scale: the view's scale (1.0: not resized). Defaults to 1.0.
        flip: whether the view was mirrored. Defaults to False.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:
    >>> TTARestore(0.75, flip=True)([keras.ops.zeros((1, 73, 98, 5)), keras.ops.zeros((1, 97, 131, 3))]).shape
    TensorShape([1, 97, 131, 5])
    """

    def __init__(self, scale=1.0, flip=False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.scale = _check_scale(scale, "TTARestore scale")
        if not isinstance(flip, bool):
            raise ValueError(f"TTARestore flip must be True or False; received {flip!r}.")
        self.flip = flip

    def call(self, inputs):
        logits, images = inputs
        x = ops.cast(logits, "float32")
        if self.flip:
            x = ops.flip(x, axis=2)
        if self.scale != 1.0:
            shape = ops.shape(images)
            x = resize_bilinear(x, (shape[1], shape[2]))
        return x

    def compute_output_shape(self, input_shape):
        logits_shape, images_shape = input_shape
        return (logits_shape[0], images_shape[1], images_shape[2], logits_shape[3])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "flip": self.flip}


def _checked_scales(scales):
    if isinstance(scales, (int, float)):
        scales = (scales,)
    try:
        scales = tuple(scales)
    except TypeError:
        raise ValueError(
            f"with_tta scales must be a sequence of positive numbers; received {scales!r}."
        ) from None
    if not scales:
        raise ValueError("with_tta scales is empty; give at least one scale, e.g. (1.0,).")
    scales = tuple(_check_scale(s, f"with_tta scale {s!r} in {scales!r}") for s in scales)
    if len(set(scales)) != len(scales):
        raise ValueError(f"with_tta scales has repeated values: {scales!r}.")
    return scales


def with_tta(model, scales=(0.75, 1.0, 1.25), flip=True):
    """Wrap an FCN in test-time augmentation: logits averaged over scales and horizontal flips.

    The new model runs `model` (its weights shared, not copied) once per
    view, `len(scales) * (2 if flip else 1)` views, and averages the logits
    at the input's size (see the module docstring for why logits, and the
    rounding of scaled sizes). It carries the FCN's `dataset_info` and `input_scale`, so
    evaluation, export and prediction keep the class names, void label and
    palette; it saves to `.keras` and exports like the FCN.

    Args:
        model: a functional `keras.Model` from `(batch, H, W, 3)` raw RGB to
            `(batch, H, W, num_classes)` logits, with dynamic H and W unless
            every scale is 1 (every `fcn_keras` builder, a `.keras` file
            loaded, or `with_crf`'s model).
        scales: positive numbers, the views' scales. Defaults to
            (0.75, 1.0, 1.25).
        flip: also run each scale on the mirrored image. Defaults to True.

    Returns:
        An `FCNModel` named `<model name>_tta`: image -> averaged logits, float32.

    Raises:
        ValueError: a scale that is not a positive finite number, repeated
            scales, a non-boolean `flip`, or a model that is not image -> logits.

    Example:
    >>> fcn = fcn_keras.FCN8s(num_classes=11, weights="runs/fcn8s/final.keras", backbone_weights=None)
    >>> tta = fcn_keras.with_tta(fcn, scales=(0.75, 1.0, 1.25), flip=True)  # 6 views
    >>> fcn_keras.evaluate(tta, "camvid", "val", source_kwargs={"data_dir": "data/camvid"})
    """
    from fcn_keras.models import FCNModel

    scales = _checked_scales(scales)
    if not isinstance(flip, bool):
        raise ValueError(f"with_tta flip must be True or False; received {flip!r}.")
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if (not isinstance(model, keras.Model) or not inputs or not outputs or len(inputs) != 1
            or len(outputs) != 1):  # fmt: skip
        raise ValueError(
            "with_tta needs a functional keras.Model with one image input and one logits output "
            f"(an fcn_keras FCN); received {type(model).__name__}."
        )
    image_shape, logits_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(image_shape) != 4 or image_shape[-1] != 3 or len(logits_shape) != 4 or logits_shape[-1] is None:
        raise ValueError(
            f"with_tta needs a model from (batch, H, W, 3) images to (batch, H, W, num_classes) "
            f"logits; model {model.name!r} maps {image_shape} to {logits_shape}."
        )
    if any(s != 1.0 for s in scales) and (image_shape[1] is not None or image_shape[2] is not None):
        raise ValueError(
            f"model {model.name!r} takes a fixed {image_shape[1]}x{image_shape[2]} input, so it cannot "
            f"run views at scales {scales}: build it with input_shape=(None, None, 3)."
        )
    image = keras.Input(shape=image_shape[1:], dtype=inputs[0].dtype, name="image")
    views = []
    for i, scale in enumerate(scales):
        for flipped in (False, True) if flip else (False,):
            tag = f"{i}{'_flip' if flipped else ''}"
            view = TTAView(scale, flip=flipped, name=f"tta_view_{tag}")(image)
            views.append(TTARestore(scale, flip=flipped, name=f"tta_restore_{tag}")([model(view), image]))
    averaged = views[0] if len(views) == 1 else keras.layers.Average(name="tta_mean", dtype="float32")(views)
    return FCNModel(image, averaged, name=f"{model.name}_tta",
                    dataset_info=getattr(model, "dataset_info", None),
                    input_scale=getattr(model, "input_scale", None))  # fmt: skip


def tta_settings(model):
    """The test-time augmentation of a `with_tta` model, or None for any other model.

    Args:
        model: a `keras.Model`.

    Returns:
        `{"scales": [...], "flip": bool, "model": <wrapped model's name>}`, or None.

    Example:
    >>> tta_settings(with_tta(fcn, scales=(0.75, 1.0), flip=True))["scales"]
    [0.75, 1.0]
    """
    views = [layer for layer in getattr(model, "layers", []) if isinstance(layer, TTAView)]
    inner = wrapped_model(model)
    if not views or inner is None:
        return None
    return {"scales": list(dict.fromkeys(layer.scale for layer in views)),
            "flip": any(layer.flip for layer in views), "model": inner.name}  # fmt: skip


def wrapped_model(model):
    """The FCN inside a `with_tta` model, or None when `model` is not one.

    Args:
        model: a `keras.Model`.

    Returns:
        The nested `keras.Model` every view runs, or None.
    """
    if not any(isinstance(layer, TTAView) for layer in getattr(model, "layers", [])):
        return None
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if len(nested) == 1 else None
