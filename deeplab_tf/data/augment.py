"""Training augmentations for (image, label) pairs: random scale, pad, random crop, random flip.

Pure TensorFlow: every function works eagerly and inside `tf.data.Dataset.map`, on images of any
(dynamic) size. `image` is [H, W, 3] (uint8 or float, 0..255 pixels) and `label` is uint8 [H, W]
class indices with 255 = ignore; labels are only ever resized with nearest neighbour, so their
values never blend.

Randomness: each random op uses a stateless `tf.random.stateless_*` op keyed by `seed`, an int32
or int64 tensor of shape [2], so the same seed gives the same result (the training pipeline
derives one seed per element from its own seed and the element index). With `seed=None` a seed
is drawn from TensorFlow's global random state, which is not reproducible.
"""

import tensorflow as tf

from deeplab_tf.backbones.normalization import IMAGENET_MEAN_RGB
from deeplab_tf.data.dataset_info import IGNORE_LABEL


def _seed_or_random(seed) -> tf.Tensor:
    """Returns `seed`, or a fresh int32 [2] seed from the global random state if it is None."""
    if seed is None:
        return tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)
    return seed


def random_scale(image, label, min_scale: float, max_scale: float, seed=None):
    """Returns (image, label) resized by one factor drawn uniformly from [min_scale, max_scale].

    Output: image float32 [h, w, 3] (bilinear), label uint8 [h, w] (nearest neighbour), with
    (h, w) = round(scale * (H, W)), at least 1.
    """
    scale = tf.random.stateless_uniform([], _seed_or_random(seed), min_scale, max_scale)
    size = tf.round(tf.cast(tf.shape(label), tf.float32) * scale)
    size = tf.maximum(tf.cast(size, tf.int32), 1)
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
    label = tf.image.resize(label[..., tf.newaxis], size, method="nearest")[..., 0]
    return image, label


def pad_to_size(image, label, height: int, width: int):
    """Returns (image, label) padded at the bottom and right to at least (height, width).

    Output: image float32 [max(H, height), max(W, width), 3] padded with the ImageNet mean
    colour `IMAGENET_MEAN_RGB` (for every backbone, whatever its normalisation), label
    (dtype kept) padded with `IGNORE_LABEL`. Inputs already large enough come back unpadded.
    """
    size = tf.shape(label)
    paddings = [[0, tf.maximum(height - size[0], 0)], [0, tf.maximum(width - size[1], 0)]]
    image = tf.cast(image, tf.float32)
    channels = [tf.pad(image[..., c], paddings, constant_values=m) for c, m in enumerate(IMAGENET_MEAN_RGB)]
    return tf.stack(channels, axis=-1), tf.pad(label, paddings, constant_values=IGNORE_LABEL)


def random_crop(image, label, height: int, width: int, seed=None):
    """Returns the same random (height, width) window of image and label.

    Output: image [height, width, 3] and label [height, width], dtypes kept. Fails with an
    InvalidArgumentError if the input is smaller than the crop (call `pad_to_size` first).
    """
    size = tf.shape(label)
    check = tf.debugging.assert_greater_equal(
        size, [height, width], message="random_crop: input is smaller than the crop; pad first"
    )
    with tf.control_dependencies([check]):
        draws = tf.random.stateless_uniform(
            [2], _seed_or_random(seed), maxval=tf.int32.max, dtype=tf.int32
        )
        offset = draws % (size - [height, width] + 1)
    image = tf.slice(image, [offset[0], offset[1], 0], [height, width, -1])
    return image, tf.slice(label, offset, [height, width])


def random_flip_left_right(image, label, seed=None):
    """Returns (image, label) both mirrored left-right with probability 1/2, or both unchanged."""
    flip = tf.random.stateless_uniform([], _seed_or_random(seed)) < 0.5
    return tf.cond(
        flip,
        lambda: (tf.reverse(image, axis=[1]), tf.reverse(label, axis=[1])),
        lambda: (image, label),
    )
