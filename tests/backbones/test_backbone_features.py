"""Features of `build_backbone` against the stock Keras Applications models.

Where the stock features sit in a denser map. Let a stride-2 layer be made stride 1 (the layers
after it dilated by 2), so the dense map has 2x the positions:

- ResNet: the removed stride sits in 1x1 "valid" convs (`convN_block1_0_conv`, `_1_conv`);
  stock output j reads input 2j, the stride-1 conv reads input i at i. So stock j <-> dense 2j.
- MobileNetV2: the removed stride sits in a 3x3 "valid" depthwise conv behind
  `ZeroPadding2D(((0, 1), (0, 1)))`; stock output j sums input 2j + u, u in {0, 1, 2}, i.e. it
  is centred on input 2j + 1, while the dense conv (symmetric padding) is centred on its own
  index. So stock j <-> dense 2j + 1.

Removing a second stride maps again: 2(2j) = 4j for ResNet, 2(2j + 1) + 1 = 4j + 3 for
MobileNetV2, i.e. dense = f * j + offset with f the densification factor and offset 0 (ResNet)
or f - 1 (MobileNetV2).

Border: no position is excluded. Every layer after a removed stride is pointwise (1x1 conv, BN,
ReLU, add) or a 3x3 conv dilated by f, which at dense f * j + offset reads only dense
f * (j +- 1) + offset, i.e. the stock neighbours j +- 1. Where j +- 1 leaves the stock map
(stock reads zero padding) the dense index leaves the dense map too (the dense map has
exactly f times as many positions), where the dilated "same" conv also reads zeros. So the
stock values are reproduced at every stock position, up to float reordering (1e-4 relative).
"""

import keras
import numpy as np
import pytest

from deeplab_tf.backbones import build_backbone
from deeplab_tf.backbones import feature_channels

OFFSET = {"resnet50": lambda factor: 0, "mobilenet_v2": lambda factor: factor - 1}
STRIDES = {"P2": 4, "P3": 8, "P4": 16, "P5": 32}


def assert_close(actual, expected, rtol=1e-4):
    """Asserts equality up to `rtol` times the largest magnitude of `expected`."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * np.abs(expected).max())


def features(model, images):
    return {k: np.asarray(v) for k, v in model(images, training=False).items()}


@pytest.mark.parametrize("name, size", [("mobilenet_v2", 96), ("resnet50", 64)])
def test_output_stride_32_equals_stock(stock, random_images, name, size):
    """At OS32 the backbone (weights from the stock .h5 file) is the stock model."""
    reference = stock(name)
    model = build_backbone(name, 32, weights=reference.weights_path, **reference.kwargs)
    x = random_images(size)
    expected = reference(x)
    for level, value in features(model, x).items():
        np.testing.assert_allclose(value, expected[level], rtol=0, atol=1e-6, err_msg=level)


@pytest.mark.parametrize("name, output_stride, size", [
    ("mobilenet_v2", 16, 192),
    ("mobilenet_v2", 8, 192),
    ("resnet50", 16, 128),
])
def test_dense_features_hold_stock_values(stock, random_images, name, output_stride, size):
    """Level Pn is f = 2**n / min(2**n, OS) times denser; dense[f*j + offset] == stock[j].

    See the module docstring for the offset (0 for ResNet, f - 1 for MobileNetV2) and why no
    border position is excluded. Every other offset in [0, f) is checked to be far off, so
    the test pins the offset down.
    """
    reference = stock(name)
    model = build_backbone(name, output_stride, weights=reference.weights_path,
                           **reference.kwargs)
    x = random_images(size)
    expected = reference(x)
    for level, value in features(model, x).items():
        factor = STRIDES[level] // min(STRIDES[level], output_stride)
        assert value.shape[1:3] == (size * factor // STRIDES[level],) * 2, level
        scale = np.abs(expected[level]).max()
        for offset in range(factor):
            error = np.abs(value[:, offset::factor, offset::factor] - expected[level]).max()
            if offset == OFFSET[name](factor):
                assert error <= 1e-4 * scale, (level, offset)
            else:
                assert error > 0.1 * scale, (level, offset)


def test_space_to_batch_equals_native(stock, random_images, set_implementation):
    """The space_to_batch atrous implementation computes the native dilated convs (OS8)."""
    reference = stock("mobilenet_v2")
    kwargs = dict(weights=reference.weights_path, alpha=0.35)
    native = set_implementation(build_backbone("mobilenet_v2", 8, **kwargs), "native")
    space_to_batch = set_implementation(build_backbone("mobilenet_v2", 8, **kwargs),
                                        "space_to_batch")
    assert any(type(layer).__name__.startswith("Atrous") for layer in space_to_batch.layers)
    x = random_images(160)
    expected = features(native, x)
    for level, value in features(space_to_batch, x).items():
        assert_close(value, expected[level])


@pytest.mark.parametrize("alpha", [0.35, 0.75, 1.3])
def test_mobilenet_feature_channels(alpha):
    """`feature_channels` predicts the channels Keras' width rounding gives each level."""
    model = build_backbone("mobilenet_v2", 16, alpha=alpha)
    assert {k: v.shape[-1] for k, v in model.output.items()} == feature_channels(
        "mobilenet_v2", alpha)
    stock_model = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=alpha,
                                                 input_shape=(None, None, 3))
    assert model.output["P5"].shape[-1] == stock_model.get_layer("block_16_project").filters


def test_keras_file_round_trip(random_images, tmp_path, set_implementation):
    """A re-purposed backbone (atrous layers, symmetric pads) saves and reloads as .keras, with
    the atrous implementation set on its layers."""
    model = set_implementation(build_backbone("mobilenet_v2", 8, alpha=0.35), "space_to_batch")
    model.save(tmp_path / "backbone.keras")
    reloaded = keras.models.load_model(tmp_path / "backbone.keras")
    assert reloaded.get_layer("block_16_depthwise").implementation == "space_to_batch"
    x = random_images(64)
    expected = features(model, x)
    for level, value in features(reloaded, x).items():
        np.testing.assert_array_equal(value, expected[level], err_msg=level)
