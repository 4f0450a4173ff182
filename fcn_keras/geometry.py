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
"""

import keras
from keras import ops

__all__ = ["PadToMultiple", "CropToReference"]


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
