"""`export_all`: export a model to every asked-for format and verify the artifacts, in one call.

The one orchestration of the exporters, used by `fcn-keras export` and by the
demo (`fcn_keras.demo`). File names, under `out_dir`, with `name` the model's
variant (`fcn_keras.models.variant_of`) unless given:

    {name}_savedmodel/                       SavedModel (TF Serving signature)
    {name}_{quantization}.tflite (+ .json)   one per TFLite quantization
    {name}_{quantization}_{H}x{W}.tflite     the same, for a fixed input_size
    {name}_mobile_{quantization}_{H}x{W}.tflite   the MediaPipe file (`export_mobile`), one per
                                             quantization (float32, float16, int8); needs input_size
    {name}.onnx                              ONNX (float32)
    {name}_int8.onnx                         ONNX int8 (QDQ), when "int8" is asked
    verification.json, verification.md       `verify`'s report (when verifying)

The artifact names in the summary and in the report are these file names.
Verification adds an odd-sized crop of the first two images (padding to a
multiple of 32 and cropping back are where exports break). int8 calibration
images (one list, shared by the int8 TFLite and the int8 ONNX) must not be
verification images: calibrating on the data that then measures the
quantized model's mean IU would flatter it, so an overlap is an error.
"""

import hashlib
import itertools
import os
import time

import numpy as np

from fcn_keras.choices import DEFAULT_FORMATS, FORMATS, MOBILE_QUANTIZATIONS, ONNX_QUANTIZATIONS, QUANTIZATIONS
from fcn_keras.models import variant_of

from ._artifacts import float32_model
from .mobile import export_mobile
from .onnx import export_onnx
from .savedmodel import check_input_size, export_savedmodel
from .tflite import export_tflite, representative_images_from_dataset
from .verify import verify

__all__ = ["export_all", "FORMATS", "DEFAULT_FORMATS", "artifact_names", "with_odd_crops"]


def artifact_names(name, formats=DEFAULT_FORMATS, quantizations=("float32",), input_size=None):
    """The file names `export_all` writes, per format (the one naming scheme).

    Args:
        name: base name, e.g. `"fcn8s"`.
        formats: formats to name. Defaults to `DEFAULT_FORMATS` (all but "mobile").
        quantizations: TFLite quantizations (also those of the mobile
            files); `"int8"` also names the int8 ONNX (the float32 ONNX is
            always written). Defaults to `("float32",)`.
        input_size: optional fixed `(height, width)` of the TFLite files
            (required by "mobile").

    Returns:
        dict `{artifact name: (format, quantization or None)}`, in export order.

    Example:
    >>> artifact_names("fcn8s", quantizations=("float32", "int8"))
    {'fcn8s_savedmodel': ('savedmodel', None), 'fcn8s_float32.tflite': ('tflite', 'float32'),
     'fcn8s_int8.tflite': ('tflite', 'int8'), 'fcn8s.onnx': ('onnx', None),
     'fcn8s_int8.onnx': ('onnx', 'int8')}
    """
    suffix = "" if input_size is None else f"_{input_size[0]}x{input_size[1]}"
    names = {}
    if "savedmodel" in formats:
        names[f"{name}_savedmodel"] = ("savedmodel", None)
    if "tflite" in formats:
        for quantization in quantizations:
            names[f"{name}_{quantization}{suffix}.tflite"] = ("tflite", quantization)
    if "onnx" in formats:
        names[f"{name}.onnx"] = ("onnx", None)
        for quantization in quantizations:
            if quantization in ONNX_QUANTIZATIONS and quantization != "float32":
                names[f"{name}_{quantization}.onnx"] = ("onnx", quantization)
    if "mobile" in formats:
        if input_size is None:
            raise ValueError("format 'mobile' needs input_size (height, width): MediaPipe runs a "
                             "fixed-size file; received None.")  # fmt: skip
        for quantization in quantizations:
            names[f"{name}_mobile_{quantization}{suffix}.tflite"] = ("mobile", quantization)
    return names


def with_odd_crops(images, labels=None):
    """The verification images `export_all` uses: the images plus an odd-sized crop of the first two.

    Padding to a multiple of 32 and cropping back are where exports break, so
    `export_all(..., odd_crops=True)` verifies on these crops too; call this to
    recompute its figures (e.g. the Keras mean IU of its report) from the same
    images.

    Args:
        images: list of `(H, W, 3)` images.
        labels: optional list of `(H, W)` masks, one per image, cropped alike.
            Defaults to None.

    Returns:
        `(images, labels)`: new lists with up to two crops appended (each the
        top-left `odd(3H/4) x odd(2W/3)` of the first and second image), and
        labels None when none were given.

    Example:
    >>> images, _ = with_odd_crops([np.zeros((40, 56, 3), np.uint8)])
    >>> [image.shape for image in images]
    [(40, 56, 3), (31, 37, 3)]
    """
    images, labels = list(images), None if labels is None else list(labels)
    for index in range(min(2, len(images))):
        image = images[index]
        height, width = image.shape[:2]
        h = max(1, (height * 3 // 4) | 1) if height > 2 else height
        w = max(1, (width * 2 // 3) | 1) if width > 2 else width
        images.append(image[:h, :w])
        if labels is not None:
            labels.append(labels[index][:h, :w])
    return images, labels


def _digest(image):
    array = np.ascontiguousarray(image)
    return hashlib.sha1(str(array.shape).encode() + array.tobytes()).hexdigest()


def _needs_calibration(formats, quantizations):
    """Whether an int8 artifact (TFLite or ONNX) is asked for."""
    return "int8" in quantizations and bool({"tflite", "onnx", "mobile"} & set(formats))


def _check_arguments(formats, quantizations, input_size, calibration_images, verify_images,
                     verify_labels):  # fmt: skip
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}; received {list(formats)!r}.")
    bad = [q for q in quantizations if q not in QUANTIZATIONS]
    if bad or ({"tflite", "mobile"} & set(formats) and not quantizations):
        raise ValueError(
            f"quantizations must be a non-empty subset of {QUANTIZATIONS}; received {list(quantizations)!r}."
        )
    if "mobile" in formats:
        bad = [q for q in quantizations if q not in MOBILE_QUANTIZATIONS]
        if bad:
            raise ValueError(
                f"format 'mobile' writes quantizations {MOBILE_QUANTIZATIONS}; received {bad!r} "
                "(export those as format 'tflite' in a separate call)."
            )
        if input_size is None:
            raise ValueError("format 'mobile' needs input_size (height, width): MediaPipe runs a "
                             "fixed-size file; received None. Nothing was written.")  # fmt: skip
    if _needs_calibration(formats, quantizations) and calibration_images is None:
        raise ValueError(
            "quantization 'int8' needs calibration_images (real images, e.g. the train split); "
            "received none. Nothing was written."
        )
    if verify_labels is not None:
        if verify_images is None:
            raise ValueError(
                f"verify_labels holds {len(verify_labels)} mask(s) but verify_images is None; "
                "pass the images the masks label."
            )
        if len(verify_labels) != len(verify_images):
            raise ValueError(
                f"verify_labels holds {len(verify_labels)} mask(s) for {len(verify_images)} "
                "verify_images; expected one mask per image."
            )
    return None if input_size is None else check_input_size(tuple(input_size))


def export_all(model, out_dir, *, formats=DEFAULT_FORMATS, quantizations=("float32",), opset=17,
               input_size=None, name=None, verify_images=None, verify_labels=None,
               calibration_images=None, num_calibration_images=100, ignore_label=None,
               odd_crops=True, num_threads=None, report_path=None, jit_compile=True,
               mobile_int8_output="float32"):  # fmt: skip
    """Export `model` to SavedModel / TFLite / ONNX under `out_dir` and verify the artifacts.

    Args:
        model: an FCN `keras.Model` (any dtype policy: exported as float32).
        out_dir: output directory (created).
        formats: subset of `FORMATS` (`"savedmodel"`, `"tflite"`, `"onnx"`,
            `"mobile"`). Defaults to `DEFAULT_FORMATS` (all but "mobile",
            which needs `input_size`).
        quantizations: TFLite variants, subset of `QUANTIZATIONS` (of
            `MOBILE_QUANTIZATIONS` with "mobile"); `"int8"` also writes the
            int8 ONNX (`export_onnx(..., quantization="int8")`) when `"onnx"`
            is among the formats. Defaults to `("float32",)`.
        opset: ONNX opset, 13..18. Defaults to 17.
        input_size: optional `(height, width)` fixing the TFLite input size
            (required by "mobile"). Defaults to None (dynamic).
        mobile_int8_output: the int8 mobile file's scores, `"float32"`
            (dequantized) or `"uint8"` (see `export_mobile`). Defaults to `"float32"`.
        name: base of the file names. Defaults to the model's variant
            (`"fcn8s"`, ...), or its name for a model that is not an FCN.
        verify_images: list of uint8 RGB images `(H, W, 3)`; when given,
            every artifact is verified on them (plus two odd-sized crops).
            Defaults to None (no verification).
        verify_labels: optional list of masks, one per verification image
            (mean IU in the report). Defaults to None.
        calibration_images: int8 calibration images (an iterable of images,
            `(image, mask)` pairs or a `tf.data.Dataset`, see `export_tflite`),
            the same for the int8 TFLite and ONNX; required for `"int8"`, and
            none of them may be a verification image.
        num_calibration_images: at most this many are used. Defaults to 100.
        ignore_label: void label id of `verify_labels`. Defaults to None: the
            model's `dataset_info.ignore_label`, else 255.
        odd_crops: add odd-sized crops to the verification images. Defaults to True.
        num_threads: threads per runtime in verification. Defaults to None.
        report_path: base path of the report files (`.json` and `.md` are
            appended). Defaults to `out_dir/verification`.
        jit_compile: compile the SavedModel's `serving_default` with XLA
            (`export_savedmodel`). Defaults to True.

    Returns:
        dict with `artifacts` (`{artifact name: path}`), `verification`
        (the `VerificationReport`, or None), `passed` (bool, or None when not
        verified), `report_files` (the two report paths, or None) and
        `timings` (seconds per stage).

    Example:
    >>> summary = export.export_all(model, "exports", quantizations=("float32", "int8"),
    ...                             verify_images=val_images, verify_labels=val_masks,
    ...                             calibration_images=train_images)
    >>> summary["passed"], sorted(summary["artifacts"])
    (True, ['fcn8s.onnx', 'fcn8s_float32.tflite', 'fcn8s_int8.onnx', 'fcn8s_int8.tflite',
            'fcn8s_savedmodel'])
    """
    formats, quantizations = tuple(formats), tuple(quantizations)
    if verify_images is not None:
        verify_images = list(verify_images)
    if verify_labels is not None:
        verify_labels = list(verify_labels)
    input_size = _check_arguments(formats, quantizations, input_size, calibration_images,
                                  verify_images, verify_labels)  # fmt: skip
    if name is None:
        try:
            name = variant_of(model)
        except ValueError:
            name = model.name
    names = artifact_names(name, formats,
                           quantizations if {"tflite", "onnx", "mobile"} & set(formats) else (),
                           input_size)  # fmt: skip

    calibration = None
    if _needs_calibration(formats, quantizations) and calibration_images is not None:
        calibration = list(itertools.islice(
            representative_images_from_dataset(calibration_images, num_calibration_images),
            num_calibration_images))  # fmt: skip
        if not calibration:
            raise ValueError("calibration_images holds no image; int8 needs at least one. "
                             "Nothing was written.")  # fmt: skip
        if verify_images is not None:
            verified = {_digest(image) for image in verify_images}
            shared = sum(_digest(image) in verified for image in calibration)
            if shared:
                raise ValueError(
                    f"{shared} of {len(calibration)} int8 calibration images are also verification "
                    "images; calibrate on one split (e.g. train) and verify on another (e.g. val)."
                )

    model = float32_model(model)  # once, for every exporter and the verification reference
    os.makedirs(out_dir, exist_ok=True)
    artifacts, timings = {}, {}
    saved_model = None
    for artifact, (fmt, quantization) in names.items():
        path = os.path.join(os.fspath(out_dir), artifact)
        start = time.time()
        if fmt == "savedmodel":
            artifacts[artifact] = saved_model = export_savedmodel(model, path, jit_compile=jit_compile)
        elif fmt == "mobile":
            artifacts[artifact] = export_mobile(
                model, path, input_size, quantization=quantization, representative_images=calibration,
                num_calibration_images=num_calibration_images,
                **({"int8_output": mobile_int8_output} if quantization == "int8" else {}),
            )  # fmt: skip
        elif fmt == "tflite":
            artifacts[artifact] = export_tflite(
                model, path, quantization=quantization, representative_images=calibration,
                input_size=input_size, num_calibration_images=num_calibration_images,
                saved_model=saved_model if input_size is None else None,
            )  # fmt: skip
        else:
            artifacts[artifact] = export_onnx(
                model, path, opset=opset, quantization=quantization or "float32",
                calibration_images=calibration, num_calibration_images=num_calibration_images,
            )  # fmt: skip
        key = f"{fmt}_s" if quantization is None else f"{fmt}_{quantization}_s"
        timings[key] = time.time() - start

    report, report_files = None, None
    if verify_images is not None:
        images, labels = list(verify_images), verify_labels
        if odd_crops:
            images, labels = with_odd_crops(images, labels)
        start = time.time()
        report = verify(model, artifacts, images, labels=labels, ignore_label=ignore_label,
                        num_threads=num_threads)  # fmt: skip
        timings["verify_s"] = time.time() - start
        base = os.fspath(report_path) if report_path else os.path.join(os.fspath(out_dir), "verification")
        base = base[: -len(".json")] if base.endswith(".json") else base
        report_files = [base + ".json", base + ".md"]
        with open(report_files[0], "w") as f:
            f.write(report.to_json())
        with open(report_files[1], "w") as f:
            f.write(report.to_markdown())
    return {"artifacts": artifacts, "verification": report,
            "passed": None if report is None else bool(report.passed),
            "report_files": report_files, "timings": timings}  # fmt: skip
