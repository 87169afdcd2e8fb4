"""Keras' `Conv2D`, whose 1x1 convolutions in a training step may take their kernel gradient as
one GEMM.

A 1x1 convolution with strides `(sh, sw)` reads only the input positions `(sh * i, sw * j)`, so its
kernel gradient is exactly one GEMM: that (subsampled) input, `[positions, channels]` transposed,
times the upstream gradient, `[positions, filters]`. oneDNN computes it with its own
backward-weights kernels, which are the weakest of a training step on the CPUs measured in
BENCHMARKS.md: on the 2-core AMD EPYC (Zen 4, avx512_bf16) the strided ones fall back to a generic
direct kernel several times slower than the same FLOPs at stride 1 ("Strided 1x1 convolutions:
the kernel gradient as one GEMM"); on the 2-core Intel Xeon (Sapphire Rapids, AMX) the AMX
backward-weights kernels of the stride-1 ones run at well under half the rate of oneDNN's AMX
matmul on the same FLOPs ("On the Intel Xeon with AMX"). Keras
Applications' ResNets are mostly 1x1 convolutions, with a block's stride in a 1x1 one.

`TunedConv2D` computes each such call one of two ways (`KERNEL_GRADIENTS`):
- `"native"`: Keras' call; oneDNN's forward pass and both gradients.
- `"gemm"`: `pointwise_conv2d`: the same forward pass and input gradient (the ops TensorFlow's
  own gradient runs), the kernel gradient as one GEMM.
Which one: with tuning on (`deeplab_tf.layers.autotune`, the default) and static shapes, in a
training step (a gradient tape records the call), the faster of the two for the call's shapes,
strides and dtype on this machine, forward + gradients, timed once and cached under keys like
"pointwise_conv2d train bfloat16 input=4x81x81x256 kernel=1x1x256x512 strides=2x2".
Every other call is Keras' own: inference (which computes no kernel gradient, and where grappler
fuses the convolution with its bias, folded batch norm and ReLU), larger kernels, dilated, grouped
or channels-first layers, and calls with tuning off (switched off, op determinism, the test suite)
or a size unknown while tracing. The bias and activation are added as Keras adds them, so only the
kernel gradient's formulation changes: outputs and gradients are Keras' to float rounding.

`deeplab_tf.layers.speed_choices.apply_speed_choices` makes every `keras.layers.Conv2D` of a built
model one of these (same weights and config: only the convolution changes).
"""

import keras
import tensorflow as tf
from tensorflow.python.eager import record  # could_possibly_record: not public in 2.21

from deeplab_tf.layers import autotune

KERNEL_GRADIENTS = ("native", "gemm")


def pointwise_conv2d(inputs, kernel, strides):
    """The 1x1 convolution of `inputs` by `kernel` with `strides`, its kernel gradient one GEMM.

    Args:
        inputs: `[batch, height, width, channels]` tensor.
        kernel: `[1, 1, channels, filters]` tensor or variable, of `inputs`' dtype.
        strides: two ints, the row and column strides.

    Returns:
        `[batch, ceil(height / strides[0]), ceil(width / strides[1]), filters]`, `inputs`' dtype:
        `tf.nn.conv2d`'s values ("valid" and "same" padding agree for a 1x1 kernel). Its input
        gradient is TensorFlow's own (the transposed convolution); its kernel gradient is the
        GEMM of the input at the positions the kernel reads (a 1x1 average pool with `strides`:
        the mean of one value) and the upstream gradient.
    """
    window_strides = [1, *strides, 1]

    @tf.custom_gradient
    def convolve(inputs, kernel):
        outputs = tf.nn.conv2d(inputs, kernel, strides=window_strides, padding="VALID")

        def gradient(upstream):
            input_gradient = tf.nn.conv2d_transpose(upstream, kernel, tf.shape(inputs), window_strides,
                                                    padding="VALID")
            read = inputs
            if tuple(strides) != (1, 1):
                read = tf.nn.avg_pool2d(inputs, 1, window_strides, padding="VALID")
            channels, filters = kernel.shape[2], kernel.shape[3]
            kernel_gradient = tf.matmul(tf.reshape(read, [-1, channels]),
                                        tf.reshape(upstream, [-1, filters]), transpose_a=True)
            return input_gradient, tf.reshape(kernel_gradient, [1, 1, channels, filters])

        return outputs, gradient

    return convolve(inputs, kernel)


@keras.saving.register_keras_serializable(package="deeplab_tf")
class TunedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose 1x1 convolutions in a training step take their kernel
    gradient from oneDNN or from one GEMM, whichever was faster for their shapes on this machine
    (module docstring).

    Same arguments, weights (names, order, shapes) and results, to float rounding, as
    `keras.layers.Conv2D`.

    Example:
    ```python
    layer = TunedConv2D(64, 1, strides=2, dtype="mixed_bfloat16")
    outputs = layer(np.ones((2, 9, 9, 16), "float32"))  # (2, 5, 5, 64), bfloat16
    ```
    """

    def convolution_op(self, inputs, kernel):
        if self.kernel_gradient_for(inputs) == "gemm":
            return pointwise_conv2d(inputs, kernel, self.strides)
        return super().convolution_op(inputs, kernel)

    def kernel_gradient_for(self, inputs) -> str:
        """Returns the one of `KERNEL_GRADIENTS` this call runs: see the module docstring."""
        if not (self.rank == 2 and self.data_format == "channels_last" and self.groups == 1
                and tuple(self.kernel_size) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and inputs.shape.is_fully_defined()
                and record.could_possibly_record() and autotune.enabled()):
            return "native"
        key = autotune.key("pointwise_conv2d", True, inputs.dtype.name, input=inputs.shape,
                           kernel=self.kernel.shape, strides=self.strides)
        return autotune.pick(key, KERNEL_GRADIENTS, lambda: self._timed_runs(inputs))

    def _timed_runs(self, inputs):
        """{kernel gradient: run} for each of `KERNEL_GRADIENTS`: the convolution of a random map
        of `inputs`' shape and dtype by a random kernel of this layer's shape, forward and both
        gradients (`autotune.timed_step`; the bias and the activation, the same in both, are left
        out). No variable of the layer is read: it may be a replica's."""
        tensors = autotune.random_tensors([inputs.shape, self.kernel.shape], inputs.dtype.name)
        native = lambda x, kernel: keras.layers.Conv2D.convolution_op(self, x, kernel)  # noqa: E731
        gemm = lambda x, kernel: pointwise_conv2d(x, kernel, self.strides)  # noqa: E731
        return {name: autotune.timed_step(fn, tensors, training=True)
                for name, fn in (("native", native), ("gemm", gemm))}
