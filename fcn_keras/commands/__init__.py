"""`fcn-keras` subcommands, one module per group of jobs.

Each module exposes `register(subparsers)`, which declares its subcommands'
arguments and sets a `handler` that imports the library lazily, so that
`fcn-keras --help` does not pay for importing TensorFlow:

- `data`: `fcn-keras data` (dataset sizes, class frequencies, samples).
- `train`: `fcn-keras train`, `evaluate` and `demo` (the main job).
- `export`: `fcn-keras export` (with `--verify`) and `predict`.
"""


def source_kwargs(args):
    """Collect a source's options from `--source-arg KEY=VALUE` (JSON values), `--data-dir`, `--image-size`."""
    import json

    kwargs = {}
    for pair in args.source_arg or []:
        if "=" not in pair:
            raise ValueError(f"--source-arg expects KEY=VALUE; received {pair!r}.")
        key, value = pair.split("=", 1)
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    if getattr(args, "data_dir", None) is not None:
        kwargs["data_dir"] = args.data_dir
    if getattr(args, "image_size", None) is not None:
        kwargs["image_size"] = args.image_size
    return kwargs
