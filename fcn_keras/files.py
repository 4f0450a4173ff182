"""Files written whole or not at all: `atomic_path` and the package's one JSON writer.

Everything the package writes that another process may read while it is being
written (exported artifacts, their metadata, a training run's
`train_config.json`, the results recipe's `stage.json` / `results.json`,
CRF settings, evaluation caches) goes through `atomic_path`: the content is
written to a temporary path beside the target and renamed onto it only when
complete, so a reader never sees a half-written file and an interrupted
write leaves the previous file as it was. `write_json` is the one JSON writer
built on it. This module imports nothing beyond the standard library.
"""

import contextlib
import json
import os
import shutil
import tempfile

__all__ = ["atomic_path", "write_json"]


@contextlib.contextmanager
def atomic_path(target, directory=False):
    """Yield a temporary path beside `target`; move it onto `target` on success.

    On any exception the temporary file or directory is removed and `target`
    is left as it was (absent, or the previous artifact).

    Args:
        target: final path of the file or directory.
        directory: whether the target is a directory (a SavedModel).
            Defaults to `False`.

    Yields:
        The temporary path to write to (it does not exist yet).

    Example:
    >>> with atomic_path("exports/fcn8s.onnx") as temp:
    ...     onnx.save(proto, temp)
    """
    target = os.path.abspath(os.fspath(target))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".tmp-", dir=parent)
    temp = os.path.join(staging, os.path.basename(target))
    try:
        yield temp
        if not os.path.exists(temp):
            raise RuntimeError(f"nothing was written at {temp!r} (for {target!r}).")
        if directory:
            backup = None
            if os.path.exists(target):
                backup = os.path.join(staging, "previous")
                os.rename(target, backup)
            os.rename(temp, target)
        else:
            if os.path.isdir(target):
                raise ValueError(f"cannot write file {target!r}: a directory is in the way.")
            os.replace(temp, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path, data, sort_keys=False):
    """Write `data` as indented JSON (and a final newline) to `path`, atomically (`atomic_path`).

    Args:
        path: the JSON file to write; missing folders are created.
        data: a JSON-serialisable value.
        sort_keys: write the keys of every object sorted. Defaults to False
            (insertion order).

    Returns:
        None.

    Raises:
        TypeError: `data` holds a value JSON cannot represent (the previous
            file, if any, is left as it was).

    Example:
    >>> write_json("runs/demo/stage.json", {"epochs": 20, "learning_rate": 1e-4})
    >>> write_json("model.tflite.json", artifact_metadata(model, "tflite"), sort_keys=True)
    """
    with atomic_path(path) as temp:
        with open(temp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=sort_keys)
            f.write("\n")
