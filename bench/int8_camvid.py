"""Benchmark: int8 vs float32 TFLite mean IU on CamVid val, with a model fine-tuned on CamVid.

Fine-tunes an FCN-8s from the real pretrained VGG16 backbone in
`../shared/weights` on CamVid train (SegNet layout, 11 classes, label 11
ignored) at a scale a 2-core CPU can afford (reduced fc_units, images
downscaled, a few epochs), exports float32 and full-integer int8 TFLite (int8
calibrated on CamVid *train* images), and runs `export.verify` on CamVid
*val*: mean IU of Keras, float32 and int8 TFLite against ground truth, and the
int8 drop (threshold: <= 1.5 points). Weights and artifacts go to --out
(outside the repository; CamVid's licence forbids redistribution).

Usage:
    .venv/bin/python bench/int8_camvid.py --out /tmp/fcn_keras_runs/int8_camvid
    .venv/bin/python bench/int8_camvid.py --out ... --skip-train   # re-export/verify only
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import CAMVID_DIR, REPO, VGG16_WEIGHTS, inside_repo_error  # noqa: E402
sys.path.insert(0, REPO)
IGNORE = 11
NUM_CLASSES = 11


def load_split(data_dir, split, size, limit=None):
    """Read a SegNet list (`split`.txt) into uint8 images and masks resized to `size` (H, W)."""
    import numpy as np
    from PIL import Image

    with open(os.path.join(data_dir, f"{split}.txt")) as f:
        rows = [line.split() for line in f if line.strip()][:limit]
    images, masks = [], []
    for image_rel, mask_rel in rows:
        image = Image.open(os.path.join(data_dir, image_rel.lstrip("/"))).convert("RGB")
        mask = Image.open(os.path.join(data_dir, mask_rel.lstrip("/")))
        images.append(np.asarray(image.resize(size[::-1], Image.BILINEAR)))
        masks.append(np.asarray(mask.resize(size[::-1], Image.NEAREST)))  # never interpolate labels
    return np.stack(images), np.stack(masks).astype("int32")


def train(args, size):
    import keras
    import tensorflow as tf

    import fcn_keras

    keras.utils.set_random_seed(args.seed)
    images, masks = load_split(args.data_dir, "train", size)
    model = fcn_keras.FCN8s(num_classes=NUM_CLASSES, fc_units=args.fc_units,
                            backbone_weights=args.backbone_weights)  # fmt: skip
    for layer in model.layers:  # the first two VGG blocks stay at their pretrained values
        if layer.name.startswith(("block1_", "block2_")):
            layer.trainable = False
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE),
    )

    def flip(image, mask):
        flipped = tf.random.uniform(()) < 0.5
        image = tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image)
        mask = tf.cond(flipped, lambda: tf.reverse(mask, [1]), lambda: mask)
        return image, mask

    dataset = (tf.data.Dataset.from_tensor_slices((images, masks)).shuffle(len(images), seed=args.seed)
               .map(flip).batch(args.batch_size).prefetch(2))  # fmt: skip
    t0 = time.perf_counter()
    history = model.fit(dataset, epochs=args.epochs, verbose=2)
    print(f"trained {args.epochs} epochs on {len(images)} images at {size[0]}x{size[1]} in "
          f"{time.perf_counter() - t0:.0f} s; final loss {history.history['loss'][-1]:.3f}")
    return model, images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=CAMVID_DIR)
    parser.add_argument("--backbone-weights",
                        default=VGG16_WEIGHTS)
    parser.add_argument("--out", default="/tmp/fcn_keras_runs/int8_camvid")
    parser.add_argument("--size", default="120x160", help="training/eval size HxW (CamVid is 360x480)")
    parser.add_argument("--fc-units", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", type=int, default=100, help="train images for int8 calibration")
    parser.add_argument("--skip-train", action="store_true", help="reuse OUT/model.keras")
    parser.add_argument("--quantizations", default="float32,int8",
                        help="TFLite variants to compare (float32 and int8 always included)")
    args = parser.parse_args()
    error = inside_repo_error(args.out, what="weights and artifacts")
    if error:
        raise SystemExit(error)
    out = os.path.realpath(args.out)
    os.makedirs(out, exist_ok=True)
    size = tuple(int(v) for v in args.size.split("x"))

    import keras

    from fcn_keras import export
    import fcn_keras  # noqa: F401

    model_path = os.path.join(out, "model.keras")
    if args.skip_train:
        model = keras.saving.load_model(model_path, compile=False)
        calibration, _ = load_split(args.data_dir, "train", size, limit=args.calibration)
    else:
        model, calibration = train(args, size)
        model.save(model_path)
    rng = __import__("numpy").random.default_rng(args.seed)
    calibration = calibration[rng.permutation(len(calibration))[: args.calibration]]

    artifacts = {}
    variants = ["float32", "int8"] + [q for q in args.quantizations.split(",") if q not in ("float32", "int8")]
    for quantization in variants:
        t0 = time.perf_counter()
        artifacts[f"tflite_{quantization}"] = export.export_tflite(
            model, os.path.join(out, f"model_{quantization}.tflite"), quantization=quantization,
            representative_images=list(calibration),
        )  # fmt: skip
        print(f"exported {quantization} TFLite in {time.perf_counter() - t0:.0f} s "
              f"({os.path.getsize(artifacts[f'tflite_{quantization}']) / 2**20:.1f} MiB)")
    val_images, val_masks = load_split(args.data_dir, "val", size)
    t0 = time.perf_counter()
    report = export.verify(model, artifacts, list(val_images), labels=list(val_masks),
                           ignore_label=IGNORE)  # fmt: skip
    print(f"verified on {len(val_images)} val images in {time.perf_counter() - t0:.0f} s")
    print(report.to_markdown())
    results = {a["name"]: a for a in report.artifacts}
    keras_miou = results["tflite_float32"]["keras_miou"]
    fp32, int8 = results["tflite_float32"]["miou"], results["tflite_int8"]["miou"]
    summary = {
        "model": f"FCN-8s, fc_units={args.fc_units}, backbone {os.path.basename(args.backbone_weights)}, "
                 f"{args.epochs} epochs at {size[0]}x{size[1]}, Adam {args.lr}, blocks 1-2 frozen",
        "val_images": len(val_images), "keras_miou": keras_miou, "tflite_float32_miou": fp32,
        "tflite_int8_miou": int8, "int8_drop_points": 100 * (fp32 - int8),
        "int8_drop_vs_keras_points": 100 * (keras_miou - int8),
        "int8_argmax_agreement": results["tflite_int8"]["vs_keras"]["argmax_agreement"],
        "passed": report.passed,
    }  # fmt: skip
    with open(os.path.join(out, "int8_camvid.json"), "w") as f:
        json.dump({"summary": summary, "report": report.to_dict()}, f, indent=2, default=str)
    for name, result in results.items():
        print(f"  {name}: mean IU {100 * result['miou']:.2f} (drop vs Keras {100 * result['miou_drop']:.2f} points), "
              f"argmax agreement {100 * result['vs_keras']['argmax_agreement']:.2f}%")
    print(f"RESULT CamVid val mean IU: Keras {100 * keras_miou:.2f}, TFLite float32 {100 * fp32:.2f}, "
          f"int8 {100 * int8:.2f} (drop {summary['int8_drop_points']:.2f} points vs float32 TFLite; "
          f"threshold 1.5) -> {'PASS' if report.passed else 'FAIL'}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
