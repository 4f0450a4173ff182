"""TensorFlow Datasets as a source: `"tfds:NAME"`, with feature-key mapping and label remap.

`load_dataset("tfds:oxford_iiit_pet", "train")` reads a prepared TFDS
dataset (nothing is downloaded unless `download=True`). Options:

- `feature_keys={"image": ..., "mask": ...}`: which features hold the RGB
  image and the integer mask (a trailing channel of 1 is squeezed).
- `label_map={raw: id}`: remap mask values; a value of "ignore" means the
  ignore label. Unmapped values pass through and are then checked against
  `num_classes`.
- `mask_resize`: "error" (default) refuses an example whose mask size differs
  from its image's, naming it; "nearest" resizes such masks to the image
  nearest-neighbour. Real datasets have matching sizes; `tfds.testing.mock_data`
  draws image and mask sizes independently, hence the option.

Presets fill these for known datasets: "oxford_iiit_pet" maps its trimap
(1 pet, 2 background, 3 border) to 0 background, 1 pet, border -> ignore.
"""

import numpy as np
import tensorflow as tf

from fcn_keras.data.files import build_lut
from fcn_keras.data.info import DatasetInfo
from fcn_keras.data.base import Source
from fcn_keras.data.validation import BadExampleError, check_mask_values, check_not_shutting_down

__all__ = ["TFDSSource", "TFDS_PRESETS"]

TFDS_PRESETS = {
    "oxford_iiit_pet": dict(
        feature_keys={"image": "image", "mask": "segmentation_mask"},
        label_map={1: 1, 2: 0, 3: "ignore"},
        num_classes=2,
        class_names=("background", "pet"),
    ),
}


class TFDSSource(Source):
    """A TFDS dataset (source string "tfds:NAME"); see the module docstring.

    Args:
        name: TFDS name, optionally with a version ("oxford_iiit_pet:4.*").
        data_dir: TFDS data directory. Defaults to TFDS's default.
        feature_keys: `{"image": key, "mask": key}`. Defaults to the preset,
            else `{"image": "image", "mask": "segmentation_mask"}`.
        label_map: `{raw: id or "ignore"}`. Defaults to the preset's.
        num_classes: number of classes. Required without a preset.
        class_names: names of the classes.
        ignore_label: the pipeline's ignore label. Defaults to 255.
        mask_resize: "error" or "nearest". Defaults to "error".
        download: let TFDS download and prepare the data. Defaults to False.
    """

    heavy_keys = True  # keys are whole examples: shuffle with a bounded buffer

    def __init__(self, name, data_dir=None, feature_keys=None, label_map=None, num_classes=None,
                 class_names=None, ignore_label=255, mask_resize="error", download=False):  # fmt: skip
        import tensorflow_datasets as tfds

        self._tfds = tfds
        base = name.split(":")[0].split("/")[0]
        preset = TFDS_PRESETS.get(base, {})
        self.name, self.data_dir, self.download = name, data_dir, download
        self.feature_keys = dict(feature_keys or preset.get("feature_keys")
                                 or {"image": "image", "mask": "segmentation_mask"})  # fmt: skip
        if set(self.feature_keys) != {"image", "mask"}:
            raise ValueError(f"tfds:{name}: feature_keys must map 'image' and 'mask'; "
                             f"received {self.feature_keys!r}.")  # fmt: skip
        label_map = preset.get("label_map") if label_map is None else label_map
        num_classes = num_classes or preset.get("num_classes")
        if num_classes is None:
            raise ValueError(f"tfds:{name}: num_classes= is required (no preset for {base!r}).")
        if mask_resize not in ("error", "nearest"):
            raise ValueError(f"mask_resize must be 'error' or 'nearest'; received {mask_resize!r}.")
        self.mask_resize, self.ignore_label = mask_resize, int(ignore_label)
        self.num_classes = int(num_classes)
        label_map = {int(k): (self.ignore_label if v == "ignore" else int(v))
                     for k, v in (label_map or {}).items()}  # fmt: skip
        self.lut = build_lut(label_map, (), self.ignore_label).astype(np.int32)
        self._info = DatasetInfo(
            name=f"tfds:{name}", num_classes=self.num_classes,
            class_names=class_names or preset.get("class_names")
            or tuple(f"class_{i}" for i in range(self.num_classes)),
            ignore_label=self.ignore_label, description=f"TensorFlow Datasets {name}",
        )  # fmt: skip

    def info(self):
        try:
            builder = self._tfds.builder(self.name, data_dir=self.data_dir)
            for split, split_info in builder.info.splits.items():
                self._info.num_examples.setdefault(split, int(split_info.num_examples))
        except Exception:  # noqa: BLE001 - sizes are optional; the data may not be prepared
            pass
        return self._info

    def keys(self, split):
        try:
            ds = self._tfds.load(self.name, split=split, data_dir=self.data_dir,
                                 download=self.download, shuffle_files=False)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - TFDS raises many types for missing data
            raise ValueError(f"tfds:{self.name}: cannot load split {split!r} ({e}).") from e
        missing = set(self.feature_keys.values()) - set(ds.element_spec)
        if missing:
            raise ValueError(f"tfds:{self.name}: features {sorted(missing)} not found; the "
                             f"dataset has {sorted(ds.element_spec)}. Set feature_keys=.")  # fmt: skip
        if int(ds.cardinality()) == 0:
            raise ValueError(f"tfds:{self.name}: split {split!r} is empty.")
        name_key = "file_name" if "file_name" in ds.element_spec else None
        keys = self.feature_keys

        def select(index, example):
            label = example[name_key] if name_key else tf.strings.as_string(index)
            return {"image": example[keys["image"]], "mask": example[keys["mask"]],
                    "name": tf.strings.join([f"tfds:{self.name}[{split}] ", label])}  # fmt: skip

        return ds.enumerate().map(select)

    def decode(self, keys, *, num_parallel_calls, deterministic, skip_report):
        lut = tf.constant(self.lut)
        num_classes, ignore, resize = self.num_classes, self.ignore_label, self.mask_resize

        def check(image_shape, mask, name):
            check_not_shutting_down()
            name = name.decode()
            try:
                if resize == "error" and tuple(image_shape[:2]) != mask.shape:
                    raise BadExampleError(
                        f"{name}: image is {image_shape[1]}x{image_shape[0]} but its mask is "
                        f"{mask.shape[1]}x{mask.shape[0]} (width x height); expected the same "
                        "size (mask_resize='nearest' resizes such masks)."
                    )
                check_mask_values(mask, num_classes, ignore, name)
            except BadExampleError as e:
                if skip_report is None:
                    raise
                skip_report.add(name, str(e))
                return False
            return True

        def prepare(key):
            image, mask = key["image"], key["mask"]
            if image.shape.rank == 3 and image.shape[-1] == 1:
                image = tf.image.grayscale_to_rgb(image)  # grayscale -> RGB
            if mask.shape.rank == 3:
                mask = mask[..., 0]
            mask = tf.gather(lut, tf.cast(mask, tf.int32))
            if resize == "nearest":
                mask = tf.image.resize(mask[..., None], tf.shape(image)[:2],
                                       method="nearest")[..., 0]  # fmt: skip
            ok = tf.numpy_function(check, [tf.shape(image), mask, key["name"]], tf.bool)
            ok.set_shape([])
            return tf.cast(image, tf.uint8), mask, ok

        ds = keys.map(prepare, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
        if skip_report is not None:
            ds = ds.filter(lambda image, mask, ok: ok)
        return ds.map(lambda image, mask, ok: (image, mask))
