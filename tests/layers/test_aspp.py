"""ASPP and the DeepLabv3+ decoder as layers: output shapes, the "sum" mode against the sum of its
branches and the "concat" mode against a hand-written composition of its parts, JSON round trip
of the config, and `.keras` round trip with the speed choices set on the layers."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers import ASPP, DeepLabV3PlusDecoder
from deeplab_tf.layers.speed_choices import apply_speed_choices

FEATURES = np.random.default_rng(0).normal(size=(2, 9, 11, 6)).astype(np.float32)


def randomize(model, seed=1):
    """Random weights everywhere, moving variances positive, so every branch matters."""
    rng = np.random.default_rng(seed)
    model.set_weights([np.abs(rng.normal(1.0, 0.3, w.shape)) if "variance" in w.path else rng.normal(0, 0.3, w.shape)
                       for w in model.weights])


@pytest.mark.parametrize("rates", [(1,), (2, 3, 4)])
def test_sum_mode_adds_one_atrous_classifier_per_rate(rates):
    aspp = ASPP(input_channels=6, rates=rates, filters=5, mode="sum")
    randomize(aspp)
    expected = 0.0
    for rate in rates:  # NumPy: each branch is a 3x3 conv at its rate with "same" padding, plus bias
        kernel, bias = aspp.get_layer(f"logits_rate{rate}").get_weights()
        padded = np.pad(FEATURES, [(0, 0), (rate, rate), (rate, rate), (0, 0)])
        branch = sum(np.einsum("bhwc,co->bhwo", padded[:, u * rate:u * rate + 9, v * rate:v * rate + 11], kernel[u, v])
                     for u in range(3) for v in range(3))
        expected = expected + branch + bias
    np.testing.assert_allclose(aspp(FEATURES).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_sum_mode_fc_branches_have_fc6_fc7_fc8():
    aspp = ASPP(input_channels=6, rates=(2, 4), filters=3, mode="sum", branch_channels=8)
    names = {layer.name for layer in aspp.layers}
    assert {"fc6_rate2", "fc7_rate2", "logits_rate2", "fc6_rate4", "logits_sum"} <= names
    assert aspp(FEATURES, training=False).shape == (2, 9, 11, 3)


def test_concat_mode_is_branches_concatenated_and_projected():
    aspp = ASPP(input_channels=6, rates=(2, 3), filters=4)
    randomize(aspp)
    layer = aspp.get_layer

    def unit(x, name):
        return tf.nn.relu(layer(f"{name}_bn")(layer(f"{name}_conv")(x), training=False))

    pooled = unit(tf.reduce_mean(FEATURES, axis=(1, 2), keepdims=True), "aspp_pool")
    branches = [unit(FEATURES, "aspp_1x1"), unit(FEATURES, "aspp_atrous1"), unit(FEATURES, "aspp_atrous2"),
                tf.tile(pooled, [1, 9, 11, 1])]  # bilinear upsampling of a 1x1 map is a copy
    expected = unit(tf.concat(branches, axis=-1), "aspp_project")
    np.testing.assert_allclose(aspp(FEATURES, training=False).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert [layer(f"aspp_atrous{i}_conv").rate for i in (1, 2)] == [2, 3]


def test_concat_mode_without_rates_or_pooling():
    """The official MobileNetV2 DeepLabv3: a 1x1 branch and image pooling only."""
    aspp = ASPP(input_channels=6, rates=(), filters=4)
    assert not any(name.startswith("aspp_atrous") for name in (layer.name for layer in aspp.layers))
    assert ASPP(input_channels=6, rates=(), filters=4, image_pooling=False)(FEATURES).shape == (2, 9, 11, 4)


def test_decoder_fuses_at_the_low_level_resolution():
    decoder = DeepLabV3PlusDecoder(encoder_channels=6, low_level_channels=5, low_level_filters=3, filters=7)
    low_level = np.ones((2, 33, 41, 5), np.float32)
    assert decoder([FEATURES, low_level], training=False).shape == (2, 33, 41, 7)
    assert decoder.get_layer("decoder_concat").output.shape[-1] == 6 + 3


@pytest.mark.parametrize("make", [
    lambda: ASPP(input_channels=6, rates=(2, 3), filters=4, separable=True),
    lambda: ASPP(input_channels=6, rates=(2, 3), filters=4, mode="sum", branch_channels=8),
    lambda: DeepLabV3PlusDecoder(encoder_channels=6, low_level_channels=6, filters=4, separable=True),
], ids=["aspp_concat", "aspp_sum", "decoder"])
def test_config_json_and_keras_file_round_trips(make, tmp_path):
    layer = make()
    apply_speed_choices(layer, "space_to_batch", fused_batch_norm=True)
    config = json.loads(json.dumps(layer.get_config()))
    has_batch_norm = any(isinstance(sub, keras.layers.BatchNormalization)
                         for sub in layer._flatten_layers(include_self=False, recursive=True))
    assert config["speed_choices"] == {"atrous_implementation": "space_to_batch", "fused_batch_norm": has_batch_norm}
    revived = type(layer).from_config(config)
    assert revived.get_config() == layer.get_config()
    inputs = keras.Input((None, None, 6)) if isinstance(layer, ASPP) else [keras.Input((None, None, 6))] * 2
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    arguments = FEATURES if isinstance(layer, ASPP) else [FEATURES, FEATURES]
    np.testing.assert_allclose(restored(arguments), model(arguments), rtol=1e-6, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mode='mean'"):
        ASPP(input_channels=6, rates=(2,), mode="mean")
    for rates in [(6, 6), (0,), 12]:
        with pytest.raises(ValueError, match="distinct positive ints"):
            ASPP(input_channels=6, rates=rates)
    with pytest.raises(ValueError, match="at least one rate"):
        ASPP(input_channels=6, rates=(), mode="sum")
