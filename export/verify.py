"""Verify exported FCNs against the Keras model and against each other.

`verify` loads every artifact in its own runtime (`tf.saved_model`,
`ai_edge_litert`, onnxruntime, through `Predictor`), runs the same real images
of several sizes through each and through the Keras model, and reports for
every artifact and every pair of artifacts:

- max and mean |delta logit|, and the logit scale (max |Keras logit|);
- argmax pixel agreement;
- mean IU against ground truth when labels are given.

Thresholds (`DEFAULT_THRESHOLDS`) and why:

- float32 formats (SavedModel, ONNX, TFLite float32): argmax agreement
  >= 99.99% and max |delta logit| <= 1e-4 x logit scale. The same float32
  maths in a different kernel order (oneDNN, MLAS, XNNPACK) differs by
  rounding only: a few ulps per accumulation, ~1e-6 relative on these nets;
  1e-4 leaves room for long (25k-term) fc6 sums while still catching any real
  error (a wrong padding, crop or channel order moves logits by >1%). Pixels
  whose top-2 logits are closer than that rounding may flip, hence 99.99% and
  not 100%.
- float16 (weights in half precision): argmax agreement >= 99.9%. Weight
  rounding to 11 bits moves logits by ~1e-3 relative, which flips only pixels
  on class boundaries.
- int8 (TFLite full-integer, ONNX QDQ) and dynamic-range: quantization
  changes logits by design, so agreement with float is not the contract;
  accuracy is: mean IU within 1.5 points of the Keras float32 model on real
  labelled data. Without labels these artifacts are reported but not gated.
- bfloat16 (a SavedModel's `serving_bfloat16` signature, verified as the
  artifact `<name>:bfloat16`): 8-bit mantissas move logits by ~1e-2
  relative, which flips boundary pixels the way int8 does, so the gate is
  the int8 one: mean IU within 1.5 points of Keras float32 on labelled data.
  It is run where the CPU (or a GPU) has bfloat16 units (`bfloat16=None`,
  see `fcn_keras.distribute.auto_precision`); elsewhere bfloat16 is
  emulated, many times slower, and the report names the signature as not
  run and why.

Mobile files (`export_mobile`) also run in MediaPipe Tasks' ImageSegmenter
when `mediapipe` is importable (`fcn_keras[mobile]`), as the artifact
`<name>:mediapipe`: its category mask is gated like the file's own argmax
(agreement with Keras, mean IU) and its confidence masks are compared with
`softmax` of the Keras logits (the deltas of that row are of probabilities,
its scale 1). Where mediapipe is not importable the report lists the run in
`not_run`, with the reason.

Artifacts exported for a fixed size run on the images resized to that size
(bilinear; labels nearest), compared with Keras on the same resized images.
A model trained at reduced scale (`input_scale`, carried by the model and
by every artifact's metadata) is compared the way it predicts: Keras and each
`Predictor` shrink the image by that scale and return logits of its size
(`fcn_keras.evaluation.scaled_logits`); a fixed-size artifact then gets the
images at the size that shrinks to its input.
The Keras reference is the model's float32 rebuild (`float32_model`), the
graph every artifact was exported from, whatever dtype policy it was trained
under. Mean IU comes from `fcn_keras.metrics` (one confusion matrix, the
paper's definition), the same code that scores training and evaluation.
"""

import json
import os

import numpy as np
from PIL import Image

from fcn_keras.evaluation import ignore_label_of, input_scale_of, scaled_logits
from fcn_keras.metrics import ConfusionAccumulator

from ._artifacts import float32_model, model_facts
from .predictor import Predictor, prepare_images
from .savedmodel import BFLOAT16_SIGNATURE_KEY

__all__ = ["verify", "VerificationReport", "DEFAULT_THRESHOLDS", "find_artifacts", "precision_of",
           "BFLOAT16_SUFFIX", "MEDIAPIPE_SUFFIX"]  # fmt: skip

DEFAULT_THRESHOLDS = {
    "float32": {"min_agreement": 0.9999, "max_rel_logit_delta": 1e-4},
    "float16": {"min_agreement": 0.999},
    "bfloat16": {"max_miou_drop": 0.015},
    "quantized": {"max_miou_drop": 0.015},
}
_RANK = {"float32": 0, "float16": 1, "bfloat16": 2, "quantized": 3}
# The name suffix of a SavedModel's bfloat16 signature in the report.
BFLOAT16_SUFFIX = ":bfloat16"
# The name suffix of a mobile file's MediaPipe ImageSegmenter run in the report.
MEDIAPIPE_SUFFIX = ":mediapipe"


def precision_of(metadata, path):
    """Map an artifact to its threshold class (the `DEFAULT_THRESHOLDS` key that gates it).

    Args:
        metadata: the artifact's metadata dict (`read_metadata`); its
            `quantization` entry decides. A missing entry (SavedModel, ONNX)
            or None means float32.
        path: the artifact's path, named in the error.

    Returns:
        `"float32"`, `"float16"` (TFLite float16 weights) or `"quantized"`
        (TFLite int8 and dynamic range, ONNX int8).

    Raises:
        ValueError: an unknown quantization (the message names the path and value).

    Example:
    >>> precision_of({"quantization": "dynamic_range"}, "fcn8s_dynamic_range.tflite")
    'quantized'
    >>> precision_of({}, "fcn8s.onnx")
    'float32'
    """
    quantization = metadata.get("quantization", "float32")
    if quantization in (None, "float32"):
        return "float32"
    if quantization == "float16":
        return "float16"
    if quantization in ("int8", "dynamic_range"):
        return "quantized"
    raise ValueError(f"{path!r}: unknown quantization {quantization!r} in its metadata; "
                     "expected float32, float16, dynamic_range or int8.")  # fmt: skip


def find_artifacts(directory):
    """Return `{name: path}` for every artifact in a directory (SavedModels, .tflite, .onnx).

    Hidden entries (the exporters' temporary folders) are left out; the
    `.tflite.json` sidecars and report files are not artifacts.

    Args:
        directory: a folder such as `export_all`'s `out_dir`.

    Returns:
        dict `{entry name: path}`, sorted by name: every sub-folder holding a
        `saved_model.pb`, and every `.tflite` and `.onnx` file.

    Raises:
        FileNotFoundError: `directory` does not exist.
        ValueError: it holds no artifact (the message lists what it holds).

    Example:
    >>> sorted(find_artifacts("exports"))
    ['fcn8s.onnx', 'fcn8s_float32.tflite', 'fcn8s_savedmodel']
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"artifact directory not found: {directory!r}.")
    found = {}
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.startswith("."):
            continue
        if os.path.isdir(path) and (
            os.path.isfile(os.path.join(path, "saved_model.pb"))
        ):
            found[entry] = path
        elif entry.endswith((".tflite", ".onnx")):
            found[entry] = path
    if not found:
        raise ValueError(
            f"no artifacts (SavedModel directories, .tflite, .onnx) in {directory!r}; found "
            f"{sorted(os.listdir(directory))}."
        )
    return found


def _resize_pair(image, label, size):
    if image.shape[:2] == tuple(size):
        return image, label
    resized = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
    if label is not None:
        label = np.asarray(
            Image.fromarray(label.astype(np.int32)).resize((size[1], size[0]), Image.NEAREST)
        ).astype(label.dtype)
    return resized, label


def _full_size(size, scale):
    """The image size that `scale` shrinks to the network input `size` (a fixed-size artifact's)."""
    if scale == 1.0:
        return tuple(size)
    full = []
    for side in size:
        guess = int(round(side / scale))
        match = [n for n in (guess, guess - 1, guess + 1) if n >= 1 and max(int(round(n * scale)), 1) == side]
        if not match:
            raise ValueError(f"no image size gives the fixed input size {tuple(size)} at input scale {scale:g}.")
        full.append(match[0])
    return tuple(full)


class _Stats:
    """Streaming |delta| and agreement between two logit sources."""

    def __init__(self):
        self.max_abs = 0.0
        self.sum_abs = 0.0
        self.count = 0
        self.pixels = 0
        self.agree = 0
        self.scale = 0.0

    def update(self, reference, other):
        delta = np.abs(reference.astype(np.float64) - other)
        self.max_abs = max(self.max_abs, float(delta.max()))
        self.sum_abs += float(delta.sum())
        self.count += delta.size
        self.pixels += reference.shape[0] * reference.shape[1]
        self.agree += int(np.sum(reference.argmax(-1) == other.argmax(-1)))
        self.scale = max(self.scale, float(np.abs(reference).max()))

    def update_client(self, reference, confidence, category):
        """A MediaPipe run: probabilities against softmax(reference), its category mask against argmax."""
        shifted = reference.astype(np.float64) - reference.max(-1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        agree_before = self.agree
        self.update(probabilities, confidence)
        self.agree = agree_before + int(np.sum(reference.argmax(-1) == category))

    def as_dict(self):
        return {
            "max_abs_delta": self.max_abs,
            "mean_abs_delta": self.sum_abs / max(self.count, 1),
            "logit_scale": self.scale,
            "max_rel_delta": self.max_abs / self.scale if self.scale else 0.0,
            "argmax_agreement": self.agree / max(self.pixels, 1),
            "pixels": self.pixels,
        }


def _add(accumulators, key, label, prediction, num_classes, ignore_label, what):
    """Add one label map to `accumulators[key]` (a `ConfusionAccumulator`), naming it in errors."""
    if key not in accumulators:
        accumulators[key] = ConfusionAccumulator(num_classes, ignore_label)
    try:
        accumulators[key].update(label, prediction)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def _mean_iu(accumulator):
    return accumulator.result()["mean_iu"]


class VerificationReport:
    """Result of `verify`: per-artifact and pairwise figures, thresholds, pass/fail.

    Attributes:
        artifacts: list of dicts, one per artifact (name, path, engine,
            precision, vs-Keras figures, mean IU, failures, passed).
        pairs: list of dicts, one per pair of artifacts run on the same inputs.
        keras_miou: Keras float32 mean IU per input group (when labels given).
        not_run: list of `{"name", "reason"}`: what the artifacts carry that
            was not run here (a bfloat16 signature on a CPU without bfloat16).
        passed: True when every gated threshold holds.
    """

    def __init__(self, artifacts, pairs, keras_miou, images, thresholds, not_run=()):
        self.artifacts = artifacts
        self.pairs = pairs
        self.keras_miou = keras_miou
        self.images = images
        self.thresholds = thresholds
        self.not_run = list(not_run)
        self.passed = all(a["passed"] for a in artifacts) and all(p["passed"] for p in pairs)

    def to_dict(self):
        return {"passed": self.passed, "images": self.images, "keras_miou": self.keras_miou,
                "thresholds": self.thresholds, "artifacts": self.artifacts, "pairs": self.pairs,
                "not_run": self.not_run}  # fmt: skip

    def to_json(self, indent=2):
        """The report as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, default=_plain)

    def to_markdown(self):
        """The report as Markdown tables (artifacts vs Keras, then pairs)."""

        def pct(value):
            return "-" if value is None else f"{100 * value:.3f}%"

        def miou(value):
            return "-" if value is None else f"{100 * value:.2f}"

        lines = [
            f"Verification: **{'PASSED' if self.passed else 'FAILED'}** "
            f"({self.images['count']} images, sizes {self.images['sizes']})",
            "",
            "| artifact | engine | precision | max abs delta | mean abs delta | rel max | "
            "argmax agreement | mean IU | mean IU Keras | result |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for a in self.artifacts:
            v = a["vs_keras"]
            lines.append(
                f"| {a['name']} | {a['engine']} | {a['precision']} | {v['max_abs_delta']:.3g} | "
                f"{v['mean_abs_delta']:.3g} | {v['max_rel_delta']:.2g} | {pct(v['argmax_agreement'])} | "
                f"{miou(a['miou'])} | {miou(a['keras_miou'])} | "
                f"{'pass' if a['passed'] else 'FAIL: ' + '; '.join(a['failures'])} |"
            )
        if self.pairs:
            lines += ["", "| pair | max abs delta | mean abs delta | argmax agreement | result |",
                      "| --- | --- | --- | --- | --- |"]  # fmt: skip
            for p in self.pairs:
                lines.append(
                    f"| {p['a']} vs {p['b']} | {p['max_abs_delta']:.3g} | {p['mean_abs_delta']:.3g} | "
                    f"{pct(p['argmax_agreement'])} | "
                    f"{'pass' if p['passed'] else 'FAIL: ' + '; '.join(p['failures'])} |"
                )
        for entry in self.not_run:
            lines += ["", f"Not run: {entry['name']}: {entry['reason']}"]
        return "\n".join(lines) + "\n"

    def __repr__(self):
        return f"VerificationReport(passed={self.passed}, artifacts={[a['name'] for a in self.artifacts]})"


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _gate(precision, stats, miou_value, keras_miou, thresholds):
    failures = []
    rules = thresholds[precision]
    if "min_agreement" in rules and stats["argmax_agreement"] < rules["min_agreement"]:
        failures.append(
            f"argmax agreement {100 * stats['argmax_agreement']:.4f}% < "
            f"{100 * rules['min_agreement']:.2f}%"
        )
    if "max_rel_logit_delta" in rules and stats["max_rel_delta"] > rules["max_rel_logit_delta"]:
        failures.append(
            f"max |delta logit| {stats['max_abs_delta']:.3g} > {rules['max_rel_logit_delta']:g} x "
            f"logit scale {stats['logit_scale']:.3g}"
        )
    if "max_miou_drop" in rules and miou_value is not None and keras_miou is not None:
        drop = keras_miou - miou_value
        if drop > rules["max_miou_drop"]:
            failures.append(
                f"mean IU {100 * miou_value:.2f} is {100 * drop:.2f} points below Keras "
                f"{100 * keras_miou:.2f} (allowed {100 * rules['max_miou_drop']:.1f})"
            )
    return failures


def verify(model, artifacts, images, labels=None, num_classes=None, ignore_label=None,
           thresholds=None, num_threads=None, pairwise=True, bfloat16=None, mediapipe=None):  # fmt: skip
    """Check every exported artifact against the Keras model and against each other.

    Args:
        model: the Keras FCN the artifacts were exported from.
        artifacts: `{name: path}`, a list of paths, or a directory holding
            SavedModel directories, `.tflite` and `.onnx` files.
        images: list of uint8 RGB images `(H, W, 3)`, sizes may differ
            (include odd sizes: padding and cropping are where exports break).
        labels: optional list of integer masks `(H, W)`, one per image, for
            mean IU against ground truth.
        num_classes: expected number of classes. Defaults to the model's;
            any artifact exported for another count raises `ValueError`.
        ignore_label: label id excluded from mean IU. Defaults to `None`:
            the model's `dataset_info.ignore_label` when it has one, else 255
            (what `fcn_keras.load_dataset` gives void pixels, CamVid's raw 11
            included).
        thresholds: dict overriding `DEFAULT_THRESHOLDS` entries.
        num_threads: threads per runtime. Defaults to the runtime's default.
        pairwise: also compare every pair of artifacts. Defaults to `True`.
        bfloat16: run the `serving_bfloat16` signature of every SavedModel
            that has one, as the artifact `<name>:bfloat16`. Defaults to None:
            where this machine has bfloat16 units
            (`fcn_keras.distribute.auto_precision`), else it is listed in
            `not_run` with the reason.

    Returns:
        `VerificationReport` (`.passed`, `.to_json()`, `.to_markdown()`).

    Example:
    >>> report = export.verify(model, "exports/", images, labels)
    >>> print(report.to_markdown()); assert report.passed
    """
    if ignore_label is None:
        ignore_label = ignore_label_of(model)
    scale = input_scale_of(model)
    model = float32_model(model)
    keras_forward = lambda batch: model(batch, training=False)  # noqa: E731
    rules = {key: dict(value) for key, value in DEFAULT_THRESHOLDS.items()}
    for key, value in (thresholds or {}).items():
        if key not in rules:
            raise ValueError(f"unknown threshold group {key!r}; expected one of {sorted(rules)}.")
        rules[key].update(value)
    model_classes = model_facts(model)["num_classes"]
    if num_classes is None:
        num_classes = model_classes
    elif num_classes != model_classes:
        raise ValueError(
            f"num_classes={num_classes} given, but Keras model {model.name!r} outputs "
            f"{model_classes} classes."
        )
    if isinstance(artifacts, (str, os.PathLike)):
        artifacts = find_artifacts(artifacts)
    elif isinstance(artifacts, (list, tuple)):
        artifacts = {os.path.basename(os.path.normpath(os.fspath(p))): os.fspath(p) for p in artifacts}
    if not artifacts:
        raise ValueError("verify needs at least one artifact; received none.")
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    batches, _ = prepare_images(list(images), "verification image")
    images = [b[0] for b in batches]
    if labels is not None:
        if len(labels) != len(images):
            raise ValueError(f"received {len(images)} images but {len(labels)} labels.")
        labels = [np.asarray(label) for label in labels]
        for i, (image, label) in enumerate(zip(images, labels)):
            if label.shape != image.shape[:2]:
                raise ValueError(
                    f"label #{i} has shape {label.shape}; its image is {image.shape[:2]}."
                )

    # === Load every artifact in its own runtime ===
    predictors, precisions, not_run = {}, {}, []
    run_bfloat16, why_not = _bfloat16_choice(bfloat16)
    for name, path in artifacts.items():
        predictor = Predictor(path, num_threads=num_threads)
        if predictor.num_classes != num_classes:
            raise ValueError(
                f"artifact {name!r} ({path!r}) was exported for {predictor.num_classes} classes; "
                f"the Keras model and num_classes expect {num_classes}."
            )
        if predictor.input_scale != scale:
            raise ValueError(
                f"artifact {name!r} ({path!r}) runs at input scale {predictor.input_scale:g}; the "
                f"Keras model was trained at {scale:g}: export it again from this model."
            )
        predictors[name] = predictor
        precisions[name] = precision_of(predictor.metadata, predictor.path)
        if BFLOAT16_SIGNATURE_KEY in (predictor.metadata.get("signatures") or {}):
            if run_bfloat16:
                predictors[name + BFLOAT16_SUFFIX] = Predictor(path, num_threads=num_threads,
                                                               precision="bfloat16")  # fmt: skip
                precisions[name + BFLOAT16_SUFFIX] = "bfloat16"
            else:
                not_run.append({"name": name + BFLOAT16_SUFFIX, "reason": why_not})
    groups = {}
    for name, predictor in predictors.items():
        groups.setdefault(predictor.input_size, []).append(name)
    clients = _mediapipe_choice(mediapipe, predictors, precisions, not_run)

    # === Run the same inputs through Keras and every artifact, streaming the figures ===
    stats = {name: _Stats() for name in predictors}
    pair_stats = {}
    confusion = {}
    keras_confusion = {}
    sizes = set()
    client_inputs = {}  # input size -> [(image, label, Keras logits)] for the MediaPipe runs
    for group, names in groups.items():
        for i, image in enumerate(images):
            label = labels[i] if labels is not None else None
            if group is not None:
                image, label = _resize_pair(image, label, _full_size(group, scale))
            sizes.add(tuple(image.shape[:2]))
            reference = np.asarray(scaled_logits(keras_forward, image[None], scale), dtype=np.float32)[0]
            if any(predictors[name].input_size == group for name in clients.values()):
                client_inputs.setdefault(group, []).append((image, label, reference))
            outputs = {}
            for name in names:
                try:
                    outputs[name] = predictors[name].predict(image)
                except Exception as e:
                    raise RuntimeError(
                        f"artifact {name!r} ({predictors[name].path!r}) failed on image #{i} of "
                        f"size {image.shape[:2]}: {e}"
                    ) from e
            for name, out in outputs.items():
                if out.shape != reference.shape:
                    raise ValueError(
                        f"artifact {name!r} returned logits of shape {out.shape} for a "
                        f"{image.shape[:2]} image; Keras returns {reference.shape}."
                    )
                stats[name].update(reference, out)
                if label is not None:
                    _add(confusion, name, label, out.argmax(-1), num_classes, ignore_label,
                         f"label #{i}")  # fmt: skip
            if label is not None:
                _add(keras_confusion, group, label, reference.argmax(-1), num_classes, ignore_label,
                     f"label #{i}")  # fmt: skip
            if pairwise:
                for a_index, a in enumerate(names):
                    for b in names[a_index + 1 :]:
                        pair_stats.setdefault((a, b), _Stats()).update(outputs[a], outputs[b])

    # === MediaPipe's ImageSegmenter on the mobile files ===
    for client, name in clients.items():
        stats[client] = _Stats()
        inputs = client_inputs[predictors[name].input_size]
        try:
            from .mobile import run_mediapipe

            out = run_mediapipe(predictors[name].path, [image for image, _, _ in inputs])
        except Exception as e:
            raise RuntimeError(f"MediaPipe ImageSegmenter failed on {name!r} "
                               f"({predictors[name].path!r}): {e}") from e  # fmt: skip
        for i, (image, label, reference) in enumerate(inputs):
            confidence, category = out["confidence"][i], out["category"][i]
            if confidence.shape != reference.shape:
                raise ValueError(f"MediaPipe returned {confidence.shape[-1]} confidence masks of "
                                 f"{confidence.shape[:2]} for {name!r}; Keras gives "
                                 f"{reference.shape}.")  # fmt: skip
            stats[client].update_client(reference, confidence, category)
            if label is not None:
                _add(confusion, client, label, category.astype(np.int64), num_classes, ignore_label,
                     f"label #{i}")

    # === Thresholds ===
    keras_miou = {str(group or "dynamic"): _mean_iu(cm) for group, cm in keras_confusion.items()}
    results = []
    for name in list(predictors) + list(clients):
        predictor = predictors[clients.get(name, name)]
        precision = precisions[clients.get(name, name)]
        figures = stats[name].as_dict()
        m = _mean_iu(confusion[name]) if name in confusion else None
        km = _mean_iu(keras_confusion[predictor.input_size]) if name in confusion else None
        failures = _gate(precision, figures, m, km, rules)
        results.append({
            "name": name, "path": predictor.path,
            "engine": "mediapipe" if name in clients else predictor.engine,
            "precision": precision,
            "quantization": "bfloat16" if precision == "bfloat16" else predictor.metadata.get("quantization"),
            "input_size": predictor.input_size, "vs_keras": figures, "miou": m, "keras_miou": km,
            "miou_drop": None if m is None else km - m, "failures": failures, "passed": not failures,
        })  # fmt: skip
    pairs = []
    for (a, b), pair in pair_stats.items():
        figures = pair.as_dict()
        precision = max(precisions[a], precisions[b], key=_RANK.get)
        # Quantized and bfloat16 pairs have no agreement contract with each other (their mean
        # IU is gated against Keras).
        failures = _gate(precision, figures, None, None, rules) if precision in ("float32", "float16") else []
        pairs.append({"a": a, "b": b, "precision": precision, **figures,
                      "failures": failures, "passed": not failures})  # fmt: skip
    image_info = {"count": len(images), "sizes": sorted(sizes),
                  "labelled": labels is not None, "ignore_label": ignore_label}  # fmt: skip
    return VerificationReport(results, pairs, keras_miou, image_info, rules, not_run)


def _mediapipe_choice(mediapipe, predictors, precisions, not_run):
    """`{"<name>:mediapipe": name}` of the mobile files to run in MediaPipe (see `verify`'s `mediapipe`)."""
    if mediapipe not in (None, True, False):
        raise ValueError(f"mediapipe must be None, True or False; received {mediapipe!r}.")
    mobile = [name for name, p in predictors.items() if p.metadata.get("format") == "mobile"]
    if not mobile or mediapipe is False:
        return {}
    from .mobile import mediapipe_available

    available, reason = mediapipe_available()
    if not available:
        if mediapipe:
            raise ImportError(reason)
        not_run.extend({"name": name + MEDIAPIPE_SUFFIX, "reason": reason} for name in mobile)
        return {}
    for name in mobile:
        precisions[name + MEDIAPIPE_SUFFIX] = precisions[name]
    return {name + MEDIAPIPE_SUFFIX: name for name in mobile}


def _bfloat16_choice(bfloat16):
    """`(run, reason not run)` for the bfloat16 signatures (see `verify`'s `bfloat16`)."""
    if bfloat16 is None:
        from fcn_keras.distribute import auto_precision

        precision, reason = auto_precision()
        return precision == "mixed_bfloat16", f"bfloat16 is emulated here ({reason})"
    if not isinstance(bfloat16, bool):
        raise ValueError(f"bfloat16 must be None, True or False; received {bfloat16!r}.")
    return bfloat16, "bfloat16=False"
