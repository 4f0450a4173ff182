"""The TFLite file for phones: what MediaPipe Tasks' ImageSegmenter runs as it is, labels inside.

`export_mobile` writes one `.tflite` file an Android, iOS or web app drops in:

- input `image`: uint8 RGB `[1, H, W, 3]` in [0, 255], a fixed size (MediaPipe
  resizes the camera frame to it). The preprocessing (RGB to BGR, mean
  subtraction, padding to a multiple of 32) is inside the graph, so the
  metadata declares no normalization.
- one output `logits`: float32 `[1, H, W, C]`, one score per class and pixel.
  MediaPipe's segmenter reads the single (last) output as the score map and
  takes float32 scores only. Its category mask is the argmax of the scores
  (the activation does not change it), so it is Keras's argmax; its confidence
  masks are `softmax(logits)` because the metadata's activation is SOFTMAX,
  i.e. the class probabilities. The int8 file computes in int8 and
  dequantizes its output to float32 (a uint8 output would be read as floats
  by MediaPipe's `TensorsToSegmentationCalculator`, which reads float32
  tensors only).
- TFLite Model Metadata (`embed_metadata`): name, description, version,
  author, licence, input image properties, `labels.txt` (one class name per
  score channel; void is no channel), MediaPipe's `SEGMENTER_METADATA`
  (activation SOFTMAX) and `fcn_keras.json` (class names, ignore label,
  palette, quantization). `Predictor` runs the file too (its
  `serving_default` signature: `image` -> `logits`).

Quantizations (`MOBILE_QUANTIZATIONS`): float32; float16 (weights in half
precision, half the size, computed in float32 or, on phone GPUs and fp16
CPUs, in float16); int8 (weights and activations int8, about a quarter of the
size, calibrated on real training images).

`run_mediapipe` runs a file through MediaPipe's ImageSegmenter (the Python
package `mediapipe`, the same C++ graph as the mobile SDKs; optional extra
`fcn_keras[mobile]`), the client `verify` and the tests check files with.
"""

import os

import numpy as np

from fcn_keras.choices import MOBILE_QUANTIZATIONS

from fcn_keras.evaluation import input_scale_of

from ._artifacts import artifact_metadata, float32_model
from .savedmodel import check_input_size
from .tflite import _require_representative_images, convert_to_tflite, embed_metadata, write_tflite_file

__all__ = ["export_mobile", "run_mediapipe", "mediapipe_available", "MOBILE_QUANTIZATIONS",
           "MOBILE_ACTIVATION"]  # fmt: skip

# MediaPipe's activation for the `logits` output: softmax gives the confidence masks.
MOBILE_ACTIVATION = "SOFTMAX"


def export_mobile(model, filepath, input_size, quantization="float32", representative_images=None,
                  num_calibration_images=100, name=None, description=None, version=None,
                  author=None, license=None, int8_output="float32"):  # fmt: skip
    """Export an FCN as the TFLite file MediaPipe's ImageSegmenter runs as it is.

    Args:
        model: an FCN `keras.Model` from `fcn_keras` (raw RGB in, logits out),
            any dtype policy (converted from its float32 graph). Its
            `dataset_info` (set by `fcn_keras.train`) gives the labels.
        filepath: target `.tflite` path (written atomically, with a
            `<filepath>.json` copy of the fcn_keras metadata beside it).
        input_size: `(height, width)` of the images the app sends, e.g.
            `(360, 480)`. A model trained at reduced scale (`input_scale` s < 1)
            gets a file whose input is `(round(s * height), round(s * width))`:
            MediaPipe resizes each image to it, as evaluation shrinks images by
            s, and the file's metadata carries s for `Predictor`.
        quantization: `"float32"`, `"float16"` or `"int8"`. Defaults to `"float32"`.
        representative_images: for `"int8"`: real uint8 RGB images `(H, W, 3)`
            from the training data (any size: resized to `input_size`), or
            anything `export_tflite` takes. Required for int8.
        num_calibration_images: at most this many calibrate int8. Defaults to 100.
        name, description, version, author, license: Model Metadata strings
            (see `embed_metadata` for the defaults).
        int8_output: for `"int8"`: the score map dequantized to `"float32"`
            or kept quantized as `"uint8"` (a quarter of the output's bytes;
            MediaPipe's ImageSegmenter reads both, and `Predictor`
            dequantizes it). Defaults to `"float32"`.

    Returns:
        The path written.

    Raises:
        ValueError: a quantization outside `MOBILE_QUANTIZATIONS`, a bad
            `input_size`, a path not ending in `.tflite`, int8 without images.

    Example:
    >>> export.export_mobile(model, "fcn8s_camvid.tflite", input_size=(360, 480),
    ...                      quantization="int8", representative_images=train_images)
    'fcn8s_camvid.tflite'
    """
    if quantization not in MOBILE_QUANTIZATIONS:
        raise ValueError(f"quantization for a mobile file must be one of {MOBILE_QUANTIZATIONS}; "
                         f"received {quantization!r}.")  # fmt: skip
    if input_size is None:
        raise ValueError("input_size must be (height, width): MediaPipe's ImageSegmenter needs a "
                         "fixed input size; received None.")  # fmt: skip
    input_size = check_input_size(tuple(input_size) if isinstance(input_size, list) else input_size)
    if int8_output not in ("float32", "uint8"):
        raise ValueError(f"int8_output must be 'float32' or 'uint8'; received {int8_output!r}.")
    if int8_output == "uint8" and quantization != "int8":
        raise ValueError(f"int8_output='uint8' keeps an int8 file's scores quantized; received "
                         f"quantization={quantization!r} (expected 'int8').")  # fmt: skip
    if quantization == "int8" and representative_images is None:
        _require_representative_images()
    target = os.fspath(filepath)
    if not target.endswith(".tflite"):
        raise ValueError(f"mobile export path must end with '.tflite'; received {target!r}.")
    scale = input_scale_of(model)
    if scale != 1.0:  # the network's input, as `fcn_keras.evaluation.scale_images` rounds it
        input_size = tuple(max(int(round(side * scale)), 1) for side in input_size)
    model = float32_model(model)
    buffer = convert_to_tflite(model, quantization, representative_images, input_size,
                               num_calibration_images, batch_size=1, classes=False,
                               int8_output=int8_output)  # fmt: skip
    meta = artifact_metadata(
        model, "mobile", quantization=quantization, input_size=list(input_size),
        signature="serving_default", activation=MOBILE_ACTIVATION,
        **({"int8_output": int8_output} if quantization == "int8" else {}),
    )  # fmt: skip
    data = embed_metadata(buffer, meta, activation=MOBILE_ACTIVATION, name=name,
                          description=description, version=version, author=author, license=license)  # fmt: skip
    write_tflite_file(target, data, meta)
    return target


def mediapipe_available():
    """`(True, version)` when MediaPipe Tasks imports, else `(False, reason)`."""
    try:
        import mediapipe
        from mediapipe.tasks.python import vision  # noqa: F401
    except Exception as e:  # ImportError, or a wheel that fails to load on this platform
        return False, f"mediapipe is not importable ({type(e).__name__}: {e}); pip install \"fcn_keras[mobile]\""
    return True, getattr(mediapipe, "__version__", "unknown")


def run_mediapipe(path, images):
    """Run a `.tflite` file through MediaPipe Tasks' ImageSegmenter (CPU, image mode).

    Args:
        path: the `.tflite` file (from `export_mobile`).
        images: uint8 RGB images `(H, W, 3)` (a list, or one image). MediaPipe
            resizes each to the file's input size and its masks back to the
            image's size.

    Returns:
        dict with `category` (list of uint8 `(H, W)` masks), `confidence`
        (list of float32 `(H, W, C)` arrays, channel c = confidence mask c)
        and `labels` (MediaPipe's label list, from the file's metadata).

    Raises:
        ImportError: mediapipe is not installed (message says how to install it).

    Example:
    >>> out = run_mediapipe("fcn8s_camvid.tflite", [image])
    >>> out["category"][0].shape, out["labels"][:2]
    ((360, 480), ['Sky', 'Building'])
    """
    available, reason = mediapipe_available()
    if not available:
        raise ImportError(reason)
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    single = isinstance(images, np.ndarray) and images.ndim == 3
    images = [images] if single else list(images)
    options = vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=os.fspath(path)),
        running_mode=vision.RunningMode.IMAGE, output_category_mask=True,
        output_confidence_masks=True,
    )  # fmt: skip
    category, confidence = [], []
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        labels = list(segmenter.labels)
        for i, image in enumerate(images):
            image = np.ascontiguousarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
                raise ValueError(f"image #{i} for MediaPipe must be uint8 (H, W, 3); received "
                                 f"{image.dtype} {image.shape}.")  # fmt: skip
            result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
            height, width = image.shape[:2]
            category.append(np.array(result.category_mask.numpy_view()).reshape(height, width))
            confidence.append(np.stack([np.array(m.numpy_view()).reshape(height, width)
                                        for m in result.confidence_masks], axis=-1))  # fmt: skip
    return {"category": category, "confidence": confidence, "labels": labels}
