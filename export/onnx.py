"""ONNX export through tf2onnx, with the weights kept out of the TensorFlow graph.

Graph contract (any opset 13..18; default 17):

    input:   image   uint8   (batch, height, width, 3), raw RGB in [0, 255];
                             dims named "batch", "height", "width" (dynamic)
    outputs: logits  float32 (batch, height, width, num_classes)
             classes int32   (batch, height, width), argmax of logits

Why not `tf2onnx.convert.from_keras` (or Keras's `model.export(format="onnx")`):
those freeze every variable into a graph constant first, and the weights are
then copied again by Grappler's constant folding, by the GraphDef -> tf2onnx
graph conversion and by its optimizers, each as a protobuf/NumPy copy. For the
full FCN-8s (537 MB of float32 weights) that passed 24 GB. Here the graph is
traced with every variable as an extra *input* (`model.stateless_call`), so
the TensorFlow graph tf2onnx converts holds no weights at all (a few hundred
kB, converted in seconds). The weight inputs are then turned into ONNX
initializers filled from the Keras variables, and the layout ops tf2onnx put
on them (kernel transposes HWIO -> OIHW, reshapes) are folded into the
initializers with NumPy, so the saved graph is the same plain graph a frozen
conversion would give. Peak memory is about three copies of the weights.

Models whose initializers exceed protobuf's 2 GB limit are saved with ONNX
external data (`<file>.data` beside the model); `external_data=True` forces it.
fcn_keras metadata (with the model's dataset facts) is stored as JSON under
the `fcn_keras` key of the model's `metadata_props`.

The graph is traced from the model's float32 rebuild (`float32_model`): a
model trained under a mixed-precision policy would otherwise give tf2onnx
bfloat16/float16 ops and an invalid file. Before the file is moved into place
it is checked by `onnx.checker` (full check, from the file, so external data
too) and loaded in an onnxruntime InferenceSession: an artifact that does not load is
never left at the target path.

`quantization="int8"` writes a statically quantized model in the QDQ format
(`onnxruntime.quantization.quantize_static`): weights int8 per output
channel, activations uint8 with ranges calibrated (min/max) on real images,
as the int8 TFLite is; the `image` input stays raw uint8 and the logits come
out as float32, so callers feed it exactly what they feed the float32 file.
onnxruntime fuses each QuantizeLinear -> Conv -> DequantizeLinear into an
integer convolution (VNNI / AMX-INT8 where the CPU has them). No float16 or
bfloat16 ONNX is written: onnxruntime's CPU provider has no float16 or
bfloat16 convolution kernels (a cast-wrapped float32 graph would only be
slower), which docs/export.md states with the measured alternatives.

`onnx`, `tf2onnx` and `onnxruntime` are imported inside the functions that use
them: they take seconds to import, and `import fcn_keras.export`
(e.g. for TFLite only) should not pay for them.
"""

import itertools
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from fcn_keras.choices import ONNX_QUANTIZATIONS

from ._artifacts import artifact_metadata, atomic_path, float32_model

__all__ = ["export_onnx", "convert_to_onnx", "quantize_onnx_int8", "MAX_OPSET", "MIN_OPSET",
           "ONNX_QUANTIZATIONS"]  # fmt: skip

MIN_OPSET = 13
MAX_OPSET = 18
# Nodes whose inputs are all weights are folded into initializers (NumPy).
_FOLDABLE = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Cast", "Identity",
             "Concat", "Flatten", "Expand"}  # fmt: skip
_PROTOBUF_LIMIT = 2**31 - 1


def _traced_function(model):
    """A tf.function image, *variables -> {logits, classes}; variables as inputs."""
    trainable = list(model.trainable_variables)
    non_trainable = list(model.non_trainable_variables)
    variables = trainable + non_trainable
    specs = [tf.TensorSpec(v.shape, v.dtype, name=f"fcn_keras_var_{i}") for i, v in enumerate(variables)]
    image_spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")
    n = len(trainable)

    def serve(image, *values):
        logits, _ = model.stateless_call(list(values[:n]), list(values[n:]), image, training=False)
        return {"logits": logits, "classes": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    signature = [image_spec] + specs
    return tf.function(serve, input_signature=signature), signature, variables


def _fold_constants(graph, constants, renames):
    """Fold nodes whose inputs are all constants (initializers) into new constants.

    A folded weight keeps its variable's name (`block1_conv1/kernel`), so the
    saved initializers read like the Keras model.
    """
    import onnx  # imported at use, see the module docstring
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    kept = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            attr = node.attribute[0]
            if attr.name == "value":
                constants[node.output[0]] = numpy_helper.to_array(attr.t)
                continue
        inputs = [name for name in node.input if name]
        if node.op_type in _FOLDABLE and inputs and all(name in constants for name in inputs):
            single = onnx.helper.make_graph(
                [node], "fold",
                [onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(
                    constants[name].dtype), constants[name].shape) for name in inputs],
                [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)
                 for name in node.output],
            )  # fmt: skip
            opset = [onnx.helper.make_opsetid("", 18)]
            evaluator = ReferenceEvaluator(onnx.helper.make_model(single, opset_imports=opset))
            outputs = evaluator.run(None, {name: constants[name] for name in inputs})
            for name, value in zip(node.output, outputs):
                constants[name] = np.ascontiguousarray(value)
            weights = [name for name in inputs if name in renames]
            if len(weights) == 1 and len(node.output) == 1:
                label = renames[weights[0]]
                if consumers[weights[0]] == 1:  # the folded value replaces the raw weight
                    del renames[weights[0]]
                else:
                    label += "/" + node.op_type.lower()
                if label in renames.values():
                    label += f"_{len(renames)}"
                renames[node.output[0]] = label
            for name in inputs:
                consumers[name] -= 1
                if consumers[name] == 0 and name not in graph_outputs(graph):
                    # Free the big intermediate (a kernel before its transpose).
                    constants[name] = None
            continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def graph_outputs(graph):
    return {o.name for o in graph.output}


def convert_to_onnx(model, opset=17, metadata=None):
    """Convert `model` to an `onnx.ModelProto` with weights as initializers.

    Args:
        model: an FCN `keras.Model` (traced from its float32 rebuild).
        opset: ONNX opset, `MIN_OPSET`..`MAX_OPSET`. Defaults to 17.
        metadata: optional dict stored as JSON in `metadata_props["fcn_keras"]`.

    Returns:
        `onnx.ModelProto`.
    """
    import onnx  # imported at use, see the module docstring
    import tf2onnx
    from onnx import numpy_helper

    model = float32_model(model)
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(
            f"opset must be an integer in [{MIN_OPSET}, {MAX_OPSET}] (tf2onnx 1.17 supports up "
            f"to {MAX_OPSET}); received {opset!r}."
        )
    function, signature, variables = _traced_function(model)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset)
    graph = proto.graph

    # === Weight inputs -> initializers (from the Keras variables, no TF copy) ===
    var_inputs = {spec.name: variable for spec, variable in zip(signature[1:], variables)}
    constants = {}
    renames = {}
    keep_inputs = []
    for graph_input in graph.input:
        name = graph_input.name.split(":")[0]
        if name in var_inputs:
            variable = var_inputs[name]
            constants[graph_input.name] = np.asarray(variable.numpy())
            renames[graph_input.name] = variable.path
        else:
            keep_inputs.append(graph_input)
    del graph.input[:]
    graph.input.extend(keep_inputs)
    for init in graph.initializer:
        constants[init.name] = numpy_helper.to_array(init)
    del graph.initializer[:]

    _fold_constants(graph, constants, renames)

    used = {name for node in graph.node for name in node.input} | graph_outputs(graph)
    for name, value in constants.items():
        if name in used and value is not None:
            tensor = numpy_helper.from_array(value, renames.get(name, name))
            graph.initializer.append(tensor)
            constants[name] = None  # the proto holds the bytes now
    if renames:
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name in renames:
                    node.input[i] = renames[name]
    del graph.value_info[:]

    if metadata is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "fcn_keras", json.dumps(metadata, sort_keys=True)
    proto.producer_name = "fcn_keras (tf2onnx, weights as initializers)"
    if proto.ByteSize() < _PROTOBUF_LIMIT:  # the checker serialises the model: 2 GB at most
        onnx.checker.check_model(proto)
    return proto


def _validate(path):
    """Raise `RuntimeError` unless the ONNX file at `path` passes the checker and loads in onnxruntime."""
    import onnx  # imported at use, see the module docstring
    import onnxruntime as ort

    try:
        onnx.checker.check_model(path, full_check=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise RuntimeError(f"ONNX export produced an invalid model (nothing written): {e}") from e


def quantize_onnx_int8(proto, calibration_images, num_calibration_images=100):
    """Quantize a float32 fcn_keras ONNX model to int8 QDQ, calibrated on real images.

    Args:
        proto: the float32 `onnx.ModelProto` (`convert_to_onnx`).
        calibration_images: an iterable of uint8 RGB images `(H, W, 3)` (or
            batches, `(image, mask)` pairs, a `tf.data.Dataset`: anything
            `representative_images_from_dataset` reads), from the deployment
            domain, e.g. the train split. Any sizes.
        num_calibration_images: at most this many are used. Defaults to 100.

    Returns:
        The int8 `onnx.ModelProto` (QDQ: weights int8 per output channel,
        activations uint8, min/max ranges), with `proto`'s metadata.

    Raises:
        ValueError: no calibration image.

    Example:
    >>> int8 = quantize_onnx_int8(convert_to_onnx(model), train_images)
    """
    import onnx  # imported at use, see the module docstring
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)  # fmt: skip

    from .tflite import representative_images_from_dataset

    if calibration_images is None:
        raise ValueError(
            "int8 ONNX export needs calibration_images: real uint8 RGB images (H, W, 3) from "
            "the deployment domain (e.g. the train split); received None."
        )
    images = list(itertools.islice(
        representative_images_from_dataset(calibration_images, num_calibration_images),
        num_calibration_images))  # fmt: skip
    if not images:
        raise ValueError("calibration_images holds no image; int8 calibration needs at least one.")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._images = iter(images)

        def get_next(self):
            image = next(self._images, None)
            return None if image is None else {"image": image[None]}

    with tempfile.TemporaryDirectory(prefix="fcn_keras_onnx_int8_") as temp:
        source, target = os.path.join(temp, "float32.onnx"), os.path.join(temp, "int8.onnx")
        onnx.save_model(proto, source)
        quantize_static(
            source, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            # MinMax keeps two scalars per tensor and image (its graph reduces each
            # activation to its min and max), so 100 full-size images fit in memory.
            calibrate_method=CalibrationMethod.MinMax,
        )  # fmt: skip
        quantized = onnx.load_model(target)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(proto.metadata_props)
    quantized.producer_name = proto.producer_name + ", int8 QDQ (onnxruntime.quantization)"
    return quantized


def export_onnx(model, filepath, opset=17, external_data=None, quantization="float32",
                calibration_images=None, num_calibration_images=100):  # fmt: skip
    """Export an FCN to ONNX (dynamic batch/height/width, uint8 `image` input).

    Args:
        model: an FCN `keras.Model` from `fcn_keras` (raw RGB in, logits out),
            under any dtype policy (exported as float32).
        filepath: target `.onnx` path, written atomically (with its
            `<file>.data` when external data is used) and only after the file
            passed `onnx.checker` and loaded in onnxruntime.
        opset: ONNX opset in 13..18. Defaults to 17.
        external_data: store initializers in `<filepath>.data`. Defaults to
            `None`: only when the model would exceed protobuf's 2 GB limit.
        quantization: `"float32"` or `"int8"` (static QDQ quantization,
            see `quantize_onnx_int8`). Defaults to `"float32"`.
        calibration_images: for `"int8"`: real uint8 RGB images to calibrate
            the activation ranges on (required; see `quantize_onnx_int8`).
        num_calibration_images: at most this many calibration images are
            used. Defaults to 100.

    Returns:
        The path written.

    Example:
    >>> export.export_onnx(model, "/tmp/fcn8s.onnx", opset=17)
    >>> session = onnxruntime.InferenceSession("/tmp/fcn8s.onnx")
    >>> logits, classes = session.run(["logits", "classes"], {"image": images_uint8})
    >>> export.export_onnx(model, "/tmp/fcn8s_int8.onnx", quantization="int8",
    ...                    calibration_images=train_images)
    """
    import onnx  # imported at use, see the module docstring

    model = float32_model(model)
    target = os.fspath(filepath)
    if not target.endswith(".onnx"):
        raise ValueError(f"ONNX export path must end with '.onnx'; received {target!r}.")
    if quantization not in ONNX_QUANTIZATIONS:
        raise ValueError(
            f"ONNX quantization must be one of {ONNX_QUANTIZATIONS}; received {quantization!r} "
            "(float16 and bfloat16 have no onnxruntime CPU convolution kernels)."
        )
    if quantization == "int8" and calibration_images is None:
        raise ValueError(
            "quantization='int8' needs calibration_images (real images, e.g. the train split); "
            "received none. Nothing was written."
        )
    meta = artifact_metadata(model, "onnx", opset=opset, input_size=None, quantization=quantization)
    proto = convert_to_onnx(model, opset=opset, metadata=meta)
    _name_dynamic_dims(proto)
    if quantization == "int8":
        proto = quantize_onnx_int8(proto, calibration_images, num_calibration_images)
    size = sum(len(t.raw_data) for t in proto.graph.initializer)
    if external_data is None:
        external_data = size > _PROTOBUF_LIMIT - 2**26
    data_name = os.path.basename(target) + ".data"
    if external_data:
        with atomic_path(target + ".data") as data_temp, atomic_path(target) as temp:
            onnx.save_model(proto, temp, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)  # fmt: skip
            _validate(temp)
            os.replace(os.path.join(os.path.dirname(temp), data_name), data_temp)
    else:
        with atomic_path(target) as temp:
            onnx.save_model(proto, temp)
            _validate(temp)
    return target


def _name_dynamic_dims(proto):
    names = {"image": ("batch", "height", "width", None), "logits": ("batch", "height", "width", None),
             "classes": ("batch", "height", "width")}  # fmt: skip
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = names.get(value.name)
        if dims is None:
            continue
        for dim, label in zip(value.type.tensor_type.shape.dim, dims):
            if label is not None and not dim.HasField("dim_value"):
                dim.dim_param = label
