"""Benchmark: inference latency of every engine for FCN-8s, with the GFLOP/s achieved.

Engines: keras (tf.function, no XLA), keras_xla (jit_compile=True), savedmodel,
tflite_fp32 / tflite_fp16 / tflite_int8 (ai_edge_litert with XNNPACK),
onnx (onnxruntime, CPU). Each runs the same uint8 image batch; the figure is
the median of --repeats timed runs after --warmup runs, timed round-robin
across engines (host speed drifts; interleaving spreads it evenly). FLOPs are counted
analytically from the layers (bench/flops.py: 2 per multiply-add of every
convolution; ~222 GFLOP for the full FCN-8s at 512x512). The NumPy float32
matmul peak of this machine is measured first as the reference.

The benchmark's targets: every exported float32 engine within 1.25x of the fastest;
the fastest >= 85% of the matmul peak; int8 TFLite faster than float32 TFLite.

Usage:
    .venv/bin/python bench/latency.py                          # full FCN-8s, 512x512, all engines
    .venv/bin/python bench/latency.py --size 128 --fc-units 256 --engines onnx,tflite_fp32
Artifacts are cached in --work (default /tmp/fcn_keras_runs/latency_<fc>_<classes>).
"""

import argparse
import gc
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

ENGINES = ("keras", "keras_xla", "savedmodel", "tflite_fp32", "tflite_fp16", "tflite_int8", "onnx")
EXPORTED_FP32 = ("savedmodel", "tflite_fp32", "onnx")
FLOAT32 = ("keras", "keras_xla") + EXPORTED_FP32


def matmul_peak(n=2048, repeats=5):
    """Best float32 GFLOP/s of an n x n NumPy matmul (BLAS, all cores)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build_runner(engine, model, work, threads, calibration):
    """Return a function image_batch -> logits for `engine` (exporting its artifact if needed)."""
    import numpy as np

    from fcn_keras import export

    if engine in ("keras", "keras_xla"):
        import tensorflow as tf

        function = tf.function(lambda x: model(x, training=False), jit_compile=engine == "keras_xla")
        return lambda batch: function(tf.constant(batch)).numpy()
    paths = {"savedmodel": os.path.join(work, "savedmodel"), "onnx": os.path.join(work, "model.onnx"),
             "tflite_fp32": os.path.join(work, "model_float32.tflite"),
             "tflite_fp16": os.path.join(work, "model_float16.tflite"),
             "tflite_int8": os.path.join(work, "model_int8.tflite")}  # fmt: skip
    path = paths[engine]
    if not os.path.exists(path):
        start = time.perf_counter()
        if engine == "savedmodel":
            export.export_savedmodel(model, path)
        elif engine == "onnx":
            export.export_onnx(model, path)
        else:
            quantization = {"tflite_fp32": "float32", "tflite_fp16": "float16", "tflite_int8": "int8"}[engine]
            export.export_tflite(model, path, quantization=quantization,
                                 representative_images=calibration)  # fmt: skip
        print(f"  exported {engine} in {time.perf_counter() - start:.0f} s -> {path}", flush=True)
    predictor = export.Predictor(path, num_threads=threads)
    return lambda batch: np.asarray(predictor.predict(batch))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--size", type=int, default=512, help="square image side (default 512)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--calibration", type=int, default=4, help="int8 calibration images")
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise SystemExit(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    work = args.work or f"/tmp/fcn_keras_runs/latency_fc{args.fc_units}_c{args.num_classes}"
    os.makedirs(work, exist_ok=True)

    import keras
    import numpy as np
    import tensorflow as tf

    import fcn_keras
    from flops import model_flops

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    peak = matmul_peak()
    print(f"NumPy float32 matmul peak (2048^3, best of 5): {peak:.1f} GFLOP/s on {os.cpu_count()} cores")

    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=args.num_classes, fc_units=args.fc_units, backbone_weights=None)
    flops = model_flops(model, args.size, args.size) * args.batch
    print(f"{model.name} fc_units={args.fc_units}, {model.count_params():,} parameters; "
          f"{flops / 1e9:.1f} GFLOP per batch of {args.batch} at {args.size}x{args.size}")
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
    calibration = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
                   for _ in range(args.calibration)]  # fmt: skip

    # Every engine is built and warmed up first, then timed round-robin: on a shared
    # (virtualised) host the speed of the machine drifts by tens of percent over
    # minutes, and interleaving makes that drift hit every engine alike.
    runners = {}
    for engine in engines:
        runners[engine] = build_runner(engine, model, work, args.threads, calibration)
        for _ in range(args.warmup):
            runners[engine](batch)
    times = {engine: [] for engine in engines}
    for _ in range(args.repeats):
        for engine in engines:
            times[engine].append(_timed(lambda: runners[engine](batch)))
    results = {}
    for engine in engines:
        median = statistics.median(times[engine])
        results[engine] = median
        print(f"  {engine:12s} {median:7.3f} s  ({flops / median / 1e9:6.1f} GFLOP/s, "
              f"{100 * flops / median / 1e9 / peak:5.1f}% of matmul peak; runs "
              f"{', '.join(f'{t:.2f}' for t in times[engine])})", flush=True)  # fmt: skip
    del runners
    gc.collect()
    peak_after = matmul_peak()
    print(f"NumPy float32 matmul peak after the runs: {peak_after:.1f} GFLOP/s "
          f"(before: {peak:.1f}; the higher is the reference)")
    peak = max(peak, peak_after)
    print("\n| engine | latency (s) | GFLOP/s | % of matmul peak | vs fastest |")
    print("| --- | --- | --- | --- | --- |")
    fastest = min(results.values())
    for engine, seconds in results.items():
        print(f"| {engine} | {seconds:.3f} | {flops / seconds / 1e9:.1f} | "
              f"{100 * flops / seconds / 1e9 / peak:.0f}% | {seconds / fastest:.2f}x |")
    print(f"\nmatmul peak {peak:.1f} GFLOP/s; {flops / 1e9:.1f} GFLOP per run; "
          f"threads={args.threads}; median of {args.repeats}")
    fp32 = {e: results[e] for e in FLOAT32 if e in results}
    if fp32:  # the float32 targets compare float32 engines (int8 does less work per FLOP counted)
        fastest = min(fp32.values())
        print(f"fastest float32 engine: {min(fp32, key=fp32.get)} {fastest:.3f} s")
    exported = {e: results[e] for e in EXPORTED_FP32 if e in results}
    if exported:
        worst = max(exported.values()) / fastest
        print(f"target: exported fp32 engines within 1.25x of the fastest: worst {worst:.2f}x -> "
              f"{'met' if worst <= 1.25 else 'NOT met'}")
    best_rate = flops / fastest / 1e9
    print(f"target: fastest float32 >= 85% of matmul peak: {100 * best_rate / peak:.0f}% -> "
          f"{'met' if best_rate >= 0.85 * peak else 'NOT met'}")
    if "tflite_int8" in results and "tflite_fp32" in results:
        ratio = results["tflite_fp32"] / results["tflite_int8"]
        print(f"target: int8 TFLite faster than fp32 TFLite: {ratio:.2f}x -> "
              f"{'met' if ratio > 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
