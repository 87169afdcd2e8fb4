"""Dilated depthwise convolution through the kernel's own dilation, with exact gradients.

`tf.nn.depthwise_conv2d(dilations=rate)` runs a rate > 1 through space-to-batch: the input is
padded and de-interlaced into `rate * rate` sub-maps, a rate-1 depthwise conv runs on them, and
the result is re-interlaced, forward and backward. TF's `DepthwiseConv2dNative` op takes a
`dilations` attribute and its CPU (oneDNN) forward kernel computes the dilated convolution
directly and correctly, but its registered gradient kernels ignore the dilation on CPU (TF 2.21:
both gradients come out wrong for rate > 1), which is why `tf.nn` avoids it.

`direct_depthwise_conv2d` uses the op where it is right and replaces the gradients:
- forward: `DepthwiseConv2dNative(dilations=rate)` with the "same"/"valid" zeros as explicit
  paddings (no copy of the input);
- input gradient: a stride-1 correlation of the upstream gradient with the 180-degree-rotated
  kernel at the same rate (the transposed convolution), i.e. the same forward op once more;
  with `multiplier > 1` the `C * M` products are summed over `M` afterwards;
- kernel gradient: what `tf.nn`'s own gradient computes, `DepthwiseConv2dNativeBackpropFilter`
  at rate 1 on the space-to-batch sub-maps of the input and of the upstream gradient.

One of the alternatives `bench/depthwise_alternatives.py` measures (results and the reasons it
is not a `deeplab_tf` implementation: `deeplab_tf.layers.atrous_auto`, BENCHMARKS.md). Faster
than `tf.nn` on 41x41 maps at rates 2-4 (0.27x-0.43x), slower at rate 2 on 21x21 (1.3x) and at
rates 12-18 on 21-33 pixel maps (2x-9x). Needs a static input shape: with an unknown batch,
building the gradient graph aborts the process (TF 2.21); a SavedModel holding it saves, but the
loaded model aborts on its first call (grappler's shape inference of `DepthwiseConv2dNative`
with explicit paddings).
"""

import tensorflow as tf


def _paddings(size, kernel_size, rate, padding):
    """Returns `(before, after, out_size)` of a stride-1 dilated conv along one axis."""
    total = (kernel_size - 1) * rate
    if padding == "same":
        return total // 2, total - total // 2, size
    return 0, 0, size - total


def _depthwise(inputs, kernel, rate, pads):
    """`DepthwiseConv2dNative` at `rate` with explicit `((top, bottom), (left, right))` zeros."""
    (top, bottom), (left, right) = pads
    return tf.raw_ops.DepthwiseConv2dNative(
        input=inputs, filter=kernel, strides=[1, 1, 1, 1], padding="EXPLICIT",
        explicit_paddings=[0, 0, top, bottom, left, right, 0, 0], dilations=[1, rate, rate, 1])


def _kernel_gradient(inputs, upstream, kernel_shape, rate, axes):
    """`d loss / d kernel`, computed as `tf.nn.depthwise_conv2d`'s own gradient does."""
    if rate == 1:
        (top, bottom, _), (left, right, _) = axes
        return tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=inputs, filter_sizes=kernel_shape, out_backprop=upstream,
            strides=[1, 1, 1, 1], padding="EXPLICIT",
            explicit_paddings=[0, 0, top, bottom, left, right, 0, 0])
    # Pad the input by the conv's zeros plus `extra` zeros up to a multiple of `rate`: each of
    # the `rate * rate` sub-maps is then a rate-1 "valid" conv whose outputs, re-interlaced,
    # are the conv's outputs followed by `extra` rows/columns, whose upstream gradient is zero.
    sizes = (inputs.shape[1], inputs.shape[2])
    extras = [-(size + before + after) % rate for size, (before, after, _) in zip(sizes, axes)]
    sub_inputs = tf.space_to_batch(
        inputs, [rate, rate],
        [[before, after + extra] for (before, after, _), extra in zip(axes, extras)])
    sub_upstream = tf.space_to_batch(upstream, [rate, rate], [[0, extra] for extra in extras])
    return tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=sub_inputs, filter_sizes=kernel_shape, out_backprop=sub_upstream,
        strides=[1, 1, 1, 1], padding="VALID")


def direct_depthwise_conv2d(inputs, kernel, rate, padding):
    """Stride-1 dilated depthwise conv; forward and gradients equal `tf.nn.depthwise_conv2d`'s.

    Args:
        inputs: float tensor `[batch, height, width, channels]` with a static shape (with an
            unknown batch, building the gradient graph aborts the process in TF 2.21).
        kernel: float tensor `[k, k, channels, multiplier]`.
        rate: int. Dilation rate, positive.
        padding: str. `"same"` or `"valid"` (lower case).

    Returns:
        Float tensor `[batch, out_height, out_width, channels * multiplier]`.
    """
    inputs, kernel = tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel)
    kernel_size, channels, multiplier = kernel.shape[0], kernel.shape[2], kernel.shape[3]
    axes = [_paddings(inputs.shape[axis], kernel_size, rate, padding) for axis in (1, 2)]
    total = (kernel_size - 1) * rate

    @tf.custom_gradient
    def conv(inputs, kernel):
        outputs = _depthwise(inputs, kernel, rate, [axis[:2] for axis in axes])

        def grad(upstream):
            # Transposed conv: input pixel p collects upstream pixels p + before - rate * u,
            # i.e. a correlation with the rotated kernel and (total - before, total - after)
            # zeros around the upstream gradient.
            rotated = tf.reshape(tf.reverse(kernel, [0, 1]),
                                 [kernel_size, kernel_size, channels * multiplier, 1])
            products = _depthwise(upstream, rotated, rate,
                                  [(total - before, total - after) for before, after, _ in axes])
            if multiplier > 1:
                shape = tf.concat([tf.shape(products)[:3], [channels, multiplier]], 0)
                products = tf.reduce_sum(tf.reshape(products, shape), axis=-1)
            kernel_grad = _kernel_gradient(inputs, upstream, list(kernel.shape), rate, axes)
            return products, kernel_grad

        return outputs, grad

    return conv(inputs, kernel)
