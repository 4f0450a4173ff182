"""fcn_keras.export: SavedModel, TFLite and ONNX export of fcn_keras models, verification and serving.

One module per format, as in Keras's `src/export`:

    export_savedmodel(model, filepath, version=None, input_size=None, jit_compile=True,
                      bfloat16_signature=True)   # XLA serving_default + serving_bfloat16
    export_tflite(model, filepath, quantization="float32"|"float16"|"dynamic_range"|"int8",
                  representative_images=None, input_size=None, num_calibration_images=100)
    export_onnx(model, filepath, opset=17, external_data=None, quantization="float32"|"int8",
                calibration_images=None)
    export_mobile(model, filepath, input_size=(H, W), quantization="float32"|"float16"|"int8",
                  representative_images=None)   # the file MediaPipe's ImageSegmenter runs
    export_triton_repository(model_or_onnx_path, repository, name=None, max_batch_size=8)
        -> repository/<name>/{config.pbtxt, 1/model.onnx} for Triton's onnxruntime backend
    export_all(model, out_dir, formats=..., quantizations=..., verify_images=..., ...)
        -> {"artifacts", "verification", "passed", "report_files", "timings"}
    verify(model, artifacts, images, labels=None, num_classes=None, ignore_label=None, ...)
        -> VerificationReport (.passed, .to_json(), .to_markdown())
    Predictor(path, engine="onnx"|"tflite"|"savedmodel"|"keras", num_threads=None,
              precision="float32"|"bfloat16"|"float16", jit_compile=None, ...)
        .predict(images) -> logits, .predict_classes(images) -> class ids,
        .class_names, .ignore_label, .palette (from the artifact's metadata)
    read_tflite_metadata(path) -> the TFLite Model Metadata, tensors and packed files of a .tflite
    run_mediapipe(path, images) -> MediaPipe ImageSegmenter's masks (needs fcn_keras[mobile])

Every artifact takes raw RGB uint8 images `image` (batch, height, width, 3) of
any size (unless exported with a fixed `input_size`) and returns `logits`
(float32, same height and width, num_classes channels) and `classes` (int32
argmax): the preprocessing is inside the graph, and so are float32 weights whatever
dtype policy the model was trained under. Every artifact's metadata carries
the model's dataset facts (class names, ignore label, palette); a TFLite file holds them
inside, as TFLite Model Metadata. See docs/export.md.

fcn_keras's core (models, data, training) never imports this package. The
runtimes (tf2onnx, onnx, onnxruntime, ai_edge_litert; installed with
fcn_keras) are imported where they are used, so importing `fcn_keras.export`
does not load them; nor does it load mediapipe (optional, `fcn_keras[mobile]`). `FORMATS` and `QUANTIZATIONS` are `fcn_keras.choices`'s.
"""

from ._artifacts import float32_model, model_facts, read_metadata
from .bundle import DEFAULT_FORMATS, FORMATS, artifact_names, export_all, with_odd_crops
from .mobile import MOBILE_QUANTIZATIONS, export_mobile, run_mediapipe
from .onnx import export_onnx
from .predictor import Predictor
from .savedmodel import export_savedmodel
from .triton import export_triton_repository, triton_config
from .tflite import QUANTIZATIONS, export_tflite, representative_images_from_dataset
from .tflite_metadata import read_tflite_metadata
from .verify import DEFAULT_THRESHOLDS, VerificationReport, find_artifacts, verify

__all__ = [
    "export_all",
    "artifact_names",
    "with_odd_crops",
    "FORMATS",
    "DEFAULT_FORMATS",
    "export_mobile",
    "run_mediapipe",
    "read_tflite_metadata",
    "MOBILE_QUANTIZATIONS",
    "float32_model",
    "read_metadata",
    "model_facts",
    "export_savedmodel",
    "export_tflite",
    "export_onnx",
    "export_triton_repository",
    "triton_config",
    "verify",
    "VerificationReport",
    "Predictor",
    "find_artifacts",
    "representative_images_from_dataset",
    "QUANTIZATIONS",
    "DEFAULT_THRESHOLDS",
]
