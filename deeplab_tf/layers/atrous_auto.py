"""The rule behind `implementation="auto"` of `deeplab_tf.layers.atrous_conv`.

All implementations compute the same values (tested to 1e-5), so the rule only trades speed.
It was measured, not guessed, with `python bench/atrous_train_step.py` (forward + input and
kernel gradients of a 3x3 "same" convolution to 256 channels, TF 2.21 float32 with oneDNN;
see BENCHMARKS.md "Atrous convolution: training step per rate"), cells as median / native's
median at rate 1 on the same shape:

- `"tap_gradient"` (native forward, input gradient as a forward convolution, per-tap GEMMs
  for the kernel gradient) costs 0.94x-1.10x at rate 1 and wins or ties at every rate >= 2
  on every shape measured (2-core AMD EPYC, 2026-12-04): 8x22x30x320 rates 2 / 6 / 12 / 18 /
  24 0.95x / 0.75x / 0.53x / 0.34x / 0.24x (native 1.05x / 0.88x / 0.92x / 0.79x / 0.77x);
  4x21x21x2048 (ResNet ASPP at a 321 crop) 1.03x / 0.78x / 0.50x / 0.27x / 0.15x (native
  0.99x-1.06x); 4x33x33x2048 1.02x / 0.85x / 0.64x / 0.47x / 0.32x (native 0.73x-1.05x);
  4x65x65x2048 0.83x / 0.82x / 0.69x / 0.58x / 0.55x (native 0.94x-1.08x, `space_to_batch`
  0.90x at rate 2, 2 repeats).
- `"shifted_gemm"` costs about 2x native at rate 1 and wins over native only once few taps
  see the map (8x22x30x320 rate 24: 0.31x); `tap_gradient` is cheaper there too (0.24x).
- `"space_to_batch"` (`tf.nn.atrous_conv2d`'s method) pays for the rate: 1.3x-5.4x at rates
  6-24 on 8x22x30x320, 1.6x-7.5x on the 2048-channel maps.
An earlier rule, measured on a 2-core Intel machine (2026-11-22) before `tap_gradient`
existed, took `shifted_gemm` where less than 45% of the tap products read the map and
`space_to_batch` at rate 2 on maps of 64+ pixels; on that machine too native's forward pass
cost the same at every rate, which is what `tap_gradient` keeps.

Rule: `"tap_gradient"` for a full convolution with rate >= 2, "same" padding, static
spatial sizes and a kernel larger than 1x1; `"native"` otherwise (rate 1, "valid" padding,
unknown sizes, 1x1 kernels, depthwise).
In float16 and float64, `"tap_gradient"` for every full convolution with rate >= 2 and a
kernel larger than 1x1, whatever the padding and sizes: TF 2.21's CPU kernels compute the
gradients of a dilated `tf.nn.conv2d` in float32 and bfloat16 only (float16 and float64 fail
with "Current CPU implementations do not yet support dilation rates larger than 1"), while
`tap_gradient`'s gradients are forward convolutions and GEMMs, which exist in every float type.
(That pick is for correctness: its speed against `space_to_batch`, which also runs in these
types, was measured in float32 only.)
Under `tf.config.experimental.enable_op_determinism()` (the trainer's `--deterministic`)
`auto` takes `"native"` where the rule says a per-tap implementation (`"space_to_batch"` in
float16 and float64): with the per-tap GEMMs, two deterministic runs of a DeepLab v2 model
(resumed vs uninterrupted) ended with weights 1 ulp apart (`tests/training/test_trainer.py`, dropout
resume test; seen with `shifted_gemm`).

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
