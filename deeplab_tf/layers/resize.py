"""Bilinear resizing of a feature map to the spatial size of another tensor."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ResizeToMatch(keras.layers.Layer):
    """Resizes `inputs[0]` bilinearly to the height and width of `inputs[1]`.

    Used for the image-pooling branch of ASPP, the decoder's upsampling and the final
    resize of logits to the input resolution. Works with dynamic spatial sizes.

    Args:
        `interpolation`: str. A `tf.image.resize` method. Defaults to "bilinear".

    Example:
    ```python
    logits = ResizeToMatch(name="upsample_logits")([logits, images])
    ```
    """

    def __init__(self, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.interpolation = interpolation

    def call(self, inputs):
        features, reference = inputs
        size = tf.shape(reference)[1:3]
        return tf.cast(tf.image.resize(features, size, method=self.interpolation), features.dtype)

    def compute_output_shape(self, input_shape):
        features_shape, reference_shape = input_shape
        return (features_shape[0], reference_shape[1], reference_shape[2], features_shape[3])

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}
