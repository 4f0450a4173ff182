"""`fcn-keras demo`, the package end to end: train, evaluate, export, verify and report.

On a fresh CPU machine with no network, `run_demo()`:

1. trains a reduced-width FCN-8s from scratch (or from `backbone_weights`)
   on the built-in synthetic dataset (`fcn_keras.train`, Adam with warmup
   and cosine decay, learned upsampling, no dropout);
2. evaluates it on the synthetic validation split, next to the trivial
   baseline that always predicts the most frequent class of that split;
3. exports it to SavedModel, TFLite (float32) and ONNX and verifies the
   three artifacts against Keras and against each other (`export.export_all`);
4. writes colourised predictions (image | truth | prediction | overlay), a
   training-curve plot and a report (`report.md`, `report.json`).

Output directory layout (default `./fcn_runs/demo`):

    best.keras, last.keras, history.csv, tensorboard/, train_config.json
    evaluation.json, evaluation.md       the four metrics, per-class IoU, baseline
    exports/fcn8s_savedmodel/, exports/fcn8s_float32.tflite, exports/fcn8s.onnx
    verification.json, verification.md   export.verify's report
    predictions/val_<i>.png               colourised predictions
    training_curves.png                  loss and mean IU per epoch
    report.md, report.json               the summary, with timings

Why these defaults: VGG16's 13 convolutions cost the same at any fc width,
and a 2-core CPU trains 2-2.6 images/s at 64x64 (measured on two hosts of that
kind: 4 x 40 x 8 images took 495 s on one and 638 s on another), so the default
schedule (4 epochs x 32 steps x 8 images = 1,024 images) finishes, export and
verification included, in under 10 minutes on both. A randomly
initialised VGG16 without batch normalisation starts slowly with SGD; Adam
at 3e-4 with a short warmup gets going within ~50 steps.
"""

import json
import os
import time

__all__ = ["run_demo", "DEMO_DEFAULTS"]

DEMO_DEFAULTS = {
    "epochs": 4,
    "steps_per_epoch": 32,
    "batch_size": 8,
    "image_size": 64,
    "fc_units": 256,
    "learning_rate": 3e-4,
    "warmup_steps": 25,
    "num_train": 1000,
    "num_val": 100,
    "num_predictions": 6,
    "seed": 0,
}


def _write_png(path, array):
    import tensorflow as tf

    tf.io.write_file(path, tf.io.encode_png(array))


def _plot_curves(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history.get("loss", [])) + 1)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, axis in (("loss", left), ("mean_iu", right)):
        if key in history:
            axis.plot(epochs, history[key], "o-", label=f"train {key}")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], "s-", label=f"val {key}")
        axis.set_xlabel("epoch")
        axis.set_title(key.replace("_", " "))
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _predictions(model, images, masks, palette, out_dir, ignore_label):
    import numpy as np

    from fcn_keras.visualize import colorize, overlay

    os.makedirs(out_dir, exist_ok=True)
    classes = np.asarray(model.predict(np.stack(images), verbose=0)).argmax(-1)
    paths = []
    for index, (image, mask, predicted) in enumerate(zip(images, masks, classes)):
        panel = np.concatenate([
            image, colorize(mask, palette, ignore_label),
            colorize(predicted.astype(np.int32), palette, ignore_label),
            overlay(image, predicted.astype(np.int32), palette, 0.5, ignore_label),
        ], axis=1)  # fmt: skip
        path = os.path.join(out_dir, f"val_{index}.png")
        _write_png(path, panel)
        paths.append(path)
    return paths


def run_demo(
    out_dir="fcn_runs/demo",
    *,
    epochs=DEMO_DEFAULTS["epochs"],
    steps_per_epoch=DEMO_DEFAULTS["steps_per_epoch"],
    batch_size=DEMO_DEFAULTS["batch_size"],
    image_size=DEMO_DEFAULTS["image_size"],
    fc_units=DEMO_DEFAULTS["fc_units"],
    learning_rate=DEMO_DEFAULTS["learning_rate"],
    warmup_steps=DEMO_DEFAULTS["warmup_steps"],
    num_train=DEMO_DEFAULTS["num_train"],
    num_val=DEMO_DEFAULTS["num_val"],
    num_predictions=DEMO_DEFAULTS["num_predictions"],
    backbone_weights=None,
    export_models=True,
    mixed_precision=None,
    jit_compile=False,
    seed=DEMO_DEFAULTS["seed"],
    verbose="auto",
):
    """Run the demo end to end; return the report dict (also written to `out_dir`).

    Args:
        out_dir: output directory. Defaults to `"fcn_runs/demo"`.
        epochs: training epochs. Defaults to 4.
        steps_per_epoch: batches per epoch. Defaults to 32.
        batch_size: images per batch. Defaults to 8.
        image_size: synthetic image side in pixels. Defaults to 64.
        fc_units: fc6/fc7 width (4096 in the paper). Defaults to 256.
        learning_rate: Adam's peak learning rate. Defaults to 3e-4.
        warmup_steps: linear warmup steps. Defaults to 25.
        num_train: synthetic training images. Defaults to 1000.
        num_val: synthetic validation images (evaluation and baseline).
            Defaults to 100.
        num_predictions: colourised validation predictions written. Defaults to 6.
        backbone_weights: optional VGG16 weights file (`"imagenet"` needs
            network). Defaults to None (from scratch).
        export_models: export and verify SavedModel/TFLite/ONNX. Defaults to True.
        mixed_precision: optional dtype policy for training.
        jit_compile: XLA-compile the train step. Defaults to False.
        seed: random seed (data, initialisation). Defaults to 0.
        verbose: `model.fit` verbosity. Defaults to `"auto"`.

    Returns:
        Dict with `mean_iu`, `baseline_mean_iu`, `pixel_accuracy`, ...,
        `timings` (seconds per stage and total), `export` (artifacts and
        `verification_passed`) and `files`.

    Example:
    >>> report = fcn_keras.demo.run_demo("/tmp/demo", epochs=1, steps_per_epoch=2,
    ...                                  image_size=32, export_models=False)
    """
    import numpy as np

    from fcn_keras.data import dataset_info, load_dataset
    from fcn_keras.evaluation import evaluate, report_to_json, report_to_markdown
    from fcn_keras.training import train

    started = time.time()
    timings = {}
    os.makedirs(out_dir, exist_ok=True)
    source_kwargs = {"image_size": image_size, "seed": seed,
                     "num_examples": {"train": num_train, "val": num_val}}  # fmt: skip
    info = dataset_info("synthetic", **source_kwargs)

    # === Train ===
    start = time.time()
    model, history = train(
        "fcn8s", "synthetic", out_dir=out_dir, source_kwargs=source_kwargs,
        batch_size=batch_size, epochs=epochs, steps_per_epoch=steps_per_epoch,
        optimizer="adam", learning_rate=learning_rate, schedule="cosine",
        warmup_steps=warmup_steps, fc_units=fc_units, dropout=0.0,
        trainable_upsampling=True, backbone_weights=backbone_weights,
        mixed_precision=mixed_precision, jit_compile=jit_compile, seed=seed, verbose=verbose,
    )  # fmt: skip
    timings["train_s"] = time.time() - start
    curves = {k: [float(v) for v in values] for k, values in history.history.items()}

    # === Evaluate (with the majority-class baseline on the same split) ===
    start = time.time()
    evaluation = evaluate(model, "synthetic", "val", batch_size=batch_size,
                          source_kwargs=source_kwargs)  # fmt: skip
    timings["evaluate_s"] = time.time() - start
    with open(os.path.join(out_dir, "evaluation.json"), "w") as f:
        f.write(report_to_json(evaluation))
    with open(os.path.join(out_dir, "evaluation.md"), "w") as f:
        f.write(report_to_markdown(evaluation, title="Synthetic val"))

    # === Predictions and curves ===
    start = time.time()
    from fcn_keras.data.sources import resolve_source

    val = load_dataset(resolve_source("synthetic", **source_kwargs), "val",
                       batch_size=num_predictions, augment=False, shuffle=False)  # fmt: skip
    images, masks = (np.asarray(t) for t in next(iter(val)))
    images, masks = list(images), list(masks)
    palette = info.palette
    prediction_files = _predictions(model, images, masks, palette,
                                    os.path.join(out_dir, "predictions"), info.ignore_label)  # fmt: skip
    _plot_curves(curves, os.path.join(out_dir, "training_curves.png"))
    timings["predictions_s"] = time.time() - start

    # === Export and verify ===
    export_summary = None
    if export_models:
        from fcn_keras.export import export_all

        start = time.time()
        exported = export_all(
            model, os.path.join(out_dir, "exports"), formats=("savedmodel", "tflite", "onnx"),
            quantizations=("float32",), verify_images=images, verify_labels=masks,
            ignore_label=info.ignore_label, report_path=os.path.join(out_dir, "verification"),
        )  # fmt: skip
        timings.update(exported["timings"])
        timings["export_and_verify_s"] = time.time() - start
        export_summary = {"artifacts": {k: os.fspath(v) for k, v in exported["artifacts"].items()},
                          "verification_passed": exported["passed"]}  # fmt: skip
    timings["total_s"] = time.time() - started

    # === Report ===
    report = {
        "task": "FCN-8s on the built-in synthetic dataset",
        "model": {"variant": "fcn8s", "fc_units": fc_units, "parameters": model.count_params(),
                  "backbone_weights": backbone_weights and os.fspath(backbone_weights)},
        "schedule": {"epochs": epochs, "steps_per_epoch": steps_per_epoch,
                     "batch_size": batch_size, "image_size": image_size,
                     "images_seen": epochs * steps_per_epoch * batch_size,
                     "optimizer": "adam", "learning_rate": learning_rate,
                     "lr_schedule": "cosine", "warmup_steps": warmup_steps},
        "data": {"num_train": num_train, "num_val": num_val, "classes": list(info.class_names)},
        **{k: evaluation[k] for k in ("pixel_accuracy", "mean_accuracy", "mean_iu",
                                      "frequency_weighted_iu", "per_class_iou")},
        "baseline": evaluation["baseline"],
        "baseline_mean_iu": evaluation["baseline"]["mean_iu"],
        "history": curves,
        "export": export_summary,
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "files": {"evaluation": "evaluation.md", "curves": "training_curves.png",
                  "predictions": [os.path.relpath(p, out_dir) for p in prediction_files],
                  "checkpoint": "best.keras"},
    }  # fmt: skip
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(_report_markdown(report, evaluation))
    return report


def _report_markdown(report, evaluation):
    from fcn_keras.evaluation import report_to_markdown

    s, t = report["schedule"], report["timings"]
    lines = [
        "# fcn-keras demo report",
        "",
        f"FCN-8s (fc_units={report['model']['fc_units']}, "
        f"{report['model']['parameters']:,} parameters, backbone "
        f"{report['model']['backbone_weights'] or 'from scratch'}) trained on "
        f"{report['data']['num_train']} synthetic {s['image_size']}x{s['image_size']} images: "
        f"{s['epochs']} epochs x {s['steps_per_epoch']} steps x {s['batch_size']} images "
        f"({s['images_seen']} images seen), Adam {s['learning_rate']:g}, cosine decay, "
        f"{s['warmup_steps']} warmup steps.",
        "",
        f"**Mean IU {report['mean_iu']:.3f}** on {report['data']['num_val']} validation images; "
        f"trivial baseline (always `{report['baseline']['class']}`): "
        f"{report['baseline_mean_iu']:.3f}.",
        "",
        report_to_markdown(evaluation, title="Evaluation (synthetic val)"),
        "## Timings (seconds)",
        "",
        "| Stage | Seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {k[:-2]} | {v:.1f} |" for k, v in t.items()]
    if report["export"]:
        lines += ["", "## Export", ""]
        lines += [f"- {k}: `{v}`" for k, v in report["export"]["artifacts"].items()]
        lines += [f"- verification passed: **{report['export']['verification_passed']}** "
                  "(see verification.md)"]  # fmt: skip
    lines += ["", "Training curves: `training_curves.png`; predictions (image | truth | "
              "prediction | overlay): `predictions/`.", ""]  # fmt: skip
    return "\n".join(lines)
