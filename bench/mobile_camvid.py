"""Benchmark: the mobile TFLite files in MediaPipe's ImageSegmenter: sizes, agreement with Keras, mean IU.

Exports a model with `fcn_keras.export.export_mobile` at a fixed size, once
per quantization (int8 calibrated on CamVid *train* images), runs every file
in MediaPipe Tasks' ImageSegmenter (`fcn_keras.export.run_mediapipe`, the
C++ graph of the Android/iOS/web SDKs) on CamVid *val* images, and prints per
file: its size, the share of pixels where MediaPipe's category mask equals
Keras's argmax, mean IU of Keras and of MediaPipe against ground truth, and
MediaPipe's time per image. Without `--model` it builds an untrained FCN-8s
with the mobile head (sizes only: agreement and mean IU need a trained model).
Files go to --out (outside the repository).

Usage:
    .venv/bin/python bench/mobile_camvid.py --model camvid_mobile.keras --out /tmp/fcn_keras_runs/mobile
    .venv/bin/python bench/mobile_camvid.py --out /tmp/fcn_keras_runs/mobile_sizes   # sizes only
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import REPO, inside_repo_error  # noqa: E402
sys.path.insert(0, REPO)
SHARED = os.environ.get("FCN_KERAS_SHARED", os.path.join(os.path.dirname(REPO), "shared"))


def _size(text):
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def _split(data_dir, split, limit, size):
    """Up to `limit` CamVid (image, mask) pairs, resized to `size` (images bilinear, masks nearest)."""
    import numpy as np
    from PIL import Image

    from fcn_keras import load_dataset

    dataset = load_dataset("camvid", split, batch_size=1, augment=False, shuffle=False, data_dir=data_dir)
    pairs = []
    for image, mask in dataset.take(limit):
        image, mask = np.asarray(image[0], np.uint8), np.asarray(mask[0])
        if image.shape[:2] != size:
            image = np.asarray(Image.fromarray(image).resize(size[::-1], Image.BILINEAR))
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(size[::-1], Image.NEAREST))
        pairs.append((image, mask.astype(np.int32)))
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=".keras model (default: an untrained FCN-8s, "
                                                      "mobile head, 11 classes: sizes only)")  # fmt: skip
    parser.add_argument("--out", required=True, help="folder for the .tflite files (outside the repository)")
    parser.add_argument("--size", type=_size, default=(360, 480), help="HEIGHTxWIDTH (default 360x480)")
    parser.add_argument("--quantizations", default="float32,float16,int8")
    parser.add_argument("--data-dir", default=os.path.join(SHARED, "data", "camvid"))
    parser.add_argument("--limit", type=int, default=24, help="val images (default 24)")
    parser.add_argument("--calibration-images", type=int, default=32)
    args = parser.parse_args(argv)
    error = inside_repo_error(args.out)
    if error:
        parser.error(error)

    import keras
    import numpy as np

    import fcn_keras
    from fcn_keras.export import export_mobile, run_mediapipe
    from fcn_keras.metrics import confusion_matrix, scores_from_confusion

    if args.model:
        model = keras.saving.load_model(args.model, compile=False)
    else:
        model = fcn_keras.FCN8s(num_classes=11, backbone_weights=None, head="mobile")
    num_classes = model.outputs[0].shape[-1]
    have_data = os.path.isdir(args.data_dir)
    val = _split(args.data_dir, "val", args.limit, args.size) if have_data and args.model else []
    calibration = ([image for image, _ in _split(args.data_dir, "train", args.calibration_images, args.size)]
                   if have_data else None)  # fmt: skip
    keras_classes = [np.asarray(model(image[None]))[0].argmax(-1) for image, _ in val]

    def mean_iu(predictions):
        matrix = sum(confusion_matrix(mask, p, num_classes, ignore_label=255)
                     for (_, mask), p in zip(val, predictions))  # fmt: skip
        return 100 * scores_from_confusion(matrix)["mean_iu"]

    rows = []
    for quantization in args.quantizations.split(","):
        if quantization == "int8" and calibration is None:
            print(f"int8 skipped: no CamVid train images in {args.data_dir} to calibrate on")
            continue
        path = os.path.join(args.out, f"fcn8s_mobile_{quantization}_{args.size[0]}x{args.size[1]}.tflite")
        start = time.perf_counter()
        export_mobile(model, path, args.size, quantization=quantization, representative_images=calibration)
        row = {"file": os.path.basename(path), "MB": os.path.getsize(path) / 1e6,
               "export_s": time.perf_counter() - start}  # fmt: skip
        if val:
            start = time.perf_counter()
            out = run_mediapipe(path, [image for image, _ in val])
            row["mediapipe_s_per_image"] = (time.perf_counter() - start) / len(val)
            row["agreement_%"] = 100 * np.mean(np.concatenate(
                [(c == k).ravel() for c, k in zip(out["category"], keras_classes)]))  # fmt: skip
            row["mean_iu_mediapipe"] = mean_iu(out["category"])
            row["mean_iu_keras"] = mean_iu(keras_classes)
        rows.append(row)
        print(row, flush=True)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print("| " + " | ".join(keys) + " |\n| " + " | ".join("---" for _ in keys) + " |")
    for row in rows:
        print("| " + " | ".join(f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, "-"))
                                for k in keys) + " |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
