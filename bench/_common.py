"""What the benchmark scripts share: the repository root and the shared data (`SHARED`, from
`$FCN_KERAS_SHARED` or `../shared`), the check that keeps outputs out of the repository, the
package's named choices read without importing TensorFlow, the CamVid training flags, the
writing of figures and tables (`scores_table`, `per_class_iou_table`), the arguments they share
(`positive_int`, `keras_file`, `named_model`, `existing_dir`, `add_figure_arguments`), timing (`CLOCK`, `timed`,
`median_round_robin`), and the dtype policy a loaded model computes under.

Scripts import only the package and this module, never each other.

Benchmarks write weights, artifacts and data-derived files (CamVid's licence
forbids redistributing it) only outside the repository, except where a script
allows a folder of figures (e.g. `docs/`). Scripts import this module the way
they import `bench/flops.py`, with the `bench` folder on `sys.path`:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import REPO, inside_repo_error

`import fcn_keras.<anything>` runs the package's `__init__`, which loads every
public module (TensorFlow among them) when a script, not the `fcn-keras`
command, imports it; `package_choices()` reads `fcn_keras/choices.py` (which
imports nothing) on its own, so a script's `--help` and argument errors answer
without TensorFlow.
"""

import argparse
import importlib.util
import os
import statistics
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _inside(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root + os.sep)


def inside_repo_error(path, flag="--out", what="outputs", allowed=None):
    """A message when `path` lies inside the repository (and not under `allowed`), else None.

    Links are resolved first, so a link into the repository counts as inside.

    Args:
        path: the output path a user gave.
        flag: the command-line flag it came from. Defaults to `"--out"`.
        what: what the script writes there, for the message. Defaults to `"outputs"`.
        allowed: a folder inside the repository that may hold it (e.g.
            `os.path.join(REPO, "docs")`), or None. Defaults to None.

    Returns:
        The error text (naming the flag, the path and what is expected), or
        None when the path is acceptable.

    Example:
    >>> inside_repo_error(os.path.join(REPO, "runs"), what="weights")
    "--out '.../runs' is inside the repository; weights must live outside it (e.g. /tmp/fcn_keras_runs/)."
    """
    if not _inside(path, REPO) or (allowed is not None and _inside(path, allowed)):
        return None
    where = f"outside it or under {os.path.relpath(allowed, REPO)}/" if allowed else "outside it"
    return (f"{flag} {path!r} is inside the repository; {what} must live {where} "
            "(e.g. /tmp/fcn_keras_runs/).")


def package_choices():
    """`fcn_keras/choices.py` of this repository, loaded on its own (without `import fcn_keras`).

    Returns:
        The module: `OPTIMIZERS`, `SCHEDULES`, `PRECISIONS`, `FORMATS` ... as
        the package defines them.

    Example:
    >>> package_choices().OPTIMIZERS
    ('sgd', 'adam', 'adamw')
    """
    path = os.path.join(REPO, "fcn_keras", "choices.py")
    spec = importlib.util.spec_from_file_location("_fcn_keras_choices", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The shared data (CamVid, VGG16 weights): `$FCN_KERAS_SHARED`, else `../shared` beside the checkout.
SHARED = os.environ.get("FCN_KERAS_SHARED") or os.path.join(os.path.dirname(REPO), "shared")
CAMVID_DIR = os.path.join(SHARED, "data", "camvid")
VGG16_WEIGHTS = os.path.join(SHARED, "weights", "vgg16_notop_imagenet.weights.h5")
# The repository folder that may hold published figures.
DOCS = os.path.join(REPO, "docs")
# CPU flags a benchmark names with its host (JSON records, the machine line of timings).
NOTABLE_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
                 "amx_int8", "amx_tile")  # fmt: skip


def log(message):
    """Print a progress line at once (benchmarks run for minutes)."""
    print(message, flush=True)


def pct(value):
    """A fraction as a percentage with two decimals; "n/a" for None or NaN."""
    return "n/a" if value is None or value != value else f"{100 * value:.2f}"


def scores_table(label, rows, widths, extra=()):
    """Markdown lines of a scores table: `label` | the four metrics | trimap mean IU per width | `extra`.

    Args:
        label: title of the first column (e.g. `"Configuration"`).
        rows: `(name, scores, extra cells)` triples, `scores` a `scores_row`
            dict (trimap widths as strings or ints).
        widths: the trimap band widths, in column order.
        extra: titles of further columns, whose cells each row brings. Defaults to none.

    Returns:
        A list of lines: the header, the alignment row, a line per row (`pct` percentages).

    Example:
    >>> scores_table("Model", [("fcn8s", row, ["0.21"])], (2, 4), extra=["s / image"])[0]
    '| Model | Pixel acc. | Mean acc. | Mean IU | f.w. IU | Trimap 2 px | Trimap 4 px | s / image |'
    """
    metrics = ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu")
    lines = ["| " + " | ".join([label, "Pixel acc.", "Mean acc.", "Mean IU", "f.w. IU",
                                *(f"Trimap {w} px" for w in widths), *extra]) + " |",
             "| --- |" + " ---: |" * (len(metrics) + len(widths) + len(extra))]  # fmt: skip
    for name, scores, cells in rows:
        trimap = {str(w): v for w, v in scores["trimap_mean_iu"].items()}
        values = [pct(scores[k]) for k in metrics] + [pct(trimap[str(w)]) for w in widths]
        lines.append("| " + " | ".join([str(name), *values, *map(str, cells)]) + " |")
    return lines


def per_class_iou_table(title, headers, rows):
    """Markdown lines of a per-class IoU table: a blank line, `title`, then one row per entry.

    Args:
        title: the line above the table (e.g. `"Per-class IoU (test):"`).
        headers: titles of the label columns before the classes (e.g. `["Model", "f"]`).
        rows: `(label cells, {class name: IoU or None})` pairs, one per table
            row; the classes are the first row's, in its order.

    Returns:
        A list of lines (IoU as `pct` percentages, "n/a" where undefined).

    Example:
    >>> per_class_iou_table("Per-class IoU (test):", ["Model"], [(["fcn8s"], {"Sky": 0.9, "Road": None})])[3:]
    ['| Model | Sky | Road |', '| --- | ---: | ---: |', '| fcn8s | 90.00 | n/a |']
    """
    names = list(rows[0][1]) if rows else []
    lines = ["", title, "", "| " + " | ".join([*headers, *names]) + " |",
             "|" + " --- |" * len(headers) + " ---: |" * len(names)]  # fmt: skip
    for cells, iou in rows:
        lines.append("| " + " | ".join([*map(str, cells), *(pct(iou[n]) for n in names)]) + " |")
    return lines


def scores_row(result, class_names, seconds=None):
    """A benchmark's table row from `evaluate_predictions` / `ConfusionAccumulator.result()`.

    Args:
        result: the scores (the four metrics, `per_class_iou`, `trimap_mean_iu`, `images`).
        class_names: names of the classes, in order.
        seconds: total seconds of the predictions, or None (then
            `result["predict_seconds"]` when there is one).

    Returns:
        dict: the four metrics, `per_class_iou` by class name, `trimap_mean_iu`
        by width (as a string), `images`, `seconds_per_image`.
    """
    seconds = result.get("predict_seconds") if seconds is None else seconds
    return {
        **{k: result[k] for k in ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu")},
        "per_class_iou": dict(zip(class_names, result["per_class_iou"])),
        "trimap_mean_iu": {str(w): v for w, v in result["trimap_mean_iu"].items()},
        "images": result["images"],
        "seconds_per_image": None if seconds is None else seconds / result["images"],
    }  # fmt: skip


def jsonable(value):
    """`value` with NumPy numbers as Python numbers and NaN (undefined IoU) as None (JSON null).

    Args:
        value: a result of nested dicts, lists and numbers.

    Returns:
        The same structure, JSON-serialisable (dict keys as strings).

    Example:
    >>> jsonable({2: np.float32(0.5), "iou": [float("nan")]})
    {'2': 0.5, 'iou': [None]}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def add_camvid_training_arguments(parser, choices):
    """Add the flags every CamVid training benchmark shares: data, start, crop and training settings.

    `--data-dir`, `--backbone-weights`, `--crop H W`, `--batch-size`, `--fc-units`,
    `--optimizer`, `--schedule`, `--mixed-precision`, `--jit-compile` and `--seed`, with the
    defaults the published CamVid runs use (../shared's CamVid and VGG16 weights, 352x480
    crops, batch 4, fc_units 1024, Adam with poly decay, `mixed_precision="auto"`, seed 0).

    Args:
        parser: an `argparse.ArgumentParser`.
        choices: the package's choices module (`package_choices()`).

    Returns:
        None; the parser gains the flags.

    Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_camvid_training_arguments(parser, package_choices())
    >>> parser.parse_args([]).batch_size
    4
    """
    parser.add_argument("--data-dir", default=CAMVID_DIR, help="CamVid in SegNet layout")
    parser.add_argument("--backbone-weights", default=VGG16_WEIGHTS,
                        help="VGG16 ImageNet weights (Keras notop layout)")  # fmt: skip
    parser.add_argument("--crop", type=int, nargs=2, default=(352, 480), metavar=("H", "W"),
                        help="training crop at full scale")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--fc-units", type=int, default=1024,
                        help="fc6/fc7 width (the paper: 4096; fc6/fc7 start untrained either way)")
    parser.add_argument("--head", default="paper", choices=("paper", "mobile"),
                        help="fc6 as the paper's 7x7 convolution or the mobile 3x3 one")
    parser.add_argument("--optimizer", default="adam", choices=choices.OPTIMIZERS)
    parser.add_argument("--schedule", default="poly", choices=choices.SCHEDULES,
                        help="learning-rate schedule")  # fmt: skip
    parser.add_argument("--mixed-precision", default="auto", choices=choices.PRECISIONS)
    parser.add_argument("--jit-compile", action="store_true", help="XLA train step")
    parser.add_argument("--seed", type=int, default=0)


def write_figures(result, markdown, json_path=None, markdown_path=None):
    """Write a benchmark's figures as JSON and its tables as Markdown, each where a path is given.

    Figures are published beside the code: a result naming a folder of the
    machine (`fcn_keras.results.is_machine_path`: an absolute or `~` path)
    is refused before anything is written.

    Args:
        result: the JSON-able figures (no weights, no paths).
        markdown: the tables, as text.
        json_path: where the JSON goes, or None. Defaults to None.
        markdown_path: where the Markdown goes, or None. Defaults to None.

    Returns:
        None. Missing folders are created.

    Raises:
        ValueError: `result` holds a machine path (the message names where).

    Example:
    >>> write_figures({"mean_iu": 0.61}, "| mean IU |\\n", "/tmp/figures.json")
    """
    from fcn_keras.files import write_json
    from fcn_keras.results import is_machine_path

    found = _machine_paths(result, is_machine_path)
    if found:
        raise ValueError(f"figures for {json_path or markdown_path!r} name folders of this machine "
                         f"({'; '.join(found[:5])}); publish file names or relative paths only.")  # fmt: skip
    if json_path:
        write_json(json_path, result)
    if markdown_path:
        os.makedirs(os.path.dirname(os.path.abspath(markdown_path)), exist_ok=True)
        with open(markdown_path, "w") as f:
            f.write(markdown)


def _machine_paths(value, is_machine_path, where="result"):
    """`"<key path> = <value>"` for every machine path in a JSON-able value."""
    if isinstance(value, dict):
        return [f for key, item in value.items()
                for f in _machine_paths(item, is_machine_path, f"{where}[{key!r}]")]  # fmt: skip
    if isinstance(value, (list, tuple)):
        return [f for i, item in enumerate(value)
                for f in _machine_paths(item, is_machine_path, f"{where}[{i}]")]  # fmt: skip
    return [f"{where} = {value!r}"] if is_machine_path(value) else []


def dtype_policy_of(model):
    """The dtype policy a loaded model's layers compute under (e.g. `"mixed_bfloat16"`).

    A functional model loaded from a `.keras` file reports `float32` as its
    own `dtype_policy` even when its layers were saved under
    `mixed_bfloat16`; the layers holding weights say what it computes in.
    Some layers keep float32 by design under a mixed policy (the large
    upsamplings, see `fcn_keras.upsampling`), so the policy most of them
    share is the model's.

    Args:
        model: a `keras.Model`.

    Returns:
        The policy name most layers with weights share (the model's own when
        none has weights).

    Example:
    >>> dtype_policy_of(keras.saving.load_model("runs/camvid/fcn8s/final.keras"))
    'mixed_bfloat16'
    """
    names = [layer.dtype_policy.name for layer in model.layers if layer.weights]
    return max(sorted(set(names)), key=names.count) if names else model.dtype_policy.name


def model_flops(model, height, width):
    """Return the forward-pass FLOPs of one `height` x `width` image through `model`.

    Counts the multiply-adds of every convolution, transposed convolution and
    dense layer as 2 FLOPs each (the convention of the FLOP/s figures in
    docs/benchmarks.md); element-wise layers (ReLU, pooling, adds, crop) are
    left out, as they are well under 1% of an FCN's work.

    Args:
        model: a functional `keras.Model` taking `(batch, H, W, 3)` images.
        height: int, image height in pixels.
        width: int, image width in pixels.

    Returns:
        int, FLOPs (2 per multiply-add) of the convolution-like layers.

    Example:
    >>> model_flops(fcn_keras.FCN8s(backbone_weights=None), 512, 512) / 1e9  # ~222
    """
    import keras

    counted = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)
    layers = [layer for layer in model.layers if isinstance(layer, counted)]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    in_probe = keras.Model(model.inputs, [layer.input for layer in layers])
    shape = (1, height, width, 3)
    outputs = probe.compute_output_shape(shape)
    inputs = in_probe.compute_output_shape(shape)
    total = 0
    for layer, out_shape, in_shape in zip(layers, outputs, inputs):
        kernel = layer.kernel.shape
        if isinstance(layer, keras.layers.Dense):
            total += 2 * kernel[0] * kernel[1]
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            # Every input position scatters a kh x kw x C_out patch per input channel.
            kh, kw, c_out, c_in = kernel
            total += 2 * kh * kw * c_in * c_out * in_shape[1] * in_shape[2]
        else:
            kh, kw, c_in, c_out = kernel
            total += 2 * kh * kw * c_in * c_out * out_shape[1] * out_shape[2]
    return int(total)


def check_figure_paths(parser, paths, allowed):
    """Stop with a parser error unless each given figure path has its suffix and lies outside the repo or under `allowed`.

    Args:
        parser: the script's `argparse.ArgumentParser` (its `error` exits with the message).
        paths: `(flag, path, suffix)` triples, e.g. `("--json", args.json, ".json")`; a None
            path is skipped.
        allowed: the folder inside the repository that may hold figures (e.g. docs/).

    Returns:
        None when every path is acceptable.

    Example:
    >>> check_figure_paths(parser, [("--json", "/tmp/figures.json", ".json")], DOCS)
    """
    for flag, path, suffix in paths:
        if path is None:
            continue
        if not path.lower().endswith(suffix):
            parser.error(f"{flag} {path!r}: expected a {suffix} file")
        error = inside_repo_error(path, flag=flag, what="figures", allowed=allowed)
        if error:
            parser.error(error)


# === Arguments every benchmark shares ===


def positive_int(text):
    """An `argparse` type: an int of at least 1 (counts, limits, runs, threads).

    Example:
    >>> parser.add_argument("--runs", type=positive_int, default=5)
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 1; received {text!r}")
    return value


def keras_file(text):
    """An `argparse` type: the path of an existing `.keras` model file.

    Example:
    >>> parser.add_argument("--model", type=keras_file, required=True)
    """
    if not text.endswith(".keras") or not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected an existing .keras file")
    return text


def existing_dir(text):
    """An `argparse` type: the path of an existing folder (e.g. `--data-dir`).

    Example:
    >>> parser.add_argument("--data-dir", type=existing_dir, default=CAMVID_DIR)
    """
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} does not exist (expected a folder)")
    return text


def named_model(text):
    """An `argparse` type: `"NAME=PATH"` -> `(NAME, PATH)`, PATH an existing `.keras` file.

    Example:
    >>> named_model("fcn8s=/tmp/runs/fcn8s/final.keras")
    ('fcn8s', '/tmp/runs/fcn8s/final.keras')
    """
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH (e.g. "
                                         "fcn8s=/tmp/runs/fcn8s/final.keras).")  # fmt: skip
    if not path.endswith(".keras") or not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"{text!r}: {path!r} is not an existing .keras file.")
    return name, path


def add_figure_arguments(parser):
    """Add `--json` (the figures) and `--markdown` (the tables); check them with `check_figure_paths`.

    Example:
    >>> add_figure_arguments(parser)
    >>> parser.parse_args(["--json", "docs/results/x.json"]).markdown is None
    True
    """
    parser.add_argument("--json", default=None, help="figures-only JSON (outside the repo or under docs/)")
    parser.add_argument("--markdown", default=None,
                        help="also write the Markdown tables here (outside the repo or under docs/)")


# === Timing (every benchmark's latency figures) ===

# The clock of every figure: wall time, or with --clock cpu the CPU time of the whole process
# (all threads), which another job on the machine disturbs far less.
CLOCK = [time.perf_counter]


def timed(fn):
    """Seconds `fn()` takes on `CLOCK[0]`."""
    clock = CLOCK[0]
    start = clock()
    fn()
    return clock() - start


def cpu_description():
    """'<model name>, N cores, <notable flags>': the machine line every figure carries."""
    from fcn_keras.distribute import cpu_flags, cpu_model_name

    flags = [f for f in NOTABLE_FLAGS if f in cpu_flags()]
    return f"{cpu_model_name()}, {os.cpu_count()} cores, flags: {' '.join(flags) or 'none of ' + ', '.join(NOTABLE_FLAGS)}"


def host_record():
    """The host a figure was measured on, for a benchmark's JSON.

    Returns:
        `{"cpu": model name, "cpu_count": cores, "cpu_flags": the `NOTABLE_FLAGS` it has, sorted}`.

    Example:
    >>> host_record()["cpu_count"]
    2
    """
    from fcn_keras.distribute import cpu_flags, cpu_model_name

    flags = cpu_flags()
    return {"cpu": cpu_model_name(), "cpu_count": os.cpu_count(),
            "cpu_flags": sorted(f for f in NOTABLE_FLAGS if f in flags)}  # fmt: skip


def median_round_robin(runners, repeats, warmup):
    """Median seconds of each runner, timed round-robin after `warmup` untimed calls each.

    Host speed drifts; interleaving the runners spreads the drift evenly over them.

    Args:
        runners: `{name: fn()}`.
        repeats: timed calls of each.
        warmup: untimed calls of each first (at least one).

    Returns:
        `{name: median seconds}` on `CLOCK[0]`.

    Example:
    >>> median_round_robin({"a": lambda: None}, repeats=3, warmup=1)["a"] >= 0
    True
    """
    for run in runners.values():
        for _ in range(max(warmup, 1)):
            run()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            times[name].append(timed(run))
    return {name: statistics.median(values) for name, values in times.items()}


def artifact_path(engine, model, work, size, calibration, reexport):
    """Export (or reuse) the artifact `engine` runs (see `artifact_runner`); returns its path."""
    from fcn_keras import export

    paths = {"savedmodel": "savedmodel", "savedmodel_bf16": "savedmodel",
             "savedmodel_plain": "savedmodel_plain", "onnx": "model.onnx", "onnx_int8": "model_int8.onnx",
             "tflite_fp32": "model_float32.tflite", "tflite_fp32_fixed": f"model_float32_{size}x{size}.tflite",
             "tflite_half": f"model_float32_{size}x{size}.tflite",
             "tflite_fp16": "model_float16.tflite", "tflite_int8": "model_int8.tflite"}  # fmt: skip
    path = os.path.join(work, paths[engine])
    if os.path.exists(path) and not reexport:
        return path
    start = time.perf_counter()
    if engine.startswith("savedmodel"):
        export.export_savedmodel(model, path, jit_compile=engine != "savedmodel_plain",
                                 bfloat16_signature=engine != "savedmodel_plain")  # fmt: skip
    elif engine.startswith("onnx"):
        quantization = "int8" if engine == "onnx_int8" else "float32"
        export.export_onnx(model, path, quantization=quantization, calibration_images=calibration)
    else:
        quantization = {"tflite_fp32": "float32", "tflite_fp32_fixed": "float32", "tflite_half": "float32",
                        "tflite_fp16": "float16", "tflite_int8": "int8"}[engine]  # fmt: skip
        fixed = engine in ("tflite_fp32_fixed", "tflite_half")
        export.export_tflite(model, path, quantization=quantization, representative_images=calibration,
                             input_size=(size, size) if fixed else None)  # fmt: skip
    print(f"  exported {engine} in {time.perf_counter() - start:.0f} s -> {path}", flush=True)
    return path


def artifact_runner(engine, model, work, threads, size, calibration, reexport=False):
    """A function image_batch -> logits for one of the package's engines, through `Predictor`.

    Args:
        engine: `keras`, `keras_plain`, `keras_bf16`, or an artifact engine
            (`onnx`, `onnx_int8`, `savedmodel`, `savedmodel_plain`,
            `savedmodel_bf16`, `tflite_fp32`, `tflite_fp32_fixed`, `tflite_half`,
            `tflite_fp16`, `tflite_int8`), exported into `work` when needed.
        model: the Keras model.
        work: folder of the exported artifacts (outside the repository).
        threads: engine threads.
        size: side of the square fixed-size TFLite files.
        calibration: calibration images for int8, or None.
        reexport: export again even when the artifact exists. Defaults to False.

    Returns:
        `run(batch) -> logits` as a NumPy array.

    Example:
    >>> run = artifact_runner("onnx", model, "/tmp/fcn_keras_runs/lat", 2, 512, None)
    """
    import numpy as np

    from fcn_keras import export

    if engine.startswith("keras"):
        predictor = export.Predictor(model, num_threads=threads,
                                     jit_compile=False if engine == "keras_plain" else None,
                                     precision="bfloat16" if engine == "keras_bf16" else "float32")  # fmt: skip
    else:
        path = artifact_path(engine, model, work, size, calibration, reexport)
        precision = {"savedmodel_bf16": "bfloat16", "tflite_half": "float16"}.get(engine, "float32")
        predictor = export.Predictor(path, num_threads=threads, precision=precision)
    return lambda batch: np.asarray(predictor.predict(batch))
