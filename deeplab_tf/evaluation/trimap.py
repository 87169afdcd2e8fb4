"""Boundary accuracy ("trimap", DeepLab v2 Fig. 10): metrics restricted to narrow bands around
ground-truth object boundaries, accumulated over a split for several band widths at once.

A pixel is a *boundary* pixel when one of its 4 neighbours has a different ground-truth value
(the ignore value counts as a value, so VOC's void outlines are boundaries, as in the paper). The
band of width w holds the pixels whose Euclidean distance to the nearest boundary pixel is at
most w; ignored pixels inside it are not counted.
"""

import cv2
import numpy as np

from deeplab_tf.evaluation.metrics import segmentation_metrics


def boundary_mask(labels) -> np.ndarray:
    """Returns bool [H, W]: True where a 4-neighbour of `labels` [H, W] has another value."""
    labels = np.asarray(labels)
    mask = np.zeros(labels.shape, bool)
    vertical = labels[1:] != labels[:-1]
    horizontal = labels[:, 1:] != labels[:, :-1]
    mask[1:] |= vertical
    mask[:-1] |= vertical
    mask[:, 1:] |= horizontal
    mask[:, :-1] |= horizontal
    return mask


def boundary_distance(labels) -> np.ndarray:
    """Returns float32 [H, W]: exact Euclidean distance of every pixel to the nearest boundary
    pixel of `labels` [H, W] (inf when there is no boundary)."""
    boundary = boundary_mask(labels)
    if not boundary.any():
        return np.full(boundary.shape, np.inf, np.float32)
    return cv2.distanceTransform((~boundary).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


class TrimapAccumulator:
    """Streaming confusion matrices of the bands of each width in `widths` (positive ints).

    Example:
    ```python
    trimap = TrimapAccumulator(num_classes=21, widths=range(1, 41))
    trimap.add(label, prediction)  # per image, [H, W] each
    curves = trimap.result()  # {"widths", "pixel_accuracy", "miou", "num_pixels"}
    ```
    """

    def __init__(self, num_classes: int, widths, ignore_label: int = 255):
        self.widths = sorted(int(w) for w in widths)
        if not self.widths or self.widths[0] < 1:
            raise ValueError(f"Trimap widths must be positive integers, got {list(widths)}")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        # Row d holds the pixels at distance in (d - 1, d]; band w is the sum of rows 0..w.
        self.by_distance = np.zeros((self.widths[-1] + 1, num_classes * num_classes), np.int64)

    def add(self, labels, predictions) -> None:
        """Adds one image: ground truth and predicted labels, int [H, W] each."""
        labels, predictions = np.asarray(labels), np.asarray(predictions)
        distance = np.ceil(boundary_distance(labels))
        keep = (labels != self.ignore_label) & (distance <= self.widths[-1])
        codes = labels[keep].astype(np.int64) * self.num_classes + predictions[keep]
        cells = distance[keep].astype(np.int64) * self.num_classes**2 + codes
        self.by_distance += np.bincount(cells, minlength=self.by_distance.size).reshape(self.by_distance.shape)

    def confusions(self) -> np.ndarray:
        """Returns int64 [len(widths), C, C]: the confusion matrix of each band."""
        cumulative = np.cumsum(self.by_distance, axis=0)[self.widths]
        return cumulative.reshape(len(self.widths), self.num_classes, self.num_classes)

    def result(self) -> dict:
        """Returns {"widths", "pixel_accuracy", "miou", "num_pixels"}, lists in width order."""
        metrics = [segmentation_metrics(confusion) for confusion in self.confusions()]
        return {
            "widths": list(self.widths),
            "pixel_accuracy": [m["pixel_accuracy"] for m in metrics],
            "miou": [m["miou"] for m in metrics],
            "num_pixels": [int(c.sum()) for c in self.confusions()],
        }
