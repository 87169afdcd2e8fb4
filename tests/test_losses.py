"""Loss and schedule against direct NumPy formulas."""

import numpy as np
import pytest

from deeplab_tf.losses import masked_sparse_cross_entropy
from deeplab_tf.schedules import PolyDecay


def test_cross_entropy_ignores_255():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=(2, 5, 4))
    labels[0, :2] = 255
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels != 255
    expected = -np.mean(np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], -1)[..., 0][valid])
    assert float(masked_sparse_cross_entropy(labels, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(masked_sparse_cross_entropy(np.full((1, 2, 2), 255), logits[:1, :2, :2])) == 0.0


def test_poly_decay():
    schedule = PolyDecay(0.01, 100, 0.9)
    for step in (0, 1, 50, 99, 100, 150):
        expected = 0.01 * (1 - min(step, 100) / 100) ** 0.9
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-12)
