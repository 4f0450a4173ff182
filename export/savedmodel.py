"""SavedModel export with a TF Serving signature taking raw RGB uint8 images.

The artifact's signatures, every one with the same input and outputs:

    inputs:  image   uint8   (batch, height, width, 3), raw RGB in [0, 255];
                             batch, height and width dynamic
    outputs: logits  float32 (batch, height, width, num_classes)
             classes int32   (batch, height, width), argmax of logits

- `serving_default` (also the `serve` endpoint): float32, compiled by XLA
  (`jit_compile=True`) unless exported with `jit_compile=False`. XLA compiles
  once per input shape (seconds for the full FCN-8s, see docs/benchmarks.md)
  and then runs about 2x faster than the plain graph on CPU at 512x512:
  TensorFlow's oneDNN convolutions re-lay-out the weights of every variable
  on every call, XLA does not. Below 224 pixels (fc6's 7x7 kernel larger
  than the pool5 map) XLA's CPU convolution is many times slower: export
  with `jit_compile=False` for inputs that small.
- `serving_bfloat16` (unless `bfloat16_signature=False`): the same network computing in bfloat16
  (Keras `mixed_bfloat16`: bfloat16 activations and products, float32
  weights and logits), for CPUs with AMX or AVX512-BF16 and GPUs with
  bfloat16 units; it reads the same variables (no second copy of the
  weights). Not XLA-compiled: on CPU, XLA's bfloat16 convolutions are
  slower than oneDNN's.

It loads with `tf.saved_model.load(path).signatures["serving_default"]` and
serves with TF Serving, which expects `<model_base_path>/<version>/` (pass
`version=1` to write that layout). fcn_keras metadata (num_classes, variant,
input convention, the model's dataset facts, the signatures) is in
`assets.extra/fcn_keras.json`, a folder TF Serving ignores. The float32
signature is traced from the model's float32 rebuild (`float32_model`), the
bfloat16 one from its `mixed_bfloat16` rebuild (`bfloat16_model`), whatever
dtype policy the model was trained under. A TF Serving build without XLA
serves a `jit_compile=False` export.
"""

import os

import keras
import tensorflow as tf

from ._artifacts import SAVEDMODEL_METADATA, artifact_metadata, atomic_path, float32_model, write_json

__all__ = ["export_savedmodel", "serving_function", "bfloat16_model", "bfloat16_serving_function",
           "check_input_size", "SIGNATURE_KEY", "BFLOAT16_SIGNATURE_KEY"]  # fmt: skip

SIGNATURE_KEY = "serving_default"
BFLOAT16_SIGNATURE_KEY = "serving_bfloat16"


def serving_function(model, classes=True):
    """Return the Python function exported by every format: image -> logits, classes.

    Args:
        model: an FCN `keras.Model` (preprocessing inside, raw RGB in).
        classes: also return the argmax `classes`. Defaults to True; the
            mobile TFLite file (`export_mobile`) has the one `logits` output
            MediaPipe's ImageSegmenter reads.

    Returns:
        A function of a `(batch, H, W, 3)` image tensor returning
        `{"logits": float32, "classes": int32}` (or `{"logits"}` alone).
    """

    def serve(image):
        logits = model(image, training=False)
        if not classes:
            return {"logits": logits}
        return {"logits": logits, "classes": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    return serve


def _with_policy(model, policy):
    """Config copy of `model` whose layers compute under `policy`, its output layers excepted."""
    config = model.get_config()
    entries = config["output_layers"]  # [name, node, index], or a list of those
    outputs = {entries[0]} if isinstance(entries[0], str) else {entry[0] for entry in entries}
    for layer in config["layers"]:
        dtype = layer["config"].get("dtype")
        if (layer["name"] not in outputs and isinstance(dtype, dict)
                and dtype.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")):  # fmt: skip
            dtype["config"] = {**dtype["config"], "name": policy}
    return config


def bfloat16_model(model):
    """Return the model computing in bfloat16: a `mixed_bfloat16` rebuild sharing its variable order.

    Every layer but the output (float32 logits) gets the `mixed_bfloat16`
    policy: bfloat16 activations and products, float32 variables. The rebuild
    holds freshly initialised variables in the same order as `model`'s, so it
    is meant to be run with `model`'s values, `rebuilt.stateless_call(
    model.trainable_variables, model.non_trainable_variables, image)`, as
    `bfloat16_serving_function` does (one copy of the weights).

    Args:
        model: a functional FCN `keras.Model` (any dtype policy).

    Returns:
        A `keras.Model` of the same class and layers, computing in bfloat16.

    Raises:
        ValueError: the model cannot be rebuilt from its config, or the rebuild's
            variables do not line up with the model's.

    Example:
    >>> bfloat16_model(model).get_layer("fc6").compute_dtype
    'bfloat16'
    """
    config = _with_policy(model, "mixed_bfloat16")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        rebuilt = model.__class__.from_config(config)
    except Exception as e:
        raise ValueError(f"cannot rebuild model {model.name!r} in bfloat16: {e}") from e
    finally:
        keras.config.set_dtype_policy(previous)
    def layout(m):  # weights by path; other state (dropout seeds, named uniquely) by shape
        return ([(v.path, tuple(v.shape)) for v in m.trainable_variables],
                [tuple(v.shape) for v in m.non_trainable_variables])  # fmt: skip

    if layout(model) != layout(rebuilt):
        raise ValueError(
            f"the bfloat16 rebuild of model {model.name!r} does not hold the same variables in "
            "the same order as the model; it cannot share its weights."
        )
    return rebuilt


def bfloat16_serving_function(model):
    """The serving function of `serving_function`, computing in bfloat16 with `model`'s own variables.

    Args:
        model: an FCN `keras.Model` (raw RGB in, logits out), any dtype policy.

    Returns:
        A function of a `(batch, H, W, 3)` image tensor returning
        `{"logits": float32, "classes": int32}`; traced, it reads `model`'s
        variables (cast to bfloat16 inside the graph).
    """
    rebuilt = bfloat16_model(model)

    def serve(image):
        logits, _ = rebuilt.stateless_call(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables], image, training=False,
        )  # fmt: skip
        logits = tf.cast(logits, tf.float32)
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


def write_savedmodel(model, path, input_size=None, batch_size=None, jit_compile=False,
                     bfloat16_signature=False, classes=True):  # fmt: skip
    """Write the serving SavedModel of `model` to `path` (not atomic; see export_savedmodel).

    `model` must compute in float32 (the exporters pass `float32_model(model)`).
    The TFLite converter reads the `serving_default` signature of what this
    writes with the defaults (plain float32 graph).

    Args:
        model: the float32 FCN.
        path: the directory to write.
        input_size: optional fixed `(height, width)`. Defaults to None.
        batch_size: optional fixed batch size. Defaults to None.
        jit_compile: compile `serving_default` with XLA. Defaults to False.
        bfloat16_signature: add the `serving_bfloat16` signature. Defaults to False.
        classes: give `serving_default` its `classes` output. Defaults to True.
    """
    archive = keras.export.ExportArchive()
    # No archive.track(model): the endpoint's variables are tracked automatically, and Keras
    # 3.15 would save tracked variables twice (`variables/...` and `_all_variables/...`).
    signature = [image_signature(input_size, batch_size)]
    endpoints = [("serve", serving_function(model, classes=classes), jit_compile)]
    if bfloat16_signature:
        endpoints.append((BFLOAT16_SIGNATURE_KEY, bfloat16_serving_function(model), False))
    for name, function, jit in endpoints:
        function = tf.function(function, input_signature=signature, jit_compile=jit, autograph=False)
        function.get_concrete_function()  # traced now: add_endpoint takes a traced tf.function
        archive.add_endpoint(name, function)
    archive.write_out(path, verbose=False)


def export_savedmodel(model, filepath, version=None, input_size=None, jit_compile=True,
                      bfloat16_signature=True):  # fmt: skip
    """Export an FCN as a SavedModel with raw-image `serving_default` and `serving_bfloat16` signatures.

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
        jit_compile: compile `serving_default` with XLA (one compilation per
            input shape, then faster on CPU). Defaults to True; False writes
            the plain graph (for a TF Serving build without XLA).
        bfloat16_signature: also write `serving_bfloat16`, the network
            computing in bfloat16 on the same variables. Defaults to True.

    Returns:
        The path of the SavedModel directory written.

    Example:
    >>> path = export.export_savedmodel(model, "/tmp/fcn8s_savedmodel")
    >>> serve = tf.saved_model.load(path).signatures["serving_default"]
    >>> serve(image=tf.zeros([1, 97, 131, 3], tf.uint8))["classes"].shape
    TensorShape([1, 97, 131])
    """
    for flag, value in (("jit_compile", jit_compile), ("bfloat16_signature", bfloat16_signature)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag} must be True or False; received {value!r}.")
    model = float32_model(model)
    target = os.fspath(filepath)
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(
                f"version must be a positive integer (TF Serving's numbered sub-directory); "
                f"received {version!r}."
            )
        target = os.path.join(target, str(version))
    signatures = {SIGNATURE_KEY: {"precision": "float32", "jit_compile": jit_compile}}
    if bfloat16_signature:
        signatures[BFLOAT16_SIGNATURE_KEY] = {"precision": "bfloat16", "jit_compile": False}
    meta = artifact_metadata(
        model, "savedmodel", signature=SIGNATURE_KEY, signatures=signatures,
        input_size=list(input_size) if input_size else None,
    )  # fmt: skip
    with atomic_path(target, directory=True) as temp:
        write_savedmodel(model, temp, input_size=input_size, jit_compile=jit_compile,
                         bfloat16_signature=bfloat16_signature)  # fmt: skip
        os.makedirs(os.path.join(temp, os.path.dirname(SAVEDMODEL_METADATA)), exist_ok=True)
        write_json(os.path.join(temp, SAVEDMODEL_METADATA), meta, sort_keys=True)
    return target
