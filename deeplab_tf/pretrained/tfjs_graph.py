"""TF.js graph models (`model.json` + binary weight shards), read back into a TF GraphDef.

A TF.js graph model is a frozen GraphDef written as JSON (`modelTopology`, protobuf's JSON
mapping) whose Const nodes have no values, plus a `weightsManifest`: groups of weights
(name, shape, dtype, optional quantization) whose values lie concatenated, in manifest order, in
the group's shard files. `read_tfjs_graph_model` reads the weights and puts them back into the
Const nodes; run the result with `frozen_graph.run_image_graph`.
"""

import json
import os

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from deeplab_tf.pretrained.frozen_graph import FrozenGraph
from deeplab_tf.pretrained.source_tensors import SourceFileError, SourceTensors

MODEL_JSON = "model.json"
_DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}
# Quantized storage of float32 weights: affine uint8/uint16 (value = q * scale + min), float16.
_QUANTIZED_DTYPES = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2")}


def read_tfjs_graph_model(path: str) -> FrozenGraph:
    """Reads a TF.js graph model from its `model.json` or the directory holding it.

    Returns a `FrozenGraph`: `graph_def` (`tf.compat.v1.GraphDef` whose Const nodes hold the
    weights) and `weights` (`SourceTensors` of every manifest weight, keyed by its name, which is
    the Const node's name; float32 or int32 arrays in the manifest's shapes, quantized weights
    dequantized to float32). Raises `SourceFileError` (naming the file) if the JSON, the manifest
    or a shard is missing, malformed, of the wrong size, or uses an unsupported dtype."""
    json_path = os.path.join(path, MODEL_JSON) if os.path.isdir(path) else path
    model = _load_json(json_path)
    weights = read_tfjs_weights(model["weightsManifest"], json_path)
    return FrozenGraph(_graph_def(model["modelTopology"], weights, json_path), weights)


def read_tfjs_weights(manifest: list, json_path: str) -> SourceTensors:
    """Returns the weights of a TF.js `weightsManifest` (a list of groups, each {"paths": shard
    files relative to `json_path`'s directory, "weights": [{name, shape, dtype[, quantization]}]})
    as `SourceTensors`: float32 / int32 arrays of the listed shapes."""
    directory = os.path.dirname(json_path)
    tensors = {}
    for number, group in enumerate(manifest, start=1):
        shard_paths = [os.path.join(directory, name) for name in group["paths"]]
        data = _read_group(shard_paths, _group_bytes(group["weights"], json_path), number, json_path)
        offset = 0
        for entry in group["weights"]:
            tensors[entry["name"]], offset = _decode(entry, data, offset, json_path)
    return SourceTensors(tensors, json_path)


def _load_json(json_path: str) -> dict:
    if not os.path.isfile(json_path):
        raise SourceFileError(f"no TF.js model file at {json_path}")
    try:
        with open(json_path) as f:
            model = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SourceFileError(f"{json_path} is not JSON: {error}") from None
    missing = [key for key in ("modelTopology", "weightsManifest") if key not in model]
    if missing:
        raise SourceFileError(f"{json_path} is not a TF.js graph model: no {' or '.join(missing)}")
    return model


def _storage(entry: dict, json_path: str) -> np.dtype:
    """The dtype the weight's bytes are stored in."""
    quantization = entry.get("quantization")
    if quantization is None:
        if entry["dtype"] not in _DTYPES:
            raise SourceFileError(
                f"weight {entry['name']!r} in {json_path} has dtype {entry['dtype']!r}; supported: {sorted(_DTYPES)}"
            )
        return _DTYPES[entry["dtype"]]
    if entry["dtype"] != "float32" or quantization.get("dtype") not in _QUANTIZED_DTYPES:
        raise SourceFileError(
            f"weight {entry['name']!r} in {json_path}: quantization {quantization.get('dtype')!r} of "
            f"{entry['dtype']!r} is not supported (only float32 stored as {sorted(_QUANTIZED_DTYPES)})"
        )
    return _QUANTIZED_DTYPES[quantization["dtype"]]


def _group_bytes(entries: list, json_path: str) -> int:
    return sum(int(np.prod(entry["shape"], dtype=np.int64)) * _storage(entry, json_path).itemsize for entry in entries)


def _read_group(shard_paths: list, expected: int, number: int, json_path: str) -> bytes:
    for shard in shard_paths:
        if not os.path.isfile(shard):
            raise SourceFileError(f"weight shard {shard} listed in {json_path} does not exist")
    sizes = [os.path.getsize(shard) for shard in shard_paths]
    if sum(sizes) != expected:
        listing = ", ".join(f"{os.path.basename(s)}: {n} bytes" for s, n in zip(shard_paths, sizes))
        raise SourceFileError(
            f"weight group {number} of {json_path} needs {expected} bytes, its shards hold {sum(sizes)} ({listing})"
        )
    chunks = []
    for shard in shard_paths:
        with open(shard, "rb") as f:
            chunks.append(f.read())
    return b"".join(chunks)


def _decode(entry: dict, data: bytes, offset: int, json_path: str) -> tuple[np.ndarray, int]:
    """Returns (the weight as float32/int32 array of its shape, the offset after its bytes)."""
    storage = _storage(entry, json_path)
    count = int(np.prod(entry["shape"], dtype=np.int64))
    stored = np.frombuffer(data, dtype=storage, count=count, offset=offset).reshape(entry["shape"])
    quantization = entry.get("quantization")
    if quantization is None:
        value = stored
    elif quantization["dtype"] == "float16":
        value = stored.astype(np.float32)
    else:
        value = (stored * np.float32(quantization["scale"]) + np.float32(quantization["min"])).astype(np.float32)
    return value, offset + count * storage.itemsize


def _graph_def(topology: dict, weights: SourceTensors, json_path: str) -> tf.compat.v1.GraphDef:
    """Parses `modelTopology` and fills every Const node with its weight."""
    try:
        graph_def = json_format.ParseDict(topology, tf.compat.v1.GraphDef())
    except json_format.ParseError as error:
        raise SourceFileError(f"modelTopology of {json_path} is not a GraphDef: {error}") from None
    for node in graph_def.node:
        if node.op != "Const":
            continue
        if node.name not in weights:
            raise SourceFileError(f"Const node {node.name!r} of {json_path} has no weight in the weightsManifest")
        declared = tuple(dim.size for dim in node.attr["value"].tensor.tensor_shape.dim)
        value = weights.tensor(node.name, declared)
        dtype = tf.as_dtype(node.attr["dtype"].type)
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.astype(dtype.as_numpy_dtype), shape=declared))
    return graph_def
