"""TensorFlow's "same" padding of a stride-1 (dilated) convolution or pooling window, written once.

A window of `kernel_size` taps spaced `rate` apart spans `(kernel_size - 1) * rate + 1` input
positions, so keeping the output the size of the input takes `total = (kernel_size - 1) * rate`
zeros along each spatial axis. TensorFlow's "SAME" puts `total // 2` of them before the map and
the rest, `total - total // 2`, after it: one more after when `total` is odd (an even kernel at
an odd rate). Output `i` then reads input `i + rate * u - total // 2` through tap `u`.

With a stride `s > 1`, padding like this and keeping every `s`-th output (DeepLab's
`fixed_padding`, see `deeplab_tf.layers.separable_atrous_conv`) centres output `j` on input
`s * j`; TensorFlow's strided "SAME" pads otherwise and is not computed here.
"""


def same_padding(kernel_size: int, rate: int = 1) -> tuple[int, int]:
    """Returns the zeros `(before, after)` TensorFlow's stride-1 "same" adds along one axis.

    Args:
        kernel_size: int. Taps of the window along the axis, positive.
        rate: int. Dilation rate, positive. Defaults to 1.

    Returns:
        Tuple of two ints `(total // 2, total - total // 2)` with
        `total = (kernel_size - 1) * rate`, e.g. (1, 1) for a 3x3 kernel, (2, 2) for a 3x3
        kernel at rate 2, (0, 1) for a 2x2 kernel, (1, 2) for a 4x4 kernel.
    """
    total = (kernel_size - 1) * rate
    return total // 2, total - total // 2
