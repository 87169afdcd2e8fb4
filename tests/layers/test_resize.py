"""`ResizeToMatch(align_corners=True)`: TF1's `resize_bilinear(align_corners=True)`, the resize of
every official DeepLab graph; the default stays `tf.image.resize` (half-pixel centres)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers.resize import ResizeToMatch
from tests.cpu_capabilities import bfloat16_sums_in_float32

RNG = np.random.default_rng(0)


def _reference(height, width):
    return tf.zeros((1, height, width, 1))


@pytest.mark.parametrize("source, target", [
    ((65, 65), (513, 513)),  # the official logits -> padded image
    ((1, 1), (65, 65)),  # the official image pooling -> feature map
    ((5, 7), (9, 4)),  # up in one axis, down in the other
    ((33, 33), (33, 33)),  # identity
])
def test_align_corners_equals_tf1_resize_bilinear(source, target):
    features = RNG.standard_normal((2, *source, 3)).astype("float32")
    ours = ResizeToMatch(align_corners=True)([features, _reference(*target)])
    tf1 = tf.compat.v1.image.resize_bilinear(features, target, align_corners=True)
    assert ours.shape == (2, *target, 3)
    np.testing.assert_allclose(ours, tf1, rtol=0, atol=1e-6)


def test_align_corners_samples_input_position_i_times_in_minus_1_over_out_minus_1():
    """Hand-computed: 3 -> 5 along the width puts output pixels at input positions 0, .5, 1, 1.5, 2."""
    row = np.array([0.0, 10.0, 30.0], "float32").reshape(1, 1, 3, 1)
    ours = ResizeToMatch(align_corners=True)([row, _reference(1, 5)])
    np.testing.assert_allclose(np.ravel(ours), [0.0, 5.0, 10.0, 20.0, 30.0], atol=1e-6)


def test_default_is_unchanged_tf_image_resize():
    features = RNG.standard_normal((1, 5, 7, 2)).astype("float32")
    layer = ResizeToMatch()
    assert layer.align_corners is False
    np.testing.assert_allclose(layer([features, _reference(9, 4)]),
                               tf.image.resize(features, (9, 4), method="bilinear"), atol=1e-6)
    aligned = ResizeToMatch(align_corners=True)([features, _reference(9, 4)])
    assert np.abs(np.asarray(aligned) - np.asarray(layer([features, _reference(9, 4)]))).max() > 1e-2


def test_float16_layer_returns_float16():
    """TF's ResizeBilinear always returns float32; the layer casts back to its compute dtype."""
    features = tf.constant(RNG.standard_normal((1, 3, 3, 2)), tf.float16)
    assert ResizeToMatch(align_corners=True, dtype="float16")([features, _reference(5, 5)]).dtype == tf.float16


def test_config_round_trip_keeps_align_corners():
    layer = ResizeToMatch(align_corners=True, name="up")
    config = layer.get_config()
    assert config["align_corners"] is True
    restored = ResizeToMatch.from_config(config)
    assert restored.align_corners is True and restored.interpolation == "bilinear"
    assert ResizeToMatch.from_config(ResizeToMatch().get_config()).align_corners is False


def test_saved_model_file_keeps_align_corners(tmp_path):
    features = keras.Input((None, None, 2))
    reference = keras.Input((None, None, 1))
    model = keras.Model([features, reference], ResizeToMatch(align_corners=True)([features, reference]))
    path = str(tmp_path / "resize.keras")
    model.save(path)
    x = RNG.standard_normal((1, 4, 6, 2)).astype("float32")
    np.testing.assert_allclose(keras.models.load_model(path)([x, np.zeros((1, 7, 11, 1), "float32")]),
                               tf.compat.v1.image.resize_bilinear(x, (7, 11), align_corners=True), atol=1e-6)


def test_align_corners_needs_bilinear():
    with pytest.raises(ValueError, match="align_corners=True needs interpolation='bilinear'"):
        ResizeToMatch(interpolation="nearest", align_corners=True)


@pytest.fixture
def mixed_bfloat16():
    """Keras' global dtype policy "mixed_bfloat16" (as the trainer sets it) for one test."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("align_corners", [False, True])
def test_a_bfloat16_training_step_compiles_under_xla_with_the_gradients_of_the_step_without(
        align_corners, mixed_bfloat16):
    """conv -> batch norm -> ReLU -> conv -> resize in mixed bfloat16 (every DeepLab head's end):
    with `jit_compile` it compiles (TF 2.21's XLA mistyped the resize's bfloat16 gradient: "Seen
    floating point types of different precisions") and gives the gradients of the step without
    XLA to bfloat16 rounding; the resized map's values are the float32 resize of its input."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 8))
    hidden = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    hidden = keras.layers.ReLU()(keras.layers.BatchNormalization()(hidden))
    logits = keras.layers.Conv2D(4, 1)(hidden)
    model = keras.Model(inputs, ResizeToMatch(align_corners=align_corners)([logits, inputs]))
    x = tf.constant(np.random.default_rng(1).standard_normal((2, 16, 16, 8)), tf.float32)

    def step(x):
        with tf.GradientTape() as tape:
            y = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, model.trainable_variables)

    # The step without XLA runs this CPU's bfloat16 kernels. Where they round their sums to bfloat16
    # (probed; Eigen's), the 1x1 convolution's kernel gradient, a sum over 512 positions, was 5.2%
    # of its largest element off XLA's (sqrt(512) * 2**-9 = 4.4%): 1e-1 there.
    tolerance = 2e-2 if bfloat16_sums_in_float32() else 1e-1
    for ours, theirs in zip(tf.function(step, jit_compile=True)(x), tf.function(step)(x)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance * float(tf.reduce_max(tf.abs(theirs))))
    small = keras.Model(inputs, logits)(x)
    resized = model(x)
    assert small.dtype == resized.dtype == tf.bfloat16
    expected = ResizeToMatch(align_corners=align_corners, dtype="float32")([tf.cast(small, tf.float32), x])
    np.testing.assert_array_equal(tf.cast(resized, tf.float32), tf.cast(tf.cast(expected, tf.bfloat16), tf.float32))
