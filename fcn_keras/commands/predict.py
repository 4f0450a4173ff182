"""`fcn-keras predict`: segment an image or a folder with any engine, writing masks and overlays.

Colours and class names come from the model: the palette and class names an
artifact carries in its metadata (or a `.keras` model in its `dataset_info`),
VOC's palette when it has none; `--palette` overrides. An image that cannot
be read, run or written does not end the batch: it is named with its reason
at the end and the exit code is 1 (`--fail-fast` stops at the first instead).
A converted input (grayscale, palette, opaque RGBA) is said so once per file.
A `.keras` model runs XLA-compiled (`--no-jit-compile`: the
plain graph); `--precision bfloat16` computes in bfloat16 (keras engine, or a
SavedModel's `serving_bfloat16` signature) on CPUs with AMX/AVX512-BF16;
`--precision float16` runs a fixed-size `.tflite` in IEEE half precision on CPUs
with AVX512-FP16 or ARMv8.2 FP16 (XNNPACK's forced FP16).
Outputs are named after the input's stem (`a.png` -> `a_mask.png`); inputs
whose stems collide (`a.png`, `a.jpg`) are named after the whole file name
instead (`a.png_mask.png`, `a.jpg_mask.png`), which is said once.
`--crf` refines a `.keras` model's logits with a dense CRF (`fcn_keras.DenseCRF`),
with the settings saved next to the model (`MODEL.crf.json`), else
`--crf-settings FILE`, else the defaults; which is printed. An exported
artifact carries its CRF inside (`fcn-keras export --crf`). `--tta` runs a
`.keras` model with test-time augmentation (`fcn_keras.with_tta`: logits
averaged over `--tta-scales` and mirror images), before the CRF when both are
given; an exported artifact carries its TTA inside (`fcn-keras export --tta`).
"""

from fcn_keras.choices import ENGINES, INFERENCE_PRECISIONS
from fcn_keras.commands.tta import add_tta_arguments, tta_options

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
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="runtime (default: from the model path)")  # fmt: skip
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--num-threads", type=int, default=None, help="runtime threads")
    parser.add_argument("--num-classes", type=int, default=None, help="expected number of classes")
    parser.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="float32",
                        help="bfloat16: keras and savedmodel engines (CPUs with AMX/AVX512-BF16; a "
                             "SavedModel's serving_bfloat16 signature); float16: a fixed-size .tflite "
                             "(CPUs with AVX512-FP16 or ARMv8.2 FP16) (default float32)")  # fmt: skip
    parser.add_argument("--no-jit-compile", action="store_true",
                        help="keras engine: run the plain TensorFlow graph instead of XLA")  # fmt: skip
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    parser.add_argument("--palette", default=None,
                        help="override the model's colours: 'voc' or a JSON file with a list of "
                             "[r, g, b] (default: the model's palette, else voc)")  # fmt: skip
    parser.add_argument("--crf", action="store_true",
                        help="for a .keras model: refine with a dense CRF, with the settings in "
                             "MODEL.crf.json when it exists, else the DenseCRF defaults")  # fmt: skip
    parser.add_argument("--crf-settings", default=None, metavar="FILE",
                        help="with --crf: read the CRF settings from FILE instead")  # fmt: skip
    add_tta_arguments(parser)
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


def _output_names(files):
    """`{path: output base name}`: the file stem, or the whole file name where stems collide.

    `a.png` and `a.jpg` would both write `a_mask.png`; they get `a.png_mask.png`
    and `a.jpg_mask.png` instead, and any stem that still collides with one
    of those names falls back to its file name too (file names in one folder
    are unique).
    """
    import collections
    import os

    names = {path: os.path.splitext(os.path.basename(path))[0] for path in files}
    while True:
        counts = collections.Counter(names.values())
        clashing = [path for path in files
                    if counts[names[path]] > 1 and names[path] != os.path.basename(path)]  # fmt: skip
        if not clashing:
            return names
        for path in clashing:
            names[path] = os.path.basename(path)


def _segment(predictor, path, base, palette, args):
    """Segment one image file and write its three PNGs; returns the printed line."""
    import os

    import numpy as np
    from PIL import Image

    from fcn_keras.commands._images import read_image
    from fcn_keras.visualize import colorize, overlay

    image, note = read_image(path)
    if note:
        print(f"{path}: {note}")
    classes = predictor.predict_classes(image)
    Image.fromarray(colorize(classes, palette)).save(os.path.join(args.out, f"{base}_mask.png"))
    Image.fromarray(overlay(image, classes, palette, alpha=args.alpha)).save(
        os.path.join(args.out, f"{base}_overlay.png")
    )
    Image.fromarray(classes.astype(np.uint8 if predictor.num_classes <= 256 else np.uint16)).save(
        os.path.join(args.out, f"{base}_classes.png")
    )
    return (f"{path}: {image.shape[1]}x{image.shape[0]} -> {base}_mask.png, {base}_overlay.png; "
            f"{_class_summary(classes, predictor.class_names)}")  # fmt: skip


def _keras_predictor(args, tta):
    """A Keras `Predictor` of the `.keras` model `args` names, with its TTA and / or dense CRF."""
    import os

    from fcn_keras.evaluation import load_model
    from fcn_keras.export import Predictor
    from fcn_keras.export.predictor import engine_for_path

    flags = " and ".join(flag for flag, on in (("--tta", tta is not None), ("--crf", args.crf)) if on)
    engine = args.engine or (engine_for_path(args.model) if os.path.exists(args.model) else None)
    if engine not in (None, "keras"):
        raise ValueError(
            f"{flags} runs a .keras model; {args.model!r} is a {engine} artifact, whose graph is "
            f"fixed: export the model with it (fcn-keras export {flags}) and predict with that."
        )
    model = load_model(args.model)
    if tta is not None:
        from fcn_keras.tta import with_tta

        model = with_tta(model, **tta)
        print(f"test-time augmentation: scales {', '.join(f'{s:g}' for s in tta['scales'])}"
              f"{', with mirror images' if tta['flip'] else ''}")  # fmt: skip
    if args.crf:
        from fcn_keras.crf import with_saved_crf

        model, _, source = with_saved_crf(model, args.model, args.crf_settings)
        print(source)
    return Predictor(model, engine="keras", num_threads=args.num_threads,
                     num_classes=args.num_classes, **_speed_options(args))  # fmt: skip


def _speed_options(args):
    """`Predictor`'s precision and jit_compile from --precision and --no-jit-compile."""
    return {"precision": args.precision, "jit_compile": False if args.no_jit_compile else None}


def handler(args):
    """Run `fcn-keras predict`; returns 0, or 1 when any image failed."""
    import os
    import sys

    from fcn_keras.commands._images import image_files
    from fcn_keras.export import Predictor

    if args.crf_settings and not args.crf:
        raise ValueError("--crf-settings given without --crf: add --crf (or drop it).")
    tta = tta_options(args)
    if args.crf or tta is not None:
        predictor = _keras_predictor(args, tta)
    else:
        predictor = Predictor(args.model, engine=args.engine, num_threads=args.num_threads,
                              num_classes=args.num_classes, **_speed_options(args))  # fmt: skip
    palette, palette_source = _palette(args, predictor)
    if predictor.num_classes > len(palette):
        raise ValueError(
            f"{palette_source} has {len(palette)} colours but {args.model!r} predicts "
            f"{predictor.num_classes} classes."
        )
    files = image_files([args.input])
    bases = _output_names(files)
    renamed = [path for path in files if bases[path] != os.path.splitext(os.path.basename(path))[0]]
    if renamed:
        print(f"{len(renamed)} input(s) share a file stem with another ("
              f"{', '.join(os.path.basename(p) for p in renamed)}): their outputs are named "
              f"after the whole file name, e.g. {bases[renamed[0]]}_mask.png")  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    failures = []
    for path in files:
        try:
            print(_segment(predictor, path, bases[path], palette, args))
        except Exception as e:  # noqa: BLE001 - any per-image failure is reported, not fatal
            if args.fail_fast:  # one line naming the image, exit code 2
                raise RuntimeError(f"{path}: {type(e).__name__}: {e}") from e
            failures.append((path, f"{type(e).__name__}: {e}"))
            print(f"{path}: FAILED ({type(e).__name__}: {e})", file=sys.stderr)
    done = len(files) - len(failures)
    print(f"{done} of {len(files)} image(s) segmented with {predictor.engine} ({args.model}), "
          f"colours from {palette_source}; outputs in {args.out}")  # fmt: skip
    if failures:
        print(f"{len(failures)} image(s) failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0
