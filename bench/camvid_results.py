"""The CamVid results run: FCN-32s -> FCN-16s -> FCN-8s, staged, from a pretrained VGG16.

One command, fixed seed: trains the three stages on CamVid's train split (SegNet
layout, 11 classes, void ignored) with `fcn_keras.train`, each stage starting
from the previous one (`init_from`: new score layers at zero, as in the
paper), evaluates every stage on val with `fcn_keras.evaluate` (the paper's
four metrics and per-class IoU) and writes `results.json` and `results.md`.
Weights and logs go to `--out`, which must lie outside the repository
(CamVid's licence; models are never committed).

GPU run (the README's results table):
    python bench/camvid_results.py --data-dir ../shared/data/camvid \
        --backbone-weights ../shared/weights/vgg16_notop_hed_bsds500.weights.h5 \
        --out /tmp/fcn_keras_runs/camvid
CPU check at reduced scale (minutes, not a result):
    python bench/camvid_results.py --quick --out /tmp/fcn_keras_runs/camvid_quick ...

Reference: Long et al. 2015, Section 4.2 (staged training) and Section 5
(metrics). Published CamVid 11-class anchors: FCN-8s 57.0 mean IU, SegNet 60.1.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stage -> (epochs, learning rate) of the full run; each stage starts from the last.
STAGES = {"fcn32s": (60, 1e-4), "fcn16s": (30, 1e-5), "fcn8s": (30, 1e-5)}
QUICK = {"fcn32s": (1, 1e-4), "fcn16s": (1, 1e-5), "fcn8s": (1, 1e-5)}


def _outside_repo(path):
    path = os.path.realpath(path)
    return not (path == REPO or path.startswith(REPO + os.sep))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="CamVid in SegNet layout")
    parser.add_argument("--backbone-weights", required=True, help="VGG16 weights file")
    parser.add_argument("--out", required=True, help="run directory, outside the repo")
    parser.add_argument("--stages", default="fcn32s,fcn16s,fcn8s")
    parser.add_argument("--crop", type=int, nargs=2, default=(352, 480), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--mixed-precision", default="mixed_bfloat16")
    parser.add_argument("--jit-compile", action="store_true", help="XLA train step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="one short epoch per stage at 128x160 crops, fc_units 256")  # fmt: skip
    args = parser.parse_args()
    if not _outside_repo(args.out):
        parser.error(f"--out {args.out!r} is inside the repository; weights must live outside it")

    import fcn_keras

    schedule = QUICK if args.quick else STAGES
    crop = (128, 160) if args.quick else tuple(args.crop)
    fc_units = 256 if args.quick else args.fc_units
    precision = None if args.mixed_precision in ("", "float32", "none") else args.mixed_precision
    source_kwargs = {"data_dir": args.data_dir}
    results, previous = {}, None
    for stage in args.stages.split(","):
        epochs, learning_rate = schedule[stage]
        stage_dir = os.path.join(args.out, stage)
        start = time.perf_counter()
        model, _ = fcn_keras.train(
            stage, "camvid", out_dir=stage_dir, source_kwargs=source_kwargs,
            crop_size=crop, batch_size=args.batch_size, epochs=epochs,
            steps_per_epoch=2 if args.quick else None,
            optimizer=args.optimizer, learning_rate=learning_rate,
            init_from=previous, backbone_weights=args.backbone_weights,
            fc_units=fc_units, mixed_precision=precision, jit_compile=args.jit_compile,
            seed=args.seed, verbose=2,
        )  # fmt: skip
        train_s = time.perf_counter() - start
        previous = os.path.join(stage_dir, "final.keras")
        model.save(previous)
        report = fcn_keras.evaluate(model, "camvid", "val", batch_size=1,
                                    source_kwargs=source_kwargs,
                                    max_batches=4 if args.quick else None)  # fmt: skip
        report.pop("confusion_matrix")
        report.update(train_seconds=train_s, epochs=epochs, learning_rate=learning_rate)
        results[stage] = report
        print(f"{stage}: mean IU {report['mean_iu']:.4f}, pixel acc "
              f"{report['pixel_accuracy']:.4f} ({train_s:.0f} s)", flush=True)  # fmt: skip

    settings = {k: v for k, v in vars(args).items()}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"settings": settings, "results": results}, f, indent=2)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        for stage, report in results.items():
            f.write(fcn_keras.evaluation.report_to_markdown(report, title=stage) + "\n\n")
    print(open(os.path.join(args.out, "results.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
