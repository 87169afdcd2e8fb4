"""The TensorFlow permutohedral lattice: structure, and accuracy against exact Gaussian sums."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.crf.permutohedral import build_lattice, lattice_filter, rescale


def dense(sparse):
    return tf.sparse.to_dense(tf.sparse.reorder(sparse)).numpy()


@pytest.mark.parametrize("d", [1, 2, 5])
def test_barycentric_weights_and_blur_structure(d):
    features = np.random.default_rng(d).normal(size=(200, d)).astype(np.float32) * 3
    lattice = build_lattice(tf.constant(features))
    splat = dense(lattice.splat)
    assert splat.shape[1] == 200 and np.all(splat >= -1e-6)
    np.testing.assert_allclose(splat.sum(0), 1.0, atol=1e-5)  # each point's d+1 weights sum to 1
    assert np.all((splat > 0).sum(0) <= d + 1)
    assert len(lattice.blur) == d + 1
    for blur in lattice.blur:  # neighbour relations go both ways: n1 of i is j <=> n2 of j is i
        matrix = dense(blur)
        np.testing.assert_array_equal(matrix, matrix.T)
        np.testing.assert_array_equal(np.diag(matrix), 1.0)


def test_two_dimensional_filter_matches_exact_gaussian():
    """On a dense 2-D grid (pixel positions / sigma, as the CRF's spatial kernel with sigma=3) the
    lattice's normalised filter stays close to the exact normalised Gaussian
    exp(-|f_i - f_j|^2 / 2). Tolerance: the lattice interpolates linearly and blurs with a
    [1 2 1]/4 kernel per lattice axis, so it only approximates a Gaussian; on 24x20..40x30
    grids with sigma 1.5..5 the largest error measured 3.6-4.9% of the largest output and the
    median 0.5-0.9% per value, hence the bounds 6% and 1.5%."""
    rows, columns = np.mgrid[0:24, 0:20]
    features = (np.stack([columns, rows], -1).reshape(-1, 2) / 3.0).astype(np.float32)
    values = np.random.default_rng(0).random((features.shape[0], 3)).astype(np.float32)
    lattice = build_lattice(tf.constant(features))
    norm = 1.0 / np.sqrt(lattice_filter(lattice, tf.ones([features.shape[0], 1])).numpy()[:, 0])
    approx = lattice_filter(rescale(lattice, norm, norm), tf.constant(values)).numpy()
    kernel = np.exp(-0.5 * ((features[:, None] - features[None]) ** 2).sum(-1))
    exact_norm = 1.0 / np.sqrt(kernel.sum(1))
    exact = exact_norm[:, None] * (kernel @ (exact_norm[:, None] * values))
    assert np.abs(approx - exact).max() / np.abs(exact).max() < 0.06
    assert np.median(np.abs(approx - exact) / exact) < 0.015


def test_groups_are_filtered_as_separate_lattices():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2, 150, 5)).astype(np.float32) * 2
    features[1, :50] = features[0, :50]  # shared feature values must not mix across groups
    values = rng.random((2, 150, 4)).astype(np.float32)
    together = build_lattice(tf.constant(features.reshape(-1, 5)), tf.repeat(tf.range(2), 150))
    joint = lattice_filter(together, tf.constant(values.reshape(-1, 4))).numpy().reshape(2, 150, 4)
    for group in range(2):
        alone = lattice_filter(build_lattice(tf.constant(features[group])), tf.constant(values[group])).numpy()
        np.testing.assert_allclose(joint[group], alone, rtol=1e-5, atol=1e-6)
