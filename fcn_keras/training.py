"""Training FCNs with `model.fit`: optimizers, schedules, callbacks and `fcn_keras.train`.

`train(variant, source, out_dir=...)` is what `fcn-keras train` runs: it
builds (or stage-initialises) an FCN under the chosen `tf.distribute`
strategy and dtype policy, compiles it with an ignore-label loss and
`SegmentationMetrics`, and fits it with checkpoints, `BackupAndRestore`,
TensorBoard and CSV logs. Everything is also usable on its own:
`make_optimizer`, `WarmupSchedule`, `make_callbacks`.

Files written into `out_dir` (by the chief worker):

    best.keras          the model with the best validation mean IU so far
    last.keras          the model after the last finished epoch
    backup/             BackupAndRestore's state (removed when training ends)
    history.csv         one row per epoch (appended to on resume)
    tensorboard/        TensorBoard event files
    train_config.json   the arguments of the run

Learning rates. The paper (Section 4.3) trains with SGD, momentum 0.99 and
learning rates 1e-10 (FCN-32s), 1e-12 (16s) and 1e-13 (8s) on a loss
*summed* over the ~1.9e5 pixels of a 500x375 VOC image (batch of one). The
losses here are *means* over valid pixels, so the equivalent FCN-32s rate is
about 1e-10 x 1.9e5 ~= 2e-5: that is the default for `optimizer="sgd"`
(multiply by ~0.01 / 0.001 for the 16s / 8s stages, as the paper does).
Adam / AdamW default to 1e-4, which trains a randomly initialised VGG16
much faster than SGD (measured for the demo, see `fcn_keras/demo.py`).
"""

import contextlib
import json
import math
import os

import keras

from fcn_keras.distribute import is_chief, make_strategy, precision_policy, worker_index
from fcn_keras.losses import FocalLoss, SegmentationCrossEntropy, median_frequency_weights
from fcn_keras.metrics import SegmentationMetrics

__all__ = ["train", "make_optimizer", "make_callbacks", "make_loss", "WarmupSchedule",
           "OPTIMIZERS", "SCHEDULES", "DEFAULT_LEARNING_RATES"]  # fmt: skip

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "poly", "cosine")
DEFAULT_LEARNING_RATES = {"sgd": 2e-5, "adam": 1e-4, "adamw": 1e-4}
LOSSES = ("cross_entropy", "focal")


@keras.saving.register_keras_serializable(package="fcn_keras")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then a constant, poly or cosine decay of the learning rate.

    `lr(step)` rises linearly from 0 to `learning_rate` over `warmup_steps`,
    then follows `kind` over the remaining `total_steps - warmup_steps`:
    `"constant"`; `"poly"` `lr * (1 - t)**power` (DeepLab's "poly", power 0.9);
    `"cosine"` `lr * (1 + cos(pi t)) / 2`, with `t` in [0, 1]. After
    `total_steps` the decayed schedules stay at 0.

    Args:
        learning_rate: peak learning rate.
        total_steps: number of training steps (for the decays). Defaults to 1.
        kind: `"constant"`, `"poly"` or `"cosine"`. Defaults to `"constant"`.
        warmup_steps: steps of linear warmup. Defaults to 0.
        power: exponent of `"poly"`. Defaults to 0.9.

    Example:
    >>> schedule = WarmupSchedule(1e-4, total_steps=1000, kind="poly", warmup_steps=50)
    >>> optimizer = keras.optimizers.Adam(schedule)
    """

    def __init__(self, learning_rate, total_steps=1, kind="constant", warmup_steps=0, power=0.9):
        if kind not in SCHEDULES:
            raise ValueError(f"Unknown schedule {kind!r}; expected one of {list(SCHEDULES)}.")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; received {learning_rate!r}.")
        if int(total_steps) < 1 or int(warmup_steps) < 0:
            raise ValueError(
                f"total_steps must be >= 1 and warmup_steps >= 0; received "
                f"total_steps={total_steps!r}, warmup_steps={warmup_steps!r}."
            )
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.power = float(power)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        peak = ops.convert_to_tensor(self.learning_rate, "float32")
        warmup = float(max(self.warmup_steps, 1))
        rising = peak * ops.minimum((step + 1.0) / warmup, 1.0)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        t = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.kind == "poly":
            decayed = peak * ops.power(1.0 - t, self.power)
        elif self.kind == "cosine":
            decayed = peak * 0.5 * (1.0 + ops.cos(math.pi * t))
        else:
            decayed = peak
        if self.warmup_steps == 0:
            return decayed
        return ops.where(step < self.warmup_steps, rising, decayed)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "kind": self.kind, "warmup_steps": self.warmup_steps,
                "power": self.power}  # fmt: skip


def make_optimizer(
    name="adam",
    learning_rate=None,
    *,
    schedule="constant",
    total_steps=1,
    warmup_steps=0,
    momentum=0.99,
    weight_decay=None,
    clipnorm=None,
):
    """Build the optimizer of a training run.

    Args:
        name: `"sgd"` (momentum, as in the paper), `"adam"` or `"adamw"`.
            Defaults to `"adam"`.
        learning_rate: peak learning rate. Defaults to
            `DEFAULT_LEARNING_RATES[name]` (SGD 2e-5, the paper's 1e-10 for a
            summed loss rescaled to a mean loss; Adam/AdamW 1e-4).
        schedule: `"constant"`, `"poly"` or `"cosine"`. Defaults to `"constant"`.
        total_steps: training steps, for the decaying schedules. Defaults to 1.
        warmup_steps: linear warmup steps. Defaults to 0.
        momentum: SGD momentum. Defaults to 0.99 (the paper).
        weight_decay: decoupled weight decay (Keras's `weight_decay`).
            Defaults to None (none; 1e-4 for AdamW).
        clipnorm: optional per-variable gradient norm clip.

    Returns:
        A `keras.optimizers.Optimizer`.

    Example:
    >>> make_optimizer("sgd", schedule="poly", total_steps=10000)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {list(OPTIMIZERS)}.")
    lr = DEFAULT_LEARNING_RATES[name] if learning_rate is None else float(learning_rate)
    rate = WarmupSchedule(lr, total_steps, schedule, warmup_steps)
    if schedule == "constant" and warmup_steps == 0:
        rate = lr
    common = {"learning_rate": rate, "clipnorm": clipnorm}
    if name == "sgd":
        return keras.optimizers.SGD(momentum=momentum, weight_decay=weight_decay, **common)
    if name == "adam":
        return keras.optimizers.Adam(weight_decay=weight_decay, **common)
    return keras.optimizers.AdamW(
        weight_decay=1e-4 if weight_decay is None else weight_decay, **common
    )


def make_loss(loss="cross_entropy", ignore_label=255, class_weights=None, focal_gamma=2.0):
    """Return a loss instance: `"cross_entropy"`, `"focal"`, or a `keras.losses.Loss` as is."""
    if isinstance(loss, keras.losses.Loss):
        return loss
    if loss == "cross_entropy":
        return SegmentationCrossEntropy(ignore_label=ignore_label, class_weights=class_weights)
    if loss == "focal":
        return FocalLoss(gamma=focal_gamma, ignore_label=ignore_label, class_weights=class_weights)
    raise ValueError(f"Unknown loss {loss!r}; expected one of {list(LOSSES)} or a keras Loss.")


def make_callbacks(out_dir, *, monitor="val_mean_iu", backup=True, tensorboard=True,
                   checkpoints=True, resuming=False, extra=None):  # fmt: skip
    """The standard callbacks of a run, writing into `out_dir` (see the module docstring).

    Args:
        out_dir: output directory (created).
        monitor: log key the best checkpoint maximises. Defaults to `"val_mean_iu"`.
        backup: add `keras.callbacks.BackupAndRestore(out_dir/backup)`.
        tensorboard: add `keras.callbacks.TensorBoard(out_dir/tensorboard)`.
        checkpoints: add best/last `ModelCheckpoint`s.
        resuming: append to `history.csv` instead of overwriting it.
        extra: further callbacks, appended.

    Returns:
        A list of callbacks.
    """
    os.makedirs(out_dir, exist_ok=True)
    callbacks = []
    if backup:
        callbacks.append(keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup")))
    if checkpoints:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            os.path.join(out_dir, "best.keras"), monitor=monitor, mode="max",
            save_best_only=True))  # fmt: skip
        callbacks.append(keras.callbacks.ModelCheckpoint(os.path.join(out_dir, "last.keras")))
    callbacks.append(keras.callbacks.CSVLogger(os.path.join(out_dir, "history.csv"),
                                               append=resuming))  # fmt: skip
    if tensorboard and _tensorboard_installed():
        callbacks.append(keras.callbacks.TensorBoard(
            os.path.join(out_dir, "tensorboard"), write_graph=False, profile_batch=0))  # fmt: skip
    return callbacks + list(extra or [])


def _tensorboard_installed():
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        print("fcn_keras.train: the tensorboard package is not installed; no TensorBoard "
              "logs are written (pip install tensorboard).")
        return False
    return True


def _source_variant(model):
    names = {layer.name for layer in model.layers}
    for variant, marker in (("fcn32s", "upscore32"), ("fcn16s", "upscore16"),
                            ("fcn8s", "upscore8")):  # fmt: skip
        if marker in names:
            return variant
    raise ValueError(
        f"--init-from model {model.name!r} is not an fcn_keras FCN (no upscore32/16/8 layer)."
    )


def _load_init_model(path):
    path = os.fspath(path)
    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise ValueError(
            f"init_from must be an existing '.keras' file saved by fcn_keras.train "
            f"(e.g. out_dir/best.keras of the previous stage); received {path!r}."
        )
    return keras.saving.load_model(path, compile=False)


def _build_model(variant, num_classes, init_model, backbone_weights, weights, fc_units,
                 dropout, trainable_upsampling):  # fmt: skip
    from fcn_keras.models import build_fcn, normalize_variant
    from fcn_keras.staged import staged_from, transfer_weights

    variant = normalize_variant(variant)
    if init_model is None:
        return build_fcn(variant, num_classes=num_classes, backbone_weights=backbone_weights,
                         weights=weights, fc_units=fc_units, dropout=dropout,
                         trainable_upsampling=trainable_upsampling)  # fmt: skip
    source_variant = _source_variant(init_model)
    classes = init_model.get_layer("score_fr").filters
    if classes != num_classes:
        raise ValueError(
            f"init_from model has {classes} classes but the dataset has {num_classes}."
        )
    if source_variant == variant:  # continue training the same variant
        model = build_fcn(variant, num_classes=num_classes, backbone_weights=None,
                          fc_units=init_model.get_layer("fc6").filters, dropout=dropout,
                          trainable_upsampling=trainable_upsampling)  # fmt: skip
        transfer_weights(init_model, model)
        return model
    return staged_from(init_model, variant)


def _as_dataset_fn(source, split, *, batch_size, crop_size, augment, shuffle, seed, repeat,
                   ignore_label, source_kwargs, drop_remainder=False):  # fmt: skip
    from fcn_keras.data import load_dataset

    def dataset_fn(input_context=None):
        return load_dataset(source, split, batch_size=batch_size, crop_size=crop_size,
                            augment=augment, shuffle=shuffle, seed=seed, repeat=repeat,
                            ignore_label=ignore_label, input_context=input_context,
                            drop_remainder=drop_remainder, **source_kwargs)  # fmt: skip

    return dataset_fn


def _distribute(strategy, data):
    """Datasets or `fn(input_context)`s -> what model.fit takes under `strategy`."""
    import tensorflow as tf

    if data is None or isinstance(data, tf.data.Dataset):
        return data  # Keras distributes a plain dataset itself
    if callable(data):
        if strategy.num_replicas_in_sync > 1 or isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return strategy.distribute_datasets_from_function(data)
        return data(None)
    return data


def _prebuild_for_multi_worker(model, strategy, data):
    """Work around Keras 3.15's fit() under MultiWorkerMirroredStrategy.

    `Trainer._maybe_symbolic_build` takes the first distributed batch and
    `strategy.reduce`s the `(images, masks)` tuple to build the model, which
    `MultiWorkerMirroredStrategy` cannot do for a tuple ("Attempt to convert
    a value (PerReplica ...) to a Tensor"), and it consumes that batch. Build
    the model, loss, metrics and optimizer from the dataset's element spec
    instead, under the strategy, and skip Keras's probe for this model.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    # A PerReplicaSpec (several local replicas) holds one spec per replica: take the first.
    spec = tuple(getattr(s, "_value_specs", (s,))[0] for s in data.element_spec)
    with strategy.scope():
        model._symbolic_build(data_batch=spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


@contextlib.contextmanager
def _multi_worker_log_reduction(strategy):
    """Work around Keras 3.15's fit() log reduction under MultiWorkerMirroredStrategy.

    Keras reduces every per-step log value with `strategy.reduce("MEAN", v,
    axis=0)`, which fails on the scalar loss and metric values ("Invalid
    reduction dimension 0 for input with 0 dimensions"). While `fit` runs,
    scalars are reduced with `axis=None` (the mean over replicas) instead;
    everything else goes to Keras's own function. Only active under
    `MultiWorkerMirroredStrategy`; restored afterwards.
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


def train(
    variant="fcn8s",
    source="synthetic",
    *,
    out_dir,
    num_classes=None,
    validation_data=None,
    val_split="val",
    source_kwargs=None,
    ignore_label=None,
    crop_size=None,
    augment=None,
    batch_size=8,
    epochs=1,
    steps_per_epoch=None,
    validation_steps=None,
    optimizer="adam",
    learning_rate=None,
    schedule="constant",
    warmup_steps=0,
    momentum=0.99,
    weight_decay=None,
    clipnorm=None,
    loss="cross_entropy",
    class_weights=None,
    init_from=None,
    backbone_weights=None,
    weights=None,
    fc_units=4096,
    dropout=0.5,
    trainable_upsampling=False,
    mixed_precision=None,
    jit_compile=False,
    strategy="default",
    seed=None,
    backup=True,
    tensorboard=True,
    callbacks=None,
    verbose="auto",
):
    """Train an FCN with `model.fit`; returns `(model, history)`.

    Args:
        variant: `"fcn32s"`, `"fcn16s"` or `"fcn8s"`. Defaults to `"fcn8s"`.
        source: a data source name for `fcn_keras.load_dataset` (e.g.
            `"synthetic"`, `"camvid"`, `"voc"`), a batched `tf.data.Dataset`
            of `(uint8 images, int32 masks)`, or a function
            `fn(input_context) -> dataset` (per-replica batches) for
            `strategy.distribute_datasets_from_function`; under a multi-replica
            strategy a function should repeat and `steps_per_epoch` be given
            (otherwise each epoch ends with an empty step that counts in the
            epoch's mean loss). Defaults to `"synthetic"`.
        out_dir: directory for checkpoints and logs (required).
        num_classes: number of classes; required unless `source` is a name
            (then taken from `fcn_keras.dataset_info`).
        validation_data: validation dataset (or function) when `source` is
            not a name; with a name the `val_split` split is used.
        val_split: split to validate on (source names). `None` disables
            validation. Defaults to `"val"`.
        source_kwargs: dict of source options (`data_dir`, `image_size`,
            `num_examples`, `seed` ...). Defaults to none.
        ignore_label: void label; defaults to the source's (or 255).
        crop_size: training crop (int or `(h, w)`). Defaults to None (full images).
        augment: the training split's augmentation (see `load_dataset`).
            Defaults to None (the pipeline's default for "train").
        batch_size: *global* batch size (split over replicas). Defaults to 8.
        epochs: number of epochs. Defaults to 1.
        steps_per_epoch: batches per epoch; the training set then repeats.
            Defaults to None (one pass over the split).
        validation_steps: batches per validation. Defaults to None (all).
        optimizer: `"sgd"`, `"adam"` or `"adamw"` (see `make_optimizer`),
            or a Keras optimizer. Defaults to `"adam"`.
        learning_rate: peak learning rate. Defaults to the optimizer's
            `DEFAULT_LEARNING_RATES` entry.
        schedule: `"constant"`, `"poly"` or `"cosine"`. Defaults to `"constant"`.
        warmup_steps: linear learning-rate warmup. Defaults to 0.
        momentum: SGD momentum. Defaults to 0.99 (the paper).
        weight_decay: optimizer weight decay. Defaults to None.
        clipnorm: optional gradient clipping by norm.
        loss: `"cross_entropy"`, `"focal"` or a `keras.losses.Loss`.
            Defaults to `"cross_entropy"`.
        class_weights: None, a list of per-class weights, or
            `"median_frequency"` (computed from the training split with
            `median_frequency_weights`; source names only).
        init_from: a `.keras` model of the previous stage (FCN-32s to start
            an FCN-16s, FCN-16s to start an FCN-8s, see `fcn_keras.staged`)
            or of the same variant (continue training). Defaults to None.
        backbone_weights: `"imagenet"`, a VGG16 weights file, or None
            (random). Defaults to None. Ignored with `init_from`.
        weights: optional whole-FCN weights file loaded after building.
        fc_units: fc6/fc7 width. Defaults to 4096 (the paper).
        dropout: dropout after fc6/fc7. Defaults to 0.5.
        trainable_upsampling: learn the bilinear-initialised upsampling.
            Defaults to False.
        mixed_precision: None/`"float32"`, `"mixed_float16"` (with dynamic
            loss scaling) or `"mixed_bfloat16"`. Logits and loss stay float32.
        jit_compile: compile the train step with XLA. Defaults to False.
        strategy: `"default"`, `"mirrored"`, `"multi_worker"` or a
            `tf.distribute.Strategy`. Defaults to `"default"`.
        seed: seeds Keras's and the pipeline's random generators. Defaults to None.
        backup: use `BackupAndRestore` (resume an interrupted run losing at
            most the current epoch). Defaults to True.
        tensorboard: write TensorBoard logs. Defaults to True.
        callbacks: further Keras callbacks.
        verbose: `model.fit` verbosity (`"auto"`, 0, 1 progress bar, 2). Defaults to `"auto"`.

    Returns:
        `(model, history)`: the trained `keras.Model` (weights after the
        last epoch; `out_dir/best.keras` holds the best one) and the Keras
        `History` (`history.history["val_mean_iu"]` ...).

    Example:
    >>> model, history = fcn_keras.train(
    ...     "fcn8s", "synthetic", out_dir="runs/demo", fc_units=256, epochs=4,
    ...     source_kwargs={"image_size": 64}, optimizer="adam", learning_rate=3e-4)

    Reference: Long et al. 2015, Section 4.3 (optimisation) and 4.2 (staged training).
    """
    source_kwargs = dict(source_kwargs or {})
    if isinstance(strategy, str) or strategy is None:
        strategy = make_strategy(strategy or "default")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    chief = is_chief()
    if not chief:  # other workers write into a scratch directory of their own
        out_dir = os.path.join(out_dir, f"worker_{worker_index()[1]}")
    os.makedirs(out_dir, exist_ok=True)

    # === Data ===
    class_names = None
    from fcn_keras.data.sources import Source

    source_name, source_options = source, dict(source_kwargs)
    if isinstance(source, (str, Source)):
        from fcn_keras.data import dataset_info
        from fcn_keras.data.sources import resolve_source

        # One Source object, so that source options never collide with load_dataset's
        # own arguments (the synthetic source's `seed` is not the shuffling seed).
        source = resolve_source(source, **source_kwargs)
        source_kwargs = {}
        info = dataset_info(source)
        num_classes = info.num_classes if num_classes is None else num_classes
        class_names = list(info.class_names)
        ignore_label = info.ignore_label if ignore_label is None else ignore_label
        known = (info.num_examples or {}).get("train")
        if steps_per_epoch is None and strategy.num_replicas_in_sync > 1 and known:
            # A distributed dataset of unknown length ends each epoch with an empty step
            # that counts in the mean loss; a fixed number of full steps avoids it.
            steps_per_epoch = max(int(known) // batch_size, 1)
        repeat = steps_per_epoch is not None
        train_data = _as_dataset_fn(source, "train", batch_size=batch_size, crop_size=crop_size,
                                    augment=augment, shuffle=True, seed=seed, repeat=repeat,
                                    ignore_label=ignore_label, source_kwargs=source_kwargs,
                                    drop_remainder=repeat)  # fmt: skip
        if val_split is not None:
            validation_data = _as_dataset_fn(source, val_split, batch_size=batch_size,
                                             crop_size=None, augment=False, shuffle=False,
                                             seed=seed, repeat=False,
                                             ignore_label=ignore_label,
                                             source_kwargs=source_kwargs)  # fmt: skip
    else:
        if num_classes is None:
            raise ValueError("num_classes is required when source is a dataset, not a name.")
        ignore_label = 255 if ignore_label is None else ignore_label
        train_data = source
    if class_weights == "median_frequency":
        if not isinstance(source, Source):
            raise ValueError("class_weights='median_frequency' needs a source name.")
        from fcn_keras.data import load_dataset

        counted = load_dataset(source, "train", batch_size=batch_size, augment=False,
                               shuffle=False, ignore_label=ignore_label, **source_kwargs)  # fmt: skip
        class_weights, _ = median_frequency_weights(counted, num_classes, ignore_label)

    # === Steps, for the schedules ===
    steps = steps_per_epoch
    if steps is None and schedule != "constant":
        probe = train_data(None) if callable(train_data) else train_data
        cardinality = int(probe.cardinality())
        if cardinality < 1:
            raise ValueError(
                f"schedule {schedule!r} needs the number of steps: give steps_per_epoch "
                "(the training dataset's length is unknown or infinite)."
            )
        steps = cardinality
    total_steps = max(int(steps or 1) * int(epochs), 1)

    config = {k: v for k, v in locals().items() if isinstance(v, (str, int, float, bool,
              type(None), list, tuple, dict))}  # fmt: skip
    config.pop("config", None)
    config["source_kwargs"] = source_options
    config["source"] = source_name if isinstance(source_name, str) else type(source_name).__name__
    resuming = os.path.isdir(os.path.join(out_dir, "backup"))

    # === Model, under the strategy and dtype policy ===
    init_model = _load_init_model(init_from) if init_from is not None else None
    with precision_policy(mixed_precision), strategy.scope():
        model = _build_model(variant, num_classes, init_model, backbone_weights, weights,
                             fc_units, dropout, trainable_upsampling)  # fmt: skip
        if isinstance(optimizer, str):
            optimizer = make_optimizer(optimizer, learning_rate, schedule=schedule,
                                       total_steps=total_steps, warmup_steps=warmup_steps,
                                       momentum=momentum, weight_decay=weight_decay,
                                       clipnorm=clipnorm)  # fmt: skip
        model.compile(
            optimizer=optimizer,
            loss=make_loss(loss, ignore_label, class_weights),
            metrics=[SegmentationMetrics(num_classes, ignore_label=ignore_label,
                                         name="segmentation_metrics")],  # fmt: skip
            jit_compile=jit_compile,
        )
        monitor = "val_mean_iu" if validation_data is not None else "mean_iu"
        run_callbacks = make_callbacks(out_dir, monitor=monitor, backup=backup,
                                       tensorboard=tensorboard and chief, resuming=resuming,
                                       extra=callbacks)  # fmt: skip
        if chief:
            with open(os.path.join(out_dir, "train_config.json"), "w") as f:
                json.dump({**config, "class_names": class_names,
                           "strategy_replicas": strategy.num_replicas_in_sync,
                           "resumed": resuming}, f, indent=2, default=str)  # fmt: skip
        train_input = _distribute(strategy, train_data)
        _prebuild_for_multi_worker(model, strategy, train_input)
        with _multi_worker_log_reduction(strategy):
            history = model.fit(
                train_input,
                validation_data=_distribute(strategy, validation_data),
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                callbacks=run_callbacks,
                verbose=verbose,
                shuffle=False,  # the input pipeline shuffles; Keras's own flag only applies to arrays
            )
    return model, history
