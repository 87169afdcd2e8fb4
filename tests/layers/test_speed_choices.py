"""apply_speed_choices (deeplab_tf.layers.speed_choices) on Keras' own layers: a built model's
depthwise and full convolutions become the tuned subclasses, same weights and outputs, and a
`.keras` file keeps them."""

import keras
import numpy as np

from deeplab_tf.layers.speed_choices import apply_speed_choices
from deeplab_tf.layers.tuned_conv import TunedConv2D
from deeplab_tf.layers.tuned_depthwise_conv import TunedDepthwiseConv2D


def test_keras_convolutions_become_tuned_ones_and_stay_so_through_a_keras_file(tmp_path):
    inputs = keras.Input((9, 11, 3))
    hidden = keras.layers.DepthwiseConv2D(3, strides=2, name="strided_depthwise")(inputs)
    hidden = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="same_depthwise")(hidden)
    hidden = keras.layers.Conv2D(4, 1, strides=2, name="strided_pointwise")(hidden)
    outputs = keras.layers.Conv2D(5, 3, padding="same", name="same")(hidden)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).standard_normal((2, 9, 11, 3)).astype(np.float32)
    weights, before = model.get_weights(), model(x).numpy()
    tuned = [TunedDepthwiseConv2D, TunedDepthwiseConv2D, TunedConv2D, TunedConv2D]
    apply_speed_choices(model, "auto", fused_batch_norm=False)
    assert [type(layer) for layer in model.layers[1:]] == tuned
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    np.testing.assert_array_equal(model(x).numpy(), before)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in loaded.layers[1:]] == tuned
    np.testing.assert_array_equal(loaded(x).numpy(), before)
