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
