"""Training FCNs with `model.fit`: optimizers, schedules, callbacks and `fcn_keras.train`.

`train(variant, source, out_dir=...)` (or `train(TrainConfig(...))`, the
arguments and their defaults in one object, `fcn_keras.train_config`) is
what `fcn-keras train` runs: it
builds (or stage-initialises) an FCN under the chosen `tf.distribute`
strategy and dtype policy, compiles it with an ignore-label loss and
`SegmentationMetrics`, and fits it with checkpoints, `BackupAndRestore`,
TensorBoard and CSV logs. It is four steps, each usable on its own (the
split of torchvision's reference `train.py`): `make_inputs` (source, splits,
class weights, step counts), `make_model` (build, stage-initialise or
continue), `compile_model` (optimizer, loss, metrics) and `fit` (callbacks,
distribution). The parts below them: `make_optimizer`, `WarmupSchedule`,
`make_loss`, `make_callbacks`.

When the source is a name (or a `Source`), the model carries the dataset's
facts (`model.dataset_info`: class names, the ignore label used, palette), so
`best.keras` / `last.keras` hold them for evaluation, export and prediction.

Files written into `out_dir` (by the chief worker):

    best.keras          the model with the best validation mean IU so far
    last.keras          the model after the last finished epoch
    backup/             BackupAndRestore's state (removed when training ends)
    history.csv         one row per epoch (appended to on resume)
    tensorboard/        TensorBoard event files
    train_config.json   {"arguments": the run's `TrainConfig` (`to_dict()`),
                         "derived": what was resolved from them (classes,
                         ignore label, steps, precision, variant, ...)}

Learning rates. The paper (Section 4.3) trains with SGD, momentum 0.99 and
learning rates 1e-10 (FCN-32s), 1e-12 (16s) and 1e-13 (8s) on a loss
*summed* over the ~1.9e5 pixels of a 500x375 VOC image (batch of one). The
losses here are *means* over valid pixels, so the equivalent FCN-32s rate is
about 1e-10 x 1.9e5 ~= 2e-5: that is the default for `optimizer="sgd"`
(multiply by ~0.01 / 0.001 for the 16s / 8s stages, as the paper does).
Adam / AdamW default to 1e-4, which trains a randomly initialised VGG16
much faster than SGD (measured for the demo, see `fcn_keras/demo.py`).
"""

import dataclasses
import math
import os

import keras

from fcn_keras.choices import DEFAULT_LEARNING_RATES, LOSSES, OPTIMIZERS, SCHEDULES
from fcn_keras.distribute import (distribute_data, is_chief, make_strategy,
                                  multi_worker_log_reduction, precision_policy,
                                  prebuild_for_multi_worker, resolve_precision,
                                  worker_index)  # fmt: skip
from fcn_keras.files import write_json
from fcn_keras.losses import (CrossEntropyLovasz, DiceLoss, FocalLoss, LovaszSoftmax,
                              SegmentationCrossEntropy, median_frequency_weights)  # fmt: skip
from fcn_keras.metrics import SegmentationMetrics
from fcn_keras.train_config import TrainConfig, _check_fields, _jsonable

__all__ = ["train", "make_inputs", "make_model", "compile_model", "fit", "TrainingInputs",
           "make_optimizer", "make_callbacks", "make_loss", "WarmupSchedule",
           "OPTIMIZERS", "SCHEDULES", "DEFAULT_LEARNING_RATES"]  # fmt: skip


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


# The options `make_loss` accepts, and the losses each one applies to.
_LOSS_OPTIONS = {
    "focal_gamma": ("focal",),
    "lovasz_weight": ("cross_entropy+lovasz",),
    "per_image": ("lovasz", "cross_entropy+lovasz"),
    "classes": ("lovasz", "dice", "cross_entropy+lovasz"),
    "dice_smooth": ("dice",),
}


def make_loss(loss="cross_entropy", ignore_label=255, class_weights=None, **options):
    """Return the loss named in `fcn_keras.choices.LOSSES`, or a `keras.losses.Loss` as is.

    Args:
        loss: `"cross_entropy"` (`SegmentationCrossEntropy`), `"focal"`
            (`FocalLoss`), `"lovasz"` (`LovaszSoftmax`), `"dice"` (`DiceLoss`),
            `"cross_entropy+lovasz"` (`CrossEntropyLovasz`); or a dict
            `{"name": one of those, **options}` (what `fcn-keras train` passes
            through `train(loss=...)`, recorded in train_config.json); or a
            `keras.losses.Loss` (returned unchanged). Defaults to `"cross_entropy"`.
        ignore_label: void label left out of the loss. Defaults to 255.
        class_weights: optional per-class weights. Defaults to None.
        **options: options of the named loss, each left at the loss's
            default when absent or None: `focal_gamma` (focal; 2.0),
            `lovasz_weight` (cross_entropy+lovasz; 1.0), `per_image` (lovasz,
            cross_entropy+lovasz; False), `classes` (lovasz, dice,
            cross_entropy+lovasz; "present"), `dice_smooth` (dice; 1.0). An
            option the named loss does not use raises a ValueError.

    Returns:
        A `keras.losses.Loss`.

    Example:
    >>> loss = make_loss("focal", ignore_label=255, class_weights=[1.0, 2.0, 0.5])
    >>> loss = make_loss({"name": "cross_entropy+lovasz", "lovasz_weight": 0.5}, ignore_label=11)
    >>> model.compile(optimizer="adam", loss=loss)
    """
    if isinstance(loss, keras.losses.Loss):
        return loss
    if isinstance(loss, dict):
        if "name" not in loss:
            raise ValueError(f"A loss given as a dict needs a 'name' key; received {loss!r}.")
        loss, options = loss["name"], {**{k: v for k, v in loss.items() if k != "name"}, **options}
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; expected one of {list(LOSSES)} or a keras Loss.")
    options = {k: v for k, v in options.items() if v is not None}
    for option in options:
        if option not in _LOSS_OPTIONS:
            raise ValueError(f"Unknown loss option {option!r}; expected one of "
                             f"{sorted(_LOSS_OPTIONS)}.")  # fmt: skip
        if loss not in _LOSS_OPTIONS[option]:
            raise ValueError(f"Loss option {option!r} applies to {list(_LOSS_OPTIONS[option])}, "
                             f"not to loss {loss!r}.")  # fmt: skip
    common = {"ignore_label": ignore_label, "class_weights": class_weights}
    lovasz = {k: options[k] for k in ("per_image", "classes") if k in options}
    if loss == "cross_entropy":
        return SegmentationCrossEntropy(**common)
    if loss == "focal":
        return FocalLoss(gamma=options.get("focal_gamma", 2.0), **common)
    if loss == "lovasz":
        return LovaszSoftmax(**lovasz, **common)
    if loss == "dice":
        return DiceLoss(smooth=options.get("dice_smooth", 1.0),
                        classes=options.get("classes", "present"), **common)  # fmt: skip
    return CrossEntropyLovasz(lovasz_weight=options.get("lovasz_weight", 1.0), **lovasz, **common)


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

    Example:
    >>> callbacks = make_callbacks("runs/fcn32s", monitor="mean_iu", tensorboard=False)
    >>> model.fit(train_data, epochs=10, callbacks=callbacks)
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


def _load_init_model(path):
    path = os.fspath(path)
    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise ValueError(
            f"init_from must be an existing '.keras' file saved by fcn_keras.train "
            f"(e.g. out_dir/best.keras of the previous stage); received {path!r}."
        )
    return keras.saving.load_model(path, compile=False)


# === Inputs ===


@dataclasses.dataclass
class TrainingInputs:
    """What `make_inputs` resolves from a source: data, classes and step counts.

    Attributes:
        train_data: training `tf.data.Dataset` or `fn(input_context)`.
        validation_data: validation dataset / function, or None.
        num_classes: number of classes.
        ignore_label: the void label the pipeline, loss and metrics use.
        info: the source's `DatasetInfo` with `ignore_label` as used, or None
            (source given as a dataset).
        steps_per_epoch: batches per epoch, or None (one pass).
        total_steps: optimizer steps of the run (for the schedules).
        class_weights: per-class loss weights, or None.
        source_name: the source's name (or the dataset's type name).
    """

    train_data: object
    validation_data: object
    num_classes: int
    ignore_label: int
    info: object = None
    steps_per_epoch: int | None = None
    total_steps: int = 1
    class_weights: object = None
    source_name: str = ""


def _dataset_fn(source, split, **load_kwargs):
    from fcn_keras.data import load_dataset

    def dataset_fn(input_context=None):
        return load_dataset(source, split, input_context=input_context, **load_kwargs)

    return dataset_fn


def _resolve_source(source, source_kwargs, ignore_label=None):
    """A name or `Source` -> `(Source, DatasetInfo)`; anything else -> `(source, None)`."""
    from fcn_keras.data import dataset_info
    from fcn_keras.data.sources import Source, resolve_source

    if not isinstance(source, (str, Source)):
        return source, None
    # One Source object, so that source options never collide with load_dataset's
    # own arguments (the synthetic source's `seed` is not the shuffling seed).
    options = dict(source_kwargs or {})
    if ignore_label is not None:
        options["ignore_label"] = ignore_label  # the source maps its void ids onto it
    source = resolve_source(source, **options)
    return source, dataset_info(source)


def _steps_for_schedule(train_data, steps_per_epoch, epochs, schedule):
    """Total optimizer steps; probes the dataset's cardinality when a decay needs it."""
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
    return max(int(steps or 1) * int(epochs), 1)


def make_inputs(source="synthetic", *, num_classes=None, validation_data=None, val_split="val",
                source_kwargs=None, ignore_label=None, crop_size=None, augment=None,
                batch_size=8, epochs=1, steps_per_epoch=None, schedule="constant",
                class_weights=None, seed=None, num_replicas=1):  # fmt: skip
    """Resolve a training run's data: datasets, classes, ignore label, steps, class weights.

    Args:
        source: a source name or `Source` (then the `"train"` and `val_split`
            splits are loaded with `fcn_keras.load_dataset`), a batched
            `tf.data.Dataset`, or a function `fn(input_context) -> dataset`.
        num_classes: required when `source` is not a name; defaults to the source's.
        validation_data: validation dataset (or function) when `source` is not a name.
        val_split: split validated on (source names); None disables it. Defaults to `"val"`.
        source_kwargs: the source's options (`data_dir`, `image_size` ...).
        ignore_label: void label. Defaults to the source's (else 255).
        crop_size: training crop. Defaults to None.
        augment: training augmentation (see `load_dataset`). Defaults to None.
        batch_size: global batch size. Defaults to 8.
        epochs: epochs, for the step count. Defaults to 1.
        steps_per_epoch: batches per epoch (the training split then
            repeats). Defaults to None; under several replicas with a known
            split size it becomes `num_examples // batch_size` (a distributed
            dataset of unknown length ends each epoch with an empty step).
        schedule: the learning-rate schedule (a decay needs the step count).
        class_weights: None, a list, or `"median_frequency"` (computed from
            the training split; source names only).
        seed: shuffling / augmentation seed. Defaults to None.
        num_replicas: replicas in sync. Defaults to 1.

    Returns:
        A `TrainingInputs`.

    Example:
    >>> inputs = make_inputs("synthetic", source_kwargs={"image_size": 64}, batch_size=4)
    >>> inputs.num_classes, inputs.info.class_names[:2]
    (6, ('background', 'disc'))
    """
    source, info = _resolve_source(source, source_kwargs, ignore_label)
    if info is not None:
        num_classes = info.num_classes if num_classes is None else num_classes
        ignore_label = info.ignore_label if ignore_label is None else ignore_label
        known = (info.num_examples or {}).get("train")
        if steps_per_epoch is None and num_replicas > 1 and known:
            steps_per_epoch = max(int(known) // batch_size, 1)
        repeat = steps_per_epoch is not None
        train_data = _dataset_fn(source, "train", batch_size=batch_size, crop_size=crop_size,
                                 augment=augment, shuffle=True, seed=seed, repeat=repeat,
                                 ignore_label=ignore_label, drop_remainder=repeat)  # fmt: skip
        if val_split is not None:
            validation_data = _dataset_fn(source, val_split, batch_size=batch_size,
                                          augment=False, shuffle=False, seed=seed,
                                          ignore_label=ignore_label)  # fmt: skip
        if num_classes == info.num_classes:
            info = dataclasses.replace(info, ignore_label=int(ignore_label))
        else:
            print(f"fcn_keras.train: num_classes={num_classes} differs from source "
                  f"{info.name!r}'s {info.num_classes}; the model carries no dataset_info.")
            info = None
        source_name = info.name if info is not None else type(source).__name__
    else:
        if num_classes is None:
            raise ValueError("num_classes is required when source is a dataset, not a name.")
        ignore_label = 255 if ignore_label is None else ignore_label
        train_data = source
        source_name = type(source).__name__
    if class_weights == "median_frequency":
        from fcn_keras.data import load_dataset
        from fcn_keras.data.sources import Source

        if not isinstance(source, Source):
            raise ValueError(
                "class_weights='median_frequency' counts the training split, so it needs a "
                f"source name or Source; received source of type {type(source).__name__!r}."
            )
        counted = load_dataset(source, "train", batch_size=batch_size, augment=False,
                               shuffle=False, ignore_label=ignore_label)  # fmt: skip
        class_weights, _ = median_frequency_weights(counted, num_classes, ignore_label)
    return TrainingInputs(
        train_data=train_data, validation_data=validation_data, num_classes=int(num_classes),
        ignore_label=int(ignore_label), info=info, steps_per_epoch=steps_per_epoch,
        total_steps=_steps_for_schedule(train_data, steps_per_epoch, epochs, schedule),
        class_weights=class_weights, source_name=source_name,
    )  # fmt: skip


# === Model ===


def _target_variant(variant, at_once, init_model, init_from):
    """`(target variant, init model's variant or None)`, told by `variant_of`."""
    from fcn_keras.models import normalize_variant, variant_of

    variant = normalize_variant(variant)
    if at_once and variant != "fcn8s":
        raise ValueError(
            f"at_once=True builds the at-once FCN-8s; received variant {variant!r} "
            "(expected 'fcn8s')."
        )
    target = "fcn8s_atonce" if at_once else variant
    if init_model is None:
        return target, None
    source = variant_of(init_model)
    if source == "fcn8s_atonce" and variant == "fcn8s":
        return source, source  # continuing an at-once FCN-8s keeps it at-once
    if at_once:
        raise ValueError(
            f"The at-once FCN-8s trains in one stage from the backbone: init_from may only "
            f"be an at-once FCN-8s (to continue it); {init_from!r} is an {source}."
        )
    return target, source


def _build(variant, **kwargs):
    from fcn_keras.models import build_fcn

    if variant == "fcn8s_atonce":
        return build_fcn("fcn8s", at_once=True, **kwargs)
    return build_fcn(variant, **kwargs)


def make_model(variant, num_classes, *, init_from=None, at_once=False, backbone_weights=None,
               weights=None, fc_units=None, dropout=0.5, trainable_upsampling=False,
               head="paper", dataset_info=None, input_scale=None):  # fmt: skip
    """Build the model of a run: fresh, stage-initialised, or continued from a `.keras`.

    Call it under the strategy's scope and the dtype policy. With `init_from`
    a coarser stage (FCN-32s for an FCN-16s, FCN-16s for an FCN-8s) is
    converted with `fcn_keras.staged.staged_from`; a model of the target
    variant is continued (weights copied into a fresh build with the given
    dropout / upsampling settings). The variant of `init_from` is told by
    `fcn_keras.models.variant_of`: an at-once FCN-8s continues at-once.

    Args:
        variant: `"fcn32s"`, `"fcn16s"` or `"fcn8s"`.
        num_classes: number of classes.
        init_from: a `.keras` path or a loaded model, or None.
        at_once: build the at-once FCN-8s (`FCN8s(at_once=True)`); only with
            `variant="fcn8s"`. Defaults to False.
        backbone_weights: VGG16 weights for a fresh build. Defaults to None.
        weights: optional whole-FCN weights file. Defaults to None.
        fc_units: fc6/fc7 width of a fresh build, or None for the head's
            (4096 for `"paper"`, 512 for `"mobile"`). Defaults to None.
        dropout: dropout after fc6/fc7. Defaults to 0.5.
        trainable_upsampling: learn the upsampling. Defaults to False.
        head: fc6 head of a fresh build, `"paper"` (7x7) or `"mobile"` (3x3);
            `init_from`'s head otherwise. Defaults to `"paper"`.
        dataset_info: a `DatasetInfo` for `model.dataset_info`; None keeps
            `init_from`'s. Defaults to None.
        input_scale: the scale for `model.input_scale`; None keeps
            `init_from`'s. Defaults to None.

    Returns:
        A `fcn_keras.models.FCNModel`.

    Example:
    >>> model = make_model("fcn16s", 11, init_from="runs/fcn32s/best.keras")
    """
    from fcn_keras.models import head_of
    from fcn_keras.staged import staged_from, transfer_weights

    init_model = init_from
    if init_from is not None and not isinstance(init_from, keras.Model):
        init_model = _load_init_model(init_from)
    target, source = _target_variant(variant, at_once, init_model, init_from)
    build_kwargs = dict(num_classes=num_classes, dropout=dropout,
                        trainable_upsampling=trainable_upsampling)  # fmt: skip
    if init_model is None:
        model = _build(target, backbone_weights=backbone_weights, weights=weights,
                       fc_units=fc_units, head=head, **build_kwargs)  # fmt: skip
    else:
        classes = init_model.get_layer("score_fr").filters
        if classes != num_classes:
            raise ValueError(
                f"init_from model has {classes} classes but the dataset has {num_classes}."
            )
        if source == target:  # continue training the same variant
            width = init_model.get_layer("fc6").filters
            model = _build(target, backbone_weights=None, fc_units=width,
                           head=head_of(init_model), **build_kwargs)  # fmt: skip
            transfer_weights(init_model, model)
            model.dataset_info = getattr(init_model, "dataset_info", None)
        else:
            model = staged_from(init_model, target)
        model.input_scale = getattr(init_model, "input_scale", None)
    if dataset_info is not None:
        model.dataset_info = dataset_info
    if input_scale is not None:
        model.input_scale = input_scale
    return model


def compile_model(model, inputs, *, optimizer="adam", learning_rate=None, schedule="constant",
                  warmup_steps=0, momentum=0.99, weight_decay=None, clipnorm=None,
                  loss="cross_entropy", jit_compile=False):  # fmt: skip
    """Compile `model` for `inputs`: optimizer and schedule, ignore-label loss, metrics.

    Args:
        model: the model (call under the strategy's scope).
        inputs: the run's `TrainingInputs` (classes, ignore label, steps, class weights).
        optimizer: a name for `make_optimizer` or a Keras optimizer. Defaults to `"adam"`.
        learning_rate, schedule, warmup_steps, momentum, weight_decay,
            clipnorm: see `make_optimizer`.
        loss: a name or dict for `make_loss` (e.g. `"cross_entropy+lovasz"`) or a
            `keras.losses.Loss`.
        jit_compile: XLA-compile the train step. Defaults to False.

    Returns:
        The compiled model.

    Example:
    >>> inputs = make_inputs("synthetic", source_kwargs={"image_size": 64}, batch_size=4)
    >>> model = make_model("fcn32s", inputs.num_classes, fc_units=64)
    >>> compile_model(model, inputs, optimizer="sgd", learning_rate=2e-5, schedule="poly")
    """
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer, learning_rate, schedule=schedule,
                                   total_steps=inputs.total_steps, warmup_steps=warmup_steps,
                                   momentum=momentum, weight_decay=weight_decay,
                                   clipnorm=clipnorm)  # fmt: skip
    model.compile(
        optimizer=optimizer,
        loss=make_loss(loss, inputs.ignore_label, inputs.class_weights),
        metrics=[SegmentationMetrics(inputs.num_classes, ignore_label=inputs.ignore_label,
                                     name="segmentation_metrics")],  # fmt: skip
        jit_compile=jit_compile,
    )
    return model


# === Fit ===


def fit(model, inputs, strategy, *, out_dir, epochs=1, validation_steps=None, callbacks=None,
        backup=True, tensorboard=True, verbose="auto"):  # fmt: skip
    """Run `model.fit` on `inputs` under `strategy` with the standard callbacks.

    Call it under the strategy's scope. Resumes from `out_dir/backup` when
    it exists (`BackupAndRestore`; `history.csv` is then appended to).

    Args:
        model: the compiled model.
        inputs: the run's `TrainingInputs`.
        strategy: the `tf.distribute.Strategy`.
        out_dir: this worker's output directory.
        epochs: number of epochs. Defaults to 1.
        validation_steps: batches per validation. Defaults to None (all).
        callbacks: further Keras callbacks.
        backup: use `BackupAndRestore`. Defaults to True.
        tensorboard: write TensorBoard logs (chief only). Defaults to True.
        verbose: `model.fit` verbosity. Defaults to `"auto"`.

    Returns:
        The Keras `History`.

    Example:
    >>> strategy = make_strategy("default")
    >>> with strategy.scope():
    ...     model = compile_model(make_model("fcn32s", inputs.num_classes), inputs)
    ...     history = fit(model, inputs, strategy, out_dir="runs/fcn32s", epochs=2)
    """
    resuming = os.path.isdir(os.path.join(out_dir, "backup"))
    monitor = "val_mean_iu" if inputs.validation_data is not None else "mean_iu"
    run_callbacks = make_callbacks(out_dir, monitor=monitor, backup=backup,
                                   tensorboard=tensorboard and is_chief(), resuming=resuming,
                                   extra=callbacks)  # fmt: skip
    train_input = distribute_data(strategy, inputs.train_data)
    with prebuild_for_multi_worker(model, strategy, train_input), \
            multi_worker_log_reduction(strategy):
        return model.fit(
            train_input,
            validation_data=distribute_data(strategy, inputs.validation_data),
            epochs=epochs,
            steps_per_epoch=inputs.steps_per_epoch,
            validation_steps=validation_steps,
            callbacks=run_callbacks,
            verbose=verbose,
            shuffle=False,  # the input pipeline shuffles; Keras's own flag only applies to arrays
        )


def _write_config(out_dir, arguments, derived):
    write_json(os.path.join(out_dir, "train_config.json"),
               {"arguments": _jsonable(arguments), "derived": _jsonable(derived)})  # fmt: skip


def train(variant=None, source=None, *, config=None, **options):
    """Train an FCN with `model.fit`; returns `(model, history)`.

    Every argument is a `TrainConfig` field (see it for each one's meaning
    and default): give them as keywords, as a `TrainConfig`, or both
    (keywords override the config's fields).

    Args:
        variant: `"fcn32s"`, `"fcn16s"` or `"fcn8s"`, or a whole `TrainConfig`.
            Defaults to the config's (`"fcn8s"`).
        source: a data source name, a batched `tf.data.Dataset` or a dataset
            function (see `TrainConfig`). Defaults to the config's (`"synthetic"`).
        config: a `TrainConfig`. Defaults to None (`TrainConfig()`'s defaults).
        **options: further `TrainConfig` fields (`out_dir`, required unless
            the config has it; `epochs`, `batch_size`, ...).

    Returns:
        `(model, history)`: the trained `keras.Model` (weights after the
        last epoch; `out_dir/best.keras` holds the best one; with a source
        name its `dataset_info` holds the class names, ignore label and
        palette) and the Keras `History` (`history.history["val_mean_iu"]` ...).

    Example:
    >>> model, history = fcn_keras.train(
    ...     "fcn8s", "synthetic", out_dir="runs/demo", fc_units=256, epochs=4,
    ...     source_kwargs={"image_size": 64}, optimizer="adam", learning_rate=3e-4)
    >>> model, history = fcn_keras.train(TrainConfig(out_dir="runs/demo", epochs=4))

    Reference: Long et al. 2015, Section 4.3 (optimisation) and 4.2 (staged training).
    """
    config = _train_config(variant, source, config, options)
    arguments = config.arguments()  # as given, before anything below rebinds a name
    out_dir, strategy = config.out_dir, config.strategy
    if isinstance(strategy, str) or strategy is None:
        strategy = make_strategy(strategy or "default")
    precision = resolve_precision(config.mixed_precision)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    if not is_chief():  # other workers write into a scratch directory of their own
        out_dir = os.path.join(out_dir, f"worker_{worker_index()[1]}")
    os.makedirs(out_dir, exist_ok=True)
    resumed = os.path.isdir(os.path.join(out_dir, "backup"))

    c = config
    inputs = make_inputs(
        c.source, num_classes=c.num_classes, validation_data=c.validation_data,
        val_split=c.val_split, source_kwargs=c.source_kwargs, ignore_label=c.ignore_label,
        crop_size=c.crop_size, augment=c.augment, batch_size=c.batch_size, epochs=c.epochs,
        steps_per_epoch=c.steps_per_epoch, schedule=c.schedule, class_weights=c.class_weights,
        seed=c.seed, num_replicas=strategy.num_replicas_in_sync,
    )  # fmt: skip
    with precision_policy(precision), strategy.scope():
        model = make_model(
            c.variant, inputs.num_classes, init_from=c.init_from, at_once=c.at_once,
            backbone_weights=c.backbone_weights, weights=c.weights, fc_units=c.fc_units,
            dropout=c.dropout, trainable_upsampling=c.trainable_upsampling, head=c.head,
            dataset_info=inputs.info, input_scale=c.input_scale,
        )  # fmt: skip
        if c.crf is not None and c.crf is not False:
            from fcn_keras.crf import with_crf

            model = with_crf(model, **({} if c.crf is True else c.crf))  # the CRF computes in float32
        compile_model(
            model, inputs, optimizer=c.optimizer, learning_rate=c.learning_rate,
            schedule=c.schedule, warmup_steps=c.warmup_steps, momentum=c.momentum,
            weight_decay=c.weight_decay, clipnorm=c.clipnorm, loss=c.loss,
            jit_compile=c.jit_compile,
        )  # fmt: skip
        if is_chief():
            from fcn_keras.models import variant_of

            _write_config(out_dir, arguments, {
                "variant": variant_of(model), "source": inputs.source_name,
                "num_classes": inputs.num_classes, "ignore_label": inputs.ignore_label,
                "class_names": list(inputs.info.class_names) if inputs.info else None,
                "steps_per_epoch": inputs.steps_per_epoch, "total_steps": inputs.total_steps,
                "class_weights": inputs.class_weights, "precision": precision or
                keras.config.dtype_policy().name, "strategy": type(strategy).__name__,
                "strategy_replicas": strategy.num_replicas_in_sync, "resumed": resumed,
            })  # fmt: skip
        history = fit(model, inputs, strategy, out_dir=out_dir, epochs=c.epochs,
                      validation_steps=c.validation_steps, callbacks=c.callbacks, backup=c.backup,
                      tensorboard=c.tensorboard, verbose=c.verbose)  # fmt: skip
    return model, history


def _train_config(variant, source, config, options):
    """The `TrainConfig` a `train(...)` call asks for (see `train`)."""
    if isinstance(variant, TrainConfig):
        if config is not None:
            raise TypeError("train() takes one TrainConfig: received one as variant and one as config.")
        config, variant = variant, None
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"train(config=...) takes a TrainConfig; received {type(config).__name__}.")
    _check_fields(options, "train()")
    changes = {**({"variant": variant} if variant is not None else {}),
               **({"source": source} if source is not None else {}), **options}  # fmt: skip
    config = config.replace(**changes) if config is not None else TrainConfig(**changes)
    if config.out_dir is None:
        raise TypeError("train() needs out_dir: the directory for checkpoints and logs "
                        "(train(..., out_dir='runs/x') or TrainConfig(out_dir=...)).")  # fmt: skip
    return config
