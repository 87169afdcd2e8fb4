"""Median frequency balancing against a hand-computed case."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data.class_weights import class_pixel_counts, median_frequency_weights


def _examples(labels):
    return tf.data.Dataset.from_tensor_slices(
        {"label": np.stack(labels).astype(np.uint8), "name": [f"img{i}" for i in range(len(labels))]}
    )


def test_counts_and_weights_by_hand():
    # Image A (4 px): class 0 x3, class 1 x1. Image B (4 px): class 0 x2, ignore x2. Class 2 absent.
    a = np.array([[0, 0], [0, 1]])
    b = np.array([[0, 255], [0, 255]])
    pixels, image_pixels = class_pixel_counts(_examples([a, b]), 3, 255)
    np.testing.assert_array_equal(pixels, [5, 1, 0])
    np.testing.assert_array_equal(image_pixels, [6, 4, 0])  # B's ignored pixels are not counted
    # freq0 = 5/6, freq1 = 1/4; median of present = (5/6 + 1/4) / 2 = 13/24.
    weights = median_frequency_weights(pixels, image_pixels)
    np.testing.assert_allclose(weights, [(13 / 24) / (5 / 6), (13 / 24) / (1 / 4), 0.0], rtol=1e-6)
    assert weights.dtype == np.float32


def test_out_of_range_label_names_the_example():
    with pytest.raises(ValueError, match=r"img1 has value 7"):
        class_pixel_counts(_examples([np.zeros((2, 2)), np.full((2, 2), 7)]), 3, 255)


def test_no_labelled_pixels_is_an_error():
    with pytest.raises(ValueError, match="No labelled pixels"):
        median_frequency_weights(np.zeros(3, np.int64), np.zeros(3, np.int64))
