"""`DatasetInfo`: what a data source knows about itself (classes, ignore label, palette, sizes)."""

import dataclasses

import numpy as np

__all__ = ["DatasetInfo"]


@dataclasses.dataclass(eq=False)
class DatasetInfo:
    """Static description of a segmentation data source.

    Args:
        name: source name, e.g. "synthetic", "voc", "camvid".
        num_classes: number of classes the masks use (ids `0 .. num_classes-1`).
        class_names: one name per class id.
        ignore_label: id of void / unlabelled pixels in the masks this source
            yields (after any remapping); excluded from losses and metrics.
        palette: optional `(num_classes, 3)` uint8 colours for drawing masks,
            or None (use `fcn_keras.visualize.voc_palette()`).
        num_examples: examples per split where known, e.g. `{"train": 367}`.
        description: one line on where the data comes from.

    Example:
    >>> info = DatasetInfo("toy", 2, ("bg", "fg"), 255)
    >>> info.num_classes, info.num_examples
    (2, {})
    """

    name: str
    num_classes: int
    class_names: tuple
    ignore_label: int = 255
    palette: np.ndarray | None = None
    num_examples: dict = dataclasses.field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        self.class_names = tuple(self.class_names)
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"DatasetInfo {self.name!r}: {len(self.class_names)} class names for "
                f"num_classes={self.num_classes}; expected one name per class."
            )
        if 0 <= self.ignore_label < self.num_classes:
            raise ValueError(
                f"DatasetInfo {self.name!r}: ignore_label {self.ignore_label} collides with a "
                f"class id (0..{self.num_classes - 1}); choose an id outside that range."
            )
        if self.palette is not None:
            self.palette = np.asarray(self.palette, dtype=np.uint8)

    def __eq__(self, other):
        # Field by field, the palette compared as an array (dataclass equality cannot).
        if not isinstance(other, DatasetInfo):
            return NotImplemented
        return self.to_config() == other.to_config()

    def to_config(self):
        """Return the fields as a JSON-serialisable dict (`from_config` inverts it).

        Returns:
            dict with `name`, `num_classes`, `class_names` (list), `ignore_label`,
            `palette` (list of `[r, g, b]` or None), `num_examples`, `description`.

        Example:
        >>> DatasetInfo("toy", 2, ("bg", "fg")).to_config()["class_names"]
        ['bg', 'fg']
        """
        return {
            "name": self.name,
            "num_classes": int(self.num_classes),
            "class_names": list(self.class_names),
            "ignore_label": int(self.ignore_label),
            "palette": None if self.palette is None else self.palette.tolist(),
            "num_examples": {str(k): int(v) for k, v in (self.num_examples or {}).items()},
            "description": self.description,
        }

    @classmethod
    def from_config(cls, config):
        """Rebuild a `DatasetInfo` from `to_config()`'s dict (unknown keys are an error).

        Args:
            config: a dict as returned by `to_config()`.

        Returns:
            A `DatasetInfo`.

        Example:
        >>> info = DatasetInfo("toy", 2, ("bg", "fg"), palette=[[0, 0, 0], [255, 0, 0]])
        >>> DatasetInfo.from_config(info.to_config()) == info
        True
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(
                f"DatasetInfo config has unknown keys {unknown}; expected a subset of "
                f"{sorted(fields)}."
            )
        return cls(**config)
