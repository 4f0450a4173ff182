"""Spatial bookkeeping that lets an FCN take any input size and return the same size.

The reference Caffe FCN pads conv1_1 by 100 pixels so that fc6 (a 7x7 "valid"
convolution) always has enough input, then crops every upsampled map back onto
the image with per-layer offsets (19, 27, 31, ...). With Keras's VGG16 ("same"
3x3 convolutions, 2x2/2 "valid" pooling) a simpler scheme is exact:

1. `PadToMultiple(32)` pads the preprocessed image at the bottom and right with
   zeros (the mean colour after Caffe preprocessing) to a multiple of 32, the
   stride of pool5. Then every pooling divides evenly and the `j`-th cell of the
   stride-`s` map covers image pixels `[s*j, s*j + s)`, centred on
   `s*j + (s-1)/2`.
2. fc6 is a 7x7 "same" convolution, so it keeps that centring (the paper's
   pad-100 only exists to make a "valid" fc6 fit; on a 224x224 crop the
   centre output of our fc6 is exactly VGG16's fc1).
3. Every upsampling is a half-pixel-centred bilinear `Conv2DTranspose` (see
   `upsampling.py`), which maps stride-`s` centres onto stride-`s/k` centres, so
   the 2x-upsampled pool5 scores and the pool4 scores describe the same image
   cells: the skip fusions need no crop offsets at all.
4. `CropToReference` cuts the full-resolution scores back to the input's HxW.

`tests/test_models.py::test_skip_fusions_are_aligned_with_the_image` checks
this exactly with hand-set weights.

Resizing outside the network (`resize_bilinear`, `sample_bilinear`) is
written as gathers and a lerp (Range, Floor, Gather, Mul, Add: TFLite
builtins, plain ONNX) rather than `keras.ops.image.resize` or a bilinear
`UpSampling2D`, which do not trace with a dynamic height and width in Keras
3.14-3.15.1.
"""

import keras
from keras import ops

__all__ = ["PadToMultiple", "CropToReference", "resize_bilinear", "sample_bilinear"]


@keras.saving.register_keras_serializable(package="fcn_keras")
class PadToMultiple(keras.layers.Layer):
    """Zero-pad height and width at the bottom/right up to a multiple of `multiple`.

    Args:
        multiple: int, the multiple to pad H and W to. Defaults to 32, the
            output stride of VGG16's pool5.
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape: `(batch, H, W, C)`. Output shape: `(batch, ceil(H/m)*m,
    ceil(W/m)*m, C)`; H and W may be unknown (dynamic).
    """

    def __init__(self, multiple=32, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(multiple, int) or multiple < 1:
            raise ValueError(
                f"PadToMultiple expects a positive integer multiple; received {multiple!r}."
            )
        self.multiple = multiple

    def call(self, inputs):
        shape = ops.shape(inputs)
        # (m - h % m) % m rather than (-h) % m: ONNX's Mod on a negative operand
        # truncates, which would turn the padding into a crop after tf2onnx.
        pad_h = (self.multiple - shape[1] % self.multiple) % self.multiple
        pad_w = (self.multiple - shape[2] % self.multiple) % self.multiple
        padded = ops.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
        # A Pad with computed paddings loses the static channel count in the
        # TFLite converter's shape inference, which then cannot lower the next
        # Conv2D to a builtin op; the reshape restates it (and costs nothing).
        return ops.reshape(padded, (-1, shape[1] + pad_h, shape[2] + pad_w, inputs.shape[-1]))

    def compute_output_shape(self, input_shape):
        def padded(size):
            if size is None:
                return None
            return -(-size // self.multiple) * self.multiple

        return (input_shape[0], padded(input_shape[1]), padded(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="fcn_keras")
class CropToReference(keras.layers.Layer):
    """Crop a map to the height and width of a reference tensor (top-left anchored).

    Called on `[scores, reference]`; returns `scores[:, :H_ref, :W_ref, :]`.
    Used last in every FCN to cut the padded, upsampled scores back to the
    input image's size.
    """

    def call(self, inputs):
        scores, reference = inputs
        shape = ops.shape(reference)
        return scores[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        scores_shape, reference_shape = input_shape
        return (scores_shape[0], reference_shape[1], reference_shape[2], scores_shape[3])


# === Resizing with dynamic sizes ===


def sample_bilinear(x, size, step, offset):
    """Sample a map bilinearly on a regular grid: output pixel `y` reads input cell `(y - offset) / step`.

    Positions are clamped to the map (edge values extend past its borders),
    rows first, then columns. Works on dynamic sizes and exports as Range,
    Floor, Gather and arithmetic (TFLite builtins, ONNX).

    Args:
        x: `(batch, h, w, C)` tensor; computed in float32.
        size: `(H, W)` of the output (ints or scalar int tensors).
        step: output pixels per input cell, a number or a pair `(rows, columns)`
            (floats or float32 scalar tensors).
        offset: output position of input cell 0, a number or a pair like `step`.

    Returns:
        float32 tensor `(batch, H, W, C)`.

    Example:
    >>> sample_bilinear(keras.ops.ones((1, 3, 4, 2)), (6, 8), 2.0, 0.5).shape
    TensorShape([1, 6, 8, 2])
    """
    steps = step if isinstance(step, (tuple, list)) else (step, step)
    offsets = offset if isinstance(offset, (tuple, list)) else (offset, offset)
    x = ops.cast(x, "float32")
    for axis, length, step_, offset_ in ((1, size[0], steps[0], offsets[0]),
                                         (2, size[1], steps[1], offsets[1])):  # fmt: skip
        cells = ops.shape(x)[axis]
        where = (ops.cast(ops.arange(length), "float32") - offset_) / step_
        where = ops.clip(where, 0.0, ops.cast(cells - 1, "float32"))
        low = ops.cast(ops.floor(where), "int32")
        high = ops.minimum(low + 1, cells - 1)
        weight = ops.reshape(where - ops.cast(low, "float32"), (1, -1, 1, 1) if axis == 1
                             else (1, 1, -1, 1))  # fmt: skip
        x = ops.take(x, low, axis=axis) * (1.0 - weight) + ops.take(x, high, axis=axis) * weight
    return x


def resize_bilinear(x, size):
    """Resize a `(batch, h, w, C)` map to `size` with half-pixel-centred bilinear interpolation.

    The convention of `tf.image.resize(x, size, "bilinear")` without
    antialiasing: output pixel `y` reads input position `(y + 0.5) * h / H - 0.5`,
    clamped to the map. Sizes may be dynamic (scalar tensors).

    Args:
        x: `(batch, h, w, C)` tensor; computed in float32.
        size: `(H, W)` of the output (ints or scalar int tensors).

    Returns:
        float32 tensor `(batch, H, W, C)`.

    Example:
    >>> resize_bilinear(keras.ops.ones((1, 97, 131, 3)), (73, 98)).shape
    TensorShape([1, 73, 98, 3])
    """
    shape = ops.shape(x)
    steps = tuple(ops.cast(size[i], "float32") / ops.cast(shape[i + 1], "float32") for i in (0, 1))
    # (y + 0.5) * h / H - 0.5 == (y - (H / h - 1) / 2) / (H / h)
    return sample_bilinear(x, size, steps, tuple((s - 1.0) / 2.0 for s in steps))
