"""Atrous (dilated) convolution, as functions and as Keras layers.

`y[b, i, j, o] = sum_{u, v, c} x[b, i + rate * u, j + rate * v, c] * w[u, v, c, o]` enlarges the
field of view without extra parameters or downsampling (Chen et al., DeepLab, arXiv:1606.00915,
Sec. 3.1). Tensors are NHWC, the stride is 1. Equal implementations (`ATROUS_IMPLEMENTATIONS`):
`"native"`, `"space_to_batch"`, `"shifted_gemm"`, `"tap_gradient"` and `"gemm_tap_gradient"`, described in
`deeplab_tf.layers.atrous_implementations`, and `"auto"` (the default of `atrous_conv2d` and
`AtrousConv2D`), which picks one of them per call (`deeplab_tf.layers.atrous_auto`): the
fastest on this machine, timed once per shape and cached (`deeplab_tf.layers.autotune`), or a
fixed rule where tuning is off. All give equal results, so this only changes speed.

The layers read their `implementation` attribute at every call, so it can be set after a model
is built (`layer.implementation = "native"`); a traced `tf.function` sees it at its next trace.

"same" padding follows TensorFlow (`deeplab_tf.layers.padding.same_padding`): `total = (k - 1) *
rate` zeros, `total // 2` before and the rest after (so one more after for an even kernel with an
odd rate).
"""

import numbers

import keras
import tensorflow as tf
from tensorflow.python.eager import record  # could_possibly_record: not public in 2.21
from tensorflow.python.framework import config as tf_config  # is_op_determinism_enabled: not public in 2.21

from deeplab_tf.layers.atrous_auto import select_implementation
from deeplab_tf.layers.atrous_implementations import IMPLEMENTATIONS
from deeplab_tf.layers.atrous_implementations import conv2d
from deeplab_tf.layers.atrous_implementations import depthwise_conv2d


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
    return int(value)


def _choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def _normalize_padding(padding):
    return _choice(padding.lower() if isinstance(padding, str) else padding, "padding",
                   ("same", "valid"))


def _normalize_kernel_size(kernel_size):
    if isinstance(kernel_size, (tuple, list)):
        if len(kernel_size) != 2 or kernel_size[0] != kernel_size[1]:
            raise ValueError("`kernel_size` must be an int or a square (k, k) tuple. "
                             f"Received: kernel_size={kernel_size!r}")
        kernel_size = kernel_size[0]
    return _positive_int(kernel_size, "kernel_size")


def _auto(op, inputs, kernel, rate, padding):
    # A gradient tape recording the call (a training step) makes the gradients part of the cost.
    name = select_implementation(inputs.shape, kernel.shape, rate, padding, op is depthwise_conv2d,
                                 inputs.dtype.name, tf_config.is_op_determinism_enabled(),
                                 record.could_possibly_record())
    return _IMPLEMENTATIONS[name](op, inputs, kernel, rate, padding)


_IMPLEMENTATIONS = {**IMPLEMENTATIONS, "auto": _auto}
ATROUS_IMPLEMENTATIONS = tuple(_IMPLEMENTATIONS)


def _atrous(op, inputs, kernel, rate, padding, implementation):
    rate = _positive_int(rate, "rate")
    padding = _normalize_padding(padding)
    implementation = _choice(implementation, "implementation", ATROUS_IMPLEMENTATIONS)
    inputs = tf.convert_to_tensor(inputs)
    kernel = tf.convert_to_tensor(kernel)
    return _IMPLEMENTATIONS[implementation](op, inputs, kernel, rate, padding)


def atrous_conv2d(inputs, kernel, rate, padding="same", implementation="auto"):
    """Atrous 2-D convolution with stride 1.

    Args:
        inputs: float tensor. Input of shape `[batch, height, width, in_channels]`.
        kernel: float tensor. Kernel of shape `[k, k, in_channels, out_channels]`.
        rate: int. Dilation rate, positive.
        padding: str. `"same"` or `"valid"`, case-insensitive. Defaults to `"same"`.
        implementation: str. One of `ATROUS_IMPLEMENTATIONS`. Defaults to `"auto"`.

    Returns:
        Float tensor of shape `[batch, out_height, out_width, out_channels]`.
    """
    return _atrous(conv2d, inputs, kernel, rate, padding, implementation)


def atrous_depthwise_conv2d(inputs, kernel, rate, padding="same", implementation="native"):
    """Atrous depthwise 2-D convolution with stride 1.

    Args:
        inputs: float tensor. Input of shape `[batch, height, width, channels]`.
        kernel: float tensor. Kernel of shape `[k, k, channels, multiplier]`.
        rate, padding, implementation: as for `atrous_conv2d`.

    Returns:
        Float tensor of shape `[batch, out_height, out_width, channels * multiplier]`; output
        channel `c * multiplier + m` comes from input channel `c`.
    """
    return _atrous(depthwise_conv2d, inputs, kernel, rate, padding, implementation)


class _AtrousConvBase(keras.layers.Layer):
    """Shared arguments, weights and call of the atrous layers below."""

    def __init__(self, kernel_size, rate, padding, use_bias, implementation, activation,
                 bias_initializer, bias_regularizer, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = _normalize_kernel_size(kernel_size)
        self.rate = _positive_int(rate, "rate")
        self.padding = _normalize_padding(padding)
        self.use_bias = bool(use_bias)
        self.implementation = _choice(implementation, "implementation", ATROUS_IMPLEMENTATIONS)
        self.activation = keras.activations.get(activation)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    @property
    def dilation_rate(self) -> tuple:
        """(rate, rate), as Keras' `Conv2D.dilation_rate`."""
        return (self.rate, self.rate)

    @property
    def strides(self) -> tuple:
        """(1, 1): atrous layers never stride (as Keras' `Conv2D.strides`)."""
        return (1, 1)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.kernel = self.add_weight(name="kernel", **self._kernel_spec(channels))
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self._output_channels(channels),),
                                        initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def call(self, inputs):
        outputs = self._atrous_fn(inputs, self.kernel, self.rate, self.padding,
                                  self.implementation)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        if self.padding == "valid":
            shrink = (self.kernel_size - 1) * self.rate
            height, width = (None if size is None else size - shrink for size in (height, width))
        return (batch, height, width, self._output_channels(channels))

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size,
            "rate": self.rate,
            "padding": self.padding,
            "use_bias": self.use_bias,
            "implementation": self.implementation,
            "activation": keras.activations.serialize(self.activation),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        })
        return config


@keras.saving.register_keras_serializable(package="deeplab_tf")
class AtrousConv2D(_AtrousConvBase):
    """Atrous (dilated) 2-D convolution layer with stride 1.

    Reference: Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets,
    Atrous Convolution, and Fully Connected CRFs", arXiv:1606.00915, Sec. 3.1.
    Weights have the names, order and shapes of `keras.layers.Conv2D`, so
    `layer.set_weights(conv2d.get_weights())` copies a `Conv2D(dilation_rate=rate)`.

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of two equal ints. Side of the square kernel.
        rate: int. Dilation rate. Defaults to `1`.
        padding: str. `"same"` or `"valid"`, case-insensitive. Defaults to `"same"`.
        use_bias: bool. Whether to add a bias. Defaults to `True`.
        implementation: str. One of `ATROUS_IMPLEMENTATIONS`; all give equal outputs.
            Defaults to `"auto"`.
        activation: str or callable. Activation applied to the output. Defaults to `None`.
        kernel_initializer: str or initializer. Defaults to `"glorot_uniform"`.
        bias_initializer: str or initializer. Defaults to `"zeros"`.
        kernel_regularizer: str, regularizer or `None`. Defaults to `None`.
        bias_regularizer: str, regularizer or `None`. Defaults to `None`.

    Example:
    ```python
    layer = AtrousConv2D(64, 3, rate=6, implementation="space_to_batch")
    outputs = layer(np.ones((2, 33, 33, 16), "float32"))  # (2, 33, 33, 64)
    ```
    """

    _atrous_fn = staticmethod(atrous_conv2d)

    def __init__(self, filters, kernel_size, rate=1, padding="same", use_bias=True,
                 implementation="auto", activation=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 **kwargs):
        super().__init__(kernel_size, rate, padding, use_bias, implementation, activation,
                         bias_initializer, bias_regularizer, **kwargs)
        self.filters = _positive_int(filters, "filters")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _kernel_spec(self, channels):
        k = self.kernel_size
        return dict(shape=(k, k, channels, self.filters), initializer=self.kernel_initializer,
                    regularizer=self.kernel_regularizer)

    def _output_channels(self, channels):
        return self.filters

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config


@keras.saving.register_keras_serializable(package="deeplab_tf")
class AtrousDepthwiseConv2D(_AtrousConvBase):
    """Atrous (dilated) depthwise 2-D convolution layer with stride 1.

    Reference: Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets,
    Atrous Convolution, and Fully Connected CRFs", arXiv:1606.00915, Sec. 3.1.
    Weights have the names, order and shapes of `keras.layers.DepthwiseConv2D`, so
    `layer.set_weights(other.get_weights())` copies a `DepthwiseConv2D(dilation_rate=rate)`.

    Args:
        kernel_size: int or tuple of two equal ints. Side of the square kernel.
        rate: int. Dilation rate. Defaults to `1`.
        padding: str. `"same"` or `"valid"`, case-insensitive. Defaults to `"same"`.
        depth_multiplier: int. Output channels per input channel. Defaults to `1`.
        use_bias: bool. Whether to add a bias. Defaults to `True`.
        implementation: str. One of `ATROUS_IMPLEMENTATIONS`; all give equal outputs.
            Defaults to `"native"`.
        activation: str or callable. Activation applied to the output. Defaults to `None`.
        depthwise_initializer: str or initializer. Defaults to `"glorot_uniform"`.
        bias_initializer: str or initializer. Defaults to `"zeros"`.
        depthwise_regularizer: str, regularizer or `None`. Defaults to `None`.
        bias_regularizer: str, regularizer or `None`. Defaults to `None`.

    Example:
    ```python
    layer = AtrousDepthwiseConv2D(3, rate=12, depth_multiplier=2)
    outputs = layer(np.ones((2, 33, 33, 16), "float32"))  # (2, 33, 33, 32)
    ```
    """

    _atrous_fn = staticmethod(atrous_depthwise_conv2d)

    def __init__(self, kernel_size, rate=1, padding="same", depth_multiplier=1, use_bias=True,
                 implementation="native", activation=None,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, rate, padding, use_bias, implementation, activation,
                         bias_initializer, bias_regularizer, **kwargs)
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier")
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)

    def _kernel_spec(self, channels):
        k = self.kernel_size
        return dict(shape=(k, k, channels, self.depth_multiplier),
                    initializer=self.depthwise_initializer,
                    regularizer=self.depthwise_regularizer)

    def _output_channels(self, channels):
        return None if channels is None else channels * self.depth_multiplier

    def get_config(self):
        config = super().get_config()
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": keras.initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": keras.regularizers.serialize(self.depthwise_regularizer),
        })
        return config
