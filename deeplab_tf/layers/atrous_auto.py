"""The rule behind `implementation="auto"` of `deeplab_tf.layers.atrous_conv`.

All implementations compute the same values (tested to 1e-5), so the rule trades speed, except
where an implementation cannot run (float16, float64) or is not reproducible (op determinism).

Rule, for one call:
- `"tap_gradient"` (native forward, input gradient as a forward convolution, per-tap GEMMs for
  the kernel gradient) for a full convolution with rate >= 2, "same" padding, static spatial
  sizes and a kernel larger than 1x1;
- `"native"` otherwise (rate 1, "valid" padding, unknown sizes, 1x1 kernels, depthwise).
- Where this CPU's TensorFlow kernels have no gradient of a dilated `tf.nn.conv2d` in the
  computation's type (`native_has_dilated_gradients`, probed once per process),
  `"tap_gradient"` for every full convolution with rate >= 2 and a kernel larger than 1x1,
  whatever the padding and sizes: its gradients are forward convolutions and GEMMs, which exist
  in every float type. TF 2.21's oneDNN kernels have those gradients in float32 and bfloat16
  (float16 only with AVX512-FP16 or AMX-FP16); the Eigen kernels TF uses on x86 CPUs without
  AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX (e.g. AMD Zen 2/3, Intel Skylake) have them in no
  type, and no CPU kernel has them in float64.
- Under `tf.config.experimental.enable_op_determinism()` (the trainer's `--deterministic`),
  `"native"` where the rule says a per-tap implementation (`"space_to_batch"` in float16 and
  float64): runs with the per-tap GEMMs were not bit-reproducible.

Depthwise: always `"native"`. No exact alternative pays in a whole model, and the one that wins
on some maps (the op's own dilated kernel) breaks a loaded SavedModel in TF 2.21.

The measurements behind the rule, with their commands, dates and machines, are in BENCHMARKS.md:
"Atrous convolution: training step per rate" and its subsections, "Behind `auto`'s rule" in
particular.
"""

import functools

import tensorflow as tf


@functools.cache
def native_has_dilated_gradients(dtype: str) -> bool:
    """Returns True if this CPU's TensorFlow kernels compute both gradients (input and kernel) of
    a `tf.nn.conv2d` with `dilations=2` in `dtype` (e.g. "float32"), False if TensorFlow refuses.
    Probed once per process and type, eagerly on a 5x5 map (also when called while a function
    is traced)."""
    # The gradient ops themselves, run eagerly (a gradient tape records nothing under init_scope).
    with tf.init_scope():
        maps, kernel = tf.ones([1, 5, 5, 2], dtype), tf.ones([3, 3, 2, 2], dtype)
        common = dict(strides=[1, 1, 1, 1], padding="SAME", dilations=[1, 2, 2, 1])
        try:
            tf.raw_ops.Conv2DBackpropInput(input_sizes=[1, 5, 5, 2], filter=kernel, out_backprop=maps, **common)
            tf.raw_ops.Conv2DBackpropFilter(input=maps, filter_sizes=[3, 3, 2, 2], out_backprop=maps, **common)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError):
            return False
    return True


def select_implementation(input_shape, kernel_shape, rate, padding, depthwise, dtype="float32",
                          deterministic=False):
    """Returns the implementation name `"auto"` uses for one call.

    Args:
        input_shape: `[batch, height, width, channels]`, entries may be `None`.
        kernel_shape: `[k, k, in_channels, out_channels or multiplier]`.
        rate: int. Dilation rate.
        padding: str. `"same"` or `"valid"` (lower case).
        depthwise: bool. Whether the convolution is depthwise.
        dtype: str. The computation's float type, e.g. `"float32"`.
        deterministic: bool. Whether op determinism is enabled.

    Returns:
        `"native"`, `"tap_gradient"` or `"space_to_batch"`.
    """
    if rate == 1 or depthwise or (kernel_shape[0] == 1 and kernel_shape[1] == 1):
        return "native"  # nothing to dilate, or depthwise (see above)
    if not native_has_dilated_gradients(dtype):
        return "space_to_batch" if deterministic else "tap_gradient"
    height, width = input_shape[1], input_shape[2]
    if padding != "same" or height is None or width is None or deterministic:
        return "native"
    return "tap_gradient"
