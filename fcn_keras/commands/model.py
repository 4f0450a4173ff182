"""`fcn-keras model`: build an FCN variant and print its layer and parameter counts.

    fcn-keras model fcn8s --json
    fcn-keras model fcn16s --num-classes 12 --fc-units 512 --summary

Arguments are declared here; the library is imported inside the handler (see
`fcn_keras/commands/__init__.py`).
"""

from fcn_keras.choices import VARIANTS

__all__ = ["register"]


def register(subparsers):
    """Add `fcn-keras model` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    parser = subparsers.add_parser(
        "model",
        help="build an FCN variant and print its layers and parameter count",
        description="Build an FCN variant (random weights unless given) and print a summary.",
    )
    parser.add_argument("variant", help=", ".join(VARIANTS))
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
    parser.set_defaults(handler=run)


def run(args):
    """Build the model `args` describe and print its figures; returns the exit code."""
    import json

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
