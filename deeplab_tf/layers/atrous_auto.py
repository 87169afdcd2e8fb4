"""The rule behind `implementation="auto"` of `deeplab_tf.layers.atrous_conv`.

All implementations compute the same values (tested to 1e-5), so the rule only trades speed.
It was measured, not guessed, with `python bench/atrous_train_step.py` (forward + input and
kernel gradients of a 3x3 "same" convolution to 256 channels, TF 2.21 float32 with oneDNN on a
2-core x86 CPU; see BENCHMARKS.md "Atrous convolution: training step per rate"):

- `"native"` (oneDNN dilated conv) costs 0.68x-1.27x of itself at rate 1 at every rate (the
  1.27x is 4x65x65x2048 rate 2, 2 repeats); it is not charged for the rate the way the
  depthwise op is.
- `"shifted_gemm"` costs about `useful_fraction` times a per-tap overhead of 1.4x-1.8x of
  native rate 1 (each tap copies its input slice, and the gradients of the slices and pads
  are full-size tensors). It wins once few taps see data: 8x22x30x320 rate 18 (fraction
  0.27) 0.29x vs native 0.76x, rate 24 (0.16) 0.21x vs 0.68x; 4x33x33x2048 rate 18 (0.40)
  0.79x vs 0.93x, rate 24 (0.27) 0.67x vs 0.86x. It loses above: 8x22x30x320 rate 12 (0.47)
  0.95x vs 0.84x, 4x33x33x2048 rate 12 (0.57) 1.34x vs 0.71x.
- `"space_to_batch"` (`tf.nn.atrous_conv2d`'s method) pays for the rate: 1.5x / 2.6x / 5.1x /
  5.6x of native rate 1 at rates 6 / 12 / 18 / 24 on 8x22x30x320, 1.7x-6.9x on 4x33x33x2048.
  The one exception is rate 2 on a large map, where its four sub-maps are big and padded by
  little: 4x65x65x2048 rate 2 0.86x vs native 1.20x (4 repeats; min 2373 vs 3128 ms). On
  4x33x33x2048 rate 2 it still loses (1.02x vs 0.79x), so it is picked from 64 pixels up.

Rule: `"shifted_gemm"` when the static sizes are known and `useful_fraction < 0.45`
(`useful_fraction` = share of the `k * k * out_height * out_width` tap products that read the
map rather than padding; a rate at least the map size leaves only the centre tap, a 1x1
convolution); else `"space_to_batch"` for rate 2 when both sizes are at least
`SPACE_TO_BATCH_MIN_SIZE` (64); `"native"` otherwise: rate 1, "valid" padding, 1x1 kernels,
unknown sizes. Under `tf.config.experimental.enable_op_determinism()` (the trainer's
`--deterministic`) `auto` takes `"native"` where the rule says `"shifted_gemm"`: with the per-tap
GEMMs, two deterministic runs of a DeepLab v2 model (resumed vs uninterrupted) ended with
weights 1 ulp apart (`tests/test_trainer.py`, dropout resume test). At 4x65x65x2048 (OS 8) the fraction stays >= 0.57 up to rate 24, so there
`auto` is `space_to_batch` at rate 2 and `native` at the other rates.

Depthwise: always `"native"`. `python bench/depthwise_alternatives.py` (forward + both
gradients, 5 interleaved repeats, 2026-11-22 on a machine shared with a training run, so
medians are noisy; ratios are median / native's median) measured every exact alternative:
- "direct" (`bench/depthwise_direct.py`: the op's own dilated kernel for the forward pass
  and the input gradient, instead of `tf.nn`'s space-to-batch) wins on 41x41 maps (MobileNetV2
  at OS8): 8x41x41x576 rate 2 0.27x, 8x41x41x960 rate 4 0.43x; 8x21x21x2048 rate 6 0.51x. It
  loses where MobileNetV2 runs by default (8x21x21x960 rate 2, OS16: 1.31x; the whole
  camvid_mnv2_v3plus step 0.78x, median of 4) and at large rates on small maps (Xception-65's
  separable ASPP: 8x21x21x2048 rate 12 2.2x, 4x33x33x2048 rate 12 5.5x, rate 18 9.1x): oneDNN's
  dilated kernel does not skip taps that land in the padding.
- XLA (`jit_compile`) around the op and its gradients: 13x-144x slower; grouped `tf.nn.conv2d`
  (supported on CPU through oneDNN): 0.5x-12.7x, no consistent win; the sum of 9 shifted
  products: 6.6x-58x (3.2x-27x under XLA); NCHW under XLA: 13x-98x.
- "direct" is not offered as an implementation: a SavedModel holding it saves, but the
  loaded model aborts the process on its first call (TF 2.21: grappler's shape inference of
  `DepthwiseConv2dNative` with explicit paddings fails a C++ check, `tensor_format.h:428`), and
  it wins only off the default output stride.
"""

CONV_THRESHOLD = 0.45
SPACE_TO_BATCH_MIN_SIZE = 64


def useful_fraction(height, width, kernel_height, kernel_width, rate, padding):
    """Share of the tap products of a stride-1 atrous conv that land inside the map.

    Args:
        height, width: int. Spatial size of the input.
        kernel_height, kernel_width: int. Kernel size.
        rate: int. Dilation rate.
        padding: str. `"same"` or `"valid"` (lower case).

    Returns:
        Float in `[0, 1]`; `1.0` for "valid" padding (no tap reads padding).
    """
    if padding == "valid":
        return 1.0
    fractions = []
    for size, kernel_size in ((height, kernel_height), (width, kernel_width)):
        before = (kernel_size - 1) * rate // 2
        inside = sum(max(0, min(size, size - offset) - max(0, -offset))
                     for offset in (rate * u - before for u in range(kernel_size)))
        fractions.append(inside / (kernel_size * size))
    return fractions[0] * fractions[1]


def select_implementation(input_shape, kernel_shape, rate, padding, depthwise):
    """Returns the implementation name `"auto"` uses for one call.

    Args:
        input_shape: `[batch, height, width, channels]`, entries may be `None`.
        kernel_shape: `[k, k, in_channels, out_channels or multiplier]`.
        rate: int. Dilation rate.
        padding: str. `"same"` or `"valid"` (lower case).
        depthwise: bool. Whether the convolution is depthwise.

    Returns:
        `"native"`, `"shifted_gemm"` or `"space_to_batch"`.
    """
    height, width = input_shape[1], input_shape[2]
    kernel_height, kernel_width = kernel_shape[0], kernel_shape[1]
    if rate == 1 or padding != "same" or height is None or width is None:
        return "native"
    if depthwise:
        return "native"
    if kernel_height == 1 and kernel_width == 1:
        return "native"
    fraction = useful_fraction(height, width, kernel_height, kernel_width, rate, padding)
    if fraction < CONV_THRESHOLD:
        return "shifted_gemm"
    if rate == 2 and min(height, width) >= SPACE_TO_BATCH_MIN_SIZE:
        return "space_to_batch"
    return "native"
