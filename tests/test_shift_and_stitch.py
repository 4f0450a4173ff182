"""Shift-and-stitch and filter rarefaction (`fcn_keras.shift_and_stitch`): the two agree.

Tiny FCNs (fc_units 8, random weights) on 64x64, 96x64 and odd 70x90 inputs.
Tolerance for "the same dense scores": 1e-5 absolute on scores of magnitude
about 1. The two compute the same sums of the same products, but a dilated
convolution and a convolution on a shifted copy accumulate them in different
orders (oneDNN picks different kernels), so float32 rounding differs by a few
ulps per layer (measured below 1e-6); 1e-5 leaves a 10x margin and is still
far below the 1e-2 that separates different dense cells. Because the shifts are
applied on the rarefied pools' inputs (see the module docstring), every
convolution's zero padding stays at the image's edges in both, so they agree
on every cell, borders included: the differing border width is 0, asserted.
"""

import numpy as np
import pytest

import keras

import fcn_keras
from fcn_keras.shift_and_stitch import (ShiftAndStitch, coarse_output, dilate, shift_and_stitch,
                                        upsample_dense_scores)  # fmt: skip

NUM_CLASSES = 3
TOLERANCE = 1e-5
SIZES = ((64, 64), (96, 64), (70, 90))


def _randomize_scores(model):
    """Give the zero-initialised score layers random weights so that the scores vary."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if layer.name.startswith("score_"):
            layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def fcn32s():
    keras.utils.set_random_seed(0)
    return _randomize_scores(fcn_keras.FCN32s(num_classes=NUM_CLASSES, fc_units=8, backbone_weights=None))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return {size: rng.integers(0, 256, (2, *size, 3), dtype=np.uint8) for size in SIZES}


def _coarse(model, x):
    name, _ = coarse_output(model)
    return keras.Model(model.inputs[0], model.get_layer(name).output)(x).numpy()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("factor", (2, 4))
def test_shift_and_stitch_equals_dilated_network_everywhere(fcn32s, images, size, factor):
    """Same dense map from f*f shifted copies and from the rarefied network, on every cell.

    The differing border is measured: the widest band (in dense cells from any edge)
    holding a cell off by more than the tolerance is 0, i.e. no cell differs.
    """
    x = images[size]
    stitched = shift_and_stitch(fcn32s, x, factor).numpy()
    dense = dilate(fcn32s, factor)(x).numpy()
    padded = [-(-side // 32) * 32 for side in size]
    assert stitched.shape == dense.shape == (2, factor * padded[0] // 32, factor * padded[1] // 32,
                                             NUM_CLASSES)  # fmt: skip
    differing = np.argwhere(np.abs(stitched - dense).max(axis=(0, 3)) > TOLERANCE)
    assert differing.size == 0, f"cells differ at {differing.tolist()}"
    assert np.abs(stitched - dense).max() < TOLERANCE
    # Not trivially equal: the new phases carry other values than the coarse cells.
    coarse = _coarse(fcn32s, x)
    assert np.abs(stitched[:, 1::factor, 1::factor] - coarse).max() > 1e-2
    # Phase (0, 0) is the model's own coarse map, bit for bit.
    np.testing.assert_array_equal(stitched[:, ::factor, ::factor], coarse)


def test_factor_one_is_the_model_coarse_map(fcn32s, images):
    x = images[(70, 90)]
    np.testing.assert_array_equal(shift_and_stitch(fcn32s, x, 1).numpy(), _coarse(fcn32s, x))
    np.testing.assert_array_equal(dilate(fcn32s, 1)(x).numpy(), _coarse(fcn32s, x))


def test_dense_phases_are_the_input_shifted_by_stride_over_factor(fcn32s):
    """Dense phase 1 (f = 2) is the coarse map of the image moved up by 16 pixels, on the
    cells whose receptive fields see neither copy's edge.

    Shifting the image itself moves every convolution's zero padding with it, so unlike
    the shifts on the rarefied pools' inputs it differs near the edges. Measured on a
    480x32 strip (15 coarse rows): the top 6 rows (192 px) and bottom 7 rows (224 px,
    the copy's bottom edge is 16 px further) differ; the middle rows agree to float
    rounding, which checks the shift's direction and size.
    """
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (1, 480, 32, 3), dtype=np.uint8)
    stitched = shift_and_stitch(fcn32s, x, 2).numpy()  # (1, 30, 2, C): rows 16 px apart
    shifted = _coarse(fcn32s, np.concatenate([x[:, 16:], x[:, -16:]], axis=1))  # (1, 15, 1, C)
    rows = np.abs(stitched[0, 1::2, 0] - shifted[0, :, 0]).max(axis=-1)
    assert rows.shape == (15,)
    assert rows[6:8].max() < TOLERANCE, rows  # the interior: pixels 192..255 of the copy
    assert rows[:4].min() > 1e-3 and rows[-4:].min() > 1e-3, rows  # the edges differ


@pytest.mark.parametrize("variant,stride", (("fcn16s", 16), ("fcn8s", 8)))
def test_skip_models_densify_their_fused_map(images, variant, stride):
    keras.utils.set_random_seed(0)
    model = _randomize_scores(fcn_keras.build_fcn(variant, num_classes=NUM_CLASSES, fc_units=8,
                                                  backbone_weights=None))  # fmt: skip
    x = images[(70, 90)]
    stitched = shift_and_stitch(model, x, 2).numpy()
    coarse = _coarse(model, x)
    assert stitched.shape == (2, 2 * 96 // stride, 2 * 96 // stride, NUM_CLASSES)
    np.testing.assert_array_equal(stitched[:, ::2, ::2], coarse)
    assert np.abs(stitched[:, 1::2, 1::2] - coarse).max() > 1e-2
    logits = shift_and_stitch(model, x, 2, full_size=True)
    assert tuple(logits.shape) == (2, 70, 90, NUM_CLASSES)
    with pytest.raises(ValueError, match="FCN-32s only"):
        dilate(model, 2)


def test_full_size_logits_are_centred_on_receptive_fields(fcn32s, images):
    """Dense cell m sits on pixel 16 m + 15.5 (f = 2): a map holding those coordinates
    upsamples to each pixel's own coordinate between the first and last centres."""
    rows = 16 * np.arange(6) + 15.5
    cols = 16 * np.arange(6) + 15.5
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)[None].astype("float32")
    up = upsample_dense_scores(grid, (70, 90), 2).numpy()
    assert up.shape == (1, 70, 90, 2)
    y, x = np.arange(70), np.arange(90)
    np.testing.assert_allclose(up[0, :, 0, 0], np.clip(y, 15.5, 95.5), atol=1e-5)
    np.testing.assert_allclose(up[0, 0, :, 1], np.clip(x, 15.5, 95.5), atol=1e-5)
    # With factor 1 the geometry is the model's own x32 upsampling (away from its borders).
    image = images[(70, 90)]
    own = fcn32s(image).numpy()
    mine = shift_and_stitch(fcn32s, image, 1, full_size=True).numpy()
    assert mine.shape == own.shape == (2, 70, 90, NUM_CLASSES)
    np.testing.assert_allclose(mine[:, 16:, 16:80], own[:, 16:, 16:80], atol=1e-5)
    stitched = shift_and_stitch(fcn32s, image, 2, full_size=True)
    assert tuple(stitched.shape) == (2, 70, 90, NUM_CLASSES)


@pytest.mark.parametrize("factor", (0, 3, 64, 2.0, True, "2"))
def test_bad_factor_is_named(fcn32s, factor):
    with pytest.raises(ValueError, match=f"received {factor!r}"):
        ShiftAndStitch(fcn32s, factor)
    with pytest.raises(ValueError, match=f"received {factor!r}"):
        dilate(fcn32s, factor)


def test_factor_must_divide_the_fused_stride():
    model = fcn_keras.FCN8s(num_classes=NUM_CLASSES, fc_units=8, backbone_weights=None)
    with pytest.raises(ValueError, match=r"coarse stride 8 .* received 16"):
        ShiftAndStitch(model, 16)


def test_evaluate_with_shift_and_stitch(fcn32s):
    model = fcn_keras.FCN32s(num_classes=6, fc_units=8, backbone_weights=None)
    report = fcn_keras.evaluate(model, "synthetic", "val", shift_and_stitch=2, max_batches=2,
                                batch_size=2,
                                source_kwargs={"image_size": 64, "num_examples": 4})  # fmt: skip
    for name in ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu"):
        assert 0.0 <= report[name] <= 1.0
    assert report["images"] == 4 and report["pixels"] > 0 and report["shift_and_stitch"] == 2
    with pytest.raises(ValueError, match="received 3"):
        fcn_keras.evaluate(model, "synthetic", "val", shift_and_stitch=3, max_batches=1,
                           source_kwargs={"image_size": 64, "num_examples": 4})  # fmt: skip


def test_dilated_model_round_trips_through_keras_file(fcn32s, images, tmp_path):
    model = dilate(fcn32s, 4)
    model.save(tmp_path / "dilated.keras")
    loaded = keras.saving.load_model(tmp_path / "dilated.keras", compile=False)
    x = images[(64, 64)]
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert [layer.dilation_rate for layer in loaded.layers if layer.name in ("block4_pool", "block5_pool")] == [1, 2]
    assert loaded.get_layer("fc6").dilation_rate == (4, 4)
