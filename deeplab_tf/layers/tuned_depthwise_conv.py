"""Keras' `DepthwiseConv2D`, whose bfloat16 and float16 calls may run in float32 where that is faster.

Under a mixed precision policy, Keras computes a depthwise convolution in the compute dtype
(bfloat16 or float16). On the 2-core AMD EPYC (Zen 4, avx512_bf16) of BENCHMARKS.md, oneDNN's
bfloat16 gradients of MobileNetV2's strided depthwise convolutions are 3-4x slower than the
float32 ones of the same values ("Depthwise convolutions in bfloat16"), so the same call runs
faster as: the map and the kernel cast to float32 (exact: every bfloat16 or float16 value is a
float32 value), the convolution and its gradients in float32, the result cast back to the
compute dtype. The two differ by the rounding of the sums only, so this is a speed choice.

`TunedDepthwiseConv2D` runs each such call one of two ways (`PRECISIONS`):
- `"native"`: Keras' call, in the compute dtype;
- `"float32"`: the convolution in float32 inside casts; bias and activation in the compute dtype,
  as Keras adds them.
Which one: with tuning on (`deeplab_tf.layers.autotune`, the default) and static shapes, the
faster for the call's shapes, dtype, strides, padding and dilation on this machine, forward +
gradients where a gradient tape records the call (a training step), the forward pass otherwise,
timed once and cached under keys like "depthwise_conv2d train bfloat16 input=8x162x162x96
kernel=3x3x96x1 strides=2x2 dilation=1x1 padding=valid". Without tuning (switched off, op
determinism, a size unknown while tracing): `"native"`, Keras' own call. float32 and float64 calls
are always Keras' own.

`deeplab_tf.layers.speed_choices.apply_speed_choices` makes every `keras.layers.DepthwiseConv2D`
of a built model one of these (same weights and config: only `call` changes).
"""

import keras
import tensorflow as tf
from tensorflow.python.eager import record  # could_possibly_record: not public in 2.21

from deeplab_tf.layers import autotune

PRECISIONS = ("native", "float32")


@keras.saving.register_keras_serializable(package="deeplab_tf")
class TunedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` whose bfloat16 / float16 calls run in the compute dtype or
    in float32, whichever was faster for their shapes on this machine (module docstring).

    Same arguments, weights (names, order, shapes) and results, to the rounding of the compute
    dtype, as `keras.layers.DepthwiseConv2D`.

    Example:
    ```python
    layer = TunedDepthwiseConv2D(3, strides=2, dtype="mixed_bfloat16")
    outputs = layer(np.ones((2, 9, 9, 16), "float32"))  # (2, 4, 4, 16), bfloat16
    ```
    """

    def call(self, inputs):
        if self.precision_for(inputs) == "float32":
            return self._call_in_float32(inputs)
        return super().call(inputs)

    def precision_for(self, inputs) -> str:
        """Returns the one of `PRECISIONS` this call runs: see the module docstring."""
        if (inputs.dtype not in (tf.bfloat16, tf.float16) or self.data_format != "channels_last"
                or not inputs.shape.is_fully_defined() or not autotune.enabled()):
            return "native"
        training = record.could_possibly_record()
        key = autotune.key("depthwise_conv2d", training, inputs.dtype.name, input=inputs.shape,
                           kernel=self.kernel.shape, strides=self.strides,
                           dilation=self.dilation_rate, padding=self.padding)
        return autotune.pick(key, PRECISIONS, lambda: self._timed_runs(inputs, training))

    def _call_in_float32(self, inputs):
        """Keras' call with the convolution computed in float32: returns the compute dtype."""
        outputs = self._convolution(inputs, self.kernel, "float32")
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def _convolution(self, inputs, kernel, precision):
        """Returns the depthwise convolution of `inputs` by `kernel` (both of the compute dtype)
        with this layer's strides, padding and dilation, computed in `precision` (one of
        `PRECISIONS`), in `inputs`' dtype and of shape `[batch, out_height, out_width, channels *
        depth_multiplier]`."""
        dtype = inputs.dtype
        if precision == "float32":
            inputs, kernel = tf.cast(inputs, tf.float32), tf.cast(kernel, tf.float32)
        outputs = keras.ops.depthwise_conv(inputs, kernel, strides=self.strides, padding=self.padding,
                                           dilation_rate=self.dilation_rate, data_format=self.data_format)
        return tf.cast(outputs, dtype)

    def _timed_runs(self, inputs, training):
        """{precision: run} for each of `PRECISIONS`: the convolution of a random map of
        `inputs`' shape and dtype by a random kernel of this layer's shape, with the gradients
        of both in `training` (`autotune.timed_step`; the bias and the activation, the same in
        both, are left out). No variable of the layer is read: it may be a replica's."""
        tensors = autotune.random_tensors([inputs.shape, self.kernel.shape], inputs.dtype.name)
        return {precision: autotune.timed_step(
                    lambda x, kernel, precision=precision: self._convolution(x, kernel, precision),
                    tensors, training)
                for precision in PRECISIONS}
