"""VGG16's Caffe-style input preprocessing as the first layer of every FCN.

Putting preprocessing inside the model means every exported graph (SavedModel,
TFLite, ONNX) takes raw RGB images, uint8 or float in [0, 255], and no serving
code has to remember channel order or mean values.
"""

import keras
from keras import ops

__all__ = ["CaffePreprocess", "IMAGENET_BGR_MEAN"]

# The per-channel mean (B, G, R) that `keras.applications.vgg16.preprocess_input`
# subtracts; VGG16's ImageNet weights were trained with it.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)

# `(1, 1, 3, 3)` kernel mapping input channel (R, G, B) to output channel (B, G, R).
_BGR_FROM_RGB = [[[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]]]


@keras.saving.register_keras_serializable(package="fcn_keras")
class CaffePreprocess(keras.layers.Layer):
    """Convert raw RGB in [0, 255] to VGG16's input: BGR order, mean subtracted.

    Equivalent to `keras.applications.vgg16.preprocess_input` (mode "caffe"),
    as a layer. Any numeric input dtype is cast to the layer's compute dtype.

    Args:
        mean: three floats, the BGR mean to subtract. Defaults to
            `IMAGENET_BGR_MEAN`.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:
    >>> layer = CaffePreprocess()
    >>> layer(np.full((1, 2, 2, 3), 128, "uint8")).shape
    TensorShape([1, 2, 2, 3])
    """

    def __init__(self, mean=IMAGENET_BGR_MEAN, **kwargs):
        super().__init__(**kwargs)
        mean = tuple(float(m) for m in mean)
        if len(mean) != 3:
            raise ValueError(
                f"CaffePreprocess expects a 3-value BGR mean; received {mean!r}."
            )
        self.mean = mean

    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(
                "FCN models take RGB images with 3 channels; received input "
                f"shape {tuple(input_shape)} with {input_shape[-1]} channels. "
                "Convert grayscale or RGBA images to RGB first."
            )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        # RGB -> BGR and the mean subtraction as one fixed 1x1 convolution (a permutation
        # kernel and bias -mean): exact in float, and it quantizes exactly in int8 TFLite,
        # where a channel flip (REVERSE_V2) followed by SUB is requantized with wrong
        # scales (measured: mean error -44, max 89 grey levels on the image the network sees).
        kernel = ops.convert_to_tensor(_BGR_FROM_RGB, dtype=self.compute_dtype)
        bgr = ops.conv(x, kernel, strides=1, padding="valid")
        return bgr - ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean)}
