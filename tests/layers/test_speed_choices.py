"""`apply_speed_choices` (deeplab_tf.layers.speed_choices) on the tuned convolutions: Keras'
`Conv2D`s and `DepthwiseConv2D`s of a built model become `TunedConv2D`s and
`TunedDepthwiseConv2D`s with the same weights and outputs, kept through a `.keras` file; and a
tuned convolution tunes inside the replicas of a distributed training step."""

import keras
import numpy as np
import pytest

from deeplab_tf.layers.speed_choices import apply_speed_choices
from deeplab_tf.layers.tuned_conv import TunedConv2D
from deeplab_tf.layers.tuned_depthwise_conv import TunedDepthwiseConv2D
from tests.layers.test_atrous_conv import low_precision_tolerance


def test_keras_convolutions_are_switched_and_kept_through_a_keras_file(tmp_path):
    """Exactly Keras' `Conv2D` and `DepthwiseConv2D` are switched (strided ones too: they run
    Keras' call), other subclasses (`SeparableConv2D`) are not; weights and outputs are unchanged,
    and a `.keras` file of the model loads the tuned layers back."""
    inputs = keras.Input((9, 11, 3))
    hidden = keras.layers.Conv2D(8, 3, strides=2, name="strided")(inputs)
    hidden = keras.layers.Conv2D(8, 1, name="pointwise")(hidden)
    hidden = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise")(hidden)
    outputs = keras.layers.SeparableConv2D(4, 3, name="separable")(hidden)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).standard_normal((2, 9, 11, 3)).astype(np.float32)
    weights, before = model.get_weights(), model(x).numpy()
    apply_speed_choices(model, "auto", fused_batch_norm=False)
    switched = [TunedConv2D, TunedConv2D, TunedDepthwiseConv2D, keras.layers.SeparableConv2D]
    assert [type(layer) for layer in model.layers[1:]] == switched
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    np.testing.assert_array_equal(model(x).numpy(), before)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in loaded.layers[1:]] == switched
    np.testing.assert_array_equal(loaded(x).numpy(), before)


TUNED_LAYER_STEP = """
import json, os
import numpy as np, keras
from {module} import {tuned}
with strategy.scope():
    layer = {tuned}({arguments}, dtype="mixed_bfloat16")
    layer.build({half_batch})
keras_layer = keras.layers.{keras_class}({arguments}, dtype="mixed_bfloat16")
keras_layer.build({half_batch})
keras_layer.set_weights(layer.get_weights())
x = np.random.default_rng(0).standard_normal({batch}).astype(np.float32)

@tf.function
def step(x):
    def replica(x):
        with tf.GradientTape() as tape:
            y = layer(x)
        return y, tape.gradient(tf.reduce_sum(tf.cast(y, tf.float32)), layer.kernel)
    return strategy.run(replica, args=(x,))

batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x).unbatch().batch(len(x)))))
outputs, gradients = step(batch)
ours = np.concatenate([tf.cast(t, tf.float32).numpy() for t in strategy.experimental_local_results(outputs)])
theirs = tf.cast(keras_layer(x), tf.float32).numpy()
choices = json.load(open(os.path.join(os.environ["XDG_CACHE_HOME"], "deeplab_tf", "autotune.json")))["choices"]
print(json.dumps({{"error": float(np.abs(ours - theirs).max() / np.abs(theirs).max()), "keys": sorted(choices),
                  "replicas": len(strategy.experimental_local_results(outputs))}}))
"""


@pytest.mark.parametrize("tuned_class, arguments, batch_shape, key", [
    (TunedDepthwiseConv2D, "3, strides=2", (4, 17, 17, 4),
     "depthwise_conv2d train bfloat16 input=2x17x17x4 kernel=3x3x4x1 strides=2x2 dilation=1x1 padding=valid"),
    (TunedConv2D, "8, 1", (4, 9, 9, 16),
     "atrous_conv2d train bfloat16 input=2x9x9x16 kernel=1x1x16x8 rate=1 padding=valid"),
])
def test_tuning_runs_in_the_replicas_of_a_distributed_step(tuned_class, arguments, batch_shape, key,
                                                           run_in_two_replicas):
    """In a step of two replicas (a MirroredStrategy on two logical CPUs, its own process), each
    getting half of the batch, a bfloat16 tuned layer tunes while the step is traced (timing for
    real), writes its training key and gives its Keras class's outputs to bfloat16 rounding."""
    half_batch = (batch_shape[0] // 2, *batch_shape[1:])
    report = run_in_two_replicas(TUNED_LAYER_STEP.format(
        module=tuned_class.__module__, tuned=tuned_class.__name__, arguments=arguments,
        keras_class=tuned_class.__bases__[0].__name__, half_batch=half_batch, batch=batch_shape))
    assert report["replicas"] == 2
    assert report["keys"] == [key]
    assert report["error"] <= low_precision_tolerance("bfloat16")
