"""Closed-loop load on an Open Inference Protocol server (`fcn-keras serve`, Triton, KServe) and its baseline.

`closed_loop` runs `clients` threads, each with its own `tritonclient.http`
client, each sending its next request as soon as the last one is answered
(a closed loop: the offered load follows the server's speed); it returns the
throughput, latency percentiles and the errors. `single_stream` times the
in-process `Predictor` the same way, one image after another: the figure the
server's overhead is read against. `process_rss` reads a process's resident
memory (`fcn_keras.memory`, Linux); `start_server` runs `fcn-keras serve` as a
subprocess and waits (bounded) until it is ready, `stop_server` ends it.

The client is `tritonclient.http` only: importing `tritonclient.grpc` beside
KServe in one process fails (both register `inference.*` protos in
protobuf's default pool).

Example:
>>> stats = closed_loop("127.0.0.1:8080", "fcn8s", images, clients=4, requests_per_client=8)
>>> stats["throughput"], stats["p95_ms"], stats["errors"]
(3.1, 1450.2, 0)
"""

import http.client
import os
import subprocess
import sys
import threading
import time

import numpy as np

__all__ = ["closed_loop", "single_stream", "latency_stats", "process_rss", "start_server", "stop_server"]


def latency_stats(latencies, wall_seconds, errors=0):
    """Summarise request latencies: count, throughput and p50/p95/p99/max in milliseconds.

    Args:
        latencies: seconds per answered request.
        wall_seconds: the phase's wall-clock time.
        errors: requests that failed. Defaults to 0.

    Returns:
        dict with `requests`, `errors`, `wall_s`, `throughput` (answered requests
        per second), `p50_ms`, `p95_ms`, `p99_ms`, `max_ms` (None without answers).
    """
    ms = np.asarray(latencies, dtype=np.float64) * 1000
    stats = {"requests": int(ms.size), "errors": int(errors), "wall_s": round(float(wall_seconds), 3),
             "throughput": round(ms.size / wall_seconds, 3) if wall_seconds > 0 else None}  # fmt: skip
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100)):
        stats[name] = round(float(np.percentile(ms, q)), 1) if ms.size else None
    return stats


def closed_loop(url, model, images, clients, requests_per_client, outputs=("classes",), timeout=600):
    """Run `clients` closed-loop clients against a v2 server, each sending `requests_per_client` requests.

    Args:
        url: `host:port` of the server's REST endpoint.
        model: the model's name.
        images: uint8 `(N, H, W, 3)` array; client `i` sends image
            `(i + k) % N` as a batch of one for its `k`-th request.
        clients: number of concurrent clients (threads).
        requests_per_client: requests each client sends.
        outputs: outputs to ask for. Defaults to `("classes",)`.
        timeout: seconds a request may take. Defaults to 600.

    Returns:
        `latency_stats` of all answered requests, plus `clients` and the first
        error messages (`error_messages`, at most 5).

    Example:
    >>> closed_loop("127.0.0.1:8080", "fcn8s", images, clients=16, requests_per_client=2)["errors"]
    0
    """
    import tritonclient.http as triton

    if clients < 1 or requests_per_client < 1:
        raise ValueError(f"clients and requests_per_client must be >= 1; received {clients}, {requests_per_client}.")
    latencies, messages = [], []
    lock = threading.Lock()
    start_together = threading.Barrier(clients + 1)

    def run(index):
        client = triton.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout)
        requested = [triton.InferRequestedOutput(name) for name in outputs]
        start_together.wait()
        for k in range(requests_per_client):
            image = images[(index + k) % len(images)][None]
            tensor = triton.InferInput("image", list(image.shape), "UINT8")
            tensor.set_data_from_numpy(image)
            began = time.perf_counter()
            try:
                result = client.infer(model, [tensor], outputs=requested)
                if result.as_numpy(outputs[0]).shape[:3] != image.shape[:3]:
                    raise RuntimeError(f"answer of shape {result.as_numpy(outputs[0]).shape} for {image.shape}")
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    messages.append(f"{type(e).__name__}: {e}")
                continue
            with lock:
                latencies.append(time.perf_counter() - began)
        client.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_together.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    stats = latency_stats(latencies, time.perf_counter() - began, errors=len(messages))
    return {"clients": clients, **stats, "error_messages": messages[:5]}


def single_stream(predictor, images, requests):
    """Time `requests` calls of `predictor.predict_classes` on one image each, one after another.

    Args:
        predictor: a `fcn_keras.export.Predictor`.
        images: uint8 `(N, H, W, 3)`; call `k` runs image `k % N`.
        requests: number of calls.

    Returns:
        `latency_stats` of the calls (`clients` 1).
    """
    latencies = []
    began = time.perf_counter()
    for k in range(requests):
        start = time.perf_counter()
        predictor.predict_classes(images[k % len(images)][None])
        latencies.append(time.perf_counter() - start)
    return {"clients": 1, **latency_stats(latencies, time.perf_counter() - began)}


def process_rss(pid):
    """Resident memory of process `pid` in MiB (one decimal), or None (`fcn_keras.memory.resident_bytes`)."""
    from fcn_keras.memory import resident_bytes

    size = resident_bytes(pid)
    return None if size is None else round(size / 2**20, 1)


def start_server(path, port, *options, log=None, timeout=300):
    """Start `fcn-keras serve PATH --port PORT OPTIONS...` and wait until it answers ready.

    Args:
        path: the `.onnx` file.
        port: REST port on 127.0.0.1.
        *options: further `fcn-keras serve` arguments (e.g. "--threads", "2").
        log: file object for the server's output. Defaults to `None` (discarded).
        timeout: seconds to wait for `/v2/health/ready`. Defaults to 300.

    Returns:
        The `subprocess.Popen` of the server.

    Raises:
        RuntimeError: it exited or was not ready in time (it is stopped then).

    Example:
    >>> server = start_server("fcn8s.onnx", 8080, "--threads", "2")
    >>> stop_server(server)
    """
    command = [sys.executable, "-m", "fcn_keras", "serve", os.fspath(path), "--port", str(port), *options]
    process = subprocess.Popen(command, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}.")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/v2/health/ready")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"{' '.join(command)} was not ready after {timeout} s.")


def stop_server(process, timeout=30):
    """Stop a server started by `start_server` (SIGTERM, then SIGKILL after `timeout` seconds)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
