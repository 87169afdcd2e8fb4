"""Shared fixtures for data tests: run an op eagerly and inside tf.data.Dataset.map; CamVid."""

import os

import pytest
import tensorflow as tf

CAMVID_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "camvid")


@pytest.fixture
def camvid_dir():
    """Returns the shared CamVid folder (SegNet layout); skips the test if it is absent."""
    if not os.path.isdir(CAMVID_DIR):
        pytest.skip(f"CamVid folder {CAMVID_DIR} not present")
    return os.path.normpath(CAMVID_DIR)


@pytest.fixture(params=["eager", "map"])
def run(request):
    """Returns run(fn, *tensors) -> fn's outputs as NumPy (same nesting).

    "eager" calls fn directly; "map" calls it inside `tf.data.Dataset.map` with every input's
    static shape erased to unknown dimensions, as for decoded images of varying size.
    """

    def erase_shape(tensor):
        return tf.compat.v1.placeholder_with_default(tensor, [None] * tensor.shape.rank)

    def run_fn(fn, *tensors):
        if request.param == "eager":
            outputs = fn(*tensors)
        else:
            dataset = tf.data.Dataset.from_tensors(tuple(tensors))
            dataset = dataset.map(lambda *inputs: fn(*(erase_shape(x) for x in inputs)))
            outputs = dataset.get_single_element()
        return tf.nest.map_structure(lambda t: t.numpy(), outputs)

    return run_fn
