"""blobby_probabilities: a network-like unary made from ground truth."""

import numpy as np

from deeplab_tf.crf.synthetic_unary import blobby_probabilities


def test_shape_distribution_and_determinism():
    label = np.zeros((40, 56), np.uint8)
    label[:, 30:] = 2
    label[:5, :5] = 255
    probabilities = blobby_probabilities(label, 21, seed=3)
    assert probabilities.shape == (40, 56, 21) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities, blobby_probabilities(label, 21, seed=3))
    assert not np.array_equal(probabilities, blobby_probabilities(label, 21, seed=4))


def test_coarse_but_mostly_right():
    """Mostly right, more often wrong at boundaries than inside regions, blind to objects under
    the stride."""
    label = np.zeros((96, 128), np.uint8)
    label[:, 64:] = 1
    label[40:42, 10:30] = 2  # a 2-pixel-thin object: lost at output stride 8
    correct = blobby_probabilities(label, 3, seed=0).argmax(-1) == label
    assert 0.85 < correct.mean() < 0.99
    assert correct[:, 56:72].mean() < correct[:, 80:].mean() and correct[:, 56:72].mean() < correct[:, :48].mean()
    assert correct[40:42, 10:30].mean() < 0.5
