"""Joint image/mask transforms for segmentation: random scale, crop, flip, photometric jitter.

Image and mask are transformed together: both are resampled through the same
crop window (one scale, one crop, one flip), so they can never disagree. Masks
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

    With a crop size, scale, crop and flip are one resampling
    (`tf.image.crop_and_resize` of the window the crop sees): the cost is the
    crop's size, not the rescaled image's, and the result equals rescaling
    (half-pixel centres, like `tf.image.resize`) then cropping. The crop
    window is drawn uniformly; where the rescaled image is smaller than the
    crop, it is placed at a random offset inside the crop and the rest is
    padding.

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
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)
    mask = tf.cast(mask, tf.int32)
    lo, hi = augment.scale_range
    if lo == hi:
        scale = tf.constant(lo, tf.float32)
    else:
        scale = tf.random.stateless_uniform([], seeds[0], minval=lo, maxval=hi)
    if crop_size is not None:
        return _scale_crop_flip(image, mask, scale, seeds, augment, crop_size,
                                ignore_label, pad_value)  # fmt: skip

    # === No crop: joint rescale of the whole example (bilinear image, nearest mask) ===
    image_f = tf.cast(image, tf.float32)
    if (lo, hi) != (1.0, 1.0):
        size = tf.cast(tf.shape(image)[:2], tf.float32)
        new_size = tf.maximum(tf.cast(tf.round(size * scale), tf.int32), 1)
        image_f = tf.image.resize(image_f, new_size, method="bilinear")
        mask = tf.image.resize(mask[..., None], new_size, method="nearest")[..., 0]
    if augment.photometric:
        image_f = _photometric(image_f / 255.0, seeds[1:5], augment) * 255.0
    image_u8 = tf.cast(tf.clip_by_value(tf.round(image_f), 0.0, 255.0), tf.uint8)
    if augment.flip:
        flip = tf.random.stateless_uniform([], seeds[6]) < 0.5
        image_u8 = tf.cond(flip, lambda: tf.reverse(image_u8, [1]), lambda: image_u8)
        mask = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    return image_u8, mask


def _axis_window(length, scale, crop, seed):
    """Sample positions of one axis for a random crop of the rescaled example.

    The rescaled axis has `n = round(length * scale)` pixels; pixel `j` of it
    sits at source coordinate `(j + 0.5) * length / n - 0.5` (half-pixel
    centres, as in `tf.image.resize`). The crop starts at offset `o`, uniform
    in `[min(0, n - crop), max(0, n - crop)]`; crop pixels outside `[0, n)`
    are padding.

    The first and last valid positions are clamped into `[0, length - 1]`
    (they can lie up to half a pixel outside when upscaling, where
    `crop_and_resize` would extrapolate) and the positions in between are
    re-spaced linearly: a sub-pixel change that image and mask share.

    Returns:
        `(first, last, valid)`: source coordinates of the crop's first and
        last pixels (the positions are linear in between) and a bool `(crop,)`
        telling which crop pixels lie inside the rescaled image.
    """
    n = tf.maximum(tf.cast(tf.round(tf.cast(length, tf.float32) * scale), tf.int32), 1)
    low, high = tf.minimum(0, n - crop), tf.maximum(0, n - crop)
    offset = tf.random.stateless_uniform([], seed, minval=low, maxval=high + 1, dtype=tf.int32)
    step = tf.cast(length, tf.float32) / tf.cast(n, tf.float32)
    index = offset + tf.range(crop)
    valid = (index >= 0) & (index < n)
    i0 = tf.maximum(-offset, 0)  # first and last valid crop pixels
    i1 = tf.minimum(n - offset, crop) - 1
    limit = tf.cast(length - 1, tf.float32)
    p0 = tf.clip_by_value((tf.cast(offset + i0, tf.float32) + 0.5) * step - 0.5, 0.0, limit)
    p1 = tf.clip_by_value((tf.cast(offset + i1, tf.float32) + 0.5) * step - 0.5, 0.0, limit)
    spacing = tf.where(i1 > i0, (p1 - p0) / tf.cast(tf.maximum(i1 - i0, 1), tf.float32), step)
    first = p0 - tf.cast(i0, tf.float32) * spacing
    last = first + tf.cast(crop - 1, tf.float32) * spacing
    return first, last, valid


def _scale_crop_flip(image, mask, scale, seeds, augment, crop_size, ignore_label, pad_value):
    ch, cw = crop_size
    shape = tf.shape(image)
    y_first, y_last, y_valid = _axis_window(shape[0], scale, ch, seeds[5])
    x_first, x_last, x_valid = _axis_window(shape[1], scale, cw, seeds[7])
    if augment.flip:  # sampling the window right to left mirrors it (for free)
        flip = tf.random.stateless_uniform([], seeds[6]) < 0.5
        x_first, x_last, x_valid = tf.cond(
            flip, lambda: (x_last, x_first, tf.reverse(x_valid, [0])),
            lambda: (x_first, x_last, x_valid))  # fmt: skip
    height = tf.cast(tf.maximum(shape[0] - 1, 1), tf.float32)
    width = tf.cast(tf.maximum(shape[1] - 1, 1), tf.float32)
    box = tf.stack([y_first / height, x_first / width, y_last / height, x_last / width])[None]

    # === One crop window: bilinear for the image, nearest neighbour for the mask ===
    # Crop pixels outside the rescaled image sample outside the source, where
    # crop_and_resize writes its extrapolation value: the ignore label for the mask.
    image_f = tf.image.crop_and_resize(image[None], box, [0], [ch, cw], method="bilinear")[0]
    mask_out = tf.cast(tf.image.crop_and_resize(
        mask[None, ..., None], box, [0], [ch, cw], method="nearest",
        extrapolation_value=float(ignore_label))[0, ..., 0], tf.int32)  # fmt: skip
    if augment.photometric:
        image_f = _photometric(image_f / 255.0, seeds[1:5], augment) * 255.0
    # Bilinear samples of uint8 stay in [0, 255] (jitter clips): +0.5 then truncation rounds.
    image_u8 = tf.cast(image_f + 0.5, tf.uint8)

    # === Padding outside the rescaled image: mean colour (and, again, the ignore label) ===
    valid = y_valid[:, None] & x_valid[None, :]

    def pad():
        fill = tf.constant(pad_value, tf.uint8)
        return (tf.where(valid[..., None], image_u8, fill),
                tf.where(valid, mask_out, ignore_label))  # fmt: skip

    image_u8, mask_out = tf.cond(tf.reduce_all(valid), lambda: (image_u8, mask_out), pad)
    return tf.ensure_shape(image_u8, [ch, cw, 3]), tf.ensure_shape(mask_out, [ch, cw])
