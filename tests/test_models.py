"""FCN builders: shapes on any input size, paper architecture, exact skip alignment, errors."""

import h5py
import keras
import numpy as np
import pytest

import fcn_keras
from fcn_keras.preprocessing import IMAGENET_BGR_MEAN
from tests.conftest import assert_close
from tests.test_upsampling import _reference_bilinear

VARIANTS = ["fcn32s", "fcn16s", "fcn8s"]


@pytest.fixture(scope="module")
def tiny_models():
    """One reduced-width model per variant, shared by the shape tests."""
    return {v: fcn_keras.build_fcn(v, num_classes=5, backbone_weights=None, fc_units=16) for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(33, 47), (97, 131), (32, 64), (1, 1)])
def test_any_input_size_gives_logits_of_the_same_size(tiny_models, variant, size):
    images = np.random.default_rng(0).integers(0, 256, (2, *size, 3), dtype=np.uint8)
    logits = tiny_models[variant](images)
    assert tuple(logits.shape) == (2, *size, 5)
    assert logits.dtype == "float32"


def test_large_odd_input(tiny_models):
    logits = tiny_models["fcn8s"](np.zeros((1, 375, 500, 3), np.uint8))
    assert tuple(logits.shape) == (1, 375, 500, 5)


def test_static_input_shape_is_kept():
    model = fcn_keras.FCN16s(num_classes=3, input_shape=(97, 131, 3), backbone_weights=None, fc_units=8)
    assert model.output_shape == (None, 97, 131, 3)


def test_uint8_and_float_inputs_agree(small_fcn):
    model = small_fcn("fcn8s")
    images = np.random.default_rng(1).integers(0, 256, (1, 40, 56, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(images)),
        keras.ops.convert_to_numpy(model(images.astype("float32"))),
    )


def test_preprocessing_matches_keras_vgg16_preprocess_input():
    images = np.random.default_rng(2).uniform(0, 255, (2, 5, 7, 3)).astype("float32")
    layer = fcn_keras.CaffePreprocess()
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    assert_close(keras.ops.convert_to_numpy(layer(images)), expected, 1e-6)  # values up to ~150


def _vgg16_params():
    channels = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # fmt: skip
    return sum(9 * cin * cout + cout for cin, cout in channels)


# The paper's width (4096, 134M weights for FCN-8s) builds in seconds on a quiet CPU and
# holds 0.5 GB: slow; a narrow fc checks the same formula layer by layer.
@pytest.mark.parametrize("fc", [32, pytest.param(4096, marks=pytest.mark.slow)])
@pytest.mark.parametrize(
    "variant, skips, upsamplings",
    [("fcn32s", [], [32]), ("fcn16s", [512], [2, 16]), ("fcn8s", [512, 256], [2, 2, 8])],
)
def test_parameter_count_follows_the_paper(variant, skips, upsamplings, fc):
    c = 21
    expected = (
        _vgg16_params()
        + 7 * 7 * 512 * fc + fc  # fc6: VGG16 fc1 as a 7x7 convolution
        + fc * fc + fc  # fc7
        + fc * c + c  # score_fr
        + sum(cin * c + c for cin in skips)  # score_pool4, score_pool3
        + sum((2 * f) ** 2 * c * c for f in upsamplings)  # bilinear deconvolutions, no bias
    )
    width = None if fc == 4096 else fc  # the paper head's default width is 4096
    model = fcn_keras.build_fcn(variant, num_classes=c, backbone_weights=None, fc_units=width)
    assert model.count_params() == expected
    if variant == "fcn8s" and fc == 4096:
        assert expected == 134_489_759  # "134M" in Table 1 of the paper


def test_initial_state_zero_scores_and_fixed_bilinear_upsampling(tiny_models):
    model = tiny_models["fcn8s"]
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert all(not np.any(w) for w in model.get_layer(name).get_weights())
    for name, size in (("upscore2", 4), ("upscore_pool4", 4), ("upscore8", 16)):
        layer = model.get_layer(name)
        assert not layer.trainable
        (kernel,) = layer.get_weights()
        np.testing.assert_array_equal(kernel[:, :, 2, 2], fcn_keras.bilinear_kernel(size))
        assert not np.any(kernel[:, :, 1, 2])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(np.ones((1, 40, 40, 3)))), 0.0)
    trainable = fcn_keras.FCN8s(num_classes=5, backbone_weights=None, fc_units=16, trainable_upsampling=True)
    assert trainable.get_layer("upscore8").trainable
    assert len(trainable.trainable_weights) == len(model.trainable_weights) + 3


def test_at_once_fcn8s_scales_the_skip_inputs():
    model = fcn_keras.FCN8s(num_classes=4, backbone_weights=None, fc_units=16, at_once=True)
    assert model.get_layer("scale_pool4").scale == 0.01
    assert model.get_layer("scale_pool3").scale == 0.0001
    assert model.name == "fcn8s_atonce"


# --- Geometry: skip fusions are aligned with the image, not only shape-compatible ---


def _set_identity_weights(model, active_score):
    """Make every layer pass channel 0 (the blue channel after preprocessing) straight through.

    Convolutions get a single centre tap 1 from input channel 0 to output channel 0,
    so (with ReLU and max pooling) a 0/1 indicator image stays the same indicator at
    every stride; only `active_score` maps channel 0 to class 1.
    """
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D) or isinstance(layer, keras.layers.Conv2DTranspose):
            continue
        kernel, bias = (np.zeros(w.shape, np.float32) for w in layer.get_weights())
        kh, kw = kernel.shape[:2]
        if layer.name.startswith("score_"):
            if layer.name == active_score:
                kernel[0, 0, 0, 1] = 1.0
        else:
            kernel[kh // 2, kw // 2, 0, 0] = 1.0
        layer.set_weights([kernel, bias])


def _square_image(h, w, top, left, side):
    """Mean-coloured image (0 after preprocessing) with a square 1 higher in blue."""
    image = np.empty((1, h, w, 3), np.float32)
    image[...] = IMAGENET_BGR_MEAN[::-1]  # RGB order
    image[0, top : top + side, left : left + side, 2] += 1.0
    return image


@pytest.mark.parametrize(
    "variant, branch, chain",
    [
        ("fcn32s", "score_fr", (32, [32])),
        ("fcn16s", "score_fr", (32, [2, 16])),
        ("fcn16s", "score_pool4", (16, [16])),
        ("fcn8s", "score_fr", (32, [2, 2, 8])),
        ("fcn8s", "score_pool4", (16, [2, 8])),
        ("fcn8s", "score_pool3", (8, [8])),
    ],
)
@pytest.mark.parametrize("size", [(192, 224), (150, 181)])
def test_skip_fusions_are_aligned_with_the_image(variant, branch, chain, size):
    """Each branch alone must put a square object's boundary exactly on the object.

    A square covering image pixels [64, 128) is an indicator on cells [64/s, 128/s)
    of every stride-s map. Upsampled by half-pixel-centred bilinear interpolation
    (cell j centred on pixel s*j + (s-1)/2), its profile crosses 0.5 exactly at the
    square's edges, pixels 63.5 and 127.5, whichever branch it travels through; a
    misaligned fusion or crop would shift that crossing by whole pixels. The logits
    must also equal the analytic interpolation everywhere (borders and padding included).
    """
    h, w = size
    model = fcn_keras.build_fcn(variant, num_classes=2, backbone_weights=None, fc_units=4, dropout=0.0)
    _set_identity_weights(model, branch)
    logits = keras.ops.convert_to_numpy(model(_square_image(h, w, 64, 64, 64)))[0, :, :, 1]

    stride, factors = chain
    cells_h, cells_w = -(-h // 32) * 32 // stride, -(-w // 32) * 32 // stride
    scores = np.zeros((cells_h, cells_w))
    scores[64 // stride : 128 // stride, 64 // stride : 128 // stride] = 1.0
    for factor in factors:
        scores = _reference_bilinear(_reference_bilinear(scores, factor).T, factor).T
    np.testing.assert_allclose(logits, scores[:h, :w], atol=1e-5)  # an indicator's interpolation: in [0, 1]

    for profile in (logits[96, :], logits[:, 96]):
        inside = np.flatnonzero(profile > 0.5)
        assert (inside.min(), inside.max()) == (64, 127)
        assert profile[63] < 0.5 < profile[64] and profile[127] > 0.5 > profile[128]
        np.testing.assert_allclose(profile[63] + profile[64], 1.0, atol=1e-5)  # symmetric about 63.5


# --- Training and serialization ---


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_fit_runs_a_step_and_changes_the_scores(tiny_models, variant):
    model = fcn_keras.build_fcn(variant, num_classes=5, backbone_weights=None, fc_units=16)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
    )
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (4, 48, 40, 3), dtype=np.uint8)
    masks = rng.integers(0, 5, (4, 48, 40)).astype("int32")
    masks[:, :4] = 255
    history = model.fit(images, masks, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.any(model.get_layer("score_fr").get_weights()[1])



def test_weights_argument_loads_a_whole_fcn(small_fcn, tmp_path):
    model = small_fcn("fcn16s", num_classes=4)
    path = tmp_path / "fcn16s.weights.h5"
    model.save_weights(path)
    keras_path = tmp_path / "fcn16s.keras"
    model.save(keras_path)
    images = np.random.default_rng(5).integers(0, 256, (1, 50, 60, 3), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(model(images))
    for weights in (path, str(keras_path)):
        loaded = fcn_keras.FCN16s(num_classes=4, backbone_weights=None, fc_units=32, weights=weights)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(images)), expected)


def test_mixed_precision_keeps_float32_logits():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = fcn_keras.FCN8s(num_classes=3, backbone_weights=None, fc_units=8)
        assert model.get_layer("fc6").compute_dtype == "float16"
        logits = model(np.zeros((1, 33, 33, 3), np.uint8))
        assert logits.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("variant", ["FCN32s", "FCN8s"])
def test_mixed_bfloat16_keeps_the_large_upsamplings_in_float32(variant):
    # oneDNN's bfloat16 transposed convolution with a 64x64 kernel is tens of times slower
    # than float32 on CPU; the class-score upsamplings by 8 and more stay float32.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = getattr(fcn_keras, variant)(num_classes=3, backbone_weights=None, fc_units=8)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    dtypes = {layer.name: layer.compute_dtype for layer in model.layers if "upscore" in layer.name}
    assert model.get_layer("fc6").compute_dtype == "bfloat16"
    if variant == "FCN32s":
        assert dtypes == {"upscore32": "float32"}
    else:
        assert dtypes == {"upscore2": "bfloat16", "upscore_pool4": "bfloat16", "upscore8": "float32"}
    images = np.random.default_rng(0).integers(0, 256, (1, 40, 48, 3), dtype=np.uint8)
    assert keras.ops.convert_to_numpy(model(images)).shape == (1, 40, 48, 3)


# --- Errors a user can act on ---


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 1}, "num_classes must be an integer >= 2.*received 1"),
        ({"num_classes": 2.5}, "received 2.5"),
        ({"num_classes": True}, "received True"),
        ({"input_shape": (None, None, 4)}, r"3 channels; received input_shape=\(None, None, 4\)"),
        ({"input_shape": (None, None)}, r"received \(None, None\)"),
        ({"input_shape": (0, 32, 3)}, "positive integers or None"),
        ({"fc_units": 0}, "fc_units must be a positive integer.*received 0"),
        ({"dropout": 1.0}, r"dropout must be a rate in \[0, 1\); received 1.0"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, message):
    kwargs = {"backbone_weights": None, "fc_units": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        fcn_keras.FCN8s(**kwargs)


def test_unknown_variant():
    with pytest.raises(ValueError, match=r"Unknown FCN variant 'fcn4s'; expected one of \['fcn16s', 'fcn32s', 'fcn8s'\]"):
        fcn_keras.build_fcn("fcn4s")
    assert fcn_keras.build_fcn("FCN-32s", num_classes=2, backbone_weights=None, fc_units=4).name == "fcn32s"


def test_missing_and_mismatched_weights_files(small_fcn, tmp_path):
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(ValueError, match=r"weights file not found: .*nope\.weights\.h5"):
        fcn_keras.FCN8s(num_classes=5, backbone_weights=None, fc_units=32, weights=missing)
    with pytest.raises(ValueError, match=r"backbone_weights file not found: .*nope\.weights\.h5"):
        fcn_keras.FCN8s(num_classes=5, backbone_weights=missing, fc_units=32)

    path = tmp_path / "five.weights.h5"
    small_fcn("fcn8s", num_classes=5).save_weights(path)
    with pytest.raises(ValueError, match=r"five\.weights\.h5.*does not fit model 'fcn8s' \(6 classes.*score"):
        fcn_keras.FCN8s(num_classes=6, backbone_weights=None, fc_units=32, weights=path)

    not_hdf5 = tmp_path / "text.h5"
    not_hdf5.write_text("not weights")
    with pytest.raises(ValueError, match=r"text\.h5' is not a readable HDF5 weights file"):
        fcn_keras.FCN8s(num_classes=5, backbone_weights=not_hdf5, fc_units=32)
    narrow = tmp_path / "narrow.weights.h5"  # a first convolution with 8 filters instead of 64
    with h5py.File(narrow, "w") as f:
        f["layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 8), np.float32)
        f["layers/conv2d/vars/1"] = np.zeros((8,), np.float32)
    with pytest.raises(ValueError, match=r"(?s)narrow\.weights\.h5' does not fit keras\.applications\.VGG16.*block1_conv1"):
        fcn_keras.FCN8s(num_classes=5, backbone_weights=narrow, fc_units=32)


def test_imagenet_without_network_says_to_pass_a_local_file(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: [Errno -2] Name or service not known")

    # Simulate no network whether or not the weights are cached in ~/.keras.
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(RuntimeError, match="pass backbone_weights=PATH to a local VGG16 weights file"):
        fcn_keras.FCN32s(num_classes=3, fc_units=8)


def test_input_channels_checked_by_the_preprocess_layer():
    with pytest.raises(ValueError, match="3 channels; received input shape .* with 4 channels"):
        fcn_keras.CaffePreprocess()(np.zeros((1, 4, 4, 4), "float32"))
