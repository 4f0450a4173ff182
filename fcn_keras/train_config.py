"""`TrainConfig`: everything `fcn_keras.train` takes, validated, with its one set of defaults.

`fcn_keras.train`, the `fcn-keras train` command (its flags' defaults) and
the results recipe (`fcn_keras.results`: a row's settings) read the same
fields and defaults from here. This module imports nothing heavy (the
command line reads it without importing TensorFlow).
"""

import dataclasses
import math
import numbers
import os

from fcn_keras.choices import HEADS

__all__ = ["TrainConfig"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything `train` takes, validated, with its defaults: the one place they are stated.

    `train(variant, source, out_dir=..., epochs=...)`, `train(config)` and
    `train(config=config, epochs=...)` (keywords override the config) all run
    the same `TrainConfig`; `fcn-keras train` builds one from its flags (its
    defaults are these), and the results recipe (`fcn_keras.results`) fills
    a row's settings from these defaults. `to_dict` gives the JSON form
    recorded as `train_config.json`'s `"arguments"`; `from_dict` reads it back
    (objects such as datasets or optimizers are recorded by type name only).

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
        out_dir: directory for checkpoints and logs (`train` requires it).
            Defaults to None.
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
        loss: a name or dict for `make_loss` (e.g. `{"name": "lovasz", "per_image": True}`)
            or a `keras.losses.Loss`. Defaults to `"cross_entropy"`.
        class_weights: None, a list of per-class weights, or
            `"median_frequency"` (computed from the training split with
            `median_frequency_weights`; source names only).
        init_from: a `.keras` model of the previous stage (FCN-32s to start
            an FCN-16s, FCN-16s to start an FCN-8s, see `fcn_keras.staged`)
            or of the same variant (continue training; an at-once FCN-8s
            continues at-once). Defaults to None.
        at_once: train the at-once FCN-8s (`FCN8s(at_once=True)`: one stage
            from the backbone, skip inputs scaled by 0.01 / 0.0001) instead
            of the staged one; only with `variant="fcn8s"`. This argument is
            the one way to ask for it. Defaults to False.
        backbone_weights: `"imagenet"`, a VGG16 weights file, or None
            (random). Defaults to None. Ignored with `init_from`.
        weights: optional whole-FCN weights file loaded after building.
        fc_units: fc6/fc7 width, or None for the head's: 4096 (the paper) or
            512 (`head="mobile"`). Defaults to None.
        dropout: dropout after fc6/fc7. Defaults to 0.5.
        trainable_upsampling: learn the bilinear-initialised upsampling.
            Defaults to False.
        head: `"paper"` (fc6 7x7, as in the paper) or `"mobile"` (fc6 3x3, the
            FCN an app ships; see `fcn_keras.models.HEADS`). Ignored with
            `init_from` (the head of that model is kept). Defaults to `"paper"`.
        input_scale: the factor the training images were resized by (a
            run at reduced scale gives crops and augmentation already scaled),
            saved with the model (`FCNModel.input_scale`, in `best.keras` and
            `last.keras` too) so that evaluation and prediction shrink their
            images the same way. Defaults to None (full size; `init_from`'s
            scale is kept).
        crf: train the FCN with a dense CRF appended (`fcn_keras.with_crf`,
            the CRF-as-RNN of Zheng et al. 2015): the loss is taken on the
            CRF's refined logits and both learn. True for the `DenseCRF`
            defaults, or a dict of `DenseCRF` options (e.g.
            `{"compatibility": "learned"}`); the saved models are FCN + CRF;
            the CRF computes in float32 under any precision. Defaults to None
            (the FCN alone).
        mixed_precision: None/`"float32"`, `"mixed_float16"` (with dynamic
            loss scaling), `"mixed_bfloat16"`, or `"auto"` (bfloat16 where the
            CPU has AMX / AVX512-BF16 or a GPU has compute capability >= 8.0,
            float32 elsewhere; the choice and its reason are printed, see
            `fcn_keras.distribute.auto_precision`). Logits and loss stay float32.
        jit_compile: compile the train step with XLA. Defaults to False.
        strategy: `"default"`, `"mirrored"`, `"multi_worker"` or a
            `tf.distribute.Strategy`. Defaults to `"default"`.
        seed: seeds Keras's and the pipeline's random generators. Defaults to None.
        backup: use `BackupAndRestore` (resume an interrupted run losing at
            most the current epoch). Defaults to True.
        tensorboard: write TensorBoard logs. Defaults to True.
        callbacks: further Keras callbacks.
        verbose: `model.fit` verbosity (`"auto"`, 0, 1 progress bar, 2). Defaults to `"auto"`.

    Raises:
        ValueError: a count, rate or width out of range, or an unknown head,
            naming the field, the value received and what is expected. Names
            of optimizers, schedules, losses and precisions are checked where
            they are used (`make_optimizer`, `make_loss`, `resolve_precision`).

    Example:
    >>> config = TrainConfig("fcn8s", "synthetic", out_dir="runs/demo", fc_units=256, epochs=4,
    ...                      source_kwargs={"image_size": 64}, learning_rate=3e-4)
    >>> model, history = fcn_keras.train(config)
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    """

    variant: str = "fcn8s"
    source: object = "synthetic"
    out_dir: object = None
    num_classes: object = None
    validation_data: object = None
    val_split: object = "val"
    source_kwargs: object = None
    ignore_label: object = None
    crop_size: object = None
    augment: object = None
    batch_size: int = 8
    epochs: int = 1
    steps_per_epoch: object = None
    validation_steps: object = None
    optimizer: object = "adam"
    learning_rate: object = None
    schedule: str = "constant"
    warmup_steps: int = 0
    momentum: float = 0.99
    weight_decay: object = None
    clipnorm: object = None
    loss: object = "cross_entropy"
    class_weights: object = None
    init_from: object = None
    at_once: bool = False
    backbone_weights: object = None
    weights: object = None
    fc_units: object = None
    dropout: float = 0.5
    trainable_upsampling: bool = False
    head: str = "paper"
    input_scale: object = None
    crf: object = None
    mixed_precision: object = None
    jit_compile: bool = False
    strategy: object = "default"
    seed: object = None
    backup: bool = True
    tensorboard: bool = True
    callbacks: object = None
    verbose: object = "auto"

    def __post_init__(self):
        counts = {"batch_size": (self.batch_size, 1), "epochs": (self.epochs, 1),
                  "steps_per_epoch": (self.steps_per_epoch, 1),
                  "validation_steps": (self.validation_steps, 1), "warmup_steps": (self.warmup_steps, 0),
                  "fc_units": (self.fc_units, 1), "num_classes": (self.num_classes, 1)}  # fmt: skip
        for name, (value, low) in counts.items():
            optional = name not in ("batch_size", "epochs", "warmup_steps")
            if value is None and optional:
                continue
            if not _is_integer(value) or value < low:
                raise ValueError(
                    f"TrainConfig {name} must be an integer >= {low}"
                    f"{' or None' if optional else ''}; received {value!r}."
                )
        ranges = {"learning_rate": (self.learning_rate, "> 0"), "weight_decay": (self.weight_decay, ">= 0"),
                  "clipnorm": (self.clipnorm, "> 0")}  # fmt: skip
        for name, (value, bound) in ranges.items():
            if value is not None and (not _is_number(value) or not (value > 0 if bound == "> 0" else value >= 0)):
                raise ValueError(f"TrainConfig {name} must be a number {bound} or None; received {value!r}.")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise ValueError(f"TrainConfig momentum must be in [0, 1); received {self.momentum!r}.")
        if not _is_number(self.dropout) or not 0 <= self.dropout < 1:
            raise ValueError(f"TrainConfig dropout must be in [0, 1); received {self.dropout!r}.")
        if self.head not in HEADS:
            raise ValueError(f"TrainConfig head must be one of {sorted(HEADS)}; received {self.head!r}.")
        if self.input_scale is not None and (not _is_number(self.input_scale)
                                             or not 0 < self.input_scale <= 1):  # fmt: skip
            raise ValueError(f"TrainConfig input_scale must be in (0, 1] or None; received {self.input_scale!r}.")
        if self.crf not in (None, False, True) and not isinstance(self.crf, dict):
            raise ValueError(f"TrainConfig crf must be True or a dict of DenseCRF options; received {self.crf!r}.")

    @classmethod
    def defaults(cls):
        """`{field: default}` of every field: what `train` uses for an argument not given.

        Returns:
            A dict in field order (the order of `train_config.json`'s arguments).

        Example:
        >>> TrainConfig.defaults()["batch_size"]
        8
        """
        return {field.name: field.default for field in dataclasses.fields(cls)}

    def replace(self, **changes):
        """A copy with `changes` applied (validated again); an unknown name is a `TypeError`.

        Args:
            **changes: fields and their new values.

        Returns:
            A new `TrainConfig`.

        Example:
        >>> TrainConfig(epochs=2).replace(batch_size=4).batch_size
        4
        """
        _check_fields(changes, "TrainConfig.replace()")
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The fields as JSON values (objects such as datasets by type name, `"<Dataset>"`).

        Returns:
            A dict in field order: `train_config.json`'s `"arguments"`.

        Example:
        >>> TrainConfig(epochs=3).to_dict()["epochs"]
        3
        """
        return _jsonable(self.arguments())

    def arguments(self):
        """The fields as given (no conversion), `{name: value}` in field order.

        Returns:
            A dict of the field values themselves (datasets, callbacks ... included).
        """
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data):
        """A `TrainConfig` from `to_dict`'s form (e.g. `train_config.json`'s `"arguments"`).

        Args:
            data: a dict of field names and values; fields not in it keep
                their defaults. An unknown name raises `ValueError`.

        Returns:
            A validated `TrainConfig`.

        Example:
        >>> arguments = json.load(open("runs/demo/train_config.json"))["arguments"]
        >>> TrainConfig.from_dict(arguments).epochs
        4
        """
        if not isinstance(data, dict):
            raise ValueError(f"TrainConfig.from_dict expects a dict; received {type(data).__name__}.")
        unknown = sorted(set(data) - set(cls.defaults()))
        if unknown:
            raise ValueError(
                f"TrainConfig.from_dict: unknown field(s) {unknown}; the fields are "
                f"{list(cls.defaults())}."
            )
        return cls(**data)


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_fields(names, where):
    unknown = sorted(set(names) - set(TrainConfig.defaults()))
    if unknown:
        raise TypeError(
            f"{where} got unexpected argument(s) {unknown}; the TrainConfig fields are "
            f"{list(TrainConfig.defaults())}."
        )




def _jsonable(value):
    """A JSON value for train_config.json: objects (datasets, optimizers ...) by type name."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # NumPy arrays and scalars (e.g. median-frequency weights)
    return f"<{type(value).__name__}>"
