"""Distribution strategies and mixed precision for training: choosing, scoping, restoring.

`make_strategy("default" | "mirrored" | "multi_worker")` returns the
`tf.distribute` strategy under whose scope `fcn_keras.train` builds and
compiles the model. `"multi_worker"` reads the cluster from `TF_CONFIG`
(each worker runs the same command with its own `task.index`); `is_chief`
tells which worker writes checkpoints and logs.

`precision_policy(name)` is a context manager that sets Keras's global dtype
policy (`"float32"`, `"mixed_float16"`, `"mixed_bfloat16"`, or `"auto"`, see
`auto_precision`) while the model is built and trained, and restores the
previous one afterwards. FCN logits are
float32 under every policy (the `logits` layer is float32), and the losses
compute in float32; with `"mixed_float16"` `model.compile` wraps the optimizer
in a `keras.optimizers.LossScaleOptimizer` (dynamic loss scaling).

`distribute_data`, `prebuild_for_multi_worker` and `multi_worker_log_reduction`
are what `fcn_keras.train` wraps `model.fit` in: the last two are context
managers that work around Keras 3.15's `fit()` under
`MultiWorkerMirroredStrategy`, undo their change on leaving the block, and do
nothing under any other strategy.
"""

import contextlib
import json
import os

from fcn_keras.choices import PRECISIONS, STRATEGIES

__all__ = ["STRATEGIES", "PRECISIONS", "make_strategy", "is_chief", "worker_index",
           "precision_policy", "auto_precision", "resolve_precision", "cpu_flags",
           "cpu_model_name", "fp16_arithmetic", "distribute_data", "prebuild_for_multi_worker",
           "multi_worker_log_reduction"]  # fmt: skip


# /proc/cpuinfo flags of CPUs with bfloat16 matrix instructions (Intel AMX, AVX512-BF16).
BF16_CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16")
# oneDNN's instruction-set caps (`ONEDNN_MAX_CPU_ISA`, formerly `DNNL_MAX_CPU_ISA`) under which
# it has no bfloat16 kernels: with one of these set, TensorFlow's bfloat16 convolutions fail
# ("could not create a primitive descriptor") even on a CPU with bfloat16 units.
ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                            "AVX512_CORE_VNNI")  # fmt: skip
# /proc/cpuinfo flags of CPUs with IEEE half-precision arithmetic: AVX512-FP16 (x86, Intel
# Sapphire Rapids and later), the ARMv8.2 FP16 extension (ARM `Features`).
FP16_CPU_FLAGS = ("avx512_fp16", "asimdhp")


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
        name: `"float32"`, `"mixed_float16"`, `"mixed_bfloat16"`, `"auto"`
            (`auto_precision`'s choice, printed) or `None` (leave the policy
            as it is).

    Example:
    >>> with precision_policy("mixed_bfloat16"):
    ...     model = fcn_keras.FCN8s(num_classes=21)
    """
    import keras

    name = resolve_precision(name)
    if name is None:
        yield keras.config.dtype_policy()
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield keras.config.dtype_policy()
    finally:
        keras.config.set_dtype_policy(previous)


def _read_cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_flags():
    """Return the set of CPU feature flags from `/proc/cpuinfo` (empty where it is absent).

    Returns:
        A set of flag names (the `flags` line on x86, `Features` on ARM);
        empty where `/proc/cpuinfo` is missing or has neither line.

    Example:
    >>> "avx2" in cpu_flags()  # on an x86 CPU with AVX2
    True
    """
    for line in _read_cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def fp16_arithmetic():
    """Whether this CPU has IEEE half-precision arithmetic (`FP16_CPU_FLAGS` in /proc/cpuinfo).

    Returns:
        `(available, reason)`: `available` is True when `/proc/cpuinfo` lists
        one of `FP16_CPU_FLAGS`, or cannot be read (then the runtime decides);
        `reason` is a sentence saying which.

    Example:
    >>> available, reason = fp16_arithmetic()  # (True, "the CPU reports avx512_fp16 ...") on Sapphire Rapids
    """
    flags = cpu_flags()
    if not flags:
        return True, "no /proc/cpuinfo flags to read: the runtime decides"
    found = sorted(flags.intersection(FP16_CPU_FLAGS))
    if found:
        return True, f"the CPU reports {', '.join(found)} in /proc/cpuinfo"
    return False, f"the CPU ({cpu_model_name()}) reports none of {', '.join(FP16_CPU_FLAGS)} in /proc/cpuinfo"


def cpu_model_name():
    """Return the CPU's model name from `/proc/cpuinfo` (else `platform.processor()`).

    Returns:
        The `model name` of the first CPU in `/proc/cpuinfo`, else
        `platform.processor()`, else `"unknown CPU"`.

    Example:
    >>> cpu_model_name()
    'AMD EPYC 7B13'
    """
    for line in _read_cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    import platform

    return platform.processor() or "unknown CPU"


def gpu_compute_capabilities():
    """Return the `(major, minor)` compute capability of every visible GPU (TensorFlow's view)."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability") or (0, 0)))
    return capabilities


def auto_precision():
    """Choose the training precision for this machine: bfloat16 where the hardware has it.

    `"mixed_bfloat16"` when a visible GPU has compute capability >= 8.0
    (Ampere and later: bfloat16 tensor cores) or the CPU reports bfloat16
    matrix instructions in `/proc/cpuinfo` (`amx_bf16`/`amx_tile`: Intel AMX,
    `avx512_bf16`: AVX512-BF16); `"float32"` elsewhere (on CPUs without them
    bfloat16 is emulated and slower than float32), and where
    `ONEDNN_MAX_CPU_ISA` (or `DNNL_MAX_CPU_ISA`) caps oneDNN below its
    bfloat16 kernels (e.g. `AVX2`, `ONEDNN_ISAS_WITHOUT_BF16`).

    Returns:
        `(precision, reason)`: the policy name and a sentence saying why.

    Example:
    >>> precision, reason = auto_precision()
    >>> precision in ("mixed_bfloat16", "float32")
    True
    """
    gpus = gpu_compute_capabilities()
    bf16_gpus = [c for c in gpus if tuple(c) >= (8, 0)]
    if bf16_gpus:
        major, minor = bf16_gpus[0]
        reason = f"a GPU with compute capability {major}.{minor} (>= 8.0) is visible"
        return "mixed_bfloat16", reason
    flags = sorted(cpu_flags().intersection(BF16_CPU_FLAGS))
    if flags and not gpus:
        for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
            cap = os.environ.get(variable, "").strip().upper()
            if cap in ONEDNN_ISAS_WITHOUT_BF16:
                return "float32", (f"the CPU reports {', '.join(flags)} in /proc/cpuinfo, but "
                                   f"{variable}={cap} leaves oneDNN without bfloat16 kernels")  # fmt: skip
        return "mixed_bfloat16", f"the CPU reports {', '.join(flags)} in /proc/cpuinfo"
    if gpus:
        shown = ", ".join(f"{a}.{b}" for a, b in gpus)
        return "float32", f"the visible GPU(s) have compute capability {shown} (< 8.0: no bfloat16)"
    return "float32", ("the CPU reports none of " + ", ".join(BF16_CPU_FLAGS)
                       + " in /proc/cpuinfo and no GPU is visible")  # fmt: skip


def resolve_precision(name, log=print):
    """Validate a precision name and resolve `"auto"` with `auto_precision` (printing why).

    Args:
        name: `None`, `"auto"`, `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.
        log: function given the one-line explanation of an `"auto"` choice.
            Defaults to `print`.

    Returns:
        The concrete policy name, or None for None.

    Example:
    >>> resolve_precision("auto")  # prints e.g. "... chose mixed_bfloat16: ..."
    'mixed_bfloat16'
    """
    if name is None:
        return None
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}; expected one of {list(PRECISIONS)}.")
    if name != "auto":
        return name
    precision, reason = auto_precision()
    if log is not None:
        log(f"fcn_keras: mixed_precision='auto' chose {precision}: {reason}.")
    return precision


def distribute_data(strategy, data):
    """Datasets or `fn(input_context)`s -> what `model.fit` takes under `strategy`.

    A `tf.data.Dataset` is returned as is (Keras distributes it); a function
    goes through `strategy.distribute_datasets_from_function` under a
    multi-replica or multi-worker strategy, and is called with no input
    context otherwise.

    Args:
        strategy: the `tf.distribute.Strategy` the model is trained under.
        data: a `tf.data.Dataset`, a function `fn(input_context) -> dataset`,
            None, or anything else `model.fit` takes (returned as is).

    Returns:
        The dataset, a distributed dataset, or `data` unchanged.

    Example:
    >>> train_input = distribute_data(strategy, lambda ctx: load_dataset("synthetic", "train"))
    >>> model.fit(train_input, epochs=1)
    """
    import tensorflow as tf

    if data is None or isinstance(data, tf.data.Dataset):
        return data
    if callable(data):
        if strategy.num_replicas_in_sync > 1 or isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return strategy.distribute_datasets_from_function(data)
        return data(None)
    return data


@contextlib.contextmanager
def prebuild_for_multi_worker(model, strategy, data):
    """Work around Keras 3.15's fit() under MultiWorkerMirroredStrategy (no-op elsewhere).

    `Trainer._maybe_symbolic_build` takes the first distributed batch and
    `strategy.reduce`s the `(images, masks)` tuple to build the model, which
    `MultiWorkerMirroredStrategy` cannot do for a tuple ("Attempt to convert
    a value (PerReplica ...) to a Tensor"), and it consumes that batch. On
    entering the block, build the model, loss, metrics and optimizer from the
    dataset's element spec instead, under the strategy, and skip Keras's probe
    for this model while the block runs; on leaving it (also on an error),
    the model's own `_maybe_symbolic_build` is back, as Keras made it.

    Args:
        model: the compiled model.
        strategy: the `tf.distribute.Strategy` it was built under.
        data: the distributed training dataset (`distribute_data`'s result).

    Returns:
        A context manager yielding `model`.

    Example:
    >>> train_input = distribute_data(strategy, dataset_fn)
    >>> with prebuild_for_multi_worker(model, strategy, train_input):
    ...     model.fit(train_input, epochs=2, steps_per_epoch=10)
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield model
        return
    # A PerReplicaSpec (several local replicas) holds one spec per replica: take the first.
    spec = tuple(getattr(s, "_value_specs", (s,))[0] for s in data.element_spec)
    with strategy.scope():
        model._symbolic_build(data_batch=spec)
    # An instance attribute shadows the class's method; deleting it restores the method.
    had_own = "_maybe_symbolic_build" in vars(model)
    own = vars(model).get("_maybe_symbolic_build")
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    try:
        yield model
    finally:
        if had_own:
            model._maybe_symbolic_build = own
        else:
            del model._maybe_symbolic_build


@contextlib.contextmanager
def multi_worker_log_reduction(strategy):
    """Work around Keras 3.15's fit() log reduction under MultiWorkerMirroredStrategy.

    Keras reduces every per-step log value with `strategy.reduce("MEAN", v,
    axis=0)`, which fails on the scalar loss and metric values ("Invalid
    reduction dimension 0 for input with 0 dimensions"). While the block
    runs, scalars are reduced with `axis=None` (the mean over replicas)
    instead; everything else goes to Keras's own function. Only active under
    `MultiWorkerMirroredStrategy`; restored afterwards.

    Example:
    >>> with multi_worker_log_reduction(strategy):
    ...     model.fit(...)
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)

        def reduce(value):
            if value is not None and len(value.shape) == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return tf.nest.map_structure(reduce, values)

    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original
