"""Official TF1 variable names -> deeplab-tf's DeepLabv3 MobileNetV2 and DeepLabv3+ Xception-65.

No official TF1 checkpoint or frozen graph is available here: the tests write them
(`tf.compat.v1.train.Saver`, `convert_variables_to_constants`) under the official variable names,
with random values of our models' shapes. The expected names below are read from tensorflow/models
(research/deeplab/model.py, core/xception.py; slim's mobilenet_v2.py), not from `tf1_names`.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import experiments
from deeplab_tf.config import ModelConfig
from deeplab_tf.models import build_model
from deeplab_tf.pretrained.frozen_graph import frozen_variables, read_frozen_graph
from deeplab_tf.pretrained.official_weights import UnusedTensorError
from deeplab_tf.pretrained.source_tensors import MissingTensorError, SourceTensors, TensorShapeError
from deeplab_tf.pretrained.tf1_checkpoint import read_tf1_checkpoint
from deeplab_tf.pretrained.tf1_deeplab import load_tf1_weights
from deeplab_tf.pretrained.tf1_names import official_variable_names

MOBILENET_V2 = ModelConfig(arch="deeplab_v3", backbone="mobilenet_v2", backbone_alpha=1.0, output_stride=8,
                           atrous_rates=(), aspp_filters=256)
# The voc_v3plus_xception65 experiment's model with a narrow head (the names are what matter).
XCEPTION_65 = dataclasses.replace(experiments.get_experiment("voc_v3plus_xception65").model,
                                  aspp_filters=16, low_level_filters=8, decoder_filters=16)
MOBILENET_V2_NAMES = {  # Keras variable path -> official variable, by hand
    "Conv1/kernel": "MobilenetV2/Conv/weights",
    "bn_Conv1/moving_variance": "MobilenetV2/Conv/BatchNorm/moving_variance",
    "expanded_conv_depthwise/kernel": "MobilenetV2/expanded_conv/depthwise/depthwise_weights",
    "expanded_conv_project_BN/beta": "MobilenetV2/expanded_conv/project/BatchNorm/beta",
    "block_3_expand_BN/gamma": "MobilenetV2/expanded_conv_3/expand/BatchNorm/gamma",
    "block_16_depthwise/kernel": "MobilenetV2/expanded_conv_16/depthwise/depthwise_weights",
    "block_16_project/kernel": "MobilenetV2/expanded_conv_16/project/weights",
    "aspp_1x1_conv/kernel": "aspp0/weights",
    "aspp_pool_bn/beta": "image_pooling/BatchNorm/beta",
    "aspp_project_conv/kernel": "concat_projection/weights",
    "aspp_project_bn/moving_mean": "concat_projection/BatchNorm/moving_mean",
    "logits/kernel": "logits/semantic/weights",
    "logits/bias": "logits/semantic/biases",
}
MODULE = "xception_65/{}/xception_module"
XCEPTION_65_NAMES = {
    "entry_flow_conv1_1/kernel": "xception_65/entry_flow/conv1_1/weights",
    "entry_flow_conv1_2_bn/gamma": "xception_65/entry_flow/conv1_2/BatchNorm/gamma",
    "entry_flow_block1_unit1_sepconv1/depthwise_kernel":
        MODULE.format("entry_flow/block1/unit_1") + "/separable_conv1_depthwise/depthwise_weights",
    "entry_flow_block1_unit1_sepconv1/batch_norm/moving_mean":
        MODULE.format("entry_flow/block1/unit_1") + "/separable_conv1_depthwise/BatchNorm/moving_mean",
    "entry_flow_block1_unit1_sepconv1/pointwise_kernel":
        MODULE.format("entry_flow/block1/unit_1") + "/separable_conv1_pointwise/weights",
    "entry_flow_block1_unit1_sepconv1_pointwise_bn/gamma":
        MODULE.format("entry_flow/block1/unit_1") + "/separable_conv1_pointwise/BatchNorm/gamma",
    "entry_flow_block3_unit1_shortcut/kernel": MODULE.format("entry_flow/block3/unit_1") + "/shortcut/weights",
    "exit_flow_block1_unit1_shortcut_bn/beta": MODULE.format("exit_flow/block1/unit_1") + "/shortcut/BatchNorm/beta",
    "middle_flow_block1_unit16_sepconv3/pointwise_kernel":
        MODULE.format("middle_flow/block1/unit_16") + "/separable_conv3_pointwise/weights",
    "exit_flow_block2_unit1_sepconv3_pointwise_bn/moving_variance":
        MODULE.format("exit_flow/block2/unit_1") + "/separable_conv3_pointwise/BatchNorm/moving_variance",
    "aspp_1x1_bn/gamma": "aspp0/BatchNorm/gamma",
    "aspp_atrous2_conv/depthwise_kernel": "aspp2_depthwise/depthwise_weights",
    "aspp_atrous2_conv/batch_norm/beta": "aspp2_depthwise/BatchNorm/beta",
    "aspp_atrous3_conv/pointwise_kernel": "aspp3_pointwise/weights",
    "aspp_atrous3_bn/gamma": "aspp3_pointwise/BatchNorm/gamma",
    "aspp_pool_conv/kernel": "image_pooling/weights",
    "decoder_low_level_conv/kernel": "decoder/feature_projection0/weights",
    "decoder_conv1_conv/batch_norm/beta": "decoder/decoder_conv0_depthwise/BatchNorm/beta",
    "decoder_conv2_conv/pointwise_kernel": "decoder/decoder_conv1_pointwise/weights",
    "decoder_conv2_bn/moving_mean": "decoder/decoder_conv1_pointwise/BatchNorm/moving_mean",
    "logits/bias": "logits/semantic/biases",
}
# Official variables: MobileNetV2 51 convs + BN, head 3 convs + BN, logits 2. Xception-65: root
# 2 x 5; 4 modules with a shortcut conv (35) and 17 without (30); ASPP 5 + 3 x 10 + 5 + 5; decoder
# 5 + 10 + 10; logits 2.
COUNTS = {"mobilenet_v2": 51 * 5 + 3 * 5 + 2, "xception65": 10 + 4 * 35 + 17 * 30 + 45 + 25 + 2}


def _random_official(model: keras.Model, seed: int) -> dict[str, np.ndarray]:
    """Returns {official name: random float32 array of the model weight's shape}; batch norm
    scales and variances in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    shapes = {variable.path: tuple(variable.shape) for variable in model.weights}
    values = {}
    for path, name in official_variable_names(model).items():
        shape = shapes[path]
        positive = name.endswith(("/gamma", "/moving_variance"))
        values[name] = (rng.uniform(0.5, 1.5, shape) if positive else rng.normal(0, 0.5, shape)).astype(np.float32)
    return values


def _graph_variables(session, tensors: dict, use_resource: bool) -> list:
    """Creates one variable per tensor in the default graph, named as the tensor and set to its
    value in `session`; returns the variables."""
    feeds = {tf.compat.v1.placeholder(tf.float32, value.shape): value for value in tensors.values()}
    variables = [tf.compat.v1.Variable(feed, name=name, use_resource=use_resource)
                 for name, feed in zip(tensors, feeds)]
    session.run(tf.compat.v1.variables_initializer(variables), feeds)
    return variables


def write_checkpoint(prefix: str, tensors: dict) -> str:
    """Saves `tensors` as DeepLab's train.py does (plus a Momentum slot and global_step, which
    the reader skips); returns the checkpoint prefix."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        _graph_variables(session, {**tensors, "aspp0/weights/Momentum": tensors["aspp0/weights"]}, False)
        session.run(tf.compat.v1.train.get_or_create_global_step().initializer)
        return tf.compat.v1.train.Saver().save(session, prefix, global_step=30000)


def write_frozen_graph(path: str, tensors: dict, use_resource: bool) -> None:
    """Writes a GraphDef frozen as DeepLab's export_model.py does (`convert_variables_to_constants`;
    TF1's ref variables, or resource variables), with `tensors` as variables and a
    preprocessing constant `mul_1/x`."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        variables = _graph_variables(session, tensors, use_resource)
        scale = tf.constant(np.float32(2.0 / 255.0), name="mul_1/x")
        tf.multiply(tf.add_n([tf.reduce_sum(variable) for variable in variables]), scale, name="output")
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["output"])
    with open(path, "wb") as f:
        f.write(frozen.SerializeToString())


def _weights(model: keras.Model) -> dict[str, np.ndarray]:
    """Returns {variable path: copy of its value} for every weight of `model`."""
    return {variable.path: np.array(variable) for variable in model.weights}


def _conv_bn_relu(images, official, scope, max_value, epsilon=1e-3):
    """NumPy: the official `scope`'s 3x3 conv (stride 2, padding 1, as TF's SAME at odd sizes)
    -> inference batch norm -> ReLU clipped at `max_value`."""
    kernel = official[f"{scope}/weights"]
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(np.float64)
    size = (padded.shape[1] - 3) // 2 + 1
    patches = np.stack([padded[:, i:i + 2 * size:2, j:j + 2 * size:2] for i in range(3) for j in range(3)], axis=3)
    y = np.einsum("bhwpc,pco->bhwo", patches, kernel.reshape(9, *kernel.shape[2:]))
    bn = {v: official[f"{scope}/BatchNorm/{v}"] for v in ("gamma", "beta", "moving_mean", "moving_variance")}
    y = (y - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + epsilon) * bn["gamma"] + bn["beta"]
    return np.clip(y, 0, max_value)


def _layer_output(model: keras.Model, backbone: str, layer: str, images: np.ndarray) -> np.ndarray:
    """Returns the inference output of `layer` of the sub-model `backbone` for `images`."""
    sub = model.get_layer(backbone)
    return np.asarray(keras.Model(sub.input, sub.get_layer(layer).output)(images, training=False))


def _written(directory, config: ModelConfig, seed: int):
    """Returns (model of `config`, official tensors written, SourceTensors read back from the TF1
    checkpoint written in `directory`)."""
    model = build_model(config, 21).model
    official = _random_official(model, seed)
    return model, official, read_tf1_checkpoint(write_checkpoint(str(directory / "model.ckpt"), official))


@pytest.fixture(scope="module")
def mobilenet_v2(tmp_path_factory):
    return _written(tmp_path_factory.mktemp("mnv2"), MOBILENET_V2, seed=1)


@pytest.fixture(scope="module")
def xception65(tmp_path_factory):
    return _written(tmp_path_factory.mktemp("xception"), XCEPTION_65, seed=2)


@pytest.mark.parametrize("backbone, expected", [("mobilenet_v2", MOBILENET_V2_NAMES),
                                               ("xception65", XCEPTION_65_NAMES)])
def test_official_names(backbone, expected, request):
    model = request.getfixturevalue(backbone)[0]
    names = official_variable_names(model)
    assert {path: names[path] for path in expected} == expected
    assert len(names) == len(set(names.values())) == len(model.weights) == COUNTS[backbone]


def test_mobilenet_v2_names_do_not_depend_on_output_stride(mobilenet_v2):
    output_stride_16 = build_model(dataclasses.replace(MOBILENET_V2, output_stride=16), 21).model
    assert official_variable_names(output_stride_16) == official_variable_names(mobilenet_v2[0])


def test_official_depth_05_widths(tmp_path):
    """The `voc_v3_mnv2_dm05_official` network (DeepLab's `divisible_by=1` widths) loads."""
    config = experiments.get_experiment("voc_v3_mnv2_dm05_official").model
    model, official, tensors = _written(tmp_path, config, 4)
    # Widths of the official depth-0.5 TFLite file (depth 0.5 x 24 = 12; Keras' alpha=0.5 has 16).
    assert official["MobilenetV2/expanded_conv_1/project/weights"].shape == (1, 1, 48, 12)
    assert official["MobilenetV2/expanded_conv_16/project/weights"].shape == (1, 1, 480, 160)
    assert load_tf1_weights(model, tensors) == COUNTS["mobilenet_v2"]


def test_projection_kept_without_image_pooling(tmp_path):
    model, official, tensors = _written(tmp_path, dataclasses.replace(MOBILENET_V2, aspp_image_pooling=False), 5)
    assert load_tf1_weights(model, tensors) == COUNTS["mobilenet_v2"] - 5
    np.testing.assert_array_equal(_weights(model)["aspp_project_conv/kernel"], official["concat_projection/weights"])


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "xception65"])
def test_checkpoint_sets_every_weight(backbone, request):
    model, official, tensors = request.getfixturevalue(backbone)
    assert load_tf1_weights(model, tensors) == COUNTS[backbone]
    weights, names = _weights(model), official_variable_names(model)
    for path, name in names.items():
        if name != "concat_projection/weights":
            np.testing.assert_array_equal(weights[path], official[name], err_msg=path)
    # Official concat [image_pooling, aspp0, aspp1, ...], ours [aspp0, aspp1, ..., pooling].
    projection, ours = official["concat_projection/weights"], weights["aspp_project_conv/kernel"]
    filters = model.get_layer("aspp").get_layer("aspp_pool_conv").filters
    np.testing.assert_array_equal(ours[:, :, :filters], projection[:, :, filters:2 * filters])  # aspp0
    np.testing.assert_array_equal(ours[:, :, -filters:], projection[:, :, :filters])  # image pooling
    np.testing.assert_array_equal(ours[:, :, filters:-filters], projection[:, :, 2 * filters:])  # atrous branches


@pytest.mark.parametrize("backbone, sub_model, layer, scope, max_value", [
    ("mobilenet_v2", "mobilenet_v2_os8", "Conv1_relu", "MobilenetV2/Conv", 6.0),
    ("xception65", "xception65_os16", "entry_flow_conv1_1_relu", "xception_65/entry_flow/conv1_1", np.inf),
])
def test_first_unit_computes_official_conv_bn(backbone, sub_model, layer, scope, max_value, request):
    model, official, tensors = request.getfixturevalue(backbone)
    load_tf1_weights(model, tensors)
    images = np.random.default_rng(3).uniform(-1, 1, (1, 9, 9, 3)).astype(np.float32)
    expected = _conv_bn_relu(images, official, scope, max_value)
    np.testing.assert_allclose(_layer_output(model, sub_model, layer, images), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("use_resource", [False, True])
def test_frozen_graph_loads_like_the_checkpoint(mobilenet_v2, tmp_path, use_resource):
    model, official, _ = mobilenet_v2
    path = str(tmp_path / "frozen_inference_graph.pb")
    write_frozen_graph(path, official, use_resource)
    frozen = read_frozen_graph(path)
    assert "mul_1/x" in frozen.weights  # a float constant, but no variable
    variables = frozen_variables(frozen.graph_def, path)
    assert set(variables) == set(official)
    assert load_tf1_weights(model, variables) == COUNTS["mobilenet_v2"]
    np.testing.assert_array_equal(_weights(model)["block_7_depthwise/kernel"],
                                  official["MobilenetV2/expanded_conv_7/depthwise/depthwise_weights"])


def _edited(official: dict, drop=(), add=None) -> SourceTensors:
    """Returns `official` without the names in `drop`, with the tensors of `add`, as read from a file."""
    tensors = {name: value for name, value in official.items() if name not in drop}
    return SourceTensors({**tensors, **(add or {})}, "/ckpt/model.ckpt-30000")


@pytest.mark.parametrize("edit, error, parts", [
    (dict(drop=("MobilenetV2/expanded_conv_5/project/BatchNorm/gamma",)), MissingTensorError,
     ["'MobilenetV2/expanded_conv_5/project/BatchNorm/gamma'", "/ckpt/model.ckpt-30000"]),
    (dict(add={"aspp0/weights": np.zeros((1, 1, 320, 128), np.float32)}), TensorShapeError,
     ["'aspp0/weights'", "(1, 1, 320, 128)", "(1, 1, 320, 256)", "/ckpt/model.ckpt-30000"]),
    (dict(add={"aspp1/weights": np.zeros((3, 3, 320, 256), np.float32)}), UnusedTensorError,
     ["'aspp1/weights'", "/ckpt/model.ckpt-30000"]),
])
def test_errors_name_tensor_shapes_and_file_and_change_nothing(mobilenet_v2, edit, error, parts):
    model, official, _ = mobilenet_v2
    before = _weights(model)
    with pytest.raises(error) as raised:
        load_tf1_weights(model, _edited(official, **edit))
    message = str(raised.value)
    assert "\n" not in message and all(part in message for part in parts), message
    after = _weights(model)
    assert all(np.array_equal(before[path], after[path]) for path in before)


def test_skip_classifier_keeps_another_number_of_classes(mobilenet_v2):
    official = mobilenet_v2[1]
    model = build_model(MOBILENET_V2, 5).model
    logits = [np.array(w) for w in model.get_layer("logits").weights]
    with pytest.raises(TensorShapeError, match="logits/semantic/weights"):
        load_tf1_weights(model, _edited(official))
    assert load_tf1_weights(model, _edited(official), skip_classifier=True) == COUNTS["mobilenet_v2"] - 2
    assert all(np.array_equal(w, np.array(v)) for w, v in zip(logits, model.get_layer("logits").weights))
    np.testing.assert_array_equal(_weights(model)["aspp_1x1_conv/kernel"], official["aspp0/weights"])


def test_other_models_fail_in_one_line(mobilenet_v2):
    resnet = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv1_conv")])
    with pytest.raises(ValueError, match="no MobileNetV2 .* or Xception-65"):
        load_tf1_weights(resnet, _edited(mobilenet_v2[1]))
    with_atrous = build_model(dataclasses.replace(MOBILENET_V2, atrous_rates=(6,)), 21).model
    with pytest.raises(MissingTensorError, match="'aspp1/weights'"):  # the official model has no such branch
        load_tf1_weights(with_atrous, _edited(mobilenet_v2[1]))
