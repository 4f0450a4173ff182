"""`fcn_keras.crf_reference`: Krähenbühl's permutohedral dense CRF through pydensecrf2.

Settings and their words need nothing optional. Without pydensecrf2 every
CRF call fails with the install command (checked by hiding the module); with
it (the `crf-reference` extra), on tiny generated images: an isolated pixel
whose logits disagree weakly with its same-coloured surroundings is smoothed
away while a strong disagreement survives, and the grid search scores every
setting and keeps the best on the split.
"""

import sys

import numpy as np
import pytest

from fcn_keras.crf_reference import (REFERENCE_GRID, describe_reference_settings, reference_available,
                                     reference_classes, reference_settings, tune_reference_crf)  # fmt: skip


def test_settings_and_words():
    settings = reference_settings()
    assert len(settings) == len(REFERENCE_GRID)
    assert settings[0] == {"iterations": 5, "bilateral_sxy": 80, "bilateral_srgb": 13, "bilateral_compat": 10,
                           "gaussian_sxy": 3, "gaussian_compat": 3}  # fmt: skip
    assert reference_settings([(50, 5, 5)], iterations=2)[0]["iterations"] == 2
    assert describe_reference_settings(settings[1]) == "bilateral sxy 121 srgb 5 compat 4, Gaussian sxy 3 compat 3"


def test_missing_pydensecrf_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    ok, why = reference_available()
    assert not ok and 'pip install -e ".[crf-reference]"' in why
    with pytest.raises(ImportError, match=r"crf-reference"):
        reference_classes(np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 4, 4, 2), np.float32),
                          reference_settings()[0])  # fmt: skip


def _scene():
    """Two 24x24 images of one grey, class 0 everywhere; pixel (12, 12) leans to class 1."""
    images = np.full((2, 24, 24, 3), 128, np.uint8)
    logits = np.zeros((2, 24, 24, 2), np.float32)
    logits[..., 0] = 2.0
    logits[0, 12, 12] = (0.0, 0.5)  # a weak outlier
    logits[1, 12, 12] = (0.0, 50.0)  # a strong one
    labels = np.zeros((2, 24, 24), np.int32)
    return images, logits, labels


def test_reference_crf_smooths_a_weak_outlier():
    pytest.importorskip("pydensecrf.densecrf", reason="pydensecrf2 (the crf-reference extra) is not installed")
    images, logits, labels = _scene()
    assert reference_available() == (True, None)
    assert (np.argmax(logits, axis=-1) == 1).sum() == 2
    classes = reference_classes(images, logits, reference_settings()[0])
    assert classes.shape == (2, 24, 24) and classes.dtype == np.uint8
    assert classes[0].max() == 0  # smoothed away
    assert classes[1, 12, 12] == 1 and classes[1].sum() == 1  # kept, and alone
    with pytest.raises(ValueError, match="expected one"):
        reference_classes(images, logits[:1], reference_settings()[0])


def test_tune_reference_crf_keeps_the_best_setting():
    pytest.importorskip("pydensecrf.densecrf", reason="pydensecrf2 (the crf-reference extra) is not installed")
    images, logits, labels = _scene()
    logits[1, 12, 12] = (0.0, 0.5)  # both outliers weak: every setting removes both
    grid = [(80, 13, 10), (1, 1, 0)]  # the second: compat 0, no bilateral pull
    tuned = tune_reference_crf(images, logits, labels, grid=grid, ignore_label=255, batch_size=1)
    assert [row["settings"]["bilateral_sxy"] for row in tuned["rows"]] == [80, 1]
    assert tuned["rows"][0]["val_mean_iu"] == pytest.approx(1.0)
    assert tuned["rows"][0]["val_pixel_accuracy"] == pytest.approx(1.0)
    assert tuned["rows"][0]["seconds_per_image"] > 0
    assert tuned["mean_iu"] == max(row["val_mean_iu"] for row in tuned["rows"])
    assert tuned["settings"] == tuned["rows"][0]["settings"]
