"""Strides, dilation rates and paddings chosen by the DeepLab output-stride rule."""

import keras
import numpy as np
import pytest

from deeplab_tf.backbones import build_backbone
from deeplab_tf.backbones import dilate_to_output_stride
from deeplab_tf.backbones import dilation_plan
from deeplab_tf.backbones.output_stride import copy_weights_by_name
from deeplab_tf.layers import ATROUS_IMPLEMENTATIONS
from deeplab_tf.layers import AtrousConv2D

L = keras.layers


def toy_model():
    """VGG-like net: strides 2 (valid pool), 4 (conv), 8 (same pool), 16 (valid pool), 32."""
    inputs = keras.Input((None, None, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(4, 3, strides=2, padding="same", name="conv2")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    x = L.Conv2D(4, 3, padding="same", name="conv3")(x)
    x = L.MaxPooling2D(2, name="pool3")(x)
    x = L.Conv2D(4, 3, padding="same", name="conv4")(x)
    x = L.Conv2D(4, 3, strides=2, padding="same", name="conv5")(x)
    x = L.Conv2D(4, 3, padding="same", name="conv6")(x)
    x = L.Conv2D(4, 1, name="conv7")(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("output_stride, expected", [
    (32, {}),
    (16, {"conv5": {"strides": (1, 1)}, "conv6": {"dilation_rate": (2, 2)}}),
    (8, {
        "pool3": {"strides": (1, 1), "padding": "same"},  # valid pool, no pad layer: "same"
        "conv4": {"dilation_rate": (2, 2)},
        "conv5": {"strides": (1, 1), "dilation_rate": (2, 2)},
        "conv6": {"dilation_rate": (4, 4)},  # conv7 is 1x1: never dilated
    }),
])
def test_plan_of_generic_model(output_stride, expected):
    assert dilation_plan(toy_model(), output_stride) == expected


def test_toy_model_dilated_convs_become_atrous_layers(set_implementation):
    """Dilated Conv2D layers become AtrousConv2D of the same rate and default implementation;
    every implementation set on them afterwards computes the same."""
    atrous = dilate_to_output_stride(toy_model(), 8)
    replaced = {l.name: l.rate for l in atrous.layers if isinstance(l, AtrousConv2D)}
    assert replaced == {"conv4": 2, "conv5": 2, "conv6": 4}
    assert all(l.implementation == "auto" for l in atrous.layers if l.name in replaced)
    x = np.random.default_rng(0).normal(size=(2, 40, 40, 3)).astype("float32")
    native = np.asarray(set_implementation(atrous, "native")(x))
    assert native.shape == (2, 5, 5, 4)
    for implementation in ATROUS_IMPLEMENTATIONS:
        actual = set_implementation(atrous, implementation)(x)
        np.testing.assert_allclose(actual, native, rtol=1e-5, atol=1e-5, err_msg=implementation)


def test_merging_inputs_at_different_strides_is_refused():
    inputs = keras.Input((None, None, 3))
    x = L.Conv2D(4, 3, strides=8, padding="same")(inputs)
    merged = L.Add(name="merge")([L.Conv2D(4, 3, strides=2, padding="same")(x),
                                  L.Conv2D(4, 3, padding="same")(x)])
    with pytest.raises(ValueError, match="'merge'.*different"):
        dilation_plan(keras.Model(inputs, merged), 8)


def test_shared_layer_is_refused():
    inputs = keras.Input((None, None, 3))
    shared = L.Conv2D(3, 3, padding="same", name="shared")
    with pytest.raises(NotImplementedError, match="'shared'"):
        dilation_plan(keras.Model(inputs, shared(shared(inputs))), 8)


def test_padding_layer_with_two_consumers_is_refused():
    inputs = keras.Input((None, None, 3))
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(L.Conv2D(4, 3, strides=8)(inputs))
    outputs = [L.Conv2D(4, 3, strides=2)(x), L.Conv2D(4, 3, strides=2)(x)]
    with pytest.raises(NotImplementedError, match="'pad'"):
        dilation_plan(keras.Model(inputs, outputs), 8)


def test_weight_copy_names_the_layer_without_counterpart():
    source = toy_model()
    inputs = keras.Input((None, None, 3))
    target = keras.Model(inputs, L.Conv2D(4, 3, name="conv1")(L.Conv2D(3, 1, name="new")(inputs)))
    with pytest.raises(ValueError, match="'new'.*no counterpart"):
        copy_weights_by_name(source, target)


@pytest.mark.parametrize("output_stride, conv4_rate, conv5_rate", [(16, 1, 2), (8, 2, 4)])
def test_resnet50_strides_and_rates(output_stride, conv4_rate, conv5_rate):
    """3x3 convs of stage 4 / 5 are dilated by the rates of DeepLab; 1x1 never are."""
    model = build_backbone("resnet50", output_stride)
    rates = {2: 1, 3: 1, 4: conv4_rate, 5: conv5_rate}
    convs = [l for l in model.layers if isinstance(l, (L.Conv2D, AtrousConv2D)) and l.name != "conv1_conv"]
    for layer in convs:  # named conv{stage}_block{b}_{i}_conv
        rate = rates[int(layer.name[4])] if tuple(np.broadcast_to(layer.kernel_size, 2)) == (3, 3) else 1
        assert layer.dilation_rate == (rate, rate), layer.name
    for stage in (3, 4, 5):
        stride = 1 if 2 ** (stage - 1) >= output_stride else 2  # input stride 2**(stage-1)
        for layer in (f"conv{stage}_block1_0_conv", f"conv{stage}_block1_1_conv"):
            assert model.get_layer(layer).strides == (stride, stride), layer
    assert sum(l.strides != (1, 1) for l in convs) == 2 * (np.log2(output_stride) - 2)


def test_resnet101_structure():
    """ResNet101 at OS16: deeper stage 4 is the P4 output; only stage 5 is dilated."""
    model = build_backbone("resnet101", 16)
    producers = {k: v._keras_history.operation.name for k, v in model.output.items()}
    assert producers == {"P2": "conv2_block3_out", "P3": "conv3_block4_out",
                         "P4": "conv4_block23_out", "P5": "conv5_block3_out"}
    assert {k: v.shape[-1] for k, v in model.output.items()} == {
        "P2": 256, "P3": 512, "P4": 1024, "P5": 2048}
    dilated = {l.name for l in model.layers if getattr(l, "dilation_rate", (1, 1)) != (1, 1)}
    assert dilated == {f"conv5_block{b}_2_conv" for b in (1, 2, 3)}


@pytest.mark.parametrize("output_stride, pads, rates", [
    (16, {"block_6_pad": ((0, 1), (0, 1)), "block_13_pad": ((1, 1), (1, 1))},
     {6: (2, 1), 12: (1, 1), 13: (1, 1), 14: (1, 2), 16: (1, 2)}),
    (8, {"block_3_pad": ((0, 1), (0, 1)), "block_6_pad": ((1, 1), (1, 1)),
         "block_13_pad": ((2, 2), (2, 2))},
     {3: (2, 1), 6: (1, 1), 7: (1, 2), 12: (1, 2), 13: (1, 2), 14: (1, 4), 16: (1, 4)}),
])
def test_mobilenet_v2_pads_and_rates(output_stride, pads, rates):
    """Depthwise block N gets (stride, dilation) = rates[N]; a de-strided pad turns symmetric.

    Its "valid" 3x3 depthwise conv at dilation d then needs d zeros on each side to keep size.
    """
    model = build_backbone("mobilenet_v2", output_stride, alpha=0.35)
    for name, padding in pads.items():
        assert tuple(map(tuple, model.get_layer(name).padding)) == padding, name
    for block, (stride, rate) in rates.items():
        layer = model.get_layer(f"block_{block}_depthwise")
        assert (layer.strides, layer.dilation_rate) == ((stride,) * 2, (rate,) * 2), block
    assert not {"Conv_1", "Conv_1_bn", "out_relu"} & {l.name for l in model.layers}
