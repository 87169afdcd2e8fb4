"""Batch norm folding: a single conv + BN against NumPy, every convolution type, the cases left
alone, and every model family (nested backbones, multi-scale) equal to the unfolded model in
inference mode with random, non-trivial batch norm statistics."""

import keras
import numpy as np
import pytest

from deeplab_tf.config import ModelConfig
from deeplab_tf.models.fold_batch_norm import count_batch_norms, fold_batch_norm, foldable_pairs
from deeplab_tf.layers import AtrousConv2D, AtrousDepthwiseConv2D
from deeplab_tf.layers.separable_atrous_conv import SeparableAtrousConv2D
from deeplab_tf.models import build_model


def _random_statistics(rng):
    return {"gamma": lambda shape: rng.uniform(0.5, 1.5, shape), "beta": lambda shape: rng.normal(0, 0.3, shape),
            "moving_mean": lambda shape: rng.normal(0, 0.3, shape),
            "moving_variance": lambda shape: rng.uniform(0.5, 1.5, shape)}


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    statistics = _random_statistics(rng)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            for weight in layer.weights:
                weight.assign(statistics[weight.path.split("/")[-1]](weight.shape).astype("float32"))
    return model


def assert_relative_close(actual, expected, rtol=1e-4):
    """Max abs difference <= rtol * max |expected|."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= rtol * np.abs(expected).max(), np.abs(actual - expected).max()


def numpy_conv_same(x, kernel, rate=1):
    """Stride-1 'same' dilated convolution [B,H,W,C] x [k,k,C,O], by explicit taps."""
    k = kernel.shape[0]
    total = (k - 1) * rate
    before = total // 2
    padded = np.pad(x, [(0, 0), (before, total - before), (before, total - before), (0, 0)])
    height, width = x.shape[1:3]
    out = np.zeros((*x.shape[:3], kernel.shape[-1]))
    for u in range(k):
        for v in range(k):
            patch = padded[:, u * rate:u * rate + height, v * rate:v * rate + width]
            out += patch @ kernel[u, v]
    return out


def numpy_batch_norm(x, gamma, beta, mean, variance, epsilon):
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def single(conv, batch_norm, channels=3, size=(7, 9)):
    inputs = keras.Input((*size, channels))
    return keras.Model(inputs, batch_norm(conv(inputs)))


def test_conv_bias_and_batch_norm_against_numpy():
    rng = np.random.default_rng(1)
    model = randomize(single(keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2, name="conv"),
                             keras.layers.BatchNormalization(epsilon=1e-3, name="bn")), seed=2)
    conv, bn = model.get_layer("conv"), model.get_layer("bn")
    conv.bias.assign(rng.normal(size=4).astype("float32"))
    kernel, bias = (w.astype(np.float64) for w in conv.get_weights())
    gamma, beta, mean, variance = (w.astype(np.float64) for w in bn.get_weights())
    x = rng.normal(size=(2, 7, 9, 3)).astype("float32")
    expected = numpy_batch_norm(numpy_conv_same(x, kernel, rate=2) + bias, gamma, beta, mean, variance, 1e-3)

    folded = fold_batch_norm(model)
    assert foldable_pairs(model) == [("conv", "bn")]
    assert [type(layer).__name__ for layer in folded.layers] == ["InputLayer", "Conv2D"]
    scale = gamma / np.sqrt(variance + 1e-3)
    new_kernel, new_bias = folded.get_layer("conv").get_weights()
    np.testing.assert_allclose(new_kernel, kernel * scale, rtol=1e-6)
    np.testing.assert_allclose(new_bias, (bias - mean) * scale + beta, rtol=1e-6, atol=1e-7)
    assert_relative_close(folded(x), expected, rtol=1e-5)
    assert_relative_close(model(x, training=False), expected, rtol=1e-5)


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_atrous_conv_without_bias_center_or_scale(center, scale):
    rng = np.random.default_rng(3)
    model = randomize(single(AtrousConv2D(5, 3, rate=3, use_bias=False, name="conv"),
                             keras.layers.BatchNormalization(center=center, scale=scale, epsilon=1e-5, name="bn")))
    kernel = model.get_layer("conv").get_weights()[0].astype(np.float64)
    bn = model.get_layer("bn")
    mean, variance = (np.asarray(w, np.float64) for w in (bn.moving_mean, bn.moving_variance))
    gamma = np.asarray(bn.gamma, np.float64) if scale else 1.0
    beta = np.asarray(bn.beta, np.float64) if center else 0.0
    x = rng.normal(size=(1, 7, 9, 3)).astype("float32")
    expected = numpy_batch_norm(numpy_conv_same(x, kernel, rate=3), gamma, beta, mean, variance, 1e-5)
    folded = fold_batch_norm(model)
    assert count_batch_norms(folded) == 0 and folded.get_layer("conv").use_bias
    assert_relative_close(folded(x), expected, rtol=1e-5)


@pytest.mark.parametrize("layer", [
    lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="conv"),
    lambda: AtrousDepthwiseConv2D(3, rate=2, depth_multiplier=3, use_bias=False, name="conv"),
    lambda: keras.layers.Conv2D(6, 3, strides=2, groups=3, padding="valid", name="conv"),
])
def test_depthwise_strided_and_grouped_convolutions(layer):
    model = randomize(single(layer(), keras.layers.BatchNormalization(name="bn"), channels=3))
    x = np.random.default_rng(4).normal(size=(2, 7, 9, 3)).astype("float32")
    folded = fold_batch_norm(model)
    assert count_batch_norms(folded) == 0
    assert_relative_close(folded(x), model(x, training=False), rtol=1e-5)


def test_batch_norms_that_must_stay():
    inputs = keras.Input((8, 8, 4))
    shared = keras.layers.Conv2D(4, 1, name="shared_output")(inputs)  # two consumers
    x = keras.layers.BatchNormalization(name="bn_shared")(shared)
    x = keras.layers.Add(name="add")([x, shared])
    x = keras.layers.BatchNormalization(name="bn_after_add")(x)
    x = keras.layers.Conv2D(4, 1, activation="relu", name="activated")(x)
    x = keras.layers.BatchNormalization(name="bn_after_relu")(x)
    x = SeparableAtrousConv2D(4, 3, rate=2, name="separable")(x)  # one BN inside
    x = keras.layers.BatchNormalization(name="bn_after_separable")(x)
    x = keras.layers.Conv2D(4, 1, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    output = keras.layers.Conv2D(4, 1, name="conv_out")(x)  # its output is a model output
    model = randomize(keras.Model(inputs, [x, output, keras.layers.BatchNormalization(name="bn_out")(output)]))
    assert foldable_pairs(model) == [("conv", "bn")]
    folded = fold_batch_norm(model)
    assert count_batch_norms(model) - count_batch_norms(folded) == 1 and count_batch_norms(folded) == 6
    x = np.random.default_rng(5).normal(size=(2, 8, 8, 4)).astype("float32")
    for got, want in zip(folded(x), model(x, training=False)):
        assert_relative_close(got, want, rtol=1e-5)


def test_nested_shared_sub_model_and_original_left_unchanged():
    inner_input = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(4, 3, padding="same", name="inner_conv")(inner_input)
    y = keras.layers.BatchNormalization(name="inner_bn")(y)
    inner = keras.Model(inner_input, {"features": keras.layers.ReLU()(y)}, name="inner")
    images = keras.Input((None, None, 3))
    a = inner(images)["features"]
    b = inner(keras.layers.Rescaling(0.5)(images))["features"]  # the sub-model called twice
    x = keras.layers.Conv2D(2, 1, use_bias=False, name="outer_conv")(keras.layers.Concatenate()([a, b]))
    model = randomize(keras.Model(images, keras.layers.BatchNormalization(name="outer_bn")(x)))
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(6).normal(size=(1, 6, 5, 3)).astype("float32")
    expected = model(x, training=False).numpy()

    folded = fold_batch_norm(model)
    assert sorted(foldable_pairs(model)) == [("inner_conv", "inner_bn"), ("outer_conv", "outer_bn")]
    assert count_batch_norms(folded) == 0
    assert isinstance(folded.get_layer("inner"), keras.Model) and folded.get_layer("inner") is not inner
    assert_relative_close(folded(x), expected, rtol=1e-5)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(model(x, training=False), expected)


FAMILIES = {
    "v3_resnet50": (ModelConfig(arch="deeplab_v3", backbone="resnet50", aspp_filters=16), 33),
    "v3plus_mobilenet_v2": (ModelConfig(arch="deeplab_v3_plus", backbone="mobilenet_v2", backbone_alpha=0.35,
                                        aspp_filters=16, low_level_filters=8, decoder_filters=16), 37),
    "v3plus_xception65_separable": (ModelConfig(arch="deeplab_v3_plus", backbone="xception65", separable=True,
                                                aspp_filters=16, low_level_filters=8, decoder_filters=16), 33),
    "v2_resnet50_aspp_msc": (ModelConfig(arch="deeplab_v2", backbone="resnet50", output_stride=8, head="classifier",
                                         atrous_rates=(6, 12), msc_scales=(0.75, 1.0)), 33),
}


def expected_left(model):
    """Batch norms that must stay: the one inside each SeparableAtrousConv2D, and the one that
    follows each (Xception-65 and the separable ASPP / decoder put a BN after every separable
    conv); every other BN of these models directly follows a plain or atrous convolution."""
    separable = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
                 if isinstance(layer, SeparableAtrousConv2D)]
    return 2 * len({id(layer) for layer in separable})


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_equals_unfolded_inference(family):
    config, size = FAMILIES[family]
    model = randomize(build_model(config, num_classes=5).model, seed=7)
    x = np.random.default_rng(8).normal(size=(2, size, size + 4, 3)).astype("float32")
    expected = model(x, training=False).numpy()
    lines = []
    folded = fold_batch_norm(model, log=lines.append)
    total, left = count_batch_norms(model), count_batch_norms(folded)
    assert left == expected_left(model) and total - left == len(foldable_pairs(model)) > 0
    assert lines == [f"Folded {total - left} BatchNormalization layers into convolutions; {left} left"]
    assert_relative_close(folded(x, training=False), expected)
    assert_relative_close(folded(x), expected)  # no batch norm left to switch to batch statistics
