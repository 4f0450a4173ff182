"""TFLite Model Metadata: write it into a `.tflite` file and read it back, without extra dependencies.

TFLite Model Metadata is what MediaPipe Tasks, the TFLite Task Library,
Android Studio's ML model binding and Netron read from a `.tflite` file: a
`ModelMetadata` flatbuffer (tflite-support's `metadata_schema.fbs`, file
identifier `"M001"`) stored as a buffer of the model and named
`"TFLITE_METADATA"` in the model's `metadata` list, plus associated files
(`labels.txt`, ...) appended to the file as an uncompressed zip archive. The
model flatbuffer ignores the bytes after it; zip readers find the archive
from its end.

This module writes that flatbuffer with the `flatbuffers` package (a
TensorFlow dependency) following the schema's field order, and attaches it
with TensorFlow's own TFLite object API (`tensorflow.lite.tools.
flatbuffer_utils`, the same round trip the converter makes to add its
conversion metadata). Reading needs `flatbuffers` alone (no TensorFlow), so
`fcn-keras model --describe` and `read_metadata` stay light.

What `write_metadata` can hold (schema version 1.5.0):

- model: name, description, version, author, licence, associated files;
- per input / output tensor: name, description, image properties (colour
  space, default size), normalization (mean, std), stats (min, max), value
  range, associated files (e.g. `labels.txt` as `TENSOR_AXIS_LABELS`: line i
  names score channel i);
- subgraph custom metadata, e.g. MediaPipe's `"SEGMENTER_METADATA"`: an
  `ImageSegmenterOptions` flatbuffer (identifier `"V001"`) whose activation
  (NONE, SIGMOID, SOFTMAX) MediaPipe's ImageSegmenter applies to the scores.

Reference: tflite-support `tensorflow_lite_support/metadata/metadata_schema.fbs`;
MediaPipe `mediapipe/tasks/metadata/image_segmenter_metadata_schema.fbs`.
"""

import io
import os
import zipfile

import flatbuffers
from flatbuffers import number_types as numbers
from flatbuffers.table import Table

__all__ = [
    "write_metadata",
    "read_tflite_metadata",
    "describe_tflite",
    "segmenter_options",
    "METADATA_NAME",
    "SEGMENTER_METADATA_NAME",
    "ACTIVATIONS",
    "ASSOCIATED_FILE_TYPES",
    "MIN_PARSER_VERSION",
]

# The model's `metadata` entry MediaPipe and the Task Library look up.
METADATA_NAME = "TFLITE_METADATA"
# The subgraph custom metadata holding MediaPipe's ImageSegmenterOptions.
SEGMENTER_METADATA_NAME = "SEGMENTER_METADATA"
_METADATA_IDENTIFIER = b"M001"
_SEGMENTER_IDENTIFIER = b"V001"
_MODEL_IDENTIFIER = b"TFL3"
# Subgraph custom_metadata is a schema 1.5.0 field: the oldest parser that reads all we write.
MIN_PARSER_VERSION = "1.5.0"
_SEGMENTER_MIN_PARSER_VERSION = "1.0.0"

# Enums of the schemas, by value.
ACTIVATIONS = ("NONE", "SIGMOID", "SOFTMAX")
ASSOCIATED_FILE_TYPES = ("UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
                         "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE")  # fmt: skip
_COLOR_SPACES = ("UNKNOWN", "RGB", "GRAYSCALE")
# ContentProperties union members (0 is NONE).
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2
# ProcessUnitOptions union member of NormalizationOptions.
_NORMALIZATION_OPTIONS = 1
# TFLite TensorType values (tensorflow/lite/schema/schema.fbs), the ones FCN files use.
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8"}

# Field slots (declaration order) of the tables written and read, from the schemas.
_MODEL_METADATA = dict(name=0, description=1, version=2, subgraph_metadata=3, author=4, license=5,
                       associated_files=6, min_parser_version=7)  # fmt: skip
_SUBGRAPH = dict(name=0, description=1, input_tensor_metadata=2, output_tensor_metadata=3,
                 associated_files=4, input_process_units=5, output_process_units=6,
                 input_tensor_groups=7, output_tensor_groups=8, custom_metadata=9)  # fmt: skip
_TENSOR = dict(name=0, description=1, dimension_names=2, content=3, process_units=4, stats=5,
               associated_files=6)  # fmt: skip
_CONTENT = dict(content_properties_type=0, content_properties=1, range=2)
_IMAGE = dict(color_space=0, default_size=1)
_IMAGE_SIZE = dict(width=0, height=1)
_VALUE_RANGE = dict(min=0, max=1)
_NORMALIZATION = dict(mean=0, std=1)
_PROCESS_UNIT = dict(options_type=0, options=1)
_STATS = dict(max=0, min=1)
_FILE = dict(name=0, description=1, type=2, locale=3, version=4)
_CUSTOM = dict(name=0, data=1)
_SEGMENTER = dict(activation=0, min_parser_version=1)
# tflite schema.fbs: Model, SubGraph, Tensor, Buffer, Metadata, SignatureDef, TensorMap.
_TFL_MODEL = dict(subgraphs=2, description=3, buffers=4, metadata=6, signature_defs=7)
_TFL_SUBGRAPH = dict(tensors=0, inputs=1, outputs=2)
_TFL_TENSOR = dict(shape=0, type=1, name=3, quantization=4, shape_signature=7)
_TFL_QUANTIZATION = dict(scale=2, zero_point=3)
_TFL_BUFFER = dict(data=0, offset=1, size=2)
_TFL_METADATA = dict(name=0, buffer=1)
_TFL_SIGNATURE = dict(inputs=0, outputs=1, signature_key=2)
_TFL_TENSOR_MAP = dict(name=0, tensor_index=1)


# === Writing ===


def segmenter_options(activation):
    """The `ImageSegmenterOptions` flatbuffer MediaPipe reads from `"SEGMENTER_METADATA"`.

    Args:
        activation: `"NONE"`, `"SIGMOID"` or `"SOFTMAX"`: what MediaPipe applies
            to the output scores for its confidence masks.

    Returns:
        bytes (file identifier `"V001"`).

    Example:
    >>> segmenter_options("SOFTMAX")[4:8]
    b'V001'
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}; received {activation!r}.")
    b = flatbuffers.Builder(64)
    version = b.CreateString(_SEGMENTER_MIN_PARSER_VERSION)
    b.StartObject(len(_SEGMENTER))
    b.PrependInt8Slot(_SEGMENTER["activation"], ACTIVATIONS.index(activation), 0)
    b.PrependUOffsetTRelativeSlot(_SEGMENTER["min_parser_version"], version, 0)
    b.Finish(b.EndObject(), file_identifier=_SEGMENTER_IDENTIFIER)
    return bytes(b.Output())


def _offsets_vector(b, offsets):
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _floats_vector(b, values):
    b.StartVector(4, len(values), 4)
    for value in reversed(values):
        b.PrependFloat32(float(value))
    return b.EndVector()


def _bytes_vector(b, data, alignment):
    b.StartVector(1, len(data), alignment)
    for byte in reversed(data):
        b.PrependUint8(byte)
    return b.EndVector()


def _table(b, slots, fields):
    """Write a table from `[(slot, kind, value)]`, offsets already created (kinds: off, i8, u32, i32)."""
    b.StartObject(len(slots))
    for slot, kind, value in fields:
        if value is None:
            continue
        if kind == "off":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "i8":
            b.PrependInt8Slot(slot, value, 0)
        elif kind == "u32":
            b.PrependUint32Slot(slot, value, 0)
        elif kind == "i32":
            b.PrependInt32Slot(slot, value, 0)
    return b.EndObject()


def _string(b, text):
    return None if text is None else b.CreateString(str(text))


def _associated_file(b, entry):
    kind = entry.get("type", "UNKNOWN")
    if kind not in ASSOCIATED_FILE_TYPES:
        raise ValueError(f"associated file type must be one of {ASSOCIATED_FILE_TYPES}; received {kind!r}.")
    name, description = _string(b, entry["name"]), _string(b, entry.get("description"))
    locale, version = _string(b, entry.get("locale")), _string(b, entry.get("version"))
    return _table(b, _FILE, [(_FILE["name"], "off", name), (_FILE["description"], "off", description),
                             (_FILE["type"], "i8", ASSOCIATED_FILE_TYPES.index(kind) or None),
                             (_FILE["locale"], "off", locale), (_FILE["version"], "off", version)])  # fmt: skip


def _files_vector(b, entries):
    if not entries:
        return None
    return _offsets_vector(b, [_associated_file(b, entry) for entry in entries])


def _tensor(b, entry):
    name, description = _string(b, entry.get("name")), _string(b, entry.get("description"))
    content = None
    image = entry.get("image")
    if image is not None or entry.get("range") is not None:
        properties, kind = None, None
        if image is not None:
            color = image.get("color_space", "UNKNOWN")
            if color not in _COLOR_SPACES:
                raise ValueError(f"color_space must be one of {_COLOR_SPACES}; received {color!r}.")
            size = None
            if image.get("default_size"):
                width, height = image["default_size"]
                size = _table(b, _IMAGE_SIZE, [(_IMAGE_SIZE["width"], "u32", int(width)),
                                               (_IMAGE_SIZE["height"], "u32", int(height))])  # fmt: skip
            properties = _table(b, _IMAGE, [(_IMAGE["color_space"], "i8", _COLOR_SPACES.index(color) or None),
                                            (_IMAGE["default_size"], "off", size)])  # fmt: skip
            kind = _IMAGE_PROPERTIES
        else:
            properties = _table(b, {}, [])  # FeatureProperties: an empty table
            kind = _FEATURE_PROPERTIES
        value_range = None
        if entry.get("range") is not None:
            low, high = entry["range"]
            value_range = _table(b, _VALUE_RANGE, [(_VALUE_RANGE["min"], "i32", int(low) or None),
                                                   (_VALUE_RANGE["max"], "i32", int(high) or None)])  # fmt: skip
        content = _table(b, _CONTENT, [(_CONTENT["content_properties_type"], "i8", kind),
                                       (_CONTENT["content_properties"], "off", properties),
                                       (_CONTENT["range"], "off", value_range)])  # fmt: skip
    process_units = None
    if entry.get("normalization") is not None:
        mean, std = entry["normalization"]
        mean, std = _floats_vector(b, mean), _floats_vector(b, std)
        options = _table(b, _NORMALIZATION, [(_NORMALIZATION["mean"], "off", mean),
                                             (_NORMALIZATION["std"], "off", std)])  # fmt: skip
        unit = _table(b, _PROCESS_UNIT, [(_PROCESS_UNIT["options_type"], "i8", _NORMALIZATION_OPTIONS),
                                         (_PROCESS_UNIT["options"], "off", options)])  # fmt: skip
        process_units = _offsets_vector(b, [unit])
    stats = None
    if entry.get("stats") is not None:
        low, high = entry["stats"]
        high, low = _floats_vector(b, high), _floats_vector(b, low)
        stats = _table(b, _STATS, [(_STATS["max"], "off", high), (_STATS["min"], "off", low)])
    files = _files_vector(b, entry.get("associated_files"))
    return _table(b, _TENSOR, [(_TENSOR["name"], "off", name), (_TENSOR["description"], "off", description),
                               (_TENSOR["content"], "off", content),
                               (_TENSOR["process_units"], "off", process_units),
                               (_TENSOR["stats"], "off", stats),
                               (_TENSOR["associated_files"], "off", files)])  # fmt: skip


def build_metadata(name, description=None, version=None, author=None, license=None, inputs=(),
                   outputs=(), associated_files=(), custom_metadata=None):  # fmt: skip
    """Serialize a `ModelMetadata` flatbuffer (one subgraph).

    Args:
        name: the model's name.
        description, version, author, license: model-level strings, or None.
        inputs / outputs: one dict per input / output tensor of the subgraph,
            in the subgraph's order, with optional keys `name`, `description`,
            `image` (`{"color_space": "RGB"|"GRAYSCALE", "default_size":
            (width, height)}`), `range` (`(min, max)` content dimensions),
            `normalization` (`(mean list, std list)`), `stats` (`(min list,
            max list)`) and `associated_files` (list of `{"name", "type",
            "description"}`).
        associated_files: model-level associated files (same dicts).
        custom_metadata: `{name: bytes}` subgraph custom metadata.

    Returns:
        bytes (file identifier `"M001"`).
    """
    b = flatbuffers.Builder(1024)
    customs = []
    for key, data in (custom_metadata or {}).items():
        key_offset, data_offset = b.CreateString(key), _bytes_vector(b, bytes(data), 16)
        customs.append(_table(b, _CUSTOM, [(_CUSTOM["name"], "off", key_offset),
                                           (_CUSTOM["data"], "off", data_offset)]))  # fmt: skip
    customs = _offsets_vector(b, customs) if customs else None
    input_tensors = _offsets_vector(b, [_tensor(b, entry) for entry in inputs])
    output_tensors = _offsets_vector(b, [_tensor(b, entry) for entry in outputs])
    subgraph = _table(b, _SUBGRAPH, [(_SUBGRAPH["input_tensor_metadata"], "off", input_tensors),
                                     (_SUBGRAPH["output_tensor_metadata"], "off", output_tensors),
                                     (_SUBGRAPH["custom_metadata"], "off", customs)])  # fmt: skip
    subgraphs = _offsets_vector(b, [subgraph])
    files = _files_vector(b, associated_files)
    strings = {key: _string(b, value) for key, value in (
        ("name", name), ("description", description), ("version", version), ("author", author),
        ("license", license), ("min_parser_version", MIN_PARSER_VERSION))}  # fmt: skip
    root = _table(b, _MODEL_METADATA, [
        (_MODEL_METADATA["name"], "off", strings["name"]),
        (_MODEL_METADATA["description"], "off", strings["description"]),
        (_MODEL_METADATA["version"], "off", strings["version"]),
        (_MODEL_METADATA["subgraph_metadata"], "off", subgraphs),
        (_MODEL_METADATA["author"], "off", strings["author"]),
        (_MODEL_METADATA["license"], "off", strings["license"]),
        (_MODEL_METADATA["associated_files"], "off", files),
        (_MODEL_METADATA["min_parser_version"], "off", strings["min_parser_version"]),
    ])  # fmt: skip
    b.Finish(root, file_identifier=_METADATA_IDENTIFIER)
    return bytes(b.Output())


def write_metadata(model_buffer, metadata, files):
    """Embed a `ModelMetadata` flatbuffer and its associated files in a TFLite model.

    The metadata becomes a buffer of the model named `"TFLITE_METADATA"` in
    its `metadata` list (replacing one already there); the files are appended
    after the model as an uncompressed zip archive (one entry per file), as
    tflite-support's `MetadataPopulator` does. Every file named in the
    metadata must be given, and every file given must be named.

    Args:
        model_buffer: the `.tflite` bytes (without associated files).
        metadata: `build_metadata`'s bytes.
        files: `{file name: bytes}`.

    Returns:
        The bytes of the `.tflite` file with its metadata.

    Example:
    >>> data = write_metadata(converter.convert(), build_metadata("fcn8s"), {})
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils  # imported at use: TensorFlow is heavy

    named = set(_associated_file_names(_parse_metadata(metadata)))
    if named != set(files):
        raise ValueError(f"the metadata names associated files {sorted(named)}; "
                         f"received files {sorted(files)}.")  # fmt: skip
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_buffer))
    buffer = schema.BufferT()
    buffer.data = metadata
    model.metadata = model.metadata or []
    model.buffers = model.buffers or []
    for entry in model.metadata:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            model.buffers[entry.buffer] = buffer
            break
    else:
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    out = io.BytesIO()
    out.write(flatbuffer_utils.convert_object_to_bytearray(model))
    if files:
        with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
    return out.getvalue()


# === Reading ===


class _Reader:
    """Field access on a flatbuffers table by slot."""

    def __init__(self, buf, pos):
        self.t = Table(buf, pos)

    def _offset(self, slot):
        return self.t.Offset(4 + 2 * slot)

    def string(self, slot):
        o = self._offset(slot)
        return self.t.String(self.t.Pos + o).decode("utf-8") if o else None

    def scalar(self, slot, flags, default=0):
        o = self._offset(slot)
        return self.t.Get(flags, self.t.Pos + o) if o else default

    def table(self, slot):
        o = self._offset(slot)
        return _Reader(self.t.Bytes, self.t.Indirect(self.t.Pos + o)) if o else None

    def tables(self, slot):
        o = self._offset(slot)
        if not o:
            return []
        start, count = self.t.Vector(o), self.t.VectorLen(o)
        return [_Reader(self.t.Bytes, self.t.Indirect(start + 4 * i)) for i in range(count)]

    def strings(self, slot):
        o = self._offset(slot)
        if not o:
            return []
        start, count = self.t.Vector(o), self.t.VectorLen(o)
        return [self.t.String(start + 4 * i).decode("utf-8") for i in range(count)]

    def numbers(self, slot, flags):
        o = self._offset(slot)
        if not o:
            return []
        return self.t.GetVectorAsNumpy(flags, o).tolist()

    def raw(self, slot):
        o = self._offset(slot)
        if not o:
            return b""
        start, count = self.t.Vector(o), self.t.VectorLen(o)
        return bytes(self.t.Bytes[start:start + count])


def _root(buf, identifier, what):
    buf = bytes(buf)
    if len(buf) < 8 or buf[4:8] != identifier:
        raise ValueError(f"{what} is not a {identifier.decode()} flatbuffer "
                         f"(file identifier {buf[4:8]!r}).")  # fmt: skip
    return _Reader(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))


def _parse_file(reader):
    return {"name": reader.string(_FILE["name"]), "description": reader.string(_FILE["description"]),
            "type": _enum(ASSOCIATED_FILE_TYPES, reader.scalar(_FILE["type"], numbers.Int8Flags)),
            "locale": reader.string(_FILE["locale"]), "version": reader.string(_FILE["version"])}  # fmt: skip


def _enum(names, value):
    return names[value] if 0 <= value < len(names) else f"UNKNOWN({value})"


def _parse_tensor(reader):
    entry = {"name": reader.string(_TENSOR["name"]), "description": reader.string(_TENSOR["description"]),
             "dimension_names": reader.strings(_TENSOR["dimension_names"]), "image": None,
             "range": None, "normalization": None, "stats": None}  # fmt: skip
    content = reader.table(_TENSOR["content"])
    if content is not None:
        kind = content.scalar(_CONTENT["content_properties_type"], numbers.Uint8Flags)
        properties = content.table(_CONTENT["content_properties"])
        if kind == _IMAGE_PROPERTIES and properties is not None:
            size = properties.table(_IMAGE["default_size"])
            entry["image"] = {
                "color_space": _enum(_COLOR_SPACES, properties.scalar(_IMAGE["color_space"], numbers.Int8Flags)),
                "default_size": None if size is None else (
                    size.scalar(_IMAGE_SIZE["width"], numbers.Uint32Flags),
                    size.scalar(_IMAGE_SIZE["height"], numbers.Uint32Flags)),
            }  # fmt: skip
        value_range = content.table(_CONTENT["range"])
        if value_range is not None:
            entry["range"] = (value_range.scalar(_VALUE_RANGE["min"], numbers.Int32Flags),
                              value_range.scalar(_VALUE_RANGE["max"], numbers.Int32Flags))  # fmt: skip
    for unit in reader.tables(_TENSOR["process_units"]):
        options = unit.table(_PROCESS_UNIT["options"])
        if unit.scalar(_PROCESS_UNIT["options_type"], numbers.Uint8Flags) == _NORMALIZATION_OPTIONS and options:
            entry["normalization"] = (options.numbers(_NORMALIZATION["mean"], numbers.Float32Flags),
                                      options.numbers(_NORMALIZATION["std"], numbers.Float32Flags))  # fmt: skip
    stats = reader.table(_TENSOR["stats"])
    if stats is not None:
        entry["stats"] = (stats.numbers(_STATS["min"], numbers.Float32Flags),
                          stats.numbers(_STATS["max"], numbers.Float32Flags))  # fmt: skip
    entry["associated_files"] = [_parse_file(f) for f in reader.tables(_TENSOR["associated_files"])]
    return entry


def _parse_metadata(buf):
    """A `ModelMetadata` flatbuffer as a dict (one entry per subgraph in `subgraphs`)."""
    root = _root(buf, _METADATA_IDENTIFIER, "TFLITE_METADATA")
    subgraphs = []
    for graph in root.tables(_MODEL_METADATA["subgraph_metadata"]):
        customs = {c.string(_CUSTOM["name"]): c.raw(_CUSTOM["data"])
                   for c in graph.tables(_SUBGRAPH["custom_metadata"])}  # fmt: skip
        subgraphs.append({
            "name": graph.string(_SUBGRAPH["name"]),
            "inputs": [_parse_tensor(t) for t in graph.tables(_SUBGRAPH["input_tensor_metadata"])],
            "outputs": [_parse_tensor(t) for t in graph.tables(_SUBGRAPH["output_tensor_metadata"])],
            "associated_files": [_parse_file(f) for f in graph.tables(_SUBGRAPH["associated_files"])],
            "custom_metadata": customs,
        })  # fmt: skip
    return {key: root.string(slot) for key, slot in _MODEL_METADATA.items()
            if key not in ("subgraph_metadata", "associated_files")} | {
        "associated_files": [_parse_file(f) for f in root.tables(_MODEL_METADATA["associated_files"])],
        "subgraphs": subgraphs,
    }  # fmt: skip


def _associated_file_names(parsed):
    names = [f["name"] for f in parsed["associated_files"]]
    for graph in parsed["subgraphs"]:
        names += [f["name"] for f in graph["associated_files"]]
        for tensor in graph["inputs"] + graph["outputs"]:
            names += [f["name"] for f in tensor["associated_files"]]
    return list(dict.fromkeys(names))


def _parse_segmenter(data):
    root = _root(data, _SEGMENTER_IDENTIFIER, SEGMENTER_METADATA_NAME)
    return {"activation": _enum(ACTIVATIONS, root.scalar(_SEGMENTER["activation"], numbers.Int8Flags)),
            "min_parser_version": root.string(_SEGMENTER["min_parser_version"])}  # fmt: skip


def _tensors(model, graph, slot):
    tensors = graph.tables(_TFL_SUBGRAPH["tensors"])
    out = []
    for index in graph.numbers(slot, numbers.Int32Flags):
        tensor = tensors[index]
        signature = tensor.numbers(_TFL_TENSOR["shape_signature"], numbers.Int32Flags)
        quantization = tensor.table(_TFL_TENSOR["quantization"])
        scale = quantization.numbers(_TFL_QUANTIZATION["scale"], numbers.Float32Flags) if quantization else []
        zero = quantization.numbers(_TFL_QUANTIZATION["zero_point"], numbers.Int64Flags) if quantization else []
        out.append({
            "index": index, "name": tensor.string(_TFL_TENSOR["name"]),
            "dtype": _TENSOR_TYPES.get(tensor.scalar(_TFL_TENSOR["type"], numbers.Int8Flags), "other"),
            "shape": signature or tensor.numbers(_TFL_TENSOR["shape"], numbers.Int32Flags),
            "quantization": (scale[0], zero[0]) if len(scale) == 1 and len(zero) == 1 else None,
        })  # fmt: skip
    return out


def read_tflite_metadata(path):
    """Everything a `.tflite` file says about itself: tensors, signatures, Model Metadata, associated files.

    Needs `flatbuffers` only (no TensorFlow).

    Args:
        path: a `.tflite` file (or its bytes).

    Returns:
        dict with `inputs` / `outputs` (the first subgraph's tensors: `index`,
        `name`, `dtype`, `shape` (-1 for a dynamic dimension), `quantization`
        `(scale, zero_point)` or None), `signatures` (`{key: {"inputs": {name:
        tensor index}, "outputs": {...}}}`), `subgraph_count`, `metadata`
        (the parsed `ModelMetadata`: `name`, `description`, `version`,
        `author`, `license`, `min_parser_version`, `associated_files`,
        `subgraphs` with per-tensor entries and `custom_metadata` bytes), or
        None when the file has none), `segmenter` (MediaPipe's
        `{"activation", "min_parser_version"}`, or None) and `files`
        (`{name: bytes}` of the associated files packed in the file).

    Raises:
        ValueError: not a TFLite flatbuffer, or a metadata buffer that does not parse.

    Example:
    >>> info = read_tflite_metadata("fcn8s_mobile_float32_360x480.tflite")
    >>> info["segmenter"]["activation"], info["files"]["labels.txt"].split()[:2]
    ('SOFTMAX', [b'Sky', b'Building'])
    """
    if isinstance(path, (bytes, bytearray, memoryview)):
        data, what = bytes(path), "TFLite buffer"
    else:
        what = repr(os.fspath(path))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ValueError(f"cannot read TFLite file {what}: {e}") from e
    try:
        model = _root(data, _MODEL_IDENTIFIER, f"TFLite file {what}")
        graphs = model.tables(_TFL_MODEL["subgraphs"])
        if not graphs:
            raise ValueError(f"TFLite file {what} holds no subgraph.")
        buffers = model.tables(_TFL_MODEL["buffers"])
        info = {"inputs": _tensors(model, graphs[0], _TFL_SUBGRAPH["inputs"]),
                "outputs": _tensors(model, graphs[0], _TFL_SUBGRAPH["outputs"]),
                "subgraph_count": len(graphs), "signatures": {}, "metadata": None,
                "segmenter": None, "files": {}}  # fmt: skip
        for signature in model.tables(_TFL_MODEL["signature_defs"]):
            maps = {kind: {m.string(_TFL_TENSOR_MAP["name"]): m.scalar(_TFL_TENSOR_MAP["tensor_index"],
                                                                        numbers.Uint32Flags)
                           for m in signature.tables(_TFL_SIGNATURE[kind])}
                    for kind in ("inputs", "outputs")}  # fmt: skip
            info["signatures"][signature.string(_TFL_SIGNATURE["signature_key"])] = maps
        for entry in model.tables(_TFL_MODEL["metadata"]):
            if entry.string(_TFL_METADATA["name"]) != METADATA_NAME:
                continue
            buffer = buffers[entry.scalar(_TFL_METADATA["buffer"], numbers.Uint32Flags)]
            offset = buffer.scalar(_TFL_BUFFER["offset"], numbers.Uint64Flags)
            size = buffer.scalar(_TFL_BUFFER["size"], numbers.Uint64Flags)
            raw = data[offset:offset + size] if offset > 1 else buffer.raw(_TFL_BUFFER["data"])
            info["metadata"] = _parse_metadata(raw)
    except ValueError:
        raise
    except Exception as e:  # a truncated or foreign file: flatbuffers raises anything
        raise ValueError(f"TFLite file {what} does not parse: {type(e).__name__}: {e}") from e
    if info["metadata"] is not None:
        for graph in info["metadata"]["subgraphs"][:1]:
            if SEGMENTER_METADATA_NAME in graph["custom_metadata"]:
                info["segmenter"] = _parse_segmenter(graph["custom_metadata"][SEGMENTER_METADATA_NAME])
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info["files"] = {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        pass  # no associated files
    if info["metadata"] is not None:
        missing = sorted(set(_associated_file_names(info["metadata"])) - set(info["files"]))
        if missing:
            raise ValueError(f"TFLite file {what}: its metadata names associated files {missing} "
                             "that the file does not pack.")  # fmt: skip
    return info


# === Describing ===


def describe_tflite(path):
    """What a `.tflite` file's metadata holds, as plain data (what `fcn-keras model --describe` prints).

    Args:
        path: a `.tflite` file (any, not only fcn_keras's).

    Returns:
        dict with `file`, `bytes`, `name`, `description`, `version`, `author`,
        `license`, `min_parser_version` (None where the file has no Model
        Metadata), `inputs` / `outputs` (tensor name, dtype, shape, and the
        metadata's name, description, image properties, normalization and
        associated files), `labels` (the output's `TENSOR_AXIS_LABELS` file,
        one name per channel, or None), `activation` (MediaPipe's segmenter
        activation, or None), `ignore_label`, `palette` (`{class: [r, g, b]}`),
        `quantization` (from the packed `fcn_keras.json`, None without it) and
        `files` (`{packed file: size in bytes}`).

    Example:
    >>> describe_tflite("fcn8s_mobile_int8_360x480.tflite")["activation"]
    'SOFTMAX'
    """
    import json

    info = read_tflite_metadata(path)
    meta = info["metadata"] or {}
    graph = (meta.get("subgraphs") or [{}])[0]
    files = info["files"]

    def tensors(kind):
        described = graph.get(kind) or []
        out = []
        for i, tensor in enumerate(info[kind]):
            entry = {"tensor": tensor["name"], "dtype": tensor["dtype"], "shape": tensor["shape"]}
            if i < len(described):
                d = described[i]
                files = [(f["name"], f["type"]) for f in d["associated_files"]]
                entry.update({"name": d["name"], "description": d["description"], "image": d["image"],
                              "normalization": d["normalization"], "associated_files": files})  # fmt: skip
            out.append(entry)
        return out

    labels = None
    for tensor in (graph.get("outputs") or [])[::-1]:  # MediaPipe reads the last output's labels
        names = [f["name"] for f in tensor["associated_files"] if f["type"] == "TENSOR_AXIS_LABELS"]
        if names and names[0] in files:
            labels = files[names[0]].decode("utf-8").splitlines()
            break
    from ._artifacts import TFLITE_METADATA_FILE

    facts = {}
    if TFLITE_METADATA_FILE in files:
        facts = json.loads(files[TFLITE_METADATA_FILE])
    dataset = facts.get("dataset_info") or {}
    palette = None
    if dataset.get("palette") is not None:
        palette = dict(zip(dataset["class_names"], dataset["palette"]))
    return {
        "file": os.fspath(path), "bytes": os.path.getsize(path),
        **{key: meta.get(key) for key in ("name", "description", "version", "author", "license",
                                          "min_parser_version")},
        "inputs": tensors("inputs"), "outputs": tensors("outputs"), "labels": labels,
        "activation": (info["segmenter"] or {}).get("activation"),
        "ignore_label": dataset.get("ignore_label"), "palette": palette,
        "quantization": facts.get("quantization"),
        "files": {name: len(data) for name, data in files.items()},
    }  # fmt: skip
