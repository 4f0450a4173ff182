"""Benchmark: does shift-and-stitch help a trained CamVid FCN-32s, still help an FCN-8s, and at what cost?

Shift-and-stitch (`fcn_keras.shift_and_stitch`) makes a trained FCN's coarse
score map `f` times denser without retraining: the network's tail runs on the
`f x f` shifted inputs and the copies are interleaved, and the dense map is
upsampled bilinearly to the image in place of the model's own upsampling.
The paper (Section 3.2) tried it and kept skip connections instead, finding
the in-network upsampling "more effective and efficient"; this script measures
both sides of that choice on CamVid for the models given with `--models`:

1. Accuracy: `fcn_keras.evaluate` on the split (test by default; full
   480x360 labels, void ignored, batch 1, `shift_and_stitch=f`), for every
   factor of `--factors`; `f = 1` is the model's own output (its own
   upsampling). Pixel accuracy, mean accuracy, mean IU, f.w. IU, per-class
   IoU and the trimap mean IU in bands of 2, 4, 8 and 16 px around class
   boundaries, and the wall time of the evaluation. A model trained at reduced
   scale is evaluated at the input scale it carries (its logits resized
   bilinearly back to full size), as `fcn_keras.evaluate` does.
2. Cost, each configuration in a fresh process (`multiprocessing` spawn, one
   at a time, so no measurement inherits another's allocations): the median
   latency of one 480x360 forward of the split's first image to full-size
   logits (`fcn_keras.shift_and_stitch.logits_function`, the forward
   `evaluate` scores, after warm-up calls) for the plain model and for
   `ShiftAndStitch(model, f)`, and their ratio; the same for the coarse score
   map alone, before any upsampling (the tail of the network runs `f^2`
   times: the paper's cost argument; the full forward's ratio also holds the
   model's own upsampling against bilinear resizing, whose cost depends on
   the kernels, e.g. a `Conv2DTranspose` computed in bfloat16 on a CPU); and
   the peak memory of the first forward, tracing included
   (`fcn_keras.memory.call_peak`: the resident set high-water mark, reset
   just before the call so that loading the model cannot hide it, over the
   resident set then; where the mark cannot be reset, the JSON says so).

Models keep the dtype policy they were saved with (a model trained under
`mixed_bfloat16` computes in bfloat16 here too); the JSON records it with the
host's CPU (model name and notable flags) and the TensorFlow and Keras
versions. Figures only (no paths) go to `--json`, the Markdown tables to
stdout and `--markdown`.

Full run (FCN-32s and FCN-8s, f = 1, 2, 4, the 233 test images; the cost of
each configuration is measured first and the plan printed with an estimate
from it; FCN-8s at f = 4 runs everything after block 1 sixteen times, so it
dominates):

    .venv/bin/python bench/shift_and_stitch_camvid.py \
        --models fcn32s=~/fcn_runs/camvid/fcn32s/final.keras \
                 fcn8s=~/fcn_runs/camvid/fcn8s/final.keras \
        --factors 1,2,4 --json docs/results/shift_and_stitch_camvid.json \
        --markdown docs/results/shift_and_stitch_camvid.md
    (defaults: --split test, --data-dir ../shared/data/camvid, --runs 5)

Quick check (2 test images, 1 timed run, f = 1 and 2):

    .venv/bin/python bench/shift_and_stitch_camvid.py --models fcn32s=... fcn8s=... \
        --limit 2 --runs 1 --factors 1,2

Reference: Long, Shelhamer, Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015, Section 3.2 "Shift-and-stitch is filter
rarefaction" (and Section 4.2, where skip layers are chosen instead).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import (CAMVID_DIR, DOCS, add_figure_arguments, check_figure_paths, dtype_policy_of,  # noqa: E402
                     existing_dir, host_record, jsonable, log, median_round_robin, named_model, pct,
                     per_class_iou_table, positive_int, write_figures)

TRIMAP_WIDTHS = (2, 4, 8, 16)
DEFAULT_FACTORS = "1,2,4"
MIB = 2**20


# === Arguments ===


def parse_factors(text):
    """`"1, 2,4"` -> `(1, 2, 4)`: distinct powers of 2, in the order given (an `argparse` type).

    Whether a factor divides a model's coarse stride is checked once the model is loaded.
    """
    factors = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            value = int(item)
        except ValueError:
            value = 0
        if value < 1 or value & (value - 1):
            raise argparse.ArgumentTypeError(f"{text!r}: {item!r} is not a power of 2 (1, 2, 4, 8, ...).")
        if value not in factors:
            factors.append(value)
    if not factors:
        raise argparse.ArgumentTypeError(f"{text!r} names no factor.")
    return tuple(factors)


# === Cost, in a fresh process ===


def _cost_child(path, factor, scale, image, runs):
    """In a fresh process: load the model, time its forward and measure the first forward's peak."""
    import gc

    import tensorflow as tf

    from fcn_keras.evaluation import load_model
    from fcn_keras.memory import call_peak, peak_resident_bytes
    from fcn_keras.shift_and_stitch import logits_function

    model = load_model(path)
    factor = None if factor == 1 else factor  # 1: the model's own upsampling
    forward = logits_function(model, factor, scale)
    batch = tf.constant(image[None])
    gc.collect()
    first = call_peak(lambda: forward(batch).numpy())  # traced here: the first call's time and peak
    coarse = logits_function(model, factor, scale, full_size=False)
    seconds = median_round_robin({"full": lambda: forward(batch).numpy(),
                                  "coarse": lambda: coarse(batch).numpy()}, runs, warmup=1)  # fmt: skip
    before = first["rss_before_bytes"]
    return {
        "seconds": seconds["full"], "runs": runs, "first_call_seconds": first["seconds"],
        "coarse_seconds": seconds["coarse"],
        "peak_delta_mb": first["peak_delta_bytes"] / MIB, "peak_rss_mb": peak_resident_bytes() / MIB,
        "rss_before_mb": None if before is None else before / MIB,
        "peak_method": ("VmHWM reset before the first forward (/proc/self/clear_refs), minus VmRSS "
                        "then") if first["reset"] else "VmHWM after the first forward minus "
                       "VmHWM after loading",
    }  # fmt: skip


def measure_cost(path, factor, scale, image, runs):
    """Latency and peak memory of one forward of `image`, measured in a fresh (spawned) process.

    Args:
        path: the `.keras` model file.
        factor: 1 for the plain model, else the shift-and-stitch factor.
        scale: the model's input scale (see `fcn_keras.shift_and_stitch.logits_function`).
        image: `(H, W, 3)` uint8 image.
        runs: timed calls of the forward and of the coarse map each, round-robin
            (`median_round_robin`, after the first call and one warm-up call).

    Returns:
        Dict: `seconds` (median), `runs`, `first_call_seconds` (tracing
        included), `coarse_seconds` (median time of the (dense) coarse map
        alone, `logits_function(..., full_size=False)`), `peak_delta_mb` (the
        first forward's resident set high-water mark over the resident set
        before it), `peak_rss_mb` (the resident set
        at its highest during the forwards, model and TensorFlow included),
        `rss_before_mb`, `peak_method`, `process_seconds` (the child's wall time).

    Example:
    >>> measure_cost("/tmp/runs/fcn32s/final.keras", 2, 1.0, image, 5)["seconds"]
    """
    import multiprocessing

    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        cost = pool.apply(_cost_child, (path, factor, scale, image, runs))
    cost["process_seconds"] = time.perf_counter() - start
    return cost


# === Output ===


def _points(value, reference):
    """`value - reference` in percentage points, None when either is undefined."""
    return None if value is None or reference is None else 100 * (value - reference)


def _peak(cost):
    """The peak column: MB, or "n/a" for a figures file without a valid peak (see `measure_cost`)."""
    return "n/a" if cost.get("peak_delta_mb") is None else f"{cost['peak_delta_mb']:.0f}"


def to_markdown(result):
    """Markdown tables of a result dict (see `main`): scores and cost, then per-class IoU."""
    host, rows = result["host"], result["rows"]
    widths = result["trimap_widths"]
    lines = [
        f"Shift-and-stitch on CamVid `{result['split']}`: {result['images']} images, full "
        f"480x360 labels, void ignored. f = 1 is the model's own upsampling; f > 1 stitches "
        f"the coarse map to stride s/f and upsamples it bilinearly. s / image: median of "
        f"{result['runs']} forwards of one 480x360 image (after a warm-up), each configuration "
        f"in a fresh process; x plain: that over the model's own forward; x coarse: the same "
        f"for the coarse score map alone, before any upsampling (the tail that shift-and-stitch "
        f"runs f^2 times); peak MB: resident set high-water mark of the first forward over the "
        f"resident set before it. Host: "
        f"{host['cpu']} ({host['cpu_count']} cores), TensorFlow {result['tensorflow']}, "
        f"Keras {result['keras']}.",
        "",
        "| Model | f (stride) | Mean IU | Pixel acc. | Mean acc. | f.w. IU | "
        + " | ".join(f"Trimap {w} px" for w in widths) + " | s / image | x plain | x coarse | Peak MB |",
        "| --- | --- |" + " ---: |" * (8 + len(widths)),
    ]
    for row in rows:
        trimap = " | ".join(pct(row["trimap_mean_iu"][str(w)]) for w in widths)
        cost = row["cost"]
        lines.append(f"| {row['model']} | {row['factor']} ({row['stride']} px) | {pct(row['mean_iu'])} | "
                     f"{pct(row['pixel_accuracy'])} | {pct(row['mean_accuracy'])} | "
                     f"{pct(row['frequency_weighted_iu'])} | {trimap} | {cost['seconds']:.3f} | "
                     f"x{row['ratio_to_plain']:.2f} | x{row['coarse_ratio_to_plain']:.2f} | "
                     f"{_peak(cost)} |")  # fmt: skip
    lines += ["", "Models:", ""]
    for name, model in result["models"].items():
        lines.append(f"- {name}: {model['variant']}, {model['num_classes']} classes, dtype policy "
                     f"{model['dtype_policy']}, input scale {model['input_scale']:g}, plain "
                     f"forward {model['plain_seconds']:.3f} s (its coarse map alone "
                     f"{model['plain_coarse_seconds']:.3f} s)")  # fmt: skip
    for name, change in result["versus_own_upsampling"].items():
        for factor, delta in change.items():
            points = {k: "n/a" if delta[k] is None else f"{delta[k]:+.2f}"
                      for k in ("mean_iu_points", "trimap_2px_points")}  # fmt: skip
            lines.append(f"- {name}, f = {factor} vs its own upsampling: mean IU "
                         f"{points['mean_iu_points']} points, trimap 2 px "
                         f"{points['trimap_2px_points']} points, x{delta['time_ratio']:.2f} "
                         f"the time (its coarse map x{delta['coarse_time_ratio']:.2f})")  # fmt: skip
    lines += per_class_iou_table(f"Per-class IoU ({result['split']}):", ["Model", "f"],
                                 [([row["model"], row["factor"]], row["per_class_iou"]) for row in rows])
    return "\n".join(lines) + "\n"


# === The command ===


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", type=named_model, nargs="+", required=True, metavar="NAME=PATH",
                        help="trained CamVid FCNs (.keras), e.g. fcn32s=.../fcn32s/final.keras")
    parser.add_argument("--factors", type=parse_factors, default=DEFAULT_FACTORS,
                        help="shift-and-stitch factors, comma-separated; 1 = the model's own output")
    parser.add_argument("--split", default="test", help="evaluated split")
    parser.add_argument("--data-dir", type=existing_dir, default=CAMVID_DIR, help="CamVid in SegNet layout")
    add_figure_arguments(parser)
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="evaluate only the first N images (checks, not results)")
    parser.add_argument("--runs", type=positive_int, default=5, help="timed forwards per latency figure")
    args = parser.parse_args(argv)
    names = [name for name, _ in args.models]
    if len(set(names)) != len(names):
        parser.error(f"--models: each NAME once; received {names}")
    check_figure_paths(parser, [("--json", args.json, ".json"), ("--markdown", args.markdown, ".md")],
                       DOCS)
    return args


def _first_image(args):
    """The split's first image, `(H, W, 3)` uint8, and the number of images evaluated."""
    import numpy as np

    from fcn_keras.data import load_dataset
    from fcn_keras.data.sources import resolve_source

    source = resolve_source("camvid", data_dir=args.data_dir)
    total = source.num_examples(args.split)
    images = total if args.limit is None else min(total, args.limit)
    data = load_dataset(source, args.split, batch_size=1, augment=False, shuffle=False)
    image, _ = next(iter(data))
    return np.asarray(image[0], dtype=np.uint8), images


def main(argv=None):
    args = _parse_args(argv)
    wall = time.perf_counter()

    import keras
    import tensorflow as tf

    from fcn_keras.data import dataset_info
    from fcn_keras.evaluation import evaluate, input_scale_of, load_model
    from fcn_keras.models import variant_of
    from fcn_keras.shift_and_stitch import coarse_output

    info = dataset_info("camvid", data_dir=args.data_dir)
    image, images = _first_image(args)
    log(f"CamVid {args.split}: {images} images evaluated; latency on the first, "
        f"{image.shape[1]}x{image.shape[0]}")  # fmt: skip

    # === 1. Models and the cost of every configuration (fresh process each) ===
    models, costs = {}, {}
    for name, path in args.models:
        model = load_model(path)
        num_classes = int(model.output_shape[-1])
        if num_classes != info.num_classes:
            raise SystemExit(f"{path}: the model predicts {num_classes} classes; CamVid has "
                             f"{info.num_classes}.")  # fmt: skip
        _, stride = coarse_output(model)
        bad = [f for f in args.factors if stride % f]
        if bad:
            raise SystemExit(f"--factors {','.join(map(str, args.factors))}: {bad} do not divide "
                             f"the coarse stride {stride} of {name} ({variant_of(model)}, {path}); "
                             f"use factors up to {stride}.")  # fmt: skip
        scale = input_scale_of(model)  # saved with it (or its row's stage.json, `load_model`)
        models[name] = {"model": model, "path": path, "stride": stride, "scale": scale,
                        "record": {"file": os.path.basename(path), "variant": variant_of(model),
                                   "num_classes": num_classes, "coarse_stride": stride,
                                   "dtype_policy": dtype_policy_of(model),
                                   "model_dtype_policy": model.dtype_policy.name,
                                   "parameters": int(model.count_params()),
                                   "input_scale": scale}}  # fmt: skip
        log(f"{name}: {path}: {variant_of(model)}, dtype policy {dtype_policy_of(model)}, coarse "
            f"stride {stride}, input scale {scale:g}")  # fmt: skip
        for factor in sorted({1, *args.factors}):
            log(f"  cost of {name} f={factor}: a fresh process, (2 + {args.runs}) + (1 + {args.runs}) forwards ...")
            cost = measure_cost(path, factor, scale, image, args.runs)
            costs[name, factor] = cost
            plain = costs[name, 1]
            log(f"  cost of {name} f={factor}: {cost['seconds']:.3f} s / image "
                f"(x{cost['seconds'] / plain['seconds']:.2f} plain; coarse map "
                f"{cost['coarse_seconds']:.3f} s, x{cost['coarse_seconds'] / plain['coarse_seconds']:.2f}), "
                f"first call "
                f"{cost['first_call_seconds']:.1f} s, peak +{cost['peak_delta_mb']:.0f} MB "
                f"(process {cost['peak_rss_mb']:.0f} MB), {cost['process_seconds']:.0f} s")  # fmt: skip
        models[name]["record"]["plain_seconds"] = costs[name, 1]["seconds"]
        models[name]["record"]["plain_coarse_seconds"] = costs[name, 1]["coarse_seconds"]

    # === 2. The plan ===
    configs = [(name, f) for name in models for f in args.factors]
    estimate = {c: images * costs[c]["seconds"] for c in configs}
    log(f"plan: {len(configs)} evaluations x {images} images, about "
        f"{sum(estimate.values()) / 60:.1f} min from the latencies "
        f"({', '.join(f'{n} f={f} {estimate[n, f] / 60:.1f}' for n, f in configs)})")  # fmt: skip

    # === 3. Evaluation ===
    rows, observed, predicted = [], 0.0, 0.0
    for number, (name, factor) in enumerate(configs, 1):
        entry = models[name]
        # The latencies, corrected by how long the evaluations so far took against them.
        correction = observed / predicted if predicted else 1.0
        left = sum(estimate[c] for c in configs[number - 1:]) * correction
        log(f"[{number}/{len(configs)}] {name} f={factor}: evaluating {images} images, about "
            f"{estimate[name, factor] * correction / 60:.1f} min (all that is left: about "
            f"{left / 60:.1f} min)")  # fmt: skip
        start = time.perf_counter()
        report = evaluate(entry["model"], "camvid", args.split, batch_size=1,
                          source_kwargs={"data_dir": args.data_dir}, trimap_widths=TRIMAP_WIDTHS,
                          max_batches=args.limit,
                          shift_and_stitch=None if factor == 1 else factor)  # fmt: skip
        seconds = time.perf_counter() - start
        observed, predicted = observed + seconds, predicted + estimate[name, factor]
        report.pop("confusion_matrix", None)
        cost = costs[name, factor]
        rows.append({
            "model": name, "factor": factor, "stride": entry["stride"] // factor,
            **{k: report[k] for k in ("pixel_accuracy", "mean_accuracy", "mean_iu",
                                      "frequency_weighted_iu", "per_class_iou",
                                      "per_class_accuracy", "trimap_mean_iu", "trimap_pixels",
                                      "images", "pixels", "baseline")},
            "evaluate_seconds": seconds, "evaluate_seconds_per_image": seconds / report["images"],
            "cost": cost, "ratio_to_plain": cost["seconds"] / costs[name, 1]["seconds"],
            "coarse_ratio_to_plain": cost["coarse_seconds"] / costs[name, 1]["coarse_seconds"],
        })  # fmt: skip
        log(f"  {name} f={factor}: mean IU {pct(report['mean_iu'])}, pixel accuracy "
            f"{pct(report['pixel_accuracy'])}, trimap 2 px {pct(report['trimap_mean_iu'][2])}; "
            f"{seconds:.0f} s ({seconds / report['images']:.2f} s / image)")  # fmt: skip
    if len({row["images"] for row in rows}) != 1:
        raise SystemExit(f"evaluations saw different numbers of images: {[r['images'] for r in rows]}")

    # === 4. Output ===
    by_key = {(row["model"], row["factor"]): row for row in rows}
    versus = {}
    for name, factor in configs:
        own = by_key.get((name, 1))
        if factor == 1 or own is None:
            continue
        row = by_key[name, factor]
        versus.setdefault(name, {})[str(factor)] = {
            "mean_iu_points": _points(row["mean_iu"], own["mean_iu"]),
            "trimap_2px_points": _points(row["trimap_mean_iu"][2], own["trimap_mean_iu"][2]),
            "time_ratio": row["ratio_to_plain"],
            "coarse_time_ratio": row["coarse_ratio_to_plain"],
        }  # fmt: skip
    result = {
        "benchmark": "shift-and-stitch on CamVid (Long et al. 2015, Section 3.2)",
        "host": host_record(),
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "split": args.split, "images": rows[0]["images"], "limit": args.limit,
        "factors": list(args.factors), "trimap_widths": list(TRIMAP_WIDTHS), "runs": args.runs,
        "latency_image": [int(image.shape[1]), int(image.shape[0])],
        "models": {name: entry["record"] for name, entry in models.items()},
        "rows": rows, "versus_own_upsampling": versus,
        "wall_seconds": time.perf_counter() - wall,
    }  # fmt: skip
    result = jsonable(result)
    markdown = to_markdown(result)
    print()
    print(markdown)
    log(f"wall time {result['wall_seconds']:.0f} s")
    write_figures(result, markdown, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
