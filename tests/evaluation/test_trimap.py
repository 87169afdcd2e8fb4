"""Trimap (boundary band) metrics against a brute-force distance reference on small images."""

import numpy as np
import pytest

from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics
from deeplab_tf.evaluation.trimap import TrimapAccumulator, boundary_distance, boundary_mask


def brute_force_band(labels, width):
    """Pixels within Euclidean distance `width` of a pixel whose 4-neighbour has another value."""
    height, w = labels.shape
    boundary = [
        (y, x) for y in range(height) for x in range(w)
        if any(0 <= y + dy < height and 0 <= x + dx < w and labels[y + dy, x + dx] != labels[y, x]
               for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)))
    ]
    ys, xs = np.mgrid[:height, :w]
    if not boundary:
        return np.zeros(labels.shape, bool)
    points = np.array(boundary)
    distance = np.sqrt((ys[..., None] - points[:, 0]) ** 2 + (xs[..., None] - points[:, 1]) ** 2).min(axis=-1)
    return distance <= width


def blobs(rng, shape, num_classes):
    """A blocky random label map (upsampled noise) with ignore pixels, so it has real boundaries."""
    coarse = rng.integers(0, num_classes, size=(shape[0] // 4 + 1, shape[1] // 5 + 1))
    labels = np.kron(coarse, np.ones((4, 5), int))[: shape[0], : shape[1]]
    labels[rng.random(shape) < 0.05] = 255
    return labels


def test_bands_match_brute_force_reference():
    rng = np.random.default_rng(1)
    num_classes, widths = 4, (1, 2, 3, 5, 8)
    trimap = TrimapAccumulator(num_classes, widths)
    expected = np.zeros((len(widths), num_classes, num_classes), np.int64)
    for shape in ((19, 23), (12, 31), (9, 9)):
        labels = blobs(rng, shape, num_classes)
        predictions = np.where(rng.random(shape) < 0.7, np.where(labels == 255, 0, labels), rng.integers(0, num_classes, shape))
        trimap.add(labels, predictions)
        for i, width in enumerate(widths):
            band = brute_force_band(labels, width)
            expected[i] += confusion_matrix(labels[band], predictions[band], num_classes)
    np.testing.assert_array_equal(trimap.confusions(), expected)
    result = trimap.result()
    assert result["widths"] == list(widths)
    for i in range(len(widths)):
        reference = segmentation_metrics(expected[i])
        assert result["pixel_accuracy"][i] == pytest.approx(reference["pixel_accuracy"])
        np.testing.assert_allclose(result["miou"][i], reference["miou"])
    assert result["num_pixels"] == sorted(result["num_pixels"])  # bands are nested


def test_distance_is_exact_euclidean():
    labels = np.zeros((15, 15), int)
    labels[7, 7] = 1  # boundary: the centre pixel and its 4 neighbours
    distance = boundary_distance(labels)
    assert distance[7, 7] == 0 and distance[7, 8] == 0 and distance[7, 12] == pytest.approx(4.0)
    assert distance[3, 3] == pytest.approx(np.hypot(3, 4))  # to (7, 6) or (6, 7)
    assert boundary_mask(labels).sum() == 5


def test_image_without_boundary_has_empty_bands_and_bad_widths_are_refused():
    trimap = TrimapAccumulator(2, (1, 40))
    trimap.add(np.ones((6, 6), int), np.ones((6, 6), int))
    assert trimap.result()["num_pixels"] == [0, 0] and np.isnan(trimap.result()["miou"][0])
    with pytest.raises(ValueError, match="positive integers"):
        TrimapAccumulator(2, (0, 3))
