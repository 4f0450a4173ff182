"""The `fcn-keras` command line: one subcommand per job, each a thin layer over the library.

The subcommands live in `fcn_keras/commands/`, one module each (`COMMANDS`),
each with `register(subparsers)`; this module only builds the parser from
them and runs the chosen handler. Help and argument errors never import
TensorFlow. Before a handler runs, TensorFlow is imported with its start-up
and C++ logs silenced (`TF_CPP_MIN_LOG_LEVEL=3`, absl at ERROR) unless
`fcn-keras --verbose` is given; a `TF_CPP_MIN_LOG_LEVEL` already set in the
environment is kept.
"""

import argparse
import importlib
import os
import sys
import tempfile

__all__ = ["main", "build_parser", "COMMANDS"]

# The subcommands, in the order `fcn-keras --help` lists them: modules of fcn_keras.commands.
COMMANDS = ("model", "data", "train", "evaluate", "demo", "export", "predict", "serve")


def _command_modules():
    return [importlib.import_module(f"fcn_keras.commands.{name}") for name in COMMANDS]


def build_parser():
    """Return the `fcn-keras` argument parser with every subcommand registered.

    Returns:
        An `argparse.ArgumentParser`; each subcommand sets `handler` on the
        parsed namespace.

    Example:
    >>> build_parser().parse_args(["model", "fcn8s"]).variant
    'fcn8s'
    """
    parser = argparse.ArgumentParser(
        prog="fcn-keras",
        description="Fully Convolutional Networks (FCN-32s/16s/8s) for semantic "
        "segmentation in Keras: data, training, evaluation and export.",
    )
    parser.add_argument("--verbose", dest="show_logs", action="store_true",
                        help="show TensorFlow's start-up and C++ logs (default: quiet); "
                             "goes before the command")  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


def _load_library(show_logs):
    """Import TensorFlow and the FCN layers, quietly unless `show_logs`; call before any handler.

    TensorFlow 2.21 writes its start-up lines (oneDNN, CUDA probing, CPU
    features) through C++ logging before `TF_CPP_MIN_LOG_LEVEL` takes effect,
    so the import itself runs with the process's stderr sent to a temporary
    file, which is replayed only if the import fails. Loading the
    package's public names registers its layers, losses and metrics with
    Keras, so that any `.keras` file a command loads finds them.
    """
    if show_logs:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if show_logs or "tensorflow" in sys.modules:  # nothing to hide, or already loaded
        from fcn_keras import train  # noqa: F401  (loads every public name)
    else:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as log:
            os.dup2(log.fileno(), 2)
            try:
                from fcn_keras import train  # noqa: F401  (loads every public name)
            except BaseException:
                os.dup2(saved, 2)
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))
                raise
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
    if not show_logs:
        from absl import logging as absl_logging  # comes with TensorFlow

        absl_logging.set_verbosity(absl_logging.ERROR)


def main(argv=None):
    """Run `fcn-keras`; returns the process exit code.

    User errors (bad arguments, bad files) print one line to stderr and exit
    with code 2 instead of a traceback.

    Args:
        argv: the arguments, without the program name. Defaults to `sys.argv[1:]`.

    Returns:
        The exit code: 0 on success, 1 when a command's check failed, 2 on a user error.

    Example:
    >>> main(["model", "fcn32s", "--fc-units", "8", "--num-classes", "3", "--json"])  # doctest: +SKIP
    {"model": "fcn32s", "parameters": ...}
    0
    """
    args = build_parser().parse_args(argv)
    _load_library(args.show_logs)
    try:
        return args.handler(args) or 0
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"fcn-keras {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
