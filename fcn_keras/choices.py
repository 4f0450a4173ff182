"""The named choices of building and training as plain tuples, shared by the library and the CLI.

`fcn_keras.training`, `fcn_keras.distribute`, `fcn_keras.models` and
`fcn_keras.export` validate against these; the `fcn-keras` command line offers
them as `choices=`. This
module imports nothing, so the command line can read it without importing
TensorFlow.

Example:
>>> from fcn_keras.choices import OPTIMIZERS
>>> "adamw" in OPTIMIZERS
True
"""

__all__ = ["VARIANTS", "OPTIMIZERS", "DEFAULT_LEARNING_RATES", "SCHEDULES", "LOSSES",
           "PRECISIONS", "STRATEGIES", "FORMATS", "DEFAULT_FORMATS", "QUANTIZATIONS",
           "ONNX_QUANTIZATIONS", "MOBILE_QUANTIZATIONS", "ENGINES",
           "INFERENCE_PRECISIONS", "HEADS", "HEAD_FC_UNITS"]  # fmt: skip

# FCN variants by output stride (reference: Long et al. 1411.4038, section 4.2).
VARIANTS = ("fcn32s", "fcn16s", "fcn8s")
OPTIMIZERS = ("sgd", "adam", "adamw")
# Peak learning rate per optimizer when none is given: SGD's is the paper's 1e-10
# for a summed loss, rescaled to a mean loss.
DEFAULT_LEARNING_RATES = {"sgd": 2e-5, "adam": 1e-4, "adamw": 1e-4}
SCHEDULES = ("constant", "poly", "cosine")
# Loss names `fcn_keras.training.make_loss` accepts (`fcn_keras.losses`).
LOSSES = ("cross_entropy", "focal", "lovasz", "dice", "cross_entropy+lovasz")
# Keras dtype policies; "auto" picks mixed_bfloat16 where the hardware has bfloat16 units.
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi_worker")
# Export formats (`fcn_keras.export.export_all`) and TFLite quantizations (`export_tflite`).
# "mobile" is the fixed-size TFLite file MediaPipe's ImageSegmenter runs (`export_mobile`);
# it needs an input size, so it is asked for by name, not by default.
FORMATS = ("savedmodel", "tflite", "onnx", "mobile")
DEFAULT_FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("float32", "float16", "dynamic_range", "int8")
# The quantizations `export_mobile` writes (MediaPipe runs float32-output files).
MOBILE_QUANTIZATIONS = ("float32", "float16", "int8")
# The quantizations `export_onnx` writes (int8: static QDQ, calibrated like the TFLite int8).
ONNX_QUANTIZATIONS = ("float32", "int8")
# Runtimes `fcn_keras.export.Predictor` (and `fcn-keras predict --engine`) run a model in.
ENGINES = ("onnx", "tflite", "savedmodel", "keras")
# What a `Predictor` computes in (`fcn-keras predict --precision`): bfloat16 in the keras and
# savedmodel engines, float16 (IEEE half) in the tflite engine.
INFERENCE_PRECISIONS = ("float32", "bfloat16", "float16")
# Head name -> fc6 kernel size. "paper": VGG16's fc1 as a 7x7 convolution (Long et al.,
# Section 3.1), 102M of FCN-8s's 134M weights at fc_units 4096. "mobile": a 3x3 fc6, with
# fc_units 512 by default (about 17M weights with VGG16's 14.7M): the size an app ships.
HEADS = {"paper": 7, "mobile": 3}
# The fc6/fc7 width each head builds when `fc_units` is not given.
HEAD_FC_UNITS = {"paper": 4096, "mobile": 512}
