import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data.augment import pad_to_size, random_crop, random_flip_left_right, random_scale
from deeplab_tf.backbones.normalization import IMAGENET_MEAN_RGB
from deeplab_tf.data.dataset_info import IGNORE_LABEL


def coordinate_pair(height=30, width=40):
    """Returns (image uint8 [H, W, 3] = (y, x, 7), label uint8 [H, W] = (3y + 5x) % 11)."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([y, x, np.full_like(y, 7)], axis=-1).astype(np.uint8)
    return tf.constant(image), tf.constant(((3 * y + 5 * x) % 11).astype(np.uint8))


def assert_is_mean_colour(pixels):
    np.testing.assert_array_equal(pixels, np.broadcast_to(np.float32(IMAGENET_MEAN_RGB), pixels.shape))


def label_from_image(image):
    """Returns the label that `coordinate_pair` assigns to the coordinates stored in `image`."""
    y, x = image[..., 0].astype(np.int64), image[..., 1].astype(np.int64)
    return (3 * y + 5 * x) % 11


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_scale_never_blends_labels(run, seed):
    rng = np.random.default_rng(seed)
    label = tf.constant(rng.choice([0, 3, 7, IGNORE_LABEL], size=(23, 31)).astype(np.uint8))
    image = tf.constant(rng.integers(0, 256, (23, 31, 3)).astype(np.uint8))
    scale = lambda i, l: random_scale(i, l, 0.5, 2.0, seed=[seed, 9])  # noqa: E731
    out_image, out_label = run(scale, image, label)
    assert out_image.dtype == np.float32 and out_label.dtype == np.uint8
    assert out_image.shape[:2] == out_label.shape
    assert out_label.shape != (23, 31)
    assert set(np.unique(out_label)) <= {0, 3, 7, IGNORE_LABEL}


def test_random_scale_is_reproducible_and_identity_at_one(run):
    image, label = coordinate_pair()
    first = run(lambda i, l: random_scale(i, l, 0.5, 2.0, seed=[4, 2]), image, label)
    second = run(lambda i, l: random_scale(i, l, 0.5, 2.0, seed=[4, 2]), image, label)
    np.testing.assert_array_equal(first[0], second[0])
    same_image, same_label = run(lambda i, l: random_scale(i, l, 1.0, 1.0), image, label)
    np.testing.assert_array_equal(same_image, image.numpy().astype(np.float32))
    np.testing.assert_array_equal(same_label, label.numpy())


def test_pad_to_size_values(run):
    image, label = coordinate_pair(3, 4)
    padded_image, padded_label = run(lambda i, l: pad_to_size(i, l, 5, 6), image, label)
    assert padded_image.shape == (5, 6, 3) and padded_image.dtype == np.float32
    np.testing.assert_array_equal(padded_image[:3, :4], image.numpy())
    np.testing.assert_array_equal(padded_label[:3, :4], label.numpy())
    for region in (np.s_[3:, :], np.s_[:, 4:]):
        assert_is_mean_colour(padded_image[region])
        assert (padded_label[region] == IGNORE_LABEL).all()
    unchanged_image, unchanged_label = run(lambda i, l: pad_to_size(i, l, 2, 2), image, label)
    assert unchanged_image.shape == (3, 4, 3) and unchanged_label.shape == (3, 4)


def test_scale_pad_crop_flip_keep_image_and_label_aligned(run):
    image, label = coordinate_pair()

    def pipeline(seed):
        def ops(i, l):
            i, l = random_scale(i, l, 1.0, 1.0, seed=[seed, 0])
            i, l = pad_to_size(i, l, 36, 44)
            i, l = random_crop(i, l, 33, 41, seed=[seed, 1])
            return random_flip_left_right(i, l, seed=[seed, 2])

        return ops

    windows = set()
    for seed in range(6):
        out_image, out_label = run(pipeline(seed), image, label)
        assert out_image.shape == (33, 41, 3) and out_label.shape == (33, 41)
        padding = out_label == IGNORE_LABEL
        assert_is_mean_colour(out_image[padding])
        np.testing.assert_array_equal(out_label[~padding], label_from_image(out_image)[~padding])
        flipped = out_image[0, 1, 1] < out_image[0, 0, 1]
        windows.add((out_image[0, 0, 0], out_image[0, 0, 1], flipped))
    assert len(windows) > 1  # different seeds give different windows / flips


def test_random_crop_needs_padding_first(run):
    image, label = coordinate_pair(5, 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pad first"):
        run(lambda i, l: random_crop(i, l, 6, 4, seed=[0, 0]), image, label)


def test_flip_flips_both_or_neither(run):
    image, label = coordinate_pair(4, 6)
    outcomes = set()
    for seed in range(8):
        flip = lambda i, l: random_flip_left_right(i, l, seed=[seed, 3])  # noqa: E731
        out_image, out_label = run(flip, image, label)
        flipped = bool((out_image == image.numpy()[:, ::-1]).all())
        expected_label = label.numpy()[:, ::-1] if flipped else label.numpy()
        assert flipped or (out_image == image.numpy()).all()
        np.testing.assert_array_equal(out_label, expected_label)
        outcomes.add(flipped)
    assert outcomes == {True, False}


def test_unseeded_ops_run(run):
    image, label = coordinate_pair(8, 8)

    def ops(i, l):
        return random_flip_left_right(*random_crop(*random_scale(i, l, 1.0, 1.5), 8, 8))

    out_image, out_label = run(ops, image, label)
    assert out_image.shape == (8, 8, 3) and out_label.shape == (8, 8)
