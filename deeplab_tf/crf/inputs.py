"""Checks of the CRF's inputs (an image and per-pixel class probabilities) and the unary term."""

import numpy as np

PROBABILITY_FLOOR = 1e-5
"""Probabilities are clipped to at least this before the log, as
`pydensecrf.utils.unary_from_softmax` does, so the unary -log P stays finite (<= 11.5)."""

SUM_TOLERANCE = 1e-3
"""How far the class probabilities of a pixel may sum from 1."""


def check_inputs(image, probabilities, batched: bool = False):
    """Returns (image uint8, probabilities float32), C-contiguous, after checking them.

    Shapes: image [H, W, 3] and probabilities [H, W, C] (C >= 1), or with a leading batch
    dimension B when `batched`. Raises ValueError naming the problem and the offending shapes or
    values: wrong rank, not 3 colour channels, image not uint8, different batch/height/width,
    an empty image, or probabilities that are not a distribution over the last axis (outside
    [0, 1], not finite, or summing to more than `SUM_TOLERANCE` away from 1).
    """
    image, probabilities = np.asarray(image), np.asarray(probabilities)
    rank = 4 if batched else 3
    layout = "[B, H, W, 3] and [B, H, W, C]" if batched else "[H, W, 3] and [H, W, C]"
    if image.ndim != rank or probabilities.ndim != rank:
        raise ValueError(
            f"Expected image and probabilities of shapes {layout}, got {image.shape} and {probabilities.shape}"
        )
    if image.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image with 3 channels, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image (0..255), got dtype {image.dtype}")
    if image.shape[:-1] != probabilities.shape[:-1]:
        raise ValueError(
            f"Image and probabilities differ in size: image {image.shape} vs probabilities "
            f"{probabilities.shape} (the leading dimensions must be equal)"
        )
    if image.size == 0 or probabilities.shape[-1] < 1:
        raise ValueError(f"Empty input: image {image.shape}, probabilities {probabilities.shape}")
    if not np.issubdtype(probabilities.dtype, np.floating):
        raise ValueError(f"Expected float probabilities, got dtype {probabilities.dtype}")
    check_distribution(probabilities)
    return np.ascontiguousarray(image), np.ascontiguousarray(probabilities, dtype=np.float32)


def check_distribution(probabilities) -> None:
    """Raises ValueError unless float probabilities [..., C] are finite, in [0, 1] and sum to 1
    (within `SUM_TOLERANCE`) over the last axis; the message names the worst value and where."""
    probabilities = np.asarray(probabilities)
    if not np.all(np.isfinite(probabilities)):
        where = np.argwhere(~np.isfinite(probabilities))[0]
        raise ValueError(f"probabilities must be finite: value {probabilities[tuple(where)]} at index {tuple(where)}")
    low, high = probabilities.min(), probabilities.max()
    if low < 0 or high > 1:
        where = np.unravel_index(np.argmax(np.maximum(-probabilities, probabilities - 1)), probabilities.shape)
        raise ValueError(
            f"probabilities must lie in [0, 1] (pass softmax(logits), not logits): value "
            f"{probabilities[where]:.6g} at index {tuple(int(i) for i in where)}, range [{low:.6g}, {high:.6g}]"
        )
    error = np.abs(probabilities.sum(axis=-1, dtype=np.float64) - 1.0)
    if error.max() > SUM_TOLERANCE:
        where = np.unravel_index(np.argmax(error), error.shape)
        total = probabilities[where].sum(dtype=np.float64)
        raise ValueError(
            f"probabilities must sum to 1 over the last (class) axis within {SUM_TOLERANCE}: pixel "
            f"{tuple(int(i) for i in where)} sums to {total:.6g} (shape {probabilities.shape})"
        )


def unary_energy(probabilities) -> np.ndarray:
    """Returns the float32 unary -log(max(P, PROBABILITY_FLOOR)), same shape as `probabilities`."""
    return -np.log(np.maximum(np.asarray(probabilities, np.float32), np.float32(PROBABILITY_FLOOR)))
