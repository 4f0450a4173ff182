"""`fcn-keras serve` answered by the real Triton client: served classes equal the Predictor's, bad requests get 4xx.

One small FCN-8s (random backbone, fc_units=16, 11 classes, random score
layers with every class present in its masks) is exported to ONNX once for the module; the server runs as a
subprocess on 127.0.0.1 with free ports (REST and gRPC), started with bounded
waits and always stopped. Every served mask is compared with the in-process
`Predictor` on the same file and thread count, pixel for pixel.
"""

import base64
import http.client
import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CAMVID_DIR, randomize_score_layers

tritonclient_http = pytest.importorskip("tritonclient.http")
tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
# The server (a subprocess) needs KServe; this process must not import it: KServe's and
# tritonclient.grpc's generated protos both register `inference.*` in protobuf's default pool.
if importlib.util.find_spec("kserve") is None:
    pytest.skip('serving needs KServe: pip install "fcn_keras[serve]"', allow_module_level=True)
from tritonclient.utils import InferenceServerException  # noqa: E402

NUM_CLASSES = 11
MAX_PIXELS = 256 * 256
MAX_BODY_MB = 2
MAX_BATCH = 4
STARTUP_SECONDS = 180


# === Fixtures: one ONNX file, one server ===


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    import fcn_keras
    from fcn_keras.export import export_onnx

    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    info = fcn_keras.DatasetInfo("toy", NUM_CLASSES, tuple(f"class{i}" for i in range(NUM_CLASSES)),
                                 ignore_label=11,
                                 palette=rng.integers(0, 256, (NUM_CLASSES, 3), dtype=np.uint8))  # fmt: skip
    model = fcn_keras.FCN8s(num_classes=NUM_CLASSES, backbone_weights=None, fc_units=16)
    model.dataset_info = info
    randomize_score_layers(model, seed=1, scale=0.5)
    # A random backbone favours one class everywhere; centring each class's logits on one
    # image (the last score layer's bias) makes every class appear, so masks are worth comparing.
    calibration = rng.integers(0, 256, (1, 96, 96, 3), dtype=np.uint8)
    score = model.get_layer("score_pool3")
    kernel, bias = score.get_weights()
    score.set_weights([kernel, bias - np.asarray(model(calibration)).mean(axis=(0, 1, 2))])
    return export_onnx(model, tmp_path_factory.mktemp("serve") / "tiny.onnx")


@pytest.fixture(scope="module")
def predictor(onnx_path):
    from fcn_keras.export import Predictor

    return Predictor(onnx_path, engine="onnx", num_threads=2)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `fcn-keras serve` subprocess: its ports, its log, and a bounded start and stop."""

    def __init__(self, onnx_path, log_path, *extra):
        self.port, self.grpc_port = _free_port(), _free_port()
        self.log_path = log_path
        command = [sys.executable, "-m", "fcn_keras", "serve", str(onnx_path), "--name", "fcn",
                   "--port", str(self.port), "--grpc-port", str(self.grpc_port), "--threads", "2",
                   "--max-pixels", str(MAX_PIXELS), "--max-body-mb", str(MAX_BODY_MB),
                   "--max-batch", str(MAX_BATCH), *extra]  # fmt: skip
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=log_path.parent)  # fmt: skip

    def wait_ready(self, path="/v2/health/ready"):
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                status, _ = self.request("GET", path, timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"server not ready after {STARTUP_SECONDS} s:\n{self.tail()}")

    def wait_loaded(self, workers):
        """Wait until `workers` processes have logged their session ready; returns their pids."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.tail()}")
            self.log.flush()
            pids = re.findall(r"model 'fcn' ready in process (\d+): onnxruntime, 2 threads, loaded in",
                              Path(self.log_path).read_text())  # fmt: skip
            if len(pids) >= workers:
                return pids
            time.sleep(0.5)
        pytest.fail(f"{workers} workers not loaded after {STARTUP_SECONDS} s:\n{self.tail()}")

    def tail(self):
        self.log.flush()
        return Path(self.log_path).read_text()[-4000:]

    def request(self, method, path, body=None, headers=None, timeout=60):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.log.close()

    def http_client(self):
        return tritonclient_http.InferenceServerClient(f"127.0.0.1:{self.port}", network_timeout=120)


@pytest.fixture(scope="module")
def server(onnx_path, tmp_path_factory):
    running = Server(onnx_path, tmp_path_factory.mktemp("serve_log") / "server.log")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


def _images(count, height=64, width=96, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def _infer(client, images, outputs=("classes",), binary=True, model="fcn"):
    tensor = tritonclient_http.InferInput("image", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images, binary_data=binary)
    requested = [tritonclient_http.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    return client.infer(model, [tensor], outputs=requested)


def _png(image):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


# === Health and metadata ===


def test_health_and_metadata_carry_the_models_facts(server, predictor):
    client = server.http_client()
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("fcn")
    assert server.wait_loaded(1) == [str(server.process.pid)]  # one process, one line
    metadata = client.get_model_metadata("fcn")
    assert {i["name"]: (i["datatype"], i["shape"]) for i in metadata["inputs"]} == {
        "image": ("UINT8", [-1, -1, -1, 3]), "image_bytes": ("BYTES", [-1])}
    assert {o["name"]: (o["datatype"], o["shape"]) for o in metadata["outputs"]} == {
        "classes": ("INT32", [-1, -1, -1]), "logits": ("FP32", [-1, -1, -1, NUM_CLASSES]),
        "probabilities": ("FP32", [-1, -1, -1, NUM_CLASSES])}  # fmt: skip
    facts = metadata["parameters"]
    assert facts["class_names"] == list(predictor.class_names) == [f"class{i}" for i in range(NUM_CLASSES)]
    assert facts["ignore_label"] == 11 and facts["num_classes"] == NUM_CLASSES
    np.testing.assert_array_equal(np.asarray(facts["palette"]), predictor.palette)
    grpc = tritonclient_grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    assert grpc.is_server_ready() and grpc.is_model_ready("fcn")
    assert [i.name for i in grpc.get_model_metadata("fcn").inputs] == ["image", "image_bytes"]


# === Served masks equal the Predictor's ===


@pytest.mark.parametrize("count", [1, 2, MAX_BATCH])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_served_classes_equal_the_predictor(server, predictor, count, binary):
    images = _images(count, 64 + 8 * count, 96 - 8 * count, seed=count)
    result = _infer(server.http_client(), images, binary=binary)
    classes = result.as_numpy("classes")
    assert classes.dtype == np.int32 and classes.shape == images.shape[:3]
    expected = predictor.predict_classes(images)
    assert len(np.unique(expected)) > 1  # a mask worth comparing
    np.testing.assert_array_equal(classes, expected)


def test_logits_and_probabilities_on_request(server, predictor):
    images = _images(2, 72, 40, seed=5)
    result = _infer(server.http_client(), images, outputs=("classes", "logits", "probabilities"))
    logits, probabilities = result.as_numpy("logits"), result.as_numpy("probabilities")
    expected = predictor.predict(images)
    # Same file, same session options and threads: equal up to float32 rounding of the magnitude.
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(probabilities, -1), result.as_numpy("classes"))
    assert result.as_numpy("classes").dtype == np.int32


def test_encoded_png_and_jpeg(server, predictor):
    from fcn_keras.data.files import decode_image_bytes
    from PIL import Image

    image = _images(1, 80, 64, seed=9)[0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    files = {"png": _png(image), "jpeg": buffer.getvalue()}
    client = server.http_client()
    for kind, data in files.items():
        tensor = tritonclient_http.InferInput("image_bytes", [2], "BYTES")
        tensor.set_data_from_numpy(np.array([data, data], dtype=object))
        classes = client.infer("fcn", [tensor]).as_numpy("classes")
        decoded = decode_image_bytes(data, kind)
        np.testing.assert_array_equal(classes, predictor.predict_classes(np.stack([decoded] * 2)), kind)
    # JSON carries a file as base64 text.
    body = json.dumps({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES",
                                   "data": [base64.b64encode(files["png"]).decode()]}]})  # fmt: skip
    status, answer = server.request("POST", "/v2/models/fcn/infer", body)
    assert status == 200, answer
    output = json.loads(answer)["outputs"][0]
    classes = np.asarray(output["data"], np.int32).reshape(output["shape"])
    np.testing.assert_array_equal(classes, predictor.predict_classes(image[None]))


def test_grpc_classes_equal_the_predictor(server, predictor):
    images = _images(3, 48, 64, seed=3)
    client = tritonclient_grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    tensor = tritonclient_grpc.InferInput("image", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images)
    result = client.infer("fcn", [tensor], outputs=[tritonclient_grpc.InferRequestedOutput("classes")])
    np.testing.assert_array_equal(result.as_numpy("classes"), predictor.predict_classes(images))
    with pytest.raises(InferenceServerException) as error:
        bad = tritonclient_grpc.InferInput("image", [1, 48, 64, 4], "UINT8")
        bad.set_data_from_numpy(np.zeros((1, 48, 64, 4), np.uint8))
        client.infer("fcn", [bad])
    assert "4 channels" in error.value.message()


@pytest.mark.shared
@pytest.mark.slow
def test_camvid_val_classes_equal_the_predictor(server, predictor):
    from fcn_keras.data.files import read_image_file

    folder = CAMVID_DIR / "val"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (see ../shared/README.md)")
    files = sorted(folder.glob("*.png"))[:4]
    images = np.stack([read_image_file(str(path)) for path in files])
    assert images.shape[1:] == (360, 480, 3)
    # 360x480 is above this server's test pixel limit; a second server takes full frames.
    with pytest.raises(InferenceServerException) as error:
        _infer(server.http_client(), images[:1])
    assert error.value.status() == "400"
    log = Path(server.log_path).parent / "camvid.log"
    full = Server(predictor.path, log, "--max-pixels", str(360 * 480))
    # The first server keeps its ports; the second takes its own.
    try:
        full.wait_ready()
        for pair in (images[:2], images[2:]):
            classes = _infer(full.http_client(), pair).as_numpy("classes")
            np.testing.assert_array_equal(classes, predictor.predict_classes(pair))  # 100 % of pixels
    finally:
        full.stop()


# === Bad requests: 4xx with a message, and the next request served ===


def _tensor_request(shape, datatype="UINT8", data=None):
    data = np.zeros(int(np.prod(shape)), np.uint8).tolist() if data is None else data
    return json.dumps({"inputs": [{"name": "image", "shape": list(shape), "datatype": datatype,
                                   "data": data}]})  # fmt: skip


def _bytes_request(files):
    """A binary-extension request with an `image_bytes` input (as tritonclient sends it)."""
    raw = b"".join(len(f).to_bytes(4, "little") + f for f in files)
    header = json.dumps({"inputs": [{"name": "image_bytes", "shape": [len(files)], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()  # fmt: skip
    return header + raw, {"Inference-Header-Content-Length": str(len(header)),
                          "Content-Type": "application/octet-stream"}  # fmt: skip


def _png_header_only(height, width):
    """The first bytes of a PNG whose header declares `height` x `width` (a few bytes of pixels follow)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # The header, then the start of the pixel data: decoding it would fail as truncated.
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64)))


def _binary_sizes_mismatch():
    header = json.dumps({"inputs": [{"name": "image", "shape": [1, 64, 64, 3], "datatype": "UINT8",
                                     "parameters": {"binary_data_size": 12288}}]}).encode()  # fmt: skip
    return header + bytes(10), {"Inference-Header-Content-Length": str(len(header))}


_PNG = _png(_images(1, 64, 64, seed=4)[0])
_BAD_REQUESTS = {
    "wrong dtype": (_tensor_request([1, 64, 64, 3], "FP32"), {}, 400, "received datatype FP32"),
    "wrong rank": (_tensor_request([64, 64, 3]), {}, 400, "must have shape [N, H, W, 3]"),
    "four channels": (_tensor_request([1, 64, 64, 4]), {}, 400, "with 4 channels"),
    "zero size": (_tensor_request([1, 0, 64, 3], data=[]), {}, 400, "is empty"),
    "one pixel": (_tensor_request([1, 1, 1, 3]), {}, 400, "1x1 pixels is too small"),
    "above pixel limit": (_tensor_request([1, 257, 256, 3]), {}, 400, f"limit of {MAX_PIXELS} pixels"),
    "values above 255": (_tensor_request([1, 32, 32, 3], data=[300] * 3072), {}, 400, "integers in [0, 255]"),
    "data of wrong length": (_tensor_request([1, 64, 64, 3], data=[1, 2, 3]), {}, 400, "carries 3 values"),
    "too many images": (_tensor_request([MAX_BATCH + 1, 32, 32, 3]), {}, 400, f"at most {MAX_BATCH}"),
    "unknown input": (json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "UINT8",
                                              "data": [1]}]}), {}, 400, "takes exactly one input"),  # fmt: skip
    "unknown output": (json.dumps({**json.loads(_tensor_request([1, 32, 32, 3])),
                                   "outputs": [{"name": "masks"}]}), {}, 400, "has no output ['masks']"),  # fmt: skip
    "8192x8192 png": (*_bytes_request([_png_header_only(8192, 8192)]), 400,
                      "8192x8192 = 67108864 pixels is above this server's limit"),
    "not an image": (*_bytes_request([b"this is not an image at all"]), 400, "are not an encoded image"),
    "truncated png": (*_bytes_request([_PNG[: len(_PNG) // 2]]), 400, "cannot be decoded"),
    "files of two sizes": (*_bytes_request([_PNG, _png(_images(1, 40, 64, seed=5)[0])]), 400,
                           "must share one size"),
    "float values": (_tensor_request([1, 32, 32, 3], data=[0.5] * 3072), {}, 400, "integers in [0, 255]"),
    "empty file": (*_bytes_request([b""]), 400, "is empty (0 bytes)"),
    "bad base64": (json.dumps({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES",
                                           "data": ["not base64!"]}]}), {}, 400, "not base64"),  # fmt: skip
    "binary sizes that do not add up": (*_binary_sizes_mismatch(), 400, "does not fit the 10 bytes left"),
    "malformed json": ('{"inputs": [{"name": "image", ', {}, 422, "JSON decode error"),
    "body above limit": (b"0" * (MAX_BODY_MB * 2**20 + 1), {}, 413, "above this server's limit"),
}


@pytest.mark.parametrize("case", list(_BAD_REQUESTS))
def test_bad_request_is_answered_4xx_and_the_server_keeps_serving(server, predictor, case):
    body, headers, status, message = _BAD_REQUESTS[case]
    answer_status, answer = server.request("POST", "/v2/models/fcn/infer", body, headers)
    assert answer_status == status, answer[:500]
    assert message in json.dumps(json.loads(answer)).replace('\\"', '"'), answer[:500]
    images = _images(1, 40, 40, seed=7)
    np.testing.assert_array_equal(_infer(server.http_client(), images).as_numpy("classes"),
                                  predictor.predict_classes(images))  # fmt: skip


def test_unknown_model_is_404(server):
    with pytest.raises(InferenceServerException) as error:
        _infer(server.http_client(), _images(1, 40, 40), model="nope")
    assert error.value.status() == "404" and "nope" in error.value.message()
    status, answer = server.request("GET", "/v2/models/nope")
    assert status == 404 and b"nope" in answer


def test_clients_disconnecting_mid_request_do_not_stop_the_server(server, predictor):
    images = _images(2, 64, 64, seed=8)
    body = _tensor_request(images.shape, data=images.ravel().tolist()).encode()
    head = (f"POST /v2/models/fcn/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    for cut in (len(body) // 2, len(body)):  # mid-body, and after a whole request before the answer
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
                connection.sendall(head + body[:cut])
    time.sleep(1)
    assert server.process.poll() is None, server.tail()
    np.testing.assert_array_equal(_infer(server.http_client(), images).as_numpy("classes"),
                                  predictor.predict_classes(images))  # fmt: skip


# === Request batching ===


@pytest.mark.slow
def test_request_batching_serves_concurrent_clients_exactly(onnx_path, predictor, tmp_path):
    batching = Server(onnx_path, tmp_path / "batching.log", "--batch-delay-ms", "20")
    try:
        batching.wait_ready()
        sizes = [(48, 64), (48, 64), (64, 48), (48, 64), (64, 48), (48, 64)]
        results, errors = {}, []

        def client(i):
            try:
                images = _images(1 + i % 2, *sizes[i], seed=20 + i)
                results[i] = (images, _infer(batching.http_client(), images).as_numpy("classes"))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(sizes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors and len(results) == len(sizes), errors
        for images, classes in results.values():
            np.testing.assert_array_equal(classes, predictor.predict_classes(images))
    finally:
        batching.stop()


@pytest.mark.slow
def test_two_workers_serve_exactly(onnx_path, predictor, tmp_path):
    # Each spawned worker loads its own session after start-up: the model's readiness says when.
    workers = Server(onnx_path, tmp_path / "workers.log", "--workers", "2")
    try:
        # The main process loads the file first (a bad file fails at start), then each worker logs
        # the line once its own session is ready.
        pids = workers.wait_loaded(3)
        assert pids[0] == str(workers.process.pid) and len(set(pids)) == 3, pids
        workers.wait_ready("/v2/models/fcn/ready")
        for seed in range(6):
            images = _images(1, 48, 56, seed=30 + seed)
            classes = _infer(workers.http_client(), images).as_numpy("classes")
            np.testing.assert_array_equal(classes, predictor.predict_classes(images))
        assert "died" not in workers.tail()  # KServe's supervisor restarted no worker
    finally:
        workers.stop()


def test_serve_refuses_a_missing_file_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fcn_keras", "serve", str(tmp_path / "none.onnx"),
                             "--port", str(_free_port())],
                            capture_output=True, text=True, timeout=300, env={**os.environ})  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"fcn-keras serve: error: model file not found: {str(tmp_path / 'none.onnx')!r}.")
