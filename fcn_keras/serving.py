"""Serve an exported FCN over the Open Inference Protocol (KServe v2 / Triton) with KServe's ModelServer.

The server is KServe's `ModelServer` (REST v2 through FastAPI/uvicorn, gRPC
v2 through grpcio): the protocol, routing, JSON and gRPC decoding, health
endpoints and the error-to-status mapping are KServe's. This module adds one
`kserve.Model`, `FCNServingModel`, whose engine is the package's
`fcn_keras.export.Predictor` on the ONNX file (onnxruntime, the Predictor's
session and its pre/post-processing), and what KServe 0.21 leaves to the
deployment: a request body limit (413), an image pixel limit checked before
anything is decoded, the model's dataset facts in its metadata, and a
decoder for the binary tensor extension that keeps tensors as bytes
(`binary_request`; KServe's own turns every element into a Python int and
cannot carry PNG/JPEG bytes).

Endpoints (REST; gRPC v2 offers the same on `grpc_port`):

    GET  /v2/health/live, /v2/health/ready, /v2/models/{name}/ready
    GET  /v2/models/{name}          inputs, outputs and "parameters":
                                    class_names, ignore_label, palette, num_classes
    POST /v2/models/{name}/infer

Inputs (exactly one per request):

    image        UINT8 [N, H, W, 3]  raw RGB, JSON `data` or binary tensor extension
    image_bytes  BYTES [N]           N encoded PNG/JPEG files of one size (bytes in the
                                     binary extension or gRPC; base64 strings in JSON)

Outputs: `classes` INT32 [N, H, W] (the argmax, the ONNX file's own `classes`
dtype, so a client reads the same tensor from Triton running the exported
repository); on request `logits` and `probabilities` (softmax) FP32
[N, H, W, num_classes]. Without an `outputs` list only `classes` is returned.

A request that the model cannot serve (wrong dtype, rank or channels, an
empty or too small image, too many pixels, bytes that are not an image, a
truncated file, too many images, an unknown output) is answered 400 with a
message naming what was received and what is expected; malformed JSON 422
(FastAPI); an unknown model 404 (KServe); a body over `max_body_bytes` 413.
Each worker process runs one inference at a time on `num_threads`
onnxruntime threads; concurrent requests wait in order, and with request
batching (`batch_delay_ms > 0`) the waiting requests of one image size are
run as one batch of up to `max_batch` images.

KServe and its web stack are the `serve` extra (`pip install "fcn_keras[serve]"`);
importing `fcn_keras` does not import this module.
"""

import asyncio
import base64
import binascii
import collections
import contextlib
import io
import json
import os
import struct
import sys
import threading
import time

import numpy as np

__all__ = [
    "FCNServingModel",
    "serve",
    "request_images",
    "binary_request",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_BATCH",
    "MIN_IMAGE_SIDE",
    "OUTPUTS",
]

# 2048 x 2048: the full FCN-8s needs about 1 GB for conv1's activations alone at this size.
DEFAULT_MAX_PIXELS = 2048 * 2048
# 64 MiB: a batch of 8 binary 1080p images is 50 MB; the same as JSON text is 4-5x larger.
DEFAULT_MAX_BODY_BYTES = 64 * 2**20
DEFAULT_MAX_BATCH = 8
# The network's output stride: a smaller image is less than one cell of its coarsest scores.
MIN_IMAGE_SIDE = 32
OUTPUTS = ("classes", "logits", "probabilities")


@contextlib.contextmanager
def _argv_for_kserve():
    """Hide this process's arguments from KServe, whose `model_server` module parses `sys.argv` on import."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def _kserve():
    """Import kserve (its argument parser blinded to ours), or say how to install it."""
    try:
        with _argv_for_kserve():
            import kserve
            import kserve.model_server
    except ImportError as e:
        raise ImportError(
            f"serving needs KServe ({e}); install it with: pip install \"fcn_keras[serve]\""
        ) from e
    return kserve


kserve = _kserve()
from kserve.errors import InferenceError, InvalidInput, ModelNotFound  # noqa: E402
from kserve.protocol.infer_type import InferOutput, InferResponse  # noqa: E402


# === Decoding one request ===


def _check_size(height, width, what, max_pixels):
    if height < MIN_IMAGE_SIDE or width < MIN_IMAGE_SIDE:
        raise InvalidInput(
            f"{what}: image of {height}x{width} pixels is too small; expected at least "
            f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} (height x width), the network's output stride."
        )
    if height * width > max_pixels:
        raise InvalidInput(
            f"{what}: image of {height}x{width} = {height * width} pixels is above this server's "
            f"limit of {max_pixels} pixels per image; resize it, or start the server with a larger "
            "--max-pixels."
        )


def _raw_images(infer_input, model, max_batch, max_pixels):
    """The `(N, H, W, 3)` uint8 array of an `image` input (UINT8, JSON or binary)."""
    what = f"input 'image' of model {model!r}"
    if infer_input.datatype != "UINT8":
        raise InvalidInput(
            f"{what} must be UINT8 raw RGB [N, H, W, 3]; received datatype "
            f"{infer_input.datatype}. Send encoded PNG/JPEG files as input 'image_bytes' (BYTES [N])."
        )
    shape = [int(s) for s in infer_input.shape]
    if len(shape) != 4 or shape[-1] != 3:
        raise InvalidInput(
            f"{what} must have shape [N, H, W, 3] (a batch of RGB images); received shape {shape}"
            + (f" with {shape[-1]} channels" if len(shape) == 4 else f" (rank {len(shape)})")
            + "."
        )
    count, height, width, _ = shape
    if min(shape) < 1:
        raise InvalidInput(f"{what} is empty: shape {shape}; expected N, H, W of at least 1.")
    if count > max_batch:
        raise InvalidInput(
            f"{what} holds {count} images; this server takes at most {max_batch} per request "
            "(--max-batch): split the batch."
        )
    _check_size(height, width, what, max_pixels)
    expected = count * height * width * 3
    if infer_input._raw_data is not None:  # gRPC raw_input_contents
        data = np.frombuffer(infer_input._raw_data, dtype=np.uint8)
    else:
        try:
            data = np.asarray(infer_input.data)
        except (ValueError, TypeError) as e:
            raise InvalidInput(f"{what}: its data is not a regular array of integers ({e}).") from None
        if data.size and (data.dtype.kind not in "iu" or data.min() < 0 or data.max() > 255):
            low, high = (data.min(), data.max()) if data.dtype.kind in "iufb" else ("?", "?")
            raise InvalidInput(
                f"{what} must hold integers in [0, 255]; received {data.dtype} values in "
                f"[{low}, {high}]."
            )
    if data.size != expected:
        raise InvalidInput(
            f"{what} declares shape {shape} ({expected} values) but carries {data.size} values."
        )
    return np.ascontiguousarray(data.astype(np.uint8, copy=False).reshape(shape))


def _encoded_size(data, what):
    """`(height, width)` of an encoded image read from its header only (nothing decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as e:
        raise InvalidInput(f"{what}: refused before decoding: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        head = bytes(data[:8])
        raise InvalidInput(
            f"{what}: {len(data)} bytes starting {head!r} are not an encoded image; expected a "
            "PNG or JPEG file's bytes."
        ) from None
    return height, width


def _encoded_images(infer_input, model, max_batch, max_pixels):
    """The `(N, H, W, 3)` uint8 array of an `image_bytes` input (N encoded files of one size)."""
    from fcn_keras.data.files import decode_image_bytes

    what = f"input 'image_bytes' of model {model!r}"
    if infer_input.datatype != "BYTES":
        raise InvalidInput(
            f"{what} must be BYTES [N] (encoded PNG/JPEG files); received datatype "
            f"{infer_input.datatype}. Send raw RGB pixels as input 'image' (UINT8 [N, H, W, 3])."
        )
    shape = [int(s) for s in infer_input.shape]
    if len(shape) != 1 or shape[0] < 1:
        raise InvalidInput(f"{what} must have shape [N] with N >= 1 (one file each); received {shape}.")
    if shape[0] > max_batch:
        raise InvalidInput(
            f"{what} holds {shape[0]} files; this server takes at most {max_batch} per request "
            "(--max-batch): split the batch."
        )
    try:
        elements = list(np.asarray(infer_input.as_numpy(), dtype=object).reshape(-1))
    except (ValueError, TypeError, InferenceError, struct.error) as e:
        raise InvalidInput(f"{what}: cannot read its BYTES elements ({e}).") from None
    if len(elements) != shape[0]:
        raise InvalidInput(f"{what} declares {shape[0]} files but carries {len(elements)}.")
    images = []
    for i, element in enumerate(elements):
        item = f"{what}[{i}]"
        if isinstance(element, str):  # JSON carries bytes as text: base64
            try:
                element = base64.b64decode(element, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInput(
                    f"{item}: a JSON string must be the base64 of a PNG/JPEG file; received "
                    f"{len(element)} characters that are not base64 (or send the file with the "
                    "binary tensor extension)."
                ) from None
        data = bytes(element)
        if not data:
            raise InvalidInput(f"{item} is empty (0 bytes); expected a PNG or JPEG file.")
        height, width = _encoded_size(data, item)
        _check_size(height, width, item, max_pixels)
        try:
            images.append(decode_image_bytes(data, item))
        except ValueError as e:
            raise InvalidInput(str(e)) from None
    sizes = sorted({image.shape[:2] for image in images})
    if len(sizes) > 1:
        raise InvalidInput(
            f"{what}: the files of one request must share one size (the outputs are [N, H, W]); "
            f"received sizes {sizes}. Send one request per size."
        )
    return np.stack(images)


def request_images(request, model, max_batch=DEFAULT_MAX_BATCH, max_pixels=DEFAULT_MAX_PIXELS):
    """Validate a v2 inference request and return its images and the outputs it asks for.

    Args:
        request: a `kserve.protocol.infer_type.InferRequest`.
        model: the model's name, for messages.
        max_batch: most images one request may carry. Defaults to 8.
        max_pixels: most pixels one image may have (checked from the shape or
            the file's header, before decoding). Defaults to `DEFAULT_MAX_PIXELS`.

    Returns:
        `(images, outputs)`: uint8 `(N, H, W, 3)` and a tuple of names from `OUTPUTS`.

    Raises:
        kserve.errors.InvalidInput: (answered 400) naming what was wrong and what is expected.

    Example:
    >>> images, outputs = request_images(infer_request, "fcn8s")
    >>> images.shape, outputs
    ((1, 360, 480, 3), ('classes',))
    """
    inputs = {i.name: i for i in request.inputs}
    known = ("image", "image_bytes")
    if len(request.inputs) != 1 or next(iter(inputs)) not in known:
        raise InvalidInput(
            f"model {model!r} takes exactly one input, 'image' (UINT8 [N, H, W, 3]) or "
            f"'image_bytes' (BYTES [N], encoded PNG/JPEG); received "
            f"{[i.name for i in request.inputs]}."
        )
    outputs = ("classes",)
    if request.request_outputs:
        outputs = tuple(o.name for o in request.request_outputs)
        unknown = [name for name in outputs if name not in OUTPUTS]
        if unknown:
            raise InvalidInput(
                f"model {model!r} has no output {unknown}; it has {list(OUTPUTS)}."
            )
    if "image" in inputs:
        images = _raw_images(inputs["image"], model, max_batch, max_pixels)
    else:
        images = _encoded_images(inputs["image_bytes"], model, max_batch, max_pixels)
    return images, outputs


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


# === Request batching ===


class _Pending:
    __slots__ = ("images", "logits", "future", "arrived")

    def __init__(self, images, logits, future, arrived):
        self.images, self.logits, self.future, self.arrived = images, logits, future, arrived


class _RequestBatcher:
    """Run queued requests of one image size as one batch: at most `max_batch` images, after
    waiting up to `delay_s` from the oldest request's arrival for more to come."""

    def __init__(self, run, max_batch, delay_s):
        self._run, self._max_batch, self._delay_s = run, max_batch, delay_s
        self._queue = collections.deque()
        self._wakeup = None
        self._task = None

    async def submit(self, images, logits):
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._loop())
        pending = _Pending(images, logits, loop.create_future(), loop.time())
        self._queue.append(pending)
        self._wakeup.set()
        return await pending.future

    def _group(self):
        head = self._queue[0]
        group, count = [], 0
        for item in self._queue:
            if item.images.shape[1:] == head.images.shape[1:] and count + len(item.images) <= self._max_batch:
                group.append(item)
                count += len(item.images)
        return group, count

    async def _loop(self):
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                group, count = self._group()
                wait = self._queue[0].arrived + self._delay_s - loop.time()
                if count < self._max_batch and wait > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), wait)
                    self._wakeup.clear()
                    continue
                for item in group:
                    self._queue.remove(item)
                group = [item for item in group if not item.future.done()]  # clients gone
                if not group:
                    continue
                batch = np.concatenate([item.images for item in group])
                try:
                    results = await loop.run_in_executor(
                        None, self._run, batch, any(item.logits for item in group))
                except Exception as e:  # noqa: BLE001 - handed to every waiting request
                    for item in group:
                        if not item.future.done():
                            item.future.set_exception(e)
                    continue
                start = 0
                for item in group:
                    stop = start + len(item.images)
                    if not item.future.done():
                        item.future.set_result(tuple(None if r is None else r[start:stop] for r in results))
                    start = stop


# === The model ===


class FCNServingModel(kserve.Model):
    """An exported FCN (ONNX, run by `fcn_keras.export.Predictor`) as a KServe v2 model.

    Args:
        path: the `.onnx` file (from `fcn_keras.export.export_onnx`).
        name: the model's name in the URLs. Defaults to `None`: the file's stem.
        num_threads: onnxruntime intra-op threads. Defaults to `None` (all cores).
        max_batch: most images per request, and per batch when batching. Defaults to 8.
        batch_delay_ms: request batching: how long the oldest waiting request
            may wait for others of its size to fill a batch; 0 turns batching
            off (each request runs alone, in arrival order). Defaults to 0.
        max_pixels: most pixels per image. Defaults to `DEFAULT_MAX_PIXELS`.
        max_body_bytes: largest request body (413 above). Defaults to
            `DEFAULT_MAX_BODY_BYTES`.

    Example:
    >>> model = FCNServingModel("fcn8s.onnx", num_threads=2)
    >>> model.predictor.class_names[:2]
    ('Sky', 'Building')
    """

    def __init__(self, path, name=None, num_threads=None, max_batch=DEFAULT_MAX_BATCH,
                 batch_delay_ms=0.0, max_pixels=DEFAULT_MAX_PIXELS,
                 max_body_bytes=DEFAULT_MAX_BODY_BYTES):  # fmt: skip
        path = os.fspath(path)
        if not path.endswith(".onnx"):
            raise ValueError(f"serving runs an ONNX file (fcn-keras export --formats onnx); received {path!r}.")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file not found: {path!r}.")
        for value, flag in ((max_batch, "max_batch"), (max_pixels, "max_pixels"),
                            (max_body_bytes, "max_body_bytes")):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{flag} must be a positive integer; received {value!r}.")
        if not batch_delay_ms >= 0:
            raise ValueError(f"batch_delay_ms must be >= 0 (0: no request batching); received {batch_delay_ms!r}.")
        super().__init__(name or os.path.splitext(os.path.basename(path))[0])
        self.path, self.num_threads = path, num_threads
        self.max_batch, self.batch_delay_ms = max_batch, float(batch_delay_ms)
        self.max_pixels, self.max_body_bytes = max_pixels, max_body_bytes
        self.enable_latency_logging = False
        self.load()

    # Worker processes (spawned) receive the model pickled: its settings travel, the session is rebuilt.
    def __getstate__(self):
        return {key: getattr(self, key) for key in
                ("name", "path", "num_threads", "max_batch", "batch_delay_ms", "max_pixels",
                 "max_body_bytes")}  # fmt: skip

    def __setstate__(self, state):
        # A spawned worker: KServe's supervisor kills a worker that does not answer its ping
        # within 5 s, and loading the session (TensorFlow's import with the Predictor) takes
        # longer; so it loads in a thread, and the model is not ready (503) until it has.
        kserve.Model.__init__(self, state["name"])
        for key, value in state.items():
            setattr(self, key, value)
        self.enable_latency_logging = False
        _install_routes(self)  # this process's KServe app
        threading.Thread(target=self.load, name="fcn_keras-load", daemon=True).start()

    def load(self):
        """Load the ONNX file into a `Predictor` (onnxruntime); returns `self.ready`.

        Logs one line per process when the session is ready (with several
        workers, one line per worker), e.g. `model 'fcn' ready in process 4242:
        onnxruntime, 2 threads, loaded in 3.1 s`.
        """
        from kserve.logging import logger

        from fcn_keras.export import Predictor

        start = time.perf_counter()
        self.predictor = Predictor(self.path, engine="onnx", num_threads=self.num_threads)
        self._inference_lock = None
        self._batcher = None
        if self.batch_delay_ms > 0:
            self._batcher = _RequestBatcher(self._infer, self.max_batch, self.batch_delay_ms / 1000)
        self.ready = True
        threads = self.num_threads or os.cpu_count()
        logger.info(f"model {self.name!r} ready in process {os.getpid()}: onnxruntime, {threads} threads, "
                    f"loaded in {time.perf_counter() - start:.1f} s")  # fmt: skip
        return self.ready

    def get_input_types(self):
        """The v2 metadata of the inputs (`image` or `image_bytes`, one per request)."""
        return [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, -1, 3]},
                {"name": "image_bytes", "datatype": "BYTES", "shape": [-1]}]  # fmt: skip

    def get_output_types(self):
        """The v2 metadata of the outputs (`classes` by default; `logits`, `probabilities` on request)."""
        classes = self.predictor.num_classes
        return [{"name": "classes", "datatype": "INT32", "shape": [-1, -1, -1]},
                {"name": "logits", "datatype": "FP32", "shape": [-1, -1, -1, classes]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, -1, -1, classes]}]  # fmt: skip

    def facts(self):
        """The model's dataset facts: `num_classes`, `class_names`, `ignore_label`, `palette` (lists)."""
        palette = self.predictor.palette
        names = self.predictor.class_names
        return {
            "num_classes": self.predictor.num_classes,
            "class_names": None if names is None else list(names),
            "ignore_label": self.predictor.ignore_label,
            "palette": None if palette is None else np.asarray(palette).tolist(),
        }

    def _infer(self, images, logits_needed):
        """`(classes, logits or None)` of a batch, in a worker thread."""
        if not logits_needed:
            return self.predictor.predict_classes(images), None
        logits = self.predictor.predict(images)
        return np.argmax(logits, axis=-1).astype(np.int32), logits

    async def predict(self, payload, headers=None, response_headers=None):
        """Answer one v2 inference request (see the module docstring for inputs and outputs)."""
        images, outputs = request_images(payload, self.name, self.max_batch, self.max_pixels)
        logits_needed = "logits" in outputs or "probabilities" in outputs
        if self._batcher is not None:
            classes, logits = await self._batcher.submit(images, logits_needed)
        else:
            if self._inference_lock is None:
                self._inference_lock = asyncio.Lock()
            async with self._inference_lock:  # one inference at a time, on all its threads
                loop = asyncio.get_running_loop()
                classes, logits = await loop.run_in_executor(None, self._infer, images, logits_needed)
        tensors = {"classes": (classes, "INT32")}
        if logits is not None:
            tensors["logits"] = (logits, "FP32")
            if "probabilities" in outputs:
                tensors["probabilities"] = (_softmax(logits.copy()), "FP32")
        infer_outputs = []
        for name in outputs:
            array, datatype = tensors[name]
            output = InferOutput(name, list(array.shape), datatype, data=array)
            if payload.from_grpc:  # raw_output_contents (KServe's to_grpc cannot take an array)
                output.set_data_from_numpy(array, binary_data=True)
            infer_outputs.append(output)
        return InferResponse(
            response_id=payload.id or "", model_name=self.name, infer_outputs=infer_outputs,
            use_binary_outputs=payload.use_binary_outputs, requested_outputs=payload.request_outputs,
        )  # fmt: skip


# === What the KServe app gets besides its own routes ===


class _BodyTooLarge(Exception):
    """Raised inside the body limit's `receive` (not a ValueError: no handler maps it to 400)."""


# The binary tensor extension's requests go to this route of the model's (see `_binary_infer`).
_BINARY_SUFFIX = "/infer_binary"


class _RequestGuard:
    """ASGI middleware before KServe's app: answer 413 to a body over `max_bytes` (from its
    Content-Length before reading it, or while reading a body sent without one), label an
    inference body without the binary extension as JSON (tritonclient sends no Content-Type;
    KServe reads a body as JSON only when it is labelled so), and send binary-extension
    inference requests to `_binary_infer`."""

    def __init__(self, app, max_bytes):
        self.app, self.max_bytes = app, max_bytes

    async def _refuse(self, send, size):
        from fastapi.responses import JSONResponse

        message = (f"request body of {size} bytes is above this server's limit of {self.max_bytes} "
                   "bytes (--max-body-mb); send fewer or smaller images, binary rather than JSON.")  # fmt: skip
        response = JSONResponse(status_code=413, content={"error": message})
        await response({"type": "http"}, None, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send, int(length))
        if scope["method"] == "POST" and scope["path"].endswith("/infer"):
            if b"inference-header-content-length" in headers:
                scope = dict(scope, path=scope["path"][: -len("/infer")] + _BINARY_SUFFIX, raw_path=None)
            else:
                headers[b"content-type"] = b"application/json"
                scope = dict(scope, headers=list(headers.items()))
        received, started = 0, False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send, f"more than {received}")


def binary_request(body, json_length, model):
    """A KServe `InferRequest` from a binary-extension body, each binary tensor kept as bytes.

    KServe 0.21's own decoder turns every binary tensor into a Python list (about a
    second for one 360x480 image) and cannot carry non-UTF-8 `BYTES` (PNG/JPEG files);
    here the bytes stay bytes and the model reads them with `numpy.frombuffer`.

    Args:
        body: the request body: JSON header, then the binary tensors in input order.
        json_length: the `Inference-Header-Content-Length` header's value.
        model: the model's name.

    Returns:
        `kserve.protocol.infer_type.InferRequest`.

    Raises:
        kserve.errors.InvalidInput: the header is not JSON or the sizes do not add up.

    Example:
    >>> request = binary_request(body, int(headers["inference-header-content-length"]), "fcn8s")
    >>> images, outputs = request_images(request, "fcn8s")
    """
    from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

    if not 0 < json_length <= len(body):
        raise InvalidInput(f"Inference-Header-Content-Length {json_length} does not fit a body of {len(body)} bytes.")
    try:
        header = json.loads(body[:json_length])
        offset, inputs = json_length, []
        for tensor in header["inputs"]:
            parameters = dict(tensor.get("parameters") or {})
            infer_input = InferInput(tensor["name"], list(tensor["shape"]), tensor["datatype"],
                                     parameters=parameters)  # fmt: skip
            size = parameters.pop("binary_data_size", None)
            if size is not None:
                if not isinstance(size, int) or size < 0 or offset + size > len(body):
                    raise InvalidInput(f"input {tensor['name']!r}: binary_data_size {size!r} does not fit "
                                       f"the {len(body) - offset} bytes left in the body.")  # fmt: skip
                infer_input._raw_data = body[offset:offset + size]
                offset += size
            else:
                infer_input.data = tensor["data"]
            inputs.append(infer_input)
        outputs = [RequestedOutput(o["name"], o.get("parameters")) for o in header.get("outputs") or []]
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, InvalidInput):
            raise
        raise InvalidInput(
            f"malformed binary inference request for model {model!r} ({type(e).__name__}: {e}); "
            'expected a JSON header {"inputs": [{"name", "shape", "datatype", "parameters": '
            '{"binary_data_size"}}]} followed by the tensors.'
        ) from None
    if offset != len(body):
        raise InvalidInput(f"the binary tensors' sizes add up to {offset - json_length} bytes but the body "
                           f"carries {len(body) - json_length} after its JSON header.")  # fmt: skip
    return InferRequest(model, inputs, request_id=header.get("id"), parameters=header.get("parameters"),
                        request_outputs=outputs or None)  # fmt: skip


async def _malformed_request(request, exc):
    """400 for what KServe's request decoding raises on a malformed v2 body (missing fields,
    wrong types); the model's own checks raise `InvalidInput`, and its failures `InferenceError`."""
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=400, content={"error": (
        f"malformed inference request ({type(exc).__name__}: {exc}); expected a v2 request "
        '{"inputs": [{"name", "shape", "datatype", "data" or parameters.binary_data_size}]}.')})  # fmt: skip


def _install_routes(model):
    """Add the request guard, the binary-extension route, the metadata with the dataset facts and
    the decode-error mapping to KServe's FastAPI app of this process (before KServe's own routes)."""
    from fastapi import Request, Response
    from kserve.errors import ModelNotReady
    from kserve.model_server import app

    if getattr(app.state, "fcn_keras_model", None) is not None:
        return
    app.state.fcn_keras_model = model
    app.add_middleware(_RequestGuard, max_bytes=model.max_body_bytes)
    for error in (ValueError, KeyError, TypeError):
        app.add_exception_handler(error, _malformed_request)

    def check(model_name):
        if model_name != model.name:
            raise ModelNotFound(model_name)
        if not model.ready:
            raise ModelNotReady(model_name)

    async def model_metadata(model_name: str):
        check(model_name)
        return {"name": model.name, "versions": ["1"], "platform": "onnxruntime_onnx",
                "inputs": model.get_input_types(), "outputs": model.get_output_types(),
                "parameters": model.facts()}  # fmt: skip

    async def binary_infer(model_name: str, request: Request):
        check(model_name)
        headers = dict(request.headers)
        try:
            json_length = int(headers["inference-header-content-length"])
        except ValueError:
            raise InvalidInput("Inference-Header-Content-Length must be an integer; received "
                               f"{headers['inference-header-content-length']!r}.") from None  # fmt: skip
        infer_request = binary_request(await request.body(), json_length, model.name)
        response, _ = await model(infer_request, headers=headers)
        body, json_size = response.to_rest()
        if json_size is None:
            return body
        return Response(content=body, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(json_size)})  # fmt: skip

    # Registered before KServe's routes: the metadata route answers before KServe's of the same path.
    app.add_api_route("/v2/models/{model_name}", model_metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}" + _BINARY_SUFFIX, binary_infer, methods=["POST"],
                      include_in_schema=False)  # fmt: skip


class _ModelServer(kserve.ModelServer):
    """KServe's ModelServer listening on `host` (its REST server binds 0.0.0.0 otherwise)."""

    def __init__(self, host, **kwargs):
        super().__init__(**kwargs)
        self.host = host

    def setup_event_loop(self):
        # Called by start() after the servers are built and before they listen.
        rest = self._rest_server or self._rest_multiprocess_server._rest_server
        rest.config.host = self.host
        super().setup_event_loop()


def serve(path, name=None, host="127.0.0.1", http_port=8080, grpc_port=None, num_threads=None,
          workers=1, max_batch=DEFAULT_MAX_BATCH, batch_delay_ms=0.0,
          max_pixels=DEFAULT_MAX_PIXELS, max_body_bytes=DEFAULT_MAX_BODY_BYTES):  # fmt: skip
    """Serve an ONNX FCN over the Open Inference Protocol until SIGINT/SIGTERM.

    Args:
        path: the `.onnx` file.
        name: the model's name in the URLs. Defaults to the file's stem.
        host: REST address. Defaults to "127.0.0.1" (this machine only).
        http_port: REST port. Defaults to 8080.
        grpc_port: gRPC v2 port, or `None` for no gRPC. KServe 0.21's gRPC
            server listens on all interfaces. Defaults to `None`.
        num_threads: onnxruntime intra-op threads per worker. Defaults to all cores.
        workers: REST worker processes, each with its own session. Defaults to 1.
        max_batch: most images per request (and per batch). Defaults to 8.
        batch_delay_ms: request batching window; 0 is off. Defaults to 0.
        max_pixels: most pixels per image. Defaults to `DEFAULT_MAX_PIXELS`.
        max_body_bytes: largest request body. Defaults to 64 MiB.

    Example:
    >>> serve("fcn8s.onnx", http_port=8080, num_threads=2)  # doctest: +SKIP
    """
    for value, flag in ((http_port, "http_port"), (workers, "workers")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{flag} must be a positive integer; received {value!r}.")
    kserve.model_server.args.grpc_max_receive_message_length = max_body_bytes
    kserve.model_server.args.grpc_max_send_message_length = -1  # logits may be large
    # The server first: it configures KServe's logging, which the model's load logs to.
    server = _ModelServer(host, http_port=http_port, grpc_port=grpc_port or 0, workers=workers,
                          enable_grpc=grpc_port is not None, enable_latency_logging=False)  # fmt: skip
    model = FCNServingModel(path, name=name, num_threads=num_threads, max_batch=max_batch,
                            batch_delay_ms=batch_delay_ms, max_pixels=max_pixels,
                            max_body_bytes=max_body_bytes)  # fmt: skip
    _install_routes(model)
    server.start([model])

