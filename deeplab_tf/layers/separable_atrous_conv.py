"""Atrous depthwise separable convolution, the building block of DeepLabv3+ (arXiv:1802.02611).

A depthwise `k x k` convolution with dilation `rate` (one filter per input channel, Sec. 3.1,
Fig. 3), optionally batch norm and an activation, then a 1x1 pointwise convolution mixing the
channels. Batch norm / activation after the pointwise convolution are left to the caller.

Stride: a strided layer (`strides > 1`, `rate` must be 1) pads exactly like the stride-1 layer
("same" below) and then keeps every `strides`-th output, i.e. output `j` is centred on input
`strides * j` for every input size, and the output has `ceil(size / strides)` positions. This
is DeepLab's `fixed_padding` + "VALID" (`xception.separable_conv2d_same`), not TensorFlow's
strided "SAME", which pads `(0, 1)` for even sizes and so centres output `j` on input
`2 * j + 1`. The fixed alignment is what lets a dense (stride 1, dilated) network hold the
strided network's values at positions `0, s, 2s, ...` when the output stride is changed.
"""

import keras
import tensorflow as tf

from deeplab_tf.layers.atrous_conv import ATROUS_IMPLEMENTATIONS
from deeplab_tf.layers.atrous_conv import _choice
from deeplab_tf.layers.atrous_conv import _normalize_kernel_size
from deeplab_tf.layers.atrous_conv import _positive_int
from deeplab_tf.layers.atrous_conv import atrous_depthwise_conv2d
from deeplab_tf.layers.padding import same_padding


@keras.saving.register_keras_serializable(package="deeplab_tf")
class SeparableAtrousConv2D(keras.layers.Layer):
    """Atrous depthwise conv -> [batch norm] -> [activation] -> 1x1 pointwise conv.

    Reference: Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic
    Image Segmentation" (DeepLabv3+), arXiv:1802.02611, Sec. 3.1 and 3.2. One layer (not a
    function building several) so that a model has the same layer types in the same order
    at every stride, rate and implementation, and weight files move between them.

    Weights: `depthwise_kernel` `[k, k, in, depth_multiplier]`, `pointwise_kernel`
    `[1, 1, in * depth_multiplier, filters]`, `bias` (if `use_bias`), then the sublayer
    `batch_norm` (if `batch_norm_between`). Without batch norm they have the names, order and
    shapes of `keras.layers.SeparableConv2D`.

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of two equal ints. Side of the square depthwise kernel.
            Defaults to `3`.
        rate: int. Dilation rate of the depthwise kernel. Defaults to `1`.
        strides: int. Stride of the depthwise conv; with `strides > 1`, `rate` must be 1. See
            the module docstring for its padding. Defaults to `1`.
        depth_multiplier: int. Depthwise output channels per input channel. Defaults to `1`.
        use_bias: bool. Whether to add a bias after the pointwise conv. Defaults to `False`.
        batch_norm_between: bool. Batch norm after the depthwise conv. Defaults to `True`.
        activation_between: str, callable or `None`. Activation after the depthwise conv (and
            its batch norm). Defaults to `"relu"`, as in DeepLabv3+'s ASPP and decoder.
        implementation: str. One of `ATROUS_IMPLEMENTATIONS` for the stride-1 depthwise conv;
            all give equal outputs. Read at every call, so `layer.implementation` can be set
            later, as for `AtrousConv2D`. Defaults to `"auto"`.
        depthwise_initializer: str or initializer. Defaults to `"glorot_uniform"`.
        pointwise_initializer: str or initializer. Defaults to `"glorot_uniform"`.
        bias_initializer: str or initializer. Defaults to `"zeros"`.
        batch_norm_momentum: float. Momentum of the moving statistics. Defaults to `0.99`.
        epsilon: float. Batch norm variance epsilon. Defaults to `1e-3`.

    Example:
    ```python
    layer = SeparableAtrousConv2D(256, 3, rate=12, implementation="space_to_batch")
    outputs = layer(np.ones((2, 33, 33, 64), "float32"))  # (2, 33, 33, 256)
    ```
    """

    def __init__(self, filters, kernel_size=3, rate=1, strides=1, depth_multiplier=1,
                 use_bias=False, batch_norm_between=True, activation_between="relu",
                 implementation="auto", depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros",
                 batch_norm_momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _normalize_kernel_size(kernel_size)
        self.rate = _positive_int(rate, "rate")
        self.strides = _positive_int(strides, "strides")
        if self.strides > 1 and self.rate > 1:
            raise ValueError("`rate` must be 1 when `strides` > 1. Received: "
                             f"rate={rate!r}, strides={strides!r}")
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier")
        self.use_bias = bool(use_bias)
        self.batch_norm_between = bool(batch_norm_between)
        self.activation_between = keras.activations.get(activation_between)
        self.implementation = _choice(implementation, "implementation", ATROUS_IMPLEMENTATIONS)
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.pointwise_initializer = keras.initializers.get(pointwise_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1] * self.depth_multiplier
        k = self.kernel_size
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel", shape=(k, k, input_shape[-1], self.depth_multiplier),
            initializer=self.depthwise_initializer)
        self.pointwise_kernel = self.add_weight(
            name="pointwise_kernel", shape=(1, 1, channels, self.filters),
            initializer=self.pointwise_initializer)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                        initializer=self.bias_initializer)
        if self.batch_norm_between:
            self.batch_norm = keras.layers.BatchNormalization(
                momentum=self.batch_norm_momentum, epsilon=self.epsilon, name="batch_norm")
            self.batch_norm.build((*input_shape[:-1], channels))

    def _depthwise(self, inputs):
        if self.strides == 1:
            return atrous_depthwise_conv2d(inputs, self.depthwise_kernel, self.rate,
                                           implementation=self.implementation)
        before, after = same_padding(self.kernel_size)  # the zeros of the stride-1 layer
        padded = tf.pad(inputs, [(0, 0), (before, after), (before, after), (0, 0)])
        return tf.nn.depthwise_conv2d(padded, self.depthwise_kernel,
                                      strides=[1, self.strides, self.strides, 1], padding="VALID")

    def call(self, inputs, training=None):
        x = self._depthwise(inputs)
        if self.batch_norm_between:
            x = self.batch_norm(x, training=training)
        x = self.activation_between(x)
        x = tf.nn.conv2d(x, self.pointwise_kernel, strides=1, padding="VALID")
        return tf.nn.bias_add(x, self.bias) if self.use_bias else x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        height, width = (None if size is None else -(-size // self.strides)
                         for size in (height, width))
        return (batch, height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "rate": self.rate,
            "strides": self.strides,
            "depth_multiplier": self.depth_multiplier,
            "use_bias": self.use_bias,
            "batch_norm_between": self.batch_norm_between,
            "activation_between": keras.activations.serialize(self.activation_between),
            "implementation": self.implementation,
            "depthwise_initializer": keras.initializers.serialize(self.depthwise_initializer),
            "pointwise_initializer": keras.initializers.serialize(self.pointwise_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "batch_norm_momentum": self.batch_norm_momentum,
            "epsilon": self.epsilon,
        })
        return config
