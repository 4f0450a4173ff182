"""Which loss to train an FCN with on CamVid: one at-once FCN-8s per loss, same start and budget.

Question: on CamVid (SegNet layout, 11 classes, void ignored), does a loss
other than the paper's per-pixel cross-entropy give a better FCN-8s, and on
which classes? The small, thin classes (pole, sign, pedestrian, bicyclist)
are where class balancing and IoU surrogates are expected to matter.

Protocol: every loss trains the at-once FCN-8s (one stage from the backbone)
from the same ImageNet VGG16 weights, with the same seed (same fc6/fc7
initialisation, same shuffling and augmentation), the same schedule and the
same budget: `--epochs` (8) epochs of CamVid train at batch 4, Adam with
peak rate 1e-4 and poly decay, fc6/fc7 width 1024, 352x480 crops scaled by
`--scale`. Only `train(loss=..., class_weights=...)` differs between rows, as
`fcn-keras train --loss ... --class-weights ...` spells it:

- `cross_entropy`: `--loss cross_entropy` (the paper's loss);
- `cross_entropy_median_frequency`: `--loss cross_entropy --class-weights
  median_frequency` (weights counted on the training split);
- `focal`: `--loss focal` (gamma 2.0);
- `lovasz`: `--loss lovasz` (Lovasz-Softmax over the batch, present classes);
- `cross_entropy+lovasz`: `--loss cross_entropy+lovasz` (weight 1.0);
- `dice`: `--loss dice` (soft Dice, smoothing 1.0, present classes).

Nothing is chosen on test: each row's model is the one after its last epoch
(no early stopping, no per-loss tuning), scored on val (where a choice would
be made) and once on test. Scale: with the default `--scale 0.5` the
training crops (176x240) and the evaluation input are half size; evaluation
resizes the logits back, so every score is on the full 480x360 labels.
`fcn_keras.results.run_stages` does the training and scoring, one row per
loss under `--out/<loss>/` (see it for resuming): rerunning the same command
skips finished losses and resumes an interrupted one from its backup; a loss
directory trained with other settings is an error naming them.

Full run (about 45 minutes to an hour on a 2-core Intel Xeon (Sapphire
Rapids, AMX) VM in bfloat16: a one-stage FCN-8s epoch at full scale takes
about 130 s there, at scale 0.5 roughly a quarter of that, so about 5 minutes
of training per loss, plus evaluation of 101 val and 233 test images per loss;
the two Lovasz rows sort every class's errors at each step, about 0.25
CPU-seconds per batch of four 176x240 crops, up to half as long again):
    python bench/losses_camvid.py --out /tmp/fcn_keras_runs/losses_camvid \
        --json docs/results/losses_camvid.json
    (defaults: --data-dir ../shared/data/camvid,
     --backbone-weights ../shared/weights/vgg16_notop_imagenet.weights.h5,
     --losses all six, --scale 0.5, --epochs 8, --mixed-precision auto)
CPU check (minutes, not a result: one 2-step epoch per loss at 128x160
crops, fc_units 256, 4 evaluation images):
    python bench/losses_camvid.py --quick --out /tmp/fcn_keras_runs/losses_quick \
        --losses cross_entropy,lovasz

Outputs: `--out/results.json` and `--out/results.md` (one row per loss: val
and test mean IU, test pixel accuracy, mean accuracy, frequency-weighted IU,
per-class IoU, training minutes; then per-class val IoU, and the trimap
scores); `--json` a figures-only copy (no weights, no paths), `--markdown`
a copy of the tables.

References: Long et al. 2015 (FCN, per-pixel cross-entropy); Eigen & Fergus,
ICCV 2015 (median-frequency balancing); Lin et al., ICCV 2017 (focal loss);
Berman, Rannen Triki & Blaschko, CVPR 2018 (Lovasz-Softmax); Milletari,
Navab & Ahmadi, 3DV 2016 (V-Net, Dice loss).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import (add_camvid_training_arguments, inside_repo_error,  # noqa: E402
                     package_choices, write_figures)

STAGE = "fcn8s_atonce"  # the `fcn_keras.results` row every loss trains

# Row name -> the `fcn_keras.train` arguments that differ between rows (names and options
# as `fcn_keras.training.make_loss` and `fcn-keras train --loss/--class-weights` take them;
# every loss option is left at its default).
LOSS_ROWS = {
    "cross_entropy": {"loss": "cross_entropy"},
    "cross_entropy_median_frequency": {"loss": "cross_entropy",
                                       "class_weights": "median_frequency"},
    "focal": {"loss": "focal"},
    "lovasz": {"loss": "lovasz"},
    "cross_entropy+lovasz": {"loss": "cross_entropy+lovasz"},
    "dice": {"loss": "dice"},
}  # fmt: skip
# CamVid's small, thin classes, shown first in the per-class columns.
SMALL_CLASSES = ("Pole", "SignSymbol", "Pedestrian", "Bicyclist")


def parse_losses(text):
    """Parse `"cross_entropy,lovasz"` into a tuple of `LOSS_ROWS` names (validated, in order).

    Args:
        text: comma-separated row names, or `"all"`.

    Returns:
        Tuple of names in the given order (duplicates removed).

    Example:
    >>> parse_losses("lovasz, cross_entropy")
    ('lovasz', 'cross_entropy')
    """
    if text.strip().lower() == "all":
        return tuple(LOSS_ROWS)
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in LOSS_ROWS]
    if unknown or not names:
        raise ValueError(f"--losses: unknown or empty {unknown or text!r}; expected 'all' or a "
                         f"comma-separated subset of {list(LOSS_ROWS)}.")  # fmt: skip
    return tuple(dict.fromkeys(names))


def command_options(row):
    """The `fcn-keras train` options that select a row's loss, e.g. `--loss focal`.

    Args:
        row: a `LOSS_ROWS` name.

    Returns:
        The options as one string.

    Example:
    >>> command_options("cross_entropy_median_frequency")
    '--loss cross_entropy --class-weights median_frequency'
    """
    recipe = LOSS_ROWS[row]
    weights = recipe.get("class_weights")
    return f"--loss {recipe['loss']}" + (f" --class-weights {weights}" if weights else "")


def run_order(out_dir, losses):
    """The losses in the order to run them: finished rows, then interrupted ones, then new ones.

    `run_stages` compares a row's recorded settings with the request before
    training it; visiting the rows that hold training first makes a request
    with other settings than an earlier run's (e.g. a full run into a
    `--quick` directory) fail before any new row trains.

    Args:
        out_dir: the run directory (`--out`).
        losses: `LOSS_ROWS` names in the requested order.

    Returns:
        The same names, reordered (stable within each group).

    Example:
    >>> run_order("/tmp/runs/losses", ("cross_entropy", "lovasz"))  # lovasz finished earlier
    ('lovasz', 'cross_entropy')
    """
    from fcn_keras.results import stage_finished

    def group(name):
        stage_dir = os.path.join(out_dir, name, STAGE)
        if stage_finished(stage_dir):
            return 0
        return 1 if os.path.isdir(os.path.join(stage_dir, "backup")) else 2

    return tuple(sorted(losses, key=group))


def _class_order(rows, split):
    """Class names of the reports on `split`: the small classes first, then the others."""
    names = []
    for row in rows.values():
        for name in (row.get(split) or {}).get("per_class_iou") or {}:
            if name not in names:
                names.append(name)
    return [n for n in SMALL_CLASSES if n in names] + [n for n in names if n not in SMALL_CLASSES]


def losses_to_markdown(results):
    """The Markdown tables of a losses run: test scores per loss, then per-class val IoU.

    Args:
        results: the dict `main` writes to `results.json` (`rows` keyed by
            loss, each a `run_stages` row with `val` and `test` reports).

    Returns:
        The Markdown text (a settings line, the test table with val mean IU
        beside it, the val per-class table, the loss chosen on val).

    Example:
    >>> print(losses_to_markdown(json.load(open("/tmp/runs/losses/results.json"))))
    """
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
    rows, settings, host = results["rows"], results.get("settings", {}), results.get("host", {})
    lines = [
        f"At-once FCN-8s on CamVid train, one row per loss: {settings.get('epochs')} "
        f"epoch{'' if settings.get('epochs') == 1 else 's'}, "
        f"batch {settings.get('batch_size')}, {settings.get('optimizer')} "
        f"{settings.get('learning_rate'):g} {settings.get('schedule')}, fc_units "
        f"{settings.get('fc_units')}, input scale {settings.get('scale'):g} (scores on the "
        f"full 480x360 labels), seed {settings.get('seed')}"
        + (", quick check (not a result)" if settings.get("quick") else "")
        + f"; host: {host.get('cpu', '?')} ({host.get('cpu_count', '?')} cores).",
        "",
    ]
    for split, title in (("test", "Test (scored once; nothing chosen on it)"),
                         ("val", "Val (where a loss would be chosen)")):  # fmt: skip
        classes = _class_order(rows, split)
        head = ["Loss (`fcn-keras train`)", "Val mean IU"] + (["Test mean IU"] if split == "test"
                                                              else [])  # fmt: skip
        head += ["Pixel acc.", "Mean acc.", "f.w. IU", *classes, "Train min", "Precision"]
        lines += [f"{title}: scores in %, per-class IoU on {split}.", "",
                  "| " + " | ".join(head) + " |", "| --- " + "| ---: " * (len(head) - 1) + "|"]
        for name, row in rows.items():
            report = row.get(split) or {}
            iou = report.get("per_class_iou") or {}
            cells = [f"`{command_options(name)}`", pct((row.get("val") or {}).get("mean_iu"))]
            if split == "test":
                cells.append(pct(report.get("mean_iu")))
            cells += [pct(report.get(key)) for key in
                      ("pixel_accuracy", "mean_accuracy", "frequency_weighted_iu")]
            cells += [pct(iou.get(c)) for c in classes]
            cells += [f"{row.get('train_seconds', 0) / 60:.1f}", str(row.get("precision"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    scored = {name: row["val"]["mean_iu"] for name, row in rows.items()
              if (row.get("val") or {}).get("mean_iu") is not None}  # fmt: skip
    if scored:
        best = max(scored, key=scored.get)
        test = (rows[best].get("test") or {}).get("mean_iu")
        lines.append(f"Chosen on val: `{command_options(best)}` (val mean IU "
                     f"{pct(scored[best])}, test mean IU {pct(test)}).")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None):
    choices = package_choices()  # `import fcn_keras.choices` would import TensorFlow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_camvid_training_arguments(parser, choices)
    parser.add_argument("--out", required=True, help="run directory, outside the repo")
    parser.add_argument("--losses", default="all",
                        help=f"'all' or a comma-separated subset of {list(LOSS_ROWS)}, in order")
    parser.add_argument("--json", dest="json_copy", default=None, metavar="PATH",
                        help="also write the figures (no weights, no paths) to this JSON file")
    parser.add_argument("--markdown", default=None, metavar="PATH",
                        help="also write the tables to this file")
    parser.add_argument("--scale", type=float, default=0.5,
                        help="image scale of training and evaluation input, in (0, 1]")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="peak learning rate")
    parser.add_argument("--quick", action="store_true",
                        help="one 2-step epoch per loss at 128x160 crops, fc_units 256, "
                             "4 evaluation images")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        losses = parse_losses(args.losses)
    except ValueError as e:
        parser.error(str(e))
    error = inside_repo_error(args.out, what="weights and logs")
    if error:
        parser.error(error)
    for flag, path in (("--data-dir", args.data_dir),
                       ("--backbone-weights", args.backbone_weights)):  # fmt: skip
        if not os.path.exists(path):
            parser.error(f"{flag} {path!r} does not exist")
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1; received {args.epochs}")

    from fcn_keras.results import figures_only, results_to_markdown, run_stages
    from fcn_keras.files import write_json

    if args.quick:  # the settings recorded are the ones used
        args.fc_units, args.crop, args.epochs = 256, (128, 160), 1
    base_kwargs = dict(batch_size=args.batch_size, fc_units=args.fc_units,
                       optimizer=args.optimizer, schedule=args.schedule,
                       mixed_precision=args.mixed_precision, jit_compile=args.jit_compile,
                       seed=args.seed, backbone_weights=args.backbone_weights, verbose=2,
                       steps_per_epoch=2 if args.quick else None)  # fmt: skip
    settings = {**vars(args), "losses": list(losses), "stage": STAGE}
    results = {"settings": settings, "host": None, "rows": {}}
    rows = {}
    for name in run_order(args.out, losses):
        print(f"=== {name}: fcn-keras train {command_options(name)} ===", flush=True)
        row_results = run_stages(
            os.path.join(args.out, name), [STAGE],
            schedules={STAGE: (args.epochs, args.learning_rate)}, source="camvid",
            source_kwargs={"data_dir": args.data_dir}, scale=args.scale,
            crop_size=tuple(args.crop), test=True,
            max_eval_batches=4 if args.quick else None,
            train_kwargs={**base_kwargs, **LOSS_ROWS[name]},
            settings={**settings, "loss_row": name, **LOSS_ROWS[name]},
        )  # fmt: skip
        row = row_results["rows"][STAGE]
        config = os.path.join(row["files"]["logs"], "train_config.json")
        with open(config) as f:  # the weights train() used ("median_frequency" counted)
            class_weights = json.load(f)["derived"]["class_weights"]
        rows[name] = {**LOSS_ROWS[name], "class_weights_used": class_weights, **row}
        results["rows"] = {n: rows[n] for n in losses if n in rows}  # in the requested order
        results["host"] = row_results["host"]
        write_json(os.path.join(args.out, "results.json"), results)  # after every loss

    markdown = losses_to_markdown(results) + "\n" + results_to_markdown(results, "test")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown)
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(markdown)
    if args.json_copy:
        figures = figures_only(results)
        figures["settings"].pop("markdown", None)
        write_figures(figures, markdown, args.json_copy)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
