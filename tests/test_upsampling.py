"""Bilinear upsampling: golden kernel values, the initializer, and exact interpolation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fcn_keras.upsampling import BilinearUpsampling, bilinear_kernel, upsampling_layer
from tests.conftest import assert_close


def test_bilinear_kernel_golden_values():
    np.testing.assert_array_equal(
        bilinear_kernel(4), np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25])
    )
    np.testing.assert_array_equal(bilinear_kernel(3), np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))
    np.testing.assert_array_equal(bilinear_kernel(1), [[1.0]])
    # 16x16 (x8 upsampling): tent 1/16, 3/16, ..., 15/16, 15/16, ..., 1/16.
    tent = np.r_[np.arange(1, 16, 2), np.arange(15, 0, -2)] / 16.0
    np.testing.assert_allclose(bilinear_kernel(16), np.outer(tent, tent), rtol=0, atol=1e-7)


@pytest.mark.parametrize("factor", [2, 8, 16, 32])
def test_even_kernel_is_a_partition_of_unity(factor):
    # Each of the factor x factor output phases receives weights summing to one.
    kernel = bilinear_kernel(2 * factor).astype(np.float64)
    phases = kernel.reshape(2, factor, 2, factor).sum(axis=(0, 2))
    np.testing.assert_allclose(phases, np.ones((factor, factor)), atol=1e-6)


def test_bilinear_kernel_rejects_bad_size():
    with pytest.raises(ValueError, match="positive integer size; received 0"):
        bilinear_kernel(0)


def test_initializer_writes_the_kernel_on_the_channel_diagonal():
    kernel = keras.ops.convert_to_numpy(BilinearUpsampling()((4, 4, 3, 3)))
    for i in range(3):
        for j in range(3):
            expected = bilinear_kernel(4) if i == j else np.zeros((4, 4))
            np.testing.assert_array_equal(kernel[:, :, i, j], expected)
    with pytest.raises(ValueError, match=r"received shape \(4, 4, 3, 2\)"):
        BilinearUpsampling()((4, 4, 3, 2))


def _reference_bilinear(values, factor):
    """Half-pixel-centred 1-D linear interpolation with zero weight outside the samples."""
    n = len(values)
    out = np.arange(n * factor, dtype=np.float64)
    centres = factor * np.arange(n) + (factor - 1) / 2.0
    weights = np.maximum(0.0, 1.0 - np.abs(out[:, None] - centres[None, :]) / factor)
    return weights @ values


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_upsampling_reproduces_a_ramp_away_from_the_borders(factor):
    h, w = 5, 7
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (3.0 * ys - 2.0 * xs + 1.0)[None, :, :, None]
    layer = upsampling_layer(1, factor)
    out = keras.ops.convert_to_numpy(layer(ramp))[0, :, :, 0]
    assert out.shape == (h * factor, w * factor)
    # Output pixel o sits at input coordinate (o - (f - 1) / 2) / f.
    coords_y = (np.arange(h * factor) - (factor - 1) / 2.0) / factor
    coords_x = (np.arange(w * factor) - (factor - 1) / 2.0) / factor
    expected = 3.0 * coords_y[:, None] - 2.0 * coords_x[None, :] + 1.0
    inner = (slice(factor, -factor), slice(factor, -factor))  # one input cell from each border
    assert_close(out[inner], expected[inner], 1e-5)  # a ramp of values up to ~13
    # Same as TensorFlow's half-pixel bilinear resize there.
    resized = tf.image.resize(ramp, (h * factor, w * factor), "bilinear").numpy()[0, :, :, 0]
    assert_close(out[inner], resized[inner], 1e-5)


@pytest.mark.parametrize("factor", [2, 16])
def test_upsampling_equals_reference_interpolation_everywhere(factor):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4)).astype(np.float32)
    out = keras.ops.convert_to_numpy(upsampling_layer(1, factor)(values[None, :, :, None]))
    ref = _reference_bilinear(_reference_bilinear(values, factor).T, factor).T
    assert_close(out[0, :, :, 0], ref, 1e-5)


def test_upsampling_layer_is_fixed_by_default():
    assert not upsampling_layer(3, 2).trainable
    assert upsampling_layer(3, 2, trainable=True).trainable
    with pytest.raises(ValueError, match="positive integer; received 1.5"):
        upsampling_layer(3, 1.5)
