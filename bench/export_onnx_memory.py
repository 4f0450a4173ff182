"""Benchmark: peak memory and time of exporting the full FCN-8s (134M parameters).

Builds `FCN8s(num_classes=21, fc_units=4096, backbone_weights=None)` (score
layers given random non-zero weights so every branch matters), exports it with
`export.export_onnx` (and optionally SavedModel / TFLite float32), then runs
the ONNX file in onnxruntime and compares its logits with Keras on a couple of
image sizes (one odd). Prints peak RSS (`fcn_keras.memory.peak_resident_bytes`: the
process's high-water mark, so each format is measured in its own process with
--format), wall time and max |delta logit|.

The benchmark's targets: ONNX export <= 6 GB peak RSS and <= 3 minutes; outputs
matching Keras within float32 tolerance.

`--naive` instead profiles the frozen path (`tf2onnx.convert.from_keras`) stage
by stage (RSS sampled every 20 ms): run it on a reduced model only
(`--fc-units 512`); the full model passes 24 GB that way.

Usage:
    .venv/bin/python bench/export_onnx_memory.py                  # ONNX
    .venv/bin/python bench/export_onnx_memory.py --format savedmodel
    .venv/bin/python bench/export_onnx_memory.py --format tflite
    .venv/bin/python bench/export_onnx_memory.py --fc-units 256   # quick check
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_rss_gb():
    """This process's resident set high-water mark in GiB (`fcn_keras.memory.peak_resident_bytes`)."""
    from fcn_keras.memory import peak_resident_bytes

    return peak_resident_bytes() / 2**30


def current_rss_gb():
    """This process's resident set now in GiB, NaN where /proc is absent (`fcn_keras.memory.resident_bytes`)."""
    from fcn_keras.memory import resident_bytes

    size = resident_bytes()
    return float("nan") if size is None else size / 2**30


class StageProfiler:
    """Sample VmRSS in a thread and keep the peak reached during each labelled stage."""

    def __init__(self):
        import threading

        self.stage, self.peaks, self.order = "start", {}, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.is_set():
            rss = current_rss_gb()
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), rss)
            self._stop.wait(0.02)

    def wrap(self, owner, name, label):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            outer, self.stage = self.stage, label
            if label not in self.order:
                self.order.append(label)
            try:
                return original(*args, **kwargs)
            finally:
                self.stage = outer

        setattr(owner, name, wrapped)

    def stop(self):
        self._stop.set()
        self._thread.join()


def profile_naive(model, opset):
    """Convert with tf2onnx.convert.from_keras (weights frozen) and print each stage's peak RSS."""
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import convert, optimizer, tf_loader

    profiler = StageProfiler()
    profiler.wrap(tf_loader, "from_trackable", "freeze + grappler (tf_loader.from_trackable)")
    profiler.wrap(tf_loader, "tf_optimize", "grappler constant folding (tf_optimize)")
    profiler.wrap(convert, "process_tf_graph", "GraphDef -> tf2onnx graph (process_tf_graph)")
    profiler.wrap(optimizer, "optimize_graph", "tf2onnx optimizers (optimize_graph)")
    profiler.wrap(tf2onnx.graph.Graph, "make_model", "ONNX ModelProto (make_model)")
    profiler.wrap(tf2onnx.graph.Graph, "update_proto", "  tf2onnx nodes -> protos (update_proto)")
    profiler.wrap(tf2onnx.graph.helper, "make_graph", "  onnx.helper.make_graph (copies every tensor)")
    profiler.wrap(tf2onnx.graph.helper, "make_model", "  onnx.helper.make_model (copies the graph)")
    spec = [tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")]
    t0 = time.perf_counter()
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    elapsed = time.perf_counter() - t0
    profiler.stop()
    weights_gb = sum(int(np.prod(w.shape)) * 4 for w in model.weights) / 2**30
    print(f"naive from_keras: {elapsed:.1f} s, peak RSS {peak_rss_gb():.2f} GB for {weights_gb:.3f} GB "
          f"of weights; proto {proto.ByteSize() / 2**30:.3f} GB")
    for label in ["start"] + profiler.order:
        print(f"  {label:55s} peak RSS {profiler.peaks.get(label, float('nan')):.2f} GB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("onnx", "savedmodel", "tflite"), default="onnx")
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--sizes", default="224x224,181x243", help="comparison sizes HxW")
    parser.add_argument("--out", default=None, help="directory for the artifact (default: temp)")
    parser.add_argument("--naive", action="store_true",
                        help="profile tf2onnx.convert.from_keras stage by stage instead (small models!)")
    args = parser.parse_args()

    global np
    import numpy as np

    from fcn_keras import export
    import fcn_keras

    t0 = time.perf_counter()
    model = fcn_keras.FCN8s(num_classes=args.num_classes, fc_units=args.fc_units, backbone_weights=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.name.startswith("score_"):
            layer.set_weights([rng.normal(0, 0.01, w.shape).astype("float32") for w in layer.get_weights()])
    build_s = time.perf_counter() - t0
    print(f"model: {model.name}, {model.count_params():,} parameters, fc_units={args.fc_units}; "
          f"built in {build_s:.1f} s; RSS {current_rss_gb():.2f} GB (peak {peak_rss_gb():.2f} GB)")
    if args.naive:
        profile_naive(model, args.opset)
        return 0

    out_dir = args.out or tempfile.mkdtemp(prefix="fcn_keras_export_bench_")
    path = os.path.join(out_dir, {"onnx": "fcn8s.onnx", "savedmodel": "fcn8s_savedmodel",
                                  "tflite": "fcn8s.tflite"}[args.format])  # fmt: skip
    before = peak_rss_gb()
    t0 = time.perf_counter()
    if args.format == "onnx":
        export.export_onnx(model, path, opset=args.opset)
    elif args.format == "savedmodel":
        export.export_savedmodel(model, path)
    else:
        export.export_tflite(model, path)
    export_s = time.perf_counter() - t0
    export_peak = peak_rss_gb()
    size = (sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
            if os.path.isdir(path) else os.path.getsize(path))  # fmt: skip
    print(f"{args.format} export: {export_s:.1f} s wall, peak RSS {export_peak:.2f} GB "
          f"(before export {before:.2f} GB), artifact {size / 2**20:.0f} MiB at {path}")

    t0 = time.perf_counter()
    predictor = export.Predictor(path)
    worst = 0.0
    for text in args.sizes.split(","):
        height, width = (int(v) for v in text.split("x"))
        image = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        reference = np.asarray(model(image, training=False))
        logits = predictor.predict(image)
        delta = float(np.abs(logits - reference).max())
        scale = float(np.abs(reference).max())
        agreement = float(np.mean(logits.argmax(-1) == reference.argmax(-1)))
        worst = max(worst, delta / scale)
        print(f"  {height}x{width}: max |delta logit| {delta:.3g} (logit scale {scale:.3g}, "
              f"relative {delta / scale:.2g}), argmax agreement {100 * agreement:.4f}%")
    print(f"check in {time.perf_counter() - t0:.1f} s; process peak RSS incl. runtime "
          f"{peak_rss_gb():.2f} GB")
    ok = export_peak <= 6.0 and export_s <= 180 and worst <= 1e-4
    print(f"RESULT {args.format}: export {export_s:.1f} s, peak RSS {export_peak:.2f} GB, "
          f"max relative delta {worst:.2g} -> {'within' if ok else 'OUTSIDE'} targets "
          "(<= 6 GB, <= 180 s, <= 1e-4)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
