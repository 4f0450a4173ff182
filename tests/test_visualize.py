"""Palettes, colourised masks and overlays."""

import numpy as np
import pytest

from fcn_keras.visualize import IGNORE_COLOR, colorize, comparison_figure, overlay, render_grid, voc_palette


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


def test_comparison_figure_scores_each_cell():
    """image | truth | one column per model, each prediction scored on its own image (void ignored)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 36, 48, 3), dtype=np.uint8)
    truths = np.zeros((2, 36, 48), np.uint8)
    truths[:, :, 24:] = 1
    truths[1, :4] = 255  # void: not counted
    wrong = truths.copy()
    wrong[0, :, 24:36] = 0  # a quarter of image 0 (half its class 1) labelled 0
    palette = voc_palette(2)
    figure, scores = comparison_figure(images, truths, {"right": list(truths), "wrong": list(wrong)}, palette,
                                       ["a", "b"], captions=["#0", "#1"], cell=(64, 48), colors=0)  # fmt: skip
    assert [s["mean_iu"] for s in scores["right"]] == [1.0, 1.0]
    # Image 0: class a has IoU 864 / 1296, class b 432 / 864; image 1 is right.
    assert scores["wrong"][0]["mean_iu"] == pytest.approx((864 / 1296 + 432 / 864) / 2)
    assert scores["wrong"][1]["mean_iu"] == 1.0
    assert figure.mode == "RGB"
    same = render_grid([[(images[0], False, None)] * 4], ["Image", "Ground truth", "right", "wrong"], palette,
                       ["a", "b"], (64, 48))  # fmt: skip
    assert figure.size[0] == same.size[0] and figure.size[1] == same.size[1] + 48 + 4  # one row more
    assert comparison_figure(images, truths, {"m": list(truths)}, palette, ["a", "b"], cell=(64, 48))[0].mode == "P"
    with pytest.raises(ValueError, match="'m' has 1 class maps for 2 images"):
        comparison_figure(images, truths, {"m": [truths[0]]}, palette, ["a", "b"])
