"""The test-time augmentation arguments (`--tta`, `--tta-scales`, `--tta-flip`), declared once.

`evaluate`, `predict` and `export` take them; `tta_options(args)` returns
the `fcn_keras.with_tta` keyword arguments, or None without `--tta`. No
TensorFlow here (the command line's help and argument errors stay fast).
"""

import argparse

__all__ = ["add_tta_arguments", "tta_options", "DEFAULT_SCALES"]

DEFAULT_SCALES = (0.75, 1.0, 1.25)


def _scales(text):
    """Parse `"0.75,1,1.25"` into a tuple of positive floats (argparse type)."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--tta-scales takes comma-separated positive numbers, e.g. 0.75,1,1.25; "
                f"received {text!r}."
            ) from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"--tta-scales: {part!r} in {text!r} is not a positive number.")
        values.append(value)
    return tuple(values)


def add_tta_arguments(parser, what="the logits"):
    """Declare `--tta`, `--tta-scales` and `--tta-flip/--no-tta-flip` on `parser`.

    Args:
        parser: an `argparse.ArgumentParser`.
        what: what the views are averaged into, for the help text.
    """
    parser.add_argument("--tta", action="store_true",
                        help=f"test-time augmentation: {what} averaged over the --tta-scales and "
                             "their mirror images (fcn_keras.with_tta)")  # fmt: skip
    parser.add_argument("--tta-scales", type=_scales, default=None, metavar="S1,S2,...",
                        help="with --tta: the input scales, each side rounded half up "
                             f"(default {','.join(f'{s:g}' for s in DEFAULT_SCALES)})")  # fmt: skip
    parser.add_argument("--tta-flip", action=argparse.BooleanOptionalAction, default=None,
                        help="with --tta: also run each scale on the mirror image (default: on)")


def tta_options(args):
    """`{"scales", "flip"}` for `fcn_keras.with_tta` from parsed arguments, or None without --tta.

    Args:
        args: the parsed `argparse.Namespace`.

    Returns:
        dict or None.

    Raises:
        ValueError: `--tta-scales` or `--tta-flip` given without `--tta`.
    """
    if not args.tta:
        given = [flag for flag, value in (("--tta-scales", args.tta_scales), ("--tta-flip", args.tta_flip))
                 if value is not None]  # fmt: skip
        if given:
            raise ValueError(f"{' and '.join(given)} given without --tta: add --tta (or drop them).")
        return None
    return {"scales": args.tta_scales or DEFAULT_SCALES,
            "flip": True if args.tta_flip is None else args.tta_flip}  # fmt: skip
