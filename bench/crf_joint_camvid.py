"""Benchmark: CRF-as-RNN on CamVid — an FCN-8s fine-tuned with its dense CRF in the loop, against the same fine-tuning without it.

`bench/crf_camvid.py` trains the CRF on top of a frozen FCN. Zheng et al.
(ICCV 2015) train both together, so that the FCN learns the unaries the
CRF's mean-field iterations refine best. This benchmark measures what that
adds on CamVid, with the control that makes the comparison fair: the same FCN
fine-tuned for the same epochs, on the same data in the same order, with the
same optimiser, without the CRF.

From a trained CamVid FCN-8s (`--model`, e.g. the FCN-8s row of
`bench/camvid_results.py`) and the CRF settings `bench/crf_camvid.py` wrote
(`--crf-settings`, e.g. its `--save-settings` file, a learned compatibility):

1. Two arms, each `--epochs` epochs of `fcn_keras.train` (`init_from=--model`,
   `crf=` the settings for the joint arm) with the recipe of the last FCN-8s stage: random
   352x480 crops of CamVid train with the pipeline's default augmentation,
   batch 4, Adam 1e-5 with poly decay, dropout 0.5, the FCN in the precision
   `mixed_precision="auto"` picks (bfloat16 where the CPU has it), the CRF
   in float32:
   - `fcn`: the FCN alone, softmax cross-entropy on its logits;
   - `joint`: `with_crf(FCN, saved settings)`: the loss on the CRF's refined
     logits, gradients through the 5 mean-field iterations into the FCN and
     into the CRF's parameters.
   Val mean IU of the arm's own output after every epoch keeps the best
   epoch (`best.keras`). An interrupted arm resumes from its backup; a
   finished one (`done.json`) is not trained again.
2. One pass over **test** (233 images, full 480x360 labels, void ignored;
   every model in float32 through `fcn_keras.export.Predictor`) scoring, each
   in its own `fcn_keras.metrics.ConfusionAccumulator`: the starting FCN, the
   starting FCN + the saved CRF, the `fcn` arm, the `fcn` arm + the saved CRF,
   the `joint` arm (with its own CRF): the four metrics, per-class IoU, trimap
   mean IU at 2/4/8 px.
3. Figures only to `--json`, a Markdown table to `--out/crf_joint_camvid.md`
   (and `--markdown`).

Full run: about 2.5 minutes per epoch and arm plus 4 minutes of scoring on a
2-core Intel Xeon (Sapphire Rapids, AMX) VM in bfloat16.

    .venv/bin/python bench/crf_joint_camvid.py --model ~/fcn_runs/camvid/fcn8s/final.keras \
        --crf-settings ~/fcn_runs/crf_camvid/fcn8s.crf.json \
        --out ~/fcn_runs/crf_joint --json docs/results/crf_joint_camvid.json
    (defaults: --epochs 4, --data-dir ../shared/data/camvid, --seed 0)

Quick check (2 steps per epoch on 128x160 crops, 2 val batches, 6 test images; minutes):
    .venv/bin/python bench/crf_joint_camvid.py --model ... --out /tmp/fcn_keras_runs/crf_joint_quick --quick

Reference: Zheng et al., "Conditional Random Fields as Recurrent Neural
Networks", ICCV 2015 (the CRF as layers, trained with the FCN).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import (CAMVID_DIR, DOCS, add_figure_arguments, check_figure_paths, existing_dir,  # noqa: E402
                     inside_repo_error, keras_file, log, per_class_iou_table, positive_int,
                     scores_row, scores_table, write_figures)

ARMS = ("fcn", "joint")
# The last FCN-8s stage of `bench/camvid_results.py`, continued.
RECIPE = {"crop_size": (352, 480), "batch_size": 4, "optimizer": "adam", "learning_rate": 1e-5,
          "schedule": "poly", "dropout": 0.5}  # fmt: skip
QUICK = {"crop_size": (128, 160), "steps_per_epoch": 2, "validation_steps": 2, "images": 6}
TRIMAP_WIDTHS = (2, 4, 8)


def train_arm(arm, args, settings):
    """Fine-tune one arm (`"fcn"` or `"joint"`) for `args.epochs` epochs; returns its record.

    Resumes an interrupted arm from `--out/<arm>/backup`; an arm with
    `done.json` is read back, not trained.
    """
    from fcn_keras.files import write_json
    from fcn_keras.training import train

    out_dir = os.path.join(args.out, arm)
    done = os.path.join(out_dir, "done.json")
    if os.path.isfile(done):
        with open(done) as f:
            log(f"{arm}: finished earlier ({out_dir})")
            return json.load(f)
    quick = QUICK if args.quick else {}
    start = time.perf_counter()
    _, history = train("fcn8s", "camvid", out_dir=out_dir, source_kwargs={"data_dir": args.data_dir},
                       init_from=args.model, crf=settings if arm == "joint" else None,
                       crop_size=quick.get("crop_size", RECIPE["crop_size"]),
                       batch_size=RECIPE["batch_size"], epochs=args.epochs,
                       steps_per_epoch=quick.get("steps_per_epoch"),
                       validation_steps=quick.get("validation_steps"),
                       optimizer=RECIPE["optimizer"], learning_rate=RECIPE["learning_rate"],
                       schedule=RECIPE["schedule"], dropout=RECIPE["dropout"],
                       mixed_precision="auto", seed=args.seed, tensorboard=False, verbose=2)  # fmt: skip
    with open(os.path.join(out_dir, "train_config.json")) as f:
        derived = json.load(f)["derived"]
    val = [float(v) for v in history.history.get("val_mean_iu", [])]
    record = {"arm": arm, "epochs": args.epochs, "precision": derived["precision"],
              "steps_per_epoch": derived["steps_per_epoch"], "val_mean_iu": val,
              "best_epoch": 1 + max(range(len(val)), key=val.__getitem__) if val else None,
              "seconds": time.perf_counter() - start}  # fmt: skip
    write_json(done, record)
    log(f"{arm}: val mean IU per epoch {', '.join(f'{100 * v:.2f}' for v in val)} "
        f"({record['seconds']:.0f} s)")  # fmt: skip
    return record


def score_test(args, settings):
    """Test scores of the five configurations (every model in float32), in one pass over the split."""
    import numpy as np
    import tensorflow as tf

    from fcn_keras.crf import DenseCRF
    from fcn_keras.data import dataset_info, load_dataset
    from fcn_keras.evaluation import load_model
    from fcn_keras.export import Predictor, float32_model
    from fcn_keras.metrics import ConfusionAccumulator

    info = dataset_info("camvid", data_dir=args.data_dir)
    crf = DenseCRF(info.num_classes, name="crf", **settings)
    refine = tf.function(lambda image, logits: tf.argmax(crf([image, logits]), axis=-1))
    start, arm_fcn, arm_joint = (
        Predictor(float32_model(load_model(path)), engine="keras")
        for path in (args.model, *(os.path.join(args.out, arm, "best.keras") for arm in ARMS)))
    configurations = {
        "FCN-8s": lambda image, logits: np.argmax(logits["start"], axis=-1),
        "FCN-8s + CRF (fine-tuned on the frozen FCN)": lambda image, logits: refine(image, logits["start"]),
        "FCN-8s fine-tuned alone": lambda image, logits: np.argmax(logits["fcn"], axis=-1),
        "FCN-8s fine-tuned alone + the same CRF": lambda image, logits: refine(image, logits["fcn"]),
        "FCN-8s + CRF fine-tuned together (CRF-as-RNN)": lambda image, logits: np.argmax(logits["joint"], axis=-1),
    }  # fmt: skip
    scores = {name: ConfusionAccumulator(info.num_classes, info.ignore_label, TRIMAP_WIDTHS)
              for name in configurations}  # fmt: skip
    data = load_dataset("camvid", "test", batch_size=1, augment=False, shuffle=False,
                        ignore_label=info.ignore_label, data_dir=args.data_dir)  # fmt: skip
    for index, (image, mask) in enumerate(data):
        if args.limit is not None and index >= args.limit:
            break
        image = np.asarray(image)
        logits = {"start": start.predict(image), "fcn": arm_fcn.predict(image), "joint": arm_joint.predict(image)}
        for name, classes in configurations.items():
            scores[name].update(np.asarray(mask), np.asarray(classes(image, logits)))
    results = {name: scores_row(accumulator.result(), info.class_names)
               for name, accumulator in scores.items()}  # fmt: skip
    for name, row in results.items():
        log(f"test: {name}: mean IU {100 * row['mean_iu']:.2f}")
    return results


def to_markdown(result):
    """The result as Markdown: the test table, per-class IoU and the val curves."""
    rows = result["test"]
    lines = [f"CRF-as-RNN on CamVid ({result['model']}): test, {result['images']} images at full size, "
             f"void ignored; each arm {result['epochs']} epochs. Host: {result['host']}.", ""]  # fmt: skip
    lines += scores_table("Configuration", [(name, s, []) for name, s in rows.items()], TRIMAP_WIDTHS)
    lines += per_class_iou_table("Per-class IoU (test):", ["Configuration"],
                                 [([name], s["per_class_iou"]) for name, s in rows.items()])  # fmt: skip
    lines += ["", "Val mean IU after each epoch (the best epoch's model is scored on test):", ""]
    for arm, record in result["arms"].items():
        curve = ", ".join(f"{100 * v:.2f}" for v in record["val_mean_iu"])
        lines.append(f"- {arm}: {curve} (best epoch {record['best_epoch']}; {record['seconds']:.0f} s, "
                     f"{record['precision']})")  # fmt: skip
    return "\n".join(lines) + "\n"


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", type=keras_file, required=True, help="trained CamVid FCN-8s, a .keras file")
    parser.add_argument("--crf-settings", required=True,
                        help="CRF settings file (e.g. bench/crf_camvid.py's --save-settings)")
    parser.add_argument("--data-dir", type=existing_dir, default=CAMVID_DIR, help="CamVid in SegNet layout")
    parser.add_argument("--out", required=True, help="checkpoints, cache and results, outside the repo")
    add_figure_arguments(parser)
    parser.add_argument("--epochs", type=positive_int, default=4, help="fine-tuning epochs of each arm")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data order and dropout")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['steps_per_epoch']} steps per epoch on 128x160 crops, "
                             f"{QUICK['validation_steps']} val batches, {QUICK['images']} test images")  # fmt: skip
    args = parser.parse_args(argv)
    error = inside_repo_error(args.out, what="checkpoints and the cache")
    if error:
        parser.error(error)
    check_figure_paths(parser, [("--json", args.json, ".json"), ("--markdown", args.markdown, ".md")], DOCS)
    if not os.path.isfile(args.crf_settings):
        parser.error(f"--crf-settings {args.crf_settings!r} does not exist: run bench/crf_camvid.py "
                     "with --save-settings first")  # fmt: skip
    args.limit = QUICK["images"] if args.quick else None
    return args


def main(argv=None):
    args = _parse_args(argv)
    wall = time.perf_counter()

    from fcn_keras.crf import load_crf_settings
    from fcn_keras.distribute import cpu_model_name

    settings = load_crf_settings(args.crf_settings)
    settings.pop("num_classes", None)
    arms = {arm: train_arm(arm, args, settings) for arm in ARMS}
    test = score_test(args, settings)
    result = {"benchmark": "crf_joint_camvid", "model": os.path.basename(args.model),
              "host": f"{cpu_model_name()} ({os.cpu_count()} cores)", "quick": args.quick,
              "epochs": args.epochs, "seed": args.seed, "recipe": {**RECIPE, "crop_size": list(RECIPE["crop_size"])},
              "crf_settings": settings, "arms": arms, "images": next(iter(test.values()))["images"],
              "test": test, "wall_seconds": time.perf_counter() - wall}  # fmt: skip
    markdown = to_markdown(result)
    write_figures(result, markdown, args.json, os.path.join(args.out, "crf_joint_camvid.md"))
    write_figures(result, markdown, None, args.markdown)
    print("\n" + markdown)
    log(f"wall time {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
