"""Benchmark: accuracy of every deployed format of a CamVid FCN on real data.

Exports a trained model (a `.keras` file, e.g. a row of `bench/camvid_results.py`)
with `fcn_keras.export.export_all` to SavedModel, TFLite (float32, float16,
int8) and ONNX, then runs the Keras model and every artifact through
`fcn_keras.export.Predictor` on every image of a CamVid split at full size
(480x360, one image at a time, so memory stays small) and reports, per engine:
mean IU and pixel accuracy against the ground truth (void ignored; one
confusion matrix per engine, `fcn_keras.metrics`), argmax agreement with the
Keras model, and seconds per image; then the int8-vs-float32 TFLite mean IU
delta.
Where the CPU has IEEE fp16 arithmetic (AVX512-FP16, ARMv8.2 FP16), one more
row: a float32 TFLite file fixed to the split's image size, computed in half
precision (`Predictor(..., precision="float16")`, XNNPACK's forced FP16).

The int8 calibration images come from CamVid's *train* split only (a seeded
random choice), never from the evaluated split. The Keras reference runs in
float32 (`export.float32_model`, the graph every artifact holds), whatever
dtype policy it was trained under. A model trained at reduced scale carries
its input scale (`--input-scale` overrides it), and so does every artifact's
metadata: each `Predictor` resizes the images by that factor and the logits
bilinearly back to the labels' full size before the argmax, exactly as
`fcn_keras.evaluate` does; the int8 calibration images are resized the same
way. Every engine is scored by `fcn_keras.evaluation.evaluate_predictions`. `fcn_keras/results.py`'s cached evaluation of
the model is printed beside the figures only when it covers the same images
(the whole split at that scale, see `fcn_keras.results.full_split_evaluation`).
Artifacts go to `--out`, which must lie outside
the repository; `--json` may be written anywhere (it holds figures and file
names, no paths).

Usage:
    .venv/bin/python bench/camvid_formats.py --model /tmp/fcn_keras_runs/camvid/fcn8s/final.keras \
        --out /tmp/fcn_keras_runs/camvid_formats --json docs/results/camvid_formats.json
    (defaults: --data-dir ../shared/data/camvid, --split test, --calibration-images 100)
Quick check (3 test images):
    .venv/bin/python bench/camvid_formats.py --model ... --out /tmp/... --limit 3
Rerun the evaluation only (artifacts newer than the model, int8-calibrated at the same input
scale, seed and image count, are reused):
    .venv/bin/python bench/camvid_formats.py --model ... --out /tmp/... --reuse
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import CAMVID_DIR, host_record, inside_repo_error, log, write_figures  # noqa: E402

EXPORT_RECORD = "camvid_formats_export.json"  # calibration and export times, for --reuse
ENGINE_NAMES = {"keras": "Keras", "savedmodel": "SavedModel", "tflite": "TFLite", "onnx": "ONNX"}


def _parse_quantizations(text):
    names = tuple(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    missing = [q for q in ("float32", "int8") if q not in names]
    if missing:
        raise argparse.ArgumentTypeError(
            f"--quantizations {text!r} lacks {missing}: the int8-vs-float32 delta needs both."
        )
    return names


def _parse_scale(text):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"--input-scale must be 'auto' or in (0, 1]; received {text!r}.")
    return value


def _artifact_bytes(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name))
                   for root, _, names in os.walk(path) for name in names)  # fmt: skip
    return os.path.getsize(path)


def _export(model, args, calibration_split, scale, log):
    """Export with `export_all`, or reuse the artifacts in `--out` when asked and up to date."""
    from fcn_keras.choices import DEFAULT_FORMATS as FORMATS  # every dynamic-size export format

    from fcn_keras.data import load_dataset
    from fcn_keras.export import artifact_names, export_all, representative_images_from_dataset
    from fcn_keras.files import write_json
    from fcn_keras.models import variant_of

    name = variant_of(model)
    expected = {n: os.path.join(args.out, n) for n in artifact_names(name, FORMATS, args.quantizations)}
    model_time = os.path.getmtime(args.model)
    record = os.path.join(args.out, EXPORT_RECORD)
    # What the int8 calibration depends on, recorded with the export and compared by --reuse.
    calibration = {"input_scale": scale, "seed": args.seed,
                   "calibration_images_requested": args.calibration_images}  # fmt: skip
    if args.reuse and all(os.path.exists(p) and os.path.getmtime(p) >= model_time
                          for p in [record, *expected.values()]):  # fmt: skip
        with open(record) as f:
            recorded = json.load(f)
        differing = calibration_differences(recorded, calibration)
        if not differing:
            log(f"reusing the {len(expected)} artifacts in {args.out} (newer than the model)")
            return expected, recorded["timings"], recorded["calibration_images"]
        log(f"not reusing {args.out}: its int8 model was calibrated with "
            f"{', '.join(differing)} ({record})")  # fmt: skip
    from fcn_keras.evaluation import scale_images

    shrink = lambda image: scale_images(image[None], scale).numpy()[0]  # noqa: E731 - network input
    train = load_dataset("camvid", calibration_split, batch_size=1, augment=False, shuffle=True,
                         seed=args.seed, data_dir=args.data_dir)  # fmt: skip
    images = [shrink(image) for image in
              representative_images_from_dataset(train, args.calibration_images)]  # fmt: skip
    log(f"int8 calibration: {len(images)} images of CamVid {calibration_split} "
        f"(seeded random choice, seed {args.seed})")  # fmt: skip
    start = time.perf_counter()
    summary = export_all(model, args.out, formats=FORMATS, quantizations=args.quantizations,
                         name=name, calibration_images=images,
                         num_calibration_images=len(images))  # fmt: skip
    seconds = time.perf_counter() - start
    log(f"exported {len(summary['artifacts'])} artifacts in {seconds:.0f} s")
    write_json(record, {"timings": summary["timings"], "calibration_images": len(images),
                        "calibration_split": calibration_split, **calibration})  # last: --reuse trusts it
    return summary["artifacts"], summary["timings"], len(images)


def _half_precision_artifact(model, args, first_size, log):
    """The fixed-size float32 TFLite file the float16 row runs, or None where the CPU lacks fp16.

    Exported at `first_size()` (the model input size of the split's first image: height,
    width) into `--out`; reused when newer than the model.
    """
    from fcn_keras.distribute import fp16_arithmetic
    from fcn_keras.export import artifact_names, export_tflite
    from fcn_keras.models import variant_of

    available, reason = fp16_arithmetic()
    if not available:
        log(f"no float16-compute row: {reason}")
        return None
    size = first_size()
    (name,) = artifact_names(variant_of(model), ("tflite",), ("float32",), input_size=size)
    path = os.path.join(args.out, name)
    if not (os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(args.model)):
        start = time.perf_counter()
        export_tflite(model, path, input_size=size)
        log(f"exported {os.path.basename(path)} (fixed size) in {time.perf_counter() - start:.0f} s")
    return path


def calibration_differences(recorded, requested):
    """The int8 calibration settings an export record holds other than the requested ones.

    Args:
        recorded: the export record (`camvid_formats_export.json`) as loaded.
        requested: `{"input_scale", "seed", "calibration_images_requested"}`
            of this run.

    Returns:
        A list of `"<setting> <recorded> (requested <value>)"` texts; empty
        when the artifacts may be reused. A record without the requested
        count (written before it was recorded) is compared on the count it
        calibrated on.

    Example:
    >>> calibration_differences({"input_scale": 1.0, "seed": 0, "calibration_images": 100},
    ...                         {"input_scale": 1.0, "seed": 1, "calibration_images_requested": 100})
    ['seed 0 (requested 1)']
    """
    recorded = dict(recorded)
    recorded.setdefault("calibration_images_requested", recorded.get("calibration_images"))
    return [f"{key} {recorded.get(key)!r} (requested {value!r})"
            for key, value in requested.items() if recorded.get(key) != value]  # fmt: skip


def _evaluate_engine(predictor, data, num_classes, ignore_label, reference, limit):
    """Scores, argmax agreement and seconds of one engine over a split (`evaluate_predictions`).

    Args:
        predictor: an `export.Predictor` (it applies the model's input scale).
        data: `(image, mask)` batches of one example.
        num_classes: classes of the confusion matrix.
        ignore_label: void label id of the masks.
        reference: None for the reference run, whose class maps are returned;
            else the reference's class maps, one per image, to compare with.
        limit: at most this many images, or None.

    Returns:
        `(evaluate_predictions result, argmax agreement or None, mean seconds
        per image after the first, class maps of the reference run or None)`.
    """
    import numpy as np

    from fcn_keras.evaluation import evaluate_predictions

    maps = [] if reference is None else None
    agreement, times = [0, 0], []

    def predict(images):
        start = time.perf_counter()
        classes = predictor.predict_classes(np.asarray(images)).astype(np.uint8)
        times.append(time.perf_counter() - start)
        if maps is not None:
            maps.append(classes[0])
        else:
            agreement[0] += int(np.count_nonzero(classes[0] == reference[len(times) - 1]))
            agreement[1] += classes[0].size
        return classes

    result = evaluate_predictions(predict, data, num_classes, ignore_label=ignore_label,
                                  max_batches=limit)  # fmt: skip
    timed = times[1:] or times  # the first call builds the engine's kernels: not timed
    agree = agreement[0] / agreement[1] if agreement[1] else None
    return result, agree, sum(timed) / len(timed), maps


def _fmt(value, scale=100.0, digits=2):
    return "n/a" if value is None else f"{scale * value:.{digits}f}"


def to_markdown(result):
    """A Markdown table of the per-engine figures in `result` (see `main`)."""
    host = result["host"]
    lines = [
        f"Model `{result['model']}` ({result['variant']}, {result['num_classes']} classes), "
        f"CamVid `{result['split']}`: {result['images']} images at full size "
        f"(input scale {result['input_scale']:g}); int8 calibrated on "
        f"{result['calibration_images']} `{result['calibration_split']}` images. "
        f"Host: {host['cpu']} ({host['cpu_count']} cores).",
        "",
        "| Engine | Artifact | Size (MiB) | Mean IU | Pixel acc. | Argmax agreement with Keras (%) "
        "| Mean IU vs Keras (points) | s / image (after the first) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keras_miou = result["engines"]["keras"]["mean_iu"]
    for name, row in result["engines"].items():
        size = "" if row["bytes"] is None else f"{row['bytes'] / 2**20:.1f}"
        delta = "" if name == "keras" else f"{100 * (row['mean_iu'] - keras_miou):+.2f}"
        agreement = "reference" if name == "keras" else _fmt(row["argmax_agreement"])
        lines.append(f"| {row['engine']} | {row['artifact']} | {size} | {_fmt(row['mean_iu'])} | "
                     f"{_fmt(row['pixel_accuracy'])} | {agreement} | {delta} | "
                     f"{row['seconds_per_image']:.2f} |")  # fmt: skip
    int8 = result["int8_vs_float32"]
    lines += [
        "",
        f"int8 vs float32 TFLite mean IU: {int8['delta_points']:+.2f} points.",
    ]
    cached = result.get("results_evaluation")
    if cached:
        lines.append(f"`fcn_keras/results.py`'s evaluation of this model on the whole "
                     f"`{result['split']}` split at input scale {result['input_scale']:g} (its own "
                     f"dtype policy, {cached['images']} images): mean IU "
                     f"{_fmt(cached['mean_iu'])}, pixel accuracy "
                     f"{_fmt(cached['pixel_accuracy'])}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="trained model, a .keras file")
    parser.add_argument("--data-dir", default=CAMVID_DIR, help="CamVid in SegNet layout")
    parser.add_argument("--out", required=True, help="artifact directory, outside the repo")
    parser.add_argument("--split", default="test", help="evaluated split (not train)")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate only the first N images (quick checks)")
    parser.add_argument("--calibration-images", type=int, default=100,
                        help="int8 calibration images, from the train split")
    parser.add_argument("--quantizations", type=_parse_quantizations,
                        default=("float32", "float16", "int8"),
                        help="TFLite quantizations, comma-separated (float32 and int8 required)")
    parser.add_argument("--input-scale", type=_parse_scale, default="auto",
                        help="model input scale in (0, 1], or 'auto': the one the model carries")
    parser.add_argument("--threads", type=int, default=None, help="threads per engine (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration choice")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse artifacts in --out that are newer than the model")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    error = inside_repo_error(args.out, what="artifacts")
    if error:
        parser.error(error)
    if not args.model.endswith(".keras") or not os.path.isfile(args.model):
        parser.error(f"--model {args.model!r}: expected an existing .keras file")
    if not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir {args.data_dir!r} does not exist")
    calibration_split = "train"
    if args.split == calibration_split:
        parser.error(f"--split {args.split!r} is the int8 calibration split; evaluate on val or test")
    for flag, value in (("--limit", args.limit), ("--calibration-images", args.calibration_images)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1; received {value}")

    import numpy as np

    from fcn_keras.data import dataset_info, load_dataset
    from fcn_keras.evaluation import input_scale_of, load_model, scale_images
    from fcn_keras.export import Predictor, float32_model
    from fcn_keras.models import variant_of
    from fcn_keras.results import full_split_evaluation

    wall = time.perf_counter()
    model = load_model(args.model)
    info = getattr(model, "dataset_info", None) or dataset_info("camvid", data_dir=args.data_dir)
    num_classes = int(model.output_shape[-1])
    if num_classes != info.num_classes:
        raise SystemExit(f"{args.model}: the model predicts {num_classes} classes; CamVid has "
                         f"{info.num_classes}.")  # fmt: skip
    scale_from = "carried by the model"
    if args.input_scale != "auto":
        model.input_scale, scale_from = args.input_scale, "--input-scale"  # exported with it too
    scale = input_scale_of(model)
    log(f"model {args.model}: {variant_of(model)}, dtype policy {model.dtype_policy.name}; "
        f"input scale {scale:g} ({scale_from})")  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    artifacts, timings, calibrated = _export(model, args, calibration_split, scale, log)

    def data():
        return load_dataset("camvid", args.split, batch_size=1, augment=False, shuffle=False,
                            ignore_label=info.ignore_label, data_dir=args.data_dir)  # fmt: skip

    engines = {"keras": (lambda: Predictor(float32_model(model), engine="keras",
                                           num_threads=args.threads), None)}  # fmt: skip
    for artifact, path in artifacts.items():
        engines[artifact] = (lambda p=path: Predictor(p, num_threads=args.threads), path)
    half = _half_precision_artifact(
        model, args, lambda: tuple(scale_images(np.asarray(next(iter(data()))[0]), scale).shape[1:3]),
        log)  # fmt: skip
    if half is not None:
        engines[f"{os.path.basename(half)} (float16 compute)"] = (
            lambda: Predictor(half, num_threads=args.threads, precision="float16"), half)
    reference = None
    rows = {}
    for name, (make, path) in engines.items():
        predictor = make()  # one engine loaded at a time
        if predictor.input_scale != scale:
            raise SystemExit(f"{path}: exported at input scale {predictor.input_scale:g}, the model "
                             f"runs at {scale:g}: export again (leave out --reuse).")  # fmt: skip
        scores, agreement, per_image, maps = _evaluate_engine(
            predictor, data(), num_classes, info.ignore_label, reference, args.limit)
        engine, precision, images = predictor.engine, predictor.precision, scores["images"]
        del predictor
        reference = maps if reference is None else reference
        rows[name] = {
            "engine": ENGINE_NAMES[engine] + (" (float32)" if engine == "keras" else "")
                      + (" (float16 compute)" if precision == "float16" else ""),
            "artifact": "in memory" if path is None else os.path.basename(path),
            "bytes": None if path is None else _artifact_bytes(path),
            "mean_iu": scores["mean_iu"], "pixel_accuracy": scores["pixel_accuracy"],
            "mean_accuracy": scores["mean_accuracy"],
            "per_class_iou": dict(zip(info.class_names, scores["per_class_iou"])),
            "argmax_agreement": agreement, "images": images,
            "seconds_per_image": per_image,
            "labelled_pixels": scores["pixels"],
        }  # fmt: skip
        log(f"{name}: mean IU {_fmt(scores['mean_iu'])}, pixel accuracy "
            f"{_fmt(scores['pixel_accuracy'])}, agreement {_fmt(agreement)} % "
            f"({images} images, {per_image:.2f} s / image)")  # fmt: skip
    counts = {row["images"] for row in rows.values()}
    if len(counts) != 1:
        raise SystemExit(f"engines saw different numbers of images: {sorted(counts)}")
    tflite = {q: rows[n] for n in rows for q in args.quantizations if n.endswith(f"_{q}.tflite")}
    delta = 100 * (tflite["int8"]["mean_iu"] - tflite["float32"]["mean_iu"])
    # Shown beside these figures only when it covers the same images: the whole split, at
    # this model's scale, from the same data directory.
    cached = None
    report, why = ((None, "--limit evaluates part of the split") if args.limit is not None else
                   full_split_evaluation(args.model, args.split, scale,
                                         {"data_dir": args.data_dir}))  # fmt: skip
    if report is None:
        log(f"fcn_keras/results.py's evaluation not shown: {why}")
    elif report.get("images") != next(iter(counts)):
        log(f"fcn_keras/results.py's evaluation not shown: it covers {report.get('images')} "
            f"images, these figures {next(iter(counts))}")  # fmt: skip
    else:
        cached = {k: report.get(k) for k in ("mean_iu", "pixel_accuracy", "images")}
    result = {
        "model": os.path.basename(os.path.dirname(os.path.abspath(args.model))) + "/"
                 + os.path.basename(args.model),
        "variant": variant_of(model), "dtype_policy": model.dtype_policy.name,
        "num_classes": num_classes, "split": args.split, "images": counts.pop(),
        "limit": args.limit, "input_scale": scale, "calibration_split": calibration_split,
        "calibration_images": calibrated, "seed": args.seed,
        "host": host_record(),
        "engines": rows,
        "int8_vs_float32": {"delta_points": delta},
        "export_seconds": timings, "results_evaluation": cached,
        "wall_seconds": time.perf_counter() - wall,
    }  # fmt: skip
    markdown = to_markdown(result)
    print()
    print(markdown)
    print(f"wall time {result['wall_seconds']:.0f} s")
    write_figures(result, markdown, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
