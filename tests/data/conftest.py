"""Shared fixtures for data tests: run an op eagerly and inside tf.data.Dataset.map; CamVid;
the check that a training stream visits the shuffled examples."""

import os

import numpy as np
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


@pytest.fixture
def check_shuffled_stream():
    """Returns check(config, seed=4, batches=3): asserts that `batches` unaugmented training
    batches of 2 (config with crop = image size, scale 1, no flip) hold, in order, the split's
    decoded examples shuffled as `tf.data` shuffles them with `seed` (buffer
    `config.shuffle_buffer`, reshuffled each epoch) and repeated, normalised as x / 127.5 - 1:
    the stream as it was defined before the pipeline shuffled undecoded records."""
    from deeplab_tf.data.pipeline import build_train_dataset
    from deeplab_tf.data.sources import get_source

    def normalize(pixels):
        return pixels / 127.5 - 1.0

    def check(config, seed=4, batches=3):
        expected = get_source(config).examples(config.train_split).shuffle(
            config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        expected = list(expected.take(2 * batches))
        stream = list(build_train_dataset(config, 2, normalize, seed=seed).take(batches))
        assert len(stream) == batches
        for b, (images, labels) in enumerate(stream):
            for i in range(2):
                example = expected[2 * b + i]
                np.testing.assert_allclose(images[i], normalize(example["image"].numpy().astype(np.float32)))
                np.testing.assert_array_equal(labels[i], example["label"].numpy())

    return check
