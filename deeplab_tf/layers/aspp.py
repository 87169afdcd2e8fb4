"""Atrous Spatial Pyramid Pooling with image-level features (DeepLabv3, arXiv:1706.05587 Sec. 3.3)."""

import keras

from deeplab_tf.layers.conv_bn import conv_bn_relu
from deeplab_tf.layers.resize import ResizeToMatch


def aspp(
    features,
    rates: tuple,
    filters: int = 256,
    implementation: str = "auto",
    batch_norm_momentum: float = 0.99,
    separable: bool = False,
    name: str = "aspp",
):
    """Applies DeepLabv3's ASPP to a Keras tensor of backbone features.

    Branches: one 1x1 convolution, one 3x3 atrous convolution per rate (`{name}_atrous{i}`), and image pooling
    (global average -> 1x1 -> bilinear upsampling); each with batch norm and ReLU. The branches are
    concatenated and projected by a 1x1 convolution. With `separable`, the atrous branches are
    atrous separable convolutions (DeepLabv3+).

    Returns a float32 Keras tensor [B, H, W, filters] at the resolution of `features`.
    """
    branches = [conv_bn_relu(features, filters, 1, f"{name}_1x1", batch_norm_momentum=batch_norm_momentum)]
    # Branches are named by position, not rate: the rates double when the output stride halves,
    # and the weights must keep their names.
    for index, rate in enumerate(rates, start=1):
        branches.append(
            conv_bn_relu(
                features,
                filters,
                3,
                f"{name}_atrous{index}",
                rate=rate,
                implementation=implementation,
                batch_norm_momentum=batch_norm_momentum,
                separable=separable,
            )
        )
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(features)
    pooled = conv_bn_relu(pooled, filters, 1, f"{name}_pool", batch_norm_momentum=batch_norm_momentum)
    branches.append(ResizeToMatch(name=f"{name}_pool_resize")([pooled, features]))
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn_relu(x, filters, 1, f"{name}_project", batch_norm_momentum=batch_norm_momentum)
