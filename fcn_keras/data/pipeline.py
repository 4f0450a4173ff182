"""`load_dataset` and `dataset_info`: one entry point from a source to batches for `model.fit`.

The pipeline, in order: list the split's keys (indices or file paths) ->
shard (under `tf.distribute`) -> shuffle keys -> decode in parallel (with the
bad-input checks) -> optional cache -> repeat -> augment (train) -> batch
(fixed-size crops) or padded batch (native sizes, mask padded with the ignore
label) -> prefetch. Decoding and augmentation run with AUTOTUNE parallelism.
"""

import tensorflow as tf

from fcn_keras.data.sources import resolve_source
from fcn_keras.data.transforms import (
    DEFAULT_PAD_RGB,
    Augment,
    normalize_crop_size,
    train_transform,
)
from fcn_keras.data.validation import LOGGER, BadExampleError, SkipReport, bad_example_message

__all__ = ["load_dataset", "dataset_info", "scan_dataset"]

AUTOTUNE = tf.data.AUTOTUNE
# Seed mixed into `seed` per input pipeline, so that shards augment differently.
_SHARD_SEED_STRIDE = 1_000_003


def dataset_info(source, **source_kwargs):
    """Describe a data source without reading its examples.

    Args:
        source: a source string ("synthetic", "voc", "sbd", "folders",
            "camvid", "tfds:NAME") or a `Source`.
        **source_kwargs: the source's options (e.g. `data_dir=`).

    Returns:
        A `DatasetInfo` (`num_classes`, `class_names`, `ignore_label`,
        `palette`, `num_examples` per split where known).

    Example:
    >>> dataset_info("synthetic").num_classes
    6
    """
    return resolve_source(source, **source_kwargs).info()


def scan_dataset(source, split="train", *, skip_bad=False, ignore_label=255, **source_kwargs):
    """Decode and check every example of a split once, up front, in parallel.

    Errors surface here as a `ValueError` (`BadExampleError`) naming the
    file, before any training starts, instead of as a `tf.errors.OpError`
    halfway through an epoch.

    Args:
        source: a source string or a `Source`.
        split: the split to check. Defaults to "train".
        skip_bad: collect every bad example instead of raising on the first.
            Defaults to False.
        ignore_label: the pipeline's ignore label. Defaults to 255.
        **source_kwargs: the source's options.

    Returns:
        `(num_good, report)`: the number of usable examples and a `SkipReport`
        of the bad ones (empty unless `skip_bad`).

    Raises:
        BadExampleError: the first bad example, unless `skip_bad`.

    Example:
    >>> scan_dataset("synthetic", "val", num_examples=4, image_size=32)[0]
    4
    """
    src = resolve_source(source, ignore_label=ignore_label, **source_kwargs)
    report = SkipReport(log=False)
    ds = src.decode(src.keys(split), num_parallel_calls=AUTOTUNE, deterministic=False,
                    skip_report=report if skip_bad else None)  # fmt: skip
    count = 0
    try:
        for _ in ds.map(lambda image, mask: 0).as_numpy_iterator():
            count += 1
    except tf.errors.OpError as e:
        message = bad_example_message(e)
        if message is None:
            raise
        raise BadExampleError(message) from None
    return count, report


def load_dataset(
    source,
    split="train",
    *,
    batch_size=8,
    crop_size=None,
    augment=None,
    ignore_label=255,
    shuffle=None,
    seed=None,
    cache=False,
    repeat=False,
    input_context=None,
    deterministic=None,
    skip_bad=False,
    skip_report=None,
    scan=False,
    shuffle_buffer=None,
    drop_remainder=False,
    image_pad_value=DEFAULT_PAD_RGB,
    num_parallel_calls=AUTOTUNE,
    num_threads=None,
    prefetch=AUTOTUNE,
    **source_kwargs,
):
    """Build a `tf.data.Dataset` of `(image, mask)` batches from a segmentation source.

    Args:
        source: a source string or a `Source`: "synthetic" (built in),
            "voc" / "sbd" (`data_dir=`), "folders" (`image_dir=` +
            `mask_dir=`, or `list_file=`), "camvid" (`data_dir=`, SegNet
            layout), "tfds:NAME" (e.g. "tfds:oxford_iiit_pet"). See docs/data.md.
        split: split name, e.g. "train", "val". Defaults to "train".
        batch_size: examples per batch; the *global* batch size when
            `input_context` is given (each replica gets its share). Defaults to 8.
        crop_size: int or `(height, width)`: augmented examples are randomly
            cropped to it (padded first where smaller: mask with
            `ignore_label`, image with `image_pad_value`). None keeps each
            example's (rescaled) size and pads batches. Only applies when
            augmenting. Defaults to None.
        augment: True, False, an `Augment` or a dict of its fields. None
            means True for split "train" and False otherwise. Defaults to None.
        ignore_label: id given to void / unlabelled / padded mask pixels.
            Defaults to 255.
        shuffle: shuffle the examples. None means True for "train". Defaults to None.
        seed: int seed of shuffling and augmentation; with a seed (and
            `deterministic` not False) the dataset is reproducible. Defaults to None.
        cache: False, True (in memory) or a file path prefix: cache decoded
            examples (before augmentation; masks stored as uint8 when the ids
            fit). CamVid's 367 training pairs take about 250 MB. Defaults to False.
        repeat: False, True (forever) or a number of epochs. Defaults to False.
        input_context: a `tf.distribute.InputContext`: the keys are sharded by
            `input_pipeline_id` and the batch size divided per replica, for
            `strategy.distribute_datasets_from_function`. Defaults to None.
        deterministic: keep element order in parallel maps. None means True
            when `seed` is given or when not shuffling (eval splits come in
            file order), False for unseeded shuffled training (faster).
            Defaults to None.
        skip_bad: skip bad examples (counted, logged and recorded in
            `dataset.skip_report`) instead of raising. Defaults to False.
        skip_report: a `SkipReport` to record skips into (one is created when
            None and `skip_bad`). Defaults to None.
        scan: decode and check every example once before building the
            pipeline (`scan_dataset`), so that a bad file raises a
            `ValueError` here rather than a `tf.errors.InvalidArgumentError`
            during iteration. With `skip_bad` the scan only logs what it finds.
            Defaults to False.
        shuffle_buffer: shuffle buffer size; None shuffles all keys (file
            paths or indices, before decoding), or 1024 examples after a cache
            and for TFDS sources. Defaults to None.
        drop_remainder: drop the last partial batch. Defaults to False.
        image_pad_value: RGB fill of crop padding. Defaults to VGG16's
            ImageNet mean (124, 117, 104), which `CaffePreprocess` maps to 0.
            Eval padded batches fill images with 0 (their mask is ignored there).
        num_parallel_calls: parallelism of decoding and augmentation.
            Defaults to AUTOTUNE.
        num_threads: size of the dataset's private thread pool
            (`options.threading.private_threadpool_size`); None uses TF's
            shared pool. Defaults to None.
        prefetch: prefetch buffer (batches), 0 to disable. Defaults to AUTOTUNE.
        **source_kwargs: the source's options (`data_dir=`, `image_size=`, ...).

    Returns:
        A `tf.data.Dataset` of `(image, mask)`: uint8 `(B, H, W, 3)` and int32
        `(B, H, W)`. When `skip_bad` it carries `.skip_report`.

    Example:
    >>> ds = load_dataset("synthetic", "train", batch_size=4, crop_size=64, seed=0,
    ...                   num_examples=8, image_size=64)
    >>> [tuple(t.shape) for t in next(iter(ds))]
    [(4, 64, 64, 3), (4, 64, 64)]
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")
    crop = normalize_crop_size(crop_size)
    is_train = split == "train"
    augment = Augment.coerce(is_train if augment is None else augment)
    shuffle = is_train if shuffle is None else bool(shuffle)
    if deterministic is None:  # relax the order only where it is random anyway
        deterministic = seed is not None or not shuffle
    if len(tuple(image_pad_value)) != 3:
        raise ValueError(f"image_pad_value must be 3 RGB values; received {image_pad_value!r}.")
    if skip_bad and skip_report is None:
        skip_report = SkipReport()
    if not skip_bad:
        skip_report = None

    src = resolve_source(source, ignore_label=ignore_label, **source_kwargs)
    if scan:
        good, found = scan_dataset(src, split, skip_bad=skip_bad)
        if skip_bad:
            LOGGER.warning("scan of %s split %r: %d usable example(s); %s",
                           src.info().name, split, good, found.summary())  # fmt: skip
    keys = src.keys(split)

    # === Sharding under tf.distribute ===
    if input_context is not None:
        if input_context.num_input_pipelines > 1:
            keys = keys.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        if seed is not None:
            seed = int(seed) + _SHARD_SEED_STRIDE * input_context.input_pipeline_id

    # === Shuffle (keys, cheap) -> decode -> cache ===
    decode_kwargs = dict(num_parallel_calls=num_parallel_calls, deterministic=deterministic,
                         skip_report=skip_report)  # fmt: skip
    if cache is False or cache is None:
        if shuffle:
            heavy = getattr(src, "heavy_keys", False)  # keys that are whole examples (TFDS)
            buffer = shuffle_buffer or (1024 if heavy else _count(keys))
            keys = keys.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = src.decode(keys, **decode_kwargs)
    else:
        ds = src.decode(keys, **decode_kwargs)
        info = src.info()
        # Checked masks hold ids < num_classes or the ignore label: cache them as uint8
        # when both fit (a quarter of the memory of int32).
        narrow = info.num_classes <= 256 and 0 <= int(ignore_label) < 256
        if narrow:
            ds = ds.map(lambda image, mask: (image, tf.cast(mask, tf.uint8)))
        ds = ds.cache("" if cache is True else str(cache))
        if narrow:
            ds = ds.map(lambda image, mask: (image, tf.cast(mask, tf.int32)))
        if shuffle:
            ds = ds.shuffle(shuffle_buffer or 1024, seed=seed, reshuffle_each_iteration=True)

    if repeat is True:
        ds = ds.repeat()
    elif repeat:
        ds = ds.repeat(int(repeat))

    # === Augmentation with per-example stateless seeds ===
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ignore, pad = int(ignore_label), tuple(int(v) for v in image_pad_value)

        def transform(example, example_seed):
            image, mask = example
            return train_transform(image, mask, example_seed, augment=augment,
                                   crop_size=crop, ignore_label=ignore, pad_value=pad)  # fmt: skip

        ds = tf.data.Dataset.zip((ds, seeds)).map(
            transform, num_parallel_calls=num_parallel_calls, deterministic=deterministic
        )

    # === Batching: fixed crops batch directly; native sizes are padded per batch ===
    if augment is not None and crop is not None:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    else:
        ds = ds.padded_batch(
            batch_size,
            padded_shapes=([None, None, 3], [None, None]),
            padding_values=(tf.constant(0, tf.uint8), tf.constant(int(ignore_label), tf.int32)),
            drop_remainder=drop_remainder,
        )
    if prefetch:
        ds = ds.prefetch(prefetch)

    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    if num_threads is not None:
        options.threading.private_threadpool_size = int(num_threads)
    if input_context is not None:
        # Sharding is done on the keys above; stop tf.distribute from sharding again.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    ds = ds.with_options(options)
    if skip_report is not None:
        ds.skip_report = skip_report
    return ds


def _count(keys):
    """Number of keys (for a full shuffle buffer); falls back to 4096 when unknown."""
    n = int(keys.cardinality())
    return n if n > 0 else 4096
