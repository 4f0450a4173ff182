"""The built-in synthetic segmentation set: coloured shapes on cluttered backgrounds.

No download, deterministic by seed, generated with vectorised NumPy. Every
image shows 2-5 objects from five classes that are told apart by shape *and*
colour: each class draws its hue from its own range, and neighbouring ranges
overlap, so colour alone is ambiguous near the borders and the network has to
look at shape too. Objects vary in size, may overlap (later objects occlude
earlier ones) and sit on a textured background with thin distractor strokes
(painted in object-like colours but labelled background) and Gaussian noise.

Classes: 0 background, 1 disc, 2 square, 3 triangle, 4 ring, 5 cross.

Content is addressed by `(seed, split, index)`: example `i` of a split is the
same whatever order or batch it is generated in, which is what makes
shuffling, sharding and caching deterministic.
"""

import functools

import numpy as np
import tensorflow as tf

from fcn_keras.data.info import DatasetInfo
from fcn_keras.data.base import Source
from fcn_keras.data.validation import check_not_shutting_down

__all__ = [
    "SYNTHETIC_CLASS_NAMES",
    "SYNTHETIC_DEFAULT_NUM_EXAMPLES",
    "SYNTHETIC_DEFAULT_IMAGE_SIZE",
    "generate_synthetic",
    "SyntheticSource",
]

SYNTHETIC_CLASS_NAMES = ("background", "disc", "square", "triangle", "ring", "cross")
SYNTHETIC_DEFAULT_IMAGE_SIZE = 96
SYNTHETIC_DEFAULT_NUM_EXAMPLES = {"train": 1000, "val": 200, "test": 200}

# Split codes mixed into the seed so that train, val and test never share images.
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

# === Generation parameters (fractions of the image size where lengths) ===
MIN_OBJECTS, MAX_OBJECTS = 2, 5
MIN_RADIUS, MAX_RADIUS = 0.13, 0.33
# Class c (1..5) draws its hue from CENTRE_c +- HUE_HALF_WIDTH; centres are 0.2 apart,
# so neighbouring classes share a band of hues of width 2 * HUE_HALF_WIDTH - 0.2.
HUE_HALF_WIDTH = 0.13
NUM_STROKES = (2, 5)
STROKE_WIDTH = (1.0, 2.5)  # pixels (radius, rounded to 1..3), thin next to a cross's arms
NOISE_SIGMA = 10.0  # Gaussian pixel noise, in uint8 units
RING_INNER = 0.55  # inner radius of a ring, relative to its outer radius
CROSS_ARM = 0.28  # half-width of a cross's arm, relative to its radius
SQUARE_HALF = 0.7  # half side of a square, relative to its radius (corners inside r)


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB for arrays in [0, 1]; returns `(..., 3)` floats in [0, 255]."""
    h = np.mod(h, 1.0) * 6.0
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1) * 255.0


def _uniform(seed, split_code, indices, count):
    """Counter-based uniforms in [0, 1): `(len(indices), count)`, a pure function of its inputs.

    A splitmix64 hash of (seed, split, index, k), so that any example can be
    drawn on its own, in any order, without a per-example generator.
    """
    with np.errstate(over="ignore"):
        key = (np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
               + np.uint64(split_code) * np.uint64(0xD1B54A32D192ED03))  # fmt: skip
        x = (indices.astype(np.uint64)[:, None] * np.uint64(count)
             + np.arange(count, dtype=np.uint64)[None, :])  # fmt: skip
        x = x * np.uint64(0xBF58476D1CE4E5B9) + key
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@functools.lru_cache(maxsize=8)
def _banks(seed, size):
    """Noise and texture fields `(2S, 2S, ...)` that every image crops at its own offset."""
    rng = np.random.default_rng([seed, 7919, size])
    noise = rng.standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
    yy, xx = np.mgrid[0 : 2 * size, 0 : 2 * size].astype(np.float32)
    texture = np.zeros((2 * size, 2 * size), np.float32)
    for _ in range(6):  # a few random plane waves of long wavelength
        freq = rng.uniform(0.04, 0.25) * 2 * np.pi * 16 / size
        angle, phase = rng.uniform(0, 2 * np.pi, 2)
        texture += np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    texture /= texture.std() + 1e-6
    return noise, texture


def _shape_mask(cls, dx, dy, r, theta):
    """Pixel membership of one shape of class `cls`; `dx, dy` are offsets from its centre."""
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if cls == 1:  # disc
        return dx * dx + dy * dy <= r * r
    if cls == 2:  # rotated square
        return np.maximum(np.abs(u), np.abs(v)) <= SQUARE_HALF * r
    if cls == 3:  # equilateral triangle with circumradius r
        half = r / 2
        return (u <= half) & (-0.5 * u + 0.8660254 * v <= half) & (-0.5 * u - 0.8660254 * v <= half)
    if cls == 4:  # ring
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (RING_INNER * r) ** 2)
    au, av = np.abs(u), np.abs(v)  # cross
    arm = CROSS_ARM * r
    return ((au <= arm) & (av <= r)) | ((av <= arm) & (au <= r))


# Shapes are drawn from binary templates, one per class and rotation step, that span
# [-TEMPLATE_EXTENT * r, TEMPLATE_EXTENT * r]: a nearest-neighbour lookup per object is
# an order of magnitude cheaper than evaluating the shape's inequalities per pixel.
TEMPLATE_SIZE, TEMPLATE_ROTATIONS, TEMPLATE_EXTENT = 96, 60, 1.05


@functools.lru_cache(maxsize=1)
def _templates():
    """Bool `(6, TEMPLATE_ROTATIONS, T, T)`: shape of class c at rotation step k (class 0 empty)."""
    t = TEMPLATE_SIZE
    coords = ((np.arange(t, dtype=np.float32) + 0.5) / t * 2 - 1) * TEMPLATE_EXTENT
    dy, dx = coords[:, None], coords[None, :]
    out = np.zeros((6, TEMPLATE_ROTATIONS, t, t), bool)
    for cls in range(1, 6):
        for k in range(TEMPLATE_ROTATIONS):
            out[cls, k] = _shape_mask(cls, dx, dy, 1.0, 2 * np.pi * k / TEMPLATE_ROTATIONS)
    return out


@functools.lru_cache(maxsize=1)
def _disc_offsets():
    """Integer pixel offsets `(q, 2)` (dy, dx) covering a disc, per radius 0..3."""
    out = {}
    for radius in range(4):
        dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        inside = dy * dy + dx * dx <= radius * radius + 0.5
        out[radius] = np.stack([dy[inside], dx[inside]], -1).astype(np.float32)[None] + 0.5
    return out


# Layout of the per-example uniforms drawn by `_uniform`.
_N_OBJ_FIELDS = 8  # class, radius, cx, cy, theta, hue, sat, val
_N_STROKE_FIELDS = 8  # x0, y0, x1, y1, width, hue, sat, val
_U_OBJECTS = 1
_U_STROKES = _U_OBJECTS + MAX_OBJECTS * _N_OBJ_FIELDS
_U_STROKE_COUNT = _U_STROKES + NUM_STROKES[1] * _N_STROKE_FIELDS
_U_BACKGROUND = _U_STROKE_COUNT + 1  # hue, sat, val, texture amplitude, 4 bank offsets
_U_TOTAL = _U_BACKGROUND + 8
_CHUNK = 32


def generate_synthetic(indices, image_size=SYNTHETIC_DEFAULT_IMAGE_SIZE, seed=0, split="train"):
    """Render synthetic examples by index.

    Args:
        indices: 1-D sequence of non-negative example indices.
        image_size: side of the square images in pixels (>= 16). Defaults to 96.
        seed: integer seed of the whole set. Defaults to 0.
        split: "train", "val" or "test"; each split draws different images.
            Defaults to "train".

    Returns:
        `(images, masks)`: uint8 `(N, S, S, 3)` RGB images and uint8
        `(N, S, S)` masks with class ids 0..5 (see `SYNTHETIC_CLASS_NAMES`).

    Example:
    >>> images, masks = generate_synthetic([0, 1], image_size=32)
    >>> images.shape, masks.shape, masks.dtype
    ((2, 32, 32, 3), (2, 32, 32), dtype('uint8'))
    """
    if split not in _SPLIT_CODES:
        raise ValueError(
            f"synthetic split must be one of {sorted(_SPLIT_CODES)}; received {split!r}."
        )
    if not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError(f"synthetic image_size must be an integer >= 16; received {image_size!r}.")
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and indices.min() < 0:
        raise ValueError(f"synthetic indices must be >= 0; received {indices.min()}.")
    # Render in chunks: whole-batch float arrays of a thousand images fall out of cache.
    if len(indices) > _CHUNK:
        parts = [generate_synthetic(indices[i : i + _CHUNK], image_size, seed, split)
                 for i in range(0, len(indices), _CHUNK)]  # fmt: skip
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    size, n = int(image_size), len(indices)
    u = _uniform(int(seed), _SPLIT_CODES[split], indices, _U_TOTAL)
    noise_bank, texture_bank = _banks(int(seed), size)

    # === Background: tinted base colour plus a smooth texture, vectorised over the batch ===
    b = u[:, _U_BACKGROUND:]
    bg = _hsv_to_rgb(b[:, 0], 0.3 * b[:, 1], 0.25 + 0.55 * b[:, 2]).astype(np.float32)
    offsets = np.floor(b[:, 4:8] * size).astype(np.int64)
    texture = np.stack([texture_bank[oy : oy + size, ox : ox + size]
                        for oy, ox in offsets[:, :2]])  # fmt: skip
    amplitude = (8.0 + 22.0 * b[:, 3]).astype(np.float32)[:, None, None, None]
    image = bg[:, None, None, :] + amplitude * texture[..., None]  # float32
    mask = np.zeros((n, size, size), np.uint8)

    # === Per-example parameters ===
    o = u[:, _U_OBJECTS:_U_STROKES].reshape(n, MAX_OBJECTS, _N_OBJ_FIELDS)
    n_obj = MIN_OBJECTS + np.floor(u[:, 0] * (MAX_OBJECTS - MIN_OBJECTS + 1))
    classes = 1 + np.floor(o[..., 0] * 5).astype(np.int64)
    radius = (MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * o[..., 1]) * size
    centre = (0.1 + 0.8 * o[..., 2:4]) * size
    hue = (classes - 1) / 5.0 + (2 * o[..., 5] - 1) * HUE_HALF_WIDTH
    obj_rgb = _hsv_to_rgb(hue, 0.55 + 0.45 * o[..., 6], 0.55 + 0.45 * o[..., 7])
    s = u[:, _U_STROKES:_U_STROKE_COUNT].reshape(n, NUM_STROKES[1], _N_STROKE_FIELDS)
    n_strokes = NUM_STROKES[0] + np.floor(
        u[:, _U_STROKE_COUNT] * (NUM_STROKES[1] - NUM_STROKES[0] + 1))
    ends = s[..., 0:4] * size
    widths = STROKE_WIDTH[0] + (STROKE_WIDTH[1] - STROKE_WIDTH[0]) * s[..., 4]
    stroke_rgb = _hsv_to_rgb(s[..., 5], 0.5 + 0.5 * s[..., 6], 0.4 + 0.6 * s[..., 7])

    # Plain Python numbers in the per-example loop: NumPy scalars are ~10x slower there.
    n_obj, n_strokes = n_obj.astype(np.int64).tolist(), n_strokes.astype(np.int64).tolist()
    ends, centre = ends.tolist(), centre.tolist()
    # Strokes are painted as discs of radius 1, 2 or 3 px swept along the segment.
    stroke_radius = np.clip(np.rint(widths), 1, 3).astype(np.int64).tolist()
    stroke_offsets = _disc_offsets()
    radius, classes_list = radius.tolist(), classes.tolist()
    rotation = np.floor(o[..., 4] * TEMPLATE_ROTATIONS).astype(np.int64).tolist()
    templates = _templates()
    stroke_rgb, obj_rgb = stroke_rgb.astype(np.float32), obj_rgb.astype(np.float32)

    for i in range(n):
        img, msk = image[i], mask[i]
        # === Distractor strokes (labelled background) ===
        for k in range(n_strokes[i]):
            x0, y0, x1, y1 = ends[i][k]
            steps = int(2 * max(abs(x1 - x0), abs(y1 - y0))) + 2  # points every <= 0.5 px
            t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
            disc = stroke_offsets[stroke_radius[i][k]]
            xs = (x0 + t * (x1 - x0) + disc[..., 1]).astype(np.int64).ravel()
            ys = (y0 + t * (y1 - y0) + disc[..., 0]).astype(np.int64).ravel()
            keep = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
            img[ys[keep], xs[keep]] = stroke_rgb[i, k]
        # === Objects, later ones occluding earlier ones ===
        for k in range(n_obj[i]):
            cx, cy = centre[i][k]
            half = radius[i][k] * TEMPLATE_EXTENT
            bx0, bx1 = max(0, int(cx - half)), min(size, int(cx + half) + 1)
            by0, by1 = max(0, int(cy - half)), min(size, int(cy + half) + 1)
            scale = TEMPLATE_SIZE / (2 * half)
            ix = ((np.arange(bx0, bx1) + (0.5 - cx + half)) * scale).astype(np.int64)
            iy = ((np.arange(by0, by1) + (0.5 - cy + half)) * scale).astype(np.int64)
            np.clip(ix, 0, TEMPLATE_SIZE - 1, out=ix)
            np.clip(iy, 0, TEMPLATE_SIZE - 1, out=iy)
            inside = templates[classes_list[i][k], rotation[i][k]][iy[:, None], ix[None, :]]
            img[by0:by1, bx0:bx1][inside] = obj_rgb[i, k]
            msk[by0:by1, bx0:bx1][inside] = classes_list[i][k]

    noise = np.stack([noise_bank[oy : oy + size, ox : ox + size] for oy, ox in offsets[:, 2:]])
    image += NOISE_SIGMA * noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


class SyntheticSource(Source):
    """The synthetic set as a data source (source string "synthetic").

    Args:
        image_size: side of the square images. Defaults to 96.
        num_examples: examples per split: an int (every split) or a dict such
            as `{"train": 1000, "val": 200}`. Defaults to
            `SYNTHETIC_DEFAULT_NUM_EXAMPLES` (train 1000, val 200, test 200).
        seed: seed of the whole set (train, val and test always differ).
            Defaults to 0. Not to be confused with `load_dataset(seed=)`,
            which seeds shuffling and augmentation.
        ignore_label: the pipeline's ignore label (the set has no void pixels).

    Example:
    >>> SyntheticSource(image_size=32, num_examples=10).num_examples("val")
    10
    """

    def __init__(self, image_size=SYNTHETIC_DEFAULT_IMAGE_SIZE, num_examples=None, seed=0,
                 ignore_label=255):  # fmt: skip
        if not isinstance(image_size, (int, np.integer)) or image_size < 16:
            raise ValueError(
                f"synthetic image_size must be an integer >= 16; received {image_size!r}."
            )
        counts = dict(SYNTHETIC_DEFAULT_NUM_EXAMPLES)
        if isinstance(num_examples, (int, np.integer)):
            counts = {split: int(num_examples) for split in counts}
        elif isinstance(num_examples, dict):
            unknown = set(num_examples) - set(_SPLIT_CODES)
            if unknown:
                raise ValueError(f"synthetic num_examples has unknown splits {sorted(unknown)}; "
                                 f"expected {sorted(_SPLIT_CODES)}.")  # fmt: skip
            counts.update({k: int(v) for k, v in num_examples.items()})
        elif num_examples is not None:
            raise ValueError(
                f"synthetic num_examples must be an int or a dict; received {num_examples!r}."
            )
        self.image_size, self.counts, self.seed = int(image_size), counts, int(seed)
        self._info = DatasetInfo(
            name="synthetic", num_classes=len(SYNTHETIC_CLASS_NAMES),
            class_names=SYNTHETIC_CLASS_NAMES, ignore_label=ignore_label,
            num_examples=dict(counts),
            description=f"built-in coloured shapes, {image_size}x{image_size}, seed {seed}",
        )  # fmt: skip

    def info(self):
        return self._info

    def keys(self, split):
        if split not in self.counts:
            raise ValueError(
                f"synthetic has no split {split!r}; expected one of {sorted(self.counts)}."
            )
        if self.counts[split] < 1:
            raise ValueError(f"synthetic split {split!r} is empty (num_examples=0).")
        indices = tf.data.Dataset.range(self.counts[split])
        return indices.map(lambda i: {"index": i, "split": split})

    def decode(self, keys, *, num_parallel_calls, deterministic, skip_report):
        size, seed = self.image_size, self.seed

        def render(index, split):
            check_not_shutting_down()
            split = split[0].decode() if len(split) else "train"
            return generate_synthetic(index, size, seed, split)

        def render_batch(batch):
            images, masks = tf.numpy_function(
                render, [batch["index"], batch["split"]], [tf.uint8, tf.uint8], stateful=False
            )
            images = tf.ensure_shape(images, [None, size, size, 3])
            masks = tf.ensure_shape(masks, [None, size, size])
            return images, tf.cast(masks, tf.int32)

        batched = keys.batch(_CHUNK).map(
            render_batch, num_parallel_calls=num_parallel_calls, deterministic=deterministic
        )
        examples = batched.unbatch()
        # Every key renders one example: say so, or `unbatch` leaves the size unknown and
        # Keras warns that validation "ran out of data" the first time it reaches the end.
        count = int(keys.cardinality())
        if count >= 0:
            examples = examples.apply(tf.data.experimental.assert_cardinality(count))
        return examples
