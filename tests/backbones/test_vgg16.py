"""DeepLab's VGG-16 ("vgg16"): pooling, strides, dilations, feature sizes, weights, symmetry.

Expected values come from the DeepLab v1 / v2 papers and the released DeepLab-LargeFOV
prototxt (all max poolings 3x3 with padding 1, strides 2, 2, 2, 1, 1; conv5 at rate 2;
a 321 crop gives a 41x41 score map), not from the code under test.
"""

import math

import keras
import numpy as np
import pytest

from deeplab_tf.backbones import build_backbone
from deeplab_tf.backbones import feature_channels
from deeplab_tf.layers import AtrousConv2D

POOLS = [f"block{b}_pool" for b in range(1, 6)]
CONVS = {b: [f"block{b}_conv{i}" for i in range(1, 4 if b > 2 else 3)] for b in range(1, 6)}


@pytest.mark.parametrize("output_stride, pool_strides, conv_rates", [
    (8, (2, 2, 2, 1, 1), (1, 1, 1, 1, 2)),  # DeepLab v1 / v2
    (16, (2, 2, 2, 2, 1), (1, 1, 1, 1, 1)),
    (32, (2, 2, 2, 2, 2), (1, 1, 1, 1, 1)),
])
def test_pools_strides_and_rates(output_stride, pool_strides, conv_rates):
    model = build_backbone("vgg16", output_stride)
    for name, stride in zip(POOLS, pool_strides):
        layer = model.get_layer(name)
        assert isinstance(layer, keras.layers.MaxPooling2D), name
        assert (layer.pool_size, layer.strides, layer.padding) == ((3, 3), (stride,) * 2, "same")
    for block, rate in zip(range(1, 6), conv_rates):
        for name in CONVS[block]:
            layer = model.get_layer(name)
            assert (tuple(np.broadcast_to(layer.kernel_size, 2)), layer.strides) == ((3, 3), (1, 1)), name
            assert layer.dilation_rate == (rate, rate), name
            # Dilated convolutions run as AtrousConv2D (tf.nn.conv2d with dilations), not Keras'.
            assert isinstance(layer, AtrousConv2D if rate > 1 else keras.layers.Conv2D), name


@pytest.mark.parametrize("size", [65, 64, 321])
def test_feature_sizes_at_output_stride_8(size):
    """Pn has ceil(size / min(2**n, 8)) positions: 41 for DeepLab's 321 crops."""
    model = build_backbone("vgg16", 8)
    features = model(np.zeros((1, size, size, 3), "float32"))
    for level, stride in {"P2": 4, "P3": 8, "P4": 8, "P5": 8}.items():
        side = math.ceil(size / stride)
        expected = (1, side, side, feature_channels("vgg16")[level])
        assert tuple(features[level].shape) == expected, level
    if size == 321:
        assert features["P5"].shape[1] == 41


def test_space_to_batch_equals_native(stock, random_images, set_implementation):
    reference = stock("vgg16")
    native = set_implementation(build_backbone("vgg16", 8, weights=reference.weights_path),
                                "native")
    atrous = set_implementation(build_backbone("vgg16", 8, weights=reference.weights_path),
                                "space_to_batch")
    assert {l.name for l in atrous.layers if type(l).__name__ == "AtrousConv2D"} == set(CONVS[5])
    x = random_images(57)
    expected = native(x)
    for level, value in atrous(x).items():
        scale = np.abs(expected[level]).max()
        np.testing.assert_allclose(value, expected[level], rtol=0, atol=1e-4 * scale)


def test_features_are_centred_on_input_pixels(random_images):
    """With left-right symmetric kernels, flipping a (8k + 1)-wide image flips every level.

    This holds only if every window is symmetric about its centre, i.e. position i of a
    stride-s map sits on input pixel s * i, which the 3x3 "same" poolings give (Keras' 2x2
    "valid" poolings would shift each level by half a pixel).
    """
    model = build_backbone("vgg16", 8)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, AtrousConv2D)):
            kernel, bias = layer.get_weights()
            layer.set_weights([(kernel + kernel[:, ::-1]) / 2, bias])
    x = random_images(65)
    features, flipped = model(x), model(x[:, :, ::-1])
    for level, value in features.items():
        np.testing.assert_allclose(flipped[level], np.asarray(value)[:, :, ::-1], rtol=0,
                                   atol=1e-5 * np.abs(value).max(), err_msg=level)


def test_multi_grid_is_refused():
    with pytest.raises(ValueError, match="'vgg16' has no multi-grid.*resnet101.*resnet50.*xception65"):
        build_backbone("vgg16", 8, multi_grid=(1, 2, 4))
