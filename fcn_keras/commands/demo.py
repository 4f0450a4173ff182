"""`fcn-keras demo`: the main job end to end on synthetic data (train, evaluate, export, report).

    fcn-keras demo --out fcn_runs/demo

The defaults are `fcn_keras.demo.DEMO_DEFAULTS`, the schedule `run_demo`
itself uses (that module imports TensorFlow only inside its functions).
Arguments are declared here; the library is imported inside the handler (see
`fcn_keras/commands/__init__.py`).
"""

import argparse

from fcn_keras.choices import PRECISIONS

__all__ = ["register"]


def register(subparsers):
    """Add `fcn-keras demo` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    from fcn_keras.demo import DEMO_DEFAULTS as defaults  # one source of the schedule

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
    parser.add_argument("--epochs", type=int, default=defaults["epochs"])
    parser.add_argument("--steps-per-epoch", type=int, default=defaults["steps_per_epoch"])
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    parser.add_argument("--image-size", type=int, default=defaults["image_size"],
                        help="side of the synthetic images")  # fmt: skip
    parser.add_argument("--fc-units", type=int, default=defaults["fc_units"])
    parser.add_argument("--learning-rate", "--lr", type=float, default=defaults["learning_rate"])
    parser.add_argument("--warmup-steps", type=int, default=defaults["warmup_steps"])
    parser.add_argument("--num-train", type=int, default=defaults["num_train"],
                        help="synthetic training images")
    parser.add_argument("--num-val", type=int, default=defaults["num_val"],
                        help="synthetic validation images")
    parser.add_argument("--backbone-weights", default=None,
                        help="optional VGG16 weights file (default: from scratch)")  # fmt: skip
    parser.add_argument("--no-export", action="store_true", help="skip export and verification")
    parser.add_argument("--mixed-precision", choices=PRECISIONS, default=None)
    parser.add_argument("--xla", action="store_true")
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    parser.set_defaults(handler=run)


def run(args):
    """Run the demo `args` describe and print its headline; returns 1 when verification failed."""
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
