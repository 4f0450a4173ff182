"""Benchmark: FCN-8s at mobile size on CamVid: parameters, mobile TFLite sizes, XNNPACK latency, mean IU.

For each model (trained `.keras` files with `--model`, or untrained builds
named with `--config head:fc_units` for sizes and latency alone), exports the
file MediaPipe's ImageSegmenter runs (`fcn_keras.export.export_mobile`) at a
fixed size, once per quantization (int8 calibrated on CamVid *train* images),
and prints one row per file: the model's parameters, the file's size, its
latency through `Predictor` (LiteRT with XNNPACK) on 1 and 2 threads (1
thread is the phone-core proxy; median of `--repeats`, round-robin across
files), and, for a trained model, CamVid mean IU of the file run in
MediaPipe Tasks' ImageSegmenter (`fcn_keras.export.run_mediapipe`: MediaPipe
resizes each 480x360 image to the file's input and its mask back) on
`--split` (val for choosing; test once for the final model), scored at the
labels' full size by `fcn_keras.evaluate_predictions`, next to Keras's.
Files go to --out (outside the repository).

Usage:
    .venv/bin/python bench/mobile_camvid.py --out /tmp/fcn_keras_runs/mobile \
        --config paper:1024,mobile:512                      # sizes and latency of untrained builds
    .venv/bin/python bench/mobile_camvid.py --out /tmp/fcn_keras_runs/mobile \
        --model ~/fcn_runs/camvid_mobile/fcn8s/final.keras --split test
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import SHARED, inside_repo_error, median_round_robin, write_figures  # noqa: E402


def _size(text):
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 360x480; received {text!r}")
    return height, width


def _configs(text):
    configs = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        head, _, units = item.partition(":")
        if head not in ("paper", "mobile") or not units.isdigit():
            raise argparse.ArgumentTypeError(
                f"expected head:fc_units items such as paper:1024,mobile:512; received {item!r}")
        configs.append((head, int(units)))
    return configs


def _models(args):
    """`(label, model, trained)` for every `--model` file and `--config` build."""
    import keras

    import fcn_keras
    from fcn_keras.models import head_of

    for path in args.model or ():
        model = keras.saving.load_model(path, compile=False)
        label = f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}/{os.path.basename(path)}"
        yield f"{label} ({head_of(model)}, fc {model.get_layer('fc6').filters})", model, True
    for head, units in args.config or ():
        model = fcn_keras.FCN8s(num_classes=11, backbone_weights=None, head=head, fc_units=units)
        yield f"FCN-8s {head} head, fc_units {units} (untrained)", model, False


def _latency(paths, threads, repeats, size):
    """Median seconds per image of each file through `Predictor` (XNNPACK), timed round-robin."""
    import numpy as np

    from fcn_keras.export import Predictor

    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    predictors = {path: Predictor(path, engine="tflite", num_threads=threads) for path in paths}
    return median_round_robin({path: (lambda p=p: p.predict(image)) for path, p in predictors.items()},
                              repeats, warmup=1)  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="a trained .keras model (repeatable)")
    parser.add_argument("--config", type=_configs, default=None,
                        help="untrained FCN-8s builds as head:fc_units, e.g. paper:1024,mobile:512")
    parser.add_argument("--out", required=True, help="folder for the .tflite files (outside the repository)")
    parser.add_argument("--size", type=_size, default=(360, 480), help="HEIGHTxWIDTH (default 360x480)")
    parser.add_argument("--quantizations", default="float32,int8")
    parser.add_argument("--data-dir", default=os.path.join(SHARED, "data", "camvid"))
    parser.add_argument("--split", default="val", help="split scored for trained models (default val)")
    parser.add_argument("--calibration-images", type=int, default=100)
    parser.add_argument("--threads", default="1,2", help="XNNPACK thread counts (default 1,2)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not args.model and not args.config:
        parser.error("give --model FILE (trained) and/or --config head:fc_units (untrained builds)")
    error = inside_repo_error(args.out)
    if error:
        parser.error(error)
    quantizations = [q.strip() for q in args.quantizations.split(",") if q.strip()]
    have_data = os.path.isdir(args.data_dir)
    if "int8" in quantizations and not have_data:
        parser.error(f"int8 needs CamVid train images to calibrate on; --data-dir {args.data_dir!r} is absent")
    os.makedirs(args.out, exist_ok=True)

    import numpy as np

    from fcn_keras import evaluate_predictions, load_dataset
    from fcn_keras.export import export_mobile, run_mediapipe
    from fcn_keras.export.tflite import representative_images_from_dataset

    calibration = None
    if have_data:
        train = load_dataset("camvid", "train", batch_size=1, augment=False, shuffle=False,
                             data_dir=args.data_dir)  # fmt: skip
        calibration = list(representative_images_from_dataset(train, args.calibration_images))

    def scored_split():
        return load_dataset("camvid", args.split, batch_size=1, augment=False, shuffle=False,
                            data_dir=args.data_dir)  # fmt: skip

    rows = []
    for label, model, trained in _models(args):
        keras_miu = None
        if trained and have_data:
            keras_miu = evaluate_predictions(lambda x: model(x, training=False), scored_split(),
                                             11, trimap_widths=())["mean_iu"]  # fmt: skip
        for quantization in quantizations:
            stem = "".join(c if c.isalnum() else "_" for c in label)[:60]
            path = os.path.join(args.out, f"{stem}_{quantization}_{args.size[0]}x{args.size[1]}.tflite")
            export_mobile(model, path, args.size, quantization=quantization,
                          representative_images=calibration if quantization == "int8" else None)
            row = {"model": label, "quantization": quantization,
                   "parameters": int(model.count_params()), "file_mb": os.path.getsize(path) / 1e6,
                   "path": path}  # fmt: skip
            if keras_miu is not None:
                result = evaluate_predictions(
                    lambda x: np.stack(run_mediapipe(path, list(np.asarray(x)))["category"]),
                    scored_split(), 11, trimap_widths=())  # fmt: skip
                row.update({f"{args.split}_mean_iu_mediapipe": 100 * result["mean_iu"],
                            f"{args.split}_mean_iu_keras": 100 * keras_miu})  # fmt: skip
            rows.append(row)
            print({k: v for k, v in row.items() if k != "path"}, flush=True)
    for threads in (int(t) for t in args.threads.split(",")):
        latency = _latency([row["path"] for row in rows], threads, args.repeats, args.size)
        for row in rows:
            row[f"latency_s_{threads}_thread{'s' if threads > 1 else ''}"] = latency[row["path"]]
    for row in rows:
        row["path"] = os.path.basename(row["path"])
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k != "path"]
    markdown = "| " + " | ".join(keys) + " |\n| " + " | ".join("---" for _ in keys) + " |\n"
    for row in rows:
        markdown += "| " + " | ".join(f"{row[k]:.3f}" if isinstance(row.get(k), float) else
                                      str(row.get(k, "-")) for k in keys) + " |\n"  # fmt: skip
    write_figures({"size": list(args.size), "rows": rows}, markdown, json_path=args.json)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
