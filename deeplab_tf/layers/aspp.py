"""Atrous Spatial Pyramid Pooling with image-level features (DeepLabv3, arXiv:1706.05587 Sec. 3.3)."""

import keras

from deeplab_tf.layers.conv_bn import conv_bn_relu
from deeplab_tf.layers.resize import ResizeToMatch


def aspp(
    features,
    rates: tuple,
    filters: int = 256,
    implementation: str = "native",
    batch_norm_momentum: float = 0.99,
    name: str = "aspp",
):
    """Applies DeepLabv3's ASPP to a Keras tensor of backbone features.

    Branches: one 1x1 convolution, one 3x3 atrous convolution per rate, and image pooling
    (global average -> 1x1 -> bilinear upsampling); each with batch norm and ReLU. The branches are
    concatenated and projected by a 1x1 convolution.

    Returns a float32 Keras tensor [B, H, W, filters] at the resolution of `features`.
    """
    branches = [conv_bn_relu(features, filters, 1, f"{name}_1x1", batch_norm_momentum=batch_norm_momentum)]
    for rate in rates:
        branches.append(
            conv_bn_relu(
                features,
                filters,
                3,
                f"{name}_rate{rate}",
                rate=rate,
                implementation=implementation,
                batch_norm_momentum=batch_norm_momentum,
            )
        )
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(features)
    pooled = conv_bn_relu(pooled, filters, 1, f"{name}_pool", batch_norm_momentum=batch_norm_momentum)
    branches.append(ResizeToMatch(name=f"{name}_pool_resize")([pooled, features]))
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn_relu(x, filters, 1, f"{name}_project", batch_norm_momentum=batch_norm_momentum)
