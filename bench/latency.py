"""Benchmark: inference latency of every engine for FCN-8s, with its ratio to onnxruntime and to PyTorch.

Engines (each runs the same uint8 image batch and returns float32 logits):

    onnx               onnxruntime, float32 (`Predictor`'s session options)
    onnx_int8          onnxruntime, int8 QDQ (`export_onnx(quantization="int8")`)
    keras              the package's predict path: `Predictor(model)`, XLA-compiled
    keras_plain        the same with `jit_compile=False` (the plain TensorFlow graph)
    savedmodel         `export_savedmodel`'s `serving_default` (XLA-compiled)
    savedmodel_plain   a SavedModel exported with `jit_compile=False`
    tflite_fp32        TFLite float32, dynamic height/width (XNNPACK)
    tflite_fp32_fixed  TFLite float32 exported for the benchmark's size (`input_size=`)
    tflite_fp16 / tflite_int8
    tflite_half        the tflite_fp32_fixed file computed in IEEE half precision
                       (`Predictor(..., precision="float16")`: XNNPACK's forced FP16; CPUs with
                       AVX512-FP16 or ARMv8.2 FP16)
    keras_bf16         `Predictor(model, precision="bfloat16")`      (CPUs with bfloat16 units)
    savedmodel_bf16    the SavedModel's `serving_bfloat16` signature (CPUs with bfloat16 units)
    torch              PyTorch eager, the same network (`bench/torch_fcn.py`, same weights)

The figure is the median of --repeats timed runs after --warmup runs, timed
round-robin across engines (host speed drifts; interleaving spreads it
evenly); the first call of each engine is reported too (XLA compiles there,
once per input shape). FLOPs are counted analytically (bench/flops.py: 2
per multiply-add of every convolution; ~222 GFLOP for the full FCN-8s at
512x512). The NumPy float32 matmul peak of this machine (all --threads) is
measured before and after as the reference, with the same clock. `--clock
cpu` times the process's CPU time (all threads) instead of wall time: on a
machine another job is using, run it with `--threads 1` (spinning thread
pools count as CPU time), and read the figures as CPU seconds per image and
the matmul "peak" as one core's. The bfloat16 engines run where
the CPU reports bfloat16 units (`fcn_keras.distribute.auto_precision`) or
when named in --engines, tflite_half where it reports fp16 arithmetic
(`fcn_keras.distribute.fp16_arithmetic`) or when named; torch where it is installed (`pip install -e .[bench]`).

Ratios printed at the end (`ratio_lines`): the latency of every float32
engine the package runs or exports over onnxruntime's and over PyTorch
eager's; onnxruntime's share of the matmul peak; the speed-up of each int8,
bfloat16 and half-precision engine over its float32 counterpart.

`--per-layer` times every convolution of the model on its own instead
(TensorFlow plain and XLA, TFLite with XNNPACK, onnxruntime, PyTorch), at the
layer's input shape. `--tflite-levers` measures what can be asked of TFLite in
float32: the fixed-size file under three interpreter settings, and fc6 (the
7x7x512x4096 convolution) written four ways (one convolution, a convolution
per kernel row, a 1x1 convolution per tap, patches + one matrix product), each
next to onnxruntime.

Usage:
    .venv/bin/python bench/latency.py                 # full FCN-8s, 512x512, every engine
    .venv/bin/python bench/latency.py --quick         # 224x224, fc_units 256: a check in minutes
    .venv/bin/python bench/latency.py --per-layer     # per-convolution figures
    .venv/bin/python bench/latency.py --tflite-levers # TFLite float32: interpreter settings, fc6 forms
    .venv/bin/python bench/latency.py --engines onnx,keras,torch --size 256
Artifacts are cached in --work (default /tmp/fcn_keras_runs/latency_<fc>_<classes>_<size>);
--reexport writes them again.
"""

import argparse
import gc
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (CLOCK, REPO, artifact_path, artifact_runner, cpu_description,  # noqa: E402
                     inside_repo_error, median_round_robin, timed)

sys.path.insert(0, REPO)

ENGINES = ("onnx", "onnx_int8", "keras", "keras_plain", "savedmodel", "savedmodel_plain",
           "tflite_fp32", "tflite_fp32_fixed", "tflite_fp16", "tflite_int8", "keras_bf16",
           "savedmodel_bf16", "tflite_half", "torch")  # fmt: skip
# The float32 engines the package runs or exports: compared with onnxruntime and PyTorch at the end.
PACKAGE_FP32 = ("keras", "savedmodel", "tflite_fp32", "tflite_fp32_fixed", "onnx")
FLOAT32 = PACKAGE_FP32 + ("keras_plain", "savedmodel_plain", "torch")
BFLOAT16 = ("keras_bf16", "savedmodel_bf16")
FLOAT16 = ("tflite_half",)
# Each reduced-precision engine and its float32 counterpart: the speed-ups printed at the end.
SPEEDUPS = (("tflite_int8", "tflite_fp32"), ("onnx_int8", "onnx"), ("keras_bf16", "keras"),
            ("savedmodel_bf16", "savedmodel"), ("tflite_half", "tflite_fp32_fixed"))  # fmt: skip
def matmul_peak(n=2048, repeats=5):
    """Best float32 GFLOP/s of an n x n NumPy matmul (BLAS, all of its threads)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def build_runner(engine, model, work, threads, size, calibration, reexport=False):
    """Return a function image_batch -> logits for `engine` (PyTorch here, the package's engines
    through `_common.artifact_runner`)."""
    if engine != "torch":
        return artifact_runner(engine, model, work, threads, size, calibration, reexport)
    import torch
    from torch_fcn import from_keras

    torch.set_num_threads(threads)
    twin = from_keras(model)

    def run(batch):
        with torch.inference_mode():
            return twin(torch.from_numpy(batch)).numpy()

    return run


def _engines(text, has_bf16, has_torch, has_fp16=(True, "")):
    """The engines to run, and a line for each default one left out (and why).

    `has_bf16` and `has_fp16`: `(whether the CPU has bfloat16 / fp16 arithmetic, why)`.
    """
    named = text is not None
    engines = [e.strip() for e in (text or ",".join(ENGINES)).split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise SystemExit(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    notes = []
    if not named and not has_bf16[0]:
        engines = [e for e in engines if e not in BFLOAT16]
        notes.append(f"bfloat16 engines left out: {has_bf16[1]} (name them in --engines to run them)")
    if not named and not has_fp16[0]:
        engines = [e for e in engines if e not in FLOAT16]
        notes.append(f"tflite_half left out: {has_fp16[1]} (name it in --engines to run it)")
    if "torch" in engines and not has_torch:
        if named:
            raise SystemExit("--engines names torch, which is not installed: pip install -e .[bench]")
        engines.remove("torch")
        notes.append("torch left out: not installed (pip install -e .[bench])")
    return engines, notes


def _ratio(results, engine, reference):
    if engine not in results or reference not in results:
        return "-"
    return f"{results[engine] / results[reference]:.2f}x"


def ratio_lines(results, flops, peak):
    """The ratios printed under the latency table: figures, no judgement.

    Args:
        results: median latency in seconds per engine name (any subset of `ENGINES`).
        flops: floating-point operations of one run (`bench/flops.py`).
        peak: the NumPy float32 matmul peak in GFLOP/s, the same clock as `results`.

    Returns:
        A list of lines: each float32 engine of the package over onnxruntime
        (`"keras / onnx: 1.23x"`), onnxruntime's share of `peak`, each float32
        engine of the package over PyTorch eager, and each reduced-precision
        engine's speed-up over its float32 counterpart (`"tflite_int8 speed-up
        over tflite_fp32: 10.80x"`); a line only where both engines ran.

    Example:
    >>> ratio_lines({"onnx": 0.7, "keras": 0.86}, 222.6e9, 342.6)
    ['keras / onnx: 1.23x', 'onnx: 318.0 GFLOP/s, 93% of the matmul peak']
    """
    lines = []
    if "onnx" in results:
        for engine in [e for e in PACKAGE_FP32 if e in results and e != "onnx"]:
            lines.append(f"{engine} / onnx: {results[engine] / results['onnx']:.2f}x")
        rate = flops / results["onnx"] / 1e9
        lines.append(f"onnx: {rate:.1f} GFLOP/s, {100 * rate / peak:.0f}% of the matmul peak")
    if "torch" in results:
        for engine in [e for e in PACKAGE_FP32 if e in results]:
            lines.append(f"{engine} / torch: {results[engine] / results['torch']:.2f}x")
    for fast, slow in SPEEDUPS:
        if fast in results and slow in results:
            lines.append(f"{fast} speed-up over {slow}: {results[slow] / results[fast]:.2f}x")
    return lines


def run_engines(args, model, flops, work):
    """Time every engine round-robin; print the table and the ratios (`ratio_lines`)."""
    import importlib.util

    import numpy as np

    from fcn_keras.distribute import auto_precision, fp16_arithmetic

    precision, reason = auto_precision()
    engines, notes = _engines(args.engines, (precision == "mixed_bfloat16", reason),
                              importlib.util.find_spec("torch") is not None, fp16_arithmetic())  # fmt: skip
    for note in notes:
        print(note)
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
    calibration = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
                   for _ in range(args.calibration)]  # fmt: skip

    peak = matmul_peak()
    print(f"NumPy float32 matmul peak (2048^3, best of 5): {peak:.1f} GFLOP/s")
    # Every engine is built and warmed up first, then timed round-robin: on a shared
    # (virtualised) host the speed of the machine drifts by tens of percent over
    # minutes, and interleaving makes that drift hit every engine alike.
    runners, first, reference = {}, {}, None
    for engine in engines:
        run = runners[engine] = build_runner(engine, model, work, args.threads, args.size, calibration,
                                             args.reexport)  # fmt: skip
        first[engine] = timed(lambda: run(batch))
        out = run(batch)
        for _ in range(args.warmup - 1):
            run(batch)
        if reference is None:
            reference = out
        agreement = 100 * np.mean(out.argmax(-1) == reference.argmax(-1))
        print(f"  {engine:17s} first call {first[engine]:6.2f} s; argmax agreement with {engines[0]} "
              f"{agreement:.2f}%", flush=True)  # fmt: skip
    times = {engine: [] for engine in engines}
    for _ in range(args.repeats):
        for engine in engines:
            times[engine].append(timed(lambda run=runners[engine]: run(batch)))
    results = {engine: statistics.median(times[engine]) for engine in engines}
    del runners
    gc.collect()
    peak_after = matmul_peak()
    print(f"NumPy float32 matmul peak after the runs: {peak_after:.1f} GFLOP/s "
          f"(before: {peak:.1f}; the higher is the reference)")
    peak = max(peak, peak_after)

    print(f"\n{cpu_description()}; threads={args.threads}; {flops / 1e9:.1f} GFLOP per run; "
          f"median of {args.repeats}; {args.clock} clock\n")
    print("| engine | latency (s) | first call (s) | GFLOP/s | % of matmul peak | vs onnxruntime | vs PyTorch | runs (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for engine, seconds in results.items():
        rate = flops / seconds / 1e9
        print(f"| {engine} | {seconds:.3f} | {first[engine]:.2f} | {rate:.1f} | {100 * rate / peak:.0f}% | "
              f"{_ratio(results, engine, 'onnx')} | {_ratio(results, engine, 'torch')} | "
              f"{', '.join(f'{t:.3f}' for t in times[engine])} |")  # fmt: skip
    print(f"\nmatmul peak {peak:.1f} GFLOP/s (int8 and bfloat16 rates are float32-equivalent)")

    for line in ratio_lines(results, flops, peak):
        print(line)
    return results


# === Per-layer mode ===


def _onnx_conv(kernel, bias, relu, threads):
    """An onnxruntime session running one NCHW convolution ("same" padding) with these weights."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    kh, kw, _, _ = kernel.shape
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y" if not relu else "c"],
                              pads=[(kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2])]  # fmt: skip
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(kernel.transpose(3, 2, 0, 1).copy(), "w"), numpy_helper.from_array(bias, "b")],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _tflite_function(fn, x, threads, **interpreter_options):
    """A call running `fn` (TF ops, constants inside) on `x` in the TFLite interpreter, float32.

    Weights are constants of the converted graph, as in an exported model (XNNPACK packs them
    once; weights read from variables would be repacked on every call). Builtin ops only.
    """
    import tensorflow as tf
    from ai_edge_litert import interpreter as litert

    function = tf.function(fn, autograph=False, input_signature=[tf.TensorSpec(x.shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = litert.Interpreter(model_content=converter.convert(), num_threads=threads,
                                     **interpreter_options)  # fmt: skip
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]

    def run():
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output)

    return run


def _tflite_conv(kernel, bias, relu, x, threads):
    """A call running one "same" convolution on `x` in the TFLite interpreter (XNNPACK, float32)."""
    import tensorflow as tf

    def conv(t):
        y = tf.nn.conv2d(t, tf.constant(kernel), 1, "SAME") + tf.constant(bias)
        return tf.nn.relu(y) if relu else y

    return _tflite_function(conv, x, threads)


def run_per_layer(args, model):
    """Time every Conv2D of `model` on its own at its input shape in each runtime; print a table."""
    import importlib.util

    import keras
    import numpy as np
    import tensorflow as tf

    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch:
        import torch

        torch.set_num_threads(args.threads)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
             and not isinstance(layer, keras.layers.Conv2DTranspose) and layer.name != "preprocess"]  # fmt: skip
    probe = keras.Model(model.inputs, [layer.input for layer in convs])
    shapes = probe.compute_output_shape((1, args.size, args.size, 3))
    print(f"{cpu_description()}; threads={args.threads}; {model.name} fc_units={args.fc_units} at "
          f"{args.size}x{args.size}; median of {args.repeats} per cell; {args.clock} clock\n")
    columns = ["tf_plain", "tf_xla", "tflite", "onnxruntime"] + (["torch"] if has_torch else [])
    print("| layer | input | GFLOP | " + " | ".join(f"{c} (s)" for c in columns) + " | tf_plain / onnxruntime | tflite / onnxruntime |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in columns) + " | --- | --- |")
    totals = {c: 0.0 for c in columns}
    rng = np.random.default_rng(0)
    for layer, shape in zip(convs, shapes):
        shape = (args.batch,) + tuple(shape[1:])
        x = rng.standard_normal(shape).astype(np.float32)
        kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
        relu = layer.activation is keras.activations.relu
        gflop = 2 * np.prod(kernel.shape) * shape[1] * shape[2] * shape[0] / 1e9
        runners = {}
        for name, jit in (("tf_plain", False), ("tf_xla", True)):
            function = tf.function(lambda t: layer(t), jit_compile=jit, autograph=False)
            runners[name] = (lambda f: lambda: f(tf.constant(x)).numpy())(function)
        runners["tflite"] = _tflite_conv(kernel, bias, relu, x, args.threads)
        session = _onnx_conv(kernel, bias, relu, args.threads)
        x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        runners["onnxruntime"] = lambda: session.run(None, {"x": x_nchw})
        if has_torch:
            weight, tbias = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias)
            tx = torch.from_numpy(x_nchw)

            def torch_conv(weight=weight, tbias=tbias, tx=tx, relu=relu):
                with torch.inference_mode():
                    y = torch.nn.functional.conv2d(tx, weight, tbias, padding="same")
                    return torch.relu(y) if relu else y

            runners["torch"] = torch_conv
        row = {}
        for name in columns:
            for _ in range(max(args.warmup, 1)):
                runners[name]()
            row[name] = statistics.median(timed(runners[name]) for _ in range(args.repeats))
            totals[name] += row[name]
        print(f"| {layer.name} | {shape[1]}x{shape[2]}x{shape[3]} | {gflop:.1f} | "
              + " | ".join(f"{row[c]:.4f}" for c in columns)
              + f" | {row['tf_plain'] / row['onnxruntime']:.2f}x"
              + f" | {row['tflite'] / row['onnxruntime']:.2f}x |", flush=True)  # fmt: skip
    print("| all convolutions | | | " + " | ".join(f"{totals[c]:.3f}" for c in columns)
          + f" | {totals['tf_plain'] / totals['onnxruntime']:.2f}x"
          + f" | {totals['tflite'] / totals['onnxruntime']:.2f}x |")  # fmt: skip


# === TFLite float32 levers ===


def _convolution_forms(kernel, bias):
    """fc6's "same" convolution (stride 1, bias, ReLU) written four ways with the same weights.

    conv: one CONV_2D; rows: one 1 x kw convolution per kernel row over the row-shifted
    padded input, summed (GEMMs with K = kw * cin); pointwise: one 1x1 convolution per
    kernel tap (K = cin); patches: the kh * kw shifted inputs concatenated on channels and
    one matrix product (im2col, FULLY_CONNECTED).
    """
    import tensorflow as tf

    kh, kw, cin, cout = kernel.shape
    k, b = tf.constant(kernel), tf.constant(bias)

    def pad(t):
        return tf.pad(t, [[0, 0], [(kh - 1) // 2, kh // 2], [(kw - 1) // 2, kw // 2], [0, 0]])

    def conv(t):
        return tf.nn.relu(tf.nn.conv2d(t, k, 1, "SAME") + b)

    def rows(t):
        p, h = pad(t), t.shape[1]
        return tf.nn.relu(tf.add_n([tf.nn.conv2d(p[:, dy:dy + h], k[dy:dy + 1], 1, "VALID")
                                    for dy in range(kh)]) + b)  # fmt: skip

    def pointwise(t):
        p, h, w = pad(t), t.shape[1], t.shape[2]
        return tf.nn.relu(tf.add_n([tf.nn.conv2d(p[:, dy:dy + h, dx:dx + w], k[dy:dy + 1, dx:dx + 1], 1, "VALID")
                                    for dy in range(kh) for dx in range(kw)]) + b)  # fmt: skip

    def patches(t):
        p, n, h, w = pad(t), t.shape[0], t.shape[1], t.shape[2]
        columns = tf.concat([p[:, dy:dy + h, dx:dx + w] for dy in range(kh) for dx in range(kw)], axis=-1)
        y = tf.matmul(tf.reshape(columns, (n * h * w, kh * kw * cin)), tf.reshape(k, (kh * kw * cin, cout)))
        return tf.nn.relu(tf.reshape(y, (n, h, w, cout)) + b)

    return {"conv": conv, "rows": rows, "pointwise": pointwise, "patches": patches}


def run_tflite_levers(args, model, work):
    """What the TFLite interpreter can be asked to do faster in float32, next to onnxruntime.

    1. The fixed-size float32 file (`tflite_fp32_fixed`) under three interpreter settings:
       XNNPACK as shipped, XNNPACK with its latest features, TFLite's builtin kernels alone.
    2. fc6 alone at its input shape, in TFLite written four ways (`_convolution_forms`),
       and onnxruntime's convolution with the same weights.
    """
    import keras
    import numpy as np
    from ai_edge_litert import interpreter as litert

    print(f"{cpu_description()}; threads={args.threads}; {model.name} fc_units={args.fc_units} at "
          f"{args.size}x{args.size}; median of {args.repeats}, round-robin; {args.clock} clock\n")  # fmt: skip
    batch = np.random.default_rng(0).integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
    path = artifact_path("tflite_fp32_fixed", model, work, args.size, None, args.reexport)
    settings = {
        "XNNPACK (default)": {},
        "XNNPACK, latest features": {"experimental_default_delegate_latest_features": True},
        "builtin kernels, no XNNPACK": {
            "experimental_op_resolver_type": litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES},
    }  # fmt: skip
    runners = {"onnxruntime": (lambda run: lambda: run(batch))(
        build_runner("onnx", model, work, args.threads, args.size, None, args.reexport))}
    for name, options in settings.items():
        interpreter = litert.Interpreter(model_path=path, num_threads=args.threads, **options)
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]
        logits = [d["index"] for d in interpreter.get_output_details() if len(d["shape"]) == 4][0]

        def run(interpreter=interpreter, index=index, logits=logits):
            interpreter.set_tensor(index, batch)
            interpreter.invoke()
            return interpreter.get_tensor(logits)

        runners[name] = run
    reference = runners["onnxruntime"]().argmax(-1)
    for name in settings:
        agreement = 100 * np.mean(runners[name]().argmax(-1) == reference)
        print(f"  {name}: argmax agreement with onnxruntime {agreement:.2f}%", flush=True)
    results = median_round_robin(runners, args.repeats, args.warmup)
    print(f"\nThe whole model, TFLite float32 fixed {args.size}x{args.size} ({os.path.basename(path)}):\n")
    print("| engine | latency (s) | vs onnxruntime |\n| --- | --- | --- |")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.3f} | {seconds / results['onnxruntime']:.2f}x |")

    layer = model.get_layer("fc6")
    shape = keras.Model(model.inputs, layer.input).compute_output_shape((1, args.size, args.size, 3))
    x = np.random.default_rng(1).standard_normal((args.batch,) + tuple(shape[1:])).astype(np.float32)
    kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
    gflop = 2 * np.prod(kernel.shape) * np.prod(x.shape[:3]) / 1e9
    session = _onnx_conv(kernel, bias, True, args.threads)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    runners = {"onnxruntime Conv": lambda: session.run(None, {"x": x_nchw})[0].transpose(0, 2, 3, 1)}
    for form, fn in _convolution_forms(kernel, bias).items():
        start = time.perf_counter()
        runners[f"TFLite {form}"] = _tflite_function(fn, x, args.threads)
        print(f"  TFLite {form}: converted in {time.perf_counter() - start:.0f} s", flush=True)
    reference = runners["onnxruntime Conv"]()
    scale = float(np.abs(reference).max()) or 1.0
    errors = {name: float(np.abs(run() - reference).max()) / scale for name, run in runners.items()}
    results = median_round_robin(runners, args.repeats, args.warmup)
    print(f"\nfc6 alone ({kernel.shape[0]}x{kernel.shape[1]}x{kernel.shape[2]}x{kernel.shape[3]} on "
          f"{x.shape[1]}x{x.shape[2]}x{x.shape[3]}, {gflop:.1f} GFLOP), float32:\n")  # fmt: skip
    print("| form | latency (s) | GFLOP/s | vs onnxruntime | max error / logit scale |\n| --- | --- | --- | --- | --- |")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.4f} | {gflop / seconds:.1f} | {seconds / results['onnxruntime Conv']:.2f}x | "
              f"{errors[name]:.1e} |")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=None, help=f"comma-separated subset of {', '.join(ENGINES)}")
    parser.add_argument("--quick", action="store_true",
                        help="a check in minutes: 224x224, fc_units 256, 3 repeats, 2 calibration images")  # fmt: skip
    parser.add_argument("--per-layer", action="store_true", help="time each convolution on its own")
    parser.add_argument("--tflite-levers", action="store_true",
                        help="TFLite float32: interpreter settings and fc6 written four ways, vs onnxruntime")  # fmt: skip
    parser.add_argument("--size", type=int, default=None, help="square image side (default 512; --quick 224)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--fc-units", type=int, default=None, help="fc6/fc7 width (default 4096; --quick 256)")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 5; --quick 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs after the first call (default 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--calibration", type=int, default=None,
                        help="int8 calibration images (default 4; --quick 2)")  # fmt: skip
    parser.add_argument("--work", default=None, help="artifact cache folder (outside the repository)")
    parser.add_argument("--reexport", action="store_true", help="export the artifacts again")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default), or the process's CPU time (use with --threads 1 "
                             "on a busy machine)")  # fmt: skip
    args = parser.parse_args()
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    quick = args.quick
    args.size = args.size or (224 if quick else 512)
    args.fc_units = args.fc_units or (256 if quick else 4096)
    args.repeats = args.repeats or (3 if quick else 5)
    args.calibration = args.calibration or (2 if quick else 4)
    work = args.work or f"/tmp/fcn_keras_runs/latency_fc{args.fc_units}_c{args.num_classes}_s{args.size}"
    error = inside_repo_error(work, "--work", "artifacts")
    if error:
        raise SystemExit(error)
    os.makedirs(work, exist_ok=True)

    import keras
    import tensorflow as tf

    import fcn_keras
    from _common import model_flops

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=args.num_classes, fc_units=args.fc_units, backbone_weights=None)
    # The score layers start at zero; random ones make the logits (and the argmax check) mean something.
    import numpy as np

    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.name.startswith("score_"):
            layer.set_weights([rng.normal(0, 0.01, w.shape).astype("float32") for w in layer.get_weights()])
    flops = model_flops(model, args.size, args.size) * args.batch
    print(f"{model.name} fc_units={args.fc_units}, {model.count_params():,} parameters; "
          f"{flops / 1e9:.1f} GFLOP per batch of {args.batch} at {args.size}x{args.size}")
    if args.per_layer:
        run_per_layer(args, model)
    elif args.tflite_levers:
        run_tflite_levers(args, model, work)
    else:
        run_engines(args, model, flops, work)


if __name__ == "__main__":
    main()
