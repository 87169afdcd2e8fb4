"""TunedDepthwiseConv2D (deeplab_tf.layers.tuned_depthwise_conv): Keras' depthwise convolution
whose bfloat16 / float16 calls run in the compute dtype or in float32. Both candidates give the
NumPy reference's values and gradients; the tuner picks one of them and caches it; float32 calls
and calls without tuning are Keras' own; tuning works in replicas of a distributed step."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers import autotune
from deeplab_tf.layers.tuned_depthwise_conv import PRECISIONS
from deeplab_tf.layers.tuned_depthwise_conv import TunedDepthwiseConv2D
from tests.layers.test_atrous_conv import assert_close_relative_to_max
from tests.layers.test_atrous_conv import low_precision_tolerance
from tests.layers.test_atrous_conv import reference
from tests.layers.test_atrous_conv import reference_gradients
from tests.layers.test_atrous_conv import rounded

SIZE, CHANNELS, MULTIPLIER = (9, 11), 3, 2
# (strides, dilation, padding): MobileNetV2's strided "valid" layers, its stride-1 "same" ones,
# and a dilated one.
CASES = [(2, 1, "valid"), (1, 1, "same"), (1, 2, "valid")]


def strided_reference(x, w, strides, dilation, padding):
    """The depthwise convolution in float64 (`reference` of the atrous tests, at rate
    `dilation`), every `strides`-th output row and column: TensorFlow's strided "valid"
    convolution (and any stride-1 one)."""
    return reference(x, w, dilation, padding, True)[:, ::strides, ::strides]


def strided_reference_gradients(x, w, g, strides, dilation, padding):
    """d sum(y * g) / d (x, w) of `strided_reference`: the stride-1 gradients with `g` spread
    over every `strides`-th output and zeros between."""
    full = reference(x, w, dilation, padding, True)
    spread = np.zeros(full.shape)
    spread[:, ::strides, ::strides] = g
    return reference_gradients(x, w, spread, dilation, padding, True)


def make_layer(strides, dilation, padding, dtype, weights=None, cls=TunedDepthwiseConv2D):
    layer = cls(3, strides=strides, dilation_rate=dilation, padding=padding,
                depth_multiplier=MULTIPLIER, bias_initializer="ones", dtype=dtype)
    layer.build((2, *SIZE, CHANNELS))
    if weights is not None:
        layer.set_weights(weights)
    return layer


def run_with_gradients(layer, x, g):
    """Returns (outputs, d sum(outputs * g) / d x, d ... / d kernel) of a traced call that a
    gradient tape records, as float64 arrays."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float64) * g)
        return y, *tape.gradient(loss, [x, layer.kernel])

    return [tf.cast(t, tf.float64).numpy() for t in step(tf.constant(x, tf.float32))]


def depthwise_types(layer, x):
    """The types (`T`) of the depthwise convolutions in the graph of a call of `layer` on `x`."""
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
    return {op.get_attr("T").name for op in graph.get_operations() if op.type == "DepthwiseConv2dNative"}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("dtype", ("bfloat16", "float16"))
@pytest.mark.parametrize("strides, dilation, padding", CASES)
def test_both_precisions_match_the_numpy_reference(strides, dilation, padding, dtype, precision, monkeypatch):
    """Forced to each candidate, a mixed-precision layer gives the reference's outputs (bias
    included) and gradients to the type's tolerance, in the compute dtype, and the convolution
    runs in the candidate's type."""
    picked = []
    monkeypatch.setenv(autotune.SWITCH, "1")
    monkeypatch.setattr(autotune, "pick", lambda key, names, prepare: picked.append((key, names)) or precision)
    rng = np.random.default_rng(strides + 2 * dilation)
    x = rounded(rng.standard_normal((2, *SIZE, CHANNELS)), dtype)
    w = rounded(rng.standard_normal((3, 3, CHANNELS, MULTIPLIER)), dtype)
    layer = make_layer(strides, dilation, padding, f"mixed_{dtype}", [w, np.ones(CHANNELS * MULTIPLIER)])
    expected = strided_reference(x, w, strides, dilation, padding) + 1.0
    g = rounded(np.random.default_rng(7).standard_normal(expected.shape), dtype)
    y, dx, dw = run_with_gradients(layer, x, g)
    tolerance = low_precision_tolerance(dtype)
    assert_close_relative_to_max(y, expected, tolerance)
    for gradient, want in zip((dx, dw), strided_reference_gradients(x, w, g, strides, dilation, padding)):
        assert_close_relative_to_max(gradient, want, tolerance)
    assert layer(x).dtype == dtype
    assert depthwise_types(layer, x) == {"float32" if precision == "float32" else dtype}
    assert picked[0][1] == PRECISIONS
    assert picked[0][0] == (f"depthwise_conv2d train {dtype} input=2x9x11x3 kernel=3x3x3x2 "
                            f"strides={strides}x{strides} dilation={dilation}x{dilation} padding={padding}")


def test_the_tuner_picks_a_candidate_and_caches_it(cache_file):
    """Timing for real, a training step and an inference call each pick one of `PRECISIONS`
    and write it under their key; a second layer of the same shapes reads them, timing nothing."""
    layer = make_layer(2, 1, "valid", "mixed_bfloat16")
    x = np.random.default_rng(0).standard_normal((2, *SIZE, CHANNELS))
    run_with_gradients(layer, x, np.ones((2, 4, 5, CHANNELS * MULTIPLIER)))
    layer(x)
    choices = json.loads(cache_file.read_text())["choices"]
    shapes = "input=2x9x11x3 kernel=3x3x3x2 strides=2x2 dilation=1x1 padding=valid"
    assert set(choices) == {f"depthwise_conv2d {mode} bfloat16 {shapes}" for mode in ("train", "infer")}
    for entry in choices.values():
        assert entry["pick"] in PRECISIONS and set(entry["ms"]) == set(PRECISIONS)
    written = cache_file.read_text()
    second = make_layer(2, 1, "valid", "mixed_bfloat16")
    second(x)
    assert cache_file.read_text() == written


@pytest.mark.parametrize("dtype, switch", [("float32", "1"), ("mixed_bfloat16", "0"), ("mixed_float16", "0")])
def test_float32_calls_and_calls_without_tuning_are_keras_own(dtype, switch, cache_file, timed, monkeypatch):
    """float32 layers, and any layer with tuning off, time nothing and compute exactly what
    `keras.layers.DepthwiseConv2D` computes."""
    monkeypatch.setenv(autotune.SWITCH, switch)
    keras_layer = make_layer(2, 1, "valid", dtype, cls=keras.layers.DepthwiseConv2D)
    layer = make_layer(2, 1, "valid", dtype, keras_layer.get_weights())
    x = np.random.default_rng(1).standard_normal((2, *SIZE, CHANNELS))
    g = np.random.default_rng(2).standard_normal((2, 4, 5, CHANNELS * MULTIPLIER))
    for ours, theirs in zip(run_with_gradients(layer, x, g), run_with_gradients(keras_layer, x, g)):
        np.testing.assert_array_equal(ours, theirs)
    assert timed == [] and not cache_file.exists()


TWO_REPLICA_STEP = """
import json, os
import numpy as np, keras
from deeplab_tf.layers.tuned_depthwise_conv import TunedDepthwiseConv2D
with strategy.scope():
    layer = TunedDepthwiseConv2D(3, strides=2, dtype="mixed_bfloat16")
    layer.build((2, 17, 17, 4))
keras_layer = keras.layers.DepthwiseConv2D(3, strides=2, dtype="mixed_bfloat16")
keras_layer.build((2, 17, 17, 4))
keras_layer.set_weights(layer.get_weights())
x = np.random.default_rng(0).standard_normal((4, 17, 17, 4)).astype(np.float32)

@tf.function
def step(x):
    def replica(x):
        with tf.GradientTape() as tape:
            y = layer(x)
        return y, tape.gradient(tf.reduce_sum(tf.cast(y, tf.float32)), layer.kernel)
    return strategy.run(replica, args=(x,))

batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x).unbatch().batch(4))))
outputs, gradients = step(batch)
ours = np.concatenate([tf.cast(t, tf.float32).numpy() for t in strategy.experimental_local_results(outputs)])
theirs = tf.cast(keras_layer(x), tf.float32).numpy()
choices = json.load(open(os.path.join(os.environ["XDG_CACHE_HOME"], "deeplab_tf", "autotune.json")))["choices"]
print(json.dumps({"error": float(np.abs(ours - theirs).max() / np.abs(theirs).max()), "keys": sorted(choices),
                  "replicas": len(strategy.experimental_local_results(outputs))}))
"""


def test_tuning_runs_in_the_replicas_of_a_distributed_step(run_in_two_replicas):
    """In a step of two replicas (a MirroredStrategy on two logical CPUs, its own process), a
    bfloat16 layer tunes while the replicas' step is traced (timing for real), writes its training
    key and gives Keras' outputs to bfloat16 rounding."""
    report = run_in_two_replicas(TWO_REPLICA_STEP)
    assert report["replicas"] == 2
    assert report["keys"] == ["depthwise_conv2d train bfloat16 input=2x17x17x4 kernel=3x3x4x1 "
                              "strides=2x2 dilation=1x1 padding=valid"]
    assert report["error"] <= low_precision_tolerance("bfloat16")
