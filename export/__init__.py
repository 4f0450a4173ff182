"""export: SavedModel, TFLite and ONNX export of fcn_keras models, verification and serving.

One module per format, as in Keras's `src/export`:

    export_savedmodel(model, filepath, version=None, input_size=None)
    export_tflite(model, filepath, quantization="float32"|"float16"|"dynamic_range"|"int8",
                  representative_images=None, input_size=None, num_calibration_images=100)
    export_onnx(model, filepath, opset=17, external_data=None)
    verify(model, artifacts, images, labels=None, num_classes=None, ignore_label=None, ...)
        -> VerificationReport (.passed, .to_json(), .to_markdown())
    Predictor(path, engine="onnx"|"tflite"|"savedmodel"|"keras", num_threads=None, ...)
        .predict(images) -> logits, .predict_classes(images) -> class ids

Every artifact takes raw RGB uint8 images `image` (batch, height, width, 3) of
any size (unless exported with a fixed `input_size`) and returns `logits`
(float32, same height and width, num_classes channels) and `classes` (int32
argmax): the preprocessing is inside the graph. See docs/export.md.

Heavy dependencies (TensorFlow, tf2onnx, onnxruntime, ai_edge_litert) are
imported inside the functions that need them.
"""

from fcn_keras.export.onnx import export_onnx
from fcn_keras.export.predictor import Predictor
from fcn_keras.export.savedmodel import export_savedmodel
from fcn_keras.export.tflite import QUANTIZATIONS, export_tflite, representative_images_from_dataset
from fcn_keras.export.verify import DEFAULT_THRESHOLDS, VerificationReport, find_artifacts, verify

__all__ = [
    "export_savedmodel",
    "export_tflite",
    "export_onnx",
    "verify",
    "VerificationReport",
    "Predictor",
    "find_artifacts",
    "representative_images_from_dataset",
    "QUANTIZATIONS",
    "DEFAULT_THRESHOLDS",
]
