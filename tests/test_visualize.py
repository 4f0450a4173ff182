"""Palettes, colourised masks and overlays."""

import numpy as np
import pytest

from fcn_keras.visualize import IGNORE_COLOR, colorize, overlay, voc_palette


def test_voc_palette_golden_values():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    # First classes of the VOC devkit's labelcolormap: background, aeroplane, bicycle, bird, ...
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[255].tolist() == list(IGNORE_COLOR)  # VOC's void colour
    assert len({tuple(c) for c in palette}) == 256


def test_colorize_and_ignore():
    mask = np.array([[0, 1], [255, 2]])
    rgb = colorize(mask)
    assert rgb.tolist() == [[[0, 0, 0], [128, 0, 0]], [list(IGNORE_COLOR), [0, 128, 0]]]
    custom = colorize(np.array([[1, 0]]), palette=[[1, 2, 3], [4, 5, 6]])
    assert custom.tolist() == [[[4, 5, 6], [1, 2, 3]]]


def test_colorize_errors():
    with pytest.raises(ValueError, match="class ids 0..5, outside the palette's 3 colours"):
        colorize(np.array([[0, 5]]), palette=voc_palette(3))
    with pytest.raises(ValueError, match="integer class-id mask; received dtype float64"):
        colorize(np.zeros((2, 2)))


def test_overlay_blends_and_leaves_ignored_pixels():
    image = np.full((1, 3, 3), 100, np.uint8)
    mask = np.array([[1, 0, 255]])
    out = overlay(image, mask, alpha=0.5)
    assert out[0, 0].tolist() == [114, 50, 50]  # (100 + 128) / 2, 100 / 2, 100 / 2
    assert out[0, 2].tolist() == [100, 100, 100]
    with pytest.raises(ValueError, match=r"received image \(1, 3, 3\) and mask \(1, 2\)"):
        overlay(image, np.zeros((1, 2), int))
