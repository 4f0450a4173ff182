"""The mobile TFLite file: its Model Metadata, and MediaPipe Tasks' ImageSegmenter running it as it is.

MediaPipe (`pip install "fcn_keras[mobile]"`) is the client Android, iOS and
web apps use; its Python package runs the same C++ graph. Its tests are
skipped without it. Tolerances:

- float32: MediaPipe's category mask is the argmax of the file's logits,
  which are Keras's up to float32 rounding (XNNPACK's summation order, ~1e-6
  relative): >= 99.9 % agreement (only pixels whose top two logits are that
  close can flip).
- float16 (weights in half precision): >= 99.9 % (verify's float16 gate).
- confidence masks against `Predictor`'s probabilities (softmax of the same
  file's logits, run by ai_edge_litert): both are probabilities in [0, 1]
  computed in float32 from the same tensors, so they agree to float32 softmax
  rounding: atol 1e-5 (measured 1.2e-7), for float16 and int8 too (the same
  graph in both runtimes).
- int8 on CamVid val: mean IU within 0.5 points of Keras float32.
"""

import json
import os

import numpy as np
import pytest

from fcn_keras.data.info import DatasetInfo

SIZE = (64, 96)
NAMES = ("sky", "road", "car", "tree", "person")
PALETTE = [[128, 128, 128], [128, 64, 128], [64, 0, 128], [128, 128, 0], [64, 64, 0]]
PROBABILITY_ATOL = 1e-5


def _model(small_fcn, **kwargs):
    """A tiny FCN-8s with the mobile head and score weights large enough for varied argmaxes."""
    model = small_fcn("fcn8s", num_classes=len(NAMES), head="mobile", **kwargs)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if layer.name.startswith("score_"):
            layer.set_weights([rng.normal(0.0, 0.05, w.shape).astype("float32") for w in layer.get_weights()])
    model.dataset_info = DatasetInfo("toy", len(NAMES), NAMES, 255, palette=PALETTE)
    return model


def _images(count, seed, size=SIZE):
    """Smooth random images (blobs of colour), closer to photographs than white noise."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, size[0] // 8, size[1] // 8, 3)).astype("float32")
    return [np.asarray(tf.cast(tf.image.resize(c[None], size)[0], tf.uint8)) for c in coarse]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """float32, float16 and int8 mobile files of one tiny model (exported once for the module)."""
    import keras

    import fcn_keras
    from fcn_keras.export import export_mobile

    def small_fcn(variant, num_classes, **kwargs):  # the `small_fcn` fixture, at module scope
        return fcn_keras.build_fcn(variant, num_classes=num_classes, fc_units=32, backbone_weights=None,
                                   **kwargs)  # fmt: skip

    keras.utils.set_random_seed(0)  # a backbone whose argmax varies over the test images
    model = _model(small_fcn)
    out = tmp_path_factory.mktemp("mobile")
    paths = {q: export_mobile(model, out / f"toy_{q}.tflite", SIZE, quantization=q,
                              representative_images=_images(16, seed=1))
             for q in ("float32", "float16", "int8")}  # fmt: skip
    return model, paths


def test_metadata_holds_the_model_facts(exported):
    from fcn_keras.export import read_metadata, read_tflite_metadata

    _, paths = exported
    for quantization, path in paths.items():
        info = read_tflite_metadata(path)
        assert info["subgraph_count"] == 1
        assert [(t["dtype"], t["shape"]) for t in info["inputs"]] == [("uint8", [1, *SIZE, 3])]
        assert [(t["dtype"], t["shape"]) for t in info["outputs"]] == [("float32", [1, *SIZE, len(NAMES)])]
        assert info["segmenter"]["activation"] == "SOFTMAX"
        meta = info["metadata"]
        assert meta["name"] == "fcn8s_toy" and meta["version"] and meta["license"]
        assert meta["min_parser_version"] == "1.5.0"
        (image,) = meta["subgraphs"][0]["inputs"]
        assert image["image"] == {"color_space": "RGB", "default_size": (SIZE[1], SIZE[0])}
        assert image["normalization"] is None  # uint8 input, preprocessing in the graph
        (logits,) = meta["subgraphs"][0]["outputs"]
        files = [(f["name"], f["type"]) for f in logits["associated_files"]]
        assert files == [("labels.txt", "TENSOR_AXIS_LABELS")]
        assert info["files"]["labels.txt"].decode().splitlines() == list(NAMES)  # void is no line
        facts = json.loads(info["files"]["fcn_keras.json"])
        assert facts["quantization"] == quantization and facts["format"] == "mobile"
        assert facts["dataset_info"]["ignore_label"] == 255 and facts["dataset_info"]["palette"] == PALETTE
        assert read_metadata(path) == facts


def test_metadata_parses_with_the_schema_generated_code(exported):
    """Cross-check the writer with the schema's generated Python code shipped in mediapipe's wheel."""
    ms = pytest.importorskip("mediapipe.tasks.metadata.metadata_schema_py_generated")
    seg = pytest.importorskip("mediapipe.tasks.metadata.image_segmenter_metadata_schema_py_generated")
    from tensorflow.lite.python import schema_py_generated as schema

    _, paths = exported
    with open(paths["int8"], "rb") as f:
        data = f.read()
    model = schema.Model.GetRootAs(data, 0)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
               for i in range(model.MetadataLength())}  # fmt: skip
    buffer = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert ms.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    metadata = ms.ModelMetadataT.InitFromPackedBuf(buffer, 0)
    assert metadata.name == b"fcn8s_toy" and metadata.minParserVersion == b"1.5.0"
    (graph,) = metadata.subgraphMetadata
    (image,) = graph.inputTensorMetadata
    assert image.content.contentPropertiesType == ms.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == ms.ColorSpaceType.RGB
    size = image.content.contentProperties.defaultSize
    assert (size.width, size.height) == (SIZE[1], SIZE[0])
    assert list(image.stats.min) == [0, 0, 0] and list(image.stats.max) == [255, 255, 255]
    (logits,) = graph.outputTensorMetadata
    assert logits.name == b"logits" and (logits.content.range.min, logits.content.range.max) == (1, 2)
    (labels,) = logits.associatedFiles
    assert labels.name == b"labels.txt" and labels.type == ms.AssociatedFileType.TENSOR_AXIS_LABELS
    assert [f.name for f in metadata.associatedFiles] == [b"fcn_keras.json"]
    (custom,) = graph.customMetadata
    assert custom.name == b"SEGMENTER_METADATA"
    options = seg.ImageSegmenterOptions.GetRootAs(bytes(bytearray(custom.data)), 0)
    assert options.Activation() == seg.Activation.SOFTMAX


@pytest.mark.parametrize("quantization", ["float32", "float16", "int8"])
def test_mediapipe_image_segmenter_runs_the_file(exported, quantization):
    pytest.importorskip("mediapipe")
    import tensorflow as tf

    from fcn_keras.export import Predictor, run_mediapipe

    model, paths = exported
    images = _images(4, seed=7)
    out = run_mediapipe(paths[quantization], images)
    assert out["labels"] == list(NAMES)
    predictor = Predictor(paths[quantization])
    keras_classes = np.concatenate([np.asarray(model(image[None]))[0].argmax(-1).ravel() for image in images])
    assert len(np.unique(keras_classes)) >= 3  # a non-trivial prediction
    category = np.concatenate([c.ravel() for c in out["category"]])
    probabilities = [tf.nn.softmax(predictor.predict(image)).numpy() for image in images]
    file_classes = np.concatenate([p.argmax(-1).ravel() for p in probabilities])
    assert np.mean(category == file_classes) >= 0.999  # MediaPipe runs the file as Predictor does
    for confidence, expected in zip(out["confidence"], probabilities):
        assert confidence.shape == (*SIZE, len(NAMES))
        np.testing.assert_allclose(confidence, expected, rtol=0, atol=PROBABILITY_ATOL)
    agreement = np.mean(category == keras_classes)
    delta = max(float(np.abs(c - p).max()) for c, p in zip(out["confidence"], probabilities))
    print(f"{quantization}: MediaPipe category mask vs Keras argmax {100 * agreement:.3f}%, "
          f"confidence masks vs Predictor probabilities max |delta| {delta:.2g}")
    # float32 is the same maths; float16 weights flip boundary pixels only (verify's float16 gate);
    # int8 changes logits by design (its contract is mean IU on real data).
    assert agreement >= (0.95 if quantization == "int8" else 0.999)


def test_export_all_verifies_mobile_files_in_mediapipe(exported, tmp_path, monkeypatch):
    pytest.importorskip("mediapipe")
    from fcn_keras.export import export_all, mobile, verify

    model, paths = exported
    images = _images(2, seed=11)
    summary = export_all(model, tmp_path, formats=("mobile",), quantizations=("float32",), input_size=SIZE,
                         verify_images=images, odd_crops=True)  # fmt: skip
    name = f"fcn8s_mobile_float32_{SIZE[0]}x{SIZE[1]}.tflite"
    assert list(summary["artifacts"]) == [name] and summary["passed"]
    rows = {a["name"]: a for a in summary["verification"].artifacts}
    assert rows[name + ":mediapipe"]["engine"] == "mediapipe"
    assert rows[name + ":mediapipe"]["vs_keras"]["argmax_agreement"] >= 0.999
    assert rows[name + ":mediapipe"]["vs_keras"]["pixels"] == 4 * SIZE[0] * SIZE[1]  # 2 images + 2 crops
    # With labels the MediaPipe row is scored too: labels where Keras's argmax is the answer on
    # one image and a shifted one on the other, so mean IU is below 1 and the same for both.
    keras_classes = [np.asarray(model(image[None]))[0].argmax(-1) for image in images]
    labels = [keras_classes[0], (keras_classes[1] + 1) % len(NAMES)]
    labels[1][:2] = 255  # void rows are ignored
    labelled = verify(model, [summary["artifacts"][name]], images, labels=labels, mediapipe=True)
    rows = {a["name"]: a for a in labelled.artifacts}
    client = rows[name + ":mediapipe"]
    assert 0.0 < client["miou"] < 1.0
    assert client["miou"] == pytest.approx(client["keras_miou"], abs=1e-6) and client["passed"]
    assert rows[name]["miou"] == pytest.approx(client["miou"], abs=1e-6)
    # Without mediapipe the report says what was not run and why.
    monkeypatch.setattr(mobile, "mediapipe_available", lambda: (False, "mediapipe is not importable (test)"))
    report = verify(model, [summary["artifacts"][name]], images)
    assert [a["name"] for a in report.artifacts] == [name]
    assert report.not_run == [{"name": name + ":mediapipe", "reason": "mediapipe is not importable (test)"}]
    assert "Not run: " + name + ":mediapipe" in report.to_markdown()
    with pytest.raises(ImportError, match="not importable"):
        verify(model, [summary["artifacts"][name]], images, mediapipe=True)


def test_every_tflite_file_carries_its_facts_inside(small_fcn, tmp_path):
    """export_tflite's dynamic file too: facts read from the file, not from the sidecar."""
    from fcn_keras.export import Predictor, export_tflite, read_metadata, read_tflite_metadata

    model = _model(small_fcn)
    path = export_tflite(model, tmp_path / "dynamic.tflite")
    os.remove(path + ".json")  # the sidecar is a convenience copy, never the source
    meta = read_metadata(path)
    assert meta["dataset_info"]["class_names"] == list(NAMES) and meta["format"] == "tflite"
    predictor = Predictor(path)
    assert predictor.class_names == NAMES and predictor.ignore_label == 255
    assert predictor.palette.tolist() == PALETTE
    info = read_tflite_metadata(path)
    assert info["segmenter"] is None  # two outputs: not a MediaPipe segmenter file
    outputs = {t["name"]: [f["type"] for f in t["associated_files"]]
               for t in info["metadata"]["subgraphs"][0]["outputs"]}  # fmt: skip
    assert outputs == {"logits": ["TENSOR_AXIS_LABELS"], "classes": ["TENSOR_VALUE_LABELS"]}
    assert info["metadata"]["subgraphs"][0]["inputs"][0]["image"]["default_size"] is None  # any size


def test_mobile_export_refuses_what_mediapipe_cannot_run(small_fcn, tmp_path):
    from fcn_keras.export import export_all, export_mobile

    model = _model(small_fcn)
    with pytest.raises(ValueError, match="dynamic_range"):
        export_mobile(model, tmp_path / "m.tflite", SIZE, quantization="dynamic_range")
    with pytest.raises(ValueError, match="fixed input size; received None"):
        export_mobile(model, tmp_path / "m.tflite", None)
    with pytest.raises(ValueError, match="needs input_size"):
        export_all(model, tmp_path, formats=("mobile",))
    with pytest.raises(ValueError, match="int8 export needs representative_images"):
        export_mobile(model, tmp_path / "m.tflite", SIZE, quantization="int8")
    assert os.listdir(tmp_path) == []


def test_cli_describe_prints_the_metadata(exported, capsys):
    from fcn_keras.cli import main

    _, paths = exported
    assert main(["model", "--describe", str(paths["int8"])]) == 0
    printed = capsys.readouterr().out
    assert "name: fcn8s_toy" in printed and "segmenter activation: SOFTMAX" in printed
    assert f"labels (5): {', '.join(NAMES)}" in printed and "ignore label: 255" in printed
    assert "palette: sky #808080" in printed and "quantization: int8" in printed
    assert f"input image: uint8 [1, {SIZE[0]}, {SIZE[1]}, 3], image RGB, no normalization" in printed
    assert main(["model", "--describe", str(paths["int8"]), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["labels"] == list(NAMES) and facts["activation"] == "SOFTMAX"


def test_cli_export_mobile_needs_an_input_size(tmp_path, capsys):
    from fcn_keras.cli import main

    rc = main(["export", "--model", str(tmp_path / "absent.keras"), "--out", str(tmp_path / "o"),
               "--format", "mobile"])  # fmt: skip
    assert rc == 2
    assert "--formats mobile needs --input-size" in capsys.readouterr().err


# === CamVid: a briefly fitted FCN-8s with the pretrained backbone, in MediaPipe ===

CAMVID_SIZE = (96, 128)
CAMVID_VOID = 11


def _camvid(camvid_dir, split, count, offset=0):
    """`count` (image, mask) pairs of a CamVid split, evenly spaced, resized to CAMVID_SIZE."""
    import tensorflow as tf

    pairs = [line.split() for line in (camvid_dir / f"{split}.txt").read_text().splitlines()]
    images, masks = [], []
    for image_path, mask_path in pairs[offset :: max(1, len(pairs) // count)][:count]:
        image = tf.io.decode_png(tf.io.read_file(str(camvid_dir / image_path)), channels=3)
        mask = tf.io.decode_png(tf.io.read_file(str(camvid_dir / mask_path)), channels=1)
        images.append(tf.cast(tf.image.resize(image, CAMVID_SIZE, antialias=True), tf.uint8).numpy())
        masks.append(tf.image.resize(mask, CAMVID_SIZE, method="nearest")[..., 0].numpy().astype("int32"))
    return images, masks


@pytest.mark.slow
@pytest.mark.shared
def test_camvid_val_in_mediapipe_float32_and_int8(camvid_dir, vgg16_notop_weights, tmp_path):
    """float32: category mask = Keras argmax on >= 99.9 % of val pixels; int8: mean IU within 0.5."""
    pytest.importorskip("mediapipe")
    import keras
    import tensorflow as tf

    import fcn_keras
    from fcn_keras.data.folders import CAMVID_CLASS_NAMES, CAMVID_PALETTE
    from fcn_keras.export import export_mobile, run_mediapipe
    from fcn_keras.metrics import confusion_matrix, scores_from_confusion

    keras.utils.set_random_seed(0)
    train_images, train_masks = _camvid(camvid_dir, "train", 16)
    model = fcn_keras.build_fcn("fcn8s", num_classes=11, backbone_weights=str(vgg16_notop_weights),
                                head="mobile", fc_units=64, dropout=0.0)  # fmt: skip
    for layer in model.layers:
        if layer.name.startswith("block"):
            layer.trainable = False  # the pretrained features; the head learns
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=fcn_keras.SegmentationCrossEntropy(ignore_label=CAMVID_VOID))  # fmt: skip
    data = tf.data.Dataset.from_tensor_slices((np.stack(train_images), np.stack(train_masks)))
    model.fit(data.batch(8).repeat(), steps_per_epoch=40, epochs=1, verbose=0)
    model.dataset_info = DatasetInfo("camvid", 11, CAMVID_CLASS_NAMES, CAMVID_VOID, palette=CAMVID_PALETTE)

    calibration, _ = _camvid(camvid_dir, "train", 48, offset=1)
    val_images, val_masks = _camvid(camvid_dir, "val", 101)  # all of val: rare classes' IU is noisy
    keras_classes = [np.asarray(model(image[None]))[0].argmax(-1) for image in val_images]

    def mean_iu(predictions):
        matrix = sum(confusion_matrix(mask, p, 11, ignore_label=CAMVID_VOID)
                     for mask, p in zip(val_masks, predictions))  # fmt: skip
        return 100 * scores_from_confusion(matrix)["mean_iu"]

    keras_miou = mean_iu(keras_classes)
    figures = {}
    for quantization in ("float32", "int8"):
        path = export_mobile(model, tmp_path / f"camvid_{quantization}.tflite", CAMVID_SIZE,
                             quantization=quantization, representative_images=calibration)  # fmt: skip
        out = run_mediapipe(path, val_images)
        assert out["labels"] == list(CAMVID_CLASS_NAMES)
        agreement = np.mean(np.concatenate([(c == k).ravel() for c, k in zip(out["category"], keras_classes)]))
        figures[quantization] = (os.path.getsize(path), agreement, mean_iu(out["category"]))
    print(f"CamVid val {CAMVID_SIZE}, {len(val_images)} images: Keras mean IU {keras_miou:.2f}; " + "; ".join(
        f"{q}: {size / 1e6:.1f} MB, MediaPipe vs Keras {100 * a:.3f}%, mean IU {m:.2f}"
        for q, (size, a, m) in figures.items()))  # fmt: skip
    assert keras_miou > 20  # a model whose predictions are not trivial
    assert figures["float32"][1] >= 0.999
    assert abs(figures["int8"][2] - keras_miou) <= 0.5


def test_cli_export_mobile_verifies_in_mediapipe(exported, tmp_path, capsys):
    pytest.importorskip("mediapipe")
    from PIL import Image

    from fcn_keras.cli import main

    model, _ = exported
    model.save(tmp_path / "toy.keras")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(_images(2, seed=5)):
        Image.fromarray(image).save(folder / f"{i}.png")
    out = tmp_path / "out"
    rc = main(["export", "--model", str(tmp_path / "toy.keras"), "--out", str(out), "--format", "mobile",
               "--input-size", f"{SIZE[0]}x{SIZE[1]}", "--verify", "--images", str(folder)])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    name = f"fcn8s_mobile_float32_{SIZE[0]}x{SIZE[1]}.tflite"
    assert sorted(os.listdir(out)) == sorted([name, name + ".json", "verification.json", "verification.md"])
    assert f"| {name}:mediapipe | mediapipe | float32 |" in printed
    with open(out / "verification.json") as f:
        report = json.load(f)
    assert report["passed"] and {a["name"] for a in report["artifacts"]} == {name, name + ":mediapipe"}


def test_a_model_trained_at_reduced_scale_gets_a_file_at_its_scale(small_fcn, tmp_path):
    pytest.importorskip("mediapipe")
    from fcn_keras.evaluation import scaled_logits
    from fcn_keras.export import Predictor, export_mobile, read_metadata, run_mediapipe
    from fcn_keras.export.tflite_metadata import describe_tflite

    model = _model(small_fcn)
    model.input_scale = 0.5
    path = export_mobile(model, tmp_path / "half.tflite", SIZE)
    description = describe_tflite(path)
    assert [int(d) for d in description["inputs"][0]["shape"]] == [1, SIZE[0] // 2, SIZE[1] // 2, 3]
    assert read_metadata(path)["input_scale"] == 0.5
    images = _images(3, seed=5)
    keras_classes = [np.asarray(scaled_logits(model, image[None], 0.5))[0].argmax(-1) for image in images]
    predictor_classes = [Predictor(path).predict_classes(image) for image in images]
    category = run_mediapipe(path, images)["category"]
    for keras_c, predictor_c, mediapipe_c in zip(keras_classes, predictor_classes, category):
        assert keras_c.shape == predictor_c.shape == mediapipe_c.shape == SIZE
        assert np.mean(predictor_c == keras_c) >= 0.999  # the same shrink, network and resize back
        # MediaPipe shrinks the image with its own kernel (no antialiasing) and resizes the scores
        # back itself: pixels near a class boundary may flip, and on these 64x96 toy images with a
        # random backbone a large share of the pixels is near one (measured: 94.6 %).
        assert np.mean(mediapipe_c == keras_c) >= 0.9


def test_an_int8_file_may_keep_its_scores_quantized(exported, small_fcn, tmp_path):
    pytest.importorskip("mediapipe")
    from fcn_keras.export import Predictor, export_mobile, read_metadata, run_mediapipe
    from fcn_keras.export.tflite_metadata import describe_tflite

    model, paths = exported
    path = export_mobile(model, tmp_path / "u8.tflite", SIZE, quantization="int8",
                         representative_images=_images(16, seed=1), int8_output="uint8")
    assert describe_tflite(path)["outputs"][0]["dtype"].lower().startswith("uint8")
    assert read_metadata(path)["int8_output"] == "uint8"
    images = _images(4, seed=7)
    keras_classes = np.concatenate([np.asarray(model(image[None]))[0].argmax(-1).ravel() for image in images])
    dequantized = Predictor(paths["int8"]).predict(np.stack(images))
    kept = Predictor(path).predict(np.stack(images))
    # Same calibration, same graph: the uint8 scores are the float32 file's, quantized once more
    # on the output's step (its scale), so the two differ by at most one step.
    step = float(np.abs(np.diff(np.unique(kept))).min())
    assert np.abs(kept - dequantized).max() <= step * 1.01
    category = np.concatenate([c.ravel() for c in run_mediapipe(path, images)["category"]])
    assert np.mean(category == kept.argmax(-1).ravel()) >= 0.999  # MediaPipe reads the uint8 map
    assert np.mean(category == keras_classes) >= 0.95  # int8's contract: mean IU on real data
    with pytest.raises(ValueError, match="int8_output='uint8'.*received quantization='float32'"):
        export_mobile(model, tmp_path / "x.tflite", SIZE, int8_output="uint8")
