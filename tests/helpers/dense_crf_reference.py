"""Exact fully connected CRF mean-field steps in NumPy (O(N^2)): the oracle of `fcn_keras.DenseCRF`.

Builds the full N x N kernel matrices of Krähenbühl & Koltun (2011) between
every pair of pixels (float64), with no truncation and no downsampling, and
runs Algorithm 1: messages `sum_{j != i} k(i, j) Q_j`, optionally divided per
pixel by `sum_{j != i} k(i, j)` (`normalize`), weighted, compatibility
transform, `logits = U - pairwise`. Meant for small images only (a 24x32
image is a 768 x 768 matrix).
"""

import numpy as np


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kernel_matrices(image, appearance_xy, appearance_rgb, smoothness_xy):
    """The appearance and smoothness kernels between all pixels, zero on the diagonal.

    Args:
        image: `(H, W, 3)` RGB in [0, 255].
        appearance_xy, appearance_rgb, smoothness_xy: bandwidths (pixels, RGB units).

    Returns:
        `(appearance, smoothness)`, two `(H*W, H*W)` float64 arrays.
    """
    height, width = image.shape[:2]
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    positions = np.stack([ys.ravel(), xs.ravel()], axis=-1).astype(np.float64)
    colours = image.reshape(-1, 3).astype(np.float64)
    d_xy = ((positions[:, None, :] - positions[None, :, :]) ** 2).sum(-1)
    d_rgb = ((colours[:, None, :] - colours[None, :, :]) ** 2).sum(-1)
    appearance = np.exp(-d_xy / (2 * appearance_xy**2) - d_rgb / (2 * appearance_rgb**2))
    smoothness = np.exp(-d_xy / (2 * smoothness_xy**2))
    np.fill_diagonal(appearance, 0.0)
    np.fill_diagonal(smoothness, 0.0)
    return appearance, smoothness


def dense_crf(image, logits, iterations=1, appearance_weight=10.0, appearance_xy=80.0,
              appearance_rgb=13.0, smoothness_weight=3.0, smoothness_xy=3.0,
              compatibility=None, normalize=True):  # fmt: skip
    """Exact mean-field refinement of one image's logits.

    Args:
        image: `(H, W, 3)` RGB in [0, 255].
        logits: `(H, W, C)` unary logits (negative unary energies).
        iterations: mean-field steps. Defaults to 1.
        appearance_weight .. smoothness_xy: the kernel parameters (see `DenseCRF`).
        compatibility: `(C, C)` matrix `mu`; None is Potts. Defaults to None.
        normalize: divide each kernel's message by its row sum. Defaults to True.

    Returns:
        `(H, W, C)` float64 refined logits after the last step.
    """
    height, width, classes = logits.shape
    unary = logits.reshape(-1, classes).astype(np.float64)
    mu = 1.0 - np.eye(classes) if compatibility is None else np.asarray(compatibility, np.float64)
    appearance, smoothness = kernel_matrices(image, appearance_xy, appearance_rgb, smoothness_xy)
    matrix = np.zeros_like(appearance)
    for weight, kernel in ((appearance_weight, appearance), (smoothness_weight, smoothness)):
        if weight == 0:
            continue
        if normalize:
            kernel = kernel / np.maximum(kernel.sum(axis=1, keepdims=True), 1e-30)
        matrix += weight * kernel
    refined = unary
    for _ in range(iterations):
        message = matrix @ _softmax(refined)
        refined = unary - message @ mu.T
    return refined.reshape(height, width, classes)
