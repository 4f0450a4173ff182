"""`fcn-keras` subcommands of the train group: `train`, `evaluate` and `demo` (the main job).

See `fcn_keras/commands/__init__.py`: arguments are declared here, the
library is imported inside the handlers.
"""

import argparse

from fcn_keras.commands.sources import source_kwargs as _source_kwargs

__all__ = ["register"]


def _add_source_args(parser):
    parser.add_argument("--source", default="synthetic",
                        help="data source: synthetic, camvid, voc, sbd, folders, tfds:NAME "
                             "(default: synthetic)")  # fmt: skip
    parser.add_argument("--data-dir", default=None, help="dataset directory (camvid, voc, ...)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="synthetic source: image side in pixels")  # fmt: skip
    parser.add_argument("--source-arg", action="append", metavar="KEY=VALUE",
                        help="further source option (JSON values), repeatable, e.g. "
                             "--source-arg num_examples=200")  # fmt: skip


def _add_train(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train an FCN with model.fit (checkpoints, resumable, TensorBoard/CSV logs)",
        description="Train an FCN-32s/16s/8s. Writes best.keras, last.keras, history.csv, "
        "tensorboard/ and backup/ (BackupAndRestore: rerun the same command to resume an "
        "interrupted run) into --out. Staged recipe: train fcn32s, then fcn16s --init-from "
        "its best.keras, then fcn8s --init-from the fcn16s best.keras.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("variant", help="fcn32s, fcn16s or fcn8s")
    _add_source_args(parser)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--val-split", default="val", help="validation split ('none' to skip)")
    parser.add_argument("--crop-size", type=int, default=None, help="random training crop")
    parser.add_argument("--batch-size", type=int, default=8, help="global batch size")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="batches per epoch (repeats the training set)")  # fmt: skip
    parser.add_argument("--validation-steps", type=int, default=None)
    parser.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam")
    parser.add_argument("--learning-rate", "--lr", type=float, default=None,
                        help="peak learning rate (default: sgd 2e-5, the paper's 1e-10 for a "
                             "summed loss rescaled to a mean loss; adam/adamw 1e-4)")  # fmt: skip
    parser.add_argument("--schedule", choices=("constant", "poly", "cosine"), default="constant")
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--momentum", type=float, default=0.99, help="SGD momentum (paper: 0.99)")
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--loss", choices=("cross_entropy", "focal"), default="cross_entropy")
    parser.add_argument("--class-weights", default=None,
                        help="'median_frequency' or comma-separated weights, one per class")
    parser.add_argument("--init-from", default=None,
                        help="previous stage's .keras (fcn32s for fcn16s, fcn16s for fcn8s)")
    parser.add_argument("--backbone-weights", default=None,
                        help="'imagenet' or a VGG16 weights file (default: random)")
    parser.add_argument("--fc-units", type=int, default=4096, help="fc6/fc7 width (paper: 4096)")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--trainable-upsampling", action="store_true",
                        help="learn the bilinear-initialised upsampling")  # fmt: skip
    parser.add_argument("--mixed-precision", choices=("float32", "mixed_float16",
                                                      "mixed_bfloat16"), default=None)
    parser.add_argument("--xla", action="store_true", help="jit_compile the train step")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"),
                        default="default",
                        help="multi_worker reads the cluster from TF_CONFIG")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-backup", action="store_true", help="disable BackupAndRestore")
    parser.add_argument("--no-tensorboard", action="store_true")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="1: Keras progress bar; 2: one line per epoch")  # fmt: skip
    parser.set_defaults(handler=_run_train)


def _run_train(args):
    from fcn_keras.training import train

    class_weights = args.class_weights
    if class_weights not in (None, "median_frequency"):
        try:
            class_weights = [float(v) for v in class_weights.split(",")]
        except ValueError:
            raise ValueError(
                f"--class-weights expects 'median_frequency' or comma-separated numbers; "
                f"received {args.class_weights!r}."
            ) from None
    model, history = train(
        args.variant, args.source, out_dir=args.out, source_kwargs=_source_kwargs(args),
        val_split=None if args.val_split.lower() == "none" else args.val_split,
        crop_size=args.crop_size, batch_size=args.batch_size, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, validation_steps=args.validation_steps,
        optimizer=args.optimizer, learning_rate=args.learning_rate, schedule=args.schedule,
        warmup_steps=args.warmup_steps, momentum=args.momentum,
        weight_decay=args.weight_decay, loss=args.loss, class_weights=class_weights,
        init_from=args.init_from, backbone_weights=args.backbone_weights,
        fc_units=args.fc_units, dropout=args.dropout,
        trainable_upsampling=args.trainable_upsampling,
        mixed_precision=args.mixed_precision, jit_compile=args.xla, strategy=args.strategy,
        seed=args.seed, backup=not args.no_backup, tensorboard=not args.no_tensorboard,
        verbose=args.verbose,
    )  # fmt: skip
    logs = {k: round(float(v[-1]), 4) for k, v in history.history.items()}
    print(f"trained {model.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(logs.items())))
    print(f"checkpoints: {args.out}/best.keras, {args.out}/last.keras")
    return 0


def _add_evaluate(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="pixel accuracy, mean accuracy, mean IU, frequency-weighted IU and per-class IoU",
        description="Evaluate a model on a dataset split; prints a Markdown table (or JSON).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help="a .keras file, or a .weights.h5 with --variant etc.")
    _add_source_args(parser)
    parser.add_argument("--split", default="val")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument("--variant", default=None, help="for a .weights.h5 file")
    parser.add_argument("--num-classes", type=int, default=None, help="for a .weights.h5 file")
    parser.add_argument("--fc-units", type=int, default=4096, help="for a .weights.h5 file")
    parser.add_argument("--trainable-upsampling", action="store_true",
                        help="for a .weights.h5 file trained with it")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--output", default=None,
                        help="also write <output>.json and <output>.md")  # fmt: skip
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args):
    from fcn_keras.evaluation import evaluate, load_model, report_to_json, report_to_markdown

    source_kwargs = _source_kwargs(args)
    num_classes = args.num_classes
    if args.model.endswith(".weights.h5") and num_classes is None:
        from fcn_keras.data import dataset_info

        num_classes = dataset_info(args.source, **source_kwargs).num_classes
    model = load_model(args.model, variant=args.variant, num_classes=num_classes,
                       fc_units=args.fc_units,
                       trainable_upsampling=args.trainable_upsampling)  # fmt: skip
    report = evaluate(model, args.source, args.split, batch_size=args.batch_size,
                      max_batches=args.max_batches, source_kwargs=source_kwargs)  # fmt: skip
    text_json = report_to_json(report)
    text_md = report_to_markdown(report, title=f"{model.name} on {args.source} {args.split}")
    if args.output:
        with open(args.output + ".json", "w") as f:
            f.write(text_json)
        with open(args.output + ".md", "w") as f:
            f.write(text_md)
    print(text_json if args.json else text_md)
    return 0


def _add_demo(subparsers):
    from fcn_keras.demo import DEMO_DEFAULTS as from_defaults  # one source of the schedule
    parser = subparsers.add_parser(
        "demo",
        help="the main job: train an FCN-8s on synthetic data, evaluate, export, verify, report",
        description="Train a reduced-width FCN-8s from scratch on the built-in synthetic "
        "dataset (sized for a 2-core CPU: under 10 minutes), evaluate it next to the "
        "majority-class baseline, export SavedModel/TFLite/ONNX and verify them, and write "
        "predictions, a training-curve plot and report.md/report.json into --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="fcn_runs/demo", help="output directory")
    parser.add_argument("--epochs", type=int, default=from_defaults["epochs"])
    parser.add_argument("--steps-per-epoch", type=int, default=from_defaults["steps_per_epoch"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=from_defaults["image_size"])
    parser.add_argument("--fc-units", type=int, default=from_defaults["fc_units"])
    parser.add_argument("--learning-rate", "--lr", type=float, default=from_defaults["learning_rate"])
    parser.add_argument("--warmup-steps", type=int, default=from_defaults["warmup_steps"])
    parser.add_argument("--num-train", type=int, default=from_defaults["num_train"],
                        help="synthetic training images")
    parser.add_argument("--num-val", type=int, default=from_defaults["num_val"],
                        help="synthetic validation images")
    parser.add_argument("--backbone-weights", default=None,
                        help="optional VGG16 weights file (default: from scratch)")  # fmt: skip
    parser.add_argument("--no-export", action="store_true", help="skip export and verification")
    parser.add_argument("--mixed-precision", choices=("float32", "mixed_float16",
                                                      "mixed_bfloat16"), default=None)
    parser.add_argument("--xla", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    parser.set_defaults(handler=_run_demo)


def _run_demo(args):
    from fcn_keras.demo import run_demo

    report = run_demo(
        args.out, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size, image_size=args.image_size, fc_units=args.fc_units,
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
        num_train=args.num_train, num_val=args.num_val,
        backbone_weights=args.backbone_weights, export_models=not args.no_export,
        mixed_precision=args.mixed_precision, jit_compile=args.xla, seed=args.seed,
        verbose=args.verbose,
    )  # fmt: skip
    print()
    print(f"mean IU {report['mean_iu']:.3f} on the synthetic val split "
          f"(trivial baseline, always '{report['baseline']['class']}': "
          f"{report['baseline_mean_iu']:.3f}); pixel accuracy {report['pixel_accuracy']:.3f}")
    if report["export"]:
        print(f"exports verified: {report['export']['verification_passed']}")
    print(f"total {report['timings']['total_s']:.0f} s; report: {args.out}/report.md")
    if report["export"] and not report["export"]["verification_passed"]:
        return 1
    return 0


def register(subparsers):
    """Add this group's subcommands to the `fcn-keras` parser."""
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_demo(subparsers)
