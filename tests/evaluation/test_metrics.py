"""Metrics against a direct NumPy reference on random label maps with ignore pixels."""

import re

import numpy as np
import pytest

from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics


def reference_iou(labels, predictions, num_classes, ignore=255):
    """Per-class IoU by counting sets of pixels, NaN when the class is in neither map."""
    valid = labels != ignore
    ious = []
    for c in range(num_classes):
        gt, pr = (labels == c) & valid, (predictions == c) & valid
        union = np.sum(gt | pr)
        ious.append(np.sum(gt & pr) / union if union else np.nan)
    return np.array(ious)


def test_matches_reference_with_ignore_and_absent_classes():
    rng = np.random.default_rng(0)
    num_classes = 6
    labels = rng.integers(0, 4, size=(3, 17, 23))  # classes 4 and 5 absent from ground truth
    labels[rng.random(labels.shape) < 0.2] = 255
    predictions = rng.integers(0, 5, size=labels.shape)  # class 5 absent from both
    metrics = segmentation_metrics(confusion_matrix(labels, predictions, num_classes))
    expected = reference_iou(labels, predictions, num_classes)
    np.testing.assert_allclose(metrics["per_class_iou"], expected, equal_nan=True)
    assert metrics["miou"] == pytest.approx(np.nanmean(expected))
    assert metrics["absent_classes"] == [5]
    valid = labels != 255
    assert metrics["pixel_accuracy"] == pytest.approx(np.mean(labels[valid] == predictions[valid]))


def test_hand_computed_case():
    labels = np.array([[0, 0, 1, 255]])
    predictions = np.array([[0, 1, 1, 0]])
    metrics = segmentation_metrics(confusion_matrix(labels, predictions, 2))
    # class 0: tp 1, union 2 -> 0.5; class 1: tp 1, union 2 -> 0.5
    assert metrics["per_class_iou"] == [0.5, 0.5]
    assert metrics["pixel_accuracy"] == pytest.approx(2 / 3)


def test_out_of_range_values_are_refused():
    with pytest.raises(ValueError, match="label value 7 is outside 0..2"):
        confusion_matrix(np.array([7]), np.array([0]), 3)
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix(np.zeros(3), np.zeros(4), 3)


def test_mean_class_accuracy_matches_reference_and_absent_classes_are_reported():
    rng = np.random.default_rng(3)
    num_classes = 5
    labels = rng.integers(0, 3, size=(2, 13, 11))  # 3 and 4 absent from ground truth
    labels[rng.random(labels.shape) < 0.1] = 255
    predictions = rng.integers(0, 4, size=labels.shape)  # 4 absent from both
    metrics = segmentation_metrics(confusion_matrix(labels, predictions, num_classes))
    valid = labels != 255
    recalls = [np.mean(predictions[valid & (labels == c)] == c) for c in range(3)]  # classes in the ground truth
    assert metrics["mean_class_accuracy"] == pytest.approx(np.mean(recalls))
    assert metrics["absent_classes"] == [4]
    assert np.isnan(metrics["per_class_iou"][4]) and metrics["per_class_iou"][3] == 0.0


def test_format_table_says_which_classes_are_excluded_from_the_mean():
    from deeplab_tf.evaluation.evaluator import format_table

    metrics = segmentation_metrics(confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 3))
    table = format_table({**metrics, "class_names": ["sky", "road", "boat"]})
    assert re.search(r"boat +absent", table)
    assert "excluded from the mean, absent from ground truth and prediction: boat" in table
