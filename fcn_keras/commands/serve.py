"""`fcn-keras serve`: serve an exported ONNX FCN over the Open Inference Protocol (KServe v2 / Triton).

    fcn-keras serve fcn8s.onnx --port 8080 --threads 2
    fcn-keras serve fcn8s.onnx --name camvid --grpc-port 8081 --batch-delay-ms 5

A thin layer over `fcn_keras.serving.serve` (KServe's ModelServer with the
package's Predictor as the engine); needs the `serve` extra. Arguments are
declared here; the library is imported inside the handler, so `--help`
does not import TensorFlow or KServe.
"""

__all__ = ["register"]


def register(subparsers):
    """Add `fcn-keras serve` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    parser = subparsers.add_parser(
        "serve",
        help="serve an ONNX model over the Open Inference Protocol (KServe v2 / Triton, REST and gRPC)",
        description="Serve an exported ONNX FCN with KServe's ModelServer: GET /v2/health/live, "
        "/v2/health/ready, /v2/models/NAME (metadata with class names, ignore label, palette), "
        "POST /v2/models/NAME/infer (input 'image' UINT8 [N, H, W, 3] or 'image_bytes' BYTES [N] "
        "PNG/JPEG; outputs 'classes' INT32 [N, H, W], on request 'logits', 'probabilities'). "
        "Needs: pip install \"fcn_keras[serve]\". Stops on Ctrl-C / SIGTERM.",
    )
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX file (fcn-keras export)")
    parser.add_argument("--name", default=None, help="model name in the URLs (default: the file's stem)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="REST address (default 127.0.0.1; 0.0.0.0 for every interface)")  # fmt: skip
    parser.add_argument("--port", type=int, default=8080, help="REST port (default 8080)")
    parser.add_argument("--grpc-port", type=int, default=None,
                        help="also serve gRPC v2 on this port, on every interface (default: no gRPC)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime threads per worker (default: all cores)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1,
                        help="REST worker processes, each with its own session (default 1)")  # fmt: skip
    parser.add_argument("--max-batch", type=int, default=None,
                        help="most images per request and per batch (default 8)")  # fmt: skip
    parser.add_argument("--batch-delay-ms", type=float, default=0.0,
                        help="request batching: wait up to this long for requests of one size to "
                             "fill a batch (default 0: off)")  # fmt: skip
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="most pixels per image, checked before decoding (default 2048x2048)")  # fmt: skip
    parser.add_argument("--max-body-mb", type=float, default=None,
                        help="largest request body in MiB, 413 above (default 64)")  # fmt: skip
    parser.set_defaults(handler=handler)


def handler(args):
    """Run `fcn-keras serve` until interrupted; returns 0."""
    from fcn_keras import serving

    options = {"max_batch": args.max_batch, "max_pixels": args.max_pixels}
    options = {key: value for key, value in options.items() if value is not None}
    if args.max_body_mb is not None:
        if not args.max_body_mb > 0:
            raise ValueError(f"--max-body-mb must be positive; received {args.max_body_mb}.")
        options["max_body_bytes"] = int(args.max_body_mb * 2**20)
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be a positive integer; received {args.threads}.")
    serving.serve(args.model, name=args.name, host=args.host, http_port=args.port,
                  grpc_port=args.grpc_port, num_threads=args.threads, workers=args.workers,
                  batch_delay_ms=args.batch_delay_ms, **options)  # fmt: skip
    return 0
