"""Benchmark: the cost of test-time augmentation, as latency with `with_tta` over latency without.

For one model (a `.keras` file, or a reduced FCN-8s built here with random
weights) and one image size, each engine runs the plain model and
`fcn_keras.with_tta(model, scales, flip)` on the same uint8 batch, timed
round-robin (bench/_common.py's runners and timing, as bench/latency.py: median of --repeats runs
after --warmup untimed ones). Printed per engine: both latencies, their
ratio, and the ratios the pixels alone predict (the sum over views of
`scaled_h * scaled_w / (H * W)`: one FCN pass per view, each on its own
pixels; and the same after each is padded to a multiple of 32, as the FCN
does); the excess over them is the resizes, the averaging and the fixed
cost per pass. On a machine other jobs share, `--clock cpu --threads 1`
times the process's CPU time instead of wall time (as bench/latency.py).

Usage:
    .venv/bin/python bench/tta_latency.py                      # FCN-8s fc_units 1024, 360x480, keras
    .venv/bin/python bench/tta_latency.py --model runs/camvid/fcn8s/final.keras --engines keras,onnx
    .venv/bin/python bench/tta_latency.py --quick              # fc_units 64, 180x240, 3 repeats
Artifacts (onnx, tflite, savedmodel engines) are written under --work
(default /tmp/fcn_keras_runs/tta_latency), outside the repository.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import (CLOCK, artifact_runner, cpu_description, inside_repo_error,  # noqa: E402
                     median_round_robin)

ENGINES = ("keras", "keras_plain", "onnx", "tflite_fp32", "savedmodel")


def pixel_ratio(height, width, scales, flip, multiple=1):
    """The TTA model's pixels over the plain model's: sum over views of the scaled image's area.

    With `multiple=32`, the areas after the FCN's padding to a multiple of 32.
    """
    from fcn_keras.tta import scaled_size

    def padded(n):
        return -(-n // multiple) * multiple

    views = sum(padded(int(scaled_size(height, s))) * padded(int(scaled_size(width, s)))
                for s in scales)  # fmt: skip
    return views * (2 if flip else 1) / (padded(height) * padded(width))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="a .keras model (default: a reduced FCN-8s, random weights)")
    parser.add_argument("--fc-units", type=int, default=None,
                        help="built model's fc6/fc7 width (default 1024; --quick 64)")
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--height", type=int, default=None, help="image height (default 360; --quick 180)")
    parser.add_argument("--width", type=int, default=None, help="image width (default 480; --quick 240)")
    parser.add_argument("--scales", default="0.75,1,1.25", help="TTA scales (default 0.75,1,1.25)")
    parser.add_argument("--no-flip", action="store_true", help="TTA without mirror images")
    parser.add_argument("--engines", default="keras",
                        help=f"comma-separated subset of {', '.join(ENGINES)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 5; --quick 3)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", default="/tmp/fcn_keras_runs/tta_latency", help="artifact folder")
    parser.add_argument("--quick", action="store_true", help="fc_units 64, 180x240, 3 repeats")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or the process's CPU time (with --threads 1 on a busy "
                             "machine; bench/latency.py's clock)")  # fmt: skip
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        parser.error(f"--engines: unknown or empty {unknown or args.engines!r}; "
                     f"expected a subset of {ENGINES}.")
    try:
        scales = tuple(float(s) for s in args.scales.split(","))
    except ValueError:
        parser.error(f"--scales takes comma-separated numbers, e.g. 0.75,1,1.25; received {args.scales!r}.")
    error = inside_repo_error(args.work, "--work", "artifacts")
    if error:
        parser.error(error)
    height = args.height or (180 if args.quick else 360)
    width = args.width or (240 if args.quick else 480)
    repeats = args.repeats or (3 if args.quick else 5)

    import keras
    import numpy as np
    import tensorflow as tf

    import fcn_keras

    if args.clock == "cpu":
        import time

        CLOCK[0] = time.process_time

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)
    if args.model:
        model = fcn_keras.evaluation.load_model(args.model)
    else:
        fc_units = args.fc_units or (64 if args.quick else 1024)
        model = fcn_keras.FCN8s(num_classes=args.num_classes, fc_units=fc_units, backbone_weights=None)
    tta = fcn_keras.with_tta(model, scales=scales, flip=not args.no_flip)
    batch = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    predicted = pixel_ratio(height, width, scales, not args.no_flip)
    padded = pixel_ratio(height, width, scales, not args.no_flip, multiple=32)
    print(f"{model.name}: {model.count_params():,} parameters; {height}x{width}; TTA scales "
          f"{','.join(f'{s:g}' for s in scales)}{' + flip' if not args.no_flip else ''} "
          f"({len(scales) * (1 if args.no_flip else 2)} views, {predicted:.2f}x the pixels, "
          f"{padded:.2f}x padded to multiples of 32)")
    print(f"machine: {cpu_description()}; {args.threads} threads; median of {repeats} "
          f"({args.clock} clock)")
    runners = {}
    for engine in engines:
        for name, m in (("plain", model), ("tta", tta)):
            work = os.path.join(args.work, f"{m.name}_{height}x{width}")
            os.makedirs(work, exist_ok=True)
            run = artifact_runner(engine, m, work, args.threads, height, None, reexport=True)
            runners[(engine, name)] = lambda run=run: run(batch)
    times = median_round_robin(runners, repeats, args.warmup)
    print("\n| engine | plain (s) | TTA (s) | TTA / plain | pixels ratio | padded pixels ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for engine in engines:
        plain, with_tta = times[(engine, "plain")], times[(engine, "tta")]
        print(f"| {engine} | {plain:.3f} | {with_tta:.3f} | {with_tta / plain:.2f}x | {predicted:.2f}x "
              f"| {padded:.2f}x |")


if __name__ == "__main__":
    main()
