"""Invalid inputs get a clear ValueError (eagerly) or InvalidArgumentError (inside a graph)."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.crf import DenseCRFParams, refine, refine_batch

IMAGE = np.zeros((6, 5, 3), np.uint8)
PROBABILITIES = np.full((6, 5, 2), 0.5, np.float32)


@pytest.mark.parametrize("backend", ["tensorflow", "pydensecrf"])
@pytest.mark.parametrize(
    "image, probabilities, message",
    [
        (IMAGE[:4], PROBABILITIES, r"differ in size: image \(4, 5, 3\) vs probabilities \(6, 5, 2\)"),
        (IMAGE, PROBABILITIES[:, :3], r"differ in size: image \(6, 5, 3\) vs probabilities \(6, 3, 2\)"),
        (IMAGE[..., :2], PROBABILITIES, r"3 channels, got shape \(6, 5, 2\)"),
        (IMAGE[None], PROBABILITIES, r"shapes \[H, W, 3\] and \[H, W, C\], got \(1, 6, 5, 3\) and \(6, 5, 2\)"),
        (IMAGE.astype(np.float32), PROBABILITIES, "uint8 image .* got dtype float32"),
        (IMAGE, PROBABILITIES * [3, -1], r"must lie in \[0, 1\] \(pass softmax\(logits\), not logits\): value 1.5 at"),
        (IMAGE, PROBABILITIES - 0.6, r"must lie in \[0, 1\].*value -0.1"),
        (IMAGE, PROBABILITIES * 0.9, r"sum to 1 over the last \(class\) axis within 0.001: pixel \(0, 0\) sums to 0.9"),
        (IMAGE, np.where(PROBABILITIES > 0, np.nan, 0).astype(np.float32), "must be finite: value nan"),
        (IMAGE, PROBABILITIES.astype(np.int32), "Expected float probabilities, got dtype int32"),
        (IMAGE[:0], PROBABILITIES[:0], "Empty input"),
    ],
)
def test_refine_refuses_bad_inputs_clearly(backend, image, probabilities, message):
    with pytest.raises(ValueError, match=message):
        refine(image, probabilities, backend=backend)


def test_unknown_backend():
    with pytest.raises(ValueError, match="Unknown CRF backend 'densecrf'; known: tensorflow, pydensecrf"):
        refine(IMAGE, PROBABILITIES, backend="densecrf")


def test_refine_batch_refuses_bad_inputs_eagerly():
    with pytest.raises(ValueError, match=r"differ in size: image \(1, 6, 5, 3\) vs probabilities \(1, 6, 4, 2\)"):
        refine_batch(IMAGE[None], PROBABILITIES[None, :, :4])
    with pytest.raises(ValueError, match="sum to 1"):
        refine_batch(IMAGE[None], PROBABILITIES[None] * 3 / 4)


def test_refine_batch_refuses_static_mismatch_when_traced():
    @tf.function
    def run(images, probabilities):
        return refine_batch(images, probabilities)

    with pytest.raises(ValueError, match="Images and probabilities differ in size"):
        run(tf.zeros([1, 6, 5, 3], tf.uint8), tf.zeros([1, 6, 4, 2]))
    with pytest.raises(ValueError, match="Expected uint8 images"):
        run(tf.zeros([1, 6, 5, 3], tf.int32), tf.zeros([1, 6, 5, 2]))


def test_refine_batch_checks_dynamic_inputs_inside_the_graph():
    run = tf.function(
        lambda images, probabilities: refine_batch(images, probabilities, DenseCRFParams(iterations=1)),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8), tf.TensorSpec([None, None, None, None], tf.float32)],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="Images and probabilities differ in size"):
        run(IMAGE[None], PROBABILITIES[None, :5])
    with pytest.raises(tf.errors.InvalidArgumentError, match="probabilities must sum to 1"):
        run(IMAGE[None], PROBABILITIES[None] / 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"probabilities must lie in \[0, 1\]"):
        run(IMAGE[None], PROBABILITIES[None] * -1)


def test_too_small_sigma_for_the_image_is_reported():
    """Lattice keys are packed into int64; absurdly small sigmas make them overflow."""
    params = DenseCRFParams(sigma_alpha=1e-6, sigma_beta=1e-6, iterations=1)
    image = np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="lattice keys do not fit in int64: a sigma is too small"):
        refine(image, PROBABILITIES, params)
