"""The CamVid results run: FCN-32s -> 16s -> 8s staged and FCN-8s at-once, resumable.

One command, fixed seed: trains the requested rows on CamVid's train split
(SegNet layout, 11 classes, void ignored) from the ImageNet-pretrained VGG16,
each staged row starting from the previous row's final model (`init_from`: new
score layers at zero, as in the paper), evaluates every finished model on val
(for choosing) and, with `--test`, once on test: pixel accuracy, mean
accuracy, mean IU, frequency-weighted IU, per-class IoU, trimap mean IU at
2/4/8/16 px, training wall time, host CPU, precision and scale, written to
`--out`/results.json and results.md (published figures beside them).
`fcn_keras.results.run_stages` does the work (see it for how resuming works):
rerunning the same command skips finished rows and resumes an interrupted one
from its backup; a row finished or interrupted with other settings (e.g. a
`--quick` run into the same `--out`) is an error naming them: use another
`--out` for other settings. Weights and logs go only to `--out`, which must lie outside
the repository; `--json-copy` writes a figures-only copy (no weights, no paths),
e.g. under docs/results/.

Full run (GPU):
    python bench/camvid_results.py --out /tmp/fcn_keras_runs/camvid --test \
        --json-copy docs/results/camvid.json
    (defaults: --data-dir ../shared/data/camvid,
     --backbone-weights ../shared/weights/vgg16_notop_imagenet.weights.h5,
     --stages fcn32s,fcn16s,fcn8s,fcn8s_atonce, --mixed-precision auto)
Slow host: add `--scale 0.5` (training and evaluation input at half size;
scores always on the full 480x360 labels).

The levers, one at a time on val (`fcn_keras.results.LEVERS`; `--stages levers`
is the staged rows, `fcn8s+tta`, `fcn8s+sas2`, the `_long`, `_fc4096` and
`_whole` chains, `fcn8s_lovasz` and `fcn8s_crf`), into the same `--out` as the
staged rows they are compared with (finished rows are reused):
    python bench/camvid_results.py --out /tmp/fcn_keras_runs/camvid --stages levers
The final recipe, the levers val kept combined, scored once on test beside the
staged FCN-8s (e.g. if val kept long, whole, lovasz and tta):
    python bench/camvid_results.py --out /tmp/fcn_keras_runs/camvid --stages fcn8s,final \
        --final-levers long,whole,lovasz,tta --test-rows fcn8s,final \
        --json-copy docs/results/camvid_final.json
CPU check at reduced scale (minutes, not a result):
    python bench/camvid_results.py --quick --out /tmp/fcn_keras_runs/camvid_quick

Reference: Long et al. 2015, Section 4.2 (staged training) and Section 5
(metrics). Published CamVid 11-class test mean IU: FCN-8s 57.0, SegNet 60.1,
DeepLab-LargeFOV 61.6, Dilation8 65.3.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import (add_camvid_training_arguments, inside_repo_error,  # noqa: E402
                     package_choices, write_figures)


# Row -> (epochs, peak learning rate) of the full run (Adam, poly decay per row), chosen on
# val on a 2-core Intel Xeon (Sapphire Rapids, AMX) VM in bfloat16, where it trains in 57
# minutes (106-159 s per epoch of 352x480 crops, every row): val mean IU 0.612 / 0.681 /
# 0.715, against 0.587 / 0.660 / 0.692 for 10 / 4 / 4 epochs (whose FCN-32s training mean IU
# still rose 1-2 points an epoch at its end). A one-stage FCN-8s (fc_units 1024, batch 4,
# Adam 1e-4 poly, 20 epochs) reached 0.72 there. Each staged row starts from the last at a
# tenth of the rate (the paper lowers it per stage). The at-once FCN-8s gets the staged rows'
# budget, 16 + 6 + 6 = 28 epochs (the same data, about the same time), at the first stage's
# rate: the comparison of the two ways of training FCN-8s that the PAMI version makes.
SCHEDULES = {"fcn32s": (16, 1e-4), "fcn16s": (6, 1e-5), "fcn8s": (6, 1e-5),
             "fcn8s_atonce": (28, 1e-4)}  # fmt: skip
# Lever rows. `long`: 1.5x every staged row (24 / 9 / 9). fc4096 and whole images: the staged
# schedule, so that only their lever differs. The finishing stages (from the staged FCN-8s):
# 4 epochs at the last stage's rate, the budget of the CRF-as-RNN fine-tuning measured before
# (bench/crf_joint_camvid.py). The final rows take their levers' rows' schedules.
for _variant, (_epochs, _rate) in list(SCHEDULES.items())[:3]:
    SCHEDULES[f"{_variant}_long"] = (_epochs * 3 // 2, _rate)
    SCHEDULES[f"{_variant}_fc4096"] = SCHEDULES[f"{_variant}_whole"] = (_epochs, _rate)
SCHEDULES.update({"fcn8s_lovasz": (4, 1e-5), "fcn8s_crf": (4, 1e-5)})
QUICK = {stage: (1, rate) for stage, (_, rate) in SCHEDULES.items()}


def main(argv=None):
    choices = package_choices()  # `import fcn_keras.choices` would import TensorFlow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_camvid_training_arguments(parser, choices)
    parser.add_argument("--out", required=True, help="run directory, outside the repo")
    parser.add_argument("--stages", default="fcn32s,fcn16s,fcn8s,fcn8s_atonce",
                        help="rows to run, in order")  # fmt: skip
    parser.add_argument("--test", action="store_true", help="also evaluate every row on CamVid test")
    parser.add_argument("--test-rows", default=None,
                        help="evaluate only these rows on CamVid test ('final': the final "
                             "recipe's scored row)")  # fmt: skip
    parser.add_argument("--final-levers", default="",
                        help="the levers the final recipe ('final' in --stages) combines, from "
                             "long, fc4096, whole, lovasz, crf, tta, sas2")  # fmt: skip
    parser.add_argument("--json-copy", default=None,
                        help="also write the figures (no weights, no paths) to this JSON file")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="image scale of training and evaluation input, in (0, 1]")
    parser.add_argument("--quick", action="store_true",
                        help="one 2-step epoch per row at 128x160 crops, fc_units 256, "
                             "4 evaluation images")  # fmt: skip
    args = parser.parse_args(argv)
    error = inside_repo_error(args.out, what="weights and logs")
    if error:
        parser.error(error)
    for flag, path in (("--data-dir", args.data_dir),
                       ("--backbone-weights", args.backbone_weights)):  # fmt: skip
        if not os.path.exists(path):
            parser.error(f"{flag} {path!r} does not exist")

    from fcn_keras.results import figures_only, results_to_markdown, run_stages

    if args.quick:  # the settings recorded are the ones used
        args.fc_units, args.crop = 256, (128, 160)
    train_kwargs = dict(batch_size=args.batch_size, fc_units=args.fc_units, head=args.head,
                        optimizer=args.optimizer, schedule=args.schedule,
                        mixed_precision=args.mixed_precision,
                        jit_compile=args.jit_compile, seed=args.seed,
                        backbone_weights=args.backbone_weights, verbose=2,
                        steps_per_epoch=2 if args.quick else None)  # fmt: skip
    results = run_stages(
        args.out, args.stages, schedules=QUICK if args.quick else SCHEDULES, source="camvid",
        source_kwargs={"data_dir": args.data_dir}, scale=args.scale,
        crop_size=tuple(args.crop), test=True if args.test else args.test_rows,
        final_levers=args.final_levers,
        max_eval_batches=4 if args.quick else None, train_kwargs=train_kwargs,
        settings={**vars(args), "quick": args.quick},
    )  # fmt: skip
    markdown = "".join(results_to_markdown(results, split) + "\n"
                       for split in (("val", "test") if args.test or args.test_rows
                                     else ("val",)))  # fmt: skip
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown)
    if args.json_copy:
        write_figures(figures_only(results), markdown, args.json_copy)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
