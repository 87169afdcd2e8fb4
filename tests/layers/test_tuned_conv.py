"""TunedConv2D (deeplab_tf.layers.tuned_conv): Keras' convolution whose 1x1 calls in a
training step take their kernel gradient from oneDNN or from one GEMM. Both candidates give the
NumPy reference's values and gradients; the tuner picks one of them and caches it; every other
call is Keras' own and times nothing."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers import autotune
from deeplab_tf.layers.tuned_conv import KERNEL_GRADIENTS
from deeplab_tf.layers.tuned_conv import TunedConv2D
from tests.layers.test_atrous_conv import assert_close_relative_to_max
from tests.layers.test_atrous_conv import low_precision_tolerance
from tests.layers.test_atrous_conv import rounded
from tests.layers.test_tuned_depthwise_conv import run_with_gradients

SIZE, CHANNELS, FILTERS = (9, 12), 5, 7


def reference(x, w, b, strides):
    """y[n, i, j, f] = sum_c x[n, s0 i, s1 j, c] w[0, 0, c, f] + b[f], in float64: the positions a
    1x1 convolution with strides (s0, s1) reads ("valid" and "same" agree for a 1x1 kernel)."""
    return np.einsum("nijc,cf->nijf", x[:, ::strides[0], ::strides[1]], w[0, 0]) + b


def reference_gradients(x, w, g, strides):
    """d sum(y * g) / d (x, w) of `reference`: the upstream gradient times the kernel, at the
    positions read (zeros elsewhere), and the read positions times the upstream gradient."""
    dx = np.zeros(x.shape)
    dx[:, ::strides[0], ::strides[1]] = np.einsum("nijf,cf->nijc", g, w[0, 0])
    dw = np.einsum("nijc,nijf->cf", x[:, ::strides[0], ::strides[1]], g)[None, None]
    return dx, dw


def make_layer(kernel_size, strides, dtype, weights=None, cls=TunedConv2D):
    layer = cls(FILTERS, kernel_size, strides=strides, padding="same", bias_initializer="ones", dtype=dtype)
    layer.build((2, *SIZE, CHANNELS))
    if weights is not None:
        layer.set_weights(weights)
    return layer


def training_op_types(layer, x):
    """The op types in the graph of a call of `layer` on `x` and its kernel gradient."""

    def step(x):
        with tf.GradientTape() as tape:
            y = layer(x)
        return tape.gradient(y, layer.kernel)

    graph = tf.function(step).get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("kernel_gradient", KERNEL_GRADIENTS)
@pytest.mark.parametrize("dtype", ("float32", "bfloat16"))
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (3, 2)])
def test_both_kernel_gradients_match_the_numpy_reference(strides, dtype, kernel_gradient, monkeypatch):
    """Forced to each candidate, a 1x1 layer (strided or not) in a training step gives the reference's
    outputs (bias included) and gradients, to float32 or bfloat16 tolerance; only "native" runs
    oneDNN's kernel gradient op, and the choice is asked under its key."""
    picked = []
    monkeypatch.setenv(autotune.SWITCH, "1")
    monkeypatch.setattr(autotune, "pick", lambda key, names, prepare: picked.append((key, names)) or kernel_gradient)
    rng = np.random.default_rng(sum(strides))
    x = rounded(rng.standard_normal((2, *SIZE, CHANNELS)), dtype)
    w = rounded(rng.standard_normal((1, 1, CHANNELS, FILTERS)), dtype)
    layer = make_layer(1, strides, "float32" if dtype == "float32" else f"mixed_{dtype}", [w, np.ones(FILTERS)])
    expected = reference(x, w, 1.0, strides)
    g = rounded(np.random.default_rng(7).standard_normal(expected.shape), dtype)
    y, dx, dw = run_with_gradients(layer, x, g)
    tolerance = 1e-6 if dtype == "float32" else low_precision_tolerance(dtype)
    assert_close_relative_to_max(y, expected, tolerance)
    for gradient, want in zip((dx, dw), reference_gradients(x, w, g, strides)):
        assert_close_relative_to_max(gradient, want, tolerance)
    assert ("Conv2DBackpropFilter" in training_op_types(layer, x)) == (kernel_gradient == "native")
    assert set(picked) == {(f"pointwise_conv2d train {dtype} input=2x9x12x5 kernel=1x1x5x7 "
                            f"strides={strides[0]}x{strides[1]}", KERNEL_GRADIENTS)}


def test_the_tuner_picks_a_candidate_and_caches_it(cache_file):
    """Timing for real, a training step picks one of `KERNEL_GRADIENTS` and writes it under its
    key; a second layer of the same shapes reads it, timing nothing."""
    x = np.random.default_rng(0).standard_normal((2, *SIZE, CHANNELS))
    g = np.ones((2, 5, 6, FILTERS))
    run_with_gradients(make_layer(1, 2, "mixed_bfloat16"), x, g)
    choices = json.loads(cache_file.read_text())["choices"]
    assert list(choices) == ["pointwise_conv2d train bfloat16 input=2x9x12x5 kernel=1x1x5x7 strides=2x2"]
    entry = next(iter(choices.values()))
    assert entry["pick"] in KERNEL_GRADIENTS and set(entry["ms"]) == set(KERNEL_GRADIENTS)
    written = cache_file.read_text()
    run_with_gradients(make_layer(1, 2, "mixed_bfloat16"), x, g)
    assert cache_file.read_text() == written


@pytest.mark.parametrize("kernel_size, strides, switch, training", [
    (1, 2, "1", False),  # inference: no kernel gradient
    (3, 2, "1", True),  # a 3x3 kernel
    (1, 2, "0", True),  # tuning off
])
def test_other_calls_are_keras_own(kernel_size, strides, switch, training, cache_file, timed, monkeypatch):
    """Inference calls, larger kernels and any call with tuning off time nothing and
    compute exactly what `keras.layers.Conv2D` computes."""
    monkeypatch.setenv(autotune.SWITCH, switch)
    keras_layer = make_layer(kernel_size, strides, "mixed_bfloat16", cls=keras.layers.Conv2D)
    layer = make_layer(kernel_size, strides, "mixed_bfloat16", keras_layer.get_weights())
    x = np.random.default_rng(1).standard_normal((2, *SIZE, CHANNELS)).astype(np.float32)
    if training:
        g = np.random.default_rng(2).standard_normal(keras_layer(x).shape)
        ours, theirs = run_with_gradients(layer, x, g), run_with_gradients(keras_layer, x, g)
    else:
        ours, theirs = [tf.function(layer)(x)], [tf.function(keras_layer)(x)]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(tf.cast(a, tf.float64).numpy(), tf.cast(b, tf.float64).numpy())
    assert timed == [] and not cache_file.exists()
