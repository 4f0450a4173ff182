"""Shared helpers of the exporters: atomic writes, artifact metadata and model facts.

Every exporter writes to a temporary path beside the target and renames it into
place only after the artifact is complete, so a failed export never leaves a
half-written file or directory at the target path. Every artifact carries the
same metadata (see `artifact_metadata`), stored where its format allows:
ONNX `metadata_props`, `fcn_keras.json` packed inside a TFLite file (an
associated file of its TFLite Model Metadata, `export/tflite.py`
`embed_metadata`; a `<file>.json` sidecar copy is written beside it for
convenience, never read), and `assets.extra/fcn_keras.json` inside a SavedModel. When the model carries a
`dataset_info` (class names, ignore label, palette, dataset name), that is in
the metadata too, so `Predictor` and `fcn-keras predict` need no retyping; so is
the `input_scale` a model was trained at, which `Predictor` applies.

Every exporter takes the model's weights into a float32 graph
(`float32_model`): a model built or trained under `mixed_bfloat16` /
`mixed_float16` would otherwise carry reduced-precision ops into the traced
graph (TFLite refuses them, tf2onnx writes an invalid file).
"""

import json
import os
import zipfile

import keras

from fcn_keras import __version__
from fcn_keras.data.info import DatasetInfo
from fcn_keras.evaluation import input_scale_of
from fcn_keras.files import atomic_path, write_json
from fcn_keras.models import variant_of

__all__ = [
    "atomic_path",
    "artifact_metadata",
    "dataset_info_of",
    "float32_model",
    "model_facts",
    "read_metadata",
    "TFLITE_SIDECAR_SUFFIX",
    "TFLITE_METADATA_FILE",
    "SAVEDMODEL_METADATA",
    "INPUT_CONVENTION",
    "write_json",
]

# Sidecar written next to a `.tflite` file (`model.tflite` -> `model.tflite.json`): a copy of
# the metadata packed inside the file, for people; `read_metadata` reads the file itself.
TFLITE_SIDECAR_SUFFIX = ".json"
# The associated file of a TFLite file's Model Metadata holding the fcn_keras metadata.
TFLITE_METADATA_FILE = "fcn_keras.json"
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


def model_facts(model):
    """Read num_classes, variant and name from an FCN `keras.Model`.

    Args:
        model: a model built by `fcn_keras` (or any model ending in a
            `(batch, H, W, num_classes)` output).

    Returns:
        dict with `num_classes` (int), `variant` (`fcn_keras.models.variant_of`:
        `"fcn32s"`, `"fcn16s"`, `"fcn8s"`, `"fcn8s_atonce"`, or `"unknown"`
        for a model that is not an fcn_keras FCN), `model_name`, `fc_units`,
        `parameters` and `input_scale` (the factor images are resized by
        before the network, `fcn_keras.evaluation.input_scale_of`; 1.0 for a
        model trained at full size); a `with_tta` model is described by the
        FCN it wraps, plus `tta` (`fcn_keras.tta.tta_settings`: scales, flip).

    Example:
    >>> model_facts(fcn_keras.FCN16s(num_classes=12, backbone_weights=None))["variant"]
    'fcn16s'
    """
    output_shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    if output_shape is None or len(output_shape) != 4 or output_shape[-1] is None:
        raise ValueError(
            f"model {model.name!r} must output (batch, H, W, num_classes) logits; "
            f"received output shape {output_shape}."
        )
    from fcn_keras.tta import tta_settings, wrapped_model

    fcn = wrapped_model(model) or model
    try:
        variant = variant_of(fcn)
    except ValueError:  # any segmentation model with the same input/output contract exports
        variant = "unknown"
    names = {layer.name for layer in fcn.layers}
    fc_units = fcn.get_layer("fc6").filters if "fc6" in names else None
    facts = {
        "num_classes": int(output_shape[-1]),
        "variant": variant,
        "model_name": model.name,
        "fc_units": fc_units,
        "parameters": int(model.count_params()),
        "input_scale": input_scale_of(model),
    }
    tta = tta_settings(model)
    if tta is not None:
        facts["tta"] = tta
    return facts


# DatasetInfo fields stored in artifacts: what predicting needs (not sizes, nor the
# description, which may name a local data folder).
_DATASET_FIELDS = ("name", "num_classes", "class_names", "ignore_label", "palette")


def dataset_info_of(model_or_metadata):
    """The `DatasetInfo` a model or an artifact's metadata carries, or None.

    Args:
        model_or_metadata: a `keras.Model` (its `dataset_info` attribute, set
            by `fcn_keras.train`) or a metadata dict from `read_metadata`.

    Returns:
        `fcn_keras.DatasetInfo` or None.
    """
    if isinstance(model_or_metadata, dict):
        config = model_or_metadata.get("dataset_info")
        if not config:
            return None
        try:
            return DatasetInfo.from_config(config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"artifact metadata holds an invalid dataset_info {config!r}: {e}") from e
    return getattr(model_or_metadata, "dataset_info", None)


# Dtype policies (and tensor dtypes) computed in reduced precision: rebuilt as float32.
_HALF_PRECISION = ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


def _dtype_to_float32(value):
    """A config's `dtype` value, float32 when it is a half-precision dtype or policy, else as is."""
    if isinstance(value, str):
        return "float32" if value in _HALF_PRECISION else value
    if (
        isinstance(value, dict)
        and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")
        and isinstance(value.get("config"), dict)
        and value["config"].get("name") in _HALF_PRECISION
    ):
        return {**value, "config": {**value["config"], "name": "float32"}}
    return value


def _policy_to_float32(node):
    """Copy of a model config with every half-precision `dtype` entry set to float32.

    Only the values of `dtype` keys change (layer dtype policies and the dtypes
    of the symbolic tensors between layers); integer dtypes, other policies
    and every other field, layer names included, are kept.
    """
    if isinstance(node, dict):
        return {key: _policy_to_float32(_dtype_to_float32(value) if key == "dtype" else value)
                for key, value in node.items()}  # fmt: skip
    if isinstance(node, list):
        return [_policy_to_float32(value) for value in node]
    return node


def _is_float32(model):
    """Whether no layer of `model` (nested models included) computes or stores in half precision."""
    half = ("float16", "bfloat16")
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        policy = layer.dtype_policy
        if policy.compute_dtype in half or policy.variable_dtype in half:
            return False
        stack.extend(getattr(layer, "layers", []))
    return True


def float32_model(model):
    """Return `model` computing in float32: itself, or a float32 rebuild holding its weights.

    A model built under a `mixed_bfloat16` or `mixed_float16` dtype policy
    keeps float32 variables but computes in half precision; traced for export
    it would carry bfloat16/float16 ops. This rebuilds it from its config with
    every layer's dtype policy set to float32 (under a float32 global policy,
    restored afterwards) and copies the weights, so every exporter writes the
    same float32 graph whatever policy the model was trained under.

    Args:
        model: a functional `keras.Model` (an `FCNModel` keeps its `dataset_info`).

    Returns:
        `model` when every layer already computes in float32, else the rebuilt model.

    Example:
    >>> keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    >>> model = fcn_keras.FCN8s(num_classes=3, fc_units=8, backbone_weights=None)
    >>> keras.mixed_precision.set_dtype_policy("float32")
    >>> float32_model(model).get_layer("fc6").compute_dtype
    'float32'
    """
    if _is_float32(model):
        return model
    config = _policy_to_float32(model.get_config())
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        rebuilt = model.__class__.from_config(config)
    except Exception as e:
        raise ValueError(
            f"cannot rebuild model {model.name!r} (dtype policy {model.dtype_policy.name}) in "
            f"float32 for export: {e}"
        ) from e
    finally:
        keras.config.set_dtype_policy(previous)
    weights = model.get_weights()
    rebuilt.set_weights([w.astype("float32") if w.dtype.kind == "f" else w for w in weights])
    return rebuilt


def artifact_metadata(model, fmt, **extra):
    """Build the metadata dict stored with every artifact.

    Args:
        model: the exported `keras.Model`.
        fmt: `"savedmodel"`, `"tflite"` or `"onnx"`.
        **extra: format-specific entries (quantization, opset, input_size, ...).

    Returns:
        A JSON-serialisable dict; `dataset_info` holds the model's dataset
        facts (`name`, `num_classes`, `class_names`, `ignore_label`,
        `palette`) when it has them, else None.

    Example:
    >>> artifact_metadata(model, "onnx", opset=17)["dataset_info"]["class_names"][:2]
    ['Sky', 'Building']
    """
    info = dataset_info_of(model)
    dataset = None
    if info is not None:
        config = info.to_config()
        dataset = {key: config[key] for key in _DATASET_FIELDS}
    meta = {"format": fmt, **model_facts(model), "input": INPUT_CONVENTION,
            "outputs": OUTPUT_CONVENTION, "fcn_keras_version": __version__,
            "dataset_info": dataset}  # fmt: skip
    meta.update(extra)
    return meta


def read_metadata(path):
    """Return the fcn_keras metadata stored with an artifact, or `{}` if it has none.

    Args:
        path: a SavedModel directory, a `.tflite` file or a `.onnx` file.

    Returns:
        dict (values as written by `artifact_metadata`). For a `.tflite`
        file, the `fcn_keras.json` packed in the file (its Model Metadata's
        associated files), never the sidecar beside it.

    Example:
    >>> read_metadata("fcn8s_mobile_float32_360x480.tflite")["dataset_info"]["ignore_label"]
    255
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        sidecar = os.path.join(path, SAVEDMODEL_METADATA)
    elif path.endswith(".onnx"):
        import onnx  # imported at use: `import fcn_keras.export` stays light

        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception as e:
            raise ValueError(f"{path!r} is not a readable ONNX model: {e}") from e
        props = {p.key: p.value for p in proto.metadata_props}
        if "fcn_keras" in props:
            return json.loads(props["fcn_keras"])
        return {}
    else:
        return _tflite_metadata(path)
    if not os.path.isfile(sidecar):
        return {}
    try:
        with open(sidecar) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"metadata file {sidecar!r} is unreadable: {e}") from e


def _tflite_metadata(path):
    """The `fcn_keras.json` packed at the end of a `.tflite` file (a zip archive), or `{}`."""
    try:
        with zipfile.ZipFile(path) as archive:
            if TFLITE_METADATA_FILE not in archive.namelist():
                return {}
            data = archive.read(TFLITE_METADATA_FILE)
    except FileNotFoundError:
        raise
    except zipfile.BadZipFile:
        return {}  # a TFLite file without associated files
    except OSError as e:
        raise ValueError(f"TFLite file {path!r} is unreadable: {e}") from e
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"TFLite file {path!r} packs an unreadable {TFLITE_METADATA_FILE}: {e}") from e

