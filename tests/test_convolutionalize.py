"""Adapting classifiers for dense prediction: VGG16's fc layers as convolutions, and weight loading."""

import h5py
import keras
import numpy as np
import pytest

import fcn_keras
from fcn_keras.backbone import VGG16_CONV_LAYERS
from fcn_keras.convolutionalize import dense_to_conv_kernel


def _images(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("float32")


def _close(actual, expected):
    # fp32 sums over 25088 (fc6) terms in a different order: relative to the scale.
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)


@pytest.mark.slow
def test_convolutionalized_vgg16_equals_the_dense_classifier(vgg16_with_top):
    vgg, _ = vgg16_with_top
    heatmap = fcn_keras.convolutionalize_vgg16(vgg)
    preprocess = keras.applications.vgg16.preprocess_input

    x224 = preprocess(_images((1, 224, 224, 3), 0))
    scores = keras.ops.convert_to_numpy(heatmap(x224))
    assert scores.shape == (1, 1, 1, 1000)
    _close(scores[0, 0, 0], keras.ops.convert_to_numpy(vgg(x224))[0])

    # A larger image gives a spatial map; cell (i, j) is the dense classifier applied to the
    # 7x7 window of pool5 features at (i, j), i.e. the 224x224 field of view at (32i, 32j).
    # (It is not exactly the classifier run on that crop alone: VGG16's 3x3 convolutions
    # zero-pad a crop but see real neighbours inside a larger image.)
    big = preprocess(_images((1, 288, 320, 3), 1))
    score_map = keras.ops.convert_to_numpy(heatmap(big))
    assert score_map.shape == (1, 3, 4, 1000)
    body = vgg.layers[1 : vgg.layers.index(vgg.get_layer("block5_pool")) + 1]
    pool5 = keras.ops.convert_to_numpy(keras.Sequential([keras.Input((None, None, 3)), *body])(big))
    head = keras.Sequential([vgg.get_layer(name) for name in ("flatten", "fc1", "fc2", "predictions")])
    for i, j in [(0, 0), (2, 3), (1, 2)]:
        window = pool5[:, i : i + 7, j : j + 7, :]
        _close(score_map[0, i, j], keras.ops.convert_to_numpy(head(window))[0])


@pytest.mark.slow
def test_fcn_carries_the_classifier_into_fc6_and_fc7(vgg16_with_top):
    vgg, path = vgg16_with_top
    fcn = fcn_keras.FCN32s(num_classes=3, backbone_weights=path)
    kernel, bias = vgg.get_layer("fc1").get_weights()
    np.testing.assert_array_equal(fcn.get_layer("fc6").get_weights()[0], dense_to_conv_kernel(kernel, (7, 7), 512))
    np.testing.assert_array_equal(fcn.get_layer("fc6").get_weights()[1], bias)
    for name in VGG16_CONV_LAYERS:
        np.testing.assert_array_equal(fcn.get_layer(name).get_weights()[0], vgg.get_layer(name).get_weights()[0])

    # On a 224x224 image the centre of fc7 is VGG16's fc2 (raw RGB in: preprocessing is inside the FCN).
    image = _images((1, 224, 224, 3), 2)
    fc7 = keras.Model(fcn.input, fcn.get_layer("fc7").output)(image)
    fc2 = keras.Model(vgg.input, vgg.get_layer("fc2").output)(keras.applications.vgg16.preprocess_input(image.copy()))
    assert fc7.shape == (1, 7, 7, 4096)
    _close(keras.ops.convert_to_numpy(fc7)[0, 3, 3], keras.ops.convert_to_numpy(fc2)[0])


@pytest.mark.slow
def test_narrow_fc_layers_warn_that_the_classifier_is_not_carried(vgg16_with_top):
    vgg, path = vgg16_with_top
    with pytest.warns(UserWarning, match="fc_units=64 differs from VGG16's 4096: fc6/fc7 keep their random"):
        fcn = fcn_keras.FCN8s(num_classes=3, backbone_weights=path, fc_units=64)
    np.testing.assert_array_equal(
        fcn.get_layer("block5_conv3").get_weights()[0], vgg.get_layer("block5_conv3").get_weights()[0]
    )


@pytest.mark.shared
def test_real_pretrained_notop_backbone_loads(vgg16_notop_weights):
    reference = keras.applications.VGG16(include_top=False, weights=str(vgg16_notop_weights), input_shape=(None, None, 3))
    fcn = fcn_keras.FCN8s(num_classes=12, backbone_weights=vgg16_notop_weights, fc_units=64)
    for name in VGG16_CONV_LAYERS:
        for got, expected in zip(fcn.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, expected)
    # The pretrained encoder responds to structure: pool5 features of an image differ from a flat one.
    encoder = keras.Model(fcn.input, fcn.get_layer("block5_pool").output)
    flat = keras.ops.convert_to_numpy(encoder(np.full((1, 64, 64, 3), 120.0, "float32")))
    textured = keras.ops.convert_to_numpy(encoder(_images((1, 64, 64, 3), 3)))
    assert np.abs(textured - flat).max() > 1.0


def test_weights_file_layout_decides_which_vgg16_reads_it(tmp_path):
    # A weights file's layout (with or without fc1/fc2) picks the VGG16 that loads it; these
    # files hold layer names but no weights, so loading fails naming the layout that was read.
    def build(path):
        return fcn_keras.FCN32s(num_classes=3, fc_units=8, backbone_weights=path)

    legacy = tmp_path / "legacy.h5"
    with h5py.File(legacy, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1", b"fc1", b"fc2", b"predictions"]
    with pytest.raises(ValueError, match=r"legacy\.h5' does not fit keras\.applications\.VGG16\(include_top=True\)"):
        build(legacy)
    legacy_notop = tmp_path / "legacy_notop.h5"
    with h5py.File(legacy_notop, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1", b"block5_pool"]
    with pytest.raises(ValueError, match=r"legacy_notop\.h5' does not fit .*VGG16\(include_top=False\)"):
        build(legacy_notop)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"other\.h5' is not a Keras weights file"):
        build(other)


def test_dense_to_conv_kernel_checks_the_shape():
    with pytest.raises(ValueError, match=r"Dense kernel of shape \(100, 8\) into a 7x7x512"):
        dense_to_conv_kernel(np.zeros((100, 8)), (7, 7), 512)
    with pytest.raises(ValueError, match="has no layers"):
        fcn_keras.convolutionalize_vgg16(keras.applications.VGG16(include_top=False, weights=None))
