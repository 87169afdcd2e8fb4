"""Segmentation metrics from a streaming confusion matrix."""

import numpy as np

from deeplab_tf.data.dataset_info import IGNORE_LABEL


def confusion_matrix(labels, predictions, num_classes: int, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Returns the int64 [num_classes, num_classes] confusion matrix (rows = ground truth,
    columns = prediction) over pixels whose label is not `ignore_label`.

    Raises ValueError when a label other than `ignore_label`, or a prediction, is outside
    0..num_classes-1, or when the shapes differ.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    predictions = np.asarray(predictions).astype(np.int64).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions differ in size: {labels.size} vs {predictions.size}")
    valid = labels != ignore_label
    labels, predictions = labels[valid], predictions[valid]
    for what, values in (("label", labels), ("prediction", predictions)):
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise ValueError(f"{what} value {bad[0]} is outside 0..{num_classes - 1}")
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def segmentation_metrics(confusion: np.ndarray) -> dict:
    """Returns metrics of a confusion matrix (rows = ground truth, columns = prediction).

    Keys: "per_class_iou" (list of float, NaN for a class absent from both ground truth and
    prediction), "miou" (mean over classes that are not NaN), "pixel_accuracy",
    "mean_class_accuracy" (over classes present in the ground truth), "absent_classes" (indices
    excluded from the mean).
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    ground_truth = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    union = ground_truth + predicted - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
        class_accuracy = np.where(ground_truth > 0, true_positive / ground_truth, np.nan)
    total = confusion.sum()
    return {
        "per_class_iou": [float(v) for v in iou],
        "miou": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
        "pixel_accuracy": float(true_positive.sum() / total) if total else float("nan"),
        "mean_class_accuracy": float(np.nanmean(class_accuracy)) if np.any(ground_truth > 0) else float("nan"),
        "absent_classes": [int(i) for i in np.flatnonzero(union == 0)],
    }
