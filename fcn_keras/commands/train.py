"""`fcn-keras train`: train an FCN-32s/16s/8s with `model.fit` (checkpoints, resumable, logs).

    fcn-keras train fcn32s --source camvid --data-dir ../shared/data/camvid --out runs/s32
    fcn-keras train fcn16s --init-from runs/s32/best.keras ... --out runs/s16
    fcn-keras train fcn8s --at-once --source camvid --data-dir ../shared/data/camvid --out runs/a8

The choices (optimizers, schedules, losses, precisions, strategies, heads) come
from `fcn_keras.choices`, the lists the library validates against, and every
default from `fcn_keras.TrainConfig` (the one place `train`'s defaults are
stated): the flags build a `TrainConfig`. Arguments are declared here; the
library is imported inside the handler (see `fcn_keras/commands/__init__.py`).
"""

import argparse

from fcn_keras.choices import (DEFAULT_LEARNING_RATES, HEAD_FC_UNITS, HEADS, LOSSES, OPTIMIZERS,
                               PRECISIONS, SCHEDULES, STRATEGIES, VARIANTS)  # fmt: skip
from fcn_keras.commands.sources import add_source_arguments, source_kwargs
from fcn_keras.train_config import TrainConfig

__all__ = ["register", "config_of"]


def register(subparsers):
    """Add `fcn-keras train` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    parser = subparsers.add_parser(
        "train",
        help="train an FCN with model.fit (checkpoints, resumable, TensorBoard/CSV logs)",
        description="Train an FCN-32s/16s/8s. Writes best.keras, last.keras, history.csv, "
        "tensorboard/ and backup/ (BackupAndRestore: rerun the same command to resume an "
        "interrupted run) into --out. Staged recipe: train fcn32s, then fcn16s --init-from "
        "its best.keras, then fcn8s --init-from the fcn16s best.keras; or train the at-once "
        "FCN-8s in one stage with fcn8s --at-once.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    default = TrainConfig.defaults()
    parser.add_argument("variant", help=", ".join(VARIANTS))
    add_source_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--val-split", default=default["val_split"], help="validation split ('none' to skip)")
    parser.add_argument("--crop-size", type=int, default=default["crop_size"], help="random training crop")
    parser.add_argument("--batch-size", type=int, default=default["batch_size"], help="global batch size")
    parser.add_argument("--epochs", type=int, default=default["epochs"])
    parser.add_argument("--steps-per-epoch", type=int, default=default["steps_per_epoch"],
                        help="batches per epoch (repeats the training set)")  # fmt: skip
    parser.add_argument("--validation-steps", type=int, default=default["validation_steps"])
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=default["optimizer"])
    rates = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LEARNING_RATES.items())
    parser.add_argument("--learning-rate", "--lr", type=float, default=default["learning_rate"],
                        help=f"peak learning rate (default: {rates}; sgd's is the paper's 1e-10 "
                             "for a summed loss rescaled to a mean loss)")  # fmt: skip
    parser.add_argument("--schedule", choices=SCHEDULES, default=default["schedule"])
    parser.add_argument("--warmup-steps", type=int, default=default["warmup_steps"])
    parser.add_argument("--momentum", type=float, default=default["momentum"],
                        help="SGD momentum (paper: 0.99)")  # fmt: skip
    parser.add_argument("--weight-decay", type=float, default=default["weight_decay"])
    parser.add_argument("--loss", choices=LOSSES, default=default["loss"],
                        help="lovasz: Lovasz-Softmax (IoU surrogate); dice: soft Dice; "
                             "cross_entropy+lovasz: their weighted sum")  # fmt: skip
    parser.add_argument("--focal-gamma", type=float, default=argparse.SUPPRESS,
                        help="focal loss exponent (default 2.0)")  # fmt: skip
    parser.add_argument("--lovasz-weight", type=float, default=argparse.SUPPRESS,
                        help="cross_entropy+lovasz: weight of the Lovasz term (default 1.0)")
    parser.add_argument("--per-image", action="store_true", default=argparse.SUPPRESS,
                        help="lovasz, cross_entropy+lovasz: Lovasz loss per image, averaged "
                             "(default: the whole batch as one set of pixels)")  # fmt: skip
    parser.add_argument("--loss-classes", choices=("present", "all"), default=argparse.SUPPRESS,
                        help="lovasz, dice, cross_entropy+lovasz: average over the classes "
                             "present in the ground truth (default) or all classes")  # fmt: skip
    parser.add_argument("--dice-smooth", type=float, default=argparse.SUPPRESS,
                        help="dice: smoothing term (default 1.0)")  # fmt: skip
    parser.add_argument("--class-weights", default=default["class_weights"],
                        help="'median_frequency' or comma-separated weights, one per class")
    parser.add_argument("--init-from", default=default["init_from"],
                        help="previous stage's .keras (fcn32s for fcn16s, fcn16s for fcn8s)")
    parser.add_argument("--at-once", action="store_true",
                        help="fcn8s only: the at-once FCN-8s (scaled skips, trained in one stage)")
    parser.add_argument("--backbone-weights", default=default["backbone_weights"],
                        help="'imagenet' or a VGG16 weights file (default: random)")
    widths = ", ".join(f"{head} {units}" for head, units in HEAD_FC_UNITS.items())
    parser.add_argument("--fc-units", type=int, default=default["fc_units"],
                        help=f"fc6/fc7 width (default: the head's: {widths})")  # fmt: skip
    parser.add_argument("--head", choices=tuple(HEADS), default=default["head"],
                        help="fc6 as the paper's 7x7 convolution or a 3x3 one (mobile)")  # fmt: skip
    parser.add_argument("--dropout", type=float, default=default["dropout"])
    parser.add_argument("--trainable-upsampling", action="store_true",
                        help="learn the bilinear-initialised upsampling")  # fmt: skip
    parser.add_argument("--mixed-precision", choices=PRECISIONS, default=default["mixed_precision"],
                        help="dtype policy; 'auto': mixed_bfloat16 where the hardware has "
                             "bfloat16 units, else float32 (default: float32)")  # fmt: skip
    parser.add_argument("--xla", action="store_true", help="jit_compile the train step")
    parser.add_argument("--strategy", choices=STRATEGIES, default=default["strategy"],
                        help="multi_worker reads the cluster from TF_CONFIG")  # fmt: skip
    parser.add_argument("--seed", type=int, default=default["seed"])
    parser.add_argument("--no-backup", action="store_true", help="disable BackupAndRestore")
    parser.add_argument("--no-tensorboard", action="store_true")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="1: Keras progress bar; 2: one line per epoch")  # fmt: skip
    parser.set_defaults(handler=run)


def _class_weights(text):
    if text in (None, "median_frequency"):
        return text
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--class-weights expects 'median_frequency' or comma-separated numbers; "
            f"received {text!r}."
        ) from None


def _loss(args):
    """`--loss` and its options as `train(loss=...)` takes them: a name, or a dict with options."""
    from fcn_keras.training import make_loss

    # The option flags default to argparse.SUPPRESS: only those given are attributes.
    flags = {"focal_gamma": "focal_gamma", "lovasz_weight": "lovasz_weight",
             "per_image": "per_image", "classes": "loss_classes", "dice_smooth": "dice_smooth"}
    options = {key: getattr(args, flag) for key, flag in flags.items() if hasattr(args, flag)}
    loss = {"name": args.loss, **options} if options else args.loss
    make_loss(loss)  # an option the loss does not take is an error before any training work
    return loss


def config_of(args):
    """The `TrainConfig` the parsed `fcn-keras train` flags ask for (validated).

    Args:
        args: the `argparse.Namespace` of `fcn-keras train`.

    Returns:
        A `fcn_keras.TrainConfig`.

    Example:
    >>> from fcn_keras.cli import build_parser
    >>> config_of(build_parser().parse_args(["train", "fcn8s", "--out", "runs/x"])).epochs
    1
    """
    class_weights = _class_weights(args.class_weights)
    loss = _loss(args)
    return TrainConfig(
        args.variant, args.source, out_dir=args.out, source_kwargs=source_kwargs(args),
        val_split=None if args.val_split.lower() == "none" else args.val_split,
        crop_size=args.crop_size, batch_size=args.batch_size, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, validation_steps=args.validation_steps,
        optimizer=args.optimizer, learning_rate=args.learning_rate, schedule=args.schedule,
        warmup_steps=args.warmup_steps, momentum=args.momentum,
        weight_decay=args.weight_decay, loss=loss, class_weights=class_weights,
        init_from=args.init_from,
        at_once=args.at_once, backbone_weights=args.backbone_weights, fc_units=args.fc_units,
        dropout=args.dropout, trainable_upsampling=args.trainable_upsampling, head=args.head,
        mixed_precision=args.mixed_precision, jit_compile=args.xla, strategy=args.strategy,
        seed=args.seed, backup=not args.no_backup, tensorboard=not args.no_tensorboard,
        verbose=args.verbose,
    )  # fmt: skip


def run(args):
    """Train the model `args` describe; returns the exit code."""
    from fcn_keras.training import train

    model, history = train(**config_of(args).arguments())
    logs = {k: round(float(v[-1]), 4) for k, v in history.history.items()}
    print(f"trained {model.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(logs.items())))
    print(f"checkpoints: {args.out}/best.keras, {args.out}/last.keras")
    return 0
