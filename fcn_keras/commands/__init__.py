"""`fcn-keras` subcommands, one module per group of jobs.

Each module exposes `register(subparsers)`, which declares its subcommands'
arguments and sets a `handler` that imports the library lazily, so that
`fcn-keras --help` does not pay for importing TensorFlow:

- `data`: `fcn-keras data` (dataset sizes, class frequencies, samples).
- `train`: `fcn-keras train`, `evaluate` and `demo` (the main job).
- `export`: `fcn-keras export` (with `--verify`) and `predict`.
"""
