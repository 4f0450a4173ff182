"""The `fcn-keras` command line: one subcommand per job, each a thin layer over the library.

`fcn-keras model` is defined here; the other subcommands live in
`fcn_keras/commands/` (one module per group, each with `register(subparsers)`).
Every subcommand declares its arguments and sets `handler`, which imports the
library lazily (so `fcn-keras --help` does not pay for importing TensorFlow).
"""

import argparse
import json
import os
import sys

__all__ = ["main"]


def _add_model(subparsers):
    parser = subparsers.add_parser(
        "model",
        help="build an FCN variant and print its layers and parameter count",
        description="Build an FCN variant (random weights unless given) and print a summary.",
    )
    parser.add_argument("variant", help="fcn32s, fcn16s or fcn8s")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--at-once", action="store_true", help="at-once FCN-8s")
    parser.add_argument(
        "--backbone-weights",
        default=None,
        help="'imagenet' or a VGG16 weights file (default: random weights)",
    )
    parser.add_argument("--summary", action="store_true", help="print Keras's layer table")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(handler=_run_model)


def _run_model(args):
    from fcn_keras.models import build_fcn, normalize_variant

    kwargs = {"num_classes": args.num_classes, "fc_units": args.fc_units,
              "backbone_weights": args.backbone_weights}  # fmt: skip
    if args.at_once:
        if normalize_variant(args.variant) != "fcn8s":
            raise ValueError(f"--at-once applies to fcn8s only; received variant {args.variant!r}.")
        kwargs["at_once"] = True
    model = build_fcn(args.variant, **kwargs)
    if args.summary:
        model.summary()
    figures = {"model": model.name, "parameters": model.count_params(),
               "trainable_parameters": sum(int(w.numpy().size) for w in model.trainable_weights),
               "layers": len(model.layers)}  # fmt: skip
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}")
    return 0


def _registrars():
    from fcn_keras.commands import data, export, train

    return (_add_model, data.register, train.register, export.register)


def build_parser():
    """Return the `fcn-keras` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="fcn-keras",
        description="Fully Convolutional Networks (FCN-32s/16s/8s) for semantic "
        "segmentation in Keras: data, training, evaluation and export.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registrars():
        register(subparsers)
    return parser


def main(argv=None):
    """Run `fcn-keras`; returns the process exit code.

    User errors (bad arguments, bad files) print one line to stderr and exit
    with code 2 instead of a traceback.
    """
    args = build_parser().parse_args(argv)
    # Keep TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) off the terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.handler(args) or 0
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"fcn-keras {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
