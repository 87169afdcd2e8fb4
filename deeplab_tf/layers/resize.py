"""Bilinear resizing of a feature map to the spatial size of another tensor."""

import keras
import tensorflow as tf


def _in_float32(maps):
    """Returns `maps` cast to float32 when they are bfloat16 or float16 (exact), else `maps`.

    TensorFlow's bilinear resize computes and returns float32 whatever its input type, so this
    changes no value. It keeps the gradient in float32 up to the cast: XLA (TF 2.21) lowers the
    resize's gradient for a bfloat16 input with mismatched types, and a `jit_compile` training step
    of a mixed-precision model then fails to compile ("Seen floating point types of different
    precisions ... ReluGrad")."""
    return tf.cast(maps, tf.float32) if maps.dtype in (tf.bfloat16, tf.float16) else maps


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ResizeToMatch(keras.layers.Layer):
    """Resizes `inputs[0]` bilinearly to the height and width of `inputs[1]`.

    Used for the image-pooling branch of ASPP, the decoder's upsampling and the final
    resize of logits to the input resolution. Works with dynamic spatial sizes.

    Args:
        `interpolation`: str. A `tf.image.resize` method. Defaults to "bilinear".
        `align_corners`: bool. Sample as TF1's `resize_bilinear(align_corners=True)` (the
            official DeepLab code's every resize): the corner pixels of input and output are
            aligned, so output pixel `i` reads input position `i * (in - 1) / (out - 1)`.
            Only with "bilinear". Defaults to False (half-pixel centres, `tf.image.resize`).

    Returns (when called): `inputs[0]`'s dtype, [B, H_ref, W_ref, C].

    Example:
    ```python
    logits = ResizeToMatch(name="upsample_logits")([logits, images])
    official = ResizeToMatch(align_corners=True)([logits, padded_images])  # official DeepLab
    ```
    """

    def __init__(self, interpolation="bilinear", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        if align_corners and interpolation != "bilinear":
            raise ValueError(f"ResizeToMatch align_corners=True needs interpolation='bilinear', "
                             f"got interpolation={interpolation!r}")
        self.interpolation = interpolation
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        features, reference = inputs
        size, maps = tf.shape(reference)[1:3], _in_float32(features)
        if self.align_corners:
            resized = tf.raw_ops.ResizeBilinear(images=maps, size=size, align_corners=True,
                                                half_pixel_centers=False)
        else:
            resized = tf.image.resize(maps, size, method=self.interpolation)
        return tf.cast(resized, features.dtype)

    def compute_output_shape(self, input_shape):
        features_shape, reference_shape = input_shape
        return (features_shape[0], reference_shape[1], reference_shape[2], features_shape[3])

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation,
                "align_corners": self.align_corners}


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ResizeByFactor(keras.layers.Layer):
    """Resizes images bilinearly by `scale`: [B, H, W, C] -> [B, round(H*scale), round(W*scale), C].

    Used for multi-scale inputs (DeepLab v2 MSC) and multi-scale evaluation.

    Args:
        `scale`: float. Factor applied to height and width (at least 1 pixel results).
    """

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        if scale <= 0:
            raise ValueError(f"ResizeByFactor scale must be > 0, got {scale}")
        self.scale = float(scale)

    def call(self, images):
        size = tf.cast(tf.shape(images)[1:3], tf.float32) * self.scale
        size = tf.maximum(tf.cast(tf.round(size), tf.int32), 1)
        return tf.cast(tf.image.resize(_in_float32(images), size, method="bilinear"), images.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, None, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
