"""How `implementation="auto"` of `deeplab_tf.layers.atrous_conv` picks, for one call.

All implementations compute the same values (`deeplab_tf.layers.atrous_implementations`, tested
to float tolerance), so the pick trades speed, except where an implementation cannot run
(`can_run`: a type or gradient this CPU's kernels lack) or is not reproducible (op determinism).

Tuned (`deeplab_tf.layers.autotune` on: the default, off in the test suite; static shapes): the
fastest of the exact implementations that can run the call (`candidates`), timed on this
machine at the first build of its op (full or depthwise), input and kernel shapes, rate,
padding, dtype and mode (forward + gradients where a gradient tape records the call, i.e. in a
training step; the forward pass otherwise), then read from the cache file. Keys look like
"atrous_conv2d train float32 input=8x33x33x320 kernel=3x3x320x256 rate=12 padding=same"
("atrous_depthwise_conv2d ..." for depthwise).

Fixed rule (`fixed_rule`), where tuning is off, under op determinism, for a shape with an
unknown size (a batch or map size of None), or where nothing can run:
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
- Depthwise: `"native"`. On the AMD machine of BENCHMARKS.md no exact alternative paid in a
  whole model; one that won on some maps (the op's own dilated kernel) breaks a loaded
  SavedModel in TF 2.21 and is no candidate.

The measurements behind the fixed rule, with their commands, dates and machines, are in
BENCHMARKS.md: "Atrous convolution: training step per rate" and its subsections, "Behind
`auto`'s rule" in particular.
"""

import functools

import tensorflow as tf

from deeplab_tf.layers import autotune
from deeplab_tf.layers.atrous_implementations import IMPLEMENTATIONS
from deeplab_tf.layers.atrous_implementations import conv2d
from deeplab_tf.layers.atrous_implementations import depthwise_conv2d


@functools.cache
def can_run(implementation: str, depthwise: bool, dtype: str, rate: int, training: bool) -> bool:
    """Returns True if `implementation` (a name of `IMPLEMENTATIONS`) runs a 3x3 convolution
    (depthwise or full) at `rate` (1, or 2 for any dilation) in `dtype` on this CPU, with both
    gradients when `training`; False if TensorFlow has no kernel for it. Probed once per process
    and arguments, on a 6x6 map (`autotune.eagerly`: also when called while a function is traced)."""

    def probe():
        inputs, kernel = tf.ones([1, 6, 6, 2], dtype), tf.ones([3, 3, 2, 1 if depthwise else 2], dtype)
        op = depthwise_conv2d if depthwise else conv2d
        try:
            with tf.GradientTape() as tape:
                tape.watch([inputs, kernel])
                outputs = IMPLEMENTATIONS[implementation](op, inputs, kernel, rate, "same")
            if training:
                tape.gradient(outputs, [inputs, kernel])
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError):
            return False
        return True

    return autotune.eagerly(probe)


def native_has_dilated_gradients(dtype: str) -> bool:
    """Returns True if this CPU's TensorFlow kernels compute both gradients (input and kernel) of
    a `tf.nn.conv2d` with `dilations=2` in `dtype` (e.g. "float32"), False if TensorFlow refuses
    (`can_run` of `"native"`)."""
    return can_run("native", False, dtype, 2, True)


def candidates(kernel_shape, rate: int, depthwise: bool, dtype: str, training: bool) -> tuple:
    """Returns the names of the implementations `auto` may time for one call, in
    `IMPLEMENTATIONS` order: those that can run it (`can_run`), less those that would compute it
    the very same way as one listed (`"space_to_batch"` at rate 1, where it is `"native"`;
    `"tap_gradient"` and `"gemm_tap_gradient"` for depthwise, where they run `"native"`) or with
    needless work only
    (`"space_to_batch"` for a 1x1 kernel: `"native"`'s product plus two re-interlacing copies).
    Arguments as for `select_implementation`."""
    one_by_one = kernel_shape[0] == 1 and kernel_shape[1] == 1
    redundant = {"space_to_batch"} if rate == 1 or one_by_one else set()
    if depthwise:
        redundant |= {"tap_gradient", "gemm_tap_gradient"}
    return tuple(name for name in IMPLEMENTATIONS
                 if name not in redundant and can_run(name, depthwise, dtype, min(rate, 2), training))


def fixed_rule(input_shape, kernel_shape, rate, padding, depthwise, dtype="float32", deterministic=False):
    """Returns the implementation the fixed rule (module docstring) gives one call; arguments as
    for `select_implementation`."""
    if rate == 1 or depthwise or (kernel_shape[0] == 1 and kernel_shape[1] == 1):
        return "native"  # nothing to dilate, or depthwise (see above)
    if not native_has_dilated_gradients(dtype):
        return "space_to_batch" if deterministic else "tap_gradient"
    height, width = input_shape[1], input_shape[2]
    if padding != "same" or height is None or width is None or deterministic:
        return "native"
    return "tap_gradient"


def select_implementation(input_shape, kernel_shape, rate, padding, depthwise, dtype="float32",
                          deterministic=False, training=False):
    """Returns the implementation name `"auto"` uses for one call: tuned where
    `autotune.enabled()`, `deterministic` is False and every size of `input_shape` is known,
    else the fixed rule (module docstring).

    Args:
        input_shape: `[batch, height, width, channels]`, entries may be `None`.
        kernel_shape: `[k, k, in_channels, out_channels or multiplier]`.
        rate: int. Dilation rate.
        padding: str. `"same"` or `"valid"` (lower case).
        depthwise: bool. Whether the convolution is depthwise.
        dtype: str. The computation's float type, e.g. `"float32"`.
        deterministic: bool. Whether op determinism is enabled.
        training: bool. Whether the call is differentiated (a gradient tape records it): then
            forward + gradients are timed, else the forward pass.

    Returns:
        One of `IMPLEMENTATIONS`' names.
    """
    names = ()
    if not deterministic and all(size is not None for size in input_shape) and autotune.enabled():
        names = candidates(kernel_shape, rate, depthwise, dtype, training)
    if not names:
        return fixed_rule(input_shape, kernel_shape, rate, padding, depthwise, dtype, deterministic)
    kind = "atrous_depthwise_conv2d" if depthwise else "atrous_conv2d"
    key = autotune.key(kind, training, dtype, input=input_shape, kernel=kernel_shape, rate=rate,
                       padding=padding)

    def prepare():  # one run per candidate, on the same random input and kernel
        op = depthwise_conv2d if depthwise else conv2d
        inputs = autotune.random_tensors([input_shape, kernel_shape], dtype)
        return {name: autotune.timed_step(functools.partial(IMPLEMENTATIONS[name], op, rate=rate, padding=padding),
                                          inputs, training)
                for name in names}

    return autotune.pick(key, names, prepare)
