"""Distribution strategies and mixed precision for training: choosing, scoping, restoring.

`make_strategy("default" | "mirrored" | "multi_worker")` returns the
`tf.distribute` strategy under whose scope `fcn_keras.train` builds and
compiles the model. `"multi_worker"` reads the cluster from `TF_CONFIG`
(each worker runs the same command with its own `task.index`); `is_chief`
tells which worker writes checkpoints and logs.

`precision_policy(name)` is a context manager that sets Keras's global dtype
policy (`"float32"`, `"mixed_float16"`, `"mixed_bfloat16"`) while the model is
built and trained, and restores the previous one afterwards. FCN logits are
float32 under every policy (the `logits` layer is float32), and the losses
compute in float32; with `"mixed_float16"` `model.compile` wraps the optimizer
in a `keras.optimizers.LossScaleOptimizer` (dynamic loss scaling).
"""

import contextlib
import json
import os

__all__ = ["STRATEGIES", "PRECISIONS", "make_strategy", "is_chief", "worker_index",
           "precision_policy"]  # fmt: skip

STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def make_strategy(name="default", devices=None):
    """Return a `tf.distribute.Strategy` by name.

    Args:
        name: `"default"` (no distribution: the current default strategy),
            `"mirrored"` (synchronous data parallelism over the local GPUs,
            or over `devices`) or `"multi_worker"`
            (`MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`).
            Defaults to `"default"`.
        devices: optional device names for `"mirrored"` (e.g.
            `["/cpu:0", "/cpu:1"]` after configuring logical CPU devices).

    Returns:
        The strategy.

    Example:
    >>> strategy = make_strategy("mirrored")
    >>> with strategy.scope():
    ...     model = fcn_keras.FCN8s(num_classes=21)
    """
    import tensorflow as tf

    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy 'multi_worker' needs the cluster in the TF_CONFIG environment "
                'variable, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}; TF_CONFIG is not set.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; expected one of {list(STRATEGIES)}.")


def _tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}); received {raw!r}.") from e


def worker_index():
    """Return `(task_type, task_index)` from `TF_CONFIG`, or `(None, 0)` without a cluster."""
    task = _tf_config().get("task", {})
    return task.get("type"), int(task.get("index", 0))


def is_chief():
    """Whether this process writes checkpoints and logs (the chief, or worker 0 without one)."""
    config = _tf_config()
    task_type, index = worker_index()
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and "chief" not in config.get("cluster", {})


@contextlib.contextmanager
def precision_policy(name=None):
    """Set Keras's global dtype policy inside the block, restore the previous one after.

    Args:
        name: `"float32"`, `"mixed_float16"`, `"mixed_bfloat16"` or `None`
            (leave the policy as it is).

    Example:
    >>> with precision_policy("mixed_bfloat16"):
    ...     model = fcn_keras.FCN8s(num_classes=21)
    """
    import keras

    if name is None:
        yield keras.config.dtype_policy()
        return
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}; expected one of {list(PRECISIONS)}.")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield keras.config.dtype_policy()
    finally:
        keras.config.set_dtype_policy(previous)
