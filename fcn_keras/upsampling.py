"""In-network upsampling: the bilinear kernel, its initializer and the layer.

FCN upsamples coarse class scores with backwards-strided convolution
(`Conv2DTranspose`) whose kernel starts as bilinear interpolation. This module
holds the kernel as a plain function (with golden values in the tests), a
serializable Keras initializer that writes it on the diagonal of a
`Conv2DTranspose` kernel, and `upsampling_layer`, the one place that decides
kernel size, stride and padding.

Geometry: a `Conv2DTranspose(kernel_size=2f, strides=f, padding="same")` with
this kernel is exactly half-pixel-centred bilinear interpolation (the same
convention as `tf.image.resize(..., "bilinear")`) away from the borders:
input sample `j` sits at output coordinate `f * j + (f - 1) / 2`, which is where
the centre of the `j`-th stride-`f` pooling cell of the image lies.

Reference: Long, Shelhamer, Darrell, "Fully Convolutional Networks for
Semantic Segmentation", Section 3.3 "Upsampling is backwards strided
convolution".
"""

import keras
import numpy as np

__all__ = ["bilinear_kernel", "BilinearUpsampling", "upsampling_layer"]

# Upsampling factors from which the layer computes in float32 whatever the dtype policy.
FLOAT32_FACTOR = 8


def bilinear_kernel(size):
    """Return the 2-D bilinear interpolation kernel of a given size.

    The kernel is the outer product of the 1-D tent `1 - |t - c| / f` with
    `f = ceil(size / 2)` and centre `c = f - 1` (odd size) or `f - 0.5` (even
    size), the kernel used by the reference FCN implementations.

    Args:
        size: int, side of the square kernel. `2 * factor` for an upsampling
            by `factor`.

    Returns:
        float32 NumPy array of shape `(size, size)`.

    Example:
    >>> bilinear_kernel(4)[0]
    array([0.0625, 0.1875, 0.1875, 0.0625], dtype=float32)
    """
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(
            f"bilinear_kernel expects a positive integer size; received {size!r}."
        )
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    tent = 1.0 - np.abs(np.arange(size, dtype=np.float64) - center) / factor
    return np.outer(tent, tent).astype(np.float32)


@keras.saving.register_keras_serializable(package="fcn_keras")
class BilinearUpsampling(keras.initializers.Initializer):
    """Initializer that makes a `Conv2DTranspose` a per-channel bilinear upsampler.

    Writes `bilinear_kernel(k)` on the channel diagonal of a kernel of shape
    `(k, k, channels, channels)` and zeros elsewhere, so that every class score
    map is interpolated independently.

    Example:
    >>> layer = keras.layers.Conv2DTranspose(
    ...     21, 4, strides=2, padding="same", use_bias=False,
    ...     kernel_initializer=BilinearUpsampling())
    """

    def __call__(self, shape, dtype=None):
        if len(shape) != 4 or shape[0] != shape[1] or shape[2] != shape[3]:
            raise ValueError(
                "BilinearUpsampling expects a square Conv2DTranspose kernel "
                "with as many output as input channels, shape (k, k, C, C); "
                f"received shape {tuple(shape)}."
            )
        size, channels = shape[0], shape[2]
        kernel = np.zeros(shape, dtype=np.float32)
        kernel[:, :, np.arange(channels), np.arange(channels)] = bilinear_kernel(
            size
        )[:, :, None]
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


def upsampling_layer(channels, factor, trainable=False, name=None):
    """Build the learnable upsampling layer used by every FCN variant.

    Args:
        channels: int, number of score maps (classes) to upsample.
        factor: int, upsampling factor (2, 8, 16 or 32 in FCN).
        trainable: bool, whether the interpolation weights are learned.
            Defaults to `False`, as in the reference implementation, which
            keeps them fixed at bilinear.
        name: optional layer name.

    Returns:
        A `keras.layers.Conv2DTranspose` with kernel `2 * factor`, stride
        `factor`, `"same"` padding, no bias and a bilinear initial kernel. Its
        output is exactly `factor` times larger than its input. Factors of
        `FLOAT32_FACTOR` and more compute in float32 under every dtype policy:
        their input is the class scores alone (a few channels), and oneDNN's
        bfloat16 transposed convolution with such large kernels is slow on CPU
        (a 64x64 kernel, stride 32, 11 classes, to 352x480: 76x float32's time;
        16x16, stride 8: 5x).

    Example:
    >>> upsampling_layer(11, 32, name="upscore32")(keras.ops.zeros((1, 3, 4, 11))).shape
    (1, 96, 128, 11)
    """
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(
            f"upsampling factor must be a positive integer; received {factor!r}."
        )
    return keras.layers.Conv2DTranspose(
        channels,
        kernel_size=2 * factor,
        strides=factor,
        padding="same",
        use_bias=False,
        kernel_initializer=BilinearUpsampling(),
        trainable=trainable,
        name=name,
        dtype="float32" if factor >= FLOAT32_FACTOR else None,
    )
