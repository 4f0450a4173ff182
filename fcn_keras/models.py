"""FCN-32s, FCN-16s and FCN-8s builders on Keras Applications' VGG16.

Each builder returns a functional `keras.Model` that takes raw RGB images of
any size, `(batch, H, W, 3)` in [0, 255], and returns per-pixel class logits of
exactly `(batch, H, W, num_classes)` in float32 (also under mixed precision).

Architecture (Long et al. 2015, Section 4.2 and Figure 3):

    image -> CaffePreprocess -> PadToMultiple(32) -> VGG16 conv1..pool5
          -> fc6 (7x7 conv, 4096) -> fc7 (1x1 conv, 4096) -> score_fr (1x1)
    FCN-32s: score_fr -> upscore32 (x32)
    FCN-16s: score_fr -> upscore2 (x2) + score_pool4 -> upscore16 (x16)
    FCN-8s:  ... fuse_pool4 -> upscore_pool4 (x2) + score_pool3 -> upscore8 (x8)
          -> CropToReference(image) -> logits

Score layers (`score_fr`, `score_pool4`, `score_pool3`) start at zero; every
upsampling starts as bilinear interpolation and is fixed unless
`trainable_upsampling=True`. Layer names follow the reference Caffe
implementation and are a stable contract (weights files, staged training).
"""

import os

import keras

from fcn_keras.backbone import load_backbone_weights, vgg16_features
from fcn_keras.choices import HEAD_FC_UNITS, HEADS  # head name -> fc6 kernel, default width
from fcn_keras.data.info import DatasetInfo
from fcn_keras.geometry import CropToReference, PadToMultiple
from fcn_keras.preprocessing import CaffePreprocess
from fcn_keras.upsampling import upsampling_layer

__all__ = ["FCN32s", "FCN16s", "FCN8s", "build_fcn", "FCNModel", "variant_of", "head_of",
           "checked_input_scale", "VARIANTS", "HEADS"]

# Variant name -> strides of the skip connections it fuses, coarsest first.
VARIANTS = {"fcn32s": (), "fcn16s": (16,), "fcn8s": (16, 8)}

# Skip-input scaling of the "at-once" FCN-8s (reference: voc-fcn8s-atonce).
AT_ONCE_SKIP_SCALES = {16: 0.01, 8: 0.0001}

_SKIP_NAMES = {16: "pool4", 8: "pool3"}



@keras.saving.register_keras_serializable(package="fcn_keras")
class FCNModel(keras.Model):
    """A functional FCN that carries the facts of the data it was trained on.

    Exactly a functional `keras.Model` (same layers, same call), plus
    `dataset_info`: the `DatasetInfo` (class names, ignore label, palette) of
    its training data, or None. It is saved in the `.keras` file's config, so
    evaluation, export and prediction read the classes, the void label and
    the colours from the model instead of asking the user to retype them.
    `fcn_keras.train` sets it; every builder returns an `FCNModel`.

    `input_scale`: the factor the training images were resized by (a model
    trained at reduced scale, e.g. 0.5), or None when not recorded (full
    size). Saved the same way; evaluation and prediction
    (`fcn_keras.evaluation.scaled_logits`, `fcn_keras.export.Predictor`) shrink
    the images by it and bring the logits back to the image size, and the
    exporters write it into every artifact's metadata.

    Args:
        *args, **kwargs: those of a functional `keras.Model` (inputs, outputs, name).
        dataset_info: a `fcn_keras.DatasetInfo`, its `to_config()` dict, or None.
            Defaults to None.
        input_scale: a float in (0, 1], or None. Defaults to None.

    Example:
    >>> model = fcn_keras.FCN8s(num_classes=6, backbone_weights=None, fc_units=64)
    >>> model.dataset_info = fcn_keras.dataset_info("synthetic")
    >>> model.save("m.keras")
    >>> keras.saving.load_model("m.keras").dataset_info.class_names[:2]
    ('background', 'disc')
    """

    def __init__(self, *args, dataset_info=None, input_scale=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.dataset_info = dataset_info
        self.input_scale = input_scale

    @property
    def input_scale(self):
        """The resize factor of the training images (float in (0, 1]), or None when not recorded."""
        return self._input_scale

    @input_scale.setter
    def input_scale(self, scale):
        object.__setattr__(self, "_input_scale", checked_input_scale(scale, f"model {self.name!r}"))

    @property
    def dataset_info(self):
        """The `DatasetInfo` of the training data, or None (set it with a `DatasetInfo` or its dict)."""
        return self._dataset_info

    @dataset_info.setter
    def dataset_info(self, info):
        if isinstance(info, dict):
            info = DatasetInfo.from_config(info)
        if info is not None and not isinstance(info, DatasetInfo):
            raise ValueError(
                f"dataset_info must be a fcn_keras.DatasetInfo, its to_config() dict or "
                f"None; received {type(info).__name__}."
            )
        if info is not None:
            classes = self.outputs[0].shape[-1]
            if info.num_classes != classes:
                raise ValueError(
                    f"dataset_info {info.name!r} has {info.num_classes} classes but model "
                    f"{self.name!r} outputs {classes}."
                )
        object.__setattr__(self, "_dataset_info", info)

    def get_config(self):
        config = super().get_config()
        config["dataset_info"] = None if self.dataset_info is None else self.dataset_info.to_config()
        config["input_scale"] = self.input_scale
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        info = config.pop("dataset_info", None)
        scale = config.pop("input_scale", None)
        # keras.Model.from_config rebuilds a functional graph for a subclass whose
        # constructor takes (*args, **kwargs), as this one does.
        model = super().from_config(config, custom_objects=custom_objects)
        model.dataset_info = info
        model.input_scale = scale
        return model


def checked_input_scale(scale, what="input_scale"):
    """`scale` as a float in (0, 1], or None; anything else is a `ValueError` naming `what`.

    Args:
        scale: an input scale (a number, or None for "not recorded").
        what: how to name its owner in the error. Defaults to `"input_scale"`.

    Returns:
        A float, or None.

    Example:
    >>> checked_input_scale(0.5), checked_input_scale(None)
    (0.5, None)
    """
    if scale is None:
        return None
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(scale, bool) or not 0 < value <= 1:
        raise ValueError(f"{what}: input_scale must be a number in (0, 1] or None; received {scale!r}.")
    return value


def variant_of(model):
    """Name the FCN variant of a model from its layers (the names are a stable contract).

    Args:
        model: a `keras.Model` built by this package (or loaded from its `.keras`).

    Returns:
        `"fcn32s"`, `"fcn16s"`, `"fcn8s"` or `"fcn8s_atonce"`.

    Raises:
        ValueError: the model has no FCN upsampling head (`upscore32/16/8`).

    Example:
    >>> variant_of(fcn_keras.FCN16s(num_classes=12, backbone_weights=None))
    'fcn16s'
    """
    names = {layer.name for layer in model.layers}
    for variant, marker in (("fcn32s", "upscore32"), ("fcn16s", "upscore16"),
                            ("fcn8s", "upscore8")):  # fmt: skip
        if marker in names:
            return variant + ("_atonce" if "scale_pool3" in names else "")
    raise ValueError(
        f"model {model.name!r} is not an fcn_keras FCN: it has no upscore32/16/8 layer."
    )


def head_of(model):
    """Name the fc6 head of an FCN from its kernel size (see `HEADS`).

    Args:
        model: a `keras.Model` built by this package (or loaded from its `.keras`).

    Returns:
        `"paper"` (7x7 fc6) or `"mobile"` (3x3 fc6).

    Raises:
        ValueError: the model's fc6 has a kernel size no head builds.

    Example:
    >>> head_of(fcn_keras.FCN8s(num_classes=11, backbone_weights=None, head="mobile"))
    'mobile'
    """
    size = model.get_layer("fc6").kernel_size[0]
    for head, kernel in HEADS.items():
        if kernel == size:
            return head
    raise ValueError(f"model {model.name!r} has a {size}x{size} fc6; no head in {HEADS} builds it.")


def resolve_fc_units(head, fc_units):
    """`fc_units` as given, or the head's default width (`HEAD_FC_UNITS`) when None."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {sorted(HEADS)}; received {head!r}.")
    return HEAD_FC_UNITS[head] if fc_units is None else fc_units


def _validate(num_classes, input_shape, fc_units, dropout):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2 (background plus at least one "
            f"class); received {num_classes!r}."
        )
    if input_shape is None or len(input_shape) != 3:
        raise ValueError(
            "input_shape must be (height, width, 3), with height/width None for "
            f"any size; received {input_shape!r}."
        )
    if input_shape[-1] != 3:
        raise ValueError(
            "FCN models take RGB images: input_shape must end in 3 channels; "
            f"received input_shape={tuple(input_shape)!r}."
        )
    for size in input_shape[:2]:
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(
                "input_shape height and width must be positive integers or None; "
                f"received input_shape={tuple(input_shape)!r}."
            )
    if isinstance(fc_units, bool) or not isinstance(fc_units, int) or fc_units < 1:
        raise ValueError(
            f"fc_units must be a positive integer (4096 in the paper); received {fc_units!r}."
        )
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a rate in [0, 1); received {dropout!r}.")


def _load_fcn_weights(model, weights):
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(
            f"weights file not found: {path!r}. Expected the path to a whole FCN's "
            "weights saved with model.save_weights(...) ('.weights.h5') or a '.keras' file."
        )
    try:
        if path.endswith(".keras"):
            source = keras.saving.load_model(path, compile=False)
            for layer in model.layers:
                if layer.weights:
                    layer.set_weights(source.get_layer(layer.name).get_weights())
        else:
            model.load_weights(path)
    except Exception as e:
        raise ValueError(
            f"weights file {path!r} does not fit model {model.name!r} "
            f"({model.get_layer('score_fr').filters} classes, fc_units="
            f"{model.get_layer('fc6').filters}): {e}"
        ) from e


def _build(
    variant,
    num_classes,
    input_shape,
    backbone_weights,
    weights,
    fc_units,
    dropout,
    trainable_upsampling,
    at_once=False,
    head="paper",
    name=None,
):
    """Wire an FCN variant; the public builders are thin wrappers around this."""
    fc_units = resolve_fc_units(head, fc_units)
    _validate(num_classes, input_shape, fc_units, dropout)
    skip_strides = VARIANTS[variant]

    # === Inputs and preprocessing ===
    image = keras.Input(shape=tuple(input_shape), name="image")
    x = CaffePreprocess(name="preprocess")(image)
    x = PadToMultiple(32, name="pad_to_32")(x)

    # === Encoder: VGG16 and its convolutionalized classifier ===
    features = vgg16_features(x)
    x = keras.layers.Conv2D(fc_units, HEADS[head], padding="same", activation="relu", name="fc6")(
        features[32]
    )
    x = keras.layers.Dropout(dropout, name="drop6")(x)
    x = keras.layers.Conv2D(fc_units, 1, activation="relu", name="fc7")(x)
    x = keras.layers.Dropout(dropout, name="drop7")(x)
    scores = keras.layers.Conv2D(
        num_classes, 1, kernel_initializer="zeros", name="score_fr"
    )(x)

    # === Decoder: skip fusions, coarse to fine ===
    stride = 32
    for skip_stride in skip_strides:
        skip_name = _SKIP_NAMES[skip_stride]
        upscore_name = "upscore2" if stride == 32 else f"upscore_{_SKIP_NAMES[stride]}"
        scores = upsampling_layer(
            num_classes, stride // skip_stride, trainable_upsampling, upscore_name
        )(scores)
        skip = features[skip_stride]
        if at_once:
            skip = keras.layers.Rescaling(
                AT_ONCE_SKIP_SCALES[skip_stride], name=f"scale_{skip_name}"
            )(skip)
        skip_scores = keras.layers.Conv2D(
            num_classes, 1, kernel_initializer="zeros", name=f"score_{skip_name}"
        )(skip)
        scores = keras.layers.Add(name=f"fuse_{skip_name}")([scores, skip_scores])
        stride = skip_stride

    scores = upsampling_layer(num_classes, stride, trainable_upsampling, f"upscore{stride}")(
        scores
    )
    logits = CropToReference(name="logits", dtype="float32")([scores, image])

    # === Functional model ===
    model = FCNModel(image, logits, name=name or variant + ("_atonce" if at_once else ""))
    if backbone_weights is not None:
        load_backbone_weights(model, backbone_weights, fc_units, head=head)
    if weights is not None:
        _load_fcn_weights(model, weights)
    return model


_ARGS_DOC = """
    Args:
        num_classes: int >= 2, number of classes including background.
            Defaults to 21 (PASCAL VOC).
        input_shape: `(height, width, 3)`; height and width may be `None`
            for any size. Defaults to `(None, None, 3)`.
        backbone_weights: `"imagenet"` (downloads Keras's VGG16 weights with
            the classifier, carried into fc6/fc7), `None` (random), or the path
            to a `keras.applications.VGG16` weights file with or without top.
            Defaults to `"imagenet"`.
        weights: optional path to a whole FCN's weights (`.weights.h5` from
            `model.save_weights`, or a `.keras` file), loaded last.
        fc_units: width of fc6/fc7, or None for the head's width. Defaults to
            None: 4096 as in the paper (512 with `head="mobile"`); other widths
            cannot carry VGG16's classifier.
        dropout: dropout rate after fc6 and fc7. Defaults to 0.5.
        trainable_upsampling: whether the bilinear-initialised upsampling
            layers are learned. Defaults to `False` (fixed, as in the
            reference implementation).
        head: `"paper"` (fc6 a 7x7 convolution, VGG16's fc1) or `"mobile"`
            (fc6 a 3x3 convolution, fc_units 512 unless given: the FCN an app
            ships, about 17M parameters). Defaults to `"paper"`.
        name: optional model name."""


def FCN32s(
    num_classes=21,
    input_shape=(None, None, 3),
    backbone_weights="imagenet",
    weights=None,
    fc_units=None,
    dropout=0.5,
    trainable_upsampling=False,
    head="paper",
    name=None,
):
    return _build(
        "fcn32s", num_classes, input_shape, backbone_weights, weights, fc_units,
        dropout, trainable_upsampling, head=head, name=name,
    )  # fmt: skip


def FCN16s(
    num_classes=21,
    input_shape=(None, None, 3),
    backbone_weights="imagenet",
    weights=None,
    fc_units=None,
    dropout=0.5,
    trainable_upsampling=False,
    head="paper",
    name=None,
):
    return _build(
        "fcn16s", num_classes, input_shape, backbone_weights, weights, fc_units,
        dropout, trainable_upsampling, head=head, name=name,
    )  # fmt: skip


def FCN8s(
    num_classes=21,
    input_shape=(None, None, 3),
    backbone_weights="imagenet",
    weights=None,
    fc_units=None,
    dropout=0.5,
    trainable_upsampling=False,
    at_once=False,
    head="paper",
    name=None,
):
    return _build(
        "fcn8s", num_classes, input_shape, backbone_weights, weights, fc_units,
        dropout, trainable_upsampling, at_once=at_once, head=head, name=name,
    )  # fmt: skip


FCN32s.__doc__ = f"""Build FCN-32s: VGG16, fc6/fc7 as convolutions, one x32 bilinear upsampling.
{_ARGS_DOC}

    Returns:
        A `keras.Model` from `(batch, H, W, 3)` RGB in [0, 255] to
        `(batch, H, W, num_classes)` float32 logits.

    Example:
    >>> model = fcn_keras.FCN32s(num_classes=12, backbone_weights=None)
    >>> model(np.zeros((1, 97, 131, 3), "uint8")).shape
    TensorShape([1, 97, 131, 12])

    Reference: Long et al. 2015, Section 4.1 and Figure 3 (FCN-32s).
"""

FCN16s.__doc__ = f"""Build FCN-16s: FCN-32s plus a fused skip from pool4, x16 upsampling.
{_ARGS_DOC}

    Returns:
        A `keras.Model` from `(batch, H, W, 3)` RGB in [0, 255] to
        `(batch, H, W, num_classes)` float32 logits.

    Example:
    >>> model = fcn_keras.FCN16s(num_classes=12, backbone_weights=None)

    Reference: Long et al. 2015, Section 4.2 and Figure 3 (FCN-16s).
"""

FCN8s.__doc__ = f"""Build FCN-8s: FCN-16s plus a fused skip from pool3, x8 upsampling.
{_ARGS_DOC}
        at_once: build the "at-once" FCN-8s, trained in one stage, which
            scales the pool4 and pool3 inputs of the skip score layers by 0.01
            and 0.0001. Defaults to `False` (the staged FCN-8s).

    Returns:
        A `keras.Model` from `(batch, H, W, 3)` RGB in [0, 255] to
        `(batch, H, W, num_classes)` float32 logits.

    Example:
    >>> model = fcn_keras.FCN8s(num_classes=21, backbone_weights=None)
    >>> model.count_params()
    134489759

    Reference: Long et al. 2015, Section 4.2 and Figure 3 (FCN-8s); Shelhamer
    et al. 2016 (PAMI), Section 4 for the at-once variant.
"""

_BUILDERS = {"fcn32s": FCN32s, "fcn16s": FCN16s, "fcn8s": FCN8s}


def normalize_variant(variant):
    """Map `"FCN-8s"`, `"fcn_8s"`, `"8s"` ... onto `"fcn8s"`; raise on anything else."""
    key = str(variant).lower().replace("-", "").replace("_", "")
    if not key.startswith("fcn"):
        key = "fcn" + key
    if key not in _BUILDERS:
        raise ValueError(
            f"Unknown FCN variant {variant!r}; expected one of {sorted(_BUILDERS)}."
        )
    return key


def build_fcn(variant, **kwargs):
    """Build an FCN variant by name.

    Args:
        variant: `"fcn32s"`, `"fcn16s"` or `"fcn8s"` (case, `-` and `_` are
            ignored, so `"FCN-8s"` works).
        **kwargs: arguments of `FCN32s` / `FCN16s` / `FCN8s`.

    Returns:
        The `keras.Model` built by that variant's builder.

    Example:
    >>> model = fcn_keras.build_fcn("fcn16s", num_classes=12, backbone_weights=None)
    """
    return _BUILDERS[normalize_variant(variant)](**kwargs)
