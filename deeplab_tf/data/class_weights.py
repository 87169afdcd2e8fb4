"""Per-class loss weights computed from a split's labels (for rare classes, e.g. CamVid's pole,
sign, pedestrian, bicyclist and fence)."""

import numpy as np


def class_pixel_counts(examples, num_classes: int, ignore_label: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (pixels, image_pixels), both int64 [num_classes]: pixels[c] counts the pixels
    labelled c over `examples` (a dataset of {"label": uint8 [H, W]}); image_pixels[c] counts
    every labelled pixel of the images that contain class c. Raises ValueError naming the
    example and the value when a label is outside 0..num_classes-1 and not `ignore_label`."""
    pixels = np.zeros(num_classes, np.int64)
    image_pixels = np.zeros(num_classes, np.int64)
    for example in examples.as_numpy_iterator():
        label = example["label"]
        counts = np.bincount(label.ravel(), minlength=256)
        outside = [v for v in np.flatnonzero(counts[num_classes:]) + num_classes if v != ignore_label]
        if outside:
            name = example.get("name", b"?")
            raise ValueError(
                f"Label {name.decode() if isinstance(name, bytes) else name} has value {outside[0]}; "
                f"expected 0..{num_classes - 1} or {ignore_label} (ignore)"
            )
        counts = counts[:num_classes]
        pixels += counts
        image_pixels[counts > 0] += counts.sum()
    return pixels, image_pixels


def median_frequency_weights(pixels: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """Returns float32 [num_classes] median frequency balancing weights (Eigen & Fergus 2015, as
    used by SegNet on CamVid): weight[c] = median(freq) / freq[c] with freq[c] = pixels[c] /
    image_pixels[c]. A class that never occurs gets weight 0 (it has no pixels to weigh)."""
    present = pixels > 0
    if not present.any():
        raise ValueError("No labelled pixels: cannot compute class weights")
    frequency = np.where(present, pixels / np.maximum(image_pixels, 1), 0.0)
    median = np.median(frequency[present])
    return np.where(present, median / np.where(present, frequency, 1.0), 0.0).astype(np.float32)
