"""Reading image and mask files for the file-based sources (VOC, SBD, folders, CamVid).

`FileSource` is the shared base: a split is a list of `(image_path, mask_path)`
pairs; decoding runs in a parallel `tf.data` map through `tf.py_function`, so
that every failure can name its file. Pixels are decoded by TensorFlow's C++
decoders (PNG, JPEG) called eagerly, or by Pillow where TensorFlow cannot give
what is needed (palette indices of palette PNGs, BMP/GIF/TIFF), and `.mat`
masks (SBD) by SciPy. Then the mask is remapped (`label_map`, void ids ->
ignore label) through one lookup table and checked.

Mask formats, told apart by the file itself:
- 8-bit grayscale PNG: the values are class ids (CamVid, SegmentationClassAug).
- 16-bit grayscale PNG: class ids above 255 are allowed.
- Palette PNG (VOC): the palette *indices* are the class ids (not the colours).
- RGB PNG: colour-coded; needs `palette=` (colour -> id); unknown colours are
  an error naming the file and the colours.
- `.mat` (SBD): the `GTcls.Segmentation` array.
"""

import io
import os

import numpy as np
import tensorflow as tf

from fcn_keras.data.info import DatasetInfo
from fcn_keras.data.base import Source
from fcn_keras.data.validation import (
    BadExampleError,
    check_mask_values,
    check_not_shutting_down,
    check_same_size,
    image_to_rgb,
)

__all__ = ["FileSource", "read_image_file", "decode_image_bytes", "decode_mask_file", "build_lut", "parse_palette"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


def _png_header(data):
    """`(bit_depth, colour_type)` of a PNG file's bytes, or None when not a PNG."""
    if len(data) < 26 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def _read(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BadExampleError(f"{path}: cannot be read ({e.strerror or e}).") from None
    if not data:
        raise BadExampleError(f"{path}: file is empty; expected an image.")
    return data


def _pil_open(data, path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise BadExampleError(f"{path}: cannot be decoded: not a recognised image format "
                              f"(starts with {data[:8]!r}).") from None  # fmt: skip
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad files
        raise BadExampleError(f"{path}: cannot be decoded as an image ({e}).") from None
    return image


def read_image_file(path):
    """Read and decode one image file exactly as the file sources do.

    Args:
        path: an image file (PNG, JPEG, BMP, ... anything `decode_image_bytes` takes).

    Returns:
        `(H, W, 3)` uint8 RGB array.

    Raises:
        BadExampleError: (a `ValueError`) the file cannot be read, is empty or
            cannot be decoded; the message names the file and says why.

    Example:
    >>> read_image_file("photos/street.png").shape
    (360, 480, 3)
    """
    return decode_image_bytes(_read(path), path)


def decode_image_bytes(data, path):
    """Decode an image file's bytes to uint8 RGB `(H, W, 3)`, or raise `BadExampleError`.

    Grayscale is converted to RGB; opaque RGBA loses its alpha; transparency
    and 16-bit images are refused (see `fcn_keras.data.validation`).
    """
    header = _png_header(data)
    try:
        if header is not None:
            depth, colour = header
            if depth == 16:
                raise BadExampleError(
                    f"{path}: 16-bit {_PNG_COLOR_TYPES.get(colour, '')} PNG is not supported; "
                    "expected an 8-bit image. Convert it to 8-bit RGB first."
                )
            if colour in (4, 6) or (colour == 3 and b"tRNS" in data[:4096]):
                return image_to_rgb(tf.io.decode_png(data, channels=4).numpy(), "RGBA", path)
            return tf.io.decode_png(data, channels=3).numpy()
        if data[:3] == b"\xff\xd8\xff":
            return tf.io.decode_jpeg(data, channels=3).numpy()
    except tf.errors.OpError as e:
        raise BadExampleError(f"{path}: cannot be decoded as an image ({e.message}).") from None
    image = _pil_open(data, path)
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    array = np.asarray(image)
    return image_to_rgb(array, image.mode, path)


def decode_mask_file(path, palette_lut=None):
    """Decode a mask file to an integer `(H, W)` array of raw ids, or raise `BadExampleError`.

    Args:
        path: a PNG (grayscale, palette or colour-coded RGB), any Pillow
            format, or an SBD `.mat` file.
        palette_lut: for colour-coded masks, `(colour_keys, ids)` from
            `parse_palette`; None refuses RGB masks.
    """
    if path.lower().endswith(".mat"):
        return _decode_mat(path)
    data = _read(path)
    header = _png_header(data)
    try:
        if header is not None:
            depth, colour = header
            if colour == 0:
                dtype = tf.uint16 if depth == 16 else tf.uint8
                return tf.io.decode_png(data, channels=1, dtype=dtype).numpy()[..., 0]
            if colour == 3:
                return np.asarray(_pil_open(data, path))  # the palette indices
            if colour in (2, 6):
                rgb = tf.io.decode_png(data, channels=3).numpy()
                return _colours_to_ids(rgb, palette_lut, path)
            raise BadExampleError(
                f"{path}: {_PNG_COLOR_TYPES.get(colour, colour)} PNG mask; expected grayscale "
                "ids, a palette PNG or (with palette=) colour-coded RGB."
            )
    except tf.errors.OpError as e:
        raise BadExampleError(f"{path}: cannot be decoded as a mask ({e.message}).") from None
    image = _pil_open(data, path)
    array = np.asarray(image)
    if image.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
        return array
    if image.mode in ("RGB", "RGBA"):
        return _colours_to_ids(array[..., :3], palette_lut, path)
    raise BadExampleError(f"{path}: mask in mode {image.mode}; expected one id per pixel.")


def _decode_mat(path):
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as e:  # noqa: BLE001 - SciPy raises many types for bad files
        raise BadExampleError(f"{path}: cannot be read as a .mat file ({e}).") from None
    gt = mat.get("GTcls")
    segmentation = getattr(gt, "Segmentation", None)
    if segmentation is None:
        raise BadExampleError(
            f"{path}: no GTcls.Segmentation in this .mat file (keys: "
            f"{sorted(k for k in mat if not k.startswith('__'))}); expected an SBD cls/ file."
        )
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 2:
        raise BadExampleError(f"{path}: GTcls.Segmentation has shape {segmentation.shape}; "
                              "expected (H, W).")  # fmt: skip
    return segmentation


def parse_palette(palette):
    """Turn `palette=` into `(sorted colour keys, ids)` for colour-coded masks.

    Args:
        palette: a dict `{(r, g, b): id}`, or an `(N, 3)` array whose row `i`
            is the colour of id `i`.
    """
    if palette is None:
        return None
    if isinstance(palette, dict):
        colours = np.array([tuple(int(c) for c in k) for k in palette], np.int64).reshape(-1, 3)
        ids = np.array([int(v) for v in palette.values()], np.int64)
    else:
        colours = np.asarray(palette, np.int64)
        if colours.ndim != 2 or colours.shape[1] != 3:
            raise ValueError(f"palette must be a dict (r, g, b) -> id or an (N, 3) array; "
                             f"received shape {colours.shape}.")  # fmt: skip
        ids = np.arange(len(colours))
    keys = colours[:, 0] << 16 | colours[:, 1] << 8 | colours[:, 2]
    if len(np.unique(keys)) != len(keys):
        raise ValueError("palette maps the same colour twice; expected one id per colour.")
    order = np.argsort(keys)
    return keys[order], ids[order]


def _colours_to_ids(rgb, palette_lut, path):
    if palette_lut is None:
        raise BadExampleError(
            f"{path}: mask is colour-coded RGB; pass palette= (a dict (r, g, b) -> id) "
            "to map its colours to class ids."
        )
    keys, ids = palette_lut
    rgb = rgb.astype(np.int64)
    pixel_keys = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    where = np.clip(np.searchsorted(keys, pixel_keys), 0, len(keys) - 1)
    known = keys[where] == pixel_keys
    if not known.all():
        unknown = np.unique(pixel_keys[~known])
        shown = ", ".join(f"({k >> 16}, {(k >> 8) & 255}, {k & 255})" for k in unknown[:8])
        raise BadExampleError(
            f"{path}: mask has {len(unknown)} colour(s) not in the palette: {shown}"
            f"{' ...' if len(unknown) > 8 else ''}; add them to palette=."
        )
    return ids[where]


def build_lut(label_map, void_ids, ignore_label, size=65536):
    """Lookup table `lut[raw_id] -> id`: identity, then `label_map`, then void ids -> ignore.

    Args:
        label_map: dict `{raw_id: id}` or None.
        void_ids: raw ids meaning "unlabelled", mapped to `ignore_label`.
        ignore_label: the pipeline's ignore label.
        size: table length (raw ids must be below it).
    """
    lut = np.arange(size, dtype=np.int64)
    for raw in void_ids or ():
        lut[int(raw)] = ignore_label
    for raw, new in (label_map or {}).items():
        if not 0 <= int(raw) < size:
            raise ValueError(f"label_map key {raw!r} outside [0, {size}).")
        lut[int(raw)] = int(new)
    return lut


class FileSource(Source):
    """Base of sources whose examples are `(image file, mask file)` pairs.

    Subclasses set `self._info` and implement `pairs(split)` returning a list
    of `(image_path, mask_path)`; options common to all of them:

    Args:
        num_classes: number of classes (ids `0 .. num_classes-1`).
        class_names: names; defaults to "class_0", "class_1", ...
        ignore_label: the pipeline's ignore label. Defaults to 255.
        void_ids: raw mask ids meaning unlabelled, mapped to `ignore_label`.
        label_map: dict `{raw_id: id}` applied to the masks (before checks).
        palette: colours of colour-coded RGB masks, `{(r, g, b): id}` or an
            `(N, 3)` array; also used to draw masks. Defaults to None.
        check_values: check every mask's ids. Defaults to True.
    """

    def __init__(self, name, num_classes, class_names=None, ignore_label=255, void_ids=(),
                 label_map=None, palette=None, draw_palette=None, description="",
                 check_values=True):  # fmt: skip
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"{name}: num_classes must be a positive int; received {num_classes!r}.")
        class_names = class_names or tuple(f"class_{i}" for i in range(num_classes))
        self.ignore_label = int(ignore_label)
        self.num_classes = int(num_classes)
        self.palette_lut = parse_palette(palette)
        self.lut = build_lut(label_map, void_ids, self.ignore_label)
        self.identity_lut = not label_map and not void_ids
        small = self.lut[:256]
        self.lut8 = small.astype(np.uint8) if small.min() >= 0 and small.max() < 256 else None
        self.check_values = check_values
        if draw_palette is None and palette is not None and not isinstance(palette, dict):
            draw_palette = np.asarray(palette)[:num_classes]
        self._info = DatasetInfo(name=name, num_classes=self.num_classes, class_names=class_names,
                                 ignore_label=self.ignore_label, palette=draw_palette,
                                 description=description)  # fmt: skip
        self._pairs = {}

    def info(self):
        """The `DatasetInfo`, with `num_examples` counted for the splits `known_splits()` finds."""
        for split in self.known_splits():
            if split not in self._info.num_examples:
                try:
                    self._info.num_examples[split] = len(self.pairs(split))
                except (OSError, ValueError):
                    pass  # reported when the split is loaded
        return self._info

    def known_splits(self):
        """Names of the splits present on disk (subclasses; default none)."""
        return ()

    def pairs(self, split):
        """Return the split's `(image_path, mask_path)` list (subclasses)."""
        raise NotImplementedError

    def _checked_pairs(self, split):
        if split not in self._pairs:
            pairs = list(self.pairs(split))
            if not pairs:
                raise ValueError(f"{self._info.name}: split {split!r} is empty; "
                                 "no (image, mask) pairs were found.")  # fmt: skip
            missing = [p for pair in pairs for p in pair if not os.path.isfile(p)]
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                raise FileNotFoundError(
                    f"{self._info.name} split {split!r}: {len(missing)} listed file(s) do not "
                    f"exist: {shown}."
                )
            self._pairs[split] = pairs
            self._info.num_examples[split] = len(pairs)
        return self._pairs[split]

    def num_examples(self, split):
        return len(self._checked_pairs(split))

    def keys(self, split):
        pairs = self._checked_pairs(split)
        images, masks = zip(*pairs)
        return tf.data.Dataset.from_tensor_slices(
            {"image": list(images), "mask": list(masks)}
        )

    def load_example(self, image_path, mask_path):
        """Decode and check one pair in Python: `(uint8 (H, W, 3), int32 (H, W))`."""
        image = decode_image_bytes(_read(image_path), image_path)
        raw = decode_mask_file(mask_path, self.palette_lut)
        check_same_size(image.shape, raw.shape, image_path, mask_path)
        if raw.dtype == np.uint8:  # the common case: a 256-entry table, uint8 all the way
            mask = raw if self.identity_lut else np.take(self.lut8 if self.lut8 is not None
                                                         else self.lut[:256], raw)  # fmt: skip
        else:
            if raw.dtype.kind not in "iu":
                raw = raw.astype(np.int64)
            if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= len(self.lut)):
                raise BadExampleError(f"{mask_path}: mask ids {int(raw.min())}..{int(raw.max())} "
                                      f"are outside [0, {len(self.lut)}).")  # fmt: skip
            mask = raw if self.identity_lut else self.lut[raw]
        if self.check_values:
            check_mask_values(mask, self.num_classes, self.ignore_label, mask_path)
        return image, mask.astype(np.int32)

    def decode(self, keys, *, num_parallel_calls, deterministic, skip_report):
        def load(image_path, mask_path):
            check_not_shutting_down()
            image_path = image_path.numpy().decode()
            mask_path = mask_path.numpy().decode()
            try:
                image, mask = self.load_example(image_path, mask_path)
            except BadExampleError as e:
                if skip_report is None:
                    raise
                skip_report.add(f"{image_path}, {mask_path}", str(e))
                return np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), np.int32), False
            return image, mask, True

        def load_tf(key):
            image, mask, ok = tf.py_function(
                load, [key["image"], key["mask"]], [tf.uint8, tf.int32, tf.bool]
            )
            image.set_shape([None, None, 3])
            mask.set_shape([None, None])
            ok.set_shape([])
            return image, mask, ok

        ds = keys.map(load_tf, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
        if skip_report is not None:
            ds = ds.filter(lambda image, mask, ok: ok)
        return ds.map(lambda image, mask, ok: (image, mask))
