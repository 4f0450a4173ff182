"""`fcn-keras predict`: segment an image or a folder with any engine, writing masks and overlays.

Colours and class names come from the model: the palette and class names an
artifact carries in its metadata (or a `.keras` model in its `dataset_info`),
VOC's palette when it has none; `--palette` overrides. An image that cannot
be read or run does not end the batch: it is named with its reason at the end
and the exit code is 1 (`--fail-fast` stops at the first instead). A
converted input (grayscale, palette, opaque RGBA) is said so once per file.
"""

__all__ = ["register"]


def register(subparsers):
    """Add `fcn-keras predict` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    parser = subparsers.add_parser(
        "predict",
        help="segment an image or a folder with an exported model or a .keras model",
        description="Run an FCN (ONNX, TFLite, SavedModel or .keras) on raw RGB images and write "
        "<name>_mask.png (colourised classes), <name>_overlay.png and <name>_classes.png (ids). "
        "Exit code 1 when any image failed (each is named at the end).",
    )
    parser.add_argument("input", help="an image file or a folder of images")
    parser.add_argument("--model", required=True, help="artifact path (.onnx, .tflite, SavedModel dir, .keras)")
    parser.add_argument("--engine", choices=("onnx", "tflite", "savedmodel", "keras"), default=None,
                        help="runtime (default: from the model path)")  # fmt: skip
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--num-threads", type=int, default=None, help="runtime threads")
    parser.add_argument("--num-classes", type=int, default=None, help="expected number of classes")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    parser.add_argument("--palette", default=None,
                        help="override the model's colours: 'voc' or a JSON file with a list of "
                             "[r, g, b] (default: the model's palette, else voc)")  # fmt: skip
    parser.add_argument("--fail-fast", action="store_true",
                        help="end at the first image that fails (default: go on, report at the end)")  # fmt: skip
    parser.set_defaults(handler=handler)


def _palette(args, predictor):
    """The colours to draw with, and where they come from."""
    import json

    import numpy as np

    from fcn_keras.visualize import voc_palette

    if args.palette is None:
        if predictor.palette is not None:
            return predictor.palette, "the model's palette"
        return voc_palette(), "the VOC palette"
    if args.palette == "voc":
        return voc_palette(), "the VOC palette"
    try:
        with open(args.palette) as f:
            palette = np.asarray(json.load(f), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read palette {args.palette!r}: {e}") from e
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette {args.palette!r} must be a list of [r, g, b]; shape {palette.shape}.")
    return palette, f"palette {args.palette}"


def _class_summary(classes, names):
    """'Road 41.2%, Sky 30.0%, ...': the classes present, largest first (top 5)."""
    import numpy as np

    counts = np.bincount(classes.reshape(-1), minlength=len(names) if names else 0)
    order = [int(c) for c in np.argsort(-counts) if counts[c] > 0][:5]
    label = (lambda c: names[c]) if names else (lambda c: f"class {c}")
    return ", ".join(f"{label(c)} {100 * counts[c] / classes.size:.1f}%" for c in order)


def handler(args):
    """Run `fcn-keras predict`; returns 0, or 1 when any image failed."""
    import os
    import sys

    import numpy as np
    from PIL import Image

    from fcn_keras.commands._images import image_files, read_image
    from fcn_keras.export import Predictor
    from fcn_keras.visualize import colorize, overlay

    predictor = Predictor(args.model, engine=args.engine, num_threads=args.num_threads,
                          num_classes=args.num_classes)  # fmt: skip
    palette, palette_source = _palette(args, predictor)
    if predictor.num_classes > len(palette):
        raise ValueError(
            f"{palette_source} has {len(palette)} colours but {args.model!r} predicts "
            f"{predictor.num_classes} classes."
        )
    names = predictor.class_names
    files = image_files([args.input])
    os.makedirs(args.out, exist_ok=True)
    failures = []
    for path in files:
        try:
            image, note = read_image(path)
            if note:
                print(f"{path}: {note}")
            classes = predictor.predict_classes(image)
        except (ValueError, RuntimeError, OSError) as e:
            if args.fail_fast:
                raise
            failures.append((path, str(e)))
            print(f"{path}: FAILED ({e})", file=sys.stderr)
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(colorize(classes, palette)).save(os.path.join(args.out, f"{stem}_mask.png"))
        Image.fromarray(overlay(image, classes, palette, alpha=args.alpha)).save(
            os.path.join(args.out, f"{stem}_overlay.png")
        )
        Image.fromarray(classes.astype(np.uint8 if predictor.num_classes <= 256 else np.uint16)).save(
            os.path.join(args.out, f"{stem}_classes.png")
        )
        print(f"{path}: {image.shape[1]}x{image.shape[0]} -> {stem}_mask.png, {stem}_overlay.png; "
              f"{_class_summary(classes, names)}")  # fmt: skip
    done = len(files) - len(failures)
    print(f"{done} of {len(files)} image(s) segmented with {predictor.engine} ({args.model}), "
          f"colours from {palette_source}; outputs in {args.out}")  # fmt: skip
    if failures:
        print(f"{len(failures)} image(s) failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0
