"""Export a reduced-width FCN-8s to every format and verify it against Keras and across formats.

One module-scoped set of artifacts (SavedModel, TFLite float32/float16/
dynamic-range/int8 and a fixed-size float32, ONNX) is shared by every test here.
Inputs are a real CamVid image (resized small, when ../shared is present) and
odd-sized images (37x53: padding to 64x64 and cropping back are where exports
break). Tolerances: float32 runtimes differ from Keras by rounding only (~1e-6
of the logit scale here), so 1e-4 relative is a tight bound; float16 weights
move logits by ~1e-3 relative.
"""

import json
import os

import numpy as np
import pytest

from conftest import CAMVID_DIR, assert_close, randomize_score_layers

NUM_CLASSES = 11  # CamVid's 11 classes; label 11 is ignored.
IGNORE = 11


def _camvid_pair(index=0, size=(60, 80)):
    from PIL import Image

    with open(CAMVID_DIR / "val.txt") as f:
        image_rel, label_rel = f.read().split("\n")[index].split()
    image = Image.open(CAMVID_DIR / image_rel).convert("RGB").resize(size[::-1], Image.BILINEAR)
    label = Image.open(CAMVID_DIR / label_rel).resize(size[::-1], Image.NEAREST)
    return np.asarray(image), np.asarray(label)


@pytest.fixture(scope="module")
def model():
    import keras

    import fcn_keras

    from fcn_keras.data.folders import CAMVID_CLASS_NAMES, CAMVID_PALETTE

    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=NUM_CLASSES, fc_units=32, backbone_weights=None)
    # The dataset facts every artifact must carry (what fcn_keras.train sets on CamVid).
    model.dataset_info = fcn_keras.DatasetInfo("camvid", NUM_CLASSES, CAMVID_CLASS_NAMES,
                                               ignore_label=255, palette=CAMVID_PALETTE)  # fmt: skip
    return randomize_score_layers(model, seed=0, scale=0.01)


@pytest.fixture(scope="module")
def inputs():
    """(images, labels or None): real CamVid when present, plus odd sizes."""
    if CAMVID_DIR.exists():
        image, label = _camvid_pair(0)
        images = [image, image[:37, :53], image[5:58, 3:76]]
        labels = [label, label[:37, :53], label[5:58, 3:76]]
    else:
        # Without ../shared: a built-in synthetic image (shapes on a textured background). Uniform
        # noise would leave a random-weight model with near-tied logits everywhere, where float16
        # rounding flips argmaxes that no real input would.
        import fcn_keras

        batch = fcn_keras.load_dataset("synthetic", "val", batch_size=1, image_size=80,
                                       num_examples=1)  # fmt: skip
        image, label = (t[0].numpy().astype(np.uint8) for t in next(iter(batch)))
        image, label = image[:60], label[:60]
        images = [image, image[:37, :53], image[5:58, 3:76]]
        labels = [label, label[:37, :53], label[5:58, 3:76]]
    return images, labels


@pytest.fixture(scope="module")
def artifacts(model, inputs, tmp_path_factory):
    from fcn_keras import export

    root = tmp_path_factory.mktemp("exports")
    images, _ = inputs
    paths = {}
    paths["savedmodel"] = export.export_savedmodel(model, root / "savedmodel", version=1)
    for quantization in export.QUANTIZATIONS:
        paths[quantization] = export.export_tflite(
            model, root / f"model_{quantization}.tflite", quantization=quantization,
            representative_images=images, saved_model=paths["savedmodel"],
        )  # fmt: skip
    paths["fixed"] = export.export_tflite(model, root / "fixed_48x64.tflite", input_size=(48, 64))
    paths["onnx"] = export.export_onnx(model, root / "model.onnx", opset=17)
    return paths


@pytest.fixture(scope="module")
def report(model, artifacts, inputs):
    from fcn_keras import export

    images, labels = inputs
    # The SavedModel's bfloat16 signature has its own tests (test_inference_speed_paths.py);
    # left out here, the report is the same on every CPU.
    return export.verify(model, artifacts, images, labels=labels, ignore_label=IGNORE, bfloat16=False)


@pytest.mark.slow
def test_savedmodel_serving_signature(model, artifacts):
    import tensorflow as tf

    path = artifacts["savedmodel"]
    assert path.endswith(os.path.join("savedmodel", "1"))  # TF Serving's versioned layout
    serve = tf.saved_model.load(path).signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.name == "image" and spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 3]
    assert {k: v.dtype for k, v in serve.structured_outputs.items()} == {
        "logits": tf.float32, "classes": tf.int32}  # fmt: skip
    images = np.random.default_rng(2).integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    outputs = serve(image=tf.constant(images))
    reference = np.asarray(model(images))
    assert outputs["logits"].shape == (2, 37, 53, NUM_CLASSES)
    assert_close(outputs["logits"].numpy(), reference, 1e-5)
    np.testing.assert_array_equal(outputs["classes"].numpy(), reference.argmax(-1))
    with open(os.path.join(path, "assets.extra", "fcn_keras.json")) as f:
        meta = json.load(f)
    assert meta["num_classes"] == NUM_CLASSES and meta["variant"] == "fcn8s"
    assert meta["format"] == "savedmodel" and "uint8" in meta["input"]


@pytest.mark.slow
def test_onnx_graph_contract(artifacts):
    import onnx

    proto = onnx.load(artifacts["onnx"])
    (graph_input,) = proto.graph.input  # the weights are initializers, not inputs
    assert graph_input.name == "image"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", "height", "width", 3]
    assert [o.name for o in proto.graph.output] == ["classes", "logits"] or sorted(
        o.name for o in proto.graph.output) == ["classes", "logits"]  # fmt: skip
    assert {op.domain: op.version for op in proto.opset_import}[""] == 17
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["fcn_keras"])
    assert meta["num_classes"] == NUM_CLASSES and meta["opset"] == 17
    # The layout ops tf2onnx puts on weight inputs were folded into the initializers.
    initializers = {i.name for i in proto.graph.initializer}
    weight_only = [n.op_type for n in proto.graph.node
                   if n.input and all(name in initializers for name in n.input if name)
                   and n.op_type in ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Cast")]  # fmt: skip
    assert weight_only == []
    kernel = next(i for i in proto.graph.initializer if i.name == "block1_conv1/kernel")
    assert list(kernel.dims) == [64, 3, 3, 3]  # OIHW, folded from Keras's HWIO


@pytest.mark.slow
def test_tflite_metadata_and_fixed_size(artifacts, inputs):
    from fcn_keras import export

    for quantization in export.QUANTIZATIONS:
        with open(artifacts[quantization] + ".json") as f:
            meta = json.load(f)
        assert meta["quantization"] == quantization and meta["num_classes"] == NUM_CLASSES
    fixed = export.Predictor(artifacts["fixed"])
    assert fixed.input_size == (48, 64)
    assert fixed.predict(np.zeros((48, 64, 3), np.uint8)).shape == (48, 64, NUM_CLASSES)
    with pytest.raises(ValueError, match=r"fixed input size \(48, 64\).*\(37, 53\)"):
        fixed.predict(inputs[0][1])
    from ai_edge_litert.interpreter import Interpreter

    # The int8 file as the runtime itself reports its input.
    runner = Interpreter(model_path=artifacts["int8"]).get_signature_runner("serving_default")
    image_input = runner.get_input_details()["image"]
    # Raw uint8 in, not a quantized tensor: callers feed what they feed every engine.
    assert image_input["dtype"] == np.uint8 and tuple(image_input["quantization"]) == (0.0, 0)


@pytest.mark.slow
def test_verify_float_formats_match_keras(report, artifacts):
    results = {a["name"]: a for a in report.artifacts}
    assert set(results) == set(artifacts)
    for name in ("savedmodel", "float32", "fixed", "onnx"):
        figures = results[name]["vs_keras"]
        assert results[name]["precision"] == "float32" and results[name]["passed"], results[name]
        assert figures["max_rel_delta"] <= 1e-4, (name, figures)
        assert figures["argmax_agreement"] >= 0.9999, (name, figures)
        assert figures["pixels"] > 0
    # The SavedModel's serving_default is XLA-compiled: float32 rounding only.
    assert results["savedmodel"]["vs_keras"]["max_abs_delta"] <= 1e-5
    assert report.not_run == [{"name": "savedmodel:bfloat16", "reason": "bfloat16=False"}]
    fp16 = results["float16"]["vs_keras"]
    assert results["float16"]["passed"] and fp16["argmax_agreement"] >= 0.999
    assert 1e-7 < fp16["max_rel_delta"] < 1e-2  # half-precision weights do change the logits
    # Quantized: a real, bounded change of the logits (not a copy of float32).
    for name in ("int8", "dynamic_range"):
        figures = results[name]["vs_keras"]
        assert results[name]["precision"] == "quantized"
        assert 1e-4 < figures["max_rel_delta"] < 2.0, (name, figures)


@pytest.mark.slow
def test_verify_sizes_pairs_and_miou(report, inputs, model):
    from fcn_keras.metrics import confusion_matrix, scores_from_confusion

    images, labels = inputs
    assert report.images["count"] == 3
    assert {(37, 53), (48, 64)} <= set(report.images["sizes"])  # odd size and the fixed size
    dynamic = ["savedmodel", "float32", "float16", "dynamic_range", "int8", "onnx"]
    pairs = {(p["a"], p["b"]) for p in report.pairs}
    assert len(pairs) == len(dynamic) * (len(dynamic) - 1) // 2  # every pair on the same inputs
    onnx_vs_tflite = next(p for p in report.pairs if {p["a"], p["b"]} == {"float32", "onnx"})
    assert onnx_vs_tflite["passed"] and onnx_vs_tflite["max_rel_delta"] <= 1e-4
    # Mean IU recomputed independently from Keras's predictions.
    cm = sum(confusion_matrix(l, np.asarray(model(i[None]))[0].argmax(-1), NUM_CLASSES, IGNORE)
             for i, l in zip(images, labels))  # fmt: skip
    assert report.keras_miou["dynamic"] == pytest.approx(scores_from_confusion(cm)["mean_iu"], abs=1e-12)
    int8 = next(a for a in report.artifacts if a["name"] == "int8")
    assert int8["miou_drop"] == pytest.approx(int8["keras_miou"] - int8["miou"])
    assert 0.0 <= int8["miou"] <= 1.0


@pytest.mark.slow
def test_report_json_markdown_and_failing_threshold(model, artifacts, inputs, report):
    from fcn_keras import export

    data = json.loads(report.to_json())
    assert data["passed"] == report.passed and len(data["artifacts"]) == len(artifacts)
    markdown = report.to_markdown()
    assert "| onnx | onnx | float32 |" in markdown and "argmax agreement" in markdown
    # An impossible threshold must fail, be reported, and name the figure.
    images, labels = inputs
    strict = export.verify(model, {"fp16": artifacts["float16"]}, images[:2],
                           thresholds={"float16": {"min_agreement": 1.0000001}})  # fmt: skip
    assert not strict.passed
    assert "FAIL: argmax agreement" in strict.to_markdown()


@pytest.mark.slow
def test_predictor_engines_batch_single_and_list(model, artifacts, tmp_path):
    from fcn_keras import export

    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    varied = [batch[0], rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)]
    reference = np.asarray(model(batch))
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    for engine, path in [("onnx", artifacts["onnx"]), ("tflite", artifacts["float32"]),
                         ("savedmodel", artifacts["savedmodel"]), ("keras", model_path)]:  # fmt: skip
        predictor = export.Predictor(path, engine=engine, num_threads=1)
        assert predictor.num_classes == NUM_CLASSES and predictor.engine == engine
        assert_close(predictor.predict(batch), reference, 1e-4, err_msg=engine)
        single = predictor.predict(batch[1])
        assert single.shape == (37, 53, NUM_CLASSES)
        outputs = predictor.predict_classes(varied)
        assert [o.shape for o in outputs] == [(37, 53), (29, 41)] and outputs[0].dtype == np.int32
        np.testing.assert_array_equal(outputs[0], reference[0].argmax(-1))
    # float input in [0, 255] is accepted and rounded like uint8.
    onnx = export.Predictor(artifacts["onnx"], inter_op_threads=1)
    assert_close(onnx.predict(batch.astype(np.float32)), reference, 1e-4)


@pytest.mark.slow
def test_int8_tflite_sees_the_image_the_float_model_sees(artifacts):
    """Full-integer int8 keeps the preprocessed image to within one quantization step.

    Regression: RGB->BGR as a channel flip (REVERSE_V2) then SUB was requantized
    with wrong scales by the int8 converter inside the full FCN (measured: mean
    error -44, max 89 grey levels on the image the first convolution sees, and
    CamVid mean IU 27.4 instead of 40.9).
    """
    import keras
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=artifacts["int8"], experimental_preserve_all_tensors=True)
    image = np.random.default_rng(5).integers(0, 256, (1, 37, 53, 3), dtype=np.uint8)
    interpreter.get_signature_runner("serving_default")(image=image)
    (padded,) = [d for d in interpreter.get_tensor_details()
                 if "pad_to_32" in d["name"] and d["name"].endswith("/Pad")
                 and len(d["shape"]) == 4]  # fmt: skip
    scale, zero_point = padded["quantization"]
    assert padded["dtype"] == np.int8
    seen = (interpreter.get_tensor(padded["index"])[0, :37, :53].astype(np.float32) - zero_point) * scale
    expected = keras.applications.vgg16.preprocess_input(image.astype(np.float32))[0]
    # Values beyond the calibrated range saturate by design; compare within it.
    expected = np.clip(expected, (-128 - zero_point) * scale, (127 - zero_point) * scale)
    error = seen - expected
    assert np.abs(error).max() <= scale and abs(float(error.mean())) < 0.1


@pytest.mark.slow
def test_dataset_facts_travel_with_every_artifact(model, artifacts, tmp_path):
    """keras -> SavedModel / TFLite (every quantization) / ONNX -> Predictor knows the dataset."""
    import keras

    from fcn_keras import export
    from fcn_keras.data.folders import CAMVID_CLASS_NAMES, CAMVID_PALETTE

    model_path = tmp_path / "model.keras"
    model.save(model_path)
    reloaded = keras.saving.load_model(model_path)
    paths = dict(artifacts, keras=str(model_path))
    for name, path in paths.items():
        predictor = export.Predictor(path)
        assert predictor.class_names == CAMVID_CLASS_NAMES, name
        assert predictor.ignore_label == 255, name
        np.testing.assert_array_equal(predictor.palette, CAMVID_PALETTE, err_msg=name)
        assert predictor.palette.dtype == np.uint8
        if name != "keras":
            stored = export.read_metadata(path)["dataset_info"]
            assert stored["name"] == "camvid" and stored["num_classes"] == NUM_CLASSES, name
            assert "description" not in stored  # no local data paths inside artifacts
    assert reloaded.dataset_info.class_names == CAMVID_CLASS_NAMES
    # A model without dataset facts: the attributes are None, not guesses.
    bare = fcn_keras_model_without_info()
    predictor = export.Predictor(bare, engine="keras")
    assert (predictor.class_names, predictor.ignore_label, predictor.palette) == (None, None, None)
    assert export.export_onnx(bare, tmp_path / "bare.onnx")
    assert export.read_metadata(tmp_path / "bare.onnx")["dataset_info"] is None
    assert export.Predictor(tmp_path / "bare.onnx").class_names is None


def fcn_keras_model_without_info():
    import fcn_keras

    return fcn_keras.FCN32s(num_classes=3, fc_units=8, backbone_weights=None)


def test_model_facts_use_variant_of(model):
    import fcn_keras
    from fcn_keras.export import model_facts

    assert model_facts(model)["variant"] == "fcn8s"
    at_once = fcn_keras.FCN8s(num_classes=3, fc_units=8, backbone_weights=None, at_once=True)
    assert model_facts(at_once)["variant"] == "fcn8s_atonce"
    assert model_facts(fcn_keras.FCN16s(num_classes=3, fc_units=8, backbone_weights=None))[
        "variant"] == "fcn16s"  # fmt: skip
