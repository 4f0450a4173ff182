"""The data-source interface and the registry that turns a source string into a source.

A source knows its classes (`info()`), lists the examples of a split as small
keys (`keys(split)`: indices or file paths, cheap to shuffle and shard) and
turns a dataset of keys into decoded `(image uint8 (H, W, 3), mask int32 (H, W))`
examples (`decode(...)`). `load_dataset` does everything else (sharding,
shuffling, caching, augmentation, batching), so every source gets the same
pipeline.

Source strings:
    "synthetic"                   built-in shapes (fcn_keras/data/synthetic.py)
    "voc"                         PASCAL VOC layout, `data_dir=` (voc.py)
    "sbd"                         SBD layout (cls/*.mat), `data_dir=` (voc.py)
    "folders"                     paired folders or a list file (folders.py)
    "camvid"                      CamVid in SegNet layout, `data_dir=` (folders.py)
    "tfds:NAME"                   a TensorFlow Datasets set, e.g. "tfds:oxford_iiit_pet"
An object with the `Source` methods is accepted as is.
"""

import abc

__all__ = ["Source", "resolve_source", "SOURCE_NAMES"]

SOURCE_NAMES = ("synthetic", "voc", "sbd", "folders", "camvid", "tfds:NAME")


class Source(abc.ABC):
    """Base class of data sources (see the module docstring)."""

    @abc.abstractmethod
    def info(self):
        """Return the source's `DatasetInfo`."""

    @abc.abstractmethod
    def keys(self, split):
        """Return a `tf.data.Dataset` of the split's example keys, in a fixed order.

        Raises:
            ValueError: the split is unknown or empty.
        """

    @abc.abstractmethod
    def decode(self, keys, *, num_parallel_calls, deterministic, skip_report):
        """Map a dataset of keys to `(image, mask)` examples.

        Args:
            keys: a dataset from `keys()` (possibly sharded and shuffled).
            num_parallel_calls: parallelism of the decoding map.
            deterministic: whether the map must keep the order.
            skip_report: a `SkipReport` to skip bad examples into, or None to
                raise on the first bad example.
        """

    def num_examples(self, split):
        """Number of examples of `split`, or None when unknown."""
        return self.info().num_examples.get(split)


def resolve_source(source, **kwargs):
    """Return a `Source` for a source string (see the module docstring) or a `Source`.

    Args:
        source: a source string or a `Source` instance.
        **kwargs: the source's own options (e.g. `data_dir=`, `image_size=`).

    Returns:
        A `Source`.

    Example:
    >>> resolve_source("synthetic", image_size=32).info().num_classes
    6
    """
    if isinstance(source, Source):
        ignore_label = kwargs.pop("ignore_label", None)
        own = source.info().ignore_label
        if ignore_label is not None and ignore_label != own:
            raise ValueError(
                f"the {source.info().name} source was built with ignore_label={own} but "
                f"ignore_label={ignore_label} was asked for; pass the same value to both."
            )
        if kwargs:
            raise ValueError(
                f"source options {sorted(kwargs)} were given with a Source instance; "
                "pass them to the source's constructor instead."
            )
        return source
    if not isinstance(source, str):
        raise ValueError(f"source must be a string or a Source; received {source!r}.")
    name = source.strip()
    lowered = name.lower()
    if lowered == "synthetic":
        from fcn_keras.data.synthetic import SyntheticSource

        return SyntheticSource(**kwargs)
    if lowered in ("voc", "sbd"):
        from fcn_keras.data.voc import SBDSource, VOCSource

        return (VOCSource if lowered == "voc" else SBDSource)(**kwargs)
    if lowered in ("folders", "camvid"):
        from fcn_keras.data.folders import CamVidSource, FolderSource

        return (FolderSource if lowered == "folders" else CamVidSource)(**kwargs)
    if lowered.startswith("tfds:"):
        from fcn_keras.data.tfds_source import TFDSSource

        return TFDSSource(name[len("tfds:") :], **kwargs)
    raise ValueError(
        f"unknown data source {source!r}; expected one of {', '.join(SOURCE_NAMES)} "
        "or a Source instance."
    )
