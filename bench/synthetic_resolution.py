"""Benchmark: how much mean IU an FCN's output stride leaves reachable on the synthetic set.

FCN-8s predicts one score vector per 8x8 cell and upsamples it bilinearly; at
small image sizes the synthetic shapes (radius 13-33% of the side, cross arms
28% of the radius wide) are only a few cells across, so boundaries cannot be
placed exactly. This script estimates that limit without training anything:
for each image size and stride it replaces the network by an oracle that knows
the ground truth, averages its one-hot mask over every stride x stride cell,
upsamples those class fractions bilinearly (half-pixel centres, as the model's
`Conv2DTranspose` does) and takes the argmax. Its mean IU on the validation
split is an *estimate* of what a perfectly trained FCN at that stride reaches
(a network may sharpen its logits beyond cell averages, so it is not a strict
bound); it tells which `--image-size` a ">= 0.90 mean IU" demo run needs.

Usage:
    .venv/bin/python bench/synthetic_resolution.py [--sizes 64,96,128,160] [--num-val 100]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def oracle_mean_iu(masks, stride, num_classes):
    """Mean IU of the cell-average + bilinear oracle at `stride` (see the module docstring)."""
    import numpy as np
    import tensorflow as tf

    from fcn_keras.metrics import confusion_matrix, scores_from_confusion

    size = masks.shape[1]
    one_hot = np.eye(num_classes, dtype=np.float32)[masks]
    cells = tf.nn.avg_pool2d(one_hot, stride, stride, "VALID")
    upsampled = tf.image.resize(cells, (size, size), "bilinear").numpy()
    matrix = confusion_matrix(masks, upsampled.argmax(-1), num_classes)
    return scores_from_confusion(matrix)["mean_iu"]


def main():
    import numpy as np

    from fcn_keras.data.synthetic import SYNTHETIC_CLASS_NAMES, generate_synthetic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,96,128,160")
    parser.add_argument("--strides", default="8,16,32", help="8: FCN-8s, 16: FCN-16s, 32: FCN-32s")
    parser.add_argument("--num-val", type=int, default=100, help="validation images (the demo uses 100)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    strides = [int(s) for s in args.strides.split(",")]
    num_classes = len(SYNTHETIC_CLASS_NAMES)
    print("| image size | " + " | ".join(f"stride {s}" for s in strides) + " |")
    print("| --- |" + " --- |" * len(strides))
    for size in sizes:
        _, masks = generate_synthetic(np.arange(args.num_val), image_size=size, split="val")
        row = [f"{oracle_mean_iu(masks, s, num_classes):.3f}" if size % s == 0 else "n/a" for s in strides]
        print(f"| {size} | " + " | ".join(row) + " |")
    print(f"\nOracle mean IU on {args.num_val} synthetic val images (seed 0): ground truth averaged "
          "per stride x stride cell, upsampled bilinearly, argmax.")


if __name__ == "__main__":
    main()
