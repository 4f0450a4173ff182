"""Training-step throughput of an FCN: fp32 vs mixed precision vs mixed precision + XLA.

For each precision mode it trains the model with `model.fit` twice: once fed
by the real tf.data pipeline (`fcn_keras.load_dataset`: decode, random scale,
crop, flip, batch, prefetch) and once by a batch already in memory, and prints
images/s, the model FLOP utilisation (3x the forward FLOPs per image, over
the accelerator's peak) and the share of step time the pipeline costs.

Meant for a GPU (the benchmark's configuration: FCN-8s, 21 classes, 512x512); on a CPU use a small
configuration to check that it runs, e.g.
    python bench/train_throughput.py --size 64 --batch 2 --fc-units 64 --steps 3 --warmup 1 \
        --modes fp32,bf16 --peak-tflops 0.1
GPU run (H100/H200, bf16 dense peak 989 TFLOP/s by spec):
    python bench/train_throughput.py --source camvid --data-dir ../shared/data/camvid \
        --out $OUT/train_throughput.json
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import fcn_keras  # noqa: E402
from _common import model_flops  # noqa: E402

# Mode name -> (Keras dtype policy, jit_compile).
MODES = {
    "fp32": ("float32", False),
    "fp32_xla": ("float32", True),
    "bf16": ("mixed_bfloat16", False),
    "bf16_xla": ("mixed_bfloat16", True),
    "fp16": ("mixed_float16", False),
    "fp16_xla": ("mixed_float16", True),
}


class _StepTimer(keras.callbacks.Callback):
    """Record the wall time of every training batch after the first `skip`."""

    def __init__(self, skip):
        super().__init__()
        self.skip, self.times, self._start = skip, [], None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if batch >= self.skip:
            self.times.append(time.perf_counter() - self._start)


def _pipeline(args, num_classes):
    kwargs = {"data_dir": args.data_dir} if args.data_dir else {}
    if args.source == "synthetic":
        kwargs["image_size"] = args.size
    dataset = fcn_keras.load_dataset(
        args.source, "train", batch_size=args.batch, crop_size=(args.size, args.size),
        repeat=True, seed=0, **kwargs,
    )  # fmt: skip
    return dataset


def _in_memory(args, num_classes):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
    masks = rng.integers(0, num_classes, (args.batch, args.size, args.size), dtype=np.int32)
    return tf.data.Dataset.from_tensors((images, masks)).repeat()


def measure(args, mode, feed, num_classes):
    """Train `args.warmup + args.steps` steps in one mode; return images/s over the timed steps."""
    policy, jit = MODES[mode]
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    try:
        model = fcn_keras.build_fcn(args.variant, num_classes=num_classes,
                                    fc_units=args.fc_units, backbone_weights=None)  # fmt: skip
        optimizer = keras.optimizers.SGD(1e-4, momentum=0.99)
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
            jit_compile=jit,
        )
        dataset = (_pipeline if feed == "tf.data" else _in_memory)(args, num_classes)
        timer = _StepTimer(skip=args.warmup)
        model.fit(dataset, steps_per_epoch=args.warmup + args.steps, epochs=1,
                  callbacks=[timer], verbose=0)  # fmt: skip
    finally:
        keras.config.set_dtype_policy("float32")
    step = float(np.median(timer.times))
    return args.batch / step, step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fcn8s")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--size", type=int, default=512, help="square crop side")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (tracing, XLA)")
    parser.add_argument("--modes", default="fp32,bf16,bf16_xla,fp16_xla")
    parser.add_argument("--feeds", default="tf.data,memory")
    parser.add_argument("--source", default="synthetic")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="accelerator's dense bf16 peak (H100/H200 SXM: 989)")  # fmt: skip
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; expected some of {sorted(MODES)}")

    num_classes = args.num_classes
    probe = fcn_keras.build_fcn(args.variant, num_classes=num_classes,
                                fc_units=args.fc_units, backbone_weights=None)  # fmt: skip
    train_flops = 3 * model_flops(probe, args.size, args.size)  # forward + 2x backward
    del probe
    device = tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("CPU")
    print(f"device: {device[0].name}; {args.variant} fc_units={args.fc_units} "
          f"{args.size}x{args.size} batch {args.batch}; {train_flops / 1e9:.0f} GFLOP/image/step")  # fmt: skip
    rows = []
    for mode in modes:
        figures = {}
        for feed in args.feeds.split(","):
            images_per_s, step = measure(args, mode, feed, num_classes)
            figures[feed] = images_per_s
            mfu = images_per_s * train_flops / (args.peak_tflops * 1e12)
            rows.append({"mode": mode, "feed": feed, "images_per_s": images_per_s,
                         "step_s": step, "mfu": mfu})  # fmt: skip
            print(f"{mode:9s} {feed:8s} {images_per_s:9.2f} img/s  step {step * 1e3:8.1f} ms  "
                  f"MFU {100 * mfu:5.1f}% of {args.peak_tflops:g} TFLOP/s", flush=True)  # fmt: skip
        if "tf.data" in figures and "memory" in figures:
            cost = max(0.0, 1.0 - figures["tf.data"] / figures["memory"])
            print(f"{mode:9s} pipeline cost: {100 * cost:.1f}% of step time")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "train_gflop_per_image": train_flops / 1e9,
                       "rows": rows}, f, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
