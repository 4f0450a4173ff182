"""`Predictor`: run an exported FCN (ONNX, TFLite, SavedModel) or a Keras model on raw images.

All engines take the same input as the Keras model, raw RGB uint8 images of any
size (one `(H, W, 3)` image, a `(N, H, W, 3)` batch, or a list of images of
different sizes), because every artifact carries the preprocessing inside its
graph; they all return float32 logits `(…, H, W, num_classes)` of the same
size. The ONNX engine is an onnxruntime `InferenceSession` whose intra-op and
inter-op thread counts are exposed; TFLite runs in `ai_edge_litert`'s
interpreter (XNNPACK), resized to each input's size.

The dataset facts stored with the artifact (or carried by a `.keras` model)
are exposed as `class_names`, `ignore_label` and `palette`. onnxruntime and
ai_edge_litert are imported when an engine of theirs is loaded: each takes
seconds to import, and a Predictor for one engine should not pay for the other.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from fcn_keras.choices import ENGINES

from ._artifacts import dataset_info_of, read_metadata

__all__ = ["Predictor", "ENGINES", "engine_for_path", "prepare_images"]

def engine_for_path(path):
    """Guess the engine from an artifact path (`.onnx`, `.tflite`, `.keras`, a directory)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return "savedmodel"
    for suffix, engine in ((".onnx", "onnx"), (".tflite", "tflite"), (".keras", "keras"),
                           (".h5", "keras")):  # fmt: skip
        if path.endswith(suffix):
            return engine
    raise ValueError(
        f"cannot tell the engine of {path!r}: expected a '.onnx', '.tflite' or '.keras' file "
        "or a SavedModel directory (or pass engine=...)."
    )


def prepare_images(images, what="input"):
    """Validate raw RGB input and return `(batches, single)`.

    Args:
        images: `(H, W, 3)`, `(N, H, W, 3)`, or a list of `(H, W, 3)` arrays.
        what: how to name the input in errors.

    Returns:
        `(list of uint8 (N, H, W, 3) arrays, kind)` with kind `"single"`,
        `"batch"` or `"list"`.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"{what}: received an empty list of images.")
        return [_as_batch(np.asarray(image), f"{what}[{i}]", single_only=True)
                for i, image in enumerate(images)], "list"  # fmt: skip
    array = np.asarray(images)
    kind = "single" if array.ndim == 3 else "batch"
    return [_as_batch(array, what)], kind


def _as_batch(array, what, single_only=False):
    if array.ndim == 3 or (array.ndim == 4 and not single_only):
        pass
    else:
        expected = "(H, W, 3)" if single_only else "(H, W, 3) or (N, H, W, 3)"
        raise ValueError(
            f"{what} must be a raw RGB image {expected}; received rank {array.ndim} with "
            f"shape {array.shape}."
        )
    if array.shape[-1] != 3:
        raise ValueError(
            f"{what} must have 3 channels (RGB); received shape {array.shape} with "
            f"{array.shape[-1]} channels. Convert grayscale/RGBA images to RGB first."
        )
    if array.ndim == 3:
        array = array[None]
    if 0 in array.shape:
        raise ValueError(f"{what} is empty: shape {array.shape}.")
    if array.dtype != np.uint8:
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ValueError(f"{what} must be numeric RGB in [0, 255]; received dtype {array.dtype}.")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"{what} must hold raw RGB values in [0, 255]; received values in "
                f"[{low:g}, {high:g}] (dtype {array.dtype})."
            )
        array = np.rint(array).astype(np.uint8)
    return np.ascontiguousarray(array)


class Predictor:
    """Run an exported FCN or a Keras FCN on raw RGB images.

    Args:
        path: artifact path (`.onnx`, `.tflite`, SavedModel directory,
            `.keras`), or a `keras.Model` instance with `engine="keras"`.
        engine: `"onnx"`, `"tflite"`, `"savedmodel"` or `"keras"`. Defaults to
            `None`: guessed from the path.
        num_threads: threads for the engine (onnxruntime intra-op threads,
            TFLite interpreter threads, TensorFlow intra-op threads where not
            yet initialised). Defaults to `None` (the engine's default: all cores).
        inter_op_threads: onnxruntime inter-op threads (used with parallel
            execution only). Defaults to `None`.
        num_classes: optional expected number of classes; a mismatch with
            the artifact raises `ValueError` naming both.
        providers: onnxruntime execution providers. Defaults to CPU.

    Attributes:
        num_classes: classes the artifact predicts.
        input_size: `(height, width)` for fixed-size artifacts, else `None`.
        metadata: fcn_keras metadata stored with the artifact (may be `{}`).
        dataset_info: the `fcn_keras.DatasetInfo` stored with the artifact
            (or the Keras model's), or `None`.
        class_names: tuple of class names, or `None` when not stored.
        ignore_label: the void label id of the training data, or `None`.
        palette: `(num_classes, 3)` uint8 colours, or `None`.

    Example:
    >>> predictor = export.Predictor("fcn8s.onnx", num_threads=2)
    >>> logits = predictor.predict(image)          # (H, W, num_classes) float32
    >>> mask = predictor.predict_classes(image)    # (H, W) int32
    >>> predictor.class_names[:2]                  # from the artifact's metadata
    ('Sky', 'Building')
    """

    def __init__(self, path, engine=None, num_threads=None, inter_op_threads=None,
                 num_classes=None, providers=None):  # fmt: skip
        self.model = None
        if not isinstance(path, (str, os.PathLike)):
            if engine not in (None, "keras"):
                raise ValueError(f"an in-memory model runs with engine='keras'; received {engine!r}.")
            self.model, self.path, self.engine = path, f"<keras.Model {path.name}>", "keras"
        else:
            self.path = os.fspath(path)
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"model artifact not found: {self.path!r}.")
            self.engine = engine or engine_for_path(self.path)
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}; received {self.engine!r}.")
        self.num_threads = num_threads
        self.input_size = None
        self.metadata = {}
        if self.model is None and self.engine != "keras":
            self.metadata = read_metadata(self.path)
        getattr(self, f"_load_{self.engine}")(num_threads, inter_op_threads, providers)
        self.dataset_info = dataset_info_of(self.metadata if self.model is None else self.model)
        if self.dataset_info is not None and self.dataset_info.num_classes != self.num_classes:
            raise ValueError(
                f"{self.path!r}: its dataset_info {self.dataset_info.name!r} has "
                f"{self.dataset_info.num_classes} classes but the graph outputs {self.num_classes}."
            )
        if num_classes is not None and num_classes != self.num_classes:
            raise ValueError(
                f"{self.path!r} was exported for {self.num_classes} classes, but "
                f"num_classes={num_classes} was expected."
            )

    @property
    def class_names(self):
        """Class names stored with the model (tuple), or `None`."""
        return None if self.dataset_info is None else self.dataset_info.class_names

    @property
    def ignore_label(self):
        """The training data's void label id, or `None` when not stored."""
        return None if self.dataset_info is None else self.dataset_info.ignore_label

    @property
    def palette(self):
        """`(num_classes, 3)` uint8 colours stored with the model, or `None`."""
        return None if self.dataset_info is None else self.dataset_info.palette

    def __repr__(self):
        return (f"Predictor({self.path!r}, engine={self.engine!r}, num_classes={self.num_classes}, "
                f"input_size={self.input_size})")  # fmt: skip

    # === Loading, one per engine ===

    def _fail(self, e):
        raise ValueError(f"cannot load {self.engine} artifact {self.path!r}: {e}") from e

    def _load_onnx(self, num_threads, inter_op_threads, providers):
        import onnxruntime as ort  # imported at use, see the module docstring

        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
        if inter_op_threads is not None:
            options.inter_op_num_threads = int(inter_op_threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                self.path, options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:
            self._fail(e)
        inputs = self._session.get_inputs()
        outputs = {o.name: o for o in self._session.get_outputs()}
        if len(inputs) != 1 or "logits" not in outputs:
            raise ValueError(
                f"{self.path!r} is not an fcn_keras ONNX export: expected one input 'image' and "
                f"an output 'logits'; found inputs {[i.name for i in inputs]} and outputs "
                f"{sorted(outputs)}."
            )
        self._input_name = inputs[0].name
        shape = inputs[0].shape
        self._check_input_shape(shape)
        self.num_classes = self._classes_from_shape(outputs["logits"].shape)

    def _load_tflite(self, num_threads, inter_op_threads, providers):
        from ai_edge_litert.interpreter import Interpreter  # imported at use, see the module docstring

        try:
            self._interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
            self._runner = self._interpreter.get_signature_runner("serving_default")
        except Exception as e:
            self._fail(e)
        input_details = self._runner.get_input_details()
        output_details = self._runner.get_output_details()
        if "image" not in input_details or "logits" not in output_details:
            raise ValueError(
                f"{self.path!r} is not an fcn_keras TFLite export: expected signature input "
                f"'image' and output 'logits'; found {sorted(input_details)} -> "
                f"{sorted(output_details)}."
            )
        image = input_details["image"]
        self._tflite_input = image
        self._check_input_shape(list(image["shape_signature"]))
        self.num_classes = self._classes_from_shape(list(output_details["logits"]["shape_signature"]))

    def _load_savedmodel(self, num_threads, inter_op_threads, providers):
        _set_tf_threads(num_threads, inter_op_threads)
        try:
            loaded = tf.saved_model.load(self.path)
            self._serve = loaded.signatures["serving_default"]
        except KeyError:
            raise ValueError(
                f"{self.path!r} has no 'serving_default' signature; found "
                f"{sorted(loaded.signatures)}."
            ) from None
        except Exception as e:
            self._fail(e)
        self._loaded = loaded
        specs = self._serve.structured_input_signature[1]
        outputs = self._serve.structured_outputs
        if "image" not in specs or "logits" not in outputs:
            raise ValueError(
                f"{self.path!r} is not an fcn_keras SavedModel: expected signature input "
                f"'image' and output 'logits'; found {sorted(specs)} -> {sorted(outputs)}."
            )
        self._check_input_shape(specs["image"].shape.as_list())
        self.num_classes = self._classes_from_shape(outputs["logits"].shape.as_list())

    def _load_keras(self, num_threads, inter_op_threads, providers):
        _set_tf_threads(num_threads, inter_op_threads)
        if self.model is None:
            try:
                self.model = keras.saving.load_model(self.path, compile=False)
            except Exception as e:
                self._fail(e)
        shape = self.model.inputs[0].shape
        self._check_input_shape(list(shape))
        self.num_classes = self._classes_from_shape(list(self.model.outputs[0].shape))

    def _check_input_shape(self, shape):
        if len(shape) != 4 or shape[-1] not in (3, None, -1):
            raise ValueError(
                f"{self.path!r} does not take (batch, H, W, 3) images: its input shape is {shape}."
            )
        height, width = shape[1], shape[2]
        fixed = [int(s) if isinstance(s, (int, np.integer)) and s > 0 else None
                 for s in (height, width)]  # fmt: skip
        self.input_size = tuple(fixed) if None not in fixed else None

    def _classes_from_shape(self, shape):
        classes = shape[-1] if shape else None
        if isinstance(classes, np.integer):
            classes = int(classes)
        if not isinstance(classes, int) or classes < 1:
            classes = self.metadata.get("num_classes")
        if classes is None:
            raise ValueError(f"cannot read the number of classes of {self.path!r} (logits shape {shape}).")
        meta_classes = self.metadata.get("num_classes")
        if meta_classes is not None and meta_classes != classes:
            raise ValueError(
                f"{self.path!r}: metadata says {meta_classes} classes but the graph outputs {classes}."
            )
        return int(classes)

    # === Running ===

    def _run_batch(self, batch):
        if self.input_size is not None and tuple(batch.shape[1:3]) != self.input_size:
            raise ValueError(
                f"{self.path!r} was exported for a fixed input size {self.input_size} "
                f"(height, width); received images of size {tuple(batch.shape[1:3])}. Resize "
                "them first, or export with dynamic size (input_size=None)."
            )
        if self.engine == "onnx":
            (logits,) = self._session.run(["logits"], {self._input_name: batch})
        elif self.engine == "tflite":
            logits = self._runner(image=batch)["logits"]
        elif self.engine == "savedmodel":
            logits = self._serve(image=tf.constant(batch))["logits"].numpy()
        else:
            logits = np.asarray(self.model(batch, training=False))
        return np.asarray(logits, dtype=np.float32)

    def predict(self, images):
        """Return float32 logits for raw RGB images.

        Args:
            images: one uint8 image `(H, W, 3)`, a batch `(N, H, W, 3)`, or a
                list of images of different sizes. Values in [0, 255].

        Returns:
            `(H, W, num_classes)`, `(N, H, W, num_classes)`, or a list of
            `(H, W, num_classes)` arrays, following the input.
        """
        batches, kind = prepare_images(images, f"input to {self.engine} model {self.path!r}")
        outputs = [self._run_batch(batch) for batch in batches]
        if kind == "single":
            return outputs[0][0]
        if kind == "batch":
            return outputs[0]
        return [out[0] for out in outputs]

    def predict_classes(self, images):
        """Return int32 class maps (argmax of the logits), shaped like `predict` without classes."""
        logits = self.predict(images)
        if isinstance(logits, list):
            return [np.argmax(out, axis=-1).astype(np.int32) for out in logits]
        return np.argmax(logits, axis=-1).astype(np.int32)


def _set_tf_threads(intra, inter):
    try:
        if intra is not None:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra))
        if inter is not None:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter))
    except RuntimeError:
        pass  # TensorFlow already initialised: its thread pools are fixed for this process.
