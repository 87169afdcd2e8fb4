"""What this machine's TensorFlow CPU kernels can do, probed once per process.

TF 2.21's x86 kernel set depends on the CPU (tensorflow/core/util/port.cc and util.cc): oneDNN is
on by default only where the CPU has AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX (elsewhere, or
with TF_ENABLE_ONEDNN_OPTS=0, the Eigen kernels run), and even then takes bfloat16 only with
AVX-512 or AVX-NE-CONVERT and float16 only with AVX512-FP16 or AMX-FP16. Tests assert what these
probes find instead of one machine's outcome.
"""

import functools

import numpy as np
import tensorflow as tf

# What TF raises for the gradients of a dilated convolution where only the Eigen kernels exist:
# "Current CPU implementations do not yet support dilation rates larger than 1."
DILATION_ERROR = "dilation rates larger than 1"


@functools.cache
def has_dilated_conv2d_gradients(dtype):
    """Returns True if this CPU computes both gradients (input and kernel) of a `tf.nn.conv2d`
    with `dilations=2` in `dtype` (a name, e.g. "float16"), run eagerly; False if TF raises the
    InvalidArgumentError matching `DILATION_ERROR` instead. Any other error propagates."""
    inputs, kernel = tf.ones([1, 5, 5, 2], dtype), tf.ones([3, 3, 2, 2], dtype)
    with tf.GradientTape() as tape:
        tape.watch([inputs, kernel])
        outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME", dilations=2)
    try:
        tape.gradient(outputs, [inputs, kernel])
    except tf.errors.InvalidArgumentError as error:
        if DILATION_ERROR not in str(error):
            raise
        return False
    return True


def _bfloat16_probe_outputs(x, w, g):
    """A convolution's and a depthwise convolution's outputs and both gradients (upstream `g`),
    and a matmul, of `x` [1, 32, 32, 8], `w` [3, 3, 8, 8] and `g` [1, 32, 32, 8]."""
    convolutions = (lambda x, w: tf.nn.conv2d(x, w, strides=1, padding="SAME"),
                    lambda x, w: tf.nn.depthwise_conv2d(x, w[..., :1], [1, 1, 1, 1], "SAME"))
    outputs = [tf.matmul(tf.reshape(x, [-1, 8]), tf.reshape(g, [-1, 8]), transpose_a=True)]
    for convolution in convolutions:
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = convolution(x, w)
        outputs += [y, *tape.gradient(y, [x, w], output_gradients=g)]
    return outputs


@functools.cache
def bfloat16_sums_in_float32():
    """Returns True if this CPU's bfloat16 kernels give every output of `_bfloat16_probe_outputs`
    (sums of 9 to 1024 positive products) within one bfloat16 ulp (2**-7 relative) of its exact
    value, as sums kept in float32 and rounded once do (oneDNN's kernels); False if any output
    is further off, as sums rounded to bfloat16 along the way are (Eigen's depthwise kernel and
    filter gradient: about sqrt(terms) * 2**-9 relative)."""
    rng = np.random.default_rng(0)
    shapes = ([1, 32, 32, 8], [3, 3, 8, 8], [1, 32, 32, 8])
    inputs = [tf.cast(rng.uniform(0.5, 1.0, shape), tf.bfloat16) for shape in shapes]
    actual = _bfloat16_probe_outputs(*inputs)
    exact = _bfloat16_probe_outputs(*(tf.cast(a, tf.float64) for a in inputs))
    for got, want in zip(actual, exact):
        got, want = tf.cast(got, tf.float64).numpy(), want.numpy()
        ulp = 2.0 ** (np.floor(np.log2(np.abs(want) + 1e-300)) - 7)
        if np.any(np.abs(got - want) > ulp):
            return False
    return True
