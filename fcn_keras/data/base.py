"""The `Source` interface every data source implements (the registry is in `sources.py`).

A source knows its classes (`info()`), lists the examples of a split as small
keys (`keys(split)`: indices or file paths, cheap to shuffle and shard) and
turns a dataset of keys into decoded `(image uint8 (H, W, 3), mask int32 (H, W))`
examples (`decode(...)`). `load_dataset` does everything else (sharding,
shuffling, caching, augmentation, batching), so every source gets the same
pipeline.

This module imports nothing from the package: the source modules
(`synthetic`, `files`, `folders`, `voc`, `tfds_source`) build on it, and the
registry (`fcn_keras.data.sources`) sits above them all.
"""

import abc

__all__ = ["Source"]


class Source(abc.ABC):
    """Base class of data sources (see the module docstring).

    Example:
    >>> class Tiny(Source):
    ...     def info(self): ...
    ...     def keys(self, split): ...
    ...     def decode(self, keys, *, num_parallel_calls, deterministic, skip_report): ...
    """

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
