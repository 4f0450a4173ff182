"""A Triton Inference Server model repository for an FCN: `DIR/<name>/1/model.onnx` and `DIR/<name>/config.pbtxt`.

The configuration is for Triton's onnxruntime backend (`platform:
"onnxruntime_onnx"`) and is read from the ONNX file itself: every graph input
and output by name, with its data type and its dimensions (batch, height and
width dynamic, `-1`; the batch dimension left to `max_batch_size`, as Triton
expects). The model's dataset facts (class names, ignore label, palette)
travel as `parameters`, JSON text, which `tritonclient`'s
`get_model_config()` returns. Triton's dynamic batcher groups queued requests
of one image size; its `max_queue_delay_microseconds` is the batching window.

The text is written by hand (no Triton or protobuf package is needed to
export); the tests parse it with Triton's own `model_config.proto`
(`tritonclient.grpc.model_config_pb2`).

Serve it with (docs/serving.md):

    docker run --rm -p 8000:8000 -p 8001:8001 -v $PWD/DIR:/models \\
        nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models
"""

import json
import os
import shutil

from ._artifacts import atomic_path, dataset_info_of, read_metadata

__all__ = ["export_triton_repository", "triton_config"]

# ONNX TensorProto element types -> Triton's DataType names (model_config.proto).
_TRITON_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 5: "TYPE_INT16", 6: "TYPE_INT32",
                 7: "TYPE_INT64", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64",
                 16: "TYPE_BF16"}  # fmt: skip


def _text(value):
    """A protobuf text-format string literal."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensors(values, batched, path):
    tensors = []
    for value in values:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type not in _TRITON_TYPES:
            raise ValueError(f"{path!r}: tensor {value.name!r} has ONNX element type "
                             f"{tensor_type.elem_type}, which Triton has no type for.")  # fmt: skip
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
        if batched:
            if not dims or dims[0] != -1:
                raise ValueError(
                    f"{path!r}: tensor {value.name!r} has shape {dims} without a dynamic batch "
                    "dimension first; export it again, or use max_batch_size=0."
                )
            dims = dims[1:]
        tensors.append((value.name, _TRITON_TYPES[tensor_type.elem_type], dims))
    return tensors


def triton_config(onnx_path, name, max_batch_size=8, batch_delay_us=1000, instances=1):
    """Return the `config.pbtxt` text for an fcn_keras ONNX file on Triton's onnxruntime backend.

    Args:
        onnx_path: the `.onnx` file (its graph is read; external data is not loaded).
        name: the model's name (the repository folder's name).
        max_batch_size: the largest batch Triton forms; 0 turns batching off
            (the batch dimension then appears in `dims`). Defaults to 8.
        batch_delay_us: the dynamic batcher's window in microseconds; `None`
            for no dynamic batching. Defaults to 1000.
        instances: model instances on the CPU. Defaults to 1.

    Returns:
        The configuration as protobuf text.

    Example:
    >>> print(triton_config("fcn8s.onnx", "fcn8s"))  # doctest: +SKIP
    name: "fcn8s"
    platform: "onnxruntime_onnx"
    ...
    """
    import onnx  # imported at use, as in export/onnx.py

    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 0:
        raise ValueError(f"max_batch_size must be an integer >= 0 (0: no batching); received {max_batch_size!r}.")
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
        raise ValueError(f"instances must be a positive integer; received {instances!r}.")
    onnx_path = os.fspath(onnx_path)
    graph = onnx.load_model(onnx_path, load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = _tensors([v for v in graph.input if v.name not in initializers], max_batch_size > 0, onnx_path)
    outputs = _tensors(graph.output, max_batch_size > 0, onnx_path)

    lines = [f"name: {_text(name)}", 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch_size}"]
    for section, tensors in (("input", inputs), ("output", outputs)):
        entries = [f"  {{ name: {_text(tensor)} data_type: {dtype} dims: [ {', '.join(map(str, dims))} ] }}"
                   for tensor, dtype, dims in tensors]  # fmt: skip
        lines.append(f"{section} [\n" + ",\n".join(entries) + "\n]")
    lines.append(f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]")
    if max_batch_size > 0 and batch_delay_us is not None:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {int(batch_delay_us)} }}")
    info = dataset_info_of(read_metadata(onnx_path))
    if info is not None:
        facts = {"num_classes": info.num_classes, "class_names": list(info.class_names),
                 "ignore_label": info.ignore_label,
                 "palette": None if info.palette is None else info.palette.tolist()}  # fmt: skip
        for key, value in facts.items():
            lines.append(f"parameters {{ key: {_text(key)} value {{ string_value: "
                         f"{_text(json.dumps(value))} }} }}")  # fmt: skip
    return "\n".join(lines) + "\n"


def export_triton_repository(model, repository, name=None, max_batch_size=8, batch_delay_us=1000,
                             instances=1, opset=17):  # fmt: skip
    """Write a Triton model repository entry: `repository/<name>/1/model.onnx` and `config.pbtxt`.

    Args:
        model: an FCN `keras.Model` (exported with `export_onnx`) or the path
            of an fcn_keras `.onnx` file (copied, with its external data).
        repository: the model repository folder (created if needed; other
            models in it are left alone).
        name: the model's name. Defaults to the ONNX file's stem, or the
            Keras model's name.
        max_batch_size: see `triton_config`. Defaults to 8.
        batch_delay_us: see `triton_config`. Defaults to 1000.
        instances: see `triton_config`. Defaults to 1.
        opset: ONNX opset when exporting a Keras model. Defaults to 17.

    Returns:
        The model's folder, `repository/<name>`.

    Example:
    >>> export_triton_repository(model, "models", name="fcn8s")
    'models/fcn8s'
    """
    repository = os.fspath(repository)
    if isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        if not source.endswith(".onnx") or not os.path.isfile(source):
            raise FileNotFoundError(f"expected an existing .onnx file or a keras.Model; received {source!r}.")
        name = name or os.path.splitext(os.path.basename(source))[0]
    else:
        source = None
        name = name or model.name
    if not name or os.sep in name or name in (".", ".."):
        raise ValueError(f"model name must be a plain folder name; received {name!r}.")
    folder = os.path.join(repository, name)
    target = os.path.join(folder, "1", "model.onnx")
    if source is None:
        from .onnx import export_onnx

        export_onnx(model, target, opset=opset)
    else:
        data = source + ".data"
        if os.path.exists(data):  # external data keeps its file name, which the graph refers to
            with atomic_path(os.path.join(folder, "1", os.path.basename(data))) as temp:
                shutil.copyfile(data, temp)
        with atomic_path(target) as temp:
            shutil.copyfile(source, temp)
    text = triton_config(target, name, max_batch_size=max_batch_size, batch_delay_us=batch_delay_us,
                         instances=instances)  # fmt: skip
    with atomic_path(os.path.join(folder, "config.pbtxt")) as temp:
        with open(temp, "w") as f:
            f.write(text)
    return folder
