"""Keras' `Conv2D`, whose stride-1 convolutions in a training step run the fastest exact formulation.

A backbone's stride-1 convolutions (ResNet's 1x1 and 3x3 bottleneck layers, MobileNetV2's
expansions and projections, VGG's 3x3 layers) are Keras `Conv2D`s built by Keras Applications.
Their gradients are oneDNN's kernels, and the kernel gradient is the weakest of them (BENCHMARKS.md,
"Profiles in float32 and bfloat16"). The same convolution is an atrous convolution at rate 1, whose
exact implementations (`deeplab_tf.layers.atrous_implementations`) compute the same forward pass
and gradients in other ways: `"tap_gradient"` (oneDNN's forward kernel, the input gradient as a
forward convolution, the kernel gradient as one GEMM per tap: a single GEMM for a 1x1 kernel)
and `"shifted_gemm"` (one GEMM per tap, forward and back). On the 2-core AMD EPYC (Zen 4,
avx512_bf16) of BENCHMARKS.md, some of ResNet-50's bfloat16 shapes train faster that way, others
not ("Stride-1 backbone convolutions tuned").

`TunedConv2D` computes such a call with the implementation `implementation="auto"` of
`deeplab_tf.layers.atrous_conv` picks for it (`atrous_auto.select_implementation` at rate 1: timed
once per shape, dtype and machine, cached under keys like "atrous_conv2d train bfloat16
input=4x21x21x1024 kernel=1x1x1024x256 rate=1 padding=valid", the keys an `AtrousConv2D` of the same
shapes uses), in training steps only: where a gradient tape records the call, the tuning is on and
the shapes are static, for a stride-1, undilated, ungrouped, square-kernel, channels-last layer.
Every other call is Keras' own: inference (where grappler fuses the convolution with its bias,
folded batch norm and ReLU into one kernel, which a convolution timed alone would not show),
strided or dilated layers (`deeplab_tf.backbones.output_stride` makes dilated ones
`AtrousConv2D`s), calls with tuning off (`deeplab_tf.layers.autotune`: switched off, op
determinism, the test suite) and calls with a size unknown while tracing.
The bias and activation are added as Keras adds them, so only the convolution's formulation
changes: outputs and gradients are Keras' to float rounding.

`deeplab_tf.layers.speed_choices.apply_speed_choices` makes every `keras.layers.Conv2D` of a built
model one of these (same weights and config: only the convolution changes).
"""

import keras
from tensorflow.python.eager import record  # could_possibly_record: not public in 2.21

from deeplab_tf.layers import autotune
from deeplab_tf.layers.atrous_conv import atrous_conv2d


@keras.saving.register_keras_serializable(package="deeplab_tf")
class TunedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose stride-1 convolutions in a training step run the exact
    implementation that was fastest for their shapes on this machine (module docstring).

    Same arguments, weights (names, order, shapes) and results, to float rounding, as
    `keras.layers.Conv2D`.

    Example:
    ```python
    layer = TunedConv2D(64, 1, dtype="mixed_bfloat16")
    outputs = layer(np.ones((2, 9, 9, 16), "float32"))  # (2, 9, 9, 64), bfloat16
    ```
    """

    def convolution_op(self, inputs, kernel):
        if self.tunes(inputs):
            return atrous_conv2d(inputs, kernel, 1, self.padding, implementation="auto")
        return super().convolution_op(inputs, kernel)

    def tunes(self, inputs) -> bool:
        """Whether this call runs the tuned pick (`atrous_conv2d(..., implementation="auto")` at
        rate 1) rather than Keras' own convolution: in a training step (a gradient tape records
        the call) with tuning on and static shapes, for a stride-1, undilated, ungrouped,
        square-kernel, channels-last layer (module docstring)."""
        return (self.rank == 2 and self.data_format == "channels_last" and self.groups == 1
                and tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and self.kernel_size[0] == self.kernel_size[1] and record.could_possibly_record()
                and inputs.shape.is_fully_defined() and autotune.enabled())
