"""`fcn-keras` subcommands of the export group (see `fcn_keras/commands/__init__.py`).

- `fcn-keras export`: export a `.keras` model to SavedModel / TFLite / ONNX,
  optionally verifying every artifact (`--verify`, exit code 1 on failure).
- `fcn-keras predict`: run any engine on an image or a folder and write
  colourised masks and overlays.
"""

import argparse

__all__ = ["register"]

_FORMATS = ("savedmodel", "tflite", "onnx")
_QUANTIZATIONS = ("float32", "float16", "dynamic_range", "int8")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


def _csv(choices):
    def parse(text):
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {', '.join(choices)}; received {text!r}"
            )
        return values

    return parse


def _size(text):
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH (e.g. 360x480); received {text!r}")
    return height, width


def register(subparsers):
    """Add this group's subcommands to the `fcn-keras` parser."""
    parser = subparsers.add_parser(
        "export",
        help="export a .keras model to SavedModel/TFLite/ONNX and optionally verify them",
        description="Export an FCN saved as .keras to SavedModel, TFLite (float32, float16, "
        "dynamic_range, int8) and ONNX in --out, and with --verify check every artifact "
        "against Keras and each other on real images (exit code 1 when a threshold fails).",
    )
    parser.add_argument("--model", required=True, help="the .keras model to export")
    parser.add_argument("--out", required=True, help="output directory for the artifacts")
    parser.add_argument("--formats", type=_csv(_FORMATS), default=list(_FORMATS),
                        help="comma-separated formats (default: all)")  # fmt: skip
    parser.add_argument("--quantization", type=_csv(_QUANTIZATIONS), default=["float32"],
                        help="TFLite variants, comma-separated (default: float32)")  # fmt: skip
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 13..18 (default 17)")
    parser.add_argument("--input-size", type=_size, default=None,
                        help="fix the TFLite input size, HEIGHTxWIDTH (default: dynamic)")  # fmt: skip
    parser.add_argument("--images", nargs="+", default=None,
                        help="image files or folders: verification inputs and int8 calibration")  # fmt: skip
    parser.add_argument("--labels", default=None,
                        help="folder of label PNGs named like the images (mean IU in the report)")  # fmt: skip
    parser.add_argument("--image-list", default=None,
                        help="SegNet-style list of 'image label' relative pairs (e.g. camvid/val.txt)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=8, help="use at most this many images (default 8)")
    parser.add_argument("--calibration-limit", type=int, default=100,
                        help="int8 calibration images (default 100, from --images/--image-list)")  # fmt: skip
    parser.add_argument("--ignore-label", type=int, default=None, help="label id excluded from mean IU")
    parser.add_argument("--verify", action="store_true", help="verify every artifact (needs images)")
    parser.add_argument("--report", default=None,
                        help="write the verification report here (.json and .md; default OUT/verification)")  # fmt: skip
    parser.add_argument("--num-threads", type=int, default=None, help="threads per runtime")
    parser.set_defaults(handler=_run_export)

    parser = subparsers.add_parser(
        "predict",
        help="segment an image or a folder with an exported model or a .keras model",
        description="Run an FCN (ONNX, TFLite, SavedModel or .keras) on raw RGB images and write "
        "<name>_mask.png (colourised classes), <name>_overlay.png and <name>_classes.png (ids).",
    )
    parser.add_argument("input", help="an image file or a folder of images")
    parser.add_argument("--model", required=True, help="artifact path (.onnx, .tflite, SavedModel dir, .keras)")
    parser.add_argument("--engine", choices=("onnx", "tflite", "savedmodel", "keras"), default=None,
                        help="runtime (default: from the model path)")  # fmt: skip
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--num-threads", type=int, default=None, help="runtime threads")
    parser.add_argument("--num-classes", type=int, default=None, help="expected number of classes")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    parser.add_argument("--palette", default="voc",
                        help="'voc' or a JSON file with a list of [r, g, b] colours")  # fmt: skip
    parser.set_defaults(handler=_run_predict)


# === Image discovery and loading ===


def _image_files(paths):
    import os

    files = []
    for path in paths:
        if os.path.isdir(path):
            entries = sorted(e for e in os.listdir(path) if e.lower().endswith(_IMAGE_SUFFIXES))
            if not entries:
                raise ValueError(f"no images ({', '.join(_IMAGE_SUFFIXES)}) in folder {path!r}.")
            files += [os.path.join(path, e) for e in entries]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"image path not found: {path!r}.")
    return files


def _read_rgb(path):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path!r}: {e}") from e


def _read_label(path):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            label = np.asarray(image)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read label {path!r}: {e}") from e
    if label.ndim != 2:
        raise ValueError(f"label {path!r} must be a single-channel class-id PNG; shape {label.shape}.")
    return label


def _load_inputs(args, limit):
    """Return (images, labels or None, names) from --image-list or --images/--labels."""
    import os

    if args.image_list:
        root = os.path.dirname(os.path.abspath(args.image_list))
        with open(args.image_list) as f:
            rows = [line.split() for line in f if line.strip()]
        bad = [r for r in rows if len(r) != 2]
        if bad:
            raise ValueError(f"{args.image_list!r}: expected 'image label' per line; found {bad[0]!r}.")
        rows = rows[:limit]
        images = [_read_rgb(_resolve(root, image)) for image, _ in rows]
        labels = [_read_label(_resolve(root, label)) for _, label in rows]
        return images, labels, [os.path.basename(image) for image, _ in rows]
    if not args.images:
        return None, None, None
    files = _image_files(args.images)[:limit]
    images = [_read_rgb(f) for f in files]
    labels = None
    if args.labels:
        labels = []
        for f in files:
            path = os.path.join(args.labels, os.path.basename(f))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"label for image {f!r} not found: expected {path!r}.")
            labels.append(_read_label(path))
    return images, labels, [os.path.basename(f) for f in files]


def _resolve(root, relative):
    import os

    # SegNet lists hold paths like "/SegNet/CamVid/val/x.png" or "val/x.png".
    parts = relative.replace("\\", "/").split("/")
    for start in range(len(parts)):
        candidate = os.path.join(root, *parts[start:])
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"{relative!r} listed in the image list is not under {root!r}.")


def _with_odd_crops(images, labels):
    """Add an odd-sized crop of the first two images: padding/cropping bugs show there."""
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


# === Handlers ===


def _run_export(args):
    import os

    import keras

    from fcn_keras import export
    import fcn_keras  # noqa: F401  (registers the custom layers)

    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"model not found: {args.model!r} (expected a .keras file).")
    try:
        model = keras.saving.load_model(args.model, compile=False)
    except Exception as e:
        raise ValueError(f"cannot load Keras model {args.model!r}: {e}") from e
    needs_images = args.verify or "int8" in args.quantization
    images, labels, _ = _load_inputs(args, max(args.limit, args.calibration_limit))
    if needs_images and images is None:
        raise ValueError(
            "--verify and int8 need real images: pass --images FILES_OR_FOLDERS or --image-list."
        )
    os.makedirs(args.out, exist_ok=True)
    written = {}
    if "savedmodel" in args.formats:
        written["savedmodel"] = export.export_savedmodel(model, os.path.join(args.out, "savedmodel"))
    if "tflite" in args.formats:
        suffix = "" if args.input_size is None else f"_{args.input_size[0]}x{args.input_size[1]}"
        for quantization in args.quantization:
            name = f"model_{quantization}{suffix}.tflite"
            written[name] = export.export_tflite(
                model, os.path.join(args.out, name), quantization=quantization,
                representative_images=images[: args.calibration_limit] if images else None,
                input_size=args.input_size, num_calibration_images=args.calibration_limit,
                saved_model=written.get("savedmodel") if args.input_size is None else None,
            )  # fmt: skip
    if "onnx" in args.formats:
        written["model.onnx"] = export.export_onnx(model, os.path.join(args.out, "model.onnx"),
                                                   opset=args.opset)  # fmt: skip
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    if not args.verify:
        return 0
    verify_images = images[: args.limit]
    verify_labels = labels[: args.limit] if labels is not None else None
    verify_images, verify_labels = _with_odd_crops(verify_images, verify_labels)
    report = export.verify(
        model, written, verify_images, labels=verify_labels, ignore_label=args.ignore_label,
        num_threads=args.num_threads,
    )  # fmt: skip
    base = args.report or os.path.join(args.out, "verification")
    base = base[: -len(".json")] if base.endswith(".json") else base
    with open(base + ".json", "w") as f:
        f.write(report.to_json())
    with open(base + ".md", "w") as f:
        f.write(report.to_markdown())
    print(report.to_markdown())
    print(f"report: {base}.json, {base}.md")
    return 0 if report.passed else 1


def _run_predict(args):
    import json
    import os

    import numpy as np
    from PIL import Image

    from fcn_keras.export import Predictor
    from fcn_keras.visualize import colorize, overlay, voc_palette

    if args.palette == "voc":
        palette = voc_palette()
    else:
        try:
            with open(args.palette) as f:
                palette = np.asarray(json.load(f), dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read palette {args.palette!r}: {e}") from e
        if palette.ndim != 2 or palette.shape[1] != 3:
            raise ValueError(f"palette {args.palette!r} must be a list of [r, g, b]; shape {palette.shape}.")
    predictor = Predictor(args.model, engine=args.engine, num_threads=args.num_threads,
                          num_classes=args.num_classes)  # fmt: skip
    if predictor.num_classes > len(palette):
        raise ValueError(
            f"palette has {len(palette)} colours but {args.model!r} predicts {predictor.num_classes} classes."
        )
    files = _image_files([args.input])
    os.makedirs(args.out, exist_ok=True)
    for path in files:
        image = _read_rgb(path)
        classes = predictor.predict_classes(image)
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(colorize(classes, palette)).save(os.path.join(args.out, f"{stem}_mask.png"))
        Image.fromarray(overlay(image, classes, palette, alpha=args.alpha)).save(
            os.path.join(args.out, f"{stem}_overlay.png")
        )
        Image.fromarray(classes.astype(np.uint8 if predictor.num_classes <= 256 else np.uint16)).save(
            os.path.join(args.out, f"{stem}_classes.png")
        )
        print(f"{path}: {image.shape[1]}x{image.shape[0]} -> {stem}_mask.png, {stem}_overlay.png")
    print(f"{len(files)} image(s) segmented with {predictor.engine} ({args.model}); outputs in {args.out}")
    return 0
