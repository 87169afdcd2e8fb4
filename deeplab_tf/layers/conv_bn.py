"""The convolution -> batch norm -> ReLU unit that DeepLab's heads are made of."""

import keras

from deeplab_tf.layers.atrous_conv import AtrousConv2D


def conv_bn_relu(
    inputs,
    filters: int,
    kernel_size: int,
    name: str,
    rate: int = 1,
    implementation: str = "native",
    batch_norm_momentum: float = 0.99,
):
    """Applies a bias-free (atrous) convolution, batch norm and ReLU to a Keras tensor.

    Returns a float32 Keras tensor [B, H, W, filters] ('same' padding, stride 1). Layers are
    named `{name}_conv`, `{name}_bn` and `{name}_relu`.
    """
    x = AtrousConv2D(
        filters,
        kernel_size,
        rate=rate,
        use_bias=False,
        implementation=implementation,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(inputs)
    x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)
