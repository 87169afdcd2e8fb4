"""The ImageNet mean colours, and the pixel normalisations Keras Applications ImageNet weights
expect (pure TF ops).

Two published ImageNet means are in use; they are different numbers, and both are written here
only:

- `CAFFE_MEAN_BGR` (103.939, 116.779, 123.68): the mean of the original Caffe VGG / ResNet
  models, in BGR order, which Keras' "caffe" preprocessing (ResNet, VGG-16 weights) subtracts.
- `IMAGENET_MEAN_RGB` (123.675, 116.28, 103.53): torchvision's (0.485, 0.456, 0.406) times 255,
  the mean of Keras' "torch" preprocessing. The training pipeline pads images with it
  (`deeplab_tf.data.augment.pad_to_size`), whatever the backbone's normalisation.

Each function maps float RGB pixels in [0, 255] of shape `[..., 3]` to a float32 tensor of the
same shape, and runs eagerly, inside `tf.data` and inside exported SavedModels.
"""

import tensorflow as tf

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
"""ImageNet mean of the Caffe VGG / ResNet models (BGR, 0..255), Keras "caffe" mode."""

IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
"""ImageNet mean of torchvision, Keras "torch" mode (RGB, 0..255); the pad colour of training."""


def caffe_normalize(images):
    """Returns `images` as BGR minus `CAFFE_MEAN_BGR` (Keras "caffe" mode), float32."""
    images = tf.cast(images, tf.float32)
    return tf.reverse(images, axis=[-1]) - tf.constant(CAFFE_MEAN_BGR, tf.float32)


def tf_normalize(images):
    """Returns `images / 127.5 - 1`, in [-1, 1] (Keras "tf" mode), float32."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


NORMALIZERS = {"caffe": caffe_normalize, "tf": tf_normalize}
