"""What the benchmark scripts share: the repository root, the check that keeps outputs out of it,
and the package's named choices read without importing TensorFlow.

Benchmarks write weights, artifacts and data-derived files (CamVid's licence
forbids redistributing it) only outside the repository, except where a script
allows a folder of figures (e.g. `docs/`). Scripts import this module the way
they import `bench/flops.py`, with the `bench` folder on `sys.path`:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import REPO, inside_repo_error

`import fcn_keras.<anything>` runs the package's `__init__`, which loads every
public module (TensorFlow among them) when a script, not the `fcn-keras`
command, imports it; `package_choices()` reads `fcn_keras/choices.py` (which
imports nothing) on its own, so a script's `--help` and argument errors answer
without TensorFlow.
"""

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _inside(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root + os.sep)


def inside_repo_error(path, flag="--out", what="outputs", allowed=None):
    """A message when `path` lies inside the repository (and not under `allowed`), else None.

    Links are resolved first, so a link into the repository counts as inside.

    Args:
        path: the output path a user gave.
        flag: the command-line flag it came from. Defaults to `"--out"`.
        what: what the script writes there, for the message. Defaults to `"outputs"`.
        allowed: a folder inside the repository that may hold it (e.g.
            `os.path.join(REPO, "docs")`), or None. Defaults to None.

    Returns:
        The error text (naming the flag, the path and what is expected), or
        None when the path is acceptable.

    Example:
    >>> inside_repo_error(os.path.join(REPO, "runs"), what="weights")
    "--out '.../runs' is inside the repository; weights must live outside it (e.g. /tmp/fcn_keras_runs/)."
    """
    if not _inside(path, REPO) or (allowed is not None and _inside(path, allowed)):
        return None
    where = f"outside it or under {os.path.relpath(allowed, REPO)}/" if allowed else "outside it"
    return (f"{flag} {path!r} is inside the repository; {what} must live {where} "
            "(e.g. /tmp/fcn_keras_runs/).")


def package_choices():
    """`fcn_keras/choices.py` of this repository, loaded on its own (without `import fcn_keras`).

    Returns:
        The module: `OPTIMIZERS`, `SCHEDULES`, `PRECISIONS`, `FORMATS` ... as
        the package defines them.

    Example:
    >>> package_choices().OPTIMIZERS
    ('sgd', 'adam', 'adamw')
    """
    path = os.path.join(REPO, "fcn_keras", "choices.py")
    spec = importlib.util.spec_from_file_location("_fcn_keras_choices", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
