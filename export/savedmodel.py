"""SavedModel export with a TF Serving signature taking raw RGB uint8 images.

The artifact has one signature, `serving_default` (also reachable as the
`serve` endpoint):

    inputs:  image   uint8   (batch, height, width, 3), raw RGB in [0, 255];
                             batch, height and width dynamic
    outputs: logits  float32 (batch, height, width, num_classes)
             classes int32   (batch, height, width), argmax of logits

It loads with `tf.saved_model.load(path).signatures["serving_default"]` and
serves with TF Serving, which expects `<model_base_path>/<version>/` (pass
`version=1` to write that layout). fcn_keras metadata (num_classes, variant,
input convention, the model's dataset facts) is in
`assets.extra/fcn_keras.json`, a folder TF Serving ignores. The graph is
float32 whatever dtype policy the model was trained under (`float32_model`).
"""

import os

import keras
import tensorflow as tf

from ._artifacts import SAVEDMODEL_METADATA, artifact_metadata, atomic_path, float32_model, write_json

__all__ = ["export_savedmodel", "serving_function", "check_input_size", "SIGNATURE_KEY"]

SIGNATURE_KEY = "serving_default"


def serving_function(model):
    """Return the Python function exported by every format: image -> logits, classes.

    Args:
        model: an FCN `keras.Model` (preprocessing inside, raw RGB in).

    Returns:
        A function of a `(batch, H, W, 3)` image tensor returning
        `{"logits": float32, "classes": int32}`.
    """

    def serve(image):
        logits = model(image, training=False)
        return {"logits": logits, "classes": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    return serve


def image_signature(input_size=None, batch_size=None, dtype="uint8"):
    """The `tf.TensorSpec` of the exported image input."""
    height, width = (None, None) if input_size is None else check_input_size(input_size)
    return tf.TensorSpec([batch_size, height, width, 3], tf.as_dtype(dtype), name="image")


def check_input_size(input_size):
    """Validate a fixed export input size, `(height, width)`, the one check every exporter uses.

    Args:
        input_size: two positive integers, as a tuple or list.

    Returns:
        `(height, width)` as a tuple.

    Raises:
        ValueError: anything else (the message shows the value received).

    Example:
    >>> check_input_size([360, 480])
    (360, 480)
    """
    if (
        not isinstance(input_size, (tuple, list))
        or len(input_size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in input_size)
    ):
        raise ValueError(
            f"input_size must be (height, width), two positive integers, or None for any "
            f"size; received {input_size!r}."
        )
    return tuple(input_size)


def write_savedmodel(model, path, input_size=None, batch_size=None):
    """Write the serving SavedModel of `model` to `path` (not atomic; see export_savedmodel).

    `model` must compute in float32 (the exporters pass `float32_model(model)`).
    """
    archive = keras.export.ExportArchive()
    # No archive.track(model): the endpoint's variables are tracked automatically, and Keras
    # 3.15 would save tracked variables twice (`variables/...` and `_all_variables/...`).
    archive.add_endpoint(
        "serve",
        serving_function(model),
        input_signature=[image_signature(input_size, batch_size)],
    )
    archive.write_out(path, verbose=False)


def export_savedmodel(model, filepath, version=None, input_size=None):
    """Export an FCN as a SavedModel with a raw-image `serving_default` signature.

    Args:
        model: an FCN `keras.Model` from `fcn_keras` (raw RGB in, logits out),
            under any dtype policy (exported as float32).
        filepath: target directory. Written atomically: a failed export
            leaves no partial directory there (nor replaces a previous one).
        version: optional positive int; writes `filepath/<version>/`, the
            layout TF Serving's `--model_base_path` expects. Defaults to
            `None` (write at `filepath`).
        input_size: optional `(height, width)` to fix the image size.
            Defaults to `None` (any size).

    Returns:
        The path of the SavedModel directory written.

    Example:
    >>> path = export.export_savedmodel(model, "/tmp/fcn8s_savedmodel")
    >>> serve = tf.saved_model.load(path).signatures["serving_default"]
    >>> serve(image=tf.zeros([1, 97, 131, 3], tf.uint8))["classes"].shape
    TensorShape([1, 97, 131])
    """
    model = float32_model(model)
    target = os.fspath(filepath)
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(
                f"version must be a positive integer (TF Serving's numbered sub-directory); "
                f"received {version!r}."
            )
        target = os.path.join(target, str(version))
    meta = artifact_metadata(
        model, "savedmodel", signature=SIGNATURE_KEY,
        input_size=list(input_size) if input_size else None,
    )  # fmt: skip
    with atomic_path(target, directory=True) as temp:
        write_savedmodel(model, temp, input_size=input_size)
        os.makedirs(os.path.join(temp, os.path.dirname(SAVEDMODEL_METADATA)), exist_ok=True)
        write_json(os.path.join(temp, SAVEDMODEL_METADATA), meta)
    return target
