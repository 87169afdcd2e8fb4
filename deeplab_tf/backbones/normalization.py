"""Pixel normalisations expected by Keras Applications ImageNet weights (pure TF ops).

Each function maps float RGB pixels in [0, 255] of shape `[..., 3]` to a float32 tensor of the
same shape, and runs eagerly, inside `tf.data` and inside exported SavedModels.
"""

import tensorflow as tf

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


def caffe_normalize(images):
    """Returns `images` as BGR minus the ImageNet BGR mean (Keras "caffe" mode), float32."""
    images = tf.cast(images, tf.float32)
    return tf.reverse(images, axis=[-1]) - tf.constant(IMAGENET_BGR_MEAN, tf.float32)


def tf_normalize(images):
    """Returns `images / 127.5 - 1`, in [-1, 1] (Keras "tf" mode), float32."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


NORMALIZERS = {"caffe": caffe_normalize, "tf": tf_normalize}
