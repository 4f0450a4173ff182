"""Adapting classifiers for dense prediction: VGG16's fc layers as convolutions.

A fully connected layer on a fixed `h x w x c` input is a convolution with an
`h x w` kernel; once written that way the network accepts any input size and
returns a spatial map of class scores instead of one vector. FCN reshapes
VGG16's fc1 (25088 -> 4096) into fc6 (7x7x512 -> 4096) and fc2 into fc7
(1x1x4096 -> 4096); this module does that reshaping and offers
`convolutionalize_vgg16`, the paper's Figure 2 (a classifier turned into a
heatmap network).

Reference: Long et al. 2015, Section 3.1 "Adapting classifiers for dense
prediction".
"""

import keras
import numpy as np

__all__ = ["dense_to_conv_kernel", "convolutionalize_vgg16"]

# Output grid of VGG16's pool5 on its 224x224 training crops: fc1 reads it flattened.
VGG16_POOL5_GRID = (7, 7)


def dense_to_conv_kernel(kernel, kernel_size, in_channels):
    """Reshape a `Dense` kernel into the equivalent `Conv2D` kernel.

    Keras's `Flatten` on channels-last features orders inputs as
    `(row, column, channel)`, so the reshape is a plain C-order reshape.

    Args:
        kernel: array of shape `(kh * kw * in_channels, units)`.
        kernel_size: `(kh, kw)`, the spatial size the Dense layer saw.
        in_channels: number of input channels.

    Returns:
        NumPy array of shape `(kh, kw, in_channels, units)`.

    Example:
    >>> dense_to_conv_kernel(np.zeros((25088, 4096)), (7, 7), 512).shape
    (7, 7, 512, 4096)
    """
    kernel = np.asarray(kernel)
    kh, kw = kernel_size
    if kernel.ndim != 2 or kernel.shape[0] != kh * kw * in_channels:
        raise ValueError(
            f"Cannot reshape a Dense kernel of shape {kernel.shape} into a "
            f"{kh}x{kw}x{in_channels} convolution: expected shape "
            f"({kh * kw * in_channels}, units)."
        )
    return kernel.reshape(kh, kw, in_channels, kernel.shape[1])


def convolutionalize_vgg16(vgg16):
    """Turn a VGG16 classifier (with top) into a fully convolutional heatmap model.

    The 13 convolution layers are shared with `vgg16`; fc1, fc2 and predictions
    become "valid" 7x7, 1x1 and 1x1 convolutions carrying the same weights. On a
    224x224 image the output is a 1x1 map equal to `vgg16`'s scores; on an
    `H x W` image it is an `(H//32 - 6) x (W//32 - 6)` map whose cell `(i, j)`
    scores the 224x224 crop at `(32 i, 32 j)`.

    Args:
        vgg16: a `keras.applications.VGG16(include_top=True, ...)` model.

    Returns:
        A functional `keras.Model` from `(None, None, None, 3)` preprocessed
        BGR images to `(None, h, w, classes)` score maps.

    Example:
    >>> vgg = keras.applications.VGG16(weights=None)
    >>> heatmap = convolutionalize_vgg16(vgg)
    >>> heatmap(np.zeros((1, 288, 320, 3))).shape
    TensorShape([1, 3, 4, 1000])

    Reference: Long et al. 2015, Section 3.1 and Figure 2.
    """
    required = ("block5_pool", "fc1", "fc2", "predictions")
    names = {layer.name for layer in vgg16.layers}
    missing = [name for name in required if name not in names]
    if missing:
        raise ValueError(
            "convolutionalize_vgg16 expects keras.applications.VGG16 with "
            f"include_top=True; the model {vgg16.name!r} has no layers {missing}."
        )
    inputs = keras.Input((None, None, 3), name="image")
    x = inputs
    for layer in vgg16.layers[1:]:
        x = layer(x)
        if layer.name == "block5_pool":
            break

    pool5_channels = vgg16.get_layer("block5_pool").output.shape[-1]
    heads = (
        ("fc1", "fc6", VGG16_POOL5_GRID, pool5_channels),
        ("fc2", "fc7", (1, 1), None),
        ("predictions", "fc8", (1, 1), None),
    )
    for dense_name, conv_name, kernel_size, in_channels in heads:
        dense = vgg16.get_layer(dense_name)
        kernel, bias = dense.get_weights()
        conv = keras.layers.Conv2D(
            kernel.shape[1],
            kernel_size,
            padding="valid",
            activation=dense.activation,
            name=conv_name,
        )
        x = conv(x)
        conv.set_weights(
            [dense_to_conv_kernel(kernel, kernel_size, in_channels or kernel.shape[0]), bias]
        )
    return keras.Model(inputs, x, name="vgg16_convolutionalized")
