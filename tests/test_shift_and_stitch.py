"""Shift-and-stitch and filter rarefaction (`fcn_keras.shift_and_stitch`): the two agree.

Tiny FCNs (fc_units 8, random weights) on 64x64, 96x64 and odd 70x90 inputs.
Tolerance for "the same dense scores": 1e-5 of the largest score compared
(`RELATIVE`; the FCN-32s scores are about 1, the skip models' up to about 80).
The two compute the same sums of the same products, but a dilated convolution
and a convolution on a shifted copy accumulate them in different orders
(oneDNN picks different kernels, which differ between CPU kinds), so float32
rounding differs by a few ulps per layer (measured: below 1e-6 relative on
AVX-512, 1.3e-6 on AVX2); 1e-5 leaves a margin and is still far below the
differences (> 1e-2) that separate different dense cells. Because the shifts are
applied on the rarefied pools' inputs (see the module docstring), every
convolution's zero padding stays at the image's edges in both, so they agree
on every cell, borders included: the differing border width is 0, asserted.
"""

import numpy as np
import pytest

import keras

import fcn_keras
from conftest import assert_close, randomize_score_layers
from fcn_keras.shift_and_stitch import (ShiftAndStitch, coarse_output, dilate, logits_function,
                                        shift_and_stitch, upsample_dense_scores)  # fmt: skip

NUM_CLASSES = 3
RELATIVE = 1e-5  # of the largest score compared, see the module docstring
SIZES = ((64, 64), (96, 64), (70, 90))


# Score layers drawn N(0, 1) (seed 1): scores of magnitude about 1, as the tolerance assumes.
SCORE_INIT = {"seed": 1, "scale": 1.0}


@pytest.fixture(scope="module")
def fcn32s():
    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN32s(num_classes=NUM_CLASSES, fc_units=8, backbone_weights=None)
    return randomize_score_layers(model, **SCORE_INIT)


@pytest.fixture(scope="module")
def skip_models():
    """FCN-16s and FCN-8s with N(0, 1) score layers, keyed by variant."""
    models = {}
    for variant in ("fcn16s", "fcn8s"):
        keras.utils.set_random_seed(0)
        model = fcn_keras.build_fcn(variant, num_classes=NUM_CLASSES, fc_units=8,
                                    backbone_weights=None)  # fmt: skip
        models[variant] = randomize_score_layers(model, **SCORE_INIT)
    return models


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
    tolerance = RELATIVE * np.abs(dense).max()
    differing = np.argwhere(np.abs(stitched - dense).max(axis=(0, 3)) > tolerance)
    assert differing.size == 0, f"cells differ at {differing.tolist()}"
    assert np.abs(stitched - dense).max() < tolerance
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
    assert rows[6:8].max() < RELATIVE * np.abs(shifted).max(), rows  # the interior: pixels 192..255
    assert rows[:4].min() > 1e-3 and rows[-4:].min() > 1e-3, rows  # the edges differ


@pytest.mark.parametrize("variant,stride", (("fcn16s", 16), ("fcn8s", 8)))
def test_skip_models_densify_their_fused_map(skip_models, images, variant, stride):
    model = skip_models[variant]
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


def _pool_from(x, dy, dx):
    """2x2 max pool, stride 2, of `(b, H, W, c)` with its grid starting `dy` rows down and
    `dx` columns right: `out[k, l] = max x[2k+dy : 2k+dy+2, 2l+dx : 2l+dx+2]`, windows cut
    at the bottom/right edge, `ceil(H / 2) x ceil(W / 2)` cells."""
    rows = np.minimum(np.arange(0, x.shape[1], 2)[:, None] + dy + np.arange(2), x.shape[1] - 1)
    cols = np.minimum(np.arange(0, x.shape[2], 2)[:, None] + dx + np.arange(2), x.shape[2] - 1)
    windows = x[:, rows][:, :, :, cols]  # (b, H/2, 2, W/2, 2, c)
    return windows.max(axis=(2, 4))


def _phases_by_brute_force(model, x, factor):
    """Coarse maps of `model` with the rarefied pools' grids moved, written from the definition.

    Returns `{(dy, dx): map}`. Phase `(dy, dx)` moves the input by `(dy, dx) * stride /
    factor` pixels; bit `b` of `dy` (`dx`) is the one-cell move of the grid of the `b`-th
    rarefied pool, lowest stride first (a move of 2 cells at one pool is 1 cell at the
    next). The pools are replaced by `_pool_from`; the layers between them run unchanged.
    """
    name, stride = coarse_output(model)
    pools = [f"block{b}_pool" for b in range(1, 6) if stride // factor < 2**b <= stride]
    ends = [model.get_layer(p).input for p in pools] + [model.get_layer(name).output]
    starts = [model.inputs[0]] + [model.get_layer(p).output for p in pools]
    head, *segments = [keras.Model(a, b) for a, b in zip(starts, ends)]
    phases = {(0, 0): head(x, training=False).numpy()}
    for bit, segment in enumerate(segments):
        keys, pooled = [], []
        for (dy, dx), y in phases.items():
            for by in (0, 1):
                for bx in (0, 1):
                    keys.append((dy | by << bit, dx | bx << bit))
                    pooled.append(_pool_from(y, by, bx))
        out = segment(np.concatenate(pooled), training=False).numpy()  # all phases in one batch
        phases = dict(zip(keys, np.split(out, len(keys))))
    return phases


@pytest.mark.parametrize("variant,factor", (("fcn16s", 2), ("fcn16s", 4), ("fcn8s", 2)))
def test_skip_model_phases_match_a_brute_force_per_phase_computation(skip_models, images,
                                                                      variant, factor):  # fmt: skip
    """Every phase `(dy, dx)` of the dense fused map, on a 96x64 input (taller than wide,
    random content), is the coarse map with the pooling grids moved `(dy, dx)` cells.

    The tolerance is the file's 1e-5 of the largest score: the same layers run on the
    same values, but on other tensor sizes oneDNN may pick other kernels (measured: 1.3e-6
    relative on AVX2, on scores near 80). Each phase is told apart from its transpose
    `(dx, dy)` and from phase (0, 0) by more than 1e-2.
    """
    model = skip_models[variant]
    x = images[(96, 64)]
    stitched = shift_and_stitch(model, x, factor).numpy()
    _, stride = coarse_output(model)
    assert stitched.shape == (2, factor * 96 // stride, factor * 64 // stride, NUM_CLASSES)
    phases = _phases_by_brute_force(model, x, factor)
    for (dy, dx), expected in phases.items():
        got = stitched[:, dy::factor, dx::factor]
        assert got.shape == expected.shape
        assert_close(got, expected, RELATIVE, err_msg=f"phase {(dy, dx)}")
        if dy != dx:
            assert np.abs(got - phases[(dx, dy)]).max() > 1e-2, (dy, dx)
        if (dy, dx) != (0, 0):
            assert np.abs(got - phases[(0, 0)]).max() > 1e-2, (dy, dx)


def test_full_size_logits_are_centred_on_receptive_fields(fcn32s, images):
    """Dense cell m sits on pixel 16 m + 15.5 (f = 2): a map holding those coordinates
    upsamples to each pixel's own coordinate between the first and last centres."""
    rows = 16 * np.arange(6) + 15.5
    cols = 16 * np.arange(6) + 15.5
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)[None].astype("float32")
    up = upsample_dense_scores(grid, (70, 90), 2).numpy()
    assert up.shape == (1, 70, 90, 2)
    y, x = np.arange(70), np.arange(90)
    # Coordinates up to 95.5 interpolated in float32 (ulp 7.6e-6 there): 1e-6 of the largest.
    assert_close(up[0, :, 0, 0], np.clip(y, 15.5, 95.5), 1e-6)
    assert_close(up[0, 0, :, 1], np.clip(x, 15.5, 95.5), 1e-6)
    # With factor 1 the geometry is the model's own x32 upsampling (away from its borders).
    image = images[(70, 90)]
    own = fcn32s(image).numpy()
    mine = shift_and_stitch(fcn32s, image, 1, full_size=True).numpy()
    assert mine.shape == own.shape == (2, 70, 90, NUM_CLASSES)
    assert_close(mine[:, 16:, 16:80], own[:, 16:, 16:80], RELATIVE)
    stitched = shift_and_stitch(fcn32s, image, 2, full_size=True)
    assert tuple(stitched.shape) == (2, 70, 90, NUM_CLASSES)


@pytest.mark.parametrize("factor", (0, 3, 64, 2.0, True, "2"))
def test_bad_factor_is_named(fcn32s, factor):
    with pytest.raises(ValueError, match=f"received {factor!r}"):
        ShiftAndStitch(fcn32s, factor)
    with pytest.raises(ValueError, match=f"received {factor!r}"):
        dilate(fcn32s, factor)


def test_factor_must_divide_the_fused_stride(skip_models):
    with pytest.raises(ValueError, match=r"coarse stride 8 .* received 16"):
        ShiftAndStitch(skip_models["fcn8s"], 16)


def test_evaluate_with_shift_and_stitch(fcn32s, images):
    """`evaluate(shift_and_stitch=2)` scores the argmax of the upsampled dense map, pixel
    for pixel: its confusion matrix equals the one counted here from
    `upsample_dense_scores(shift_and_stitch(...))`, and differs from the model's own output's.

    With random weights the scores vary little over the image (std about 0.1) next to the
    gaps between the classes' means (about 1), so the argmax would be one class
    everywhere: `score_fr`'s bias is set here (and restored after) so that each class's
    mean dense score on these images is 0, and the argmax then follows the variation.
    """
    x = images[(70, 90)]
    score_fr = fcn32s.get_layer("score_fr")
    kernel, bias = score_fr.get_weights()
    mean = shift_and_stitch(fcn32s, x, 2).numpy().mean(axis=(0, 1, 2))
    score_fr.set_weights([kernel, (bias - mean).astype("float32")])
    try:
        _check_evaluate_with_shift_and_stitch(fcn32s, x)
    finally:
        score_fr.set_weights([kernel, bias])


def _check_evaluate_with_shift_and_stitch(fcn32s, x):
    rng = np.random.default_rng(3)
    masks = rng.integers(0, NUM_CLASSES, x.shape[:3]).astype("int32")
    masks[0, :10] = 255  # void rows: not counted
    own = np.argmax(fcn32s(x, training=False).numpy(), axis=-1)
    scores = upsample_dense_scores(shift_and_stitch(fcn32s, x, 2), (70, 90), 2).numpy()
    stitched = np.argmax(scores, axis=-1)
    valid = masks != 255
    # Pixels whose two best scores are within the tolerance (10x the float32 rounding of
    # the scores) may flip between this eager run and evaluate's traced one; each flip
    # moves one count between two cells of the matrix. A handful at most (measured: 2).
    top2 = np.sort(scores, axis=-1)[..., -2:]
    tolerance = RELATIVE * np.abs(scores).max()
    near_ties = int((valid & (top2[..., 1] - top2[..., 0] < tolerance)).sum())
    assert near_ties <= 0.001 * valid.sum(), near_ties
    expected, unstitched = (np.bincount(NUM_CLASSES * masks[valid] + p[valid],
                                        minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)
                            for p in (stitched, own))  # fmt: skip
    # Centred scores: the stitched argmax uses every class and differs from the model's own.
    assert set(np.unique(stitched)) == set(range(NUM_CLASSES))
    changed = (stitched != own).mean()
    assert changed > 0.01, changed
    assert np.abs(expected - unstitched).sum() > 0
    report = fcn_keras.evaluate(fcn32s, [(x, masks)], ignore_label=255, shift_and_stitch=2)
    assert np.abs(np.asarray(report["confusion_matrix"]) - expected).sum() <= 2 * near_ties
    assert report["images"] == 2 and report["pixels"] == int(valid.sum()) == 2 * 70 * 90 - 900
    assert report["shift_and_stitch"] == 2
    assert report["pixel_accuracy"] == pytest.approx(np.trace(expected) / valid.sum(),
                                                     abs=near_ties / valid.sum() + 1e-12)  # fmt: skip
    with pytest.raises(ValueError, match="received 3"):
        fcn_keras.evaluate(fcn32s, [(x, masks)], ignore_label=255, shift_and_stitch=3)


@pytest.mark.parametrize("variant", ["fcn32s", "fcn8s"])
def test_logits_function_is_the_forward_evaluate_scores(fcn32s, skip_models, images, variant):
    """`logits_function`: the model's own output (factor None), shift-and-stitch upsampled
    (factor f, 1 included), the coarse map alone, the input scale applied; and `evaluate`
    scores exactly the argmax of its logits (the same confusion matrix)."""
    from fcn_keras.evaluation import evaluate_predictions, logits_at_size, scale_images

    model = fcn32s if variant == "fcn32s" else skip_models[variant]
    x = images[(70, 90)]
    own = logits_function(model)(x).numpy()
    assert own.dtype == np.float32 and own.shape == (2, 70, 90, NUM_CLASSES)
    assert_close(own, model(x, training=False), RELATIVE)
    dense = logits_function(model, 2)(x).numpy()
    assert_close(dense, shift_and_stitch(model, x, 2, full_size=True), RELATIVE)
    assert_close(logits_function(model, 1)(x), shift_and_stitch(model, x, 1, full_size=True), RELATIVE)
    stride = coarse_output(model)[1]
    coarse = logits_function(model, 2, full_size=False)(x).numpy()
    assert coarse.shape == (2, 2 * 96 // stride, 2 * 96 // stride, NUM_CLASSES)  # padded to 96x96
    assert_close(coarse, shift_and_stitch(model, x, 2), RELATIVE)
    assert logits_function(model, full_size=False)(x).shape == (2, 96 // stride, 96 // stride, NUM_CLASSES)
    half = logits_function(model, input_scale=0.5)(x).numpy()
    assert half.shape == (2, 70, 90, NUM_CLASSES)
    assert_close(half, logits_at_size(model(scale_images(x, 0.5), training=False), (70, 90)), RELATIVE)
    masks = np.random.default_rng(4).integers(0, NUM_CLASSES, x.shape[:3]).astype("int32")
    masks[:, :5] = 255
    for factor in (None, 2):
        report = fcn_keras.evaluate(model, [(x, masks)], ignore_label=255, shift_and_stitch=factor)
        logits = logits_function(model, factor)
        mine = evaluate_predictions(lambda b: np.argmax(logits(b).numpy(), axis=-1), [(x, masks)], NUM_CLASSES)
        np.testing.assert_array_equal(report["confusion_matrix"], mine["confusion_matrix"])
        assert report["mean_iu"] == pytest.approx(mine["mean_iu"], rel=1e-12)
    with pytest.raises(ValueError, match="received 3"):
        logits_function(model, 3)
    with pytest.raises(ValueError, match="1.5"):
        logits_function(model, input_scale=1.5)


def test_dilated_model_round_trips_through_keras_file(fcn32s, images, tmp_path):
    model = dilate(fcn32s, 4)
    model.save(tmp_path / "dilated.keras")
    loaded = keras.saving.load_model(tmp_path / "dilated.keras", compile=False)
    x = images[(64, 64)]
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert [layer.dilation_rate for layer in loaded.layers if layer.name in ("block4_pool", "block5_pool")] == [1, 2]
    assert loaded.get_layer("fc6").dilation_rate == (4, 4)
