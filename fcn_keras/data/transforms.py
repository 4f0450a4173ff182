"""Joint image/mask transforms for segmentation: random scale, crop, flip, photometric jitter.

Image and mask are transformed together: the mask rides along as a fourth
channel, so one crop and one flip apply to both and can never disagree. Masks
are only ever resized nearest-neighbour (no new class ids appear) and padded
with the ignore label, never with class 0. Images are padded with the mean
colour (VGG16's ImageNet mean in RGB by default), which `CaffePreprocess`
maps to zero. Random draws are stateless: each example receives a `(2,)`
int64 seed, which is what makes the pipeline reproducible with `seed=`.

Reference: the crop/pad/flip conventions follow tensorflow/models
`official/vision` segmentation parsers.
"""

import dataclasses

import tensorflow as tf

__all__ = ["Augment", "DEFAULT_PAD_RGB", "train_transform", "normalize_crop_size"]

# VGG16's ImageNet mean (preprocessing.IMAGENET_BGR_MEAN) in RGB, rounded to uint8.
DEFAULT_PAD_RGB = (124, 117, 104)


@dataclasses.dataclass(frozen=True)
class Augment:
    """Settings of the training augmentation.

    Args:
        scale_range: `(min, max)` factor of the joint random rescale, drawn
            uniformly. Defaults to (0.5, 2.0). `(1, 1)` disables it.
        flip: random horizontal flip with probability 0.5. Defaults to True.
        photometric: random brightness/contrast/saturation/hue jitter of the
            image only. Defaults to False.
        brightness: maximum brightness shift, in [0, 1] image units. Defaults to 0.1.
        contrast: `(lower, upper)` contrast factor range. Defaults to (0.8, 1.2).
        saturation: `(lower, upper)` saturation factor range. Defaults to (0.8, 1.2).
        hue: maximum hue shift in [0, 0.5]. Defaults to 0.02.

    Example:
    >>> Augment(scale_range=(0.75, 1.25), photometric=True).flip
    True
    """

    scale_range: tuple = (0.5, 2.0)
    flip: bool = True
    photometric: bool = False
    brightness: float = 0.1
    contrast: tuple = (0.8, 1.2)
    saturation: tuple = (0.8, 1.2)
    hue: float = 0.02

    def __post_init__(self):
        lo, hi = (float(v) for v in self.scale_range)
        if not 0 < lo <= hi:
            raise ValueError(
                f"Augment.scale_range must be (min, max) with 0 < min <= max; "
                f"received {self.scale_range!r}."
            )
        object.__setattr__(self, "scale_range", (lo, hi))

    @classmethod
    def coerce(cls, value):
        """Return an `Augment` from True, an `Augment` or a dict of its fields; None for False."""
        if value is False or value is None:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(f"unknown augment settings {sorted(unknown)}; "
                                 f"expected fields of Augment: "
                                 f"{[f.name for f in dataclasses.fields(cls)]}.")  # fmt: skip
            return cls(**value)
        raise ValueError(
            f"augment must be None, a bool, an Augment or a dict; received {value!r}."
        )


def normalize_crop_size(crop_size):
    """Return `(height, width)` from an int, a pair or None."""
    if crop_size is None:
        return None
    if isinstance(crop_size, int):
        crop_size = (crop_size, crop_size)
    try:
        h, w = (int(v) for v in crop_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"crop_size must be an int or (height, width); received {crop_size!r}."
        ) from None
    if h < 1 or w < 1:
        raise ValueError(f"crop_size must be positive; received {crop_size!r}.")
    return h, w


def _photometric(image, seeds, augment):
    """Jitter a float image in [0, 1]."""
    image = tf.image.stateless_random_brightness(image, augment.brightness, seeds[0])
    image = tf.image.stateless_random_contrast(image, *augment.contrast, seeds[1])
    image = tf.image.stateless_random_saturation(image, *augment.saturation, seeds[2])
    image = tf.image.stateless_random_hue(image, augment.hue, seeds[3])
    return tf.clip_by_value(image, 0.0, 1.0)


def train_transform(image, mask, seed, *, augment, crop_size=None, ignore_label=255,
                    pad_value=DEFAULT_PAD_RGB):  # fmt: skip
    """Randomly rescale, jitter, pad-and-crop and flip one example.

    Args:
        image: uint8 `(H, W, 3)` tensor.
        mask: int32 `(H, W)` tensor of class ids.
        seed: int64 `(2,)` tensor, the stateless seed of this example.
        augment: an `Augment`.
        crop_size: int, `(height, width)` or None (no crop: the rescaled size is kept).
        ignore_label: fill value of mask padding. Defaults to 255.
        pad_value: RGB fill of image padding. Defaults to `DEFAULT_PAD_RGB`.

    Returns:
        `(image, mask)`: uint8 `(h, w, 3)` and int32 `(h, w)`, with `(h, w)` =
        `crop_size` when given.
    """
    crop_size = normalize_crop_size(crop_size)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)
    mask = tf.cast(mask, tf.int32)

    # === Joint random rescale: bilinear image, nearest-neighbour mask ===
    lo, hi = augment.scale_range
    image_f = tf.cast(image, tf.float32)
    if (lo, hi) != (1.0, 1.0):
        scale = tf.random.stateless_uniform([], seeds[0], minval=lo, maxval=hi)
        size = tf.cast(tf.shape(image)[:2], tf.float32)
        new_size = tf.maximum(tf.cast(tf.round(size * scale), tf.int32), 1)
        image_f = tf.image.resize(image_f, new_size, method="bilinear")
        mask = tf.image.resize(mask[..., None], new_size, method="nearest")[..., 0]
    if augment.photometric:
        image_f = _photometric(image_f / 255.0, seeds[1:5], augment) * 255.0
    image_i = tf.cast(tf.clip_by_value(tf.round(image_f), 0.0, 255.0), tf.int32)

    # === Mask as a 4th channel, offset so that padding with 0 means (pad colour, ignore) ===
    offset = tf.constant(list(pad_value) + [ignore_label], tf.int32)
    joint = tf.concat([image_i, mask[..., None]], axis=-1) - offset
    if crop_size is not None:
        ch, cw = crop_size
        shape = tf.shape(joint)
        joint = tf.pad(joint, [[0, tf.maximum(ch - shape[0], 0)],
                               [0, tf.maximum(cw - shape[1], 0)], [0, 0]])  # fmt: skip
        joint = tf.image.stateless_random_crop(joint, [ch, cw, 4], seeds[5])
    if augment.flip:
        joint = tf.image.stateless_random_flip_left_right(joint, seeds[6])
    joint = joint + offset
    return tf.cast(joint[..., :3], tf.uint8), joint[..., 3]
