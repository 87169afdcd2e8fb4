"""TunedConv2D (deeplab_tf.layers.tuned_conv): Keras' convolution whose stride-1 calls in a
training step run the tuned exact implementation of `atrous_conv2d` at rate 1. Every candidate
gives the NumPy reference's values and gradients; the tuner picks one and caches it; inference,
strided, dilated calls and calls without tuning are Keras' own. (tests/layers/test_speed_choices.py:
the layers switched in a built model, and tuning in the replicas of a distributed step.)"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers import atrous_auto
from deeplab_tf.layers import autotune
from deeplab_tf.layers.tuned_conv import TunedConv2D
from tests.layers.test_atrous_conv import assert_close_relative_to_max
from tests.layers.test_atrous_conv import low_precision_tolerance
from tests.layers.test_atrous_conv import reference
from tests.layers.test_atrous_conv import reference_gradients
from tests.layers.test_atrous_conv import rounded
from tests.layers.test_tuned_depthwise_conv import run_with_gradients

SIZE, CHANNELS, FILTERS = (9, 11), 5, 4
# The layers of a backbone's bottleneck: a 1x1 "valid" and a 3x3 "same" convolution.
KERNELS = [(1, "valid"), (3, "same")]
TOLERANCE = {"float32": 1e-5, "bfloat16": None}  # bfloat16: low_precision_tolerance, per CPU


def make_layer(kernel_size, padding, dtype, weights=None, cls=TunedConv2D, **options):
    layer = cls(FILTERS, kernel_size, padding=padding, bias_initializer="ones", dtype=dtype, **options)
    layer.build((2, *SIZE, CHANNELS))
    if weights is not None:
        layer.set_weights(weights)
    return layer


def step_op_types(layer, x):
    """The op types in the graph of a recorded call of `layer` on `x` and its gradients."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, [x, layer.kernel])

    graph = step.get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("dtype", ("float32", "bfloat16"))
@pytest.mark.parametrize("kernel_size, padding", KERNELS)
@pytest.mark.parametrize("implementation", ("native", "shifted_gemm", "tap_gradient"))
def test_every_candidate_matches_the_numpy_reference(implementation, kernel_size, padding, dtype, monkeypatch):
    """Forced to each candidate, a layer in a training step gives the reference's outputs (bias
    included) and gradients (input, kernel, bias) in the compute dtype; the pick is asked under
    the key an `AtrousConv2D` of these shapes uses, among the rate-1 candidates, and the kernel
    gradient is oneDNN's op only for `"native"`."""
    picked = []
    monkeypatch.setenv(autotune.SWITCH, "1")
    monkeypatch.setattr(autotune, "pick", lambda key, names, prepare: picked.append((key, names)) or implementation)
    rng = np.random.default_rng(kernel_size)
    x = rounded(rng.standard_normal((2, *SIZE, CHANNELS)), dtype)
    w = rounded(rng.standard_normal((kernel_size, kernel_size, CHANNELS, FILTERS)), dtype)
    policy = dtype if dtype == "float32" else f"mixed_{dtype}"
    layer = make_layer(kernel_size, padding, policy, [w, np.ones(FILTERS)])
    expected = reference(x, w, 1, padding, False) + 1.0
    g = rounded(np.random.default_rng(7).standard_normal(expected.shape), dtype)
    y, dx, dw, db = run_with_gradients(layer, x, g)
    tolerance = TOLERANCE[dtype] or low_precision_tolerance(dtype)
    assert_close_relative_to_max(y, expected, tolerance)
    for gradient, want in zip((dx, dw), reference_gradients(x, w, g, 1, padding, False)):
        assert_close_relative_to_max(gradient, want, tolerance)
    assert_close_relative_to_max(db, g.sum(axis=(0, 1, 2)), tolerance)
    assert layer(x).dtype == dtype
    shapes = f"input=2x9x11x{CHANNELS} kernel={kernel_size}x{kernel_size}x{CHANNELS}x{FILTERS}"
    assert picked[0] == (f"atrous_conv2d train {dtype} {shapes} rate=1 padding={padding}",
                         atrous_auto.candidates((kernel_size, kernel_size), 1, False, dtype, True))
    assert ("Conv2DBackpropFilter" in step_op_types(layer, x)) == (implementation == "native")


def test_the_tuner_picks_a_candidate_and_caches_it(cache_file):
    """Timing for real, a training step picks one of the rate-1 candidates and writes it under
    its training key (an inference call writes nothing); a second layer of the same shapes reads
    it, timing nothing."""
    layer = make_layer(1, "valid", "float32")
    x = np.random.default_rng(0).standard_normal((2, *SIZE, CHANNELS))
    run_with_gradients(layer, x, np.ones((2, *SIZE, FILTERS)))
    layer(x)
    choices = json.loads(cache_file.read_text())["choices"]
    key = f"atrous_conv2d train float32 input=2x9x11x{CHANNELS} kernel=1x1x{CHANNELS}x{FILTERS} rate=1 padding=valid"
    assert list(choices) == [key]
    names = atrous_auto.candidates((1, 1), 1, False, "float32", True)
    assert len(names) > 1 and choices[key]["pick"] in names and set(choices[key]["ms"]) == set(names)
    written = cache_file.read_text()
    second = make_layer(1, "valid", "float32")
    run_with_gradients(second, x, np.ones((2, *SIZE, FILTERS)))
    assert cache_file.read_text() == written


@pytest.mark.parametrize("options, switch, recorded", [
    ({}, "1", False),                          # inference: grappler's fusions stay possible
    ({"strides": 2}, "1", True),               # strided
    ({"dilation_rate": 2}, "1", True),         # dilated (backbones make these AtrousConv2D)
    ({}, "0", True),                           # tuning off
])
def test_other_calls_are_keras_own(options, switch, recorded, cache_file, timed, monkeypatch):
    """Inference calls, strided and dilated layers, and any call with tuning off time nothing and
    compute exactly what `keras.layers.Conv2D` computes."""
    monkeypatch.setenv(autotune.SWITCH, switch)
    keras_layer = make_layer(3, "same", "float32", cls=keras.layers.Conv2D, **options)
    layer = make_layer(3, "same", "float32", keras_layer.get_weights(), **options)
    x = np.random.default_rng(1).standard_normal((2, *SIZE, CHANNELS)).astype(np.float32)
    if recorded:
        g = np.random.default_rng(2).standard_normal(keras_layer(x).shape)
        ours, theirs = run_with_gradients(layer, x, g), run_with_gradients(keras_layer, x, g)
    else:
        ours, theirs = [layer(x).numpy()], [keras_layer(x).numpy()]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    assert timed == [] and not cache_file.exists()
