"""Fully connected CRF post-processing of FCN logits, as Keras layers (CRF-as-RNN, ConvCRF).

`DenseCRF` runs mean-field inference in the fully connected CRF of
Krähenbühl & Koltun (2011) on an image and the FCN's per-pixel logits, and
returns refined logits of the same shape. It is an ordinary Keras layer made
of convolution-free tensor ops, so it trains end to end inside `model.fit`
(the CRF-as-RNN view of Zheng et al. 2015: mean-field iterations as layers,
kernel weights, bandwidths and the label compatibility learned by
backpropagation), saves in `.keras` files and exports with the FCN to
SavedModel, TFLite (builtin ops only) and ONNX through `fcn_keras.export`.
`with_crf` appends it to an FCN.

Tuning, as API: `tune_crf(images, logits, labels, grid=CRF_GRID)` grid-searches
the settings on a split (val) by mean IU, each structure traced once
(`TracedCRF`); `fine_tune_crf(fcn, settings, train_data, tuning, steps=,
checkpoint=)` then trains the CRF end to end on a frozen FCN (`FrozenFCN`,
inference mode, the FCN's input scale) and keeps the step the split prefers.
`save_crf_settings(layer, path)` writes the result where the caller says.
`fcn_keras.crf_reference` runs Krähenbühl's own permutohedral CRF
(pydensecrf2, the `crf-reference` extra) on the same logits, to compare with.

The model. With unary energies `-logits` and Gaussian pairwise kernels

    k(i, j) = w1 exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - |I_i - I_j|^2 / 2 theta_beta^2)
            + w2 exp(-|p_i - p_j|^2 / 2 theta_gamma^2)

(`p` pixel positions in pixels of the full-resolution image, `I` RGB colours
in [0, 255]; the appearance and smoothness kernels), one mean-field step is
(Krähenbühl's Algorithm 1)

    Q = softmax(U)                                  U = the FCN logits
    m_i(l) = sum_kernels w_k sum_{j != i} k_k(i, j) Q_j(l) / Z_k(i)
    logits_i(l) = U_i(l) - sum_l' mu(l, l') m_i(l')

and the layer returns the logits of the last step. `mu` is the Potts model
(`mu(l, l') = [l != l']`, fixed) or a learned `C x C` matrix initialised to
Potts. `Z_k(i) = sum_{j != i} k_k(i, j)` normalises each kernel per pixel
(`normalize=True`, the default), as Krähenbühl's reference implementation
does: each message is then a weighted mean of the neighbours' label
distributions, so `w1` and `w2` are in logit units (a pixel surrounded by
label `l` gets up to `w1 + w2` logits towards `l`) and keep their meaning at
any image size, window and downsampling. `normalize=False` is Algorithm 1's
plain sum (`Z = 1`), whose messages grow with the number of pixels in reach.

The filtering: a measured approximation. Exact fully connected message
passing costs O(N^2) per step (N pixels; 3e10 kernel evaluations at
480x360); the permutohedral lattice that makes it linear in the reference
implementation is hash-table code with no TFLite builtin or ONNX expression.
This layer uses the ConvCRF approximation (Teichmann & Cipolla 2019): the
same Gaussian kernels, truncated to a `window` of cells around each cell, on
a grid downsampled by `downsample`. Each cell holds the mean colour and the
mean logits of its `downsample x downsample` pixels and stands for that many
pixels in the sums (its own other pixels included); the mean-field steps
run on the grid, with messages passed by shifted copies (Pad, StridedSlice,
Mul, AddN, Exp: TFLite builtins, plain ONNX, any image size), and the last
step's pairwise term is repeated onto the cell's pixels and subtracted from
the full-resolution logits. So the output keeps the FCN's full-resolution
detail, and the CRF moves boundaries in steps of `downsample` pixels. The
kernel weights depend on the image only: they are computed once per image,
for every offset at once, and reused by every iteration. An iteration costs
about `(pixels / downsample^2) * window^2 * classes` multiply-adds; the
full-resolution work (cell means, the final subtraction) is done once.
Pooling and repetition are reshapes, sums and tiles, never a resize op
(dynamic-size bilinear resizing does not trace in Keras 3.15).
With a window covering the whole image and `downsample=1` the layer is the
exact dense CRF (`tests/test_crf.py` checks it against an O(N^2) NumPy
brute force to float32 rounding); `docs/crf.md` gives the measured error
of the truncated and downsampled settings against the exact CRF and the
time per image.

Defaults (`DEFAULTS`): 5 iterations; appearance kernel `w1 = 10`,
`theta_alpha = 80` pixels, `theta_beta = 13` RGB units; smoothness kernel
`w2 = 3`, `theta_gamma = 3` pixels (the values used with Krähenbühl's code in
pydensecrf's examples); a 7x7-cell window on a grid downsampled by 4 (cells
of 4x4 pixels, so the window reaches 14 pixels either side). Within that
reach theta_alpha = 80 is nearly flat: the appearance kernel groups pixels of
similar colour in the window, as in ConvCRF.

Reference: Krähenbühl, Koltun, "Efficient Inference in Fully Connected CRFs
with Gaussian Edge Potentials", NIPS 2011 (Algorithm 1); Zheng et al.,
"Conditional Random Fields as Recurrent Neural Networks", ICCV 2015;
Teichmann, Cipolla, "Convolutional CRFs for Semantic Segmentation", BMVC 2019.
"""

import json
import math
import os

import keras
import numpy as np
from keras import ops

__all__ = [
    "DenseCRF",
    "with_crf",
    "save_crf_settings",
    "load_crf_settings",
    "settings_path",
    "with_saved_crf",
    "tune_crf",
    "fine_tune_crf",
    "crf_grid",
    "grid_edges",
    "split_scores",
    "cached_logits",
    "structure_key",
    "describe_structure",
    "describe_settings",
    "TracedCRF",
    "FrozenFCN",
    "CRF_GRID",
    "DEFAULTS",
    "SETTINGS_SUFFIX",
]

# The options of DenseCRF besides num_classes, with their defaults (see the module docstring).
DEFAULTS = {
    "iterations": 5,
    "appearance_weight": 10.0,
    "appearance_xy": 80.0,
    "appearance_rgb": 13.0,
    "smoothness_weight": 3.0,
    "smoothness_xy": 3.0,
    "compatibility": "potts",
    "window": 7,
    "downsample": 4,
    "normalize": True,
}

# `<model file>` + this suffix: the CRF settings saved next to a model.
SETTINGS_SUFFIX = ".crf.json"

_COMPATIBILITIES = ("potts", "learned")
# Floor of a kernel's normaliser: a pixel with no neighbour in reach (a 1x1 image) gets no message.
_TINY = 1e-30


def _check_positive(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"DenseCRF {name} must be a number; received {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = ">= 0 (0 turns the kernel off)" if allow_zero else "> 0"
        raise ValueError(f"DenseCRF {name} must be finite and {expected}; received {value!r}.")
    return value


def _check_window(window):
    sizes = window if isinstance(window, (tuple, list)) else (window, window)
    if len(sizes) != 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 and s % 2 == 1
        for s in sizes
    ):
        raise ValueError(
            "DenseCRF window must be an odd integer >= 1 (cells per side of the square window "
            f"centred on each cell) or a (height, width) pair of them; received {window!r}."
        )
    return int(sizes[0]), int(sizes[1])


def _check_compatibility(compatibility, num_classes):
    if isinstance(compatibility, str):
        if compatibility not in _COMPATIBILITIES:
            raise ValueError(
                f"DenseCRF compatibility must be 'potts', 'learned' or a (num_classes, "
                f"num_classes) matrix; received {compatibility!r}."
            )
        return compatibility, None
    matrix = np.asarray(compatibility, dtype=np.float64)
    if matrix.shape != (num_classes, num_classes) or not np.all(np.isfinite(matrix)):
        raise ValueError(
            f"DenseCRF compatibility matrix must be finite with shape ({num_classes}, "
            f"{num_classes}) for num_classes={num_classes}; received shape {matrix.shape}."
        )
    return "learned", matrix


def _potts(num_classes):
    return 1.0 - np.eye(num_classes)


@keras.saving.register_keras_serializable(package="fcn_keras")
class DenseCRF(keras.layers.Layer):
    """Mean-field inference in a fully connected CRF over FCN logits, as a trainable layer.

    Called on `[image, logits]`: `image` the raw RGB input of the FCN
    `(batch, H, W, 3)` (uint8, or float in [0, 255]) and `logits` its
    `(batch, H, W, num_classes)` output; returns refined logits of the same
    shape in the layer's dtype (float32 unless `dtype` says otherwise, also
    under a mixed-precision policy). Any H and W, also unknown ones.
    The module docstring gives the model, the approximation and the defaults.

    Args:
        num_classes: int >= 2, the number of classes (the logits' last axis).
        iterations: int >= 0, mean-field steps (0 returns the logits). Defaults to 5.
        appearance_weight: `w1 >= 0` of the appearance (bilateral) kernel; 0
            turns it off. Defaults to 10.
        appearance_xy: `theta_alpha > 0`, its spatial bandwidth in pixels of
            the full-resolution image. Defaults to 80.
        appearance_rgb: `theta_beta > 0`, its colour bandwidth in RGB units
            (0..255). Defaults to 13.
        smoothness_weight: `w2 >= 0` of the smoothness (spatial) kernel; 0
            turns it off. Defaults to 3.
        smoothness_xy: `theta_gamma > 0`, its bandwidth in pixels. Defaults to 3.
        compatibility: `"potts"` (fixed `mu(l, l') = [l != l']`), `"learned"`
            (a `num_classes x num_classes` matrix initialised to Potts), or a
            `num_classes x num_classes` matrix (nested lists or an array): learned,
            initialised to it. Defaults to `"potts"`.
        window: odd int, cells per side of the square window the kernels
            are truncated to, or an odd `(height, width)` pair. Defaults to 7.
        downsample: int >= 1, the grid of the message passing has cells of
            `downsample x downsample` pixels. Defaults to 4.
        normalize: divide each kernel's message by its total weight at the
            pixel (Krähenbühl's implementation); `False` is Algorithm 1's
            plain sum. Defaults to True.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `trainable`,
            `dtype`: defaults to `"float32"`).

    The weights, the bandwidths (both stored as logarithms: they stay
    positive) and a learned compatibility matrix are trainable weights while
    the layer is trainable; `settings()` reads their current values.

    Example:
    >>> crf = fcn_keras.DenseCRF(num_classes=11, iterations=5)
    >>> refined = crf([images, model(images)])   # same shape as the logits
    >>> crf.settings()["appearance_xy"]
    80.0

    Reference: Krähenbühl & Koltun 2011 (Algorithm 1); Zheng et al. 2015
    (CRF-as-RNN); Teichmann & Cipolla 2019 (ConvCRF).
    """

    def __init__(self, num_classes, iterations=DEFAULTS["iterations"],
                 appearance_weight=DEFAULTS["appearance_weight"],
                 appearance_xy=DEFAULTS["appearance_xy"],
                 appearance_rgb=DEFAULTS["appearance_rgb"],
                 smoothness_weight=DEFAULTS["smoothness_weight"],
                 smoothness_xy=DEFAULTS["smoothness_xy"],
                 compatibility=DEFAULTS["compatibility"], window=DEFAULTS["window"],
                 downsample=DEFAULTS["downsample"], normalize=DEFAULTS["normalize"],
                 **kwargs):  # fmt: skip
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
                or num_classes < 2):  # fmt: skip
            raise ValueError(f"DenseCRF num_classes must be an integer >= 2; received {num_classes!r}.")
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ValueError(f"DenseCRF iterations must be an integer >= 0; received {iterations!r}.")
        if (isinstance(downsample, bool) or not isinstance(downsample, (int, np.integer))
                or downsample < 1):  # fmt: skip
            raise ValueError(
                f"DenseCRF downsample must be an integer >= 1 (1: full resolution); "
                f"received {downsample!r}."
            )
        if not isinstance(normalize, bool):
            raise ValueError(f"DenseCRF normalize must be True or False; received {normalize!r}.")
        self.num_classes = int(num_classes)
        self.iterations = int(iterations)
        self.appearance_weight = _check_positive("appearance_weight", appearance_weight, allow_zero=True)
        self.appearance_xy = _check_positive("appearance_xy", appearance_xy)
        self.appearance_rgb = _check_positive("appearance_rgb", appearance_rgb)
        self.smoothness_weight = _check_positive("smoothness_weight", smoothness_weight, allow_zero=True)
        self.smoothness_xy = _check_positive("smoothness_xy", smoothness_xy)
        self.window = _check_window(window)
        self.downsample = int(downsample)
        self.normalize = normalize
        self.compatibility, self._initial_matrix = _check_compatibility(compatibility, self.num_classes)
        self._compatibility_config = (
            compatibility if isinstance(compatibility, str) else self._initial_matrix.tolist()
        )

    # === Weights ===

    def _scalar(self, name, value):
        return self.add_weight(name=name, shape=(), initializer=keras.initializers.Constant(math.log(value)),
                               trainable=True)  # fmt: skip

    def build(self, input_shape):
        self._check_shapes(input_shape)
        self.log_appearance_weight = self.log_smoothness_weight = None
        if self.appearance_weight > 0:
            self.log_appearance_weight = self._scalar("log_appearance_weight", self.appearance_weight)
            self.log_appearance_xy = self._scalar("log_appearance_xy", self.appearance_xy)
            self.log_appearance_rgb = self._scalar("log_appearance_rgb", self.appearance_rgb)
        if self.smoothness_weight > 0:
            self.log_smoothness_weight = self._scalar("log_smoothness_weight", self.smoothness_weight)
            self.log_smoothness_xy = self._scalar("log_smoothness_xy", self.smoothness_xy)
        self.compatibility_matrix = None
        if self.compatibility == "learned":
            initial = self._initial_matrix if self._initial_matrix is not None else _potts(self.num_classes)
            self.compatibility_matrix = self.add_weight(
                name="compatibility", shape=(self.num_classes, self.num_classes),
                initializer=keras.initializers.Constant(initial), trainable=True,
            )  # fmt: skip

    def _check_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(
                f"DenseCRF {self.name!r} is called on [image, logits]; received {input_shape!r}."
            )
        image_shape, logits_shape = (tuple(s) for s in input_shape)
        if len(image_shape) != 4 or image_shape[-1] != 3:
            raise ValueError(
                f"DenseCRF {self.name!r}: image must be RGB (batch, H, W, 3); received shape "
                f"{image_shape}."
            )
        if len(logits_shape) != 4 or logits_shape[-1] != self.num_classes:
            raise ValueError(
                f"DenseCRF {self.name!r}: logits must be (batch, H, W, num_classes={self.num_classes}); "
                f"received shape {logits_shape}."
            )
        for axis, what in ((1, "height"), (2, "width")):
            a, b = image_shape[axis], logits_shape[axis]
            if a is not None and b is not None and a != b:
                raise ValueError(
                    f"DenseCRF {self.name!r}: image and logits must have the same height and width; "
                    f"received image {image_shape[1:3]} and logits {logits_shape[1:3]} ({what} "
                    f"{a} != {b})."
                )

    # === Inference ===

    def _offsets(self):
        """The window's cell offsets `(dy, dx)`, row-major; the centre is `(0, 0)`."""
        rh, rw = self.window[0] // 2, self.window[1] // 2
        return [(dy, dx) for dy in range(-rh, rh + 1) for dx in range(-rw, rw + 1)]

    def _shifted(self, padded, dy, dx):
        """`x[:, y + dy, x + dx]` for every cell, from `x` zero-padded by the window's half sizes."""
        rh, rw = self.window[0] // 2, self.window[1] // 2
        top, left = rh + dy, rw + dx
        bottom, right = top - 2 * rh, left - 2 * rw  # <= 0: static slice ends, any size
        return padded[:, top : bottom if bottom < 0 else None, left : right if right < 0 else None, :]

    def _pad_window(self, x):
        rh, rw = self.window[0] // 2, self.window[1] // 2
        if rh == 0 and rw == 0:
            return x
        return ops.pad(x, [[0, 0], [rh, rh], [rw, rw], [0, 0]])

    def _stacked(self, padded, channel=None):
        """Every window offset's shifted copy of one channel, stacked: `(batch, h, w, cells)`."""
        x = padded if channel is None else padded[..., channel : channel + 1]
        return ops.concatenate([self._shifted(x, dy, dx) for dy, dx in self._offsets()], axis=-1)

    def _kernel_weights(self, colour, counts):
        """Message weights on the grid, one `(batch, h, w, 1)` map per window offset.

        Each is `w1 k1 / Z1 + w2 k2 / Z2` at that offset, times the number of
        image pixels of the source cell (for the centre: its pixels less the
        pixel itself). They depend on the image only: computed once per
        image, for all offsets at once (a `(batch, h, w, cells)` tensor).
        """
        d = self.downsample
        dtype = self.compute_dtype
        offsets = self._offsets()
        centre = offsets.index((0, 0))
        squared_xy = np.array([(dy * d) ** 2 + (dx * d) ** 2 for dy, dx in offsets], dtype=dtype)
        itself = np.zeros(len(offsets), dtype=dtype)
        itself[centre] = 1.0
        # Pixels of each source cell, out-of-image cells 0, the centre less the pixel itself.
        n = self._stacked(self._pad_window(counts)) - itself
        kernels = []
        if self.log_smoothness_weight is not None:
            theta = ops.exp(self.log_smoothness_xy)
            kernels.append((self.log_smoothness_weight, ops.exp(squared_xy * (-0.5 / ops.square(theta)))))
        if self.log_appearance_weight is not None:
            padded = self._pad_window(colour)
            distance = None
            for channel in range(3):
                difference = ops.square(self._stacked(padded, channel) - colour[..., channel : channel + 1])
                distance = difference if distance is None else distance + difference
            theta_xy, theta_rgb = ops.exp(self.log_appearance_xy), ops.exp(self.log_appearance_rgb)
            exponent = squared_xy * (-0.5 / ops.square(theta_xy)) - distance * (0.5 / ops.square(theta_rgb))
            kernels.append((self.log_appearance_weight, ops.exp(exponent)))
        weights = None
        for log_weight, kernel in kernels:
            kernel = kernel * n
            if self.normalize:
                kernel = kernel / ops.maximum(ops.sum(kernel, axis=-1, keepdims=True), _TINY)
            kernel = kernel * ops.exp(log_weight)
            weights = kernel if weights is None else weights + kernel
        return [weights[..., i : i + 1] for i in range(len(offsets))]

    def _pairwise(self, message):
        if self.compatibility_matrix is not None:
            # pairwise(l) = sum_l' mu(l, l') m(l')
            return ops.matmul(message, ops.transpose(self.compatibility_matrix))
        return ops.sum(message, axis=-1, keepdims=True) - message  # Potts: sum over l' != l

    def call(self, inputs):
        image, logits = inputs
        self._check_shapes([tuple(image.shape), tuple(logits.shape)])
        dtype = self.compute_dtype
        image = ops.cast(image, dtype)
        logits = ops.cast(logits, dtype)
        if self.iterations == 0 or (self.log_appearance_weight is None and self.log_smoothness_weight is None):
            return logits
        d = self.downsample
        shape = ops.shape(logits)
        height, width = shape[1], shape[2]
        if d == 1:
            counts, colour, unary = ops.ones_like(image[..., :1]), image, logits
        else:
            counts = _cell_sum(ops.ones_like(image[..., :1]), d)
            colour = _cell_sum(image, d) / counts
            unary = _cell_sum(logits, d) / counts
        weights = self._kernel_weights(colour, counts)
        offsets = self._offsets()
        refined = unary
        for _ in range(self.iterations):
            q_padded = self._pad_window(_softmax(refined))
            message = _add_n([self._shifted(q_padded, dy, dx) * weight
                              for (dy, dx), weight in zip(offsets, weights)])  # fmt: skip
            pairwise = self._pairwise(message)
            refined = unary - pairwise
        if d == 1:
            return refined
        return logits - _repeat_cells(pairwise, d, height, width)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    # === Settings and config ===

    def settings(self):
        """The `DenseCRF` options that rebuild this layer with its current parameter values.

        Before training these are the constructor's values; after, the
        learned weights, bandwidths and compatibility matrix (as a nested
        list). `save_crf_settings` writes them.

        Returns:
            dict: `num_classes` and every key of `DEFAULTS`.

        Example:
        >>> fcn_keras.DenseCRF(6, iterations=3).settings()["iterations"]
        3
        """
        values = {"num_classes": self.num_classes, "iterations": self.iterations,
                  "appearance_weight": self.appearance_weight, "appearance_xy": self.appearance_xy,
                  "appearance_rgb": self.appearance_rgb, "smoothness_weight": self.smoothness_weight,
                  "smoothness_xy": self.smoothness_xy, "compatibility": self._compatibility_config,
                  "window": list(self.window), "downsample": self.downsample,
                  "normalize": self.normalize}  # fmt: skip
        if self.built:
            read = lambda v: float(math.exp(float(ops.convert_to_numpy(v))))  # noqa: E731
            if self.log_appearance_weight is not None:
                values.update(appearance_weight=read(self.log_appearance_weight),
                              appearance_xy=read(self.log_appearance_xy),
                              appearance_rgb=read(self.log_appearance_rgb))  # fmt: skip
            if self.log_smoothness_weight is not None:
                values.update(smoothness_weight=read(self.log_smoothness_weight),
                              smoothness_xy=read(self.log_smoothness_xy))  # fmt: skip
            if self.compatibility_matrix is not None:
                values["compatibility"] = np.asarray(
                    ops.convert_to_numpy(self.compatibility_matrix), dtype=np.float64
                ).tolist()
        return values

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "iterations": self.iterations, "appearance_weight": self.appearance_weight,
                "appearance_xy": self.appearance_xy, "appearance_rgb": self.appearance_rgb,
                "smoothness_weight": self.smoothness_weight, "smoothness_xy": self.smoothness_xy,
                "compatibility": self._compatibility_config, "window": list(self.window),
                "downsample": self.downsample, "normalize": self.normalize}  # fmt: skip


def _softmax(x):
    """Softmax over the last axis as Sub/Exp/ReduceSum/Div (onnxruntime's Softmax is slow on few classes)."""
    e = ops.exp(x - ops.max(x, axis=-1, keepdims=True))
    return e / ops.sum(e, axis=-1, keepdims=True)


def _add_n(tensors):
    """The sum of a list of same-shape tensors as one op (AddN; ONNX Sum; TFLite ADD_N)."""
    import tensorflow as tf  # keras.ops has no n-ary add; the package runs on TensorFlow

    return tensors[0] if len(tensors) == 1 else tf.math.add_n(tensors)


def _cell_sum(x, d):
    """Sum of `x` over cells of `d x d` pixels, `(batch, ceil(H/d), ceil(W/d), channels)`.

    The image is zero-padded at the bottom/right to a multiple of `d`, so a
    border cell sums its image pixels only. Reshapes and sums of rank <= 4,
    no pooling op: none of the NCHW transposes onnxruntime wraps pooling in.
    """
    channels = x.shape[-1]
    shape = ops.shape(x)
    # (m - h % m) % m, not (-h) % m: ONNX's Mod truncates negative operands (see PadToMultiple).
    pad_h = (d - shape[1] % d) % d
    pad_w = (d - shape[2] % d) % d
    x = ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
    h, w = (shape[1] + pad_h) // d, (shape[2] + pad_w) // d
    x = ops.sum(ops.reshape(x, (-1, d, w * d * channels)), axis=1)  # rows of each cell
    x = ops.sum(ops.reshape(x, (-1, d, channels)), axis=1)  # columns of each cell
    return ops.reshape(x, (-1, h, w, channels))


def _repeat_cells(x, d, height, width):
    """Each cell's value on its `d x d` pixels (nearest neighbour), cropped to `height x width`."""
    channels = x.shape[-1]
    shape = ops.shape(x)
    h, w = shape[1], shape[2]
    x = ops.tile(ops.reshape(x, (-1, 1, channels)), [1, d, 1])  # each cell d times along a row
    x = ops.tile(ops.reshape(x, (-1, 1, w * d * channels)), [1, d, 1])  # each row d times
    return ops.reshape(x, (-1, h * d, w * d, channels))[:, :height, :width, :]


# === Appending the CRF to an FCN ===


def with_crf(model, crf=None, **crf_options):
    """Append a `DenseCRF` to an FCN: a model from raw images to CRF-refined logits.

    The new model reuses the FCN's layers (its weights are shared, not
    copied) and carries its `dataset_info`, so evaluation, export and
    prediction still know the class names, void label and palette. Whether
    the FCN trains with the CRF is the FCN's `trainable` flag: set
    `model.trainable = False` to train the CRF alone.

    Args:
        model: a functional FCN `keras.Model` from `(batch, H, W, 3)` raw RGB
            to `(batch, H, W, num_classes)` logits (every `fcn_keras` builder,
            or a `.keras` file loaded).
        crf: optional `DenseCRF` instance to append; then no `crf_options`.
        **crf_options: `DenseCRF` options (see `DEFAULTS`); `num_classes`
            defaults to the model's and must equal it if given.

    Returns:
        An `FCNModel` named `<model name>_crf`: image -> refined logits, float32.

    Raises:
        ValueError: both `crf` and options given, a `crf` or `num_classes`
            for another class count, or a model that is not image -> logits.

    Example:
    >>> fcn = fcn_keras.FCN8s(num_classes=11, weights="runs/fcn8s/best.keras", backbone_weights=None)
    >>> fcn.trainable = False                      # train the CRF only
    >>> model = fcn_keras.with_crf(fcn, iterations=5, compatibility="learned")
    >>> model.compile(optimizer="adam", loss=fcn_keras.SegmentationCrossEntropy(ignore_label=255))
    >>> model.fit(train_data, epochs=1)
    >>> fcn_keras.crf.save_crf_settings(model.get_layer("crf"), "runs/fcn8s/best.keras")

    Reference: Zheng et al. 2015, "Conditional Random Fields as Recurrent
    Neural Networks" (the FCN and the CRF trained end to end).
    """
    from fcn_keras.models import FCNModel

    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not isinstance(model, keras.Model) or not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "with_crf needs a functional keras.Model with one image input and one logits output "
            f"(an fcn_keras FCN); received {type(model).__name__}."
        )
    image, logits = inputs[0], outputs[0]
    if len(image.shape) != 4 or image.shape[-1] != 3 or len(logits.shape) != 4 or logits.shape[-1] is None:
        raise ValueError(
            f"with_crf needs a model from (batch, H, W, 3) images to (batch, H, W, num_classes) "
            f"logits; model {model.name!r} maps {tuple(image.shape)} to {tuple(logits.shape)}."
        )
    num_classes = int(logits.shape[-1])
    if crf is not None:
        if crf_options:
            raise ValueError(
                f"with_crf takes a DenseCRF layer or DenseCRF options, not both; received a layer "
                f"and {sorted(crf_options)}."
            )
        if not isinstance(crf, DenseCRF):
            raise ValueError(f"with_crf crf must be a fcn_keras.DenseCRF; received {type(crf).__name__}.")
        if crf.num_classes != num_classes:
            raise ValueError(
                f"the DenseCRF is for {crf.num_classes} classes but model {model.name!r} outputs "
                f"{num_classes}."
            )
    else:
        options = dict(crf_options)
        given = options.pop("num_classes", num_classes)
        if given != num_classes:
            raise ValueError(
                f"CRF settings are for num_classes={given} but model {model.name!r} outputs "
                f"{num_classes} classes."
            )
        crf = DenseCRF(num_classes, name="crf", **options)
    refined = crf([image, logits])
    return FCNModel(image, refined, name=f"{model.name}_crf",
                    dataset_info=getattr(model, "dataset_info", None),
                    input_scale=getattr(model, "input_scale", None))  # fmt: skip


# === Settings files next to a model ===


def settings_path(model_path):
    """The CRF settings file of a model file: `<model_path>.crf.json`.

    Args:
        model_path: a model file (`runs/fcn8s/best.keras`), or a settings
            file itself (ending in `.json`, returned as is).

    Returns:
        str, the settings file's path.

    Example:
    >>> settings_path("runs/fcn8s/best.keras")
    'runs/fcn8s/best.keras.crf.json'
    """
    path = os.fspath(model_path)
    return path if path.endswith(".json") else path + SETTINGS_SUFFIX


def save_crf_settings(settings_or_layer, model_path):
    """Write CRF settings next to a model file, as `<model_path>.crf.json` (atomically).

    Args:
        settings_or_layer: a `DenseCRF` (its current, possibly trained,
            values: `DenseCRF.settings()`) or a dict of `DenseCRF` options
            (checked by building a layer from them).
        model_path: the model file the settings belong to (a settings file
            path ending in `.json` is written as is).

    Returns:
        str, the path written.

    Raises:
        ValueError: a dict holding an unknown option or an invalid value.

    Example:
    >>> save_crf_settings({"num_classes": 11, "iterations": 10}, "runs/fcn8s/best.keras")
    'runs/fcn8s/best.keras.crf.json'
    """
    from fcn_keras.files import write_json

    if isinstance(settings_or_layer, DenseCRF):
        settings = settings_or_layer.settings()
    elif isinstance(settings_or_layer, dict):
        settings = _checked_settings(dict(settings_or_layer), "the settings to save")
    else:
        raise ValueError(
            f"save_crf_settings takes a DenseCRF or a dict of its options; received "
            f"{type(settings_or_layer).__name__}."
        )
    path = settings_path(model_path)
    write_json(path, settings)
    return path


def load_crf_settings(model_path):
    """Read the CRF settings saved next to a model file (`<model_path>.crf.json`).

    Args:
        model_path: the model file (its settings file is found beside it), or
            a settings file (ending in `.json`).

    Returns:
        dict of `DenseCRF` options (pass them to `with_crf` or `DenseCRF`).

    Raises:
        FileNotFoundError: no settings file (the message names it).
        ValueError: the file is not JSON, not an object, or holds an unknown
            option or an invalid value (the message names the file).

    Example:
    >>> model = fcn_keras.with_crf(fcn, **load_crf_settings("runs/fcn8s/best.keras"))
    """
    path = settings_path(model_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CRF settings file not found: {path!r}.")
    try:
        with open(path) as f:
            settings = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"CRF settings file {path!r} is not readable JSON: {e}") from e
    if not isinstance(settings, dict):
        raise ValueError(
            f"CRF settings file {path!r} must hold a JSON object of DenseCRF options; "
            f"received {type(settings).__name__}."
        )
    return _checked_settings(settings, f"CRF settings file {path!r}")


def with_saved_crf(model, model_path, settings_file=None):
    """`with_crf` with the settings saved next to the model file, else the defaults.

    What `fcn-keras evaluate/predict/export --crf` do: the settings come from
    `settings_file` when given (it must exist), else from
    `<model_path>.crf.json` when that exists, else `DEFAULTS`.

    Args:
        model: the FCN `keras.Model` loaded from `model_path`.
        model_path: the model file it was loaded from.
        settings_file: optional explicit settings file. Defaults to None.

    Returns:
        `(crf_model, options, source)`: the `with_crf` model, the `DenseCRF`
        options used (without `num_classes`), and a sentence saying where
        they came from (to print).

    Example:
    >>> crf_model, options, source = with_saved_crf(model, "runs/fcn8s/best.keras")
    >>> source
    "CRF settings from 'runs/fcn8s/best.keras.crf.json'"
    """
    if settings_file is not None:
        options = load_crf_settings(settings_file)
        source = f"CRF settings from {settings_path(settings_file)!r}"
    elif os.path.isfile(settings_path(model_path)):
        options = load_crf_settings(model_path)
        source = f"CRF settings from {settings_path(model_path)!r}"
    else:
        options = {}
        source = f"CRF settings: DenseCRF defaults (no {settings_path(model_path)!r})"
    crf_model = with_crf(model, **options)
    used = crf_model.get_layer("crf").settings()
    used.pop("num_classes")
    return crf_model, used, source


def _checked_settings(settings, what):
    """`settings` after building a `DenseCRF` from them (errors name `what`)."""
    known = {"num_classes", *DEFAULTS}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{what} has unknown option(s) {unknown}; expected some of {sorted(known)}.")
    if "window" in settings and isinstance(settings["window"], list):
        settings["window"] = tuple(settings["window"])
    num_classes = settings.get("num_classes")
    if num_classes is None:  # checked against the model later; a matrix says its own size
        matrix = settings.get("compatibility")
        num_classes = len(matrix) if isinstance(matrix, (list, tuple)) else 2
    try:
        DenseCRF(**{**settings, "num_classes": num_classes})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: {e}") from None
    return settings


# === Tuning: grid search on a split, end-to-end fine-tuning on a frozen FCN ===

# The grid `tune_crf` searches by default: every combination. Weights are in logit units (the
# layer normalises each kernel per pixel); a (window, downsample) pair reaches
# (window // 2) * downsample pixels either side: 12 and 32 px here (downsampling by 2 or 1
# costs 5-10 times more).
CRF_GRID = {
    "structure": [{"window": 7, "downsample": 4}, {"window": 9, "downsample": 8}],
    "appearance_xy": [10.0, 80.0],
    "appearance_rgb": [5.0, 13.0, 30.0],
    "appearance_weight": [3.0, 10.0, 30.0],
    "smoothness": [{"smoothness_weight": 0.0}, {"smoothness_weight": 3.0, "smoothness_xy": 3.0}],
}  # fmt: skip


def crf_grid(grid=None, iterations=5):
    """Every `DenseCRF` setting of a grid (see `CRF_GRID`), Potts compatibility.

    Args:
        grid: dict of lists, keys `structure` (dicts of `window`,
            `downsample`), `appearance_xy`, `appearance_rgb`,
            `appearance_weight`, `smoothness` (dicts of `smoothness_weight`
            and optionally `smoothness_xy`). Defaults to `CRF_GRID`.
        iterations: mean-field iterations of every setting. Defaults to 5.

    Returns:
        A list of dicts of `DenseCRF` options, structures in the grid's order.

    Example:
    >>> len(crf_grid(CRF_GRID))
    72
    """
    import itertools

    grid = CRF_GRID if grid is None else grid
    missing = [k for k in ("structure", "appearance_xy", "appearance_rgb", "appearance_weight",
                           "smoothness") if not grid.get(k)]  # fmt: skip
    if missing:
        raise ValueError(f"CRF grid: no values for {missing}; expected the keys of CRF_GRID.")
    settings = []
    for structure, xy, rgb, weight, smooth in itertools.product(
            grid["structure"], grid["appearance_xy"], grid["appearance_rgb"],
            grid["appearance_weight"], grid["smoothness"]):  # fmt: skip
        settings.append({"iterations": int(iterations), **structure, "appearance_weight": weight,
                         "appearance_xy": xy, "appearance_rgb": rgb,
                         "smoothness_weight": smooth["smoothness_weight"],
                         "smoothness_xy": smooth.get("smoothness_xy", 3.0),
                         "compatibility": "potts"})  # fmt: skip
    return settings


def grid_edges(chosen, grid=None):
    """The options of `grid` chosen at their lowest or highest value (three values or more).

    A choice at the edge says the best setting may lie outside the grid.

    Args:
        chosen: the chosen `DenseCRF` options.
        grid: the grid searched. Defaults to `CRF_GRID`.

    Returns:
        A list of `"<option> <value> (grid <low>..<high>)"` texts.

    Example:
    >>> grid_edges({"appearance_weight": 30.0, "appearance_xy": 80.0, "appearance_rgb": 5.0})
    ['appearance_rgb 5 (grid 5..30)', 'appearance_weight 30 (grid 3..30)']
    """
    grid = CRF_GRID if grid is None else grid
    edges = []
    for name in ("appearance_xy", "appearance_rgb", "appearance_weight"):
        values = sorted(grid[name])
        if len(values) > 2 and chosen[name] in (values[0], values[-1]):
            edges.append(f"{name} {chosen[name]:g} (grid {values[0]:g}..{values[-1]:g})")
    return edges


def structure_key(settings):
    """What a traced `DenseCRF` call depends on (window, downsampling, kernels on, compatibility).

    Settings with the same key share one traced function (`TracedCRF`); the
    other options are variables assigned in place.

    Args:
        settings: `DenseCRF` options.

    Returns:
        A hashable tuple.

    Example:
    >>> structure_key(crf_grid()[0])
    (7, 4, True, False, 'potts')
    """
    window = settings["window"]
    window = tuple(window) if isinstance(window, (list, tuple)) else window
    compatibility = settings["compatibility"]
    compatibility = compatibility if isinstance(compatibility, str) else "matrix"
    return (window, settings["downsample"], settings["appearance_weight"] > 0,
            settings["smoothness_weight"] > 0, compatibility)  # fmt: skip


def describe_structure(key):
    """A `structure_key` in words, e.g. "window 7 downsample 4, appearance + smoothness".

    Args:
        key: a `structure_key` tuple.

    Returns:
        str.

    Example:
    >>> describe_structure(structure_key(crf_grid()[0]))
    'window 7 downsample 4, appearance'
    """
    window, downsample, appearance, smoothness, _ = key
    kernels = " + ".join(name for name, on in (("appearance", appearance), ("smoothness", smoothness)) if on)
    return f"window {window} downsample {downsample}, {kernels or 'no kernel'}"


class TracedCRF:
    """One traced `DenseCRF` call (images, logits -> classes) whose parameters are reassigned per setting.

    Args:
        num_classes: classes of the logits.
        settings: `DenseCRF` options of the first setting; later settings
            (`assign`) must share its `structure_key`.
        size: `(height, width)` of every image.
        layer: an existing (built) `DenseCRF` to call instead of a new one.
            Defaults to None.

    Example:
    >>> crf = TracedCRF(11, crf_grid()[0], (360, 480))
    >>> classes = crf.classes(images, logits).numpy()   # (N, 360, 480) uint8
    """

    def __init__(self, num_classes, settings, size, layer=None):
        import tensorflow as tf

        height, width = (int(v) for v in size)
        if layer is None:
            layer = DenseCRF(num_classes, name="crf", **settings)
            layer.build([(None, height, width, 3), (None, height, width, num_classes)])
        self.layer, self.key = layer, structure_key(settings)

        @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.uint8),
                                      tf.TensorSpec((None, height, width, num_classes), tf.float32)])  # fmt: skip
        def classes(images, logits):
            return tf.cast(tf.argmax(layer([images, logits]), axis=-1), tf.uint8)

        self.classes = classes

    def assign(self, settings):
        """Set the layer's weights and bandwidths to `settings` (same `structure_key`)."""
        if structure_key(settings) != self.key:
            raise ValueError(f"settings {settings} do not match the traced structure {self.key}.")
        names = []
        if settings["appearance_weight"] > 0:
            names += ["appearance_weight", "appearance_xy", "appearance_rgb"]
        if settings["smoothness_weight"] > 0:
            names += ["smoothness_weight", "smoothness_xy"]
        for name in names:
            getattr(self.layer, "log_" + name).assign(math.log(settings[name]))
        current = self.layer.settings()
        wrong = [n for n in names if not math.isclose(current[n], settings[n], rel_tol=1e-5)]
        if wrong:
            raise RuntimeError(f"DenseCRF did not take the settings {wrong}: {current}")


def cached_logits(predict_fn, batches, count, cache_dir, name, *, key, log=None):
    """Images, labels and logits of a split as read-only `.npy` memory maps, computed once.

    What `tune_crf` and `fine_tune_crf` take: the FCN runs once per image and
    every CRF setting reuses its logits. The arrays are written image by
    image (memory stays small) to `cache_dir/<name>_{images,labels,logits}.npy`,
    then `cache_dir/<name>.json` (`key` and the median seconds per image,
    written last); a later call with an equal `key` reads them back without
    calling `predict_fn`.

    Args:
        predict_fn: `(H, W, 3) uint8 image -> (H, W, C) float32 logits` (e.g.
            `fcn_keras.export.Predictor(model).predict`, which applies the
            model's input scale).
        batches: an iterable of `(image, label)` batches of one example, all
            of one size (e.g. `fcn_keras.load_dataset(..., batch_size=1)`).
        count: images to take from `batches`.
        cache_dir: the cache folder (created).
        name: the split's name in the file names, e.g. `"val"`.
        key: a JSON-able dict of what the logits depend on (model file, data,
            scale, image count ...).
        log: optional `print`-like progress function. Defaults to None.

    Returns:
        `(images uint8 (N, H, W, 3), labels uint8 (N, H, W), logits float32
        (N, H, W, C), median seconds of `predict_fn` per image, or None when
        read back from a cache that does not record it)`.

    Raises:
        ValueError: images of different sizes, label ids above 255, or fewer
            than `count` images.

    Example:
    >>> predictor = fcn_keras.export.Predictor(model)
    >>> images, labels, logits, _ = cached_logits(predictor.predict, val_batches, 101, "/tmp/cache",
    ...                                           "val", key={"model": "final.keras"})
    >>> tune_crf(images, logits, labels)["settings"]
    """
    import itertools
    import statistics
    import time

    from fcn_keras.files import write_json

    os.makedirs(cache_dir, exist_ok=True)
    parts = ("images", "labels", "logits")
    paths = {part: os.path.join(cache_dir, f"{name}_{part}.npy") for part in parts}
    record = os.path.join(cache_dir, f"{name}.json")
    key = json.loads(json.dumps(key))  # as JSON holds it, so that it compares with the record

    def arrays_on_disk():
        return tuple(np.load(paths[part], mmap_mode="r") for part in parts)

    if os.path.isfile(record):
        with open(record) as f:
            recorded = json.load(f)
        seconds = recorded.pop("fcn_seconds_per_image", None)
        if recorded == key:
            if log:
                log(f"{name}: reusing the cached FCN logits in {cache_dir}")
            return (*arrays_on_disk(), seconds)
        os.remove(record)
    arrays, times, done = None, [], 0
    for index, (image, label) in enumerate(itertools.islice(batches, int(count))):
        image, label = np.asarray(image)[0], np.asarray(label)[0]
        start = time.perf_counter()
        logits = np.asarray(predict_fn(image), dtype=np.float32)
        times.append(time.perf_counter() - start)
        if int(np.max(label)) > 255:
            raise ValueError(f"{name} image {index}: label ids above 255 do not fit the uint8 cache.")
        if arrays is None:
            shapes = {"images": (image.shape, np.uint8), "labels": (label.shape, np.uint8),
                      "logits": (logits.shape, np.float32)}  # fmt: skip
            arrays = {part: np.lib.format.open_memmap(paths[part], mode="w+", dtype=dtype,
                                                      shape=(int(count), *shape))
                      for part, (shape, dtype) in shapes.items()}  # fmt: skip
        if image.shape != arrays["images"].shape[1:] or label.shape != arrays["labels"].shape[1:]:
            raise ValueError(f"{name} image {index}: size {image.shape[:2]} differs from the first "
                             f"image's {arrays['images'].shape[1:3]}; the cache needs one size.")  # fmt: skip
        arrays["images"][index], arrays["labels"][index], arrays["logits"][index] = image, label, logits
        done += 1
    if done < int(count):
        raise ValueError(f"{name}: {done} images to cache, {count} expected.")
    for array in arrays.values():
        array.flush()
    del arrays
    per_image = statistics.median(times[1:] or times)
    write_json(record, {**key, "fcn_seconds_per_image": per_image})
    if log:
        log(f"{name}: FCN logits of {done} images cached in {cache_dir} ({per_image:.2f} s / image)")
    return (*arrays_on_disk(), per_image)


def split_scores(classes_fn, images, logits, labels, *, ignore_label=255, batch_size=4,
                 trimap_widths=()):  # fmt: skip
    """Scores of `classes_fn(images, logits)` on a split held as arrays (`evaluate_predictions`).

    Args:
        classes_fn: `(images (B, H, W, 3), logits (B, H, W, C)) -> classes (B, H, W)`
            (or logits), e.g. `TracedCRF.classes`.
        images: `(N, H, W, 3)` uint8 images (arrays or memory maps).
        logits: `(N, H, W, C)` float32 FCN logits.
        labels: `(N, H, W)` label maps.
        ignore_label: void label. Defaults to 255.
        batch_size: images per call. Defaults to 4.
        trimap_widths: band widths of the trimap mean IU. Defaults to none.

    Returns:
        `fcn_keras.evaluation.evaluate_predictions`'s result.

    Example:
    >>> split_scores(lambda i, l: np.argmax(l, -1), images, logits, labels)["mean_iu"]
    """
    from fcn_keras.evaluation import evaluate_predictions

    if not len(images) == len(logits) == len(labels):
        raise ValueError(f"split_scores: {len(images)} images, {len(logits)} logits and "
                         f"{len(labels)} labels; expected one of each per image.")  # fmt: skip
    batches = (((images[b:b + batch_size], logits[b:b + batch_size]), labels[b:b + batch_size])
               for b in range(0, len(images), batch_size))  # fmt: skip
    return evaluate_predictions(lambda pair: classes_fn(*pair), batches, int(logits.shape[-1]),
                                ignore_label=ignore_label, trimap_widths=trimap_widths)  # fmt: skip


def _score_settings(settings_list, classes_of, images, logits, labels, *, ignore_label, batch_size, describe,
                    log=None):  # fmt: skip
    """Score every setting of a grid search on a split; return its rows and the best one.

    `classes_of(settings)` gives the `(images, logits) -> classes` function
    of one setting (`tune_crf`'s `DenseCRF`, `fcn_keras.crf_reference`'s
    pydensecrf2). Rows: `{"settings", "val_mean_iu", "val_pixel_accuracy",
    "seconds_per_image"}`, in grid order; the best has the highest mean IU
    (the first of equals).
    """
    rows = []
    for number, settings in enumerate(settings_list, 1):
        scores = split_scores(classes_of(settings), images, logits, labels, ignore_label=ignore_label,
                              batch_size=batch_size)  # fmt: skip
        rows.append({"settings": settings, "val_mean_iu": scores["mean_iu"],
                     "val_pixel_accuracy": scores["pixel_accuracy"],
                     "seconds_per_image": scores["predict_seconds"] / len(images)})  # fmt: skip
        if log:
            log(f"  [{number}/{len(settings_list)}] {describe(settings)}: mean IU {100 * scores['mean_iu']:.2f}")
    return rows, max(rows, key=lambda r: r["val_mean_iu"])


def tune_crf(images, logits, labels, *, grid=None, iterations=5, ignore_label=255, batch_size=4,
             log=None):  # fmt: skip
    """Grid search of `DenseCRF` settings on a split (e.g. val), chosen by mean IU.

    The FCN's logits are computed once by the caller (e.g. with
    `fcn_keras.export.Predictor(model).predict`, which applies the model's
    input scale); each structure of the grid (`structure_key`) is traced
    once and its settings assigned in place.

    Args:
        images: `(N, H, W, 3)` uint8 images of the split (arrays or memory maps).
        logits: `(N, H, W, C)` float32 FCN logits of those images.
        labels: `(N, H, W)` label maps.
        grid: the grid (see `crf_grid`). Defaults to `CRF_GRID`.
        iterations: mean-field iterations. Defaults to 5.
        ignore_label: void label. Defaults to 255.
        batch_size: images per CRF call. Defaults to 4.
        log: optional `print`-like progress function. Defaults to None.

    Returns:
        Dict: `settings` (the chosen `DenseCRF` options), `mean_iu` (its
        split mean IU), `rows` (`{"settings", "val_mean_iu",
        "val_pixel_accuracy", "seconds_per_image"}` per setting, in grid
        order), `edges` (`grid_edges` of the choice), `crfs` (`{structure_key:
        TracedCRF}`, reusable), and `seconds_per_image` (`{structure_key:
        seconds}`, the best of two timed calls on the first batch).

    Example:
    >>> tuned = tune_crf(val_images, val_logits, val_labels)
    >>> model = with_crf(fcn, **tuned["settings"])
    """
    import time

    settings_list = crf_grid(grid, iterations)
    num_classes, size = int(logits.shape[-1]), tuple(images.shape[1:3])
    crfs, costs = {}, {}
    probe = slice(0, min(batch_size, len(images)))
    for settings in settings_list:
        key = structure_key(settings)
        if key in crfs:
            continue
        crfs[key] = TracedCRF(num_classes, settings, size)
        crfs[key].classes(images[probe], logits[probe]).numpy()  # traced
        times = []
        for _ in range(2):
            start = time.perf_counter()
            crfs[key].classes(images[probe], logits[probe]).numpy()
            times.append(time.perf_counter() - start)
        costs[key] = min(times) / (probe.stop - probe.start)
        if log:
            log(f"DenseCRF {describe_settings(settings).split(', w1')[0]}: {costs[key]:.3f} s / image")
    if log:
        minutes = sum(costs[structure_key(s)] for s in settings_list) * len(images) / 60
        log(f"grid: {len(settings_list)} settings x {len(images)} images, about {minutes:.1f} min")
    def classes_of(settings):
        crf = crfs[structure_key(settings)]
        crf.assign(settings)
        return crf.classes

    rows, best = _score_settings(settings_list, classes_of, images, logits, labels, ignore_label=ignore_label,
                                 batch_size=batch_size, describe=describe_settings, log=log)  # fmt: skip
    return {"settings": best["settings"], "mean_iu": best["val_mean_iu"], "rows": rows,
            "edges": grid_edges(best["settings"], CRF_GRID if grid is None else grid),
            "crfs": crfs, "seconds_per_image": costs}  # fmt: skip


def describe_settings(settings):
    """`DenseCRF` options in words, e.g. "window 7 downsample 4, w1 10 theta_alpha 80 ...".

    Args:
        settings: `DenseCRF` options.

    Returns:
        str.

    Example:
    >>> describe_settings(crf_grid()[0])
    'window 7 downsample 4, w1 3 theta_alpha 10 theta_beta 5, no smoothness kernel, potts compatibility'
    """
    smooth = (f"w2 {settings['smoothness_weight']:.3g} theta_gamma {settings['smoothness_xy']:.3g}"
              if settings["smoothness_weight"] > 0 else "no smoothness kernel")  # fmt: skip
    window = settings["window"]
    window = window[0] if isinstance(window, (list, tuple)) and window[0] == window[1] else window
    compatibility = settings["compatibility"]
    compatibility = compatibility if isinstance(compatibility, str) else "learned matrix"
    return (f"window {window} downsample {settings['downsample']}, w1 "
            f"{settings['appearance_weight']:.3g} theta_alpha {settings['appearance_xy']:.3g} "
            f"theta_beta {settings['appearance_rgb']:.3g}, {smooth}, {compatibility} "
            "compatibility")  # fmt: skip


class FrozenFCN(keras.layers.Layer):
    """A trained FCN as a layer: called in inference mode at its input scale, logits at the image size.

    Built and used inside `fine_tune_crf` only (never saved: what is kept of
    a fine-tuning are the CRF's settings), so it is not registered for
    serialization.

    What `fine_tune_crf` puts under the CRF: the FCN's weights stay as they
    are (`trainable` off while fine-tuning), dropout is off, and a model
    trained at reduced scale sees its images the way it predicts
    (`fcn_keras.evaluation.scaled_logits`).

    Args:
        fcn: the FCN `keras.Model`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> image = keras.Input((256, 352, 3), dtype="uint8")
    >>> frozen = FCNModel(image, FrozenFCN(fcn)(image))   # the FCN under a CRF being trained
    """

    def __init__(self, fcn, **kwargs):
        super().__init__(**kwargs)
        self.fcn = fcn

    def call(self, images):
        from fcn_keras.evaluation import input_scale_of, scaled_logits

        return scaled_logits(lambda x: self.fcn(x, training=False), images, input_scale_of(self.fcn))

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:3], int(self.fcn.outputs[0].shape[-1]))


def fine_tune_crf(fcn, settings, train_data, tuning, *, steps, checkpoint, learning_rate=1e-2,
                  ignore_label=255, batch_size=4, log=None):  # fmt: skip
    """Train the CRF of `with_crf(frozen FCN, compatibility="learned")` end to end; keep the best step.

    The FCN is frozen (`trainable = False` while training, restored after)
    and runs in inference mode at its input scale (`FrozenFCN`) inside a
    model on the training crops; Adam on the softmax cross-entropy (void
    ignored). The split mean IU of the CRF layer on `tuning`'s cached logits
    at step 0 (the starting settings) and every `checkpoint` steps chooses
    the step count: the layer ends with the weights of the best checkpoint.

    Args:
        fcn: the trained FCN `keras.Model`.
        settings: the starting `DenseCRF` options (e.g. `tune_crf`'s choice);
            `compatibility` becomes `"learned"`.
        train_data: a repeating `tf.data.Dataset` of `(uint8 images, masks)`
            batches of one fixed crop size (e.g. `fcn_keras.load_dataset(...,
            crop_size=..., repeat=True)`).
        tuning: `(images, logits, labels)` arrays of the split that chooses
            the step (as `tune_crf` takes them).
        steps: training steps; a multiple of `checkpoint`.
        checkpoint: steps between two evaluations on `tuning`.
        learning_rate: Adam learning rate (the CRF's parameters are log
            weights, log bandwidths and the compatibility matrix, all O(1)).
            Defaults to 1e-2.
        ignore_label: void label. Defaults to 255.
        batch_size: images per CRF call on `tuning`. Defaults to 4.
        log: optional `print`-like progress function. Defaults to None.

    Returns:
        `(layer, record)`: the trained `DenseCRF` and a dict with `curve`
        (`{"step", "val_mean_iu", "val_pixel_accuracy"}` per checkpoint),
        `chosen_step`, `val_mean_iu`, `train_loss_per_checkpoint`, `seconds`,
        `seconds_per_step` (after the first checkpoint, whose time includes
        tracing) and `settings` (the layer's final `settings()`).

    Example:
    >>> layer, record = fine_tune_crf(fcn, tuned["settings"], train, (images, logits, labels),
    ...                               steps=240, checkpoint=60)
    >>> save_crf_settings(layer, "runs/fcn8s/final.keras.crf.json")

    Reference: Zheng et al., ICCV 2015 (CRF-as-RNN, end-to-end training).
    """
    import time

    from fcn_keras.losses import SegmentationCrossEntropy
    from fcn_keras.models import FCNModel

    if checkpoint < 1 or steps < checkpoint or steps % checkpoint:
        raise ValueError(f"fine_tune_crf: steps ({steps}) must be a positive multiple of checkpoint "
                         f"({checkpoint}).")  # fmt: skip
    crop_h, crop_w = (int(v) for v in train_data.element_spec[0].shape[1:3])
    was_trainable, fcn.trainable = fcn.trainable, False
    image = keras.Input(shape=(crop_h, crop_w, 3), dtype=fcn.inputs[0].dtype, name="image")
    frozen = FCNModel(image, FrozenFCN(fcn, name="frozen_fcn")(image), name=fcn.name)
    model = with_crf(frozen, **{**settings, "compatibility": "learned"})
    crf = model.get_layer("crf")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=SegmentationCrossEntropy(ignore_label=ignore_label))  # fmt: skip
    images, logits, labels = tuning
    evaluator = TracedCRF(crf.num_classes, crf.settings(), images.shape[1:3], layer=crf)
    curve, history, fit_seconds = [], [], []

    def evaluate_step(step):
        scores = split_scores(evaluator.classes, images, logits, labels, ignore_label=ignore_label,
                              batch_size=batch_size)  # fmt: skip
        curve.append({"step": step, "val_mean_iu": scores["mean_iu"],
                      "val_pixel_accuracy": scores["pixel_accuracy"]})  # fmt: skip
        if log:
            log(f"  fine-tuning step {step}: mean IU {100 * scores['mean_iu']:.2f}")
        return scores["mean_iu"]

    best = [evaluate_step(0), 0, crf.get_weights()]
    chunks = steps // checkpoint

    class Checkpoints(keras.callbacks.Callback):
        """Split mean IU after every `checkpoint` steps (one Keras epoch): keeps the best weights."""

        def on_epoch_begin(self, epoch, logs=None):
            self.begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            fit_seconds.append(time.perf_counter() - self.begin)
            history.append(float(logs["loss"]))
            if epoch == 0 and chunks > 1 and log:
                log(f"  fine-tuning: first {checkpoint} steps in {fit_seconds[0]:.0f} s (tracing "
                    f"included); the rest about {(chunks - 1) * fit_seconds[0] / 60:.1f} min at most")  # fmt: skip
            step = (epoch + 1) * checkpoint
            miou = evaluate_step(step)
            if miou > best[0]:
                best[:] = [miou, step, crf.get_weights()]

    # One fit, one iterator over the (infinite) training data: every step sees new crops.
    start = time.perf_counter()
    try:
        model.fit(train_data, steps_per_epoch=checkpoint, epochs=chunks, verbose=0, shuffle=False,
                  callbacks=[Checkpoints()])  # fmt: skip
    finally:
        fcn.trainable = was_trainable
    seconds = time.perf_counter() - start
    crf.set_weights(best[2])
    timed = fit_seconds[1:] or fit_seconds
    record = {"curve": curve, "chosen_step": best[1], "val_mean_iu": best[0],
              "train_loss_per_checkpoint": history, "seconds": seconds,
              "seconds_per_step": sum(timed) / (len(timed) * checkpoint),
              "settings": crf.settings()}  # fmt: skip
    return crf, record
