"""TFLite (LiteRT) flatbuffers: their constant tensors, operators and metadata, and running them.

The one reader of .tflite files in deeplab-tf: the official float model's weights
(`read_tflite_model`), the operators of any file (`read_ops`: the exporter's op checks), the
description `export.export_tflite` stores in its files (`read_export_metadata`,
`with_export_metadata`), and the LiteRT interpreter (`litert_interpreter`, `run_tflite`).

The flatbuffer is parsed with the schema module TensorFlow ships
(`tensorflow.lite.python.schema_py_generated`), so the weights are the bytes in the file, not what
an interpreter (or its XNNPACK delegate, which packs weights away) exposes. Operators come with
their builtin options (strides, dilation factors, padding, fused activation, align_corners ...),
which the interpreter's `_get_ops_details()` does not report.
"""

import difflib
import json
import os
import re
from collections.abc import Sequence
from typing import NamedTuple

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from deeplab_tf.pretrained.source_tensors import MissingTensorError, SourceFileError, SourceTensors

_DTYPES = {
    schema.TensorType.FLOAT32: np.dtype("<f4"),
    schema.TensorType.FLOAT16: np.dtype("<f2"),
    schema.TensorType.INT32: np.dtype("<i4"),
    schema.TensorType.INT64: np.dtype("<i8"),
}


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


_TENSOR_TYPES = _enum_names(schema.TensorType)
_OPCODES = _enum_names(schema.BuiltinOperator)
EXPORT_METADATA_NAME = "deeplab_tf_export"
"""Name of the flatbuffer metadata entry in which `export.export_tflite` stores its JSON description."""

_OPTION_ENUMS = {  # option fields holding an enum, reported by name
    "padding": _enum_names(schema.Padding),
    "fused_activation_function": _enum_names(schema.ActivationFunctionType),
}


class TfliteOp(NamedTuple):
    """One operator of the graph, in execution order.

    `opcode`: builtin operator name, e.g. "CONV_2D", "DEPTHWISE_CONV_2D", "RESIZE_BILINEAR";
    "CUSTOM:<name>" for a custom operator (Flex/Select TF ops among them, e.g. "CUSTOM:FlexErf").
    `inputs`, `outputs`: tensor names ("" for an omitted optional input).
    `options`: the builtin options with the schema's field names, e.g. {"padding": "SAME",
    "stride_w": 2, "stride_h": 2, "dilation_w_factor": 1, "dilation_h_factor": 1,
    "fused_activation_function": "RELU6"} or {"align_corners": True, "half_pixel_centers": False}.
    """

    index: int
    opcode: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    options: dict

    @property
    def dilation(self) -> tuple[int, int]:
        """(height, width) dilation factors; (1, 1) for an operator without them."""
        return self.options.get("dilation_h_factor", 1), self.options.get("dilation_w_factor", 1)


class TfliteModel(NamedTuple):
    """What `read_tflite_model` returns.

    `weights`: `SourceTensors` of the constant tensors by tensor name (float32/float16/int32/int64,
    TFLite layouts: CONV_2D kernels [out, kh, kw, in], DEPTHWISE_CONV_2D [1, kh, kw, channels]).
    `ops`: tuple of `TfliteOp` in execution order. `inputs`, `outputs`: the graph's tensor names.
    """

    weights: SourceTensors
    ops: tuple[TfliteOp, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def read_tflite_model(path: str) -> TfliteModel:
    """Reads the constant tensors and the operator list of the first subgraph of a TFLite file.

    Returns a `TfliteModel`. Raises `SourceFileError` (naming the file, and the tensor where one
    is at fault) if the file is not a TFLite flatbuffer, or a constant tensor has a dtype other
    than float32/float16/int32/int64 (quantized models are not supported)."""
    model = read_flatbuffer(path)
    if not model.subgraphs:
        raise SourceFileError(f"{path} has no subgraph")
    graph = model.subgraphs[0]
    names = [_text(tensor.name) for tensor in graph.tensors]
    weights = {}
    for tensor, name in zip(graph.tensors, names):
        buffer = model.buffers[tensor.buffer]
        if buffer.offset > 1:
            raise SourceFileError(f"tensor {name!r} of {path} is stored outside the flatbuffer (not supported)")
        if buffer.data is None or len(buffer.data) == 0:
            continue  # not a constant
        if tensor.type not in _DTYPES:
            raise SourceFileError(
                f"constant tensor {name!r} of {path} has type {_TENSOR_TYPES.get(tensor.type, tensor.type)}; "
                "only float32/float16/int32/int64 are supported"
            )
        shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
        weights[name] = np.frombuffer(bytes(buffer.data), dtype=_DTYPES[tensor.type]).reshape(shape)
    ops = _subgraph_ops(model, graph)
    return TfliteModel(
        SourceTensors(weights, path),
        ops,
        tuple(names[i] for i in graph.inputs),
        tuple(names[i] for i in graph.outputs),
    )


def run_tflite(path: str, input_value: np.ndarray, fetches: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Runs a single-input TFLite model on `input_value` (its dtype and exact shape, e.g. float32
    [1, 257, 257, 3] normalised as (x - 127.5) / 127.5 for DeepLab's models).

    Uses `litert_interpreter` with the builtin kernels and no default delegate (no XNNPACK),
    keeping every intermediate tensor when `fetches` asks for one. Returns a dict tensor name -> np.ndarray with the model's outputs (e.g.
    "ResizeBilinear_3": float32 [1, 257, 257, 21] logits) and every tensor named in `fetches`.
    Raises `MissingTensorError` for an unknown fetch, `ValueError` for an input of another shape
    or dtype."""
    interpreter = litert_interpreter(path, delegates=False, preserve_all_tensors=bool(fetches))
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()
    if len(input_details) != 1:
        raise ValueError(f"{path} has {len(input_details)} inputs; run_tflite feeds single-input models")
    (input_detail,) = input_details
    expected = (tuple(int(d) for d in input_detail["shape"]), np.dtype(input_detail["dtype"]))
    if (input_value.shape, input_value.dtype) != expected:
        raise ValueError(
            f"input {input_detail['name']!r} of {path} is {expected[1]} {expected[0]}, "
            f"got {input_value.dtype} {input_value.shape}"
        )
    interpreter.set_tensor(input_detail["index"], input_value)
    interpreter.invoke()
    index = {detail["name"]: detail["index"] for detail in interpreter.get_tensor_details()}
    outputs = [detail["name"] for detail in interpreter.get_output_details()]
    for name in fetches:
        if name not in index:
            closest = difflib.get_close_matches(name, list(index), n=3, cutoff=0.5)
            hint = f"; closest names: {', '.join(repr(c) for c in closest)}" if closest else ""
            raise MissingTensorError(f"no tensor {name!r} in {path}{hint}")
    return {name: interpreter.get_tensor(index[name]) for name in (*outputs, *fetches)}


def litert_interpreter(path: str, num_threads: int | None = None, delegates: bool = True,
                       preserve_all_tensors: bool = False):
    """Returns `ai_edge_litert.interpreter.Interpreter` of the file `path` (tensors not allocated).

    `delegates`: keep the interpreter's default delegate (XNNPACK); False runs the reference
    builtin kernels. `preserve_all_tensors`: keep every intermediate tensor readable.
    Raises ImportError (how to install it) without the `lite` extra, ValueError (one line naming
    `path`) when the interpreter cannot load the file."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise ImportError("running a .tflite model needs the LiteRT runtime: pip install -e \".[lite]\" "
                          "(the ai-edge-litert package)") from None
    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return Interpreter(model_path=path, num_threads=num_threads, experimental_op_resolver_type=resolver,
                           experimental_preserve_all_tensors=preserve_all_tensors)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"{path} cannot be loaded by the LiteRT interpreter: {str(error).splitlines()[0]}") from None


def read_ops(path: str) -> tuple[TfliteOp, ...]:
    """Returns every operator of every subgraph of the TFLite file `path`, in execution order
    (`TfliteOp`; `index` counts within its subgraph). Raises `SourceFileError` when `path` is
    missing or not a TFLite flatbuffer."""
    model = read_flatbuffer(path)
    return tuple(op for graph in model.subgraphs or [] for op in _subgraph_ops(model, graph))


def read_export_metadata(path: str) -> dict | None:
    """Returns the description `export.export_tflite` stored in the TFLite file `path`
    (`EXPORT_METADATA_NAME`), or None when the file holds none (another exporter's file, e.g. the
    official model). Raises `SourceFileError` when `path` is missing or not a TFLite flatbuffer."""
    model = read_flatbuffer(path)
    for entry in model.metadata or []:
        if _text(entry.name) == EXPORT_METADATA_NAME:
            try:
                return json.loads(bytes(model.buffers[entry.buffer].data).decode())
            except (ValueError, TypeError, AttributeError):
                return None
    return None


def with_export_metadata(content: bytes, description: dict) -> bytes:
    """Returns the TFLite flatbuffer `content` as `export.export_tflite` writes it: `description`
    stored as JSON under `EXPORT_METADATA_NAME` (an earlier entry of that name replaced); each
    tensor name that the converter made by joining the names of fused ops with ";" cut to its first
    part (the op that produces it, e.g. ".../block_1_expand_relu/Relu6"): a quarter of the bytes of
    the names; and equal quantisation zero-point vectors stored once (`_SharedInt64Builder`)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for graph in model.subgraphs or []:
        for tensor in graph.tensors or []:
            name = _text(tensor.name) if tensor.name is not None else None
            tensor.name = name.split(";")[0] if name else name
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(description, indent=1).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = EXPORT_METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _text(m.name) != EXPORT_METADATA_NAME]
    model.metadata.append(entry)
    builder = _SharedInt64Builder(len(content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _SharedInt64Builder(flatbuffers.Builder):
    """A flatbuffer builder that writes each distinct int64 vector once and points every table
    holding an equal one at it (flatbuffers allow shared offsets). The schema's only int64 vectors
    are the quantisation zero points: per-channel int8 kernels and their biases store one int64
    zero point per output channel, all 0, which took 8% of an int8 DeepLab file."""

    def __init__(self, initial_size: int):
        super().__init__(initial_size)
        self._int64_vectors = {}

    def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' name)
        if x.dtype != np.int64:
            return super().CreateNumpyVector(x)
        key = x.tobytes()
        if key not in self._int64_vectors:
            self._int64_vectors[key] = super().CreateNumpyVector(x)
        return self._int64_vectors[key]


def read_flatbuffer(path: str) -> schema.ModelT:
    """Returns the parsed flatbuffer (`schema.ModelT`) of the TFLite file `path`. Raises
    `SourceFileError` (a ValueError) naming `path` when it is missing or not a TFLite flatbuffer."""
    if not os.path.isfile(path):
        raise SourceFileError(f"no TFLite file at {path}")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise SourceFileError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier, {len(data)} bytes)")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def _subgraph_ops(model: schema.ModelT, graph) -> tuple[TfliteOp, ...]:
    names = [_text(tensor.name) for tensor in graph.tensors or []]
    return tuple(_op(index, op, model, names) for index, op in enumerate(graph.operators or []))


def _op(index: int, op, model: schema.ModelT, names: list[str]) -> TfliteOp:
    code = model.operatorCodes[op.opcodeIndex]
    # Files written before the int32 builtin_code field keep the code in deprecated_builtin_code.
    opcode = _OPCODES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")
    if opcode == "CUSTOM":
        opcode = f"CUSTOM:{_text(code.customCode)}"
    return TfliteOp(
        index,
        opcode,
        tuple(names[i] if i >= 0 else "" for i in op.inputs),
        tuple(names[i] for i in op.outputs),
        _options(op.builtinOptions),
    )


def _options(options) -> dict:
    """The builtin options object as {schema_field_name: value}, enums by name."""
    if options is None:
        return {}
    fields = {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in vars(options).items()}
    for key, names in _OPTION_ENUMS.items():
        if key in fields:
            fields[key] = names.get(fields[key], fields[key])
    return fields


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)
