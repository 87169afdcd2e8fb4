import json
import os

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from PIL import Image

from deeplab_tf.pretrained.frozen_graph import run_image_graph
from deeplab_tf.pretrained.source_tensors import SourceFileError, TensorShapeError
from deeplab_tf.pretrained.tfjs_graph import read_tfjs_graph_model

RNG = np.random.default_rng(0)
KERNEL = RNG.normal(size=(3, 3, 3, 4)).astype(np.float32)
BIASES = RNG.normal(size=4).astype(np.float32)


def _graph_def() -> tf.compat.v1.GraphDef:
    """A small frozen graph: ImageTensor -> 3x3 conv -> BiasAdd -> argmax; float32 and int32 constants."""
    with tf.Graph().as_default() as graph:
        image = tf.compat.v1.placeholder(tf.uint8, [1, None, None, 3], name="ImageTensor")
        x = tf.cast(image, tf.float32) * tf.constant(2.0 / 255.0, name="mul_1/x") - 1.0
        conv = tf.nn.conv2d(x, tf.constant(KERNEL, name="MobilenetV2/Conv/Conv2D/merged_input"), 1, "SAME")
        biases = tf.constant(BIASES, name="logits/semantic/biases")
        logits = tf.nn.bias_add(conv, biases, name="logits/semantic/BiasAdd")
        tf.argmax(logits, tf.constant(3, name="ArgMax/dimension"), name="SemanticPredictions")
    return graph.as_graph_def()


def write_tfjs_model(directory, graph_def, shard_bytes=64, edit_entry=None):
    """Writes `graph_def` the way tensorflowjs 0.8.0 does: model.json (nodes as protobuf JSON, Const
    values removed) + one weight group split into shards of `shard_bytes`. `edit_entry(entry, value)`
    may change a manifest entry and return the bytes to store. Returns the path of model.json."""
    topology = json_format.MessageToDict(graph_def)
    entries, data = [], b""
    for node in topology["node"]:
        if node["op"] != "Const":
            continue
        value = tf.make_ndarray(next(n for n in graph_def.node if n.name == node["name"]).attr["value"].tensor)
        entry = {"name": node["name"], "shape": list(value.shape), "dtype": str(value.dtype)}
        stored = edit_entry(entry, value) if edit_entry else None
        data += stored if stored is not None else value.astype(value.dtype.newbyteorder("<")).tobytes()
        entries.append(entry)
        tensor = node["attr"]["value"]["tensor"]
        node["attr"]["value"]["tensor"] = {"dtype": tensor["dtype"], "tensorShape": tensor.get("tensorShape", {})}
    paths = []
    for index, start in enumerate(range(0, len(data), shard_bytes)):
        paths.append(f"group1-shard{index + 1}")
        with open(os.path.join(directory, paths[-1]), "wb") as f:
            f.write(data[start : start + shard_bytes])
    model_json = os.path.join(directory, "model.json")
    with open(model_json, "w") as f:
        json.dump({"modelTopology": topology, "weightsManifest": [{"paths": paths, "weights": entries}]}, f)
    return model_json


def test_round_trip_of_a_written_model_runs_like_the_original(tmp_path):
    graph_def = _graph_def()
    model_json = write_tfjs_model(str(tmp_path), graph_def)
    assert len([p for p in os.listdir(tmp_path) if p.startswith("group1-shard")]) > 2
    model = read_tfjs_graph_model(str(tmp_path))
    assert model.weights.path == model_json
    assert set(model.weights) == {
        "mul_1/x", "sub/y", "MobilenetV2/Conv/Conv2D/merged_input", "logits/semantic/biases", "ArgMax/dimension"
    }
    np.testing.assert_array_equal(model.weights["MobilenetV2/Conv/Conv2D/merged_input"], KERNEL)
    assert model.weights["ArgMax/dimension"].dtype == np.int32 and model.weights["ArgMax/dimension"] == 3
    image = RNG.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    fetches = ["logits/semantic/BiasAdd:0", "SemanticPredictions:0"]
    got, expected = run_image_graph(model.graph_def, image, fetches), run_image_graph(graph_def, image, fetches)
    for name in fetches:
        np.testing.assert_array_equal(got[name], expected[name])


def test_quantized_weights_are_dequantized(tmp_path):
    def quantize(entry, value):
        if entry["name"] == "MobilenetV2/Conv/Conv2D/merged_input":
            low, scale = float(value.min()), float(value.max() - value.min()) / 255
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": low}
            return np.round((value - low) / scale).astype(np.uint8).tobytes()
        if entry["name"] == "logits/semantic/biases":
            entry["quantization"] = {"dtype": "float16"}
            return value.astype("<f2").tobytes()
        return None

    write_tfjs_model(str(tmp_path), _graph_def(), edit_entry=quantize)
    weights = read_tfjs_graph_model(str(tmp_path)).weights
    kernel = weights["MobilenetV2/Conv/Conv2D/merged_input"]
    assert kernel.dtype == np.float32
    np.testing.assert_allclose(kernel, KERNEL, atol=(KERNEL.max() - KERNEL.min()) / 255)
    np.testing.assert_allclose(weights["logits/semantic/biases"], BIASES, rtol=1e-3)


def test_truncated_shard_names_file_and_byte_counts(tmp_path):
    model_json = write_tfjs_model(str(tmp_path), _graph_def(), shard_bytes=1 << 20)
    with open(tmp_path / "group1-shard1", "r+b") as f:
        f.truncate(100)
    needed = 3 * 4 + KERNEL.nbytes + BIASES.nbytes  # scalars mul_1/x, sub/y, ArgMax/dimension
    with pytest.raises(SourceFileError) as error:
        read_tfjs_graph_model(model_json)
    assert str(error.value) == (
        f"weight group 1 of {model_json} needs {needed} bytes, its shards hold 100 (group1-shard1: 100 bytes)"
    )


def test_missing_shard_and_missing_json_are_named(tmp_path):
    write_tfjs_model(str(tmp_path), _graph_def())
    os.remove(tmp_path / "group1-shard2")
    with pytest.raises(SourceFileError, match=r"weight shard .*group1-shard2 listed in .*model.json does not exist"):
        read_tfjs_graph_model(str(tmp_path))
    with pytest.raises(SourceFileError, match=r"no TF.js model file at .*nothing/model.json"):
        read_tfjs_graph_model(str(tmp_path / "nothing" / "model.json"))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dtype": "bool"}, r"weight 'mul_1/x' in .*model.json has dtype 'bool'; supported: \['float32', 'int32'\]"),
        ({"quantization": {"dtype": "int4"}}, r"weight 'mul_1/x' in .*: quantization 'int4' of 'float32' is not supp"),
    ],
)
def test_unsupported_dtypes_are_one_line_errors(tmp_path, change, message):
    def edit(entry, value):
        if entry["name"] == "mul_1/x":
            entry.update(change)
        return None

    write_tfjs_model(str(tmp_path), _graph_def(), edit_entry=edit)
    with pytest.raises(SourceFileError, match=message):
        read_tfjs_graph_model(str(tmp_path))


def test_manifest_shape_that_differs_from_the_const_node_is_a_shape_error(tmp_path):
    def flatten(entry, value):
        if entry["name"] == "logits/semantic/biases":
            entry["shape"] = [2, 2]
        return None

    write_tfjs_model(str(tmp_path), _graph_def(), edit_entry=flatten)
    message = r"tensor 'logits/semantic/biases' has shape \(2, 2\), expected \(4,\), in .*model.json"
    with pytest.raises(TensorShapeError, match=message):
        read_tfjs_graph_model(str(tmp_path))


def test_const_node_without_weight_is_named(tmp_path):
    model_json = write_tfjs_model(str(tmp_path), _graph_def())
    with open(model_json) as f:
        model = json.load(f)
    model["modelTopology"]["node"].append({"name": "orphan", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}})
    with open(model_json, "w") as f:
        json.dump(model, f)
    with pytest.raises(SourceFileError, match=r"Const node 'orphan' of .*model.json has no weight in the weightsMan"):
        read_tfjs_graph_model(model_json)


# The official deeplabv3_mnv2_pascal_trainval, converted by tensorflowjs 0.8.0.


@pytest.fixture(scope="module")
def official(tfjs_model_dir):
    with open(os.path.join(tfjs_model_dir, "model.json")) as f:
        model_json = json.load(f)
    return model_json, read_tfjs_graph_model(tfjs_model_dir)


def test_official_weights_are_the_manifest_tensors_in_shard_order(official, tfjs_model_dir):
    model_json, model = official
    (group,) = model_json["weightsManifest"]
    assert len(model.weights) == len(group["weights"]) == 148
    assert {e["name"]: tuple(e["shape"]) for e in group["weights"]} == {n: v.shape for n, v in model.weights.items()}
    # The first and last weights, read straight from the first and last shard files.
    first, last = group["weights"][0], group["weights"][-1]
    assert first["name"] == "image_pooling/Conv2D/merged_input" and first["dtype"] == "float32"
    head = np.fromfile(os.path.join(tfjs_model_dir, group["paths"][0]), "<f4", count=320 * 256)
    np.testing.assert_array_equal(model.weights[first["name"]].ravel(), head)
    tail_bytes = int(np.prod(last["shape"])) * 4
    with open(os.path.join(tfjs_model_dir, group["paths"][-1]), "rb") as f:
        tail = np.frombuffer(f.read()[-tail_bytes:], "<i4" if last["dtype"] == "int32" else "<f4")
    np.testing.assert_array_equal(model.weights[last["name"]].ravel(), tail)
    assert sum(v.size for v in model.weights.values() if v.dtype == np.float32) > 2_000_000


def test_official_graph_def_has_every_node_with_its_constant(official):
    model_json, model = official
    assert [n.name for n in model.graph_def.node] == [n["name"] for n in model_json["modelTopology"]["node"]]
    consts = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in model.graph_def.node if n.op == "Const"}
    assert consts.keys() == model.weights.keys()
    np.testing.assert_array_equal(consts["logits/semantic/biases"], model.weights["logits/semantic/biases"])
    assert consts["sub_1/x"] == 513 and consts["Reshape"].ravel().tolist() == [127.5] * 3


def test_official_graph_segments_the_bird(official, bird):
    _, model = official
    image, mask = bird
    out = run_image_graph(
        model.graph_def, image, ["SemanticPredictions:0", "logits/semantic/BiasAdd:0", "sub_7:0"], "official"
    )
    labels = out["SemanticPredictions:0"]
    assert labels.shape == (1, 513, 513) and labels.dtype == np.int64
    assert out["logits/semantic/BiasAdd:0"].shape == (1, 65, 65, 21)
    assert (labels[0] == mask).mean() >= 0.95
    assert (labels[0][mask == 3] == 3).mean() >= 0.95  # the bird itself
    # The graph's preprocessing is x * 2/255 - 1 (sub_7 feeds the first convolution).
    np.testing.assert_allclose(out["sub_7:0"][0], image * (2.0 / 255.0) - 1.0, atol=1e-6)


def test_official_graph_pads_small_images_to_513_and_crops_the_labels(official, bird):
    _, model = official
    small = np.asarray(Image.fromarray(bird[0]).resize((200, 160), Image.BILINEAR))
    out = run_image_graph(model.graph_def, small, ["SemanticPredictions:0", "sub_7:0"])
    assert out["SemanticPredictions:0"].shape == (1, 160, 200)
    normalised = out["sub_7:0"][0]
    assert normalised.shape == (513, 513, 3)
    np.testing.assert_allclose(normalised[:160, :200], small * (2.0 / 255.0) - 1.0, atol=1e-6)
    assert np.all(normalised[160:] == 0.0) and np.all(normalised[:, 200:] == 0.0)  # padded with 127.5 -> 0
