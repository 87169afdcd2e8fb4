"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers.fused_batch_norm import FusedBatchNormalization
from deeplab_tf.layers.fused_batch_norm import use_fused_batch_norm


def assert_close(actual, expected, rtol=1e-5):
    expected = np.asarray(expected)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol,
                               atol=rtol * max(np.abs(expected).max(), 1.0))


def pair(config, shape, seed=0):
    keras_layer = keras.layers.BatchNormalization(**config)
    keras_layer.build(shape)
    rng = np.random.default_rng(seed)
    keras_layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype("float32") for w in keras_layer.weights])
    fused = FusedBatchNormalization.from_config(keras_layer.get_config())
    fused.build(shape)
    fused.set_weights(keras_layer.get_weights())
    return keras_layer, fused


def step(layer, x, g, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(y * g)
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return [y] + grads + [tf.convert_to_tensor(w) for w in layer.non_trainable_weights]


@pytest.mark.parametrize("config", [
    dict(momentum=0.9, epsilon=1e-5),
    dict(momentum=0.99, epsilon=1e-3, center=False),
    dict(momentum=0.5, epsilon=1e-5, scale=False),
])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("graph", [False, True])
def test_matches_keras_batch_norm(config, training, graph):
    shape = (3, 7, 9, 6)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(1.0, 3.0, shape).astype("float32"))
    g = tf.constant(rng.standard_normal(shape).astype("float32"))
    keras_layer, fused = pair(config, shape)
    run = tf.function(step, reduce_retracing=True) if graph else step
    for expected, actual in zip(run(keras_layer, x, g, training), run(fused, x, g, training)):
        assert_close(actual, expected)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("training", [True, False])
def test_mixed_precision_runs_the_kernel_on_the_low_precision_map(policy, training):
    """Under a mixed policy the map goes to the fused kernel in its own type (no casts of the
    whole map), with float32 statistics: outputs and gradients within the type's rounding of
    Keras' (which casts the map to float32), moving statistics to float32 rounding."""
    shape, dtype = (3, 7, 9, 6), policy.split("_")[1]
    rng = np.random.default_rng(5)
    x = tf.cast(rng.normal(1.0, 3.0, shape), dtype)
    g = tf.cast(rng.standard_normal(shape), dtype)
    keras_layer, fused = pair(dict(momentum=0.9, epsilon=1e-3, dtype=policy), shape)
    expected, actual = step(keras_layer, x, g, training), step(fused, x, g, training)
    assert actual[0].dtype == dtype and actual[1].dtype == dtype
    for index, (want, got) in enumerate(zip(expected, actual)):
        want, got = (tf.cast(v, tf.float32).numpy() for v in (want, got))
        rtol = 1e-5 if index >= 4 else 2e-2  # moving statistics: float32 in both
        assert_close(got, want, rtol=rtol)
    graph = tf.function(lambda x: fused(x, training=training)).get_concrete_function(x).graph
    kernels = [op for op in graph.get_operations() if op.type == "FusedBatchNormV3"]
    assert [op.get_attr("T") for op in kernels] == [tf.as_dtype(dtype)]


def test_frozen_layer_uses_moving_statistics():
    shape = (2, 5, 5, 4)
    x = tf.constant(np.random.default_rng(2).standard_normal(shape).astype("float32"))
    keras_layer, fused = pair(dict(), shape)
    keras_layer.trainable = fused.trainable = False
    assert_close(fused(x, training=True), keras_layer(x, training=True))
    assert_close(fused.moving_mean, keras_layer.moving_mean)


def test_falls_back_to_keras_for_other_axes():
    shape = (2, 4, 5, 6)
    x = tf.constant(np.random.default_rng(3).standard_normal(shape).astype("float32"))
    keras_layer, fused = pair(dict(axis=1), shape)
    assert_close(fused(x, training=True), keras_layer(x, training=True))


def test_float64_keeps_float64_precision():
    # The fused kernel has no float64: the layer must not round through float32.
    shape = (2, 4, 5, 6)
    x = tf.constant(np.random.default_rng(4).standard_normal(shape) * 3 + 1)
    keras_layer = keras.layers.BatchNormalization(dtype="float64")
    fused = FusedBatchNormalization.from_config(keras_layer.get_config())
    for training in (True, False):
        np.testing.assert_allclose(fused(x, training=training), keras_layer(x, training=training),
                                   rtol=1e-12, atol=1e-12)


def test_model_switch_keeps_weights_and_outputs(tmp_path):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.ReLU()(x))
    images = np.random.default_rng(4).standard_normal((2, 8, 8, 3)).astype("float32")
    expected = model(images, training=True).numpy()
    weights = model.get_weights()
    assert use_fused_batch_norm(model) == 1
    assert type(model.get_layer("bn")) is FusedBatchNormalization
    model.set_weights(weights)
    assert_close(model(images, training=True), expected)
    config = model.get_layer("bn").get_config()
    assert json.loads(json.dumps(config)) == config
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert_close(restored(images), model(images))


def layer_under(strategy, seed=3):
    """Returns `(layer, gamma, beta)`: a 4-channel `FusedBatchNormalization` (momentum 0.9,
    epsilon 1e-3) built in `strategy`'s scope, with random gamma/beta (float32 [4]) and moving
    statistics 0 and 1."""
    with strategy.scope():
        layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-3)
        layer.build((None, None, None, 4))
    rng = np.random.default_rng(seed)
    gamma, beta = rng.uniform(0.5, 2.0, 4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    layer.set_weights([gamma, beta, np.zeros(4, np.float32), np.ones(4, np.float32)])
    return layer, gamma, beta


def replica_training_step(layer, strategy):
    """Returns a `tf.function` of a (distributed) batch `x`: per replica, the training call's
    outputs and the gradient of their sum with respect to `x`, as `strategy.run` returns them."""
    @tf.function
    def step(x):
        def replica(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            return y, tape.gradient(y, x)
        return strategy.run(replica, args=(x,))
    return step


TWO_REPLICA_STEP = """
import json, os
import numpy as np
from tests.layers.test_fused_batch_norm import layer_under, replica_training_step
layer, gamma, beta = layer_under(strategy)
x = np.random.default_rng(4).normal(1.0, 3.0, (4, 9, 11, 4)).astype(np.float32)
batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x).unbatch().batch(4))))
outputs, _ = replica_training_step(layer, strategy)(batch)
choices = json.load(open(os.path.join(os.environ["XDG_CACHE_HOME"], "deeplab_tf", "autotune.json")))["choices"]
print(json.dumps({"x": x.tolist(), "gamma": gamma.tolist(), "beta": beta.tolist(), "choices": choices,
                  "outputs": [t.numpy().tolist() for t in strategy.experimental_local_results(outputs)]}))
"""


def test_tuning_runs_in_the_replicas_of_a_distributed_step(run_in_two_replicas):
    """The trainer's case: in a training step of two replicas (its own process), the layer times
    both candidates for the shape one replica sees (for real), caches the pick, and each replica
    gives the NumPy batch norm of its half of the batch, whichever was picked."""
    report = run_in_two_replicas(TWO_REPLICA_STEP)
    assert list(report["choices"]) == ["batch_norm train float32 input=2x9x11x4"]
    entry = report["choices"]["batch_norm train float32 input=2x9x11x4"]
    assert sorted(entry["ms"]) == ["fused", "keras"] and entry["pick"] in ("fused", "keras")
    x, gamma, beta = (np.asarray(report[name]) for name in ("x", "gamma", "beta"))
    assert len(report["outputs"]) == 2
    for half, outputs in zip((x[:2], x[2:]), report["outputs"]):
        mean, variance = half.mean((0, 1, 2)), half.var((0, 1, 2))
        assert_close(outputs, (half - mean) / np.sqrt(variance + 1e-3) * gamma + beta)
