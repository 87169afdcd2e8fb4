"""DeepLabv3 multi-grid (arXiv:1706.05587, Sec. 3.2): the three units of ResNet's last block get
dilation rate * (r1, r2, r3), rate being the block's atrous rate (1, 2, 4 at OS 32, 16, 8)."""

import keras
import pytest

from deeplab_tf.backbones import build_backbone
from deeplab_tf.backbones import dilation_plan
from deeplab_tf.layers import AtrousConv2D

UNITS = [f"conv5_block{unit}_2_conv" for unit in (1, 2, 3)]


@pytest.mark.parametrize("output_stride, multi_grid, rates", [
    (16, (1, 2, 4), (2, 4, 8)),  # the paper's example: rates 2 * (1, 2, 4)
    (8, (1, 2, 4), (4, 8, 16)),
    (32, (1, 2, 4), (1, 2, 4)),
    (16, (2, 2, 2), (4, 4, 4)),
])
def test_last_block_rates(output_stride, multi_grid, rates):
    model = build_backbone("resnet50", output_stride, multi_grid=multi_grid)
    assert [model.get_layer(name).dilation_rate for name in UNITS] == [(r, r) for r in rates]


def test_nothing_else_changes():
    model = build_backbone("resnet50", 8, multi_grid=(1, 2, 4))
    plain = build_backbone("resnet50", 8)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.name not in UNITS:
            other = plain.get_layer(layer.name)
            assert (layer.dilation_rate, layer.strides) == (other.dilation_rate, other.strides)


def test_atrous_layers_take_the_multi_grid_rates():
    model = build_backbone("resnet101", 16, multi_grid=(1, 2, 4))
    layers = [model.get_layer(name) for name in UNITS]
    assert all(isinstance(layer, AtrousConv2D) for layer in layers)
    assert [layer.rate for layer in layers] == [2, 4, 8]


def test_rate_multiplier_does_not_change_later_layers():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="strided")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="scaled")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="after")(x)
    model = keras.Model(inputs, x)
    assert dilation_plan(model, 8, {"scaled": 3}) == {"scaled": {"dilation_rate": (3, 3)}}


@pytest.mark.parametrize("name", ["conv5_block1_1_conv", "no_such_layer"])
def test_rate_multiplier_needs_a_spatial_conv(name):
    model = build_backbone("resnet50", 32)
    with pytest.raises(ValueError, match=f"not convolutions larger than 1x1.*'{name}'"):
        dilation_plan(model, 16, {name: 2})


def test_multi_grid_is_refused_for_mobilenet():
    with pytest.raises(ValueError,
                       match="'mobilenet_v2' has no multi-grid.*'resnet101', 'resnet50'"):
        build_backbone("mobilenet_v2", 16, multi_grid=(1, 2, 4))


@pytest.mark.parametrize("multi_grid", [(1, 2), (1, 2, 0), (1, 2.0, 4), 4])
def test_invalid_multi_grid(multi_grid):
    with pytest.raises(ValueError, match=r"3 positive ints.*'resnet50'"):
        build_backbone("resnet50", 16, multi_grid=multi_grid)
