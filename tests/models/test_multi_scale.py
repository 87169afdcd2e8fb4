"""MSC: per-pixel max over scales of the shared network's resized scores (NumPy reference)."""

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf.models import build_multi_scale


def tiny_network(num_classes=3):
    images = keras.Input((None, None, 3))
    logits = keras.layers.Conv2D(num_classes, 3, padding="same")(images)
    return keras.Model(images, logits)


def test_fused_scores_are_the_max_over_scales():
    network = tiny_network()
    fused, training = build_multi_scale(network, (0.5, 0.75, 1.0))
    images = np.random.default_rng(0).normal(size=(2, 24, 32, 3)).astype(np.float32)
    per_scale = []
    for scale in (0.5, 0.75, 1.0):
        size = (round(24 * scale), round(32 * scale))
        scores = network(tf.image.resize(images, size)).numpy()
        per_scale.append(tf.image.resize(scores, (24, 32)).numpy())
    expected = np.max(np.stack(per_scale), axis=0)
    np.testing.assert_allclose(fused(images).numpy(), expected, rtol=1e-5, atol=1e-5)
    outputs = training(images)
    assert len(outputs) == 4
    np.testing.assert_allclose(outputs[0].numpy(), expected, rtol=1e-5, atol=1e-5)
    for output, reference in zip(outputs[1:], per_scale):
        np.testing.assert_allclose(output.numpy(), reference, rtol=1e-5, atol=1e-5)
    assert len(fused.trainable_weights) == len(network.trainable_weights)  # shared, not copied
