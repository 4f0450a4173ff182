"""Unlabelled image files for `fcn-keras predict` and `fcn-keras export --images`.

Listing a folder and decoding its files go through the data package's one
image reader (`fcn_keras.data.files.read_image_file`), so a file predicted
on is read exactly as a training image would be: grayscale and palette images
become RGB, opaque RGBA loses its alpha, transparent and 16-bit images are
refused with a message naming the file. Importing this module does not import
TensorFlow; the reading functions do.
"""

import os

__all__ = ["image_files", "read_image"]


def image_files(paths):
    """List image files from files and folders (a folder's images sorted by name).

    Args:
        paths: file or folder paths.

    Returns:
        list of file paths.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a folder holds no image.
    """
    from fcn_keras.data.folders import IMAGE_EXTENSIONS

    files = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            entries = sorted(e for e in os.listdir(path) if e.lower().endswith(IMAGE_EXTENSIONS))
            if not entries:
                raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path!r}.")
            files += [os.path.join(path, e) for e in entries]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"image path not found: {path!r}.")
    return files


def _mode(path):
    """Pillow's pixel mode of an image file from its header (no decoding), or None."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode
    except Exception:  # noqa: BLE001 - the decoder below reports unreadable files
        return None


_CONVERSIONS = {
    "L": "grayscale image converted to RGB",
    "LA": "grayscale+alpha image (opaque) converted to RGB",
    "P": "palette image converted to RGB",
    "PA": "palette+alpha image (opaque) converted to RGB",
    "RGBA": "RGBA image (opaque): alpha dropped",
    "1": "1-bit image converted to RGB",
}


def read_image(path):
    """Decode an image file to uint8 RGB and say what conversion it took.

    Args:
        path: an image file.

    Returns:
        `(image, note)`: the `(H, W, 3)` uint8 array and a one-line note on the
        conversion (e.g. "grayscale image converted to RGB"), or None for RGB.

    Raises:
        ValueError: the file cannot be read or decoded (the message names it
            and says why).

    Example:
    >>> image, note = read_image("scan.png")
    >>> image.shape, note
    ((480, 640, 3), 'grayscale image converted to RGB')
    """
    from fcn_keras.data.files import read_image_file

    image = read_image_file(path)
    return image, _CONVERSIONS.get(_mode(path))
