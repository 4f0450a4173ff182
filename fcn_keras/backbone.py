"""The VGG16 encoder of every FCN and the loading of its pretrained weights.

The encoder is `keras.applications.VGG16(include_top=False)` itself, built on
the FCN's input tensor, so its layer names (`block3_pool`, `block4_pool`, ...)
are the stable contract the skip connections and weights files rely on.

Pretrained weights come from `"imagenet"` (Keras's download, with classifier)
or a local VGG16 weights file with or without the classifier (`fc1`, `fc2`):
the 13 convolutions are copied by name, and when the classifier is present it
becomes fc6/fc7 (see `convolutionalize.py`).
"""

import os
import warnings

import h5py
import keras

from fcn_keras.convolutionalize import VGG16_POOL5_GRID, dense_to_conv_kernel

__all__ = ["VGG16_CONV_LAYERS", "VGG16_SKIP_TAPS", "vgg16_features", "load_backbone_weights"]

VGG16_CONV_LAYERS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)  # fmt: skip

# Feature maps FCN reads, by output stride.
VGG16_SKIP_TAPS = {8: "block3_pool", 16: "block4_pool", 32: "block5_pool"}

# VGG16's fc1/fc2 width: the only fc_units that can carry pretrained classifier weights.
VGG16_FC_UNITS = 4096


def vgg16_features(x):
    """Run Keras Applications' VGG16 convolutional body on a tensor.

    Args:
        x: a symbolic `(batch, H, W, 3)` tensor of preprocessed BGR images
            whose H and W are multiples of 32.

    Returns:
        dict mapping output stride (8, 16, 32) to the pool3, pool4 and pool5
        feature tensors.
    """
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_tensor=x)
    return {stride: vgg.get_layer(name).output for stride, name in VGG16_SKIP_TAPS.items()}


def _weights_file_has_classifier(path):
    """Tell whether a VGG16 weights file holds the classifier (fc1/fc2)."""
    path = os.fspath(path)
    try:
        with h5py.File(path, "r") as f:
            if "layer_names" in f.attrs:  # Keras 2 / legacy HDF5 layout.
                names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
                return "fc1" in names
            if "layers" in f:  # Keras 3 `.weights.h5` layout.
                names = list(f["layers"].keys())
                return "fc1" in names or any(name.startswith("dense") for name in names)
    except OSError as e:
        raise ValueError(
            f"backbone_weights file {path!r} is not a readable HDF5 weights file: {e}"
        ) from e
    raise ValueError(
        f"backbone_weights file {path!r} is not a Keras weights file: expected a "
        "'layers' group (Keras 3 .weights.h5) or 'layer_names' (legacy .h5)."
    )


def _source_vgg16(backbone_weights):
    """Instantiate a VGG16 holding the requested pretrained weights."""
    if backbone_weights == "imagenet":
        try:
            return keras.applications.VGG16(include_top=True, weights="imagenet")
        except Exception as e:  # Keras raises a bare Exception on fetch failure.
            raise RuntimeError(
                "Could not load VGG16 ImageNet weights through Keras (they are "
                f"downloaded on first use and cached in ~/.keras/models): {e}\n"
                "Without network access, pass backbone_weights=PATH to a local "
                "VGG16 weights file (with or without the fc1/fc2 classifier, as "
                "keras.applications.VGG16 saves it), or backbone_weights=None "
                "to start from random weights."
            ) from e
    path = os.fspath(backbone_weights)
    if not os.path.isfile(path):
        raise ValueError(
            f"backbone_weights file not found: {path!r}. Expected 'imagenet', "
            "None, or the path to a keras.applications.VGG16 weights file."
        )
    has_classifier = _weights_file_has_classifier(path)
    try:
        if has_classifier:
            return keras.applications.VGG16(include_top=True, weights=path)
        return keras.applications.VGG16(
            include_top=False, weights=path, input_shape=(None, None, 3)
        )
    except Exception as e:
        raise ValueError(
            f"backbone_weights file {path!r} does not fit "
            f"keras.applications.VGG16(include_top={has_classifier}): {e}"
        ) from e


def load_backbone_weights(model, backbone_weights, fc_units, head="paper"):
    """Copy pretrained VGG16 weights into an FCN's encoder and, if present, fc6/fc7.

    Args:
        model: an FCN built by `fcn_keras.build_fcn`.
        backbone_weights: `"imagenet"`, or a path to a VGG16 weights file
            (Keras 3 `.weights.h5` or legacy `.h5`, with or without top).
        fc_units: width of the model's fc6/fc7. Classifier weights are carried
            over only when it is 4096, VGG16's width; otherwise a warning says
            that fc6/fc7 keep their random initialisation.
        head: the model's fc6 head (`fcn_keras.models.HEADS`); only the
            paper's 7x7 fc6 can carry VGG16's fc1. Defaults to `"paper"`.

    Returns:
        dict with `"conv_layers"` (number of convolutions loaded) and
        `"classifier"` (whether fc6/fc7 received VGG16's fc1/fc2).
    """
    source = _source_vgg16(backbone_weights)
    for name in VGG16_CONV_LAYERS:
        model.get_layer(name).set_weights(source.get_layer(name).get_weights())

    has_classifier = "fc1" in {layer.name for layer in source.layers}
    carried = has_classifier and fc_units == VGG16_FC_UNITS and head == "paper"
    if has_classifier and not carried:
        why = (f"head={head!r} has no 7x7 fc6" if head != "paper" else
               f"fc_units={fc_units} differs from VGG16's {VGG16_FC_UNITS}")
        warnings.warn(
            f"backbone_weights {backbone_weights!r} include VGG16's classifier, but "
            f"{why}: fc6/fc7 "
            "keep their random initialisation; only the 13 convolutions were loaded.",
            stacklevel=3,
        )
    if carried:
        fc1_kernel, fc1_bias = source.get_layer("fc1").get_weights()
        fc2_kernel, fc2_bias = source.get_layer("fc2").get_weights()
        pool5_channels = model.get_layer(VGG16_SKIP_TAPS[32]).output.shape[-1]
        model.get_layer("fc6").set_weights(
            [dense_to_conv_kernel(fc1_kernel, VGG16_POOL5_GRID, pool5_channels), fc1_bias]
        )
        model.get_layer("fc7").set_weights(
            [dense_to_conv_kernel(fc2_kernel, (1, 1), fc2_kernel.shape[0]), fc2_bias]
        )
    del source
    return {"conv_layers": len(VGG16_CONV_LAYERS), "classifier": carried}
