"""Benchmark: the dense CRF (`fcn_keras.DenseCRF`) on a trained CamVid FCN-8s, against pydensecrf2.

One command, fixed seed, from a trained CamVid model (a `.keras` file, e.g. the
FCN-8s row of `bench/camvid_results.py`); every choice looks at val only, and
test is evaluated once per configuration, after every choice is made:

1. FCN logits of val and test at full 480x360 (`fcn_keras.crf.cached_logits`:
   the model in float32 through `fcn_keras.export.Predictor`, which applies
   its input scale), cached with the images and labels as `.npy` files under
   `--out/cache` (about 7.6 MB per image; reused by a rerun with the same
   model file, data and images), so no setting recomputes the FCN.
2. Grid search on **val**, by mean IU, 5 mean-field iterations: `DenseCRF`
   (`fcn_keras.crf.tune_crf` over `CRF_GRID`: window / downsampling,
   appearance bandwidths and weight, smoothness kernel on or off; each
   traced structure's cost is measured first and the plan printed), and
   Krähenbühl's permutohedral CRF (`fcn_keras.crf_reference.
   tune_reference_crf`) when pydensecrf2 is installed
   (`pip install -e ".[crf-reference]"`).
3. End-to-end fine-tuning of the CRF (`fcn_keras.crf.fine_tune_crf`: the FCN
   frozen in inference mode, `compatibility="learned"`, from the val-chosen
   settings) with `model.fit` on CamVid train crops (`FINETUNE`: batch 1,
   random 256x352 crops at full scale with flips, Adam); val mean IU every
   `checkpoint` steps, step 0 (the fixed CRF) included, picks the step.
4. Test (233 images, full 480x360 labels, void ignored) of no CRF, the fixed
   CRF, the fine-tuned CRF and pydensecrf2: pixel accuracy, mean accuracy,
   mean IU, f.w. IU, per-class IoU, trimap mean IU at 2/4/8 px.
5. Speed at 480x360, 11 classes, 5 iterations, median of `--runs` runs: the
   CRF alone in Keras (`tf.function`), FCN-8s + CRF vs plain FCN-8s exported
   to ONNX in onnxruntime (`fcn_keras.export.Predictor`), pydensecrf2.
6. Figures only (no paths, no weights) to `--json`, the tables to
   `--out/crf_camvid.md` (and `--markdown`), the final CRF settings (the
   fine-tuned ones when they beat the fixed ones on val) to
   `--out/<model file>.crf.json` and, when asked, `--save-settings PATH`
   (`fcn_keras.crf.save_crf_settings`; `<model>.crf.json` is what
   `fcn-keras evaluate/predict/export --crf` read; nothing is written beside
   the model otherwise), and with `--figure` a PNG
   (`fcn_keras.visualize.comparison_figure`): image | truth | FCN-8s |
   FCN-8s + CRF for a few test images.

Full run: about 25 minutes (20-30, depending on how well TensorFlow uses both
cores) on a 2-core Intel Xeon (Sapphire Rapids, AMX) VM, estimated from
single-thread CPU seconds measured on a loaded one: FCN-8s (fc_units 1024)
1.7 s per 480x360 image, DenseCRF 0.07 s (window 7, downsample 4) and 0.04 s
(window 9, downsample 8), pydensecrf2 0.33 s, a fine-tuning step 0.9 s. The
grid's plan and the first fine-tuning checkpoint's time give the estimate for
the host.

    .venv/bin/python bench/crf_camvid.py --model /tmp/fcn_keras_runs/camvid/fcn8s/final.keras \
        --out /tmp/fcn_keras_runs/crf_camvid --json docs/results/crf_camvid.json \
        --markdown docs/results/crf_camvid.md --figure docs/results/crf_camvid.png \
        --save-settings /tmp/fcn_keras_runs/camvid/fcn8s/final.keras.crf.json
    (defaults: --data-dir ../shared/data/camvid, --runs 10, --seed 0;
     --finetune-steps N shortens or lengthens the fine-tuning)

Quick check (6 val and 6 test images, a 2-setting grid, 4 fine-tuning steps
on 128x160 crops; minutes):
    .venv/bin/python bench/crf_camvid.py --model ... --out /tmp/fcn_keras_runs/crf_quick --quick

Reference: Krähenbühl, Koltun, NIPS 2011 (the dense CRF and its permutohedral
inference); Zheng et al., ICCV 2015 (CRF-as-RNN, end-to-end training);
Teichmann, Cipolla, BMVC 2019 (ConvCRF: the truncated, downsampled filtering
`DenseCRF` uses).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import (CAMVID_DIR, DOCS, add_figure_arguments, check_figure_paths, dtype_policy_of,  # noqa: E402
                     existing_dir, host_record, inside_repo_error, jsonable, keras_file, log,
                     median_round_robin, pct, per_class_iou_table, positive_int, scores_row,
                     scores_table, write_figures)

ITERATIONS = 5
TRIMAP_WIDTHS = (2, 4, 8)
EVAL_BATCH = 4  # val/test images per DenseCRF call

# The grid of a quick check (the full run searches `fcn_keras.crf.CRF_GRID`).
QUICK_GRID = {
    "structure": [{"window": 7, "downsample": 4}],
    "appearance_xy": [80.0],
    "appearance_rgb": [13.0],
    "appearance_weight": [3.0, 10.0],
    "smoothness": [{"smoothness_weight": 3.0, "smoothness_xy": 3.0}],
}  # fmt: skip

# pydensecrf2's grid in a quick check: the first settings of `fcn_keras.crf_reference.REFERENCE_GRID`.
QUICK_REFERENCE_SETTINGS = 2

# End-to-end fine-tuning of the CRF (FCN frozen): batch, crop at full scale, steps, val every
# `checkpoint` steps (step 0 included), Adam learning rate (the CRF's parameters are log
# weights, log bandwidths and the compatibility matrix, all O(1)).
FINETUNE = {"batch_size": 1, "crop": (256, 352), "steps": 240, "checkpoint": 60,
            "learning_rate": 1e-2}  # fmt: skip
QUICK_FINETUNE = {"batch_size": 1, "crop": (128, 160), "steps": 4, "checkpoint": 2,
                  "learning_rate": 1e-2}  # fmt: skip
QUICK_IMAGES = 6


def _describe(settings):
    """Settings of either CRF in words (`DenseCRF`'s or pydensecrf2's)."""
    from fcn_keras.crf import describe_settings
    from fcn_keras.crf_reference import describe_reference_settings

    return (describe_reference_settings if "bilateral_sxy" in settings else describe_settings)(settings)


# === Cached FCN logits ===


def cache_split(model, split, args, scale, info):
    """`fcn_keras.crf.cached_logits` of a CamVid split under `--out/cache` (the model in float32).

    Reused while the model file, the data directory, the input scale and the
    image count stay the same.

    Returns:
        `(images, labels, logits, median seconds per image of the FCN when it ran)`.
    """
    from fcn_keras.crf import cached_logits
    from fcn_keras.data import load_dataset
    from fcn_keras.export import Predictor, float32_model

    total = info.num_examples.get(split)
    if total is None:
        raise SystemExit(f"CamVid at {args.data_dir!r} has no split {split!r}.")
    count = total if args.limit is None else min(total, args.limit)
    stat = os.stat(args.model)
    key = {"model": os.path.realpath(args.model), "model_bytes": stat.st_size,
           "model_mtime": stat.st_mtime, "data_dir": os.path.realpath(args.data_dir),
           "split": split, "input_scale": scale, "limit": args.limit}  # fmt: skip
    predictor = Predictor(float32_model(model), engine="keras")  # applies the input scale
    data = load_dataset("camvid", split, batch_size=1, augment=False, shuffle=False,
                        ignore_label=info.ignore_label, data_dir=args.data_dir)  # fmt: skip
    return cached_logits(predictor.predict, data, count, os.path.join(args.out, "cache"), split,
                         key=key, log=log)  # fmt: skip


# === Scoring and fine-tuning ===


def score_test(classes_fn, test, info):
    """Scores of `classes_fn(images, logits)` on the cached test split, trimap bands included."""
    from fcn_keras.crf import split_scores

    images, labels, logits = test
    result = split_scores(classes_fn, images, logits, labels, ignore_label=info.ignore_label,
                          batch_size=EVAL_BATCH, trimap_widths=TRIMAP_WIDTHS)  # fmt: skip
    return scores_row(result, info.class_names)


def finetune(fcn, settings, val, args, plan, info):
    """`fcn_keras.crf.fine_tune_crf` on CamVid train crops (`plan`); returns `(layer, record)`."""
    from fcn_keras.crf import fine_tune_crf
    from fcn_keras.data import load_dataset

    train = load_dataset("camvid", "train", batch_size=plan["batch_size"], crop_size=tuple(plan["crop"]),
                         augment={"scale_range": (1.0, 1.0), "flip": True}, shuffle=True,
                         seed=args.seed, repeat=True, ignore_label=info.ignore_label,
                         data_dir=args.data_dir)  # fmt: skip
    images, labels, logits = val
    crf, record = fine_tune_crf(fcn, settings, train, (images, logits, labels), steps=plan["steps"],
                                checkpoint=plan["checkpoint"], learning_rate=plan["learning_rate"],
                                ignore_label=info.ignore_label, batch_size=EVAL_BATCH, log=log)  # fmt: skip
    record = {"settings_start": settings, "plan": {**plan, "crop": list(plan["crop"])},
              "augmentation": "random crop at full scale, horizontal flip",
              "optimizer": "adam", "loss": "softmax cross-entropy, void ignored",
              "fcn": "frozen, inference mode", **record}  # fmt: skip
    log(f"fine-tuning: {plan['steps']} steps in {record['seconds']:.0f} s (val included); chosen "
        f"step {record['chosen_step']} (val mean IU {100 * record['val_mean_iu']:.2f})")  # fmt: skip
    return crf, record


# === Speed ===


def measure_speed(fcn, settings, reference, image, logits, args, runs, num_classes):
    """Median seconds per 480x360 image: Keras CRF, ONNX FCN vs FCN + CRF, pydensecrf2."""
    import numpy as np
    import tensorflow as tf

    from fcn_keras.crf import DenseCRF, with_crf
    from fcn_keras.crf_reference import reference_classes
    from fcn_keras.export import Predictor, export_onnx

    def median_seconds(function):  # one warm-up call (kernels, traces, allocations), then `runs`
        return median_round_robin({"run": function}, runs, warmup=1)["run"]

    image, logits = np.asarray(image)[None], np.asarray(logits)[None]
    layer = DenseCRF(num_classes, **settings)
    call = tf.function(lambda a, b: layer([a, b]))
    speed = {"keras_crf_seconds": median_seconds(lambda: call(image, logits).numpy())}
    paths = {name: os.path.join(args.out, f"{name}.onnx") for name in ("fcn", "fcn_crf")}
    start = time.perf_counter()
    export_onnx(fcn, paths["fcn"])
    export_onnx(with_crf(fcn, **settings), paths["fcn_crf"])
    speed["onnx_export_seconds"] = time.perf_counter() - start
    for name, path in paths.items():
        predictor = Predictor(path, num_threads=args.threads)
        speed[f"onnx_{name}_seconds"] = median_seconds(lambda p=predictor: p.predict(image[0]))
        del predictor
    speed["onnx_crf_overhead_ratio"] = speed["onnx_fcn_crf_seconds"] / speed["onnx_fcn_seconds"]
    if reference is not None:
        speed["pydensecrf2_seconds"] = median_seconds(lambda: reference_classes(image, logits, reference))
        speed["keras_crf_vs_pydensecrf2_ratio"] = speed["keras_crf_seconds"] / speed["pydensecrf2_seconds"]
    speed.update(runs=runs, size=[int(image.shape[2]), int(image.shape[1])], classes=num_classes,
                 iterations=settings["iterations"], onnx_threads=args.threads or os.cpu_count())  # fmt: skip
    return speed


# === Output ===


def _seconds(value):
    return "" if value is None else f"{value:.3f}"


def to_markdown(result):
    """Markdown tables of a result dict (see `main`)."""
    host, test = result["host"], result["test"]
    lines = [
        f"Dense CRF on CamVid ({result['model']['variant']}, {result['model']['num_classes']} "
        f"classes, input scale {result['model']['input_scale']:g}): test, "
        f"{test['fcn']['images']} images at full size, void ignored. Host: {host['cpu']} "
        f"({host['cpu_count']} cores).",
        "",
        *scores_table("Configuration", [(result["labels"][name], row, [pct(result["val_mean_iu"].get(name)),
                                                                       _seconds(row["seconds_per_image"])])
                                        for name, row in test.items()],
                      TRIMAP_WIDTHS, extra=["Val mean IU", "CRF s / image"]),  # fmt: skip
    ]
    lines += per_class_iou_table("Per-class IoU (test):", ["Configuration"],
                                 [([result["labels"][name]], row["per_class_iou"]) for name, row in test.items()])
    lines += ["", "Chosen on val:", ""]
    for name, settings in result["chosen"].items():
        lines.append(f"- {result['labels'][name]}: {_describe(settings)}")
    fine = result.get("finetune")
    if fine:
        plan = fine["plan"]
        lines.append(f"- fine-tuning: {plan['steps']} steps of batch {plan['batch_size']} on "
                     f"{plan['crop'][0]}x{plan['crop'][1]} train crops, Adam "
                     f"{plan['learning_rate']:g}; chosen step {fine['chosen_step']} "
                     f"({fine['seconds_per_step']:.2f} s / step)")  # fmt: skip
    speed = result["speed"]
    lines += [
        "",
        f"Speed at {speed['size'][0]}x{speed['size'][1]}, {speed['classes']} classes, "
        f"{speed['iterations']} iterations (median of {speed['runs']} runs, seconds per image):",
        "",
        "| Engine | s / image |",
        "| --- | ---: |",
        *([f"| FCN, Keras float32 (logits cache run) | {_seconds(result['fcn_seconds_per_image']['test'])} |"]
          if result["fcn_seconds_per_image"]["test"] is not None else []),
        f"| DenseCRF alone, Keras (tf.function) | {speed['keras_crf_seconds']:.3f} |",
        f"| FCN, ONNX Runtime | {speed['onnx_fcn_seconds']:.3f} |",
        f"| FCN + DenseCRF, ONNX Runtime | {speed['onnx_fcn_crf_seconds']:.3f} "
        f"(x{speed['onnx_crf_overhead_ratio']:.2f}) |",
    ]
    if "pydensecrf2_seconds" in speed:
        lines.append(f"| pydensecrf2 (permutohedral, one thread) | {speed['pydensecrf2_seconds']:.3f} |")
        lines += ["", f"Keras DenseCRF / pydensecrf2 time: x{speed['keras_crf_vs_pydensecrf2_ratio']:.2f}."]
    return "\n".join(lines) + "\n"


# === The command ===


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", type=keras_file, required=True, help="trained CamVid FCN, a .keras file")
    parser.add_argument("--data-dir", type=existing_dir, default=CAMVID_DIR, help="CamVid in SegNet layout")
    parser.add_argument("--out", required=True,
                        help="cache, ONNX files and results, outside the repo")
    add_figure_arguments(parser)
    parser.add_argument("--figure", default=None,
                        help="PNG: image | truth | FCN | FCN + CRF (outside the repo or under docs/)")
    parser.add_argument("--figure-images", type=positive_int, default=4, help="test images in the figure")
    parser.add_argument("--save-settings", default=None, metavar="PATH",
                        help="also write the final CRF settings here (e.g. MODEL.crf.json, which "
                             "fcn-keras --crf reads); they always go to --out")  # fmt: skip
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="use only the first N images of val and of test (checks, not results)")
    parser.add_argument("--runs", type=positive_int, default=10, help="timed runs per speed figure")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="onnxruntime threads in the speed figures; all cores when not given")
    parser.add_argument("--finetune-steps", type=positive_int, default=None,
                        help=f"fine-tuning steps; {FINETUNE['steps']} when not given (val every "
                             f"{FINETUNE['checkpoint']} steps, or every step below that)")  # fmt: skip
    parser.add_argument("--no-reference", action="store_true",
                        help="leave pydensecrf2 out even when it is installed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning data")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_IMAGES} val and test images, a 2-setting grid for each CRF, "
                             f"{QUICK_FINETUNE['steps']} fine-tuning steps, 3 timed runs")  # fmt: skip
    args = parser.parse_args(argv)
    error = inside_repo_error(args.out, what="the cache and the ONNX files")
    if error:
        parser.error(error)
    check_figure_paths(parser, [("--json", args.json, ".json"), ("--markdown", args.markdown, ".md"),
                                ("--figure", args.figure, ".png")], DOCS)  # fmt: skip
    if args.save_settings is not None and not args.save_settings.endswith(".json"):
        parser.error(f"--save-settings {args.save_settings!r}: expected a .json file")
    if args.quick:
        args.limit = min(args.limit or QUICK_IMAGES, QUICK_IMAGES)
        args.runs = min(args.runs, 3)
        args.figure_images = min(args.figure_images, 2)
    return args


def main(argv=None):
    args = _parse_args(argv)
    wall = time.perf_counter()

    import numpy as np

    from fcn_keras.crf import (CRF_GRID, TracedCRF, describe_structure, save_crf_settings, structure_key,
                               tune_crf)  # fmt: skip
    from fcn_keras.crf_reference import (REFERENCE_GRID, reference_available, reference_classes,
                                         tune_reference_crf)  # fmt: skip
    from fcn_keras.data import dataset_info
    from fcn_keras.evaluation import input_scale_of, load_model
    from fcn_keras.export import float32_model
    from fcn_keras.models import variant_of
    from fcn_keras.visualize import comparison_figure, spread_indices

    model = load_model(args.model)
    info = getattr(model, "dataset_info", None) or dataset_info("camvid", data_dir=args.data_dir)
    source_info = dataset_info("camvid", data_dir=args.data_dir)
    num_classes, ignore = int(model.output_shape[-1]), info.ignore_label
    if num_classes != source_info.num_classes:
        raise SystemExit(f"{args.model}: the model predicts {num_classes} classes; CamVid has "
                         f"{source_info.num_classes}.")  # fmt: skip
    scale = input_scale_of(model)
    fcn = float32_model(model)
    log(f"model {args.model}: {variant_of(model)}, dtype policy {dtype_policy_of(model)} (run in "
        f"float32), input scale {scale:g}")  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    grid = QUICK_GRID if args.quick else CRF_GRID
    reference_ok, reference_why = (False, "--no-reference") if args.no_reference else reference_available()
    plan = dict(QUICK_FINETUNE if args.quick else FINETUNE)
    if args.finetune_steps is not None:
        plan["checkpoint"] = min(plan["checkpoint"], args.finetune_steps)
        plan["steps"] = args.finetune_steps - args.finetune_steps % plan["checkpoint"]
    if not reference_ok:
        log(f"pydensecrf2 left out: {reference_why}")

    # === 1. FCN logits, once ===
    *val, fcn_val_seconds = cache_split(fcn, "val", args, scale, source_info)
    *test, fcn_test_seconds = cache_split(fcn, "test", args, scale, source_info)
    size = val[0].shape[1:3]
    log(f"val {len(val[0])} images, test {len(test[0])} images, {size[1]}x{size[0]}")
    val_fcn = score_test(lambda i, l: np.argmax(l, axis=-1), val, source_info)
    log(f"val without CRF: mean IU {pct(val_fcn['mean_iu'])}")

    # === 2. Grid searches on val ===
    tuned = tune_crf(val[0], val[2], val[1], grid=grid, iterations=ITERATIONS, ignore_label=ignore,
                     batch_size=EVAL_BATCH, log=log)  # fmt: skip
    rows, fixed, edges, crfs, costs = (tuned[k] for k in ("rows", "settings", "edges", "crfs",
                                                          "seconds_per_image"))  # fmt: skip
    best = {"val_mean_iu": tuned["mean_iu"]}
    log(f"DenseCRF chosen on val: {_describe(fixed)} (mean IU {100 * best['val_mean_iu']:.2f})")
    if edges:
        log(f"  at the edge of the grid: {', '.join(edges)}; a wider grid may do better")
    reference_rows, reference, reference_cost = [], None, None
    if reference_ok:
        tuned_reference = tune_reference_crf(
            val[0], val[2], val[1], grid=REFERENCE_GRID[:QUICK_REFERENCE_SETTINGS] if args.quick else None,
            iterations=ITERATIONS, ignore_label=ignore, batch_size=EVAL_BATCH, log=log)  # fmt: skip
        reference_rows, reference = tuned_reference["rows"], tuned_reference["settings"]
        reference_cost = reference_rows[0]["seconds_per_image"]
        log(f"pydensecrf2 chosen on val: {_describe(reference)}")

    # === 3. Fine-tuning ===
    trained, fine = finetune(fcn, fixed, val, args, plan, source_info)
    tuned_settings = {k: v for k, v in trained.settings().items() if k != "num_classes"}

    # === 4. Test, once per configuration ===
    fixed_crf = crfs[structure_key(fixed)]
    fixed_crf.assign(fixed)
    tuned_crf = TracedCRF(num_classes, tuned_settings, size, layer=trained)
    predictors = {
        "fcn": lambda i, l: np.argmax(l, axis=-1).astype(np.uint8),
        "crf_fixed": fixed_crf.classes,
        "crf_finetuned": tuned_crf.classes,
    }  # fmt: skip
    if reference is not None:
        predictors["pydensecrf2"] = lambda i, l: reference_classes(i, l, reference)
    results = {}
    for name, predict in predictors.items():
        results[name] = score_test(predict, test, source_info)
        log(f"test {name}: mean IU {pct(results[name]['mean_iu'])}, pixel accuracy "
            f"{pct(results[name]['pixel_accuracy'])}, trimap 4 px "
            f"{pct(results[name]['trimap_mean_iu']['4'])}")  # fmt: skip
    results["fcn"]["seconds_per_image"] = None  # the FCN's own time: `fcn_seconds_per_image`

    # === 5. Speed, settings, figure ===
    final_name = "crf_finetuned" if fine["val_mean_iu"] > best["val_mean_iu"] else "crf_fixed"
    final = tuned_settings if final_name == "crf_finetuned" else fixed
    speed = measure_speed(fcn, final, reference, test[0][0], test[2][0], args, args.runs, num_classes)
    log(f"speed: DenseCRF {speed['keras_crf_seconds']:.3f} s, ONNX FCN {speed['onnx_fcn_seconds']:.3f} s, "
        f"ONNX FCN + CRF {speed['onnx_fcn_crf_seconds']:.3f} s (x{speed['onnx_crf_overhead_ratio']:.2f})"
        + (f", pydensecrf2 {speed['pydensecrf2_seconds']:.3f} s" if reference is not None else ""))
    targets = [os.path.join(args.out, os.path.basename(args.model) + ".crf.json"), args.save_settings]
    for target in filter(None, targets):
        log(f"saved the {final_name.replace('_', ' ')} settings to "
            f"{save_crf_settings({'num_classes': num_classes, **final}, target)}")  # fmt: skip
    variant = variant_of(model)
    labels = {"fcn": f"FCN-{variant[3:]}" if variant.startswith("fcn") else variant, "crf_fixed": "+ DenseCRF (val-chosen)",
              "crf_finetuned": "+ DenseCRF (fine-tuned)", "pydensecrf2": "+ pydensecrf2 (val-chosen)"}  # fmt: skip
    if args.figure:  # image | truth | FCN | FCN + the final CRF
        indices = spread_indices(len(test[0]), args.figure_images)
        final_crf = tuned_crf if final_name == "crf_finetuned" else fixed_crf
        columns = {labels["fcn"]: [np.argmax(test[2][i], axis=-1) for i in indices],
                   f"{labels['fcn']} + CRF": [final_crf.classes(test[0][i:i + 1], test[2][i:i + 1]).numpy()[0]
                                              for i in indices]}  # fmt: skip
        figure, _ = comparison_figure([test[0][i] for i in indices], [test[1][i] for i in indices], columns,
                                      source_info.palette, source_info.class_names,
                                      ignore_label=source_info.ignore_label,
                                      captions=[f"#{i}" for i in indices])  # fmt: skip
        os.makedirs(os.path.dirname(os.path.abspath(args.figure)), exist_ok=True)
        figure.save(args.figure, optimize=True)
        log(f"wrote {args.figure}: test images {indices}")

    result = {
        "benchmark": "dense CRF on CamVid (fcn_keras.DenseCRF vs pydensecrf2)",
        "host": host_record(),
        "model": {"file": os.path.basename(args.model), "variant": variant_of(model),
                  "num_classes": num_classes, "dtype_policy": dtype_policy_of(model),
                  "run_dtype": "float32", "input_scale": scale},
        "quick": args.quick, "limit": args.limit, "seed": args.seed,
        "images": {"val": int(len(val[0])), "test": int(len(test[0]))},
        "fcn_seconds_per_image": {"val": fcn_val_seconds, "test": fcn_test_seconds},
        "cost_per_image": {"densecrf": {describe_structure(k): v for k, v in costs.items()},
                           "pydensecrf2": reference_cost},
        "reference": {"available": reference_ok, "why_not": reference_why},
        "grid": rows, "grid_edges_chosen": edges, "reference_grid": reference_rows,
        "chosen": {"crf_fixed": fixed, "crf_finetuned": tuned_settings,
                   **({"pydensecrf2": reference} if reference is not None else {})},
        "val_mean_iu": {"fcn": val_fcn["mean_iu"], "crf_fixed": best["val_mean_iu"], "crf_finetuned": fine["val_mean_iu"],
                        **({"pydensecrf2": tuned_reference["mean_iu"]} if reference else {})},
        "finetune": fine, "saved_settings": final_name,
        "test": results, "labels": {k: v for k, v in labels.items() if k in results},
        "speed": speed, "wall_seconds": time.perf_counter() - wall,
    }  # fmt: skip
    markdown = to_markdown(result)
    print()
    print(markdown)
    log(f"wall time {result['wall_seconds']:.0f} s")
    result = jsonable(result)
    copy = os.path.join(args.out, "crf_camvid")
    write_figures(result, markdown, copy + ".json", copy + ".md")  # the run's own copy, in --out
    write_figures(result, markdown, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
