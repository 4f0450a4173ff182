"""The data-source arguments every `fcn-keras` subcommand shares, declared once.

`add_source_arguments(parser)` adds `--source`, `--data-dir`, `--image-size`
and `--source-arg KEY=VALUE`; `source_kwargs(args)` turns them into the
source's own options, for `fcn_keras.data.sources.resolve_source(name,
**options)`: commands build the `Source` first and hand it to
`load_dataset`, so an option such as the synthetic source's `seed` never
fills one of `load_dataset`'s own arguments. Every command
that reads data declares them through this module (`data` with the source
positional). An option the chosen source does not take is refused by
`fcn_keras.data.sources.resolve_source` with a message naming it and listing
those the source takes. Importing this module does not import TensorFlow.
"""

import json

__all__ = ["add_source_arguments", "source_kwargs"]


def add_source_arguments(parser, *, default="synthetic", positional=False, default_help=None):
    """Declare the source arguments on an argparse parser.

    Args:
        parser: an `argparse.ArgumentParser` (or subparser).
        default: the `--source` default. Defaults to `"synthetic"`; None makes
            the source optional (the command then runs without data, or
            picks one itself).
        positional: declare the source as a positional `source` argument
            instead of `--source`. Defaults to False.
        default_help: how `--help` words the default, for a command that
            picks the source itself when `default` is None. Defaults to
            None: the default value.

    Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_source_arguments(parser)
    >>> source_kwargs(parser.parse_args(["--image-size", "32", "--source-arg", "seed=3"]))
    {'seed': 3, 'image_size': 32}
    """
    help_text = "data source: synthetic, camvid, voc, sbd, folders or tfds:NAME"
    if positional:
        parser.add_argument("source", help=help_text)
    else:
        # "%(default)" in a help text keeps ArgumentDefaultsHelpFormatter from repeating the
        # default; "%(default).0s" prints nothing.
        shown = "%(default)s" if default_help is None else f"{default_help}%(default).0s"
        parser.add_argument("--source", default=default, help=f"{help_text} (default: {shown})")
    parser.add_argument("--data-dir", default=None,
                        help="dataset directory (camvid, voc, sbd, folders)")  # fmt: skip
    parser.add_argument("--image-size", type=int, default=None,
                        help="synthetic source: image side in pixels")  # fmt: skip
    parser.add_argument("--source-arg", action="append", metavar="KEY=VALUE",
                        help="further source option (JSON values), repeatable, e.g. "
                             "--source-arg num_examples=200; an option the source does not "
                             "take is an error listing those it takes")  # fmt: skip


def source_kwargs(args):
    """Collect a source's options from `--source-arg KEY=VALUE` (JSON values), `--data-dir`, `--image-size`.

    Args:
        args: the parsed `argparse.Namespace` of a parser given `add_source_arguments`.

    Returns:
        dict of source options for `resolve_source(source, **options)`.

    Raises:
        ValueError: a `--source-arg` without `=`.
    """
    kwargs = {}
    for pair in getattr(args, "source_arg", None) or []:
        if "=" not in pair:
            raise ValueError(f"--source-arg expects KEY=VALUE; received {pair!r}.")
        key, value = pair.split("=", 1)
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    if getattr(args, "data_dir", None) is not None:
        kwargs["data_dir"] = args.data_dir
    if getattr(args, "image_size", None) is not None:
        kwargs["image_size"] = args.image_size
    return kwargs
