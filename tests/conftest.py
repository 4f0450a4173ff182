"""Shared pytest fixtures: paths into ../shared (skipped when absent) and small FCNs.

`../shared` (next to the checkout, or `$FCN_KERAS_SHARED`) holds real CamVid
data and a pretrained VGG16 backbone. Tests that need them take the fixtures
below and skip cleanly when the files are not there; nothing from it is ever
copied into the project.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_DIR = Path(
    os.environ.get("FCN_KERAS_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)
CAMVID_DIR = SHARED_DIR / "data" / "camvid"
VGG16_NOTOP_WEIGHTS = SHARED_DIR / "weights" / "vgg16_notop_imagenet.weights.h5"


def _require(path):
    if not path.exists():
        pytest.skip(f"{path} is absent (see ../shared/README.md)")
    return path


def assert_close(actual, expected, rel, err_msg=""):
    """Assert `|actual - expected| <= rel * max|expected|` everywhere: a tolerance at the magnitude compared.

    float32 results computed in another order (another oneDNN kernel, XLA, another
    runtime) differ by rounding that grows with the magnitude of the values summed,
    so a fixed absolute bound passes on logits of size 1 and fails on logits of size
    100 (or passes anything on logits of size 1e-3). `rel` is the bound as a fraction
    of the largest value expected; all-zero `expected` must be matched exactly.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * scale, err_msg=err_msg)


@pytest.fixture(scope="session")
def camvid_dir():
    """Path to ../shared/data/camvid (SegNet layout, ignore id 11)."""
    return _require(CAMVID_DIR)


@pytest.fixture(scope="session")
def vgg16_notop_weights():
    """Path to the real pretrained VGG16 backbone in Keras's notop layout."""
    return _require(VGG16_NOTOP_WEIGHTS)


def randomize_score_layers(model, seed=0, scale=0.01):
    """Give the zero-initialised score layers random weights so outputs are not all zero."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.startswith("score_"):
            layer.set_weights(
                [rng.normal(0.0, scale, w.shape).astype("float32") for w in layer.get_weights()]
            )
    return model


@pytest.fixture
def small_fcn():
    """Factory for a reduced-width FCN (fc_units=32, random backbone) with non-zero scores."""
    import fcn_keras

    def make(variant="fcn8s", num_classes=5, seed=0, **kwargs):
        kwargs.setdefault("fc_units", 32)
        kwargs.setdefault("backbone_weights", None)
        model = fcn_keras.build_fcn(variant, num_classes=num_classes, **kwargs)
        return randomize_score_layers(model, seed=seed)

    return make


@pytest.fixture(scope="session")
def vgg16_with_top(tmp_path_factory):
    """A random-weight VGG16 classifier (logits, no softmax) and its `.weights.h5` file.

    Stands in for Keras's ImageNet weights, which cannot be downloaded in tests.
    """
    import keras

    model = keras.applications.VGG16(weights=None, classifier_activation=None)
    path = tmp_path_factory.mktemp("vgg16") / "vgg16_with_top.weights.h5"
    model.save_weights(path)
    return model, path
