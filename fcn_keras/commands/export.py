"""`fcn-keras export`: export a `.keras` model to SavedModel / TFLite / ONNX / mobile TFLite and verify it.

A thin layer over `fcn_keras.export.export_all`. Images come through
`fcn_keras.load_dataset` with the shared source arguments
(`fcn_keras.commands.sources`): verification on `--verify-split` (default
"val"), int8 calibration on `--calibration-split` (default "train"), never the
same split. `--images` verifies on a plain folder of unlabelled images
instead. The ignore label comes from the model's `dataset_info` unless
`--ignore-label` is given. `--quantization int8` writes the int8 TFLite and the
int8 ONNX, calibrated on the same images. `--no-jit-compile` writes the
SavedModel's `serving_default` without XLA. `--images` and `--report` belong to `--verify`:
either without it is an error. Exit code 1 when verification fails. `--crf`
exports the model followed by a dense CRF (`fcn_keras.DenseCRF`, inside every
artifact's graph), with the settings saved next to the model
(`MODEL.crf.json`), else `--crf-settings FILE`, else the defaults (printed);
the artifact names then end in `_crf` (`fcn8s_crf.onnx`). `--tta` exports the
model with test-time augmentation inside the graph (`fcn_keras.with_tta`,
`--tta-scales`, `--no-tta-flip`; before the CRF when both are given); the
names then end in `_tta` (`fcn8s_tta.onnx`, `fcn8s_tta_crf.onnx`). `--format mobile
--input-size 360x480` writes the TFLite file MediaPipe's ImageSegmenter runs
(`fcn_keras.export.export_mobile`), one per `--quantization` (float32, float16,
int8); `--verify` runs it in MediaPipe too when mediapipe is importable
(`pip install "fcn_keras[mobile]"`) and says so in the report when it is not.
`--triton-repo DIR` writes `DIR/NAME/1/model.onnx` and its `config.pbtxt` for Triton's onnxruntime
backend (`fcn_keras.export.export_triton_repository`), from the ONNX file
just written to `--out` when there is one; without `--out` only that.
"""

import argparse

from fcn_keras.choices import DEFAULT_FORMATS, FORMATS, QUANTIZATIONS
from fcn_keras.commands.sources import add_source_arguments, source_kwargs
from fcn_keras.commands.tta import add_tta_arguments, tta_options

__all__ = ["register"]


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
    """Add `fcn-keras export` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    parser = subparsers.add_parser(
        "export",
        help="export a .keras model to SavedModel/TFLite/ONNX/mobile TFLite and optionally verify them",
        description="Export an FCN saved as .keras to SavedModel, TFLite (float32, float16, "
        "dynamic_range, int8), ONNX and, with --formats mobile --input-size HxW, the TFLite file "
        "MediaPipe's ImageSegmenter runs (labels inside) in --out, and with --verify check every artifact "
        "against Keras and each other on real images (exit code 1 when a threshold fails). "
        "Images come from --source (verification on --verify-split, int8 calibration on "
        "--calibration-split) or, for verification, from --images.",
    )
    parser.add_argument("--model", required=True, help="the .keras model to export")
    parser.add_argument("--out", default=None, help="output directory for the artifacts")
    parser.add_argument("--triton-repo", default=None, metavar="DIR",
                        help="also (or, without --out, only) write a Triton model repository entry: "
                             "DIR/NAME/1/model.onnx and DIR/NAME/config.pbtxt (onnxruntime backend)")  # fmt: skip
    parser.add_argument("--triton-max-batch", type=int, default=8,
                        help="with --triton-repo: Triton's max_batch_size, 0 for no batching (default 8)")  # fmt: skip
    parser.add_argument("--formats", "--format", type=_csv(FORMATS), default=list(DEFAULT_FORMATS),
                        help=f"comma-separated formats of {', '.join(FORMATS)} (default: "
                             f"{','.join(DEFAULT_FORMATS)}; mobile needs --input-size)")  # fmt: skip
    parser.add_argument("--quantization", type=_csv(QUANTIZATIONS), default=["float32"],
                        help="TFLite variants, comma-separated (mobile: float32, float16, int8); "
                             "int8 also writes an int8 ONNX (default: float32)")  # fmt: skip
    parser.add_argument("--no-jit-compile", action="store_true",
                        help="write the SavedModel's serving_default without XLA (for a TF Serving "
                             "build without XLA)")  # fmt: skip
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 13..18 (default 17)")
    parser.add_argument("--input-size", type=_size, default=None,
                        help="fix the TFLite input size, HEIGHTxWIDTH (default: dynamic; "
                             "required by --formats mobile)")  # fmt: skip
    parser.add_argument("--mobile-int8-output", choices=("float32", "uint8"), default="float32",
                        help="scores of the int8 mobile file: dequantized float32 (default) or "
                             "kept quantized as uint8; MediaPipe reads both")  # fmt: skip
    parser.add_argument("--name", default=None,
                        help="base of the artifact file names (default: the model's variant)")  # fmt: skip
    add_source_arguments(parser, default=None)
    parser.add_argument("--verify-split", default="val",
                        help="split of --source to verify on (default: val)")  # fmt: skip
    parser.add_argument("--calibration-split", default="train",
                        help="split of --source to calibrate int8 on (default: train)")  # fmt: skip
    parser.add_argument("--images", nargs="+", default=None,
                        help="with --verify: unlabelled image files or folders to verify on "
                             "(instead of --verify-split)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=8,
                        help="verify on at most this many images (default 8)")  # fmt: skip
    parser.add_argument("--calibration-limit", type=int, default=100,
                        help="int8 calibration images (default 100)")  # fmt: skip
    parser.add_argument("--ignore-label", type=int, default=None,
                        help="void label id (default: the model's, else 255)")  # fmt: skip
    parser.add_argument("--crf", action="store_true",
                        help="export the model followed by a dense CRF, with the settings in "
                             "MODEL.crf.json when it exists, else the DenseCRF defaults")  # fmt: skip
    parser.add_argument("--crf-settings", default=None, metavar="FILE",
                        help="with --crf: read the CRF settings from FILE instead")  # fmt: skip
    add_tta_arguments(parser)
    parser.add_argument("--verify", action="store_true", help="verify every artifact (needs images)")
    parser.add_argument("--report", default=None,
                        help="with --verify: write the verification report here (.json and .md; "
                             "default OUT/verification)")  # fmt: skip
    parser.add_argument("--num-threads", type=int, default=None, help="threads per runtime")
    parser.set_defaults(handler=handler)


def _split_examples(source, args, split, limit, ignore_label, with_labels):
    """Up to `limit` (image, mask) NumPy pairs of a split of `source`, read by `fcn_keras.load_dataset`."""
    import numpy as np

    from fcn_keras import load_dataset

    dataset = load_dataset(source, split, batch_size=1, augment=False, shuffle=False,
                           ignore_label=ignore_label)  # fmt: skip
    images, labels = [], []
    for image, mask in dataset.take(limit):
        images.append(np.asarray(image[0], dtype=np.uint8))
        labels.append(np.asarray(mask[0]))
    if not images:
        raise ValueError(f"--source {args.source!r} split {split!r} holds no images.")
    return images, (labels if with_labels else None)


def _positive(value, flag):
    if value < 1:
        raise ValueError(f"{flag} must be a positive integer; received {value}.")


def _write_triton_repository(model, args, name):
    """Write the Triton repository entry for `model` (a keras.Model or an .onnx path) and say where."""
    import os

    from fcn_keras.export import export_triton_repository
    from fcn_keras.models import variant_of

    if name is None and not isinstance(model, str):
        try:
            name = variant_of(model)
        except ValueError:
            name = model.name
    folder = export_triton_repository(model, args.triton_repo, name=name, max_batch_size=args.triton_max_batch,
                                      opset=args.opset)  # fmt: skip
    print(f"wrote Triton model {os.path.basename(folder)!r}: {os.path.join(folder, 'config.pbtxt')}, "
          f"{os.path.join(folder, '1', 'model.onnx')}")  # fmt: skip


def handler(args):
    """Run `fcn-keras export`; returns 0, or 1 when verification fails."""
    import os

    import keras

    from fcn_keras.commands._images import image_files, read_image
    from fcn_keras.evaluation import ignore_label_of
    from fcn_keras.export import export_all

    if "mobile" in args.formats and args.input_size is None:
        raise ValueError("--formats mobile needs --input-size HEIGHTxWIDTH (e.g. 360x480): MediaPipe "
                         "runs a fixed-size file.")  # fmt: skip
    if args.out is None and args.triton_repo is None:
        raise ValueError("give --out DIR (the artifacts) and/or --triton-repo DIR (a Triton model repository).")
    if args.triton_max_batch < 0:
        raise ValueError(f"--triton-max-batch must be >= 0 (0: no batching); received {args.triton_max_batch}.")
    _positive(args.limit, "--limit")
    _positive(args.calibration_limit, "--calibration-limit")
    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"model not found: {args.model!r} (expected a .keras file).")
    try:
        model = keras.saving.load_model(args.model, compile=False)
    except Exception as e:
        raise ValueError(f"cannot load Keras model {args.model!r}: {e}") from e
    ignore_label = ignore_label_of(model) if args.ignore_label is None else args.ignore_label
    name = args.name
    if args.crf_settings and not args.crf:
        raise ValueError("--crf-settings given without --crf: add --crf (or drop it).")
    tta = tta_options(args)
    if args.crf or tta is not None:
        from fcn_keras.models import variant_of

        try:
            base = variant_of(model)
        except ValueError:
            base = model.name
    if tta is not None:
        from fcn_keras.tta import with_tta

        model = with_tta(model, **tta)
        base = f"{base}_tta"
        name = name or base
    if args.crf:
        from fcn_keras.crf import with_saved_crf

        model, _, crf_source = with_saved_crf(model, args.model, args.crf_settings)
        print(crf_source)
        name = args.name or f"{base}_crf"

    int8 = bool({"tflite", "onnx", "mobile"} & set(args.formats)) and "int8" in args.quantization
    unused = [flag for flag, value in (("--images", args.images), ("--report", args.report)) if value]
    if unused and not args.verify:
        raise ValueError(
            f"{' and '.join(unused)} given without --verify: they choose what verification runs "
            "on and where its report goes; add --verify (or drop them)."
        )
    if args.verify and args.source is None and not args.images:
        raise ValueError(
            "--verify needs real images: pass --source (with --data-dir; verifies on "
            "--verify-split) or --images FILES_OR_FOLDERS."
        )
    if int8 and args.source is None:
        raise ValueError(
            "int8 needs real images to calibrate on: pass --source (with --data-dir); "
            "it calibrates on --calibration-split (default train)."
        )
    if int8 and args.verify and not args.images and args.verify_split == args.calibration_split:
        raise ValueError(
            f"--verify-split and --calibration-split are both {args.verify_split!r}: int8 must "
            "not be calibrated on the images that verify it; choose two splits."
        )

    source = None
    if args.source is not None and ((args.verify and not args.images) or int8):
        from fcn_keras.data.sources import resolve_source

        # One Source, built from the source options alone: a `--source-arg seed=3` is the
        # source's own seed, never load_dataset's shuffling seed.
        options = source_kwargs(args)
        if "ignore_label" in options:
            raise ValueError("give the ignore label as --ignore-label, not --source-arg ignore_label=...")
        source = resolve_source(args.source, ignore_label=ignore_label, **options)
    verify_images = verify_labels = calibration = None
    if args.verify:
        if args.images:
            files = image_files(args.images)[: args.limit]
            verify_images = []
            for path in files:
                image, note = read_image(path)
                if note:
                    print(f"{path}: {note}")
                verify_images.append(image)
        else:
            verify_images, verify_labels = _split_examples(source, args, args.verify_split, args.limit,
                                                           ignore_label, with_labels=True)  # fmt: skip
    if int8:
        calibration, _ = _split_examples(source, args, args.calibration_split,
                                         args.calibration_limit, ignore_label, with_labels=False)  # fmt: skip

    if args.out is None:  # a Triton repository only
        if args.verify or int8:
            raise ValueError("--verify and int8 belong to --out: add --out DIR.")
        _write_triton_repository(model, args, name)
        return 0
    summary = export_all(
        model, args.out, formats=args.formats, quantizations=args.quantization, opset=args.opset,
        input_size=args.input_size, name=name, verify_images=verify_images,
        verify_labels=verify_labels, calibration_images=calibration,
        num_calibration_images=args.calibration_limit, ignore_label=ignore_label,
        num_threads=args.num_threads, report_path=args.report, jit_compile=not args.no_jit_compile,
        mobile_int8_output=args.mobile_int8_output,
    )  # fmt: skip
    for artifact, path in summary["artifacts"].items():
        print(f"wrote {artifact}: {path}")
    if args.triton_repo is not None:
        onnx_files = [path for artifact, path in summary["artifacts"].items()
                      if artifact.endswith(".onnx") and not artifact.endswith("_int8.onnx")]  # fmt: skip
        _write_triton_repository(onnx_files[0] if onnx_files else model, args, name)
    if summary["verification"] is None:
        return 0
    print(summary["verification"].to_markdown())
    print(f"report: {', '.join(summary['report_files'])}")
    return 0 if summary["passed"] else 1
