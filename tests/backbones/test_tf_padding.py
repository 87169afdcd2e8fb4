"""TF1 slim's conventions as backbone options: TF's run-time "SAME" padding of strided convs
(`padding="tf_same"`) and slim's channel rounding (`channel_divisor`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.backbones import build_backbone, feature_channels, tf_same_padding
from deeplab_tf.backbones.keras_applications import mobilenet_v2_widths


def _keras_padded(depthwise: bool) -> keras.Model:
    """Keras Applications' pattern at an unknown size: pad (0, 1) then a stride-2 "valid" 3x3."""
    images = keras.Input((None, None, 2))
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(images)
    conv = (keras.layers.DepthwiseConv2D(3, strides=2, name="conv") if depthwise
            else keras.layers.Conv2D(4, 3, strides=2, name="conv"))
    return keras.Model(images, conv(x))


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("size", [9, 8, 7, 10])
def test_strided_convs_pad_as_tf_same_at_odd_and_even_sizes(depthwise, size):
    model = _keras_padded(depthwise)
    same = tf_same_padding(model)
    assert [layer.name for layer in same.layers[1:]] == ["conv"] and same.get_layer("conv").padding == "same"
    x = tf.random.stateless_normal((1, size, size + 2, 2), seed=(size, 1))
    kernel = same.get_layer("conv").weights[0]
    np.testing.assert_array_equal(kernel, model.get_layer("conv").weights[0])
    if depthwise:
        expected = tf.nn.depthwise_conv2d(x, kernel, strides=(1, 2, 2, 1), padding="SAME")
    else:
        expected = tf.nn.conv2d(x, kernel, strides=2, padding="SAME")
    expected = expected + same.get_layer("conv").weights[1]
    np.testing.assert_allclose(same(x), expected, rtol=0, atol=1e-5)
    if size % 2:  # Keras' (0, 1) at an unknown size is one output pixel short of SAME's (1, 1)
        assert model(x).shape[1:3] == (size // 2, size // 2 + 1) != expected.shape[1:3]


def test_mobilenet_v2_with_tf_same_matches_sizes_tf_would_give():
    """513 -> 257 -> 129 -> 65 at output stride 8 (TF SAME: ceil(n / 2)), with no padding layer left."""
    backbone = build_backbone("mobilenet_v2", output_stride=8, alpha=0.35, padding="tf_same")
    assert not [layer.name for layer in backbone.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    features = backbone(tf.zeros((1, 513, 513, 3)))
    assert features["P2"].shape[1:3] == (129, 129) and features["P5"].shape[1:3] == (65, 65)


def test_a_model_without_padding_layers_is_returned_as_is():
    images = keras.Input((None, None, 3))
    model = keras.Model(images, keras.layers.Conv2D(2, 3, strides=2, padding="same")(images))
    assert tf_same_padding(model) is model


OFFICIAL_DM05 = {  # official_notes 2.3, read from the TFLite file
    "Conv1": 16, "expanded_conv_project": 8, "block_1_expand": 48, "block_1_project": 12, "block_2_expand": 72,
    "block_2_project": 12, "block_3_expand": 72, "block_3_project": 16, "block_6_project": 32, "block_7_expand": 192,
    "block_10_project": 48, "block_11_expand": 288, "block_13_project": 80, "block_14_expand": 480,
    "block_16_project": 160,
}


def test_divisor_1_gives_the_official_depth_0_5_widths():
    widths = mobilenet_v2_widths(0.5, 1)
    assert {name: widths[name] for name in OFFICIAL_DM05} == OFFICIAL_DM05


@pytest.mark.parametrize("alpha", [0.35, 0.5, 0.75, 1.0, 1.3, 1.4])
def test_divisor_8_gives_keras_applications_widths(alpha):
    stock = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=alpha, input_shape=(32, 32, 3))
    for name, filters in mobilenet_v2_widths(alpha, 8).items():
        assert stock.get_layer(name).filters == filters, name


def test_a_divisor_1_backbone_has_those_widths_and_keras_names():
    backbone = build_backbone("mobilenet_v2", output_stride=16, alpha=0.5, channel_divisor=1)
    assert backbone.get_layer("block_1_project").filters == 12
    features = backbone(tf.zeros((1, 33, 33, 3)))
    channels = {level: int(value.shape[-1]) for level, value in features.items()}
    assert channels == feature_channels("mobilenet_v2", 0.5, channel_divisor=1) == {"P2": 12, "P3": 16, "P4": 48,
                                                                                     "P5": 160}


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="resnet50", channel_divisor=1), "'resnet50' rounds no widths"),
    (dict(name="mobilenet_v2", channel_divisor=0), "`channel_divisor` must be an int >= 1"),
    (dict(name="mobilenet_v2", channel_divisor=1, weights="w.h5"), "ImageNet weights exist only for Keras' widths"),
    (dict(name="xception65", padding="tf_same"), "`padding` must be one of"),
    (dict(name="mobilenet_v2", padding="same"), "`padding` must be one of"),
])
def test_options_a_backbone_cannot_build_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match) as raised:
        build_backbone(**kwargs)
    assert "\n" not in str(raised.value)
