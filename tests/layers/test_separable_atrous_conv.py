"""Tests for SeparableAtrousConv2D against an independent NumPy reference."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers import ATROUS_IMPLEMENTATIONS
from deeplab_tf.layers.separable_atrous_conv import SeparableAtrousConv2D

CHANNELS, FILTERS, MULTIPLIER, EPSILON = 3, 5, 2, 1e-3
SIZES = ((7, 9), (10, 8), (5, 4))  # odd / even / smaller than most dilated kernels


def reference(x, layer, training=False):
    """Depthwise (zero "same" padding, stride s: positions 0, s, 2s, ...) -> BN in inference
    -> activation -> pointwise -> bias, in float64 from the layer's weights."""
    k, rate, s = layer.kernel_size, layer.rate, layer.strides
    x = x.astype(np.float64)
    depthwise = layer.depthwise_kernel.numpy().astype(np.float64)
    total = (k - 1) * rate
    pad = (total // 2, total - total // 2)
    xpad = np.pad(x, [(0, 0), pad, pad, (0, 0)])
    out_h, out_w = -(-x.shape[1] // s), -(-x.shape[2] // s)
    y = np.zeros((x.shape[0], out_h, out_w, x.shape[3], layer.depth_multiplier))
    for i in range(out_h):
        for j in range(out_w):
            window = xpad[:, s * i:s * i + total + 1:rate, s * j:s * j + total + 1:rate, :]
            y[:, i, j] = np.einsum("buvc,uvcm->bcm", window, depthwise)
    y = y.reshape(y.shape[:3] + (-1,))  # channel c * multiplier + m
    if layer.batch_norm_between:
        gamma, beta, mean, var = (w.astype(np.float64) for w in layer.batch_norm.get_weights())
        y = (y - mean) / np.sqrt(var + EPSILON) * gamma + beta
    if layer.activation_between is keras.activations.relu:
        y = np.maximum(y, 0)
    y = np.einsum("bhwc,co->bhwo", y, layer.pointwise_kernel.numpy()[0, 0])
    return y + layer.bias.numpy() if layer.use_bias else y


def make_layer(input_shape, seed=0, **kwargs):
    """A built layer with random weights everywhere, batch norm statistics included."""
    layer = SeparableAtrousConv2D(FILTERS, **{"depth_multiplier": MULTIPLIER, **kwargs})
    layer.build(input_shape)
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.path
                       else rng.standard_normal(w.shape).astype("float32")
                       for w in layer.weights])
    return layer


def random_input(size, seed=1, batch=2):
    return np.random.default_rng(seed).standard_normal((batch, *size, CHANNELS)).astype("float32")


def assert_close(actual, expected):
    expected = np.asarray(expected)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5,
                               atol=1e-5 * max(np.abs(expected).max(), 1.0))


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("rate", [1, 2, 4, 12])
def test_matches_numpy_reference(rate, size, implementation):
    x = random_input(size)
    layer = make_layer(x.shape, rate=rate, implementation=implementation)
    expected = reference(x, layer)
    assert_close(layer(x, training=False), expected)
    plain = make_layer(x.shape, kernel_size=2, rate=rate, implementation=implementation,
                       batch_norm_between=False, activation_between=None, use_bias=True)
    assert_close(plain(x), reference(x, plain))


@pytest.mark.parametrize("strides", [2, 3])
@pytest.mark.parametrize("size", SIZES + ((33, 33), (32, 32)))
def test_strided_output_subsamples_the_stride_1_output(size, strides):
    """Output j is centred on input s * j (DeepLab's fixed padding) for odd and even sizes."""
    x = random_input(size)
    layer = make_layer(x.shape, strides=strides)
    dense = make_layer(x.shape, strides=1)
    dense.set_weights(layer.get_weights())
    y = layer(x, training=False)
    assert y.shape[1:3] == tuple(-(-n // strides) for n in size)
    assert_close(y, reference(x, layer))
    assert_close(y, dense(x, training=False)[:, ::strides, ::strides])


@pytest.mark.parametrize("size, tf_offset", [((9, 9), 0), ((8, 8), 1), ((8, 9), None)])
def test_strided_alignment_versus_tf_same(size, tf_offset):
    """TF's strided "SAME" pads (0, 1) on even sizes: its output j is centred on input 2j + 1."""
    layer = make_layer((1, *size, CHANNELS), strides=2, batch_norm_between=False,
                       activation_between=None)
    dense = make_layer((1, *size, CHANNELS), batch_norm_between=False, activation_between=None)
    dense.set_weights(layer.get_weights())
    x = random_input(size, batch=1)
    depthwise = tf.nn.depthwise_conv2d(x, layer.depthwise_kernel, [1, 2, 2, 1], "SAME")
    tf_same = tf.nn.conv2d(depthwise, layer.pointwise_kernel, 1, "VALID")
    assert tf_same.shape == layer(x).shape  # ceil(n / 2) positions both ways
    if tf_offset is None:  # mixed parity: rows shifted, columns not
        assert_close(tf_same, dense(x)[:, 1::2, ::2])
    else:
        assert_close(tf_same, dense(x)[:, tf_offset::2, tf_offset::2])


@pytest.mark.parametrize("rate,strides", [(2, 1), (12, 1), (1, 2)])
def test_gradients_agree_across_implementations(rate, strides):
    x = tf.constant(random_input((10, 9)))
    grads = []
    for implementation in ATROUS_IMPLEMENTATIONS:
        layer = make_layer(x.shape, rate=rate, strides=strides, implementation=implementation)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.random.stateless_normal(tf.shape(y), seed=[1, 2]))
        grads.append(tape.gradient(loss, [x, *layer.trainable_weights]))
    assert len(grads[0]) == 1 + 4  # input, depthwise, pointwise, gamma, beta
    for grad, expected in zip(grads[1], grads[0], strict=True):
        assert_close(grad, expected)


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
def test_weights_interchangeable_with_keras_separable_conv(implementation):
    keras_layer = keras.layers.SeparableConv2D(FILTERS, 3, padding="same", dilation_rate=4,
                                               depth_multiplier=MULTIPLIER,
                                               bias_initializer="random_normal")
    x = random_input((11, 12))
    expected = keras_layer(x)
    layer = SeparableAtrousConv2D(FILTERS, rate=4, depth_multiplier=MULTIPLIER, use_bias=True,
                                  batch_norm_between=False, activation_between=None,
                                  implementation=implementation)
    layer.build(x.shape)
    names = ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert [w.path.split("/")[-1] for w in layer.weights] == names
    layer.set_weights(keras_layer.get_weights())
    assert_close(layer(x), expected)


def test_batch_norm_follows_training_flag():
    x = random_input((6, 7)) + 3.0
    layer = make_layer(x.shape, batch_norm_momentum=0.0)
    before = layer.batch_norm.moving_mean.numpy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.batch_norm.moving_mean.numpy(), before)
    y = layer(x, training=True)
    assert not np.allclose(layer.batch_norm.moving_mean.numpy(), before)
    assert_close(y, reference(x, layer))  # momentum 0: moving statistics = batch statistics


def test_config_round_trip():
    layer = SeparableAtrousConv2D(FILTERS, kernel_size=(3, 3), rate=6, depth_multiplier=2,
                                  use_bias=True, activation_between="relu6",
                                  implementation="space_to_batch", pointwise_initializer="ones",
                                  batch_norm_momentum=0.9997, epsilon=1e-5, name="sep")
    x = random_input((9, 8))
    y = layer(x)
    config = layer.get_config()
    assert config["kernel_size"] == 3
    assert json.loads(json.dumps(config)) == config
    clone = SeparableAtrousConv2D.from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    assert_close(clone(x), y)
    assert clone.batch_norm.epsilon == 1e-5 and clone.batch_norm.momentum == 0.9997


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
def test_keras_file_save_and_load(tmp_path, implementation):
    inputs = keras.Input((None, None, CHANNELS))
    hidden = SeparableAtrousConv2D(4, strides=2, implementation=implementation)(inputs)
    outputs = SeparableAtrousConv2D(FILTERS, rate=3, activation_between=None,
                                    implementation=implementation)(hidden)
    model = keras.Model(inputs, outputs)
    x = random_input((13, 10))
    model(x + 1.0, training=True)  # moving statistics away from their initial values
    model.save(tmp_path / "separable.keras")
    loaded = keras.saving.load_model(tmp_path / "separable.keras")
    assert [type(layer) for layer in loaded.layers[1:]] == [SeparableAtrousConv2D] * 2
    assert loaded.layers[2].implementation == implementation
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
@pytest.mark.parametrize("rate,strides", [(4, 1), (1, 2)])
def test_dynamic_shapes_in_tf_function(rate, strides, implementation):
    layer = make_layer((None, None, None, CHANNELS), rate=rate, strides=strides,
                       implementation=implementation)
    fn = tf.function(lambda x: layer(x, training=False),
                     input_signature=[tf.TensorSpec([None, None, None, CHANNELS])])
    symbolic = fn.get_concrete_function().structured_outputs
    assert symbolic.shape.as_list() == list(layer.compute_output_shape((None,) * 3 + (CHANNELS,)))
    for size, batch in (((5, 4), 1), ((10, 13), 3)):
        x = random_input(size, batch=batch)
        assert_close(fn(x), reference(x, layer))


def test_compute_output_shape():
    layer = SeparableAtrousConv2D(FILTERS, strides=2)
    assert layer.compute_output_shape((None, 9, None, CHANNELS)) == (None, 5, None, FILTERS)
    symbolic = layer(keras.Input((10, 9, CHANNELS)))
    assert tuple(symbolic.shape) == (None, 5, 5, FILTERS)


@pytest.mark.parametrize("kwargs,match", [
    ({"rate": 2, "strides": 2}, "rate=2, strides=2"),
    ({"rate": 0}, "rate=0"),
    ({"strides": 0}, "strides=0"),
    ({"implementation": "fast"}, r"'native', 'space_to_batch'.*'fast'"),
    ({"kernel_size": (3, 5)}, r"\(3, 5\)"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SeparableAtrousConv2D(FILTERS, **kwargs)


def test_implementation_set_after_construction_is_used_at_call(monkeypatch):
    """Models set `implementation` on built layers: the depthwise conv reads it at each call."""
    from deeplab_tf.layers import atrous_conv

    x = random_input((9, 8))
    layer = make_layer(x.shape, rate=3, implementation="native")
    expected = layer(x, training=False)
    calls = []
    run = atrous_conv._IMPLEMENTATIONS["shifted_gemm"]
    monkeypatch.setitem(atrous_conv._IMPLEMENTATIONS, "shifted_gemm",
                        lambda *args: calls.append(args[3]) or run(*args))
    layer.implementation = "shifted_gemm"
    assert_close(layer(x, training=False), expected)
    assert calls == [3]
    assert layer.get_config()["implementation"] == "shifted_gemm"
