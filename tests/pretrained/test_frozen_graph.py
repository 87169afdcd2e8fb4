import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.pretrained.frozen_graph import read_frozen_graph, run_image_graph
from deeplab_tf.pretrained.source_tensors import MissingTensorError, SourceFileError

KERNEL = np.random.default_rng(0).normal(size=(1, 1, 3, 5)).astype(np.float32)
BIASES = np.linspace(-1.0, 1.0, 5).astype(np.float32)


def _deeplab_like_graph_def() -> tf.compat.v1.GraphDef:
    """ImageTensor uint8 -> x * 2/255 - 1 -> 1x1 conv (+ biases) -> argmax, with official names."""
    with tf.Graph().as_default() as graph:
        image = tf.compat.v1.placeholder(tf.uint8, [1, None, None, 3], name="ImageTensor")
        x = tf.cast(image, tf.float32) * (2.0 / 255.0) - 1.0
        kernel = tf.constant(KERNEL, name="MobilenetV2/Conv/weights")
        biases = tf.constant(BIASES, name="logits/semantic/biases")
        logits = tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME", name="logits/semantic/Conv2D"), biases)
        tf.identity(logits, name="logits/semantic/BiasAdd")
        tf.argmax(logits, 3, name="SemanticPredictions")
    return graph.as_graph_def()


@pytest.fixture
def frozen_pb(tmp_path):
    tf.io.write_graph(_deeplab_like_graph_def(), str(tmp_path), "frozen_inference_graph.pb", as_text=False)
    return str(tmp_path / "frozen_inference_graph.pb")


def test_reads_the_float_constants_by_node_name(frozen_pb):
    frozen = read_frozen_graph(frozen_pb)
    # Float constants only: the preprocessing scalars are in, ArgMax's int32 axis is not.
    assert set(frozen.weights) == {"MobilenetV2/Conv/weights", "logits/semantic/biases", "mul/y", "sub/y"}
    assert any(node.name == "SemanticPredictions/dimension" for node in frozen.graph_def.node)
    assert frozen.weights.path == frozen_pb
    np.testing.assert_array_equal(frozen.weights.tensor("MobilenetV2/Conv/weights", (1, 1, 3, 5)), KERNEL)
    np.testing.assert_array_equal(frozen.weights["logits/semantic/biases"], BIASES)
    assert any(node.op == "Placeholder" for node in frozen.graph_def.node)


def test_runs_the_graph_on_a_uint8_image(frozen_pb):
    image = np.random.default_rng(1).integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    out = run_image_graph(
        read_frozen_graph(frozen_pb).graph_def, image, ["logits/semantic/BiasAdd:0", "SemanticPredictions:0"]
    )
    expected_logits = np.einsum("hwc,ck->hwk", image * (2.0 / 255.0) - 1.0, KERNEL[0, 0]) + BIASES
    np.testing.assert_allclose(out["logits/semantic/BiasAdd:0"][0], expected_logits, atol=1e-5)
    assert out["SemanticPredictions:0"].shape == (1, 7, 9) and out["SemanticPredictions:0"].dtype == np.int64
    np.testing.assert_array_equal(out["SemanticPredictions:0"][0], expected_logits.argmax(-1))
    batched = run_image_graph(read_frozen_graph(frozen_pb).graph_def, image[None])
    np.testing.assert_array_equal(batched["SemanticPredictions:0"], out["SemanticPredictions:0"])


def test_unknown_fetch_names_tensor_source_and_closest_nodes(frozen_pb):
    with pytest.raises(MissingTensorError) as error:
        run_image_graph(
            read_frozen_graph(frozen_pb).graph_def, np.zeros((4, 4, 3), np.uint8), ["SemanticPrediction:0"], frozen_pb
        )
    message = str(error.value)
    assert message.startswith(f"no tensor 'SemanticPrediction:0' in the graph of {frozen_pb}")
    assert "'SemanticPredictions'" in message and "\n" not in message


def test_rejects_an_image_that_is_not_uint8_rgb(frozen_pb):
    graph_def = read_frozen_graph(frozen_pb).graph_def
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\].*float32 \(4, 4, 3\)"):
        run_image_graph(graph_def, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"uint8 \(4, 4\)"):
        run_image_graph(graph_def, np.zeros((4, 4), np.uint8))


def test_missing_or_malformed_file_is_a_one_line_error(tmp_path):
    with pytest.raises(SourceFileError, match="no frozen graph file at .*nothing.pb"):
        read_frozen_graph(str(tmp_path / "nothing.pb"))
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\xfe not a protobuf \x00\x01")
    with pytest.raises(SourceFileError) as error:
        read_frozen_graph(str(garbage))
    assert str(garbage) in str(error.value) and "\n" not in str(error.value)
