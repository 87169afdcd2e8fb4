"""Frozen TF1 GraphDefs (DeepLab's `frozen_inference_graph.pb`): their constants, and running them.

`run_image_graph` is the one GraphDef runner: `tfjs_graph` re-assembles a GraphDef from a TF.js
model and runs it here too.
"""

import difflib
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from deeplab_tf.pretrained.source_tensors import MissingTensorError, SourceFileError, SourceTensors

IMAGE_INPUT = "ImageTensor:0"  # uint8 [1, H, W, 3] in DeepLab's exported graphs


class FrozenGraph(NamedTuple):
    """A frozen GraphDef and its constants.

    `graph_def`: `tf.compat.v1.GraphDef`. `weights`: `SourceTensors` keyed by Const node name
    (no ":0"): from `read_frozen_graph`, every float Const node (float32 for DeepLab); from
    `tfjs_graph.read_tfjs_graph_model`, every manifest weight (float32 or int32)."""

    graph_def: tf.compat.v1.GraphDef
    weights: SourceTensors


def read_frozen_graph(path: str) -> FrozenGraph:
    """Reads a binary GraphDef file (e.g. `frozen_inference_graph.pb`).

    Returns a `FrozenGraph` (the GraphDef, and its float Const nodes as `SourceTensors`).
    Raises `SourceFileError` if the file is missing or is not a GraphDef."""
    if not os.path.isfile(path):
        raise SourceFileError(f"no frozen graph file at {path}")
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        data = f.read()
    try:
        graph_def.ParseFromString(data)
    except DecodeError as error:
        raise SourceFileError(f"{path} is not a binary GraphDef ({len(data)} bytes): {error}") from None
    if not graph_def.node:
        raise SourceFileError(f"{path} holds no GraphDef nodes ({len(data)} bytes)")
    return FrozenGraph(graph_def, float_constants(graph_def, path))


def float_constants(graph_def: tf.compat.v1.GraphDef, path: str) -> SourceTensors:
    """Returns the float Const nodes of `graph_def` as `SourceTensors` keyed by node name, each
    array in the node's dtype and shape; `path` names the source in error messages."""
    return SourceTensors(
        {
            node.name: tf.make_ndarray(node.attr["value"].tensor)
            for node in graph_def.node
            if node.op == "Const" and tf.as_dtype(node.attr["dtype"].type).is_floating
        },
        path,
    )


def frozen_variables(graph_def: tf.compat.v1.GraphDef, path: str) -> SourceTensors:
    """Returns the float Const nodes of `graph_def` that were variables before freezing, as
    `SourceTensors` keyed by variable name (e.g. "aspp0/weights"): the input for
    `tf1_deeplab.load_tf1_weights`, as a TF1 checkpoint's variables are.

    `convert_variables_to_constants` (DeepLab's `export_model.py`, through `freeze_graph`) turns
    variable `v` into a Const named `v` and keeps the Identity `v/read` (for a resource variable,
    an Identity `v/Read/ReadVariableOp`) that reads it, so a variable is a float Const read by
    an Identity node; other constants (the preprocessing's `mul_1/x`, sizes, axes) are left out.
    `path` names the source in error messages."""
    read = {_node_name(node.input[0]) for node in graph_def.node if node.op == "Identity" and node.input}
    constants = float_constants(graph_def, path)
    return SourceTensors({name: value for name, value in constants.items() if name in read}, path)


def _node_name(tensor_name: str) -> str:
    """Returns the node name of a GraphDef input: "v:0" -> "v", "^v" (control input) -> "v"."""
    return tensor_name.lstrip("^").split(":")[0]


def run_image_graph(
    graph_def: tf.compat.v1.GraphDef,
    image: np.ndarray,
    fetches: Sequence[str] = ("SemanticPredictions:0",),
    source: str = "GraphDef",
    input_name: str = IMAGE_INPUT,
) -> dict[str, np.ndarray]:
    """Runs `graph_def` in TensorFlow on one uint8 image fed to `input_name`.

    Args:
        `image`: uint8 [H, W, 3] or [1, H, W, 3] (RGB).
        `fetches`: tensor names, e.g. "logits/semantic/BiasAdd:0", "SemanticPredictions:0".
        `source`: the file the GraphDef came from, for error messages.

    Returns a dict tensor name -> np.ndarray as the graph computes it (e.g. SemanticPredictions
    int64 [1, H, W], logits float32 [1, h, w, classes]). Raises `MissingTensorError` naming the
    tensor, the source and the closest node names if a fetch or the input is not in the graph."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.shape[-1:] != (3,) or image.ndim not in (3, 4):
        raise ValueError(f"expected a uint8 [H, W, 3] or [1, H, W, 3] image, got {image.dtype} {image.shape}")
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
    input_tensor, *fetch_tensors = (_tensor(graph, name, source) for name in (input_name, *fetches))
    with tf.compat.v1.Session(graph=graph) as session:
        values = session.run(fetch_tensors, {input_tensor: image.reshape((1, *image.shape[-3:]))})
    return dict(zip(fetches, values))


def _tensor(graph: tf.Graph, name: str, source: str) -> tf.Tensor:
    try:
        return graph.get_tensor_by_name(name)
    except (KeyError, ValueError):
        nodes = [op.name for op in graph.get_operations()]
        closest = difflib.get_close_matches(name.split(":")[0], nodes, n=3, cutoff=0.5)
        hint = f"; closest nodes: {', '.join(repr(c) for c in closest)}" if closest else ""
        raise MissingTensorError(f"no tensor {name!r} in the graph of {source}{hint}") from None
