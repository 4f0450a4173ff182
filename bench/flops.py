"""Analytic FLOP count of an FCN at an image size (`_common.model_flops`), from the command line.

Counts the multiply-adds of every convolution, transposed convolution and
dense layer as 2 FLOPs each (the convention of the FLOP/s figures in
docs/benchmarks.md).

Usage:
    python bench/flops.py --variant fcn8s --size 512 512
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import model_flops  # noqa: E402


def main():
    import fcn_keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fcn8s")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    args = parser.parse_args()
    model = fcn_keras.build_fcn(args.variant, num_classes=args.num_classes,
                                fc_units=args.fc_units, backbone_weights=None)  # fmt: skip
    flops = model_flops(model, *args.size)
    print(f"{model.name} at {args.size[0]}x{args.size[1]}: {flops / 1e9:.1f} GFLOP per image (forward)")


if __name__ == "__main__":
    main()
