"""`Predictor`: run an exported FCN (ONNX, TFLite, SavedModel) or a Keras model on raw images.

All engines take the same input as the Keras model, raw RGB uint8 images of any
size (one `(H, W, 3)` image, a `(N, H, W, 3)` batch, or a list of images of
different sizes), because every artifact carries the preprocessing inside its
graph; they all return float32 logits `(…, H, W, num_classes)` of the same
size. The ONNX engine is an onnxruntime `InferenceSession` (every graph
optimisation on, NCHWc layout included; intra-op and inter-op thread counts
exposed); TFLite runs in `ai_edge_litert`'s interpreter (XNNPACK), resized to
each input's size.

The keras engine runs the model compiled by XLA (`jit_compile=True`, the
default): on CPU it is 1.5-2x faster than the plain TensorFlow graph, whose
oneDNN convolutions re-lay-out every weight on every call (docs/benchmarks.md).
XLA compiles once per input shape; the engine pads each batch to the next
multiple of 32 with the model's mean colour, which the network's own
`PadToMultiple(32)` would add as zeros after preprocessing, and crops the
logits back, so all sizes within one 32-pixel bucket share one compilation
and give the same logits as the unpadded call. Images smaller than 224
pixels (fc6's 7x7 kernel larger than the pool5 map, where XLA's CPU
convolution is many times slower) run the plain graph. `jit_compile=False`
runs the plain graph for every size. The savedmodel engine runs the signature as exported
(`serving_default` is XLA-compiled by default, see `export_savedmodel`).

`precision="bfloat16"` (keras and savedmodel engines) computes in bfloat16
for CPUs with AMX or AVX512-BF16 (and bfloat16 GPUs): the keras engine
through the model's `mixed_bfloat16` rebuild, the savedmodel engine through
its `serving_bfloat16` signature; not XLA-compiled by default, as XLA's
bfloat16 convolutions are slower than oneDNN's on CPU.
`precision="float16"` (tflite engine, a fixed-size file) computes in IEEE
half precision on CPUs with fp16 arithmetic (AVX512-FP16: Intel Sapphire
Rapids and later; ARMv8.2 FP16: phones, Apple silicon): the file runs in
LiteRT's `CompiledModel` with XNNPACK's forced-FP16 flag, which the
interpreter API cannot set, and XNNPACK honours a float16 file's "reduced
precision" metadata on ARM only. Dynamic-size files are refused: resizing an
input of a `CompiledModel` crashes the process in ai-edge-litert 2.3.

Each engine is one backend class (`_OnnxBackend`, `_TFLiteBackend`,
`_SavedModelBackend`, `_KerasBackend`) behind one interface, `load` and
`run(batch)`; `Predictor` validates arguments and images around it. The
onnx engine profiles (onnxruntime's per-node JSON trace) only with
`profile_dir=`, into that folder: onnxruntime's own default would write
into the working directory.

The dataset facts stored with the artifact (or carried by a `.keras` model)
are exposed as `class_names`, `ignore_label` and `palette`. onnxruntime and
ai_edge_litert are imported when an engine of theirs is loaded: each takes
seconds to import, and a Predictor for one engine should not pay for the other.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from fcn_keras.choices import ENGINES, INFERENCE_PRECISIONS
from fcn_keras.evaluation import input_scale_of, scaled_logits

from ._artifacts import dataset_info_of, float32_model, read_metadata
from .savedmodel import BFLOAT16_SIGNATURE_KEY, SIGNATURE_KEY, bfloat16_serving_function

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

    Each engine is a backend (`_OnnxBackend`, `_TFLiteBackend`,
    `_SavedModelBackend`, `_KerasBackend`) behind one interface: `load` opens
    the artifact and states its input and logits shapes, `run(batch)` turns a
    uint8 batch into float32 logits. The Predictor validates the arguments
    and the input images, reads the model's facts (metadata, dataset info)
    and checks them against what the backend loaded.

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
        precision: `"float32"`, `"bfloat16"` (keras and savedmodel engines:
            the keras model's `mixed_bfloat16` rebuild, the SavedModel's
            `serving_bfloat16` signature) or `"float16"` (tflite engine, a
            fixed-size file, a CPU with fp16 arithmetic: XNNPACK computes in
            IEEE half precision). Defaults to `"float32"`.
        jit_compile: keras engine only: compile with XLA. Defaults to None:
            True for float32, False for bfloat16 (the faster of each on CPU,
            docs/benchmarks.md).
        profile_dir: onnx engine only: a folder (created if missing) where
            onnxruntime writes its per-node profile (`onnxruntime_profile_*.json`,
            finished by `end_profiling()`). Defaults to `None`: no profiling
            (onnxruntime would otherwise write into the working directory).

    Attributes:
        num_classes: classes the artifact predicts.
        input_size: `(height, width)` for fixed-size artifacts, else `None`.
        metadata: fcn_keras metadata stored with the artifact (may be `{}`).
        dataset_info: the `fcn_keras.DatasetInfo` stored with the artifact
            (or the Keras model's), or `None`.
        class_names: tuple of class names, or `None` when not stored.
        ignore_label: the void label id of the training data, or `None`.
        palette: `(num_classes, 3)` uint8 colours, or `None`.
        input_scale: the scale the model was trained at (metadata
            `input_scale`, 1.0 when none): `predict` shrinks the images by it
            and returns logits of the images' size
            (`fcn_keras.evaluation.scaled_logits`); `input_size` is the
            network's own.
        precision: what the engine computes in.
        jit_compile: whether the keras engine runs XLA-compiled (None for
            other engines).
        session_options: the onnxruntime `SessionOptions` of the onnx engine
            (None for other engines).

    Example:
    >>> predictor = export.Predictor("fcn8s.onnx", num_threads=2)
    >>> logits = predictor.predict(image)          # (H, W, num_classes) float32
    >>> mask = predictor.predict_classes(image)    # (H, W) int32
    >>> predictor.class_names[:2]                  # from the artifact's metadata
    ('Sky', 'Building')
    """

    def __init__(self, path, engine=None, num_threads=None, inter_op_threads=None,
                 num_classes=None, providers=None, precision="float32", jit_compile=None,
                 profile_dir=None):  # fmt: skip
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
        if precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"precision must be one of {INFERENCE_PRECISIONS}; received {precision!r}.")
        backend_class = _BACKENDS[self.engine]
        if precision not in backend_class.precisions:
            engines = [name for name, backend in _BACKENDS.items() if precision in backend.precisions]
            raise ValueError(
                f"precision={precision!r} runs in the {' and '.join(engines)} "
                f"engine{'s' * (len(engines) > 1)}; the {self.engine} artifact "
                f"{self.path!r} computes in {backend_class.computes_in}."
            )
        if jit_compile is not None and self.engine != "keras":
            raise ValueError(
                f"jit_compile applies to the keras engine; a {self.engine} artifact runs as "
                f"exported (received jit_compile={jit_compile!r})."
            )
        if profile_dir is not None and self.engine != "onnx":
            raise ValueError(
                f"profile_dir applies to the onnx engine (onnxruntime's profiler); the "
                f"{self.engine} artifact {self.path!r} has none (received profile_dir={profile_dir!r})."
            )
        self.precision = precision
        self.num_threads = num_threads
        self.metadata = {}
        if self.model is None and self.engine != "keras":
            self.metadata = read_metadata(self.path)
        self._backend = backend_class(self.path, precision, model=self.model)
        self._backend.load(num_threads=num_threads, inter_op_threads=inter_op_threads,
                           providers=providers, jit_compile=jit_compile, profile_dir=profile_dir)  # fmt: skip
        if self.engine == "keras":
            self.model = self._backend.model
        self.input_size = self._backend.input_size
        self.num_classes = self._classes_from_shape(self._backend.logits_shape)
        self.jit_compile = self._backend.jit_compile
        self.session_options = self._backend.session_options
        self.dataset_info = dataset_info_of(self.metadata if self.model is None else self.model)
        self.input_scale = input_scale_of(self.metadata if self.model is None else self.model)
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

    def __getattr__(self, name):
        # An engine's own state (the onnx engine's `_session`, the keras engine's XLA function
        # and padding bucket, ...) lives on its backend; private reads through the Predictor
        # reach it there. Public names are the Predictor's own and are never forwarded.
        backend = self.__dict__.get("_backend")
        if backend is None or not name.startswith("_") or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(backend, name)

    def end_profiling(self):
        """Finish the onnx engine's profile and return the path of its JSON trace.

        Returns:
            The path of the `onnxruntime_profile_*.json` file in `profile_dir`.

        Example:
        >>> predictor = export.Predictor("fcn8s.onnx", profile_dir="/tmp/profiles")
        >>> predictor.predict(image)
        >>> predictor.end_profiling()   # '/tmp/profiles/onnxruntime_profile_....json'
        """
        if self.engine != "onnx" or not self.session_options.enable_profiling:
            raise ValueError(
                f"{self.path!r} is not being profiled: pass profile_dir=... to an onnx-engine "
                f"Predictor (engine {self.engine!r})."
            )
        return self._backend._session.end_profiling()

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
        return np.asarray(self._backend.run(batch), dtype=np.float32)

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
        outputs = [scaled_logits(self._run_batch, batch, self.input_scale) for batch in batches]
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


# === Backends, one per engine ===


class _Backend:
    """One engine's runtime: opens an artifact, states its shapes, runs uint8 batches.

    Subclasses set `engine`, the `precisions` they compute in (and, for the
    error on any other, what they do compute in: `computes_in`), and
    implement `load` (which calls `_declare` with the input and logits shapes
    as the artifact states them) and `run`. The model's facts (metadata,
    dataset info, class count checks) are the `Predictor`'s, not a backend's.

    Args:
        path: the artifact path (or the `Predictor`'s name of an in-memory model).
        precision: one of the backend's `precisions`.
        model: an in-memory `keras.Model` (keras backend only), else `None`.
    """

    engine = None
    precisions = ("float32",)
    computes_in = "float32"

    def __init__(self, path, precision, model=None):
        self.path, self.precision, self.model = path, precision, model
        self.input_size = None
        self.logits_shape = None
        self.jit_compile = None
        self.session_options = None

    def load(self, num_threads=None, inter_op_threads=None, providers=None, jit_compile=None,
             profile_dir=None):  # fmt: skip
        """Open the artifact with the engine's settings (each backend reads those it has)."""
        raise NotImplementedError

    def run(self, batch):
        """Logits `(N, H, W, num_classes)` of a uint8 `(N, H, W, 3)` batch."""
        raise NotImplementedError

    def _fail(self, e):
        raise ValueError(f"cannot load {self.engine} artifact {self.path!r}: {e}") from e

    def _declare(self, input_shape, logits_shape):
        """Record the artifact's shapes: `input_size` (fixed height and width, or None) and logits."""
        if len(input_shape) != 4 or input_shape[-1] not in (3, None, -1):
            raise ValueError(
                f"{self.path!r} does not take (batch, H, W, 3) images: its input shape is {input_shape}."
            )
        height, width = input_shape[1], input_shape[2]
        fixed = [int(s) if isinstance(s, (int, np.integer)) and s > 0 else None
                 for s in (height, width)]  # fmt: skip
        self.input_size = tuple(fixed) if None not in fixed else None
        self.logits_shape = logits_shape


class _OnnxBackend(_Backend):
    """onnxruntime `InferenceSession`: every graph optimisation, intra- and inter-op threads."""

    engine = "onnx"
    computes_in = (
        "the precision it was exported in (onnxruntime's CPU kernels have no float16 or "
        "bfloat16 convolutions; export with quantization='int8' for a reduced-precision file)"
    )

    def load(self, num_threads=None, inter_op_threads=None, providers=None, jit_compile=None,
             profile_dir=None):  # fmt: skip
        import onnxruntime as ort  # imported at use, see the module docstring

        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
        if inter_op_threads is not None:
            options.inter_op_num_threads = int(inter_op_threads)
        # Every graph optimisation, the NCHWc layout transformer included (convolutions in
        # MLAS's blocked layout, weights packed once when the session is created); one
        # sequential stream of nodes, the intra-op threads spinning between them (the
        # defaults, stated: docs/benchmarks.md has the measured alternatives).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        if profile_dir is not None:
            # onnxruntime writes its profile to `<prefix>_<date>.json` relative to the working
            # directory; the prefix puts it in the folder asked for instead.
            os.makedirs(profile_dir, exist_ok=True)
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(os.path.abspath(profile_dir), "onnxruntime_profile")
        self.session_options = options
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
        self._declare(inputs[0].shape, outputs["logits"].shape)

    def run(self, batch):
        (logits,) = self._session.run(["logits"], {self._input_name: batch})
        return logits


class _TFLiteBackend(_Backend):
    """ai_edge_litert's interpreter (XNNPACK); float16: LiteRT's `CompiledModel`, XNNPACK forced FP16."""

    engine = "tflite"
    precisions = ("float32", "float16")
    computes_in = (
        "float32 or, for a fixed-size file on a CPU with fp16 arithmetic, float16 (LiteRT's "
        "CPU kernels have no bfloat16 convolutions)"
    )

    def load(self, num_threads=None, inter_op_threads=None, providers=None, jit_compile=None,
             profile_dir=None):  # fmt: skip
        from ai_edge_litert import interpreter  # imported at use, see the module docstring

        half = self.precision == "float16"
        if half:
            _require_fp16_arithmetic(self.path)
        # For float16 the interpreter only reads the signature (builtin kernels: no XNNPACK
        # weight packing); LiteRT's CompiledModel runs the file.
        resolver = {"experimental_op_resolver_type":
                    interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if half else {}  # fmt: skip
        try:
            self._interpreter = interpreter.Interpreter(model_path=self.path, num_threads=num_threads,
                                                        **resolver)  # fmt: skip
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
        # An int8 mobile file may keep its scores quantized (uint8): read them as float32 logits.
        scale, zero_point = output_details["logits"].get("quantization", (0.0, 0))
        self._dequantize = (float(scale), int(zero_point)) if np.issubdtype(
            output_details["logits"]["dtype"], np.integer) and scale else None  # fmt: skip
        self._declare(list(image["shape_signature"]), list(output_details["logits"]["shape_signature"]))
        self._compiled = None
        if half:
            self._load_float16(num_threads)

    def _load_float16(self, num_threads):
        """Run the file in LiteRT's `CompiledModel`, XNNPACK forced to IEEE half precision."""
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.cpu_options import CpuOptions
        from ai_edge_litert.options import Options

        if self.input_size is None:
            raise ValueError(
                f"precision='float16' runs a fixed-size TFLite file; {self.path!r} has a dynamic "
                "height and width (resizing a LiteRT CompiledModel's input crashes the process in "
                "ai-edge-litert 2.3). Export one with input_size=(height, width) "
                "(`fcn-keras export --input-size HEIGHTxWIDTH`)."
            )
        del self._runner, self._interpreter  # the signature is read; the CompiledModel runs
        options = CpuOptions(num_threads=int(num_threads or 0), xnnpack_flags=XNNPACK_FORCE_FP16_FLAGS)
        try:
            self._compiled = CompiledModel.from_file(self.path, options=Options(cpu_options=options))
            signature = self._compiled.get_signature_list()["serving_default"]
            self._compiled_inputs = self._compiled.create_input_buffers(0)
            self._compiled_outputs = self._compiled.create_output_buffers(0)
        except Exception as e:
            self._fail(e)
        self._compiled_logits = signature["outputs"].index("logits")

    def run(self, batch):
        if self._compiled is None:
            logits = self._runner(image=batch)["logits"]
            if self._dequantize is not None:
                scale, zero_point = self._dequantize
                logits = (logits.astype(np.float32) - zero_point) * scale
            return logits
        # The CompiledModel's batch is 1: one image at a time.
        height, width = self.input_size
        logits = np.empty(batch.shape[:3] + (self.logits_shape[-1],), np.float32)
        for i, image in enumerate(batch):
            self._compiled_inputs[0].write(np.ascontiguousarray(image[None]))
            self._compiled.run_by_index(0, self._compiled_inputs, self._compiled_outputs)
            out = self._compiled_outputs[self._compiled_logits].read(logits[i].size, np.float32)
            logits[i] = np.asarray(out, np.float32).reshape(logits[i].shape)
        return logits


class _SavedModelBackend(_Backend):
    """The SavedModel's `serving_default` signature (float32) or `serving_bfloat16`."""

    engine = "savedmodel"
    precisions = ("float32", "bfloat16")
    computes_in = "float32 or bfloat16 (its serving_bfloat16 signature)"

    def load(self, num_threads=None, inter_op_threads=None, providers=None, jit_compile=None,
             profile_dir=None):  # fmt: skip
        _set_tf_threads(num_threads, inter_op_threads)
        key = SIGNATURE_KEY if self.precision == "float32" else BFLOAT16_SIGNATURE_KEY
        try:
            loaded = tf.saved_model.load(self.path)
            self._serve = loaded.signatures[key]
        except KeyError:
            raise ValueError(
                f"{self.path!r} has no {key!r} signature ({self.precision}); found "
                f"{sorted(loaded.signatures)}."
                + (" Export it again with export_savedmodel(..., bfloat16_signature=True)."
                   if key == BFLOAT16_SIGNATURE_KEY else "")
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
        self._declare(specs["image"].shape.as_list(), outputs["logits"].shape.as_list())

    def run(self, batch):
        return self._serve(image=tf.constant(batch))["logits"].numpy()


class _KerasBackend(_Backend):
    """The Keras model's forward pass: XLA-compiled in 32-pixel buckets, or the plain graph."""

    engine = "keras"
    precisions = ("float32", "bfloat16")
    computes_in = "float32 or bfloat16"

    def load(self, num_threads=None, inter_op_threads=None, providers=None, jit_compile=None,
             profile_dir=None):  # fmt: skip
        _set_tf_threads(num_threads, inter_op_threads)
        if self.model is None:
            try:
                self.model = keras.saving.load_model(self.path, compile=False)
            except Exception as e:
                self._fail(e)
        self._declare(list(self.model.inputs[0].shape), list(self.model.outputs[0].shape))
        self.jit_compile = (self.precision == "float32") if jit_compile is None else bool(jit_compile)
        self._keras_function = _keras_function(self.model, self.precision, self.jit_compile)
        self._bucket = _bucket_of(self.model) if self.jit_compile and self.input_size is None else None
        # XLA's CPU convolution falls back to a slow loop when its kernel is larger than its
        # input: fc6 (7x7) on a pool5 map under 7x7, i.e. images under 224 pixels (0.25-0.89 s
        # instead of 0.005-0.008 s for fc6 alone, docs/benchmarks.md); those run the plain graph.
        fc6 = next((layer for layer in self.model.layers if layer.name == "fc6"), None)
        self._xla_min_side = 32 * max(fc6.kernel_size) if self.jit_compile and fc6 is not None else 0
        self._plain_function = None

    def run(self, batch):
        if -(-min(batch.shape[1:3]) // 32) * 32 < self._xla_min_side:  # padded size below 224
            if self._plain_function is None:
                self._plain_function = _keras_function(self.model, self.precision, jit_compile=False)
            return self._plain_function(tf.constant(batch)).numpy()
        if self._bucket is not None:
            return self._run_bucketed(batch)
        return self._keras_function(tf.constant(batch)).numpy()

    def _run_bucketed(self, batch):
        """Run the XLA function on the batch padded to the next multiple of 32, crop the logits back."""
        fill, multiple = self._bucket
        height, width = batch.shape[1:3]
        padded_height, padded_width = -(-height // multiple) * multiple, -(-width // multiple) * multiple
        padded = np.empty((batch.shape[0], padded_height, padded_width, 3), np.float32)
        padded[...] = fill
        padded[:, :height, :width] = batch
        return self._keras_function(tf.constant(padded)).numpy()[:, :height, :width]


# The backend of each engine; the order names the engines of a precision in errors
# ("bfloat16 runs in the keras and savedmodel engines").
_BACKENDS = {backend.engine: backend
             for backend in (_KerasBackend, _SavedModelBackend, _OnnxBackend, _TFLiteBackend)}  # fmt: skip


# XNNPACK delegate flags (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h): its defaults,
# signed and unsigned 8-bit kernels (0x1, 0x2), plus FORCE_FP16 (0x4): float32 operators
# computed in IEEE half precision.
XNNPACK_FORCE_FP16_FLAGS = 0x1 | 0x2 | 0x4


def _require_fp16_arithmetic(path):
    """Refuse float16 inference on a CPU that reports no fp16 arithmetic in /proc/cpuinfo."""
    from fcn_keras.distribute import fp16_arithmetic

    available, reason = fp16_arithmetic()
    if not available:
        raise ValueError(
            f"precision='float16' for {path!r} needs a CPU with IEEE fp16 arithmetic "
            f"(AVX512-FP16 on Intel Sapphire Rapids and later, the ARMv8.2 FP16 extension); "
            f"{reason}. Use precision='float32', or bfloat16 in the keras or savedmodel engine "
            "where the CPU has AMX or AVX512-BF16."
        )


def _keras_function(model, precision, jit_compile):
    """The tf.function image -> logits the keras engine runs (float32 model, or its bfloat16 rebuild)."""
    model = float32_model(model)
    if precision == "bfloat16":
        serve = bfloat16_serving_function(model)

        def logits(image):
            return serve(image)["logits"]
    else:

        def logits(image):
            return model(image, training=False)

    return tf.function(logits, jit_compile=jit_compile, autograph=False, reduce_retracing=True)


def _bucket_of(model):
    """`(fill colour, multiple)` that pads an image exactly as the model pads it, or None.

    An fcn_keras FCN subtracts its BGR mean (`CaffePreprocess`) and then pads
    with zeros to a multiple of 32 (`PadToMultiple`); the image reaches
    nothing else but the final `CropToReference` (its size only). Padding the
    raw image (as float32) with the RGB mean instead gives the preprocessed
    tensor the same zeros (x - x is exactly 0), so the padded call computes
    the same network on the same tensor, and its logits cropped to the image
    are those of the unpadded call. Any other model (e.g. one whose CRF reads
    the image's colours) is not padded.
    """
    from fcn_keras.geometry import CropToReference, PadToMultiple
    from fcn_keras.preprocessing import CaffePreprocess

    layers, image = list(model.layers), model.inputs[0]
    try:
        consumers = [layer for layer in layers[1:]
                     if any(t is image for t in keras.tree.flatten(layer.input))]  # fmt: skip
        output_layer = model.outputs[0]._keras_history.operation
        if (len(model.inputs) != 1 or len(model.outputs) != 1 or len(layers) < 3
                or not isinstance(layers[1], CaffePreprocess) or not isinstance(layers[2], PadToMultiple)
                or layers[2].input is not layers[1].output or not isinstance(output_layer, CropToReference)
                or consumers != [layers[1], output_layer]):
            return None  # fmt: skip
    except (AttributeError, ValueError):  # a layer with several call sites: not an FCN layout
        return None
    mean_bgr = np.asarray(layers[1].mean, dtype=np.float32)
    return mean_bgr[::-1].copy(), int(layers[2].multiple)


def _set_tf_threads(intra, inter):
    try:
        if intra is not None:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra))
        if inter is not None:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter))
    except RuntimeError:
        pass  # TensorFlow already initialised: its thread pools are fixed for this process.
