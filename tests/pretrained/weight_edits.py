"""Edited copies of an official file's tensors, and the all-or-nothing check of a loader on them
(shared by the TF.js and TFLite loader tests)."""

import numpy as np
import pytest

from deeplab_tf.models.deeplab import CLASSIFIER_LAYER
from deeplab_tf.pretrained.source_tensors import SourceTensors


def edited(tensors, remove=(), add=None):
    """Returns a copy of `tensors` without `remove`, with `add` ({name: array}) set."""
    values = {name: value for name, value in tensors.items() if name not in remove}
    values.update(add or {})
    return SourceTensors(values, tensors.path)


def fails_and_sets_nothing(load, model, tensors, error, match):
    """Asserts that `load(model, tensors)` raises `error` matching `match` in one line and leaves
    the classifier's kernel as it was."""
    before = model.get_layer(CLASSIFIER_LAYER).get_weights()[0].copy()
    with pytest.raises(error, match=match) as raised:
        load(model, tensors)
    assert "\n" not in str(raised.value)
    np.testing.assert_array_equal(model.get_layer(CLASSIFIER_LAYER).get_weights()[0], before)
