"""Colour palettes, colourised masks and overlays for looking at segmentations.

The PASCAL VOC palette (the bit-interleaved colour map of the VOC devkit's
`labelcolormap.m`) is the default: it is what VOC's palette PNGs store and
what most segmentation tools draw. Ignored pixels are drawn in a fixed colour.
`render_grid` composes a figure of images, ground truths and predictions
(one row per image, one column per model or configuration) with a legend;
`comparison_figure` fills such a grid from class maps, each prediction
captioned with its mean IU; `spread_indices` picks the images of such a figure.
"""

import numpy as np

__all__ = ["voc_palette", "colorize", "overlay", "render_grid", "comparison_figure", "spread_indices",
           "IGNORE_COLOR", "FIGURE_VOID_COLOR"]  # fmt: skip

# Colour of ignored / void pixels (VOC draws its void boundaries in this cream colour).
IGNORE_COLOR = (224, 224, 192)
# Colour of void pixels in `render_grid` figures (CamVid's own void colour).
FIGURE_VOID_COLOR = (0, 0, 0)


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


def colorize(mask, palette=None, ignore_label=255, ignore_color=IGNORE_COLOR):
    """Map a class-id mask to an RGB image.

    Args:
        mask: integer array `(H, W)` of class ids.
        palette: optional `(N, 3)` uint8 colours indexed by class id.
            Defaults to `voc_palette()`.
        ignore_label: class id drawn in `ignore_color`. Defaults to 255.
        ignore_color: RGB colour of ignored pixels. Defaults to `IGNORE_COLOR`.

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
    rgb[~valid] = ignore_color
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


def spread_indices(num_examples, count=4):
    """`count` image indices spread evenly over a split of `num_examples` (deterministic).

    Args:
        num_examples: images in the split.
        count: how many to choose. Defaults to 4.

    Returns:
        Sorted list of distinct indices, the centres of `count` equal parts.

    Example:
    >>> spread_indices(233)
    [29, 87, 145, 203]
    """
    count = min(count, num_examples)
    return sorted({int((i + 0.5) * num_examples / count) for i in range(count)})


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def render_grid(rows, titles, palette, class_names, cell=(240, 180)):
    """Compose a figure: one row per image, one titled column per cell, and a legend of the classes.

    Args:
        rows: list of rows, each a list of cells `(rgb uint8 (H, W, 3),
            is_mask, caption or None)`; masks are resized with nearest
            neighbour (never blending colours), images with Lanczos.
        titles: column titles, one per cell of a row.
        palette: `(num_classes, 3)` uint8 colours (for the legend).
        class_names: class names (for the legend; void is added in
            `FIGURE_VOID_COLOR`).
        cell: `(width, height)` of each cell. Defaults to `(240, 180)`.

    Returns:
        A PIL `Image` in RGB.

    Example:
    >>> mask = np.array([[0, 1], [1, 255]])
    >>> rgb = colorize(mask, palette, ignore_label=255, ignore_color=FIGURE_VOID_COLOR)
    >>> render_grid([[(image, False, "#0"), (rgb, True, None)]], ["Image", "Truth"],
    ...             palette, ["Sky", "Road"]).save("figure.png")
    """
    from PIL import Image, ImageDraw

    width, height = cell
    gap, title_h = 4, 24
    columns = len(titles)
    if any(len(row) != columns for row in rows):
        raise ValueError(f"render_grid: every row needs {columns} cells (one per title); received "
                         f"rows of {sorted({len(row) for row in rows})}.")  # fmt: skip
    font, small = _font(14), _font(11)
    entries = [(name, tuple(int(v) for v in palette[i])) for i, name in enumerate(class_names)]
    entries.append(("void", FIGURE_VOID_COLOR))
    per_line = 6
    legend_h = 8 + 18 * -(-len(entries) // per_line)
    canvas_w = columns * width + (columns + 1) * gap
    canvas_h = title_h + len(rows) * (height + gap) + gap + legend_h
    canvas = Image.new("RGB", (canvas_w, canvas_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        x = gap + c * (width + gap)
        text_w = draw.textlength(title, font=font)
        draw.text((x + (width - text_w) / 2, 5), title, fill=(0, 0, 0), font=font)
    for r, row in enumerate(rows):
        y = title_h + r * (height + gap)
        for c, (array, is_mask, caption) in enumerate(row):
            x = gap + c * (width + gap)
            tile = Image.fromarray(array).resize(tuple(cell), Image.NEAREST if is_mask else Image.LANCZOS)
            canvas.paste(tile, (x, y))
            if caption:
                box = draw.textbbox((x + 4, y + height - 17), caption, font=small)
                draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
                draw.text((x + 4, y + height - 17), caption, fill=(255, 255, 255), font=small)
    y0 = title_h + len(rows) * (height + gap) + 4
    slot = (canvas_w - gap) // per_line
    for i, (name, colour) in enumerate(entries):
        x, y = gap + (i % per_line) * slot, y0 + (i // per_line) * 18
        draw.rectangle((x, y + 2, x + 12, y + 14), fill=colour, outline=(128, 128, 128))
        draw.text((x + 17, y + 1), name, fill=(0, 0, 0), font=small)
    return canvas


def comparison_figure(images, truths, predictions, palette, class_names, *, ignore_label=255,
                      captions=None, cell=(240, 180), colors=256):  # fmt: skip
    """A figure comparing segmentations: image | ground truth | one column per model, with per-image mean IU.

    Masks are coloured with `palette`, void in `FIGURE_VOID_COLOR`; each
    prediction cell is captioned with that image's mean IU (void ignored,
    `fcn_keras.metrics.ConfusionAccumulator`); the grid is `render_grid`'s.

    Args:
        images: the rows' `(H, W, 3)` uint8 images.
        truths: their `(H, W)` label maps.
        predictions: `{column title: [(H, W) class map per image]}`, in column order.
        palette: `(num_classes, 3)` uint8 colours.
        class_names: the class names (their count is the number of classes).
        ignore_label: void label. Defaults to 255.
        captions: a caption per image cell (e.g. `"#29"`), or None. Defaults to None.
        cell: `(width, height)` of each cell. Defaults to `(240, 180)`.
        colors: palette colours of the returned image (median cut, no
            dithering: a smaller PNG), or 0 for full RGB. Defaults to 256.

    Returns:
        `(figure, scores)`: a PIL `Image`, and `scores[title][r]`, the
        `ConfusionAccumulator.result()` of column `title` on image `r`.

    Raises:
        ValueError: a column without one class map per image.

    Example:
    >>> figure, scores = comparison_figure(images, labels, {"FCN-8s": classes}, palette, names,
    ...                                    captions=[f"#{i}" for i in indices])
    >>> figure.save("figure.png", optimize=True)
    """
    from PIL import Image

    from fcn_keras.metrics import ConfusionAccumulator

    palette = np.asarray(palette, dtype=np.uint8)
    for title, maps in predictions.items():
        if len(maps) != len(images):
            raise ValueError(f"comparison_figure: column {title!r} has {len(maps)} class maps for "
                             f"{len(images)} images; expected one per image.")  # fmt: skip

    def coloured(mask):
        return colorize(mask, palette, ignore_label=ignore_label, ignore_color=FIGURE_VOID_COLOR)

    scores = {title: [] for title in predictions}
    rows = []
    for r, (image, truth) in enumerate(zip(images, truths)):
        row = [(np.asarray(image), False, captions[r] if captions else None), (coloured(truth), True, None)]
        for title, maps in predictions.items():
            accumulator = ConfusionAccumulator(len(class_names), ignore_label)
            accumulator.update(truth, maps[r])
            scores[title].append(accumulator.result())
            row.append((coloured(maps[r]), True, f"mean IU {100 * scores[title][-1]['mean_iu']:.1f}"))
        rows.append(row)
    figure = render_grid(rows, ["Image", "Ground truth", *predictions], palette, class_names, cell)
    if colors:
        figure = figure.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return figure, scores
