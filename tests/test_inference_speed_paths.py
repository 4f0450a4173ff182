"""The fast inference paths compute what the plain ones compute: XLA, bfloat16, int8 ONNX, onnxruntime options.

Correctness only (speed is `bench/latency.py`'s job): the XLA-compiled keras
engine (with its pad-to-32 buckets) and SavedModel signature against the
plain graph, the bfloat16 paths within bfloat16's tolerance, the int8 ONNX
through `export_all`'s verification gate on the built-in synthetic set, the
onnxruntime session options as set, and the benchmark's PyTorch twin
against Keras (skipped without torch, a benchmark-only extra).

Tolerances: float32 paths differ by kernel order only (~1e-6 of the logit
scale), so 1e-5 relative. bfloat16 keeps 8 mantissa bits (rounding 2^-9 ~
0.2% per value), compounded over ~20 layers: ~1e-2 of the logit scale was
measured on these models, so 5e-2 relative and 97% argmax agreement; IEEE
half keeps 11 bits, and XNNPACK accumulates in it: the same bounds hold.
"""

import os
import sys

import numpy as np
import pytest

from conftest import assert_close, randomize_score_layers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 5
# Odd sizes (padding and cropping back are where paths differ): two in one 32-pixel bucket at
# 256x256 (XLA), two under 224 pixels (where the keras engine runs the plain graph).
SIZES = [(37, 53), (33, 97), (231, 250), (250, 229)]


@pytest.fixture(scope="module")
def model():
    import keras

    import fcn_keras

    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=NUM_CLASSES, fc_units=16, backbone_weights=None)
    return randomize_score_layers(model, seed=1, scale=0.01)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, size + (3,), dtype=np.uint8) for size in SIZES]


@pytest.fixture(scope="module")
def savedmodel(model, tmp_path_factory):
    from fcn_keras import export

    return export.export_savedmodel(model, tmp_path_factory.mktemp("sm") / "fcn")


def _relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.slow
def test_keras_engine_xla_equals_plain_graph(model, images):
    from fcn_keras import export

    xla, plain = export.Predictor(model), export.Predictor(model, jit_compile=False)
    assert (xla.jit_compile, plain.jit_compile) == (True, False) and xla.precision == "float32"
    # Bucketing pads with the model's RGB mean, which preprocessing turns into exact zeros.
    fill, multiple = xla._bucket
    np.testing.assert_array_equal(fill, np.float32([123.68, 116.779, 103.939]))
    assert multiple == 32 and plain._bucket is None
    for image in images:
        reference = np.asarray(model(image[None], training=False))[0]
        fast, slow = xla.predict(image), plain.predict(image)
        assert fast.shape == slow.shape == image.shape[:2] + (NUM_CLASSES,)
        assert _relative(fast, reference) < 1e-5 and _relative(slow, reference) < 1e-5
        np.testing.assert_array_equal(fast.argmax(-1), reference.argmax(-1))
    # The two large images ran XLA on one 256x256 bucket; the small ones the plain graph.
    assert xla._keras_function.experimental_get_tracing_count() == 1
    assert xla._xla_min_side == 224 and xla._plain_function is not None
    batch = np.stack([images[2], images[2][::-1]])
    assert_close(xla.predict(batch), np.asarray(model(batch)), 1e-5)


def test_keras_engine_bfloat16_within_bfloat16_tolerance(model, images):
    from fcn_keras import export

    bf16 = export.Predictor(model, precision="bfloat16")
    assert bf16.jit_compile is False  # oneDNN's bfloat16 convolutions beat XLA's on CPU
    for image in images:
        reference = np.asarray(model(image[None], training=False))[0]
        logits = bf16.predict(image)
        assert logits.dtype == np.float32
        assert 1e-4 < _relative(logits, reference) < 5e-2  # really bfloat16, and close
        assert np.mean(logits.argmax(-1) == reference.argmax(-1)) >= 0.97


@pytest.mark.slow
def test_savedmodel_signatures_xla_and_bfloat16(model, images, savedmodel):
    import tensorflow as tf

    from fcn_keras import export

    meta = export.read_metadata(savedmodel)
    assert meta["signatures"] == {"serving_default": {"precision": "float32", "jit_compile": True},
                                  "serving_bfloat16": {"precision": "bfloat16", "jit_compile": False}}  # fmt: skip
    loaded = tf.saved_model.load(savedmodel)
    assert {"serving_default", "serving_bfloat16"} <= set(loaded.signatures)
    library = loaded.signatures["serving_default"].graph.as_graph_def().library.function
    assert any(f.attr["_XlaMustCompile"].b for f in library)  # the float32 signature is XLA
    float32 = export.Predictor(savedmodel)
    bf16 = export.Predictor(savedmodel, precision="bfloat16")
    for image in images[1:3]:
        reference = np.asarray(model(image[None], training=False))[0]
        assert _relative(float32.predict(image), reference) < 1e-5
        logits = bf16.predict(image)
        assert 1e-4 < _relative(logits, reference) < 5e-2
        assert np.mean(logits.argmax(-1) == reference.argmax(-1)) >= 0.97
    # One copy of the weights: the bfloat16 signature reads the float32 variables.
    stored = tf.train.list_variables(os.path.join(savedmodel, "variables", "variables"))
    values = [shape for name, shape in stored if name.endswith("VARIABLE_VALUE")]
    weights = [v for v in model.variables if "seed_generator" not in v.path]  # dropout seeds: unused
    assert sorted(map(tuple, values)) == sorted(tuple(v.shape) for v in weights)


def test_savedmodel_plain_export_opt_out(model, images, tmp_path):
    import tensorflow as tf

    from fcn_keras import export

    path = export.export_savedmodel(model, tmp_path / "plain", jit_compile=False, bfloat16_signature=False)
    loaded = tf.saved_model.load(path)
    assert "serving_bfloat16" not in loaded.signatures
    library = loaded.signatures["serving_default"].graph.as_graph_def().library.function
    assert not any(f.attr["_XlaMustCompile"].b for f in library)
    reference = np.asarray(model(images[0][None], training=False))[0]
    assert _relative(export.Predictor(path).predict(images[0]), reference) < 1e-5
    with pytest.raises(ValueError, match="no 'serving_bfloat16' signature"):
        export.Predictor(path, precision="bfloat16")
    with pytest.raises(ValueError, match="jit_compile must be True or False"):
        export.export_savedmodel(model, tmp_path / "bad", jit_compile="yes")


@pytest.mark.slow
def test_verify_runs_the_bfloat16_signature_or_says_why_not(model, images, savedmodel):
    from fcn_keras import export

    report = export.verify(model, {"fcn": savedmodel}, images[:2], bfloat16=True)
    rows = {a["name"]: a for a in report.artifacts}
    assert rows["fcn:bfloat16"]["precision"] == "bfloat16" and report.passed
    assert rows["fcn:bfloat16"]["vs_keras"]["argmax_agreement"] >= 0.97
    skipped = export.verify(model, {"fcn": savedmodel}, images[:1], bfloat16=False)
    assert [a["name"] for a in skipped.artifacts] == ["fcn"]
    assert skipped.not_run == [{"name": "fcn:bfloat16", "reason": "bfloat16=False"}]
    assert "Not run: fcn:bfloat16" in skipped.to_markdown()


@pytest.mark.slow
def test_int8_onnx_passes_the_gate_on_the_synthetic_set(tmp_path):
    import keras

    import fcn_keras
    from fcn_keras import export

    info = fcn_keras.dataset_info("synthetic")
    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=info.num_classes, fc_units=16, backbone_weights=None)
    model.dataset_info = info  # its ignore label (255) reaches the verification
    randomize_score_layers(model, seed=1, scale=0.01)

    def split(name, count):
        dataset = fcn_keras.load_dataset("synthetic", name, batch_size=1, image_size=64,
                                         num_examples=count)  # fmt: skip
        pairs = [(i[0].numpy().astype(np.uint8), m[0].numpy()) for i, m in dataset]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    calibration, _ = split("train", 8)
    val_images, val_labels = split("val", 4)
    summary = export.export_all(model, tmp_path, formats=("onnx",), quantizations=("float32", "int8"),
                                verify_images=val_images, verify_labels=val_labels,
                                calibration_images=calibration)  # fmt: skip
    assert sorted(summary["artifacts"]) == ["fcn8s.onnx", "fcn8s_int8.onnx"]
    assert export.read_metadata(summary["artifacts"]["fcn8s_int8.onnx"])["quantization"] == "int8"
    rows = {a["name"]: a for a in summary["verification"].artifacts}
    int8 = rows["fcn8s_int8.onnx"]
    assert int8["precision"] == "quantized" and int8["miou"] is not None
    assert int8["miou_drop"] <= 0.015 and summary["passed"]
    # Quantized, and still faithful to the float model pixel by pixel.
    assert 0 < int8["vs_keras"]["max_rel_delta"] and int8["vs_keras"]["argmax_agreement"] >= 0.95
    import onnx

    ops = {node.op_type for node in onnx.load(summary["artifacts"]["fcn8s_int8.onnx"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


def test_int8_onnx_needs_calibration_images(model, tmp_path):
    from fcn_keras import export

    with pytest.raises(ValueError, match="needs calibration_images"):
        export.export_onnx(model, tmp_path / "m.onnx", quantization="int8")
    with pytest.raises(ValueError, match="ONNX quantization must be one of"):
        export.export_onnx(model, tmp_path / "m.onnx", quantization="float16")
    assert not os.listdir(tmp_path)


def test_onnx_session_options_applied(model, tmp_path):
    import onnxruntime as ort

    from fcn_keras import export

    path = export.export_onnx(model, tmp_path / "m.onnx")
    predictor = export.Predictor(path, num_threads=1, inter_op_threads=1)
    options = predictor._session.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    with pytest.raises(ValueError, match="runs in the keras and savedmodel engines"):
        export.Predictor(path, precision="bfloat16")
    with pytest.raises(ValueError, match="jit_compile applies to the keras engine"):
        export.Predictor(path, jit_compile=True)


@pytest.fixture(scope="module")
def fixed_tflite(model, tmp_path_factory):
    from fcn_keras import export

    return export.export_tflite(model, tmp_path_factory.mktemp("tfl") / "fixed.tflite", input_size=(64, 96))


@pytest.mark.slow
def test_tflite_float16_computes_in_half_precision(model, fixed_tflite):
    from fcn_keras import export
    from fcn_keras.distribute import fp16_arithmetic

    available, reason = fp16_arithmetic()
    if not available:
        pytest.skip(reason)

    float32 = export.Predictor(fixed_tflite, num_threads=1)
    half = export.Predictor(fixed_tflite, num_threads=1, precision="float16")
    assert half.precision == "float16" and half.input_size == (64, 96) and half.num_classes == NUM_CLASSES
    batch = np.random.default_rng(5).integers(0, 256, (3, 64, 96, 3), dtype=np.uint8)
    reference = np.asarray(model(batch, training=False))
    assert _relative(float32.predict(batch), reference) < 1e-5
    logits = half.predict(batch)  # a batch runs image by image through the CompiledModel
    assert logits.shape == reference.shape and logits.dtype == np.float32
    assert 1e-4 < _relative(logits, reference) < 5e-2  # really half precision, and close
    assert np.mean(logits.argmax(-1) == reference.argmax(-1)) >= 0.97
    np.testing.assert_array_equal(half.predict(batch[1]), logits[1])
    np.testing.assert_array_equal(half.predict_classes(batch[2]), logits[2].argmax(-1))


@pytest.mark.slow
def test_tflite_float16_refusals_name_what_to_do(model, fixed_tflite, tmp_path, monkeypatch):
    from fcn_keras import distribute, export

    dynamic = export.export_tflite(model, tmp_path / "dynamic.tflite")
    monkeypatch.setattr(distribute, "cpu_flags", lambda: {"fpu", "avx2", "fma"})
    monkeypatch.setattr(distribute, "cpu_model_name", lambda: "AMD EPYC 7B13")
    with pytest.raises(ValueError, match=r"needs a CPU with IEEE fp16 arithmetic .*AMD EPYC 7B13"):
        export.Predictor(fixed_tflite, precision="float16")
    monkeypatch.setattr(distribute, "cpu_flags", lambda: {"avx2", "avx512_fp16"})
    with pytest.raises(ValueError, match=r"runs a fixed-size TFLite file; .*dynamic\.tflite.*input_size="):
        export.Predictor(dynamic, precision="float16")
    with pytest.raises(ValueError, match=r"runs in the tflite engine; the keras artifact"):
        export.Predictor(model, precision="float16")
    with pytest.raises(ValueError, match=r"runs in the keras and savedmodel engines; the tflite artifact"):
        export.Predictor(dynamic, precision="bfloat16")


@pytest.mark.parametrize("variant,at_once", [("fcn8s", False), ("fcn8s", True), ("fcn32s", False)])
def test_torch_twin_matches_keras(variant, at_once, images):
    torch = pytest.importorskip("torch")
    import fcn_keras

    sys.path.insert(0, os.path.join(REPO, "bench"))
    from torch_fcn import from_keras

    kwargs = {"at_once": True} if at_once else {}
    model = randomize_score_layers(fcn_keras.build_fcn(variant, num_classes=NUM_CLASSES, fc_units=16,
                                                       backbone_weights=None, **kwargs), seed=2)  # fmt: skip
    for channels_last in (False, True):
        twin = from_keras(model, channels_last=channels_last)
        for image in images[:2]:
            reference = np.asarray(model(image[None], training=False))[0]
            with torch.inference_mode():
                logits = twin(torch.from_numpy(image[None])).numpy()[0]
            assert logits.shape == reference.shape and _relative(logits, reference) < 1e-5
