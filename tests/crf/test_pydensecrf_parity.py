"""The TensorFlow backend reproduces pydensecrf (same lattice, normalisation and updates).

Both run densecrf's algorithm in float32; they differ only in summation order, so refined
probabilities agree to ~1e-6 (measured up to 5e-7 after 10 iterations); 1e-4 leaves room for
other CPUs' rounding. bench/crf_parity.py runs 20 full-size CamVid images.
"""

import numpy as np
import pytest

from deeplab_tf.crf import DenseCRFParams, refine, refine_many
from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics


@pytest.mark.parametrize(
    "shape, params",
    [
        ((12, 10, 3), DenseCRFParams(iterations=1)),
        ((40, 50, 4), DenseCRFParams(sigma_alpha=20)),
        ((33, 47, 6), DenseCRFParams(w1=5, sigma_alpha=30, sigma_beta=3, w2=3, sigma_gamma=3)),
        ((64, 48, 2), DenseCRFParams(w1=3.5, sigma_alpha=80, sigma_beta=13, w2=1, sigma_gamma=1, iterations=4)),
    ],
)
def test_matches_pydensecrf_on_small_images(shape, params, scene):
    image, probabilities = scene(*shape, seed=shape[0])
    refined = refine(image, probabilities, params)
    expected = refine(image, probabilities, params, backend="pydensecrf")
    assert refined.shape == shape and refined.dtype == np.float32
    assert np.abs(expected - probabilities).max() > 0.1
    np.testing.assert_allclose(refined, expected, atol=1e-4)


def test_matches_pydensecrf_on_camvid(camvid_examples):
    """Three downscaled CamVid images with a blobby unary, with the benchmark's thresholds:
    labels agree on >= 99% of pixels, mIoU gains over the unary within 0.3 points."""
    images = [image for image, _, _ in camvid_examples]
    unaries = [unary for _, _, unary in camvid_examples]
    expected = [r.argmax(-1) for r in refine_many(images, unaries, processes=1)]
    refined = [refine(image, unary).argmax(-1) for image, unary in zip(images, unaries)]
    agreement = np.mean(np.concatenate([(a == b).ravel() for a, b in zip(refined, expected)]))

    def miou(predictions):
        return segmentation_metrics(
            sum(confusion_matrix(label, p, 11) for (_, label, _), p in zip(camvid_examples, predictions))
        )["miou"]

    base = miou([u.argmax(-1) for u in unaries])
    assert agreement >= 0.99
    assert abs(miou(refined) - miou(expected)) * 100 <= 0.3
    assert miou(expected) != base  # the CRF changes the result


def test_refine_many_keeps_order_across_processes(scene):
    scenes = [scene(20, 16 + 4 * i, 3, seed=i) for i in range(3)]
    images, unaries = [s[0] for s in scenes], [s[1] for s in scenes]
    parallel = refine_many(images, unaries, DenseCRFParams(iterations=2), processes=2)
    for image, unary, result in zip(images, unaries, parallel):
        np.testing.assert_array_equal(result, refine(image, unary, DenseCRFParams(iterations=2), backend="pydensecrf"))
