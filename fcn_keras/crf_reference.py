"""Krähenbühl's permutohedral dense CRF (pydensecrf2), the reference `fcn_keras.DenseCRF` is compared with.

`reference_classes(images, logits, settings)` runs the original dense CRF
code (pydensecrf2 wraps it) on FCN logits, one image at a time;
`tune_reference_crf` grid-searches its settings on a split by mean IU, as
`fcn_keras.crf.tune_crf` does for `DenseCRF`, so the two are compared each
at its best. Settings are plain dicts (`reference_settings`): a bilateral
(appearance) kernel `bilateral_sxy` / `bilateral_srgb` / `bilateral_compat`
and a Gaussian (smoothness) kernel `gaussian_sxy` / `gaussian_compat`, the
arguments of pydensecrf's `addPairwiseBilateral` and `addPairwiseGaussian`,
with Potts compatibility, and `iterations` of mean field.

pydensecrf2 is the optional `crf-reference` extra
(`pip install -e ".[crf-reference]"`), imported only when a CRF runs;
`reference_available()` says whether it can be.

Reference: Krähenbühl, Koltun, "Efficient Inference in Fully Connected CRFs
with Gaussian Edge Potentials", NIPS 2011.
"""

import numpy as np

__all__ = ["reference_classes", "reference_settings", "tune_reference_crf", "describe_reference_settings",
           "reference_available", "REFERENCE_GRID", "REFERENCE_GAUSSIAN"]  # fmt: skip

# Bilateral kernels `(sxy, srgb, compat)` searched on val. The first three are the settings most
# used with pydensecrf: its README example, DeepLab's (Chen et al. 2015) and a narrower one.
REFERENCE_GRID = [(80, 13, 10), (121, 5, 4), (50, 5, 5), (80, 13, 5), (30, 13, 10), (80, 30, 5)]
# The Gaussian (smoothness) kernel of every setting: `(sxy, compat)`.
REFERENCE_GAUSSIAN = (3, 3)

_INSTALL = 'pip install -e ".[crf-reference]"'


def _densecrf():
    """`pydensecrf.densecrf`, or an ImportError that says how to install it."""
    try:
        import pydensecrf.densecrf as densecrf
    except ImportError as e:
        raise ImportError(f"the reference dense CRF needs pydensecrf2, which is not installed ({e}); "
                          f"{_INSTALL}") from e  # fmt: skip
    return densecrf


def reference_available():
    """Whether pydensecrf2 can be imported, and why not.

    Returns:
        `(True, None)`, or `(False, reason)` with the import error and the
        command that installs it.

    Example:
    >>> ok, why = reference_available()
    """
    try:
        _densecrf()
    except ImportError as e:
        return False, str(e)
    return True, None


def reference_settings(grid=None, iterations=5):
    """Reference CRF settings as dicts: one per bilateral kernel of `grid`, with `REFERENCE_GAUSSIAN`.

    Args:
        grid: `(sxy, srgb, compat)` bilateral kernels. Defaults to `REFERENCE_GRID`.
        iterations: mean-field iterations. Defaults to 5.

    Returns:
        List of dicts: `iterations`, `bilateral_sxy`, `bilateral_srgb`,
        `bilateral_compat`, `gaussian_sxy`, `gaussian_compat`.

    Example:
    >>> reference_settings([(80, 13, 10)])[0]["bilateral_srgb"]
    13
    """
    gaussian_sxy, gaussian_compat = REFERENCE_GAUSSIAN
    return [{"iterations": iterations, "bilateral_sxy": sxy, "bilateral_srgb": srgb,
             "bilateral_compat": compat, "gaussian_sxy": gaussian_sxy,
             "gaussian_compat": gaussian_compat}
            for sxy, srgb, compat in (REFERENCE_GRID if grid is None else grid)]  # fmt: skip


def describe_reference_settings(settings):
    """Reference CRF settings in words, e.g. "bilateral sxy 80 srgb 13 compat 10, Gaussian sxy 3 compat 3".

    Args:
        settings: a dict of `reference_settings`.

    Returns:
        str.

    Example:
    >>> describe_reference_settings(reference_settings()[0])
    'bilateral sxy 80 srgb 13 compat 10, Gaussian sxy 3 compat 3'
    """
    return (f"bilateral sxy {settings['bilateral_sxy']:g} srgb {settings['bilateral_srgb']:g} "
            f"compat {settings['bilateral_compat']:g}, Gaussian sxy "
            f"{settings['gaussian_sxy']:g} compat {settings['gaussian_compat']:g}")  # fmt: skip


def reference_classes(images, logits, settings):
    """Class maps of Krähenbühl's permutohedral dense CRF (pydensecrf2), image by image.

    The unary energy is the negative log-softmax of the logits; the CRF runs
    `settings["iterations"]` mean-field steps with Potts compatibility.

    Args:
        images: `(B, H, W, 3)` uint8 RGB images (arrays or memory maps).
        logits: `(B, H, W, C)` FCN logits of those images.
        settings: a dict of `reference_settings`.

    Returns:
        `(B, H, W)` uint8 classes.

    Raises:
        ImportError: pydensecrf2 is not installed (the message says
            `pip install -e ".[crf-reference]"`).
        ValueError: images and logits differ in count or size.

    Example:
    >>> reference_classes(images[:1], logits[:1], reference_settings()[0]).shape
    (1, 360, 480)

    Reference: Krähenbühl & Koltun 2011 (pydensecrf wraps their code).
    """
    densecrf = _densecrf()
    if len(images) != len(logits) or tuple(np.shape(images)[1:3]) != tuple(np.shape(logits)[1:3]):
        raise ValueError(f"reference_classes: images {np.shape(images)} and logits {np.shape(logits)}; "
                         "expected one (H, W, C) logit map per (H, W, 3) image.")  # fmt: skip
    out = []
    for image, scores in zip(images, logits):
        height, width, classes = scores.shape
        shifted = scores - scores.max(axis=-1, keepdims=True)
        unary = -(shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)))
        crf = densecrf.DenseCRF2D(width, height, classes)
        crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(-1, classes).T, dtype=np.float32))
        crf.addPairwiseGaussian(sxy=settings["gaussian_sxy"], compat=settings["gaussian_compat"])
        crf.addPairwiseBilateral(sxy=settings["bilateral_sxy"], srgb=settings["bilateral_srgb"],
                                 rgbim=np.require(image, np.uint8, ["C", "W"]),  # memmaps are read-only
                                 compat=settings["bilateral_compat"])  # fmt: skip
        q = np.asarray(crf.inference(settings["iterations"]), dtype=np.float32)
        out.append(np.argmax(q.reshape(classes, height, width), axis=0).astype(np.uint8))
    return np.stack(out)


def tune_reference_crf(images, logits, labels, *, grid=None, iterations=5, ignore_label=255,
                       batch_size=4, log=None):  # fmt: skip
    """Grid search of the reference CRF's settings on a split (e.g. val), chosen by mean IU.

    Args:
        images: `(N, H, W, 3)` uint8 images of the split (arrays or memory maps).
        logits: `(N, H, W, C)` float32 FCN logits of those images.
        labels: `(N, H, W)` label maps.
        grid: `(sxy, srgb, compat)` bilateral kernels (`reference_settings`).
            Defaults to `REFERENCE_GRID`.
        iterations: mean-field iterations. Defaults to 5.
        ignore_label: void label. Defaults to 255.
        batch_size: images per scoring batch. Defaults to 4.
        log: optional `print`-like progress function. Defaults to None.

    Returns:
        Dict: `settings` (the chosen one), `mean_iu` (its split mean IU), and
        `rows` (`{"settings", "val_mean_iu", "val_pixel_accuracy",
        "seconds_per_image"}` per setting, in grid order), the same layout as
        `fcn_keras.crf.tune_crf`'s rows.

    Raises:
        ImportError: pydensecrf2 is not installed.

    Example:
    >>> tuned = tune_reference_crf(val_images, val_logits, val_labels)
    >>> reference_classes(test_images, test_logits, tuned["settings"])
    """
    from fcn_keras.crf import _score_settings

    rows, best = _score_settings(reference_settings(grid, iterations),
                                 lambda settings: lambda i, l: reference_classes(i, l, settings),
                                 images, logits, labels, ignore_label=ignore_label, batch_size=batch_size,
                                 describe=lambda s: f"pydensecrf2 {describe_reference_settings(s)}", log=log)
    return {"settings": best["settings"], "mean_iu": best["val_mean_iu"], "rows": rows}
