"""TFLite (LiteRT) export: float32, float16, dynamic-range and full-integer int8.

Every variant takes the same input as the Keras model and the SavedModel,
`image`: raw RGB uint8 `(batch, height, width, 3)` (batch, height and width
dynamic unless `input_size` fixes them; the interpreter resizes on demand), and
returns `logits` (float32) and `classes` (int32) through its
`serving_default` signature.

Quantization:
- `"float32"`: no quantization.
- `"float16"`: weights stored as float16 (half the size), computed in float32
  by the interpreter. To compute in IEEE half precision (any float file of a
  fixed input size, on a CPU with AVX512-FP16 or ARMv8.2 FP16), run it with
  `Predictor(path, precision="float16")`.
- `"dynamic_range"`: weights int8, activations quantized on the fly.
- `"int8"`: full-integer; weights and activations int8, calibrated on a
  representative dataset of real images. The input stays raw uint8 (not a
  quantized tensor: quantization parameters (0.0, 0)); the graph casts it and
  quantizes the preprocessed image with the calibrated scale, so callers feed
  exactly what they feed every other artifact. Logits come out dequantized
  (float32).

Only TFLite builtin ops are allowed (`TFLITE_BUILTINS`, plus
`TFLITE_BUILTINS_INT8` for int8): the pip interpreter cannot run Flex
(select TF) ops, so a model needing one fails conversion with a `ValueError`
naming the ops, instead of producing a file that fails at run time.

Every file carries its facts inside, as TFLite Model Metadata
(`export/tflite_metadata.py`, `embed_metadata`): model name, description,
version, author, licence; the input (RGB image, uint8, no normalization: the
preprocessing is in the graph); the outputs, `logits` with the model's class
names as `labels.txt` (`TENSOR_AXIS_LABELS`, line i names channel i) and
`classes` with the same file as `TENSOR_VALUE_LABELS`; and `fcn_keras.json`,
the artifact metadata (num_classes, variant, quantization, input convention,
the model's dataset facts: class names, ignore label, palette), which
`read_metadata` and `Predictor` read from the file. A `<file>.json` sidecar
holding the same JSON is written next to it for convenience. The model is
converted from its float32 graph whatever dtype policy it was trained under
(`float32_model`).
"""

import itertools
import json
import os
import re
import tempfile

import numpy as np
import tensorflow as tf
from PIL import Image

from fcn_keras import __version__
from fcn_keras.choices import QUANTIZATIONS

from ._artifacts import (
    TFLITE_METADATA_FILE,
    TFLITE_SIDECAR_SUFFIX,
    artifact_metadata,
    atomic_path,
    float32_model,
    model_facts,
    read_metadata,
    write_json,
)
from .savedmodel import check_input_size, write_savedmodel
from .tflite_metadata import SEGMENTER_METADATA_NAME, build_metadata, read_tflite_metadata
from .tflite_metadata import segmenter_options, write_metadata

__all__ = ["export_tflite", "QUANTIZATIONS", "representative_images_from_dataset", "embed_metadata",
           "LABELS_FILE", "METADATA_FILE", "DEFAULT_LICENSE"]  # fmt: skip

# Associated files packed in every TFLite file (see `embed_metadata`).
LABELS_FILE = "labels.txt"
METADATA_FILE = TFLITE_METADATA_FILE
DEFAULT_LICENSE = (
    "Apache-2.0 (fcn_keras). The weights carry the terms of the data and backbone weights "
    "they were trained from."
)

def representative_images_from_dataset(dataset, limit=100):
    """Yield up to `limit` uint8 RGB images from a dataset of images or (image, mask) pairs.

    Args:
        dataset: a `tf.data.Dataset` or iterable yielding images, batches of
            images, `(image, mask)` tuples or `{"image": ...}` dicts.
        limit: maximum number of images. Defaults to 100.

    Yields:
        uint8 arrays `(H, W, 3)`.
    """
    count = 0
    for element in dataset:
        if isinstance(element, dict):
            element = element["image"]
        elif isinstance(element, (tuple, list)):
            element = element[0]
        array = np.asarray(element)
        batch = array if array.ndim == 4 else array[None]
        for image in batch:
            if count >= limit:
                return
            yield _as_uint8_image(image, f"representative image #{count}")
            count += 1


def _as_uint8_image(image, what):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{what} must be an (H, W, 3) RGB image; received shape {image.shape}.")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and image.size and image.max() <= 1.0:
            raise ValueError(
                f"{what} is float in [0, 1]; the model takes raw RGB in [0, 255] "
                "(uint8): multiply by 255 first."
            )
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image


def _require_representative_images():
    raise ValueError(
        "int8 export needs representative_images: an iterable of real uint8 RGB images "
        "(H, W, 3) from the deployment domain, e.g. "
        "export.representative_images_from_dataset(fcn_keras.load_dataset(...)) or a list "
        "of decoded images; received None."
    )


def _flex_ops(message):
    names = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message))
    for line in re.findall(r"(?:Custom|Flex) ops: ([^\n]+)", message):
        names.update(n.strip() for n in line.split(","))
    return sorted(n for n in names if n)


def _check_saved_model(model, saved_model, input_size):
    path = os.fspath(saved_model)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(f"saved_model {path!r} is not a SavedModel directory (no saved_model.pb).")
    meta, facts = read_metadata(path), model_facts(model)
    for key in ("num_classes", "model_name", "parameters"):
        if meta.get(key) != facts[key]:
            raise ValueError(
                f"saved_model {path!r} was exported from another model: its {key} is "
                f"{meta.get(key)!r}, model {model.name!r} has {facts[key]!r}."
            )
    stored = tuple(meta["input_size"]) if meta.get("input_size") else None
    if stored != input_size:
        raise ValueError(
            f"saved_model {path!r} has input_size {stored}; this export asks for {input_size}."
        )
    return path


def convert_to_tflite(model, quantization="float32", representative_images=None,
                      input_size=None, num_calibration_images=100, saved_model=None,
                      batch_size=None, classes=True, int8_output="float32"):  # fmt: skip
    """Convert `model` to TFLite flatbuffer bytes (see `export_tflite`).

    `batch_size` fixes the batch dimension and `classes=False` leaves out the
    `classes` output (the mobile file, `export_mobile`); a `saved_model`
    given must have been written with the same settings. `int8_output="uint8"`
    keeps an int8 file's output quantized (`export_mobile(int8_output=...)`).
    """
    model = float32_model(model)
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}; received {quantization!r}.")
    if saved_model is not None:
        saved_model = _check_saved_model(model, saved_model, input_size)
    with tempfile.TemporaryDirectory(prefix="fcn_keras_tflite_") as temp_dir:
        if saved_model is None:
            saved_model_dir = temp_dir
            write_savedmodel(model, saved_model_dir, input_size=input_size, batch_size=batch_size,
                             classes=classes)  # fmt: skip
        else:
            saved_model_dir = saved_model
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantization == "dynamic_range":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantization == "int8":
            if representative_images is None:
                _require_representative_images()
            images = list(
                itertools.islice(
                    representative_images_from_dataset(representative_images, num_calibration_images),
                    num_calibration_images,
                )
            )
            if not images:
                raise ValueError("representative_images is empty: int8 calibration needs images.")
            if input_size is not None:
                images = [_resize(image, input_size) for image in images]

            def representative_dataset():
                for image in images:
                    yield [image[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_output == "uint8":  # the logits stay quantized: (q - zero_point) * scale
                converter.inference_output_type = tf.uint8
        try:
            return converter.convert()
        except Exception as e:
            message = str(e)
            ops = _flex_ops(message)
            if ops:
                raise ValueError(
                    f"model {model.name!r} needs TensorFlow ops with no TFLite builtin: "
                    f"{', '.join(ops)}. The TFLite export allows builtin ops only "
                    "(Flex/select-TF ops do not run in the ai_edge_litert interpreter); "
                    "replace those ops in the model."
                ) from e
            raise RuntimeError(
                f"TFLite conversion ({quantization}) of model {model.name!r} failed: "
                f"{message[-2000:]}"
            ) from e


def _resize(image, size):
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def _dataset_facts(meta):
    dataset = meta.get("dataset_info") or None
    if dataset is None:
        return None, ""
    return "".join(f"{name}\n" for name in dataset["class_names"]), f" of {dataset['name']}"


def embed_metadata(buffer, meta, activation=None, name=None, description=None, version=None,
                   author=None, license=None):  # fmt: skip
    """Return the TFLite bytes `buffer` with its Model Metadata and associated files inside.

    Written for every TFLite file fcn_keras exports (see the module
    docstring): the `serving_default` signature's `image` input and `logits`
    / `classes` outputs are described in the subgraph's tensor order;
    `labels.txt` (when the model carries a `DatasetInfo`) names the score
    channels 0..C-1 (the void / ignore label is not a channel, so it is not
    a line); `fcn_keras.json` holds `meta`.

    Args:
        buffer: the converted `.tflite` bytes.
        meta: the artifact metadata (`artifact_metadata`), stored as `fcn_keras.json`.
        activation: MediaPipe ImageSegmenter activation (`"SOFTMAX"`, ...) to
            write as `SEGMENTER_METADATA` custom metadata, or None for none.
            Defaults to None.
        name: model name. Defaults to the variant and dataset, e.g. `"fcn8s_camvid"`.
        description: model description. Defaults to one written from `meta`.
        version: model version. Defaults to the fcn_keras version.
        author: Defaults to `"fcn_keras"`.
        license: Defaults to `DEFAULT_LICENSE`.

    Returns:
        bytes of the file.

    Example:
    >>> data = embed_metadata(converter.convert(), artifact_metadata(model, "tflite"))
    """
    info = read_tflite_metadata(buffer)
    signature = info["signatures"].get("serving_default")
    if signature is None or "image" not in signature["inputs"] or "logits" not in signature["outputs"]:
        raise ValueError(f"converted TFLite model has signatures {info['signatures']}; expected "
                         "serving_default with input 'image' and output 'logits'.")  # fmt: skip
    labels, of_dataset = _dataset_facts(meta)
    classes = meta["num_classes"]
    variant = meta.get("variant") if meta.get("variant") not in (None, "unknown") else meta["model_name"]
    dataset = meta.get("dataset_info")
    shape = info["inputs"][0]["shape"]
    fixed = shape[1] > 0 and shape[2] > 0
    size_text = f"{shape[1]}x{shape[2]}" if fixed else "any size"
    if description is None:
        description = (
            f"{variant} fully convolutional network (Long et al., 2015): semantic segmentation "
            f"into {classes} classes{of_dataset}. Input: RGB uint8 image in [0, 255], {size_text} "
            "(preprocessing inside the graph). Output 'logits': one score per class and pixel; "
            "softmax gives the class probabilities, argmax the class."
            + (f" Pixels labelled {dataset['ignore_label']} (void) in the training data are "
               "no class: no score channel, no label line." if dataset else "")
            + (f" {METADATA_FILE} holds the class names, ignore label and palette (RGB per class)."
               if dataset else f" {METADATA_FILE} holds the export facts (no class names: the "
               "model carries no dataset_info).")
        )  # fmt: skip
    label_files = []
    if labels is not None:
        label_files = [{"name": LABELS_FILE, "type": "TENSOR_AXIS_LABELS",
                        "description": f"class names{of_dataset}, line i names score channel i"}]  # fmt: skip
    inputs = [{
        "name": "image",
        "description": f"RGB image, uint8 in [0, 255], {size_text}; no normalization (the mean "
                       "subtraction is inside the graph)",
        "image": {"color_space": "RGB", "default_size": (shape[2], shape[1]) if fixed else None},
        "stats": ([0.0] * 3, [255.0] * 3),
    }]  # fmt: skip
    outputs = []
    names = {index: key for key, index in signature["outputs"].items()}
    for tensor in info["outputs"]:
        key = names.get(tensor["index"])
        if key == "logits":
            outputs.append({
                "name": "logits",
                "description": f"per-pixel class scores (logits, float32, {classes} channels); "
                               "softmax gives probabilities" + (", as MediaPipe's activation "
                               f"{activation} does" if activation else ""),
                "image": {"color_space": "GRAYSCALE"}, "range": (1, 2),
                "associated_files": label_files,
            })  # fmt: skip
        elif key == "classes":
            outputs.append({
                "name": "classes", "description": "per-pixel class id (int32), argmax of the logits",
                "associated_files": [dict(f, type="TENSOR_VALUE_LABELS") for f in label_files],
            })  # fmt: skip
        else:
            raise ValueError(f"converted TFLite model has an unexpected output {key!r} "
                             f"(tensor {tensor['name']!r}).")  # fmt: skip
    default_name = f"{variant}_{dataset['name']}" if dataset else variant
    metadata = build_metadata(
        name or default_name, description=description, version=version or __version__,
        author=author or "fcn_keras", license=license or DEFAULT_LICENSE,
        inputs=inputs, outputs=outputs,
        associated_files=[{"name": METADATA_FILE, "description":
                           "fcn_keras metadata (JSON): class names, ignore label, palette, "
                           "quantization, input convention"}],
        custom_metadata={SEGMENTER_METADATA_NAME: segmenter_options(activation)} if activation else None,
    )  # fmt: skip
    files = {METADATA_FILE: json.dumps(meta, indent=2, sort_keys=True).encode() + b"\n"}
    if labels is not None:
        files[LABELS_FILE] = labels.encode()
    return write_metadata(buffer, metadata, files)


def export_tflite(model, filepath, quantization="float32", representative_images=None,
                  input_size=None, num_calibration_images=100, saved_model=None):  # fmt: skip
    """Export an FCN to a TFLite file (builtin ops only).

    Args:
        model: an FCN `keras.Model` from `fcn_keras` (raw RGB in, logits out),
            under any dtype policy (converted from its float32 graph).
        filepath: target `.tflite` path; written atomically, with its Model
            Metadata inside (`embed_metadata`) and a `<filepath>.json` copy of
            the fcn_keras metadata beside it.
        quantization: `"float32"`, `"float16"`, `"dynamic_range"` or
            `"int8"` (full integer). Defaults to `"float32"`.
        representative_images: for `"int8"`, an iterable of uint8 RGB images
            `(H, W, 3)` (or batches, `(image, mask)` pairs, or a
            `tf.data.Dataset` of them, e.g. from `fcn_keras.load_dataset`)
            used to calibrate activation ranges. Required for int8.
        input_size: optional `(height, width)` to fix the input size (mobile
            deployments); calibration images are resized to it. Defaults to
            `None` (dynamic height and width).
        num_calibration_images: at most this many calibration images are
            used. Defaults to 100.
        saved_model: optional path of a SavedModel written by
            `export_savedmodel` for this same model (and `input_size`), used
            as the conversion source instead of writing a temporary one
            (saves time when exporting several variants). Defaults to `None`.

    Returns:
        The path written.

    Example:
    >>> export.export_tflite(model, "/tmp/fcn8s_int8.tflite", quantization="int8",
    ...                      representative_images=calibration_images)
    """
    model = float32_model(model)
    if input_size is not None:
        input_size = check_input_size(input_size)
    target = os.fspath(filepath)
    if not target.endswith(".tflite"):
        raise ValueError(f"TFLite export path must end with '.tflite'; received {target!r}.")
    buffer = convert_to_tflite(model, quantization, representative_images, input_size,
                               num_calibration_images, saved_model)  # fmt: skip
    meta = artifact_metadata(
        model, "tflite", quantization=quantization,
        input_size=list(input_size) if input_size else None, signature="serving_default",
    )  # fmt: skip
    write_tflite_file(target, embed_metadata(buffer, meta), meta)
    return target


def write_tflite_file(target, data, meta):
    """Write a `.tflite` file and its `<file>.json` sidecar atomically (both or neither)."""
    with atomic_path(target + TFLITE_SIDECAR_SUFFIX) as sidecar, atomic_path(target) as temp:
        with open(temp, "wb") as f:
            f.write(data)
        write_json(sidecar, meta, sort_keys=True)
    return target
