"""Bad-input checks for file-based sources, and the skip-and-count report.

Every check raises `BadExampleError` (a `ValueError`) naming the file(s),
what was found and what was expected. Inside a `tf.data` pipeline the error
travels as `tf.errors.InvalidArgumentError` whose message starts with the same
text; nothing is ever dropped silently. With `load_dataset(..., skip_bad=True)`
bad examples are skipped instead, and each one is logged (warning, logger
"fcn_keras.data") and recorded in a `SkipReport` that can be read afterwards.

Image conventions (decided here, documented in docs/data.md):
- 8-bit grayscale (L) and grayscale+alpha images are converted to RGB by
  repeating the channel.
- RGBA images whose alpha is fully opaque (all 255) have alpha dropped; any
  transparency is refused (what is behind a transparent pixel is unknown).
- Palette (P) images are converted to RGB through their palette.
- 16-bit (and 32-bit / float) images are refused: their scaling to 8 bits is
  ambiguous; convert them to 8-bit RGB first.
"""

import logging
import threading

import numpy as np

__all__ = [
    "BadExampleError",
    "SkipReport",
    "check_mask_values",
    "check_same_size",
    "image_to_rgb",
    "bad_example_message",
]

LOGGER = logging.getLogger("fcn_keras.data")


class BadExampleError(ValueError):
    """An example that cannot be used; the message names the file(s)."""


class SkipReport:
    """Counts and lists the examples skipped with `skip_bad=True`.

    Thread-safe: decoding runs in parallel. Each skip is also logged as a
    warning on the "fcn_keras.data" logger with the running count.

    Args:
        log: log each skip as a warning. Defaults to True.

    Example:
    >>> report = SkipReport()
    >>> report.add("a.png", "cannot be decoded")
    >>> report.count, report.files
    (1, ['a.png'])
    """

    def __init__(self, log=True):
        self._lock = threading.Lock()
        self._log = log
        self.skipped = []  # (file(s), reason) pairs, in the order they were met

    def add(self, files, reason):
        """Record one skipped example (and log it as a warning)."""
        with self._lock:
            self.skipped.append((files, reason))
            count = len(self.skipped)
        if self._log:
            LOGGER.warning("skipped bad example #%d (%s): %s", count, files, reason)

    @property
    def count(self):
        """Number of examples skipped so far."""
        with self._lock:
            return len(self.skipped)

    @property
    def files(self):
        """The skipped examples' file names (or keys)."""
        with self._lock:
            return [files for files, _ in self.skipped]

    def summary(self):
        """One line: how many examples were skipped and which."""
        with self._lock:
            if not self.skipped:
                return "skipped 0 bad examples"
            names = ", ".join(str(f) for f, _ in self.skipped[:10])
            more = f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            return f"skipped {len(self.skipped)} bad example(s): {names}{more}"

    def __repr__(self):
        return f"SkipReport({self.summary()})"


def image_to_rgb(array, mode, path):
    """Return an `(H, W, 3)` uint8 RGB array from a decoded image, or raise `BadExampleError`.

    Args:
        array: the decoded pixels, `(H, W)` or `(H, W, C)`.
        mode: a description of the pixel format for messages (e.g. PIL's mode).
        path: the file, for messages.
    """
    if array.dtype != np.uint8:
        raise BadExampleError(
            f"{path}: {array.dtype.itemsize * 8}-bit image (mode {mode}) is not supported; "
            "expected 8-bit RGB, RGBA or grayscale. Convert it to 8-bit first."
        )
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[-1]
    if channels in (2, 4):
        alpha = array[..., -1]
        if alpha.min() != 255:
            raise BadExampleError(
                f"{path}: image has transparent pixels (alpha min {int(alpha.min())}); "
                "expected an opaque image. Flatten it onto a background first."
            )
        array = array[..., :-1]
        channels -= 1
    if channels == 1:
        array = np.repeat(array, 3, axis=-1)
    elif channels != 3:
        raise BadExampleError(f"{path}: image has {channels} channels; expected 1, 3 or 4.")
    return array


def check_same_size(image_shape, mask_shape, image_path, mask_path):
    """Raise `BadExampleError` unless image and mask have the same height and width."""
    if tuple(image_shape[:2]) != tuple(mask_shape[:2]):
        raise BadExampleError(
            f"image {image_path} is {image_shape[1]}x{image_shape[0]} but its mask {mask_path} "
            f"is {mask_shape[1]}x{mask_shape[0]} (width x height); expected the same size."
        )


def check_mask_values(mask, num_classes, ignore_label, path):
    """Raise `BadExampleError` if `mask` holds ids outside [0, num_classes) other than the ignore label."""
    if mask.size == 0:
        return
    low, high = int(mask.min()), int(mask.max())
    if low >= 0 and high < num_classes:
        return
    if low >= 0 and high < 65536:  # bincount is several times faster than unique
        values = np.flatnonzero(np.bincount(mask.ravel()))
    else:
        values = np.unique(mask)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_label)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:20]) + (" ..." if bad.size > 20 else "")
        raise BadExampleError(
            f"{path}: mask holds class id(s) {shown} outside [0, {num_classes}) "
            f"and not the ignore label {ignore_label}; "
            "remap them with label_map= or check num_classes."
        )


def bad_example_message(error):
    """The `BadExampleError` text inside a `tf.errors.OpError` from a pipeline, or None.

    Errors raised while decoding travel through `tf.data` as
    `InvalidArgumentError`s whose message wraps the original text and a
    traceback; this recovers the one line a user needs.
    """
    message = getattr(error, "message", str(error))
    marker = "BadExampleError: "
    start = message.find(marker)
    if start < 0:
        return None
    return message[start + len(marker) :].split("\n", 1)[0].strip()


# === Interpreter shutdown ===
# A tf.data iterator still alive at interpreter exit keeps calling the pipeline's Python
# functions from TensorFlow threads; once finalization starts those threads can never take
# the GIL again and the process hangs. At exit (before finalization) the decoders start
# failing fast instead, so that the iterator stops scheduling them and nothing is left
# waiting for the GIL.
_SHUTTING_DOWN = threading.Event()
_CALLS = [0]


def check_not_shutting_down():
    """Raise once the interpreter is exiting (called first by every Python decoder)."""
    _CALLS[0] += 1
    if _SHUTTING_DOWN.is_set():
        raise RuntimeError("fcn_keras.data: the interpreter is shutting down")


def _on_exit():
    if _CALLS[0]:
        _SHUTTING_DOWN.set()
        import time

        time.sleep(0.5)  # lets in-flight decoder calls finish while the GIL is still usable


import atexit  # noqa: E402

atexit.register(_on_exit)
