"""Benchmark: images/s of the tf.data training pipeline on CamVid, and how it scales with threads.

The pipeline measured is the one `fcn-keras train` uses: `load_dataset("camvid",
"train", crop_size=320, batch_size=8)`: parallel PNG decoding with the
bad-input checks, random scale 0.5-2.0, random 320x320 crop (mask padded with
the ignore label), horizontal flip, batches of 8, prefetch. It runs once per
thread-pool size (`options.threading.private_threadpool_size`: 1, 2, ... up
to the core count) and once with `cache=True` (decoded examples in memory,
so only augmentation is left per epoch), and prints the synthetic set's
generation rate.

    .venv/bin/python bench/data_pipeline.py                 # ../shared/data/camvid
    .venv/bin/python bench/data_pipeline.py --seconds 20 --threads 1 2 4

The benchmark's target: >= 150 images/s on a 2-core CPU machine.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import CAMVID_DIR  # noqa: E402


def measure(ds, seconds, batch_size, warmup=5):
    """Images/s of iterating `ds` for about `seconds` after `warmup` batches."""
    iterator = iter(ds)
    for _ in range(warmup):
        next(iterator)
    start, batches = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    return batches * batch_size / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=CAMVID_DIR)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=320)
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread-pool sizes to try (default: 1, 2, ... cores)")  # fmt: skip
    parser.add_argument("--no-cache-run", action="store_true", help="skip the cache=True run")
    args = parser.parse_args(argv)

    import numpy as np

    import fcn_keras
    from fcn_keras.data import generate_synthetic

    cores = os.cpu_count() or 1
    threads = args.threads or sorted({1, 2, cores} - {0})
    print(f"machine: {cores} CPU core(s); load average {os.getloadavg()[0]:.2f} at start")
    print(f"pipeline: camvid train, random scale 0.5-2.0, {args.crop_size}x{args.crop_size} "
          f"crops, flip, batch {args.batch_size}")  # fmt: skip

    # === Synthetic generation rate (single thread, NumPy) ===
    generate_synthetic(range(32))
    start = time.perf_counter()
    generate_synthetic(np.arange(2000))
    print(f"synthetic 96x96 generation: {2000 / (time.perf_counter() - start):.0f} images/s "
          "(1 thread)")

    if not os.path.isdir(args.data_dir):
        print(f"CamVid not found at {args.data_dir}; skipping the pipeline runs.")
        return 0

    def pipeline(num_threads, cache=False):
        return fcn_keras.load_dataset(
            "camvid", "train", data_dir=args.data_dir, batch_size=args.batch_size,
            crop_size=args.crop_size, repeat=True, seed=None, cache=cache,
            num_threads=num_threads)  # fmt: skip

    results = {}
    for n in threads:
        results[n] = measure(pipeline(n), args.seconds, args.batch_size)
        print(f"camvid train pipeline, {n} thread(s): {results[n]:.1f} images/s", flush=True)
    if len(threads) > 1:
        base = results[threads[0]]
        print("scaling vs 1 thread: " + ", ".join(
            f"{n} threads x{results[n] / base:.2f}" for n in threads[1:]))  # fmt: skip
    if not args.no_cache_run:
        n = max(threads)
        ds = pipeline(n, cache=True)
        for _ in ds.take(367 // args.batch_size + 2):  # fill the cache (one epoch)
            pass
        rate = measure(ds, args.seconds, args.batch_size)
        print(f"camvid train pipeline, cache=True (augmentation only), {n} thread(s): "
              f"{rate:.1f} images/s")
    print(f"load average {os.getloadavg()[0]:.2f} at end (other processes slow the figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
