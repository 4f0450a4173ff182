"""fcn_keras: Fully Convolutional Networks for semantic segmentation in Keras 3.

Public API:
    Models:   FCN32s, FCN16s, FCN8s, build_fcn, FCNModel, variant_of,
              convolutionalize_vgg16
    Dense output (Section 3.2): shift_and_stitch, dilate, DilatedMaxPooling2D
              (fcn_keras.shift_and_stitch: logits_function, the forward evaluate scores)
    Staged:   fcn16s_from_fcn32s, fcn8s_from_fcn16s, transfer_weights
    Layers:   CaffePreprocess, PadToMultiple, CropToReference,
              BilinearUpsampling, bilinear_kernel
    Dense CRF: DenseCRF, with_crf, tune_crf, fine_tune_crf (fcn_keras.crf:
              save_crf_settings, load_crf_settings; fcn_keras.crf_reference:
              Krähenbühl's permutohedral CRF through pydensecrf2, to compare with)
    Test-time augmentation: with_tta (fcn_keras.tta: tta_settings)
    Data:     load_dataset, dataset_info, DatasetInfo (fcn_keras.data)
    Evaluation: evaluate, evaluate_predictions, ConfusionAccumulator
              (fcn_keras.memory: resident memory for memory figures)
    Training: train, TrainConfig, SegmentationCrossEntropy, FocalLoss,
              LovaszSoftmax, DiceLoss, CrossEntropyLovasz,
              median_frequency_weights, SegmentationMetrics (fcn_keras.training,
              fcn_keras.train_config, fcn_keras.evaluation, fcn_keras.losses,
              fcn_keras.metrics)

`import fcn_keras` imports every module behind `__all__`, which also
registers the package's layers, losses and metrics with Keras, so that
`keras.saving.load_model` finds them. One exception keeps the command line
fast: when the package is imported by the `fcn-keras` command (or `python -m
fcn_keras`), the public names load on first use instead (PEP 562 module
`__getattr__`), so `fcn-keras --help` and argument errors answer without
importing TensorFlow; the command loads them before running a subcommand.

Reference: Long, Shelhamer, Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015 (arXiv:1411.4038).
"""

import importlib
import os
import sys

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "FCN32s": "fcn_keras.models",
    "FCN16s": "fcn_keras.models",
    "FCN8s": "fcn_keras.models",
    "build_fcn": "fcn_keras.models",
    "FCNModel": "fcn_keras.models",
    "variant_of": "fcn_keras.models",
    "convolutionalize_vgg16": "fcn_keras.convolutionalize",
    "fcn16s_from_fcn32s": "fcn_keras.staged",
    "fcn8s_from_fcn16s": "fcn_keras.staged",
    "transfer_weights": "fcn_keras.staged",
    "CaffePreprocess": "fcn_keras.preprocessing",
    "PadToMultiple": "fcn_keras.geometry",
    "CropToReference": "fcn_keras.geometry",
    "BilinearUpsampling": "fcn_keras.upsampling",
    "bilinear_kernel": "fcn_keras.upsampling",
    "load_dataset": "fcn_keras.data",
    "dataset_info": "fcn_keras.data",
    "DatasetInfo": "fcn_keras.data",
    "train": "fcn_keras.training",
    "TrainConfig": "fcn_keras.train_config",
    "evaluate": "fcn_keras.evaluation",
    "evaluate_predictions": "fcn_keras.evaluation",
    "SegmentationCrossEntropy": "fcn_keras.losses",
    "FocalLoss": "fcn_keras.losses",
    "LovaszSoftmax": "fcn_keras.losses",
    "DiceLoss": "fcn_keras.losses",
    "CrossEntropyLovasz": "fcn_keras.losses",
    "median_frequency_weights": "fcn_keras.losses",
    "SegmentationMetrics": "fcn_keras.metrics",
    "ConfusionAccumulator": "fcn_keras.metrics",
    "shift_and_stitch": "fcn_keras.shift_and_stitch",
    "dilate": "fcn_keras.shift_and_stitch",
    "DilatedMaxPooling2D": "fcn_keras.shift_and_stitch",
    "DenseCRF": "fcn_keras.crf",
    "with_crf": "fcn_keras.crf",
    "tune_crf": "fcn_keras.crf",
    "fine_tune_crf": "fcn_keras.crf",
    "with_tta": "fcn_keras.tta",
}

__all__ = list(_EXPORTS)


def _load_public_names():
    for public, module in _EXPORTS.items():
        # The submodule import may itself bind a same-named attribute (e.g. `train` vs
        # `fcn_keras.training`); the public object always wins.
        globals()[public] = getattr(importlib.import_module(module), public)


def __getattr__(name):
    """Load the public names on first use (all at once: the layers then register with Keras)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fcn_keras' has no attribute {name!r}")
    _load_public_names()
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _imported_by_the_command_line():
    """True while the `fcn-keras` console script or `python -m fcn_keras` imports this package."""
    program = sys.argv[0] if sys.argv else ""
    # `python -m fcn_keras` imports the package while sys.argv[0] is still "-m"; the processes
    # it spawns (`fcn-keras serve --workers N`) import it with its __main__.py as sys.argv[0].
    return (os.path.basename(program) in ("fcn-keras", "fcn-keras.exe") or program == "-m"
            or program.endswith(os.path.join("fcn_keras", "__main__.py")))


if not _imported_by_the_command_line():
    _load_public_names()
