"""The rule behind `implementation="auto"` of `deeplab_tf.layers.atrous_conv`.

All implementations compute the same values (tested to 1e-5), so the rule trades speed, except
where an implementation cannot run (float16, float64) or is not reproducible (op determinism).

Rule, for one call:
- `"tap_gradient"` (native forward, input gradient as a forward convolution, per-tap GEMMs for
  the kernel gradient) for a full convolution with rate >= 2, "same" padding, static spatial
  sizes and a kernel larger than 1x1;
- `"native"` otherwise (rate 1, "valid" padding, unknown sizes, 1x1 kernels, depthwise).
- In float16 and float64, `"tap_gradient"` for every full convolution with rate >= 2 and a
  kernel larger than 1x1, whatever the padding and sizes: TF 2.21's CPU kernels compute the
  gradients of a dilated `tf.nn.conv2d` in float32 and bfloat16 only, while `tap_gradient`'s
  gradients are forward convolutions and GEMMs, which exist in every float type.
- Under `tf.config.experimental.enable_op_determinism()` (the trainer's `--deterministic`),
  `"native"` where the rule says a per-tap implementation (`"space_to_batch"` in float16 and
  float64): runs with the per-tap GEMMs were not bit-reproducible.

Depthwise: always `"native"`. No exact alternative pays in a whole model, and the one that wins
on some maps (the op's own dilated kernel) breaks a loaded SavedModel in TF 2.21.

The measurements behind the rule, with their commands, dates and machines, are in BENCHMARKS.md:
"Atrous convolution: training step per rate" and its subsections, "Behind `auto`'s rule" in
particular.
"""


# Float types in which TF's CPU kernels have the gradients of a dilated convolution.
NATIVE_GRADIENT_DTYPES = ("float32", "bfloat16")


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
    if dtype not in NATIVE_GRADIENT_DTYPES:
        return "space_to_batch" if deterministic else "tap_gradient"
    height, width = input_shape[1], input_shape[2]
    if padding != "same" or height is None or width is None or deterministic:
        return "native"
    return "tap_gradient"
