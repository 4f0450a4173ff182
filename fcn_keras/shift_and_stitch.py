"""Denser FCN outputs without retraining: shift-and-stitch, and its twin, filter rarefaction.

An FCN's coarse score map has one cell per `s x s` image pixels (`s` = 32 for
FCN-32s' `score_fr`, 16 for FCN-16s' `fuse_pool4`, 8 for FCN-8s'
`fuse_pool3`). Section 3.2 of the paper gives two equivalent ways to make it
`f` times denser with the same weights:

- `shift_and_stitch(model, images, f)`: evaluate the coarse map on the `f x f`
  copies of the input shifted by `(i * s/f, j * s/f)` pixels, `0 <= i, j < f`,
  and interleave them: dense cell `(f*k + i, f*l + j)` is cell `(k, l)` of the
  copy whose pooling grids start `(i * s/f, j * s/f)` pixels further down and
  right. Its receptive field is centred on image pixel `(s/f) * m + (s - 1)/2`
  for dense index `m` (rows and columns alike).
- `dilate(model, f)`: the same network with the last `log2(f)` pooling layers
  given stride 1 (2x2 windows, `DilatedMaxPooling2D`) and every later
  convolution, fc6's 7x7 included, dilated by the strides removed so far
  ("filter rarefaction"); one pass gives the same dense map.

What is shifted, precisely. Shifting the image by `d = s/f` pixels changes
nothing before the first pooling layer whose output stride exceeds `s/f`: every
earlier layer has a stride dividing `d`, so its output is the unshifted one
moved by whole cells. The shift is therefore applied where it takes effect, on
the input of each pooling layer whose stride is removed, one cell (the pool's
input stride) at a time: the first row/column is dropped and the last one
repeated, which the 2x2 max pool then reads as "no value" (the same rule as
stride-1 "same" max pooling). Doing this level by level (`log2(f)` levels, two
shifts per axis each) runs the tail of the network on exactly `f x f` copies,
computes the shared head once, and keeps every convolution's zero padding at the
image's own edges. Shifting the image itself would move those edges with it;
this way shift-and-stitch and `dilate` agree everywhere, borders included, up to
float rounding (tested).

Skip models: the coarse map of FCN-16s / FCN-8s is the fused map before the last
upsampling, and `shift_and_stitch` densifies it the same way (pool5 and the x2
in-network upsamplings run unchanged on every copy). `dilate` supports FCN-32s
only: rarefying a fused model would turn each x2 `Conv2DTranspose` into a layer
that reads every other phase of a denser map, which no standard Keras layer is.

`logits_function(model, factor, input_scale)` is the forward pass
`fcn_keras.evaluate` scores (the model's own output, or shift-and-stitch
upsampled bilinearly, at the model's input scale), as a `tf.function`.

Reference: Long et al. 2015, Section 3.2 "Shift-and-stitch is filter
rarefaction".
"""

import keras
from keras import ops

from fcn_keras.geometry import sample_bilinear
from fcn_keras.models import variant_of

__all__ = ["shift_and_stitch", "ShiftAndStitch", "dilate", "upsample_dense_scores",
           "coarse_output", "logits_function", "DilatedMaxPooling2D"]  # fmt: skip

# Variant -> (layer whose output is the coarse score map, its stride in pixels).
COARSE_OUTPUTS = {
    "fcn32s": ("score_fr", 32),
    "fcn16s": ("fuse_pool4", 16),
    "fcn8s": ("fuse_pool3", 8),
    "fcn8s_atonce": ("fuse_pool3", 8),
}

# VGG16's pooling layers (a stable naming contract) by output stride.
_POOLS = {2: "block1_pool", 4: "block2_pool", 8: "block3_pool", 16: "block4_pool",
          32: "block5_pool"}  # fmt: skip


def coarse_output(model):
    """Name the coarse score map that shift-and-stitch densifies, and its stride.

    Args:
        model: an FCN built by this package (or loaded from its `.keras` file).

    Returns:
        `(layer_name, stride)`: `("score_fr", 32)` for FCN-32s,
        `("fuse_pool4", 16)` for FCN-16s, `("fuse_pool3", 8)` for FCN-8s.

    Example:
    >>> coarse_output(fcn_keras.FCN16s(num_classes=12, backbone_weights=None))
    ('fuse_pool4', 16)
    """
    return COARSE_OUTPUTS[variant_of(model)]


def _removed_pools(model, factor):
    """Validate `factor` for `model`; return the coarse map, its stride and the pools to rarefy."""
    name, stride = coarse_output(model)
    allowed = [f for f in (1, 2, 4, 8, 16, 32) if f <= stride]
    if isinstance(factor, bool) or not isinstance(factor, int) or factor not in allowed:
        raise ValueError(
            f"shift-and-stitch factor must be a power of 2 dividing the coarse stride "
            f"{stride} of {model.name!r} ({name}), one of {allowed}; received {factor!r}."
        )
    pools = [_POOLS[s] for s in sorted(_POOLS) if stride // factor < s <= stride]
    return name, stride, pools


# === Shift-and-stitch ===


def _shift_one_cell(x, dy, dx):
    """Move the pooling grid one cell down (`dy`) / right (`dx`): drop the first row/column
    and repeat the last, which a 2x2 max pool then reads as absent."""
    if dy:
        x = ops.concatenate([x[:, 1:], x[:, -1:]], axis=1)
    if dx:
        x = ops.concatenate([x[:, :, 1:], x[:, :, -1:]], axis=2)
    return x


def _interleave(copies):
    """`copies[dy][dx]` of shape `(b, h, w, c)` -> `(b, 2h, 2w, c)` with `out[2k+dy, 2l+dx]`."""
    rows = []
    for row in copies:
        stacked = ops.stack(row, axis=3)  # (b, h, w, 2, c)
        shape = ops.shape(stacked)
        rows.append(ops.reshape(stacked, (shape[0], shape[1], 2 * shape[2], shape[4])))
    stacked = ops.stack(rows, axis=2)  # (b, h, 2, 2w, c)
    shape = ops.shape(stacked)
    return ops.reshape(stacked, (shape[0], 2 * shape[1], shape[3], shape[4]))


class ShiftAndStitch:
    """A reusable shift-and-stitch evaluator of one model and factor (see `shift_and_stitch`).

    Builds the model's pieces once (the shared head, then one segment per
    rarefied pooling layer), so it can be called on many batches and inside a
    `tf.function`.

    Args:
        model: an FCN built by this package (`fcn_keras.FCN32s/16s/8s`).
        factor: densification, a power of 2 dividing the coarse stride (1, 2, 4,
            8, ... up to 32 for FCN-32s); 1 gives the model's own coarse map.

    Example:
    >>> stitch = ShiftAndStitch(model, 2)
    >>> dense = stitch(images)                  # (batch, 2*ceil(H/32), 2*ceil(W/32), C)
    >>> logits = stitch(images, full_size=True)  # (batch, H, W, C)

    Reference: Long et al. 2015, Section 3.2.
    """

    def __init__(self, model, factor):
        name, stride, pools = _removed_pools(model, factor)
        self.model, self.factor, self.coarse_stride, self.coarse_layer = model, factor, stride, name
        cuts = [model.get_layer(pool).input for pool in pools]
        ends = cuts + [model.get_layer(name).output]
        starts = [model.inputs[0]] + cuts
        self._segments = [keras.Model(a, b, name=f"{model.name}_stitch_{i}")
                          for i, (a, b) in enumerate(zip(starts, ends))]  # fmt: skip

    def _dense(self, x, level):
        segment = self._segments[level]
        last = level == len(self._segments) - 1
        copies = []
        for dy in (0, 1):
            row = []
            for dx in (0, 1):
                y = segment(_shift_one_cell(x, dy, dx), training=False)
                row.append(y if last else self._dense(y, level + 1))
            copies.append(row)
        return _interleave(copies)

    def __call__(self, images, full_size=False):
        """Dense scores of `images`, or with `full_size=True` logits of the images' size."""
        x = self._segments[0](images, training=False)
        dense = x if len(self._segments) == 1 else self._dense(x, 1)
        dense = ops.cast(dense, "float32")
        if not full_size:
            return dense
        shape = ops.shape(images)
        return upsample_dense_scores(dense, (shape[1], shape[2]), self.factor, self.coarse_stride)


def shift_and_stitch(model, images, factor, full_size=False):
    """Run an FCN's coarse score map on the `factor x factor` shifted inputs and interleave them.

    Dense cell `(factor*k + i, factor*l + j)` is cell `(k, l)` of the coarse
    map computed with every pooling grid moved `(i, j) * stride/factor` pixels
    down and right, i.e. on the input shifted by that much; its receptive field
    is centred on pixel `(stride/factor) * m + (stride - 1)/2` of the image
    (dense index `m`). The shift is applied on the inputs of the rarefied
    pooling layers (see the module docstring), so the layers before them run
    once and the result equals `dilate(model, factor)(images)` everywhere.

    Args:
        model: an FCN built by this package. The coarse map is `score_fr`
            (stride 32) for FCN-32s, `fuse_pool4` (16) for FCN-16s and
            `fuse_pool3` (8) for FCN-8s.
        images: `(batch, H, W, 3)` RGB images in [0, 255], any H and W.
        factor: a power of 2 dividing the coarse stride (1, 2, 4, 8, ...).
            1 returns the model's own coarse map.
        full_size: return `(batch, H, W, num_classes)` logits instead, the
            dense map upsampled bilinearly onto the image's pixel centres
            (`upsample_dense_scores`), a replacement for the model's own
            upsampling. Defaults to False.

    Returns:
        The dense scores, a float32 tensor `(batch, factor * Hp / stride,
        factor * Wp / stride, num_classes)` where `Hp, Wp` are H, W padded up
        to a multiple of 32 (stride-`stride/factor` cells); with `full_size`,
        `(batch, H, W, num_classes)` logits.

    Raises:
        ValueError: `factor` is not a power of 2 dividing the coarse stride
            (the message names the value), or `model` is not an FCN.

    Example:
    >>> model = fcn_keras.FCN32s(num_classes=6, backbone_weights=None, fc_units=8)
    >>> shift_and_stitch(model, np.zeros((1, 70, 90, 3), "uint8"), 4).shape
    TensorShape([1, 12, 12, 6])

    Reference: Long et al. 2015, Section 3.2.
    """
    return ShiftAndStitch(model, factor)(images, full_size=full_size)


def logits_function(model, factor=None, input_scale=1.0, full_size=True):
    """The forward pass `fcn_keras.evaluate` scores, as a `tf.function` from images to float32 logits.

    With `factor` None it runs the model's own output; with a factor,
    `ShiftAndStitch(model, factor)`, whose dense coarse map is upsampled
    bilinearly to the image (`upsample_dense_scores`) in place of the
    model's own upsampling (factor 1 included: the coarse map itself, so
    upsampled). A model trained at reduced scale gets its images resized by
    `input_scale` first and its logits resized back
    (`fcn_keras.evaluation.scaled_logits`). `evaluate(shift_and_stitch=f)`
    takes the argmax of these logits.

    Args:
        model: an FCN built by this package (or loaded from its `.keras` file).
        factor: None for the model's own output, else the shift-and-stitch
            factor, a power of 2 dividing the coarse stride (see
            `coarse_output`). Defaults to None.
        input_scale: the model's input scale (`fcn_keras.evaluation.
            input_scale_of`), in (0, 1]. Defaults to 1.0.
        full_size: False returns the coarse score map instead (`score_fr` of
            FCN-32s, `fuse_pool3` of FCN-8s, see `coarse_output`), made
            `factor` times denser, before any upsampling and at the scaled
            input's stride: the part whose cost shift-and-stitch multiplies
            by `factor**2`. Defaults to True.

    Returns:
        A `tf.function` (`reduce_retracing=True`): `(batch, H, W, 3)` uint8
        images -> `(batch, H, W, num_classes)` float32 logits, or with
        `full_size=False` the (dense) coarse map, float32.

    Raises:
        ValueError: a factor that is not a power of 2 dividing the model's
            coarse stride, or an input scale outside (0, 1] (the message
            names the value).

    Example:
    >>> logits = logits_function(model, 2)
    >>> logits(np.zeros((1, 360, 480, 3), "uint8")).shape
    TensorShape([1, 360, 480, 11])
    >>> logits_function(fcn32s, 2, full_size=False)(np.zeros((1, 360, 480, 3), "uint8")).shape
    TensorShape([1, 24, 30, 11])

    Reference: Long et al. 2015, Section 3.2.
    """
    import tensorflow as tf

    from fcn_keras.evaluation import scale_images, scaled_logits
    from fcn_keras.models import checked_input_scale

    scale = checked_input_scale(input_scale) or 1.0
    if factor is None and full_size:
        run = lambda x: model(x, training=False)  # noqa: E731
    else:
        stitch = ShiftAndStitch(model, 1 if factor is None else factor)  # validates the factor
        run = lambda x: stitch(x, full_size=full_size)  # noqa: E731

    def logits(images):
        if full_size:
            return tf.cast(scaled_logits(run, images, scale), tf.float32)
        return tf.cast(run(images if scale == 1.0 else scale_images(images, scale)), tf.float32)

    return tf.function(logits, reduce_retracing=True)


def upsample_dense_scores(scores, size, factor, coarse_stride=32):
    """Bilinearly upsample a shift-and-stitch / dilated score map onto the image's pixels.

    Dense cell `m` of stride `t = coarse_stride / factor` is centred on image
    pixel `t * m + (coarse_stride - 1) / 2` (the centre of the coarse cell it
    was computed as), so pixel `y` reads the map at `(y - (coarse_stride - 1)/2) / t`,
    clamped to the map (edge values extend to the borders). With `factor` 1
    this is half-pixel-centred bilinear resizing, the geometry of the model's
    own `upscore` layers.

    Args:
        scores: `(batch, h, w, C)` dense scores.
        size: `(H, W)` of the image (ints or scalar tensors).
        factor: the densification `factor` the scores were computed with.
        coarse_stride: stride of the model's coarse map. Defaults to 32.

    Returns:
        float32 tensor `(batch, H, W, C)`.

    Example:
    >>> dense = shift_and_stitch(model, images, 2)
    >>> upsample_dense_scores(dense, (70, 90), 2).shape
    TensorShape([1, 70, 90, 6])

    Reference: Long et al. 2015, Section 3.2 (output cells at receptive-field centres).
    """
    return sample_bilinear(scores, size, coarse_stride / factor, (coarse_stride - 1) / 2.0)


# === Filter rarefaction ===


@keras.saving.register_keras_serializable(package="fcn_keras")
class DilatedMaxPooling2D(keras.layers.Layer):
    """2x2 max pooling with stride 1 and window taps `dilation_rate` apart ("same" size).

    `out[m, n] = max(x[m + a*r, n + b*r] for a, b in {0, 1})`, taps past the
    bottom/right edge left out, so the output has the input's size. With
    `dilation_rate=1` it is `MaxPooling2D(2, strides=1, padding="same")`.

    Args:
        dilation_rate: int >= 1, distance between the window's taps. Defaults to 1.
        **kwargs: base `keras.layers.Layer` arguments.

    Reference: Long et al. 2015, Section 3.2 (a pooling layer with its stride removed).
    """

    def __init__(self, dilation_rate=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(dilation_rate, bool) or not isinstance(dilation_rate, int) or dilation_rate < 1:
            raise ValueError(
                f"DilatedMaxPooling2D expects a positive integer dilation_rate; "
                f"received {dilation_rate!r}."
            )
        self.dilation_rate = dilation_rate

    def call(self, inputs):
        r = self.dilation_rate
        # x[-r:] keeps each of the last r rows paired with itself (taps past the edge left out).
        x = ops.maximum(inputs, ops.concatenate([inputs[:, r:], inputs[:, -r:]], axis=1))
        return ops.maximum(x, ops.concatenate([x[:, :, r:], x[:, :, -r:]], axis=2))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "dilation_rate": self.dilation_rate}


def dilate(model, factor):
    """Build the filter-rarefied FCN-32s: the same weights, `factor` times denser scores in one pass.

    The last `log2(factor)` pooling layers get stride 1 (`DilatedMaxPooling2D`
    with taps as far apart as the strides already removed), and every later
    convolution (block5's 3x3s, fc6's 7x7, fc7, score_fr) is dilated by the
    product of the strides removed before it. The result equals
    `shift_and_stitch(model, images, factor)` everywhere up to float rounding.

    Args:
        model: an FCN-32s built by this package (fused FCN-16s/8s are not
            supported: see the module docstring).
        factor: a power of 2 dividing 32 (1, 2, 4, 8, 16, 32).

    Returns:
        A `keras.Model` from `(batch, H, W, 3)` images to the dense
        `score_fr` map `(batch, factor * Hp / 32, factor * Wp / 32, C)` (`Hp`,
        `Wp` padded to a multiple of 32), with the weights of `model` copied.
        Full-size logits: `upsample_dense_scores(out, (H, W), factor)`.

    Raises:
        ValueError: a bad `factor` (named in the message) or a model other
            than FCN-32s.

    Example:
    >>> dense = dilate(model, 4)
    >>> dense(np.zeros((1, 64, 64, 3), "uint8")).shape
    TensorShape([1, 8, 8, 6])

    Reference: Long et al. 2015, Section 3.2 "Shift-and-stitch is filter rarefaction".
    """
    variant = variant_of(model)
    if variant != "fcn32s":
        raise ValueError(
            f"dilate supports FCN-32s only; model {model.name!r} is {variant}, whose x2 "
            "in-network upsampling has no rarefied Keras layer: use "
            "shift_and_stitch(model, images, factor) for it."
        )
    coarse, _, pools = _removed_pools(model, factor)
    source = model.inputs[0]
    image = keras.Input(shape=tuple(source.shape[1:]), dtype=source.dtype, name="image")
    x, rate, copied = image, 1, []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.name in pools:
            new = DilatedMaxPooling2D(rate, name=layer.name, dtype=layer.dtype_policy)
            rate *= 2
        else:
            config = layer.get_config()
            if isinstance(layer, keras.layers.Conv2D) and rate > 1:
                config["dilation_rate"] = (rate, rate)
            new = layer.__class__.from_config(config)
            copied.append((layer, new))
        x = new(x)
        if layer.name == coarse:
            break
    for layer, new in copied:
        new.set_weights(layer.get_weights())
    return keras.Model(image, x, name=f"{model.name}_dilated{factor}")
