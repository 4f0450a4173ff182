"""Shared helpers of the exporters: atomic writes, artifact metadata and model facts.

Every exporter writes to a temporary path beside the target and renames it into
place only after the artifact is complete, so a failed export never leaves a
half-written file or directory at the target path. Every artifact carries the
same metadata (see `artifact_metadata`), stored where its format allows:
ONNX `metadata_props`, a `<file>.json` sidecar for TFLite, and
`assets.extra/fcn_keras.json` inside a SavedModel.
"""

import contextlib
import json
import os
import shutil
import tempfile

__all__ = [
    "atomic_path",
    "artifact_metadata",
    "model_facts",
    "read_metadata",
    "TFLITE_SIDECAR_SUFFIX",
    "SAVEDMODEL_METADATA",
    "INPUT_CONVENTION",
]

# Sidecar written next to a `.tflite` file (`model.tflite` -> `model.tflite.json`).
TFLITE_SIDECAR_SUFFIX = ".json"
# Metadata file inside a SavedModel directory (TF Serving ignores `assets.extra/`).
SAVEDMODEL_METADATA = os.path.join("assets.extra", "fcn_keras.json")

INPUT_CONVENTION = (
    "image: raw RGB, uint8 in [0, 255], NHWC (batch, height, width, 3), any batch/height/width "
    "unless fixed; preprocessing (BGR, mean subtraction, padding) is inside the graph"
)
OUTPUT_CONVENTION = (
    "logits: float32 (batch, height, width, num_classes), same height/width as the image; "
    "classes: int32 (batch, height, width), argmax of logits"
)


@contextlib.contextmanager
def atomic_path(target, directory=False):
    """Yield a temporary path beside `target`; move it onto `target` on success.

    On any exception the temporary file or directory is removed and `target`
    is left as it was (absent, or the previous artifact).

    Args:
        target: final path of the artifact.
        directory: whether the artifact is a directory (a SavedModel).
            Defaults to `False`.

    Yields:
        The temporary path to write to (it does not exist yet).
    """
    target = os.path.abspath(os.fspath(target))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".tmp-", dir=parent)
    temp = os.path.join(staging, os.path.basename(target))
    try:
        yield temp
        if not os.path.exists(temp):
            raise RuntimeError(f"export produced nothing at {temp!r} (for {target!r}).")
        if directory:
            backup = None
            if os.path.exists(target):
                backup = os.path.join(staging, "previous")
                os.rename(target, backup)
            os.rename(temp, target)
        else:
            if os.path.isdir(target):
                raise ValueError(f"cannot write file {target!r}: a directory is in the way.")
            os.replace(temp, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def model_facts(model):
    """Read num_classes, variant and name from an FCN `keras.Model`.

    Args:
        model: a model built by `fcn_keras` (or any model ending in a
            `(batch, H, W, num_classes)` output).

    Returns:
        dict with `num_classes` (int), `variant` (`"fcn8s"`, `"fcn16s"`,
        `"fcn32s"` or `"unknown"`), `model_name` and `parameters`.
    """
    output_shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    if output_shape is None or len(output_shape) != 4 or output_shape[-1] is None:
        raise ValueError(
            f"model {model.name!r} must output (batch, H, W, num_classes) logits; "
            f"received output shape {output_shape}."
        )
    names = {layer.name for layer in model.layers}
    if "score_pool3" in names:
        variant = "fcn8s"
    elif "score_pool4" in names:
        variant = "fcn16s"
    elif "score_fr" in names:
        variant = "fcn32s"
    else:
        variant = "unknown"
    fc_units = model.get_layer("fc6").filters if "fc6" in names else None
    return {
        "num_classes": int(output_shape[-1]),
        "variant": variant,
        "model_name": model.name,
        "fc_units": fc_units,
        "parameters": int(model.count_params()),
    }


def artifact_metadata(model, fmt, **extra):
    """Build the metadata dict stored with every artifact.

    Args:
        model: the exported `keras.Model`.
        fmt: `"savedmodel"`, `"tflite"` or `"onnx"`.
        **extra: format-specific entries (quantization, opset, input_size, ...).

    Returns:
        A JSON-serialisable dict.
    """
    import fcn_keras

    meta = {"format": fmt, **model_facts(model), "input": INPUT_CONVENTION,
            "outputs": OUTPUT_CONVENTION, "fcn_keras_version": fcn_keras.__version__}  # fmt: skip
    meta.update(extra)
    return meta


def read_metadata(path):
    """Return the fcn_keras metadata stored with an artifact, or `{}` if it has none.

    Args:
        path: a SavedModel directory, a `.tflite` file or a `.onnx` file.

    Returns:
        dict (values as written by `artifact_metadata`).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        sidecar = os.path.join(path, SAVEDMODEL_METADATA)
    elif path.endswith(".onnx"):
        import onnx

        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception as e:
            raise ValueError(f"{path!r} is not a readable ONNX model: {e}") from e
        props = {p.key: p.value for p in proto.metadata_props}
        if "fcn_keras" in props:
            return json.loads(props["fcn_keras"])
        return {}
    else:
        sidecar = path + TFLITE_SIDECAR_SUFFIX
    if not os.path.isfile(sidecar):
        return {}
    try:
        with open(sidecar) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"metadata file {sidecar!r} is unreadable: {e}") from e


def write_json(path, data):
    """Write `data` as indented JSON to `path`."""
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
