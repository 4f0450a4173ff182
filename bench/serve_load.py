"""`fcn-keras serve` under closed-loop load, against the in-process Predictor, with request batching off and on.

For each setting (request batching off, then on with `--batch-delay-ms`) the
server is started as a subprocess on 127.0.0.1 and 1, 4 and 16 closed-loop
`tritonclient.http` clients each send `--requests` 360x480 images (one per
request, binary tensor extension): throughput, p50/p95/p99 latency, errors.
The baseline is `Predictor.predict_classes` on the same file in this
process, one image after another. Memory: the server's resident set size
after start-up, after the 360x480 load, and after `--rss-requests` further
requests of five small image sizes (cycled, 4 clients).
The logic is `fcn_keras.serve_load`; this script only drives it and prints
JSON (and writes it with `--out`).

Without `--model` it exports the reduced FCN-8s that docs/benchmarks.md uses
(random weights: speed does not depend on them; `--fc-units`, 11 classes)
into `--work`, outside the repository.

    python bench/serve_load.py --work /tmp/fcn_keras_serve --threads 2 --requests 2 \\
        --out /tmp/fcn_keras_serve/serve_load.json
"""

import argparse
import json
import os
import platform
import socket
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import inside_repo_error  # noqa: E402

SIZE = (360, 480)
# The memory phase's sizes: small, so 1,000 requests take minutes on 2 cores; five shapes, so
# onnxruntime's per-shape buffers are exercised.
RSS_SIZES = ((64, 64), (96, 128), (128, 96), (80, 112), (112, 80))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(args):
    if args.model:
        return args.model
    import fcn_keras
    from fcn_keras.export import export_onnx

    path = os.path.join(args.work, f"fcn8s_fc{args.fc_units}.onnx")
    if not os.path.exists(path):
        export_onnx(fcn_keras.FCN8s(num_classes=11, backbone_weights=None, fc_units=args.fc_units), path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="an fcn_keras .onnx file (default: export the reduced FCN-8s)")
    parser.add_argument("--work", default="/tmp/fcn_keras_serve", help="where the exported model and logs go")
    parser.add_argument("--fc-units", type=int, default=512, help="fc6/fc7 width of the exported FCN-8s")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads (server and baseline)")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=2, help="360x480 requests per client")
    parser.add_argument("--baseline-requests", type=int, default=16, help="in-process Predictor calls")
    parser.add_argument("--batch-delay-ms", type=float, default=20.0, help="the batching setting's window")
    parser.add_argument("--rss-requests", type=int, default=1000, help="requests of the memory phase")
    parser.add_argument("--out", default=None, help="also write the figures here (JSON)")
    args = parser.parse_args(argv)
    for path, flag in ((args.work, "--work"), (args.out, "--out")):
        error = path and inside_repo_error(path, flag, allowed=os.path.join("docs", "results"))
        if error:
            parser.error(error)
    os.makedirs(args.work, exist_ok=True)

    import numpy as np

    from fcn_keras.export import Predictor
    from fcn_keras.serve_load import closed_loop, process_rss, single_stream, start_server, stop_server

    path = _model(args)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, *SIZE, 3), dtype=np.uint8)
    clients = [int(c) for c in args.clients.split(",")]
    report = {"model": os.path.basename(path), "fc_units": args.fc_units if not args.model else None,
              "image": list(SIZE), "threads": args.threads, "requests_per_client": args.requests,
              "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version()},
              "settings": {}}  # fmt: skip

    predictor = Predictor(path, engine="onnx", num_threads=args.threads)
    predictor.predict_classes(images[:1])  # warm-up
    report["predictor_single_stream"] = single_stream(predictor, images, args.baseline_requests)
    del predictor
    print(json.dumps({"predictor_single_stream": report["predictor_single_stream"]}), flush=True)

    for setting, extra in (("batching_off", []), ("batching_on", ["--batch-delay-ms", str(args.batch_delay_ms)])):
        port = _free_port()
        with open(os.path.join(args.work, f"server_{setting}.log"), "w") as log:
            server = start_server(path, port, "--threads", str(args.threads), "--max-batch", "16",
                                  "--max-pixels", str(SIZE[0] * SIZE[1]), *extra, log=log)  # fmt: skip
            try:
                url, name = f"127.0.0.1:{port}", os.path.splitext(os.path.basename(path))[0]
                closed_loop(url, name, images, 1, 1)  # warm-up
                result = {"rss_mib_after_start": process_rss(server.pid), "load": []}
                for count in clients:
                    stats = closed_loop(url, name, images, count, args.requests)
                    result["load"].append(stats)
                    print(json.dumps({setting: stats}), flush=True)
                result["rss_mib_after_load"] = process_rss(server.pid)
                if args.rss_requests and setting == "batching_off":
                    mixed = [rng.integers(0, 256, (4, *size, 3), dtype=np.uint8) for size in RSS_SIZES]
                    done, errors = 0, 0
                    per_round = 4 * len(RSS_SIZES)  # 4 clients x one request per size
                    rounds = max(1, args.rss_requests // per_round)
                    for _ in range(rounds):
                        for batch in mixed:
                            stats = closed_loop(url, name, batch, 4, 1)
                            done, errors = done + stats["requests"], errors + stats["errors"]
                    result["rss_phase"] = {"requests": done, "errors": errors, "sizes": [list(s) for s in RSS_SIZES],
                                           "rss_mib_end": process_rss(server.pid)}  # fmt: skip
                    print(json.dumps({setting: result["rss_phase"]}), flush=True)
            finally:
                stop_server(server)
        report["settings"][setting] = result
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


if __name__ == "__main__":
    sys.exit(main())
