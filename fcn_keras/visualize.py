"""Colour palettes, colourised masks and overlays for looking at segmentations.

The PASCAL VOC palette (the bit-interleaved colour map of the VOC devkit's
`labelcolormap.m`) is the default: it is what VOC's palette PNGs store and
what most segmentation tools draw. Ignored pixels are drawn in a fixed colour.
"""

import numpy as np

__all__ = ["voc_palette", "colorize", "overlay", "IGNORE_COLOR"]

# Colour of ignored / void pixels (VOC draws its void boundaries in this cream colour).
IGNORE_COLOR = (224, 224, 192)


def voc_palette(num_colors=256):
    """Return the PASCAL VOC colour map.

    Args:
        num_colors: number of colours. Defaults to 256 (a full PNG palette).

    Returns:
        uint8 NumPy array of shape `(num_colors, 3)`; row `i` is the RGB
        colour of class `i` (0 black, 1 maroon (128, 0, 0), 2 green, ...).

    Example:
    >>> voc_palette(3).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    if not isinstance(num_colors, (int, np.integer)) or not 1 <= num_colors <= 256:
        raise ValueError(f"num_colors must be an integer in [1, 256]; received {num_colors!r}.")
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def colorize(mask, palette=None, ignore_label=255):
    """Map a class-id mask to an RGB image.

    Args:
        mask: integer array `(H, W)` of class ids.
        palette: optional `(N, 3)` uint8 colours indexed by class id.
            Defaults to `voc_palette()`.
        ignore_label: class id drawn in `IGNORE_COLOR`. Defaults to 255.

    Returns:
        uint8 array `(H, W, 3)`.

    Example:
    >>> colorize(np.array([[0, 1], [255, 2]]))[0, 1].tolist()
    [128, 0, 0]
    """
    mask = np.asarray(mask)
    palette = voc_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"colorize expects an integer class-id mask; received dtype {mask.dtype}.")
    valid = mask != ignore_label
    if valid.any() and (mask[valid].min() < 0 or mask[valid].max() >= len(palette)):
        raise ValueError(
            f"mask holds class ids {int(mask[valid].min())}..{int(mask[valid].max())}, "
            f"outside the palette's {len(palette)} colours."
        )
    rgb = palette[np.where(valid, mask, 0)]
    rgb[~valid] = IGNORE_COLOR
    return rgb


def overlay(image, mask, palette=None, alpha=0.5, ignore_label=255):
    """Blend a colourised mask over an RGB image.

    Args:
        image: uint8 array `(H, W, 3)`.
        mask: integer array `(H, W)` of class ids, same H and W.
        palette: optional `(N, 3)` colours. Defaults to `voc_palette()`.
        alpha: weight of the mask colours in [0, 1]. Defaults to 0.5.
        ignore_label: class id left unblended. Defaults to 255.

    Returns:
        uint8 array `(H, W, 3)`.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.shape[:2] != mask.shape[:2] or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"overlay expects an (H, W, 3) image and an (H, W) mask of the same size; "
            f"received image {image.shape} and mask {mask.shape}."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; received {alpha!r}.")
    colours = colorize(mask, palette, ignore_label).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    blended[mask == ignore_label] = image[mask == ignore_label]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
