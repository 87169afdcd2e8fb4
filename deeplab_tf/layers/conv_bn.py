"""The convolution -> batch norm -> ReLU unit that DeepLab's heads are made of."""

import keras

from deeplab_tf.layers.atrous_conv import AtrousConv2D
from deeplab_tf.layers.separable_atrous_conv import SeparableAtrousConv2D


def conv_bn_relu(
    inputs,
    filters: int,
    kernel_size: int,
    name: str,
    rate: int = 1,
    batch_norm_momentum: float = 0.99,
    separable: bool = False,
):
    """Applies a bias-free (atrous) convolution, batch norm and ReLU to a Keras tensor.

    With `separable` and `kernel_size > 1` the convolution is DeepLabv3+'s atrous separable
    convolution (depthwise -> BN -> ReLU -> pointwise). Returns a float32 Keras tensor
    [B, H, W, filters] ('same' padding, stride 1). Layers are named `{name}_conv`, `{name}_bn`
    and `{name}_relu`. The atrous implementation is the layers' default until
    `deeplab_tf.models.speed_choices` sets the experiment's.
    """
    if separable and kernel_size > 1:
        conv = SeparableAtrousConv2D(
            filters,
            kernel_size,
            rate=rate,
            batch_norm_momentum=batch_norm_momentum,
            epsilon=1e-5,
            name=f"{name}_conv",
        )
    else:
        conv = AtrousConv2D(
            filters,
            kernel_size,
            rate=rate,
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{name}_conv",
        )
    x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, epsilon=1e-5, name=f"{name}_bn")(conv(inputs))
    return keras.layers.ReLU(name=f"{name}_relu")(x)
