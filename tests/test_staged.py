"""Staged training 32s -> 16s -> 8s: weight transfer and the starting predictions of each stage."""

import keras
import numpy as np
import pytest

import fcn_keras
from fcn_keras.staged import staged_from
from tests.conftest import assert_close, randomize_score_layers
from tests.test_upsampling import _reference_bilinear


def _upsample(scores, factors):
    """Reference bilinear upsampling of a (H, W, C) map through successive factors."""
    for factor in factors:
        scores = np.stack(
            [_reference_bilinear(_reference_bilinear(scores[..., c], factor).T, factor).T for c in range(scores.shape[-1])],
            axis=-1,
        )
    return scores


def _outputs(model, names, images):
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    outputs = probe(images)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [keras.ops.convert_to_numpy(t) for t in outputs]


@pytest.fixture(scope="module")
def stages():
    keras.utils.set_random_seed(0)  # the figures below depend on the random fc6/fc7 weights
    fcn32 = randomize_score_layers(
        fcn_keras.FCN32s(num_classes=4, backbone_weights=None, fc_units=16, dropout=0.0), seed=1, scale=0.05
    )
    fcn16 = fcn_keras.fcn16s_from_fcn32s(fcn32)
    randomize_score_layers(fcn16, seed=2, scale=0.05)  # as if FCN-16s had been trained
    fcn8 = fcn_keras.fcn8s_from_fcn16s(fcn16)
    images = np.random.default_rng(0).integers(0, 256, (1, 128, 160, 3)).astype("float32")
    return fcn32, fcn16, fcn8, images


def test_shared_layers_are_copied_and_new_skip_scores_start_at_zero():
    fcn32 = randomize_score_layers(fcn_keras.FCN32s(num_classes=4, backbone_weights=None, fc_units=16))
    fcn16 = fcn_keras.fcn16s_from_fcn32s(fcn32)
    shared = fcn_keras.transfer_weights(fcn32, fcn16)
    assert "fc6" in shared and "block1_conv1" in shared and "score_fr" in shared
    assert "score_pool4" not in shared and "upscore32" not in shared
    for name in shared:
        for a, b in zip(fcn32.get_layer(name).get_weights(), fcn16.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert all(not np.any(w) for w in fcn16.get_layer("score_pool4").get_weights())
    assert fcn16.name == "fcn16s"
    assert fcn16.get_layer("fc6").filters == 16 and fcn16.get_layer("score_fr").filters == 4


def test_fcn16s_starts_from_the_fcn32s_score_map(stages):
    """At initialisation FCN-16s predicts FCN-32s's coarse scores, interpolated x2 then x16.

    Its stride-32 scores are identical, the pool4 branch adds exactly zero, and its logits
    are exactly the bilinear interpolation of those scores. One x32 bilinear interpolation
    and x2-then-x16 are not the same function (the stride-32 knots fall between stride-16
    samples), so the logits match FCN-32s's to interpolation accuracy, measured here.
    """
    fcn32, fcn16, _, images = stages
    fresh16 = fcn_keras.fcn16s_from_fcn32s(fcn32)
    (score32, logits32) = _outputs(fcn32, ["score_fr", "logits"], images)
    score16, up2, fused, logits16 = _outputs(fresh16, ["score_fr", "upscore2", "fuse_pool4", "logits"], images)
    np.testing.assert_array_equal(score16, score32)
    np.testing.assert_array_equal(fused, up2)  # the new branch contributes exactly nothing
    assert_close(logits16[0], _upsample(score32[0], [2, 16]), 1e-5)
    assert_close(logits32[0], _upsample(score32[0], [32]), 1e-5)

    agreement = np.mean(logits16.argmax(-1) == logits32.argmax(-1))
    relative = np.abs(logits16 - logits32).mean() / np.abs(logits32).max()
    assert agreement > 0.97 and relative < 0.03, (agreement, relative)


def test_fcn8s_starts_from_the_fcn16s_score_map(stages):
    _, fcn16, fcn8, images = stages
    (fused16,) = _outputs(fcn16, ["fuse_pool4"], images)
    fused8, up_pool4, fused_pool3, logits8 = _outputs(
        fcn8, ["fuse_pool4", "upscore_pool4", "fuse_pool3", "logits"], images
    )
    assert_close(fused8, fused16, 1e-6)
    np.testing.assert_array_equal(fused_pool3, up_pool4)
    assert_close(logits8[0], _upsample(fused16[0], [2, 8]), 1e-5)
    for name in ("score_pool4", "upscore2", "fc7"):
        for a, b in zip(fcn16.get_layer(name).get_weights(), fcn8.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_staged_models_train(stages):
    _, _, fcn8, _ = stages
    fcn8.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255))
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    masks = rng.integers(0, 4, (2, 64, 64)).astype("int32")
    fcn8.fit(images, masks, epochs=1, verbose=0)
    assert np.any(fcn8.get_layer("score_pool3").get_weights()[0])


def test_transfer_errors_name_the_layer():
    five = fcn_keras.FCN32s(num_classes=5, backbone_weights=None, fc_units=16)
    six = fcn_keras.FCN16s(num_classes=6, backbone_weights=None, fc_units=16)
    with pytest.raises(ValueError, match=r"Cannot transfer layer 'score_fr' from 'fcn32s' to 'fcn16s'"):
        fcn_keras.transfer_weights(five, six)
    with pytest.raises(ValueError, match=r"the source model must be an fcn32s; 'fcn16s' is not"):
        staged_from(six, "fcn16s")
    with pytest.raises(ValueError, match=r"received target variant 'fcn32s'"):
        staged_from(five, "fcn32s")
    at_once = fcn_keras.FCN8s(num_classes=6, backbone_weights=None, fc_units=16, at_once=True)
    with pytest.raises(ValueError, match=r"must be an fcn16s; 'fcn8s_atonce' is not \(fcn8s_atonce\)"):
        staged_from(at_once, "fcn8s")
    with pytest.raises(ValueError, match=r"must be an fcn32s; 'sequential(_\d+)?' is not \(not an fcn_keras FCN\)"):
        fcn_keras.fcn16s_from_fcn32s(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
