"""The Triton model repository: `config.pbtxt` parses with Triton's own model-config proto and names the ONNX file's tensors.

One small FCN-8s (random backbone, fc_units=16) saved as `.keras` and written
as a repository through `fcn-keras export --triton-repo` (and through
`export_triton_repository` from that ONNX file); the configuration is read
back with `tritonclient.grpc.model_config_pb2` + `google.protobuf.text_format`
and compared with the graph's inputs and outputs read by `onnx`.
"""

import json

import numpy as np
import pytest

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
from google.protobuf import text_format  # noqa: E402

NUM_CLASSES = 5
_ONNX_TO_TRITON = {1: "TYPE_FP32", 2: "TYPE_UINT8", 6: "TYPE_INT32"}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    import keras

    import fcn_keras
    from fcn_keras.cli import main

    root = tmp_path_factory.mktemp("triton")
    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=NUM_CLASSES, backbone_weights=None, fc_units=16)
    model.dataset_info = fcn_keras.DatasetInfo(
        "toy", NUM_CLASSES, ("road", "sky", "car", "tree", "sign"), ignore_label=255,
        palette=np.arange(NUM_CLASSES * 3, dtype=np.uint8).reshape(NUM_CLASSES, 3))  # fmt: skip
    model.save(root / "small.keras")
    assert main(["export", "--model", str(root / "small.keras"), "--triton-repo", str(root / "models"),
                 "--name", "camvid_fcn"]) == 0  # fmt: skip
    return root / "models"


def _config(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _onnx_tensors(path):
    import onnx

    graph = onnx.load_model(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def describe(values):
        return [(v.name, _ONNX_TO_TRITON[v.type.tensor_type.elem_type],
                 [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim])
                for v in values if v.name not in initializers]  # fmt: skip

    return describe(graph.input), describe(graph.output)


def test_config_names_exactly_the_onnx_files_tensors(repository):
    folder = repository / "camvid_fcn"
    assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt"]
    assert sorted(p.name for p in (folder / "1").iterdir()) == ["model.onnx"]
    config = _config(folder / "config.pbtxt")
    assert config.name == "camvid_fcn" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 8
    inputs, outputs = _onnx_tensors(folder / "1" / "model.onnx")
    # Triton leaves the batch dimension to max_batch_size: the file's dims without the first.
    as_config = [(name, dtype, dims[1:]) for name, dtype, dims in inputs]
    assert [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == as_config
    as_config = [(name, dtype, dims[1:]) for name, dtype, dims in outputs]
    assert [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in config.output] == as_config
    assert [t.name for t in config.input] == ["image"]
    assert sorted(t.name for t in config.output) == ["classes", "logits"]
    logits = next(t for t in config.output if t.name == "logits")
    assert list(logits.dims) == [-1, -1, NUM_CLASSES]  # height and width dynamic
    assert config.dynamic_batching.max_queue_delay_microseconds == 1000
    assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind))
            for g in config.instance_group] == [(1, "KIND_CPU")]  # fmt: skip


def test_config_carries_the_dataset_facts(repository):
    parameters = _config(repository / "camvid_fcn" / "config.pbtxt").parameters
    facts = {key: json.loads(value.string_value) for key, value in parameters.items()}
    assert facts == {"num_classes": NUM_CLASSES, "class_names": ["road", "sky", "car", "tree", "sign"],
                     "ignore_label": 255,
                     "palette": np.arange(NUM_CLASSES * 3).reshape(NUM_CLASSES, 3).tolist()}  # fmt: skip


def test_repository_from_an_onnx_file_without_batching(repository, tmp_path):
    from fcn_keras.export import Predictor, export_triton_repository

    source = repository / "camvid_fcn" / "1" / "model.onnx"
    folder = export_triton_repository(source, tmp_path / "models", name="single", max_batch_size=0)
    config = _config(tmp_path / "models" / "single" / "config.pbtxt")
    assert folder == str(tmp_path / "models" / "single")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    inputs, outputs = _onnx_tensors(source)
    assert [list(t.dims) for t in config.input] == [dims for _, _, dims in inputs] == [[-1, -1, -1, 3]]
    copied = tmp_path / "models" / "single" / "1" / "model.onnx"
    assert copied.read_bytes() == source.read_bytes()
    image = np.random.default_rng(0).integers(0, 256, (1, 40, 48, 3), dtype=np.uint8)
    assert Predictor(copied).predict_classes(image).shape == (1, 40, 48)


def test_bad_arguments_are_refused(repository, tmp_path):
    from fcn_keras.export import export_triton_repository

    source = repository / "camvid_fcn" / "1" / "model.onnx"
    with pytest.raises(ValueError, match="max_batch_size must be an integer >= 0"):
        export_triton_repository(source, tmp_path, max_batch_size=-1)
    with pytest.raises(FileNotFoundError, match="expected an existing .onnx file"):
        export_triton_repository(tmp_path / "none.onnx", tmp_path)
    with pytest.raises(ValueError, match="plain folder name"):
        export_triton_repository(source, tmp_path, name="a/b")
