"""`same_padding`: TensorFlow's stride-1 "same" zeros, by hand and against TF's own convolution."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers.padding import same_padding


@pytest.mark.parametrize("kernel_size, rate, expected", [
    (1, 1, (0, 0)),  # a 1x1 kernel needs no zeros, at any rate
    (1, 4, (0, 0)),
    (3, 1, (1, 1)),
    (3, 2, (2, 2)),
    (3, 12, (12, 12)),
    (2, 1, (0, 1)),  # even kernel, odd rate: the odd zero after
    (2, 3, (1, 2)),
    (4, 1, (1, 2)),
    (4, 2, (3, 3)),  # even kernel, even rate: symmetric
    (5, 3, (6, 6)),
])
def test_hand_computed(kernel_size, rate, expected):
    assert same_padding(kernel_size, rate) == expected


def test_rate_defaults_to_1():
    assert same_padding(3) == same_padding(3, 1) == (1, 1)


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("rate", [1, 2, 3])
@pytest.mark.parametrize("size", [(7, 7), (6, 9)])
def test_explicit_padding_then_valid_equals_tf_same(kernel_size, rate, size):
    """Padding `same_padding` zeros and convolving "VALID" is TF's "SAME", shape and values."""
    rng = np.random.default_rng(kernel_size * 10 + rate)
    x = rng.standard_normal((1, *size, 2)).astype("float32")
    w = rng.standard_normal((kernel_size, kernel_size, 2, 3)).astype("float32")
    tf_same = tf.nn.conv2d(x, w, strides=1, padding="SAME", dilations=rate)
    pad = same_padding(kernel_size, rate)
    padded = tf.pad(x, [(0, 0), pad, pad, (0, 0)])
    ours = tf.nn.conv2d(padded, w, strides=1, padding="VALID", dilations=rate)
    assert ours.shape == tf_same.shape == (1, *size, 3)
    np.testing.assert_allclose(ours, tf_same, rtol=1e-5, atol=1e-5)
