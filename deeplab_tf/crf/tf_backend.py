"""Dense-CRF mean-field inference in standard TensorFlow ops: `refine_batch`.

Mirrors densecrf's `DenseCRF2D` with a Potts model, as pydensecrf drives it
(`addPairwiseGaussian(sxy=sigma_gamma, compat=w2)`, `addPairwiseBilateral(sxy=sigma_alpha,
srgb=sigma_beta, compat=w1)`, default DIAG_KERNEL and NORMALIZE_SYMMETRIC):

- features: (x/sigma_gamma, y/sigma_gamma) and (x/sigma_alpha, y/sigma_alpha, r/sigma_beta,
  g/sigma_beta, b/sigma_beta), x the column and y the row of a pixel;
- kernel k = permutohedral filter (self term included), symmetrically normalised:
  K Q = n * k(n * Q) with n = 1 / sqrt(k(1));
- Q_0 = softmax(-U), U = -log max(P, 1e-5); then `iterations` times
  Q = softmax(-U + w2 K_spatial Q + w1 K_bilateral Q).

The images of a batch share one lattice per kernel, with the image index in every lattice key so
images never mix. Normalisation and weights are folded into the lattices' splat/slice weights.
"""

import numpy as np
import tensorflow as tf

from deeplab_tf.crf.inputs import PROBABILITY_FLOOR, SUM_TOLERANCE, check_inputs
from deeplab_tf.crf.params import DenseCRFParams
from deeplab_tf.crf.permutohedral import Lattice, build_lattice, lattice_filter, rescale


def refine_batch(images, probabilities, params: DenseCRFParams = DenseCRFParams()):
    """Returns CRF-refined probabilities, float32 [B, H, W, C].

    Args:
        images: uint8 [B, H, W, 3] RGB.
        probabilities: float32 [B, H, W, C]. Per-pixel class distributions (softmax output).
        params: `DenseCRFParams`. Defaults to DeepLab's published VOC settings.

    Works eagerly and inside `tf.function` / SavedModel signatures with unknown B, H, W and C.
    Invalid inputs raise ValueError when executing eagerly or when the static shapes already
    disagree, and `tf.errors.InvalidArgumentError` with the same wording inside a graph.

    Example:
    ```python
    refined = refine_batch(images, tf.nn.softmax(logits), DenseCRFParams(w1=5))
    labels = tf.argmax(refined, axis=-1)
    ```
    """
    if tf.executing_eagerly():
        check_inputs(np.asarray(images), np.asarray(probabilities), batched=True)
    images = tf.convert_to_tensor(images)
    probabilities = tf.convert_to_tensor(probabilities)
    checks = [] if tf.executing_eagerly() else _graph_checks(images, probabilities)
    with tf.control_dependencies(checks):
        probabilities = tf.identity(tf.cast(probabilities, tf.float32))
    return mean_field(images, probabilities, params.iterations, params.w1, params.sigma_alpha, params.sigma_beta,
                      params.w2, params.sigma_gamma)


def mean_field(images, probabilities, iterations: int, w1, sigma_alpha, sigma_beta, w2, sigma_gamma):
    """Returns `refine_batch` without input checks, float32 [B, H, W, C], for uint8 images
    [B, H, W, 3] and float32 probabilities [B, H, W, C]; the weights and sigmas may be float32
    scalar tensors (so one trace serves every setting), `iterations` is a Python int."""
    images, probabilities = tf.convert_to_tensor(images), tf.convert_to_tensor(probabilities, tf.float32)
    w1, sigma_alpha, sigma_beta, w2, sigma_gamma = (
        tf.cast(value, tf.float32) for value in (w1, sigma_alpha, sigma_beta, w2, sigma_gamma)
    )
    shape = tf.shape(probabilities)
    batch, height, width, classes = shape[0], shape[1], shape[2], shape[3]
    rows, columns = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    positions = tf.cast(tf.reshape(tf.stack([columns, rows], axis=-1), [-1, 2]), tf.float32)
    positions = tf.tile(positions, [batch, 1])
    colours = tf.reshape(tf.cast(images, tf.float32), [-1, 3]) / sigma_beta
    groups = tf.repeat(tf.range(batch), height * width)
    kernels = (
        _normalised_kernel(positions / sigma_gamma, groups, w2),
        _normalised_kernel(tf.concat([positions / sigma_alpha, colours], axis=-1), groups, w1),
    )
    unary = -tf.math.log(tf.maximum(tf.reshape(probabilities, [-1, classes]), PROBABILITY_FLOOR))
    q = tf.nn.softmax(-unary)
    for _ in range(iterations):
        q = tf.nn.softmax(-unary + lattice_filter(kernels[0], q) + lattice_filter(kernels[1], q))
    return tf.reshape(q, shape)


def _normalised_kernel(features, groups, weight) -> Lattice:
    """Returns the lattice of densecrf's DenseKernel (NORMALIZE_SYMMETRIC) times the Potts
    weight: its `lattice_filter` maps Q [P, C] to weight * n * k(n * Q), n = 1 / sqrt(k(1))."""
    lattice = build_lattice(features, groups)
    total = lattice_filter(lattice, tf.ones_like(features[:, :1]))[:, 0]
    norm = tf.cast(1.0 / tf.sqrt(tf.cast(total, tf.float64) + 1e-20), tf.float32)
    return rescale(lattice, norm, norm * weight)


def _graph_checks(images, probabilities) -> list:
    """Returns assertion ops for inputs whose shapes or values are only known at run time, after
    raising ValueError for what the static shapes and dtypes already show."""
    image_shape, probability_shape = images.shape, probabilities.shape
    if image_shape.rank not in (None, 4) or probability_shape.rank not in (None, 4):
        raise ValueError(
            f"Expected images [B, H, W, 3] and probabilities [B, H, W, C], got {image_shape} and {probability_shape}"
        )
    if images.dtype != tf.uint8:
        raise ValueError(f"Expected uint8 images (0..255), got dtype {images.dtype.name}")
    if not probabilities.dtype.is_floating:
        raise ValueError(f"Expected float probabilities, got dtype {probabilities.dtype.name}")
    if image_shape.rank == 4 and image_shape[-1] not in (None, 3):
        raise ValueError(f"Expected RGB images with 3 channels, got shape {image_shape}")
    both_known = image_shape.rank == 4 and probability_shape.rank == 4
    if both_known and not image_shape[:3].is_compatible_with(probability_shape[:3]):
        raise ValueError(
            f"Images and probabilities differ in size: images {image_shape} vs probabilities {probability_shape}"
        )
    sums = tf.reduce_sum(tf.cast(probabilities, tf.float32), axis=-1)
    return [
        tf.debugging.assert_equal(
            tf.shape(images)[:3], tf.shape(probabilities)[:3],
            message="Images and probabilities differ in size (batch, height, width must be equal)",
        ),
        tf.debugging.assert_equal(tf.shape(images)[3], 3, message="Expected RGB images with 3 channels"),
        tf.debugging.assert_greater(tf.size(images), 0, message="Empty images"),
        tf.debugging.assert_non_negative(probabilities, message="probabilities must lie in [0, 1]"),
        tf.debugging.assert_less_equal(
            probabilities, tf.ones([], probabilities.dtype), message="probabilities must lie in [0, 1]"
        ),
        tf.debugging.assert_less_equal(
            tf.abs(sums - 1.0),
            SUM_TOLERANCE,
            message=f"probabilities must sum to 1 over the class axis within {SUM_TOLERANCE}",
        ),
    ]
