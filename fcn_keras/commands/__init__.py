"""`fcn-keras` subcommands, one module per subcommand (`fcn_keras.cli.COMMANDS` lists them).

Each module exposes `register(subparsers)`, which declares the subcommand's
arguments and sets a `handler` that imports the library lazily, so that
`fcn-keras --help` and argument errors do not import TensorFlow:

- `model`: build a variant, print its size.
- `data`: dataset sizes, class frequencies, samples.
- `train`: `model.fit` with checkpoints and resume.
- `evaluate`: the paper's scores on a split.
- `demo`: the main job end to end on synthetic data.
- `export`: SavedModel / TFLite / ONNX (with `--verify`).
- `predict`: masks and overlays for images, with any engine.
- `serve`: an ONNX model over the Open Inference Protocol (KServe v2 / Triton).

Shared pieces: `sources` (the data-source arguments, declared once), `tta`
(the test-time augmentation arguments of evaluate, predict and export) and
`fcn_keras.choices` (the optimizer, schedule, loss, precision and strategy
names).
"""
