"""The exact implementations of a stride-1 atrous (dilated) convolution, as functions.

Each implementation is a function `(op, inputs, kernel, rate, padding) -> outputs` of NHWC
tensors, where `op` is `conv2d` (full convolution) or `depthwise_conv2d` and `padding` is
"same" or "valid" (lower case). All compute the same values (tested to float tolerance against
a NumPy reference in tests/layers/test_atrous_conv.py), so choosing one only changes speed
(`deeplab_tf.layers.atrous_auto` chooses for `implementation="auto"`):

- `"native"`: `tf.nn.conv2d` / `tf.nn.depthwise_conv2d` with `dilations=rate`.
- `"space_to_batch"`: the paper's method. `tf.space_to_batch` (the N-D op) zero-pads and
  deinterlaces the input into `rate * rate` subsampled maps, a rate-1 "valid" convolution runs
  on them, and `tf.batch_to_space` re-interlaces and crops the result.
- `"shifted_gemm"`: the sum over the `k * k` taps of a 1x1 product (a GEMM for the full
  convolution, a per-channel multiply for the depthwise one) of the shifted input, computed on
  the output rows/columns where the tap lands inside the map only and zero-padded back to the
  output size. Taps that land entirely in the padding (`|offset| >= size`, e.g. all but the
  centre tap once `rate >= size`) are skipped, so the work is the useful work, and autodiff of
  slice + matmul + pad gives GEMM gradients of the same size. With static spatial sizes the
  skipping is decided while tracing; with dynamic ones every tap's slice bounds are clipped
  in-graph, and a skipped tap becomes an empty (free) product. In bfloat16 and float16 the
  tap products are summed in float32 and rounded once, as a convolution kernel sums.
  The depthwise variant (a per-channel multiply per tap) is exact but slow: memory-bound work
  does not amortise the per-tap slices and pads.
- `"tap_gradient"`: `"native"`'s forward pass with its own gradient. oneDNN's dilated forward
  kernel costs about the same at every rate; its gradients are what pay for the rate. Here the
  input gradient is also a forward dilated convolution (of the upstream gradient, with the
  kernel turned by 180 degrees and its channels swapped), and the kernel gradient is one GEMM
  per tap over the output positions where that tap reads the map, so taps that only read
  padding cost nothing. With static sizes the kernel is first cut to the taps that read the
  map (the centre tap alone once `rate >= size`: a 1x1 convolution). Full convolutions only:
  a depthwise convolution runs `"native"` under this name.
- `"gemm_tap_gradient"`: `"tap_gradient"`'s gradients after `"shifted_gemm"`'s forward pass (one
  GEMM per tap on the output positions where it reads the map). Where oneDNN's dilated forward
  kernel is slow (bfloat16 with 2048 input channels on the AMX CPU of BENCHMARKS.md: it computes
  the taps that read padding too, at a third of its stride-1 rate) the forward pass costs only
  the useful work, while the gradients stay `"tap_gradient"`'s forward convolution and GEMMs
  (autodiff of `"shifted_gemm"`'s slices and pads is slow). Full convolutions only: a depthwise
  convolution runs `"native"` under this name.

"same" padding follows TensorFlow (`deeplab_tf.layers.padding.same_padding`): `total = (k - 1) *
rate` zeros, `total // 2` before and the rest after (so one more after for an even kernel with an
odd rate).
"""

import functools

import tensorflow as tf

from deeplab_tf.layers.padding import same_padding


def conv2d(inputs, kernel, padding, rate):
    """The full convolution an implementation computes (`op`): `[b, h, w, c] x [k, k, c, o]`."""
    return tf.nn.conv2d(inputs, kernel, strides=1, padding=padding.upper(), dilations=rate)


def depthwise_conv2d(inputs, kernel, padding, rate):
    """The depthwise convolution an implementation computes (`op`): `[b, h, w, c] x [k, k, c, m]`
    -> `[b, h', w', c * m]`."""
    return tf.nn.depthwise_conv2d(inputs, kernel, strides=[1, 1, 1, 1], padding=padding.upper(),
                                  dilations=[rate, rate])


def _padding_amounts(kernel_size, rate, padding):
    """Zeros `(before, after)` along each axis: `same_padding` for "same", none for "valid"."""
    return same_padding(kernel_size, rate) if padding == "same" else (0, 0)


def _native(op, inputs, kernel, rate, padding):
    return op(inputs, kernel, padding, rate)


def _space_to_batch(op, inputs, kernel, rate, padding):
    if rate == 1:
        return op(inputs, kernel, padding, 1)
    before, after = _padding_amounts(kernel.shape[0], rate, padding)
    total = before + after
    # Static spatial sizes where known (keeps static output shapes), dynamic ones otherwise.
    sizes = [inputs.shape[axis] or tf.shape(inputs)[axis] for axis in (1, 2)]
    # The "same" zeros and the zeros that round the padded size up to a multiple of `rate` go
    # into one space_to_batch padding; the latter are cropped again after the convolution.
    extras = [(-(size + total)) % rate for size in sizes]
    paddings = [(before, after + extra) for extra in extras]
    crops = [(0, extra) for extra in extras]
    subsampled = tf.space_to_batch(inputs, [rate, rate], paddings)
    outputs = op(subsampled, kernel, "valid", 1)
    return tf.batch_to_space(outputs, [rate, rate], crops)


def _matmul_tap(patch, kernel_tap):
    """1x1 convolution `[b, h, w, c] x [c, o]` as one GEMM over the flattened positions."""
    channels, filters = kernel_tap.shape
    products = tf.matmul(tf.reshape(patch, [-1, channels]), kernel_tap)
    return tf.reshape(products, tf.concat([tf.shape(patch)[:3], [filters]], axis=0))


def _multiply_tap(patch, kernel_tap):
    """1x1 depthwise convolution `[b, h, w, c] x [c, m]`; output channel `c * m + j`."""
    channels, multiplier = kernel_tap.shape
    if multiplier == 1:
        return patch * kernel_tap[:, 0]
    products = patch[..., None] * kernel_tap
    return tf.reshape(products, tf.concat([tf.shape(patch)[:3], [channels * multiplier]], 0))


def _tap_ranges(size, kernel_size, rate, padding):
    """Returns `([(u, offset, begin, end), ...], out_size)` along one axis: output `i` reads
    input `i + offset` through kernel index `u` for `begin <= i < end`. `size` is an int (then
    taps entirely outside the map are dropped) or a scalar tensor (then ranges are clipped)."""
    before, _ = _padding_amounts(kernel_size, rate, padding)
    out_size = size if padding == "same" else size - (kernel_size - 1) * rate
    ranges = []
    for u in range(kernel_size):
        offset = rate * u - before
        if isinstance(size, int):
            begin, end = max(0, -offset), min(out_size, size - offset)
            if end > begin:
                ranges.append((u, offset, begin, end))
        else:
            begin = tf.clip_by_value(-offset, 0, out_size)
            end = tf.clip_by_value(size - offset, begin, out_size)
            ranges.append((u, offset, begin, end))
    return ranges, out_size


def _shifted_gemm(op, inputs, kernel, rate, padding):
    tap_op = _multiply_tap if op is depthwise_conv2d else _matmul_tap
    sizes = [inputs.shape[axis] or tf.shape(inputs)[axis] for axis in (1, 2)]
    (rows, out_height), (cols, out_width) = (
        _tap_ranges(size, kernel.shape[axis], rate, padding)
        for size, axis in zip(sizes, (0, 1)))
    if not rows or not cols:
        # Every tap lands in the padding: zeros, computed from an empty product so that the
        # gradients are zeros too (not None).
        rows, cols = [(0, 0, 0, 0)], [(0, 0, 0, 0)]
    terms = []
    for u, row_offset, top, bottom in rows:
        for v, col_offset, left, right in cols:
            patch = inputs[:, top + row_offset:bottom + row_offset,
                           left + col_offset:right + col_offset, :]
            term = tap_op(patch, kernel[u, v])
            full = all(isinstance(b, int) for b in (top, bottom, left, right)) and (
                (top, bottom, left, right) == (0, out_height, 0, out_width))
            if not full:
                term = tf.pad(term, [[0, 0], [top, out_height - bottom],
                                     [left, out_width - right], [0, 0]])
            terms.append(term)
    return _sum_in_float32(terms)


def _sum_in_float32(terms):
    """`tf.add_n(terms)`, with half-precision terms summed in float32 and rounded once: in their
    own type every partial sum would be rounded again, 2-3x the error of one convolution kernel
    (which sums in float32). Returns a tensor of the terms' dtype and shape."""
    dtype = terms[0].dtype
    if len(terms) == 1 or dtype not in (tf.bfloat16, tf.float16):
        return tf.add_n(terms)
    return tf.cast(tf.add_n([tf.cast(term, tf.float32) for term in terms]), dtype)


def _valid_taps(sizes, kernel_size, rate, padding):
    """Which taps of a stride-1 atrous convolution read the map, and the padding they need.

    Args:
        sizes: `[height, width]`, ints or scalar tensors.
        kernel_size, rate, padding: as for `atrous_conv2d` (padding lower case).

    Returns:
        `(cuts, pads, rows, cols)`. `rows` and `cols` are `_tap_ranges` along each axis. A
        rate-`rate` convolution with `kernel[cuts[0][0]:cuts[0][1], cuts[1][0]:cuts[1][1]]`
        and the explicit `[[0, 0], pads[0], pads[1], [0, 0]]` padding equals the original one:
        with static sizes the cut drops the taps that only read padding; with dynamic sizes,
        or where dropping them would need a negative padding (an even kernel at a rate beyond
        the map), the cut is the whole kernel.
    """
    whole = ([(0, kernel_size)] * 2, [list(_padding_amounts(kernel_size, rate, padding))] * 2)
    (rows, out_height), (cols, out_width) = (
        _tap_ranges(size, kernel_size, rate, padding) for size in sizes)
    if not all(isinstance(size, int) for size in sizes) or not rows or not cols:
        return (*whole, rows, cols)
    cuts, pads = [], []
    for ranges, size, out_size in ((rows, sizes[0], out_height), (cols, sizes[1], out_width)):
        first, last = ranges[0][0], ranges[-1][0]
        pad_before = -ranges[0][1]
        pad_after = out_size + rate * (last - first) - size - pad_before
        if pad_before < 0 or pad_after < 0:
            return (*whole, rows, cols)
        cuts.append((first, last + 1))
        pads.append([pad_before, pad_after])
    return cuts, pads, rows, cols


def _tap_gradient(op, inputs, kernel, rate, padding, gemm_forward=False):
    if op is not conv2d:
        return _native(op, inputs, kernel, rate, padding)
    sizes = [inputs.shape[axis] or tf.shape(inputs)[axis] for axis in (1, 2)]
    cuts, pads, rows, cols = _valid_taps(sizes, kernel.shape[0], rate, padding)
    if not rows or not cols:
        return _shifted_gemm(op, inputs, kernel, rate, padding)  # zeros, with zero gradients
    (top_tap, bottom_tap), (left_tap, right_tap) = cuts

    @tf.custom_gradient
    def convolve(inputs, kernel):
        cut = kernel[top_tap:bottom_tap, left_tap:right_tap]
        if gemm_forward:
            outputs = _shifted_gemm(op, inputs, kernel, rate, padding)
        else:
            outputs = tf.nn.conv2d(inputs, cut, strides=1, padding=[[0, 0], *pads, [0, 0]],
                                   dilations=rate)

        def gradient(upstream):
            # Input gradient: the transposed convolution, i.e. a forward convolution of the
            # upstream gradient with the cut kernel turned by 180 degrees, channels swapped.
            back = [[0, 0]]
            for axis, (pad_before, _) in zip((1, 2), pads):
                reach = rate * (cut.shape[axis - 1] - 1)
                grown = sizes[axis - 1] - (upstream.shape[axis] or tf.shape(upstream)[axis])
                back.append([reach - pad_before, grown + pad_before])
            back.append([0, 0])
            padded = upstream
            if not all(isinstance(value, int) for pair in back for value in pair):
                # Dynamic sizes: explicit convolution padding must be static, so pad first.
                padded = tf.pad(upstream, tf.stack([tf.stack(pair) for pair in back]))
                back = "VALID"
            turned = tf.transpose(tf.reverse(cut, [0, 1]), [0, 1, 3, 2])
            input_gradient = tf.nn.conv2d(padded, turned, strides=1, padding=back,
                                          dilations=rate)
            # Kernel gradient: per tap, one GEMM over the output positions where it reads the
            # map; taps that read only padding get zeros.
            channels, filters = kernel.shape[2], kernel.shape[3]
            taps = [[tf.zeros([channels, filters], kernel.dtype)] * kernel.shape[1]
                    for _ in range(kernel.shape[0])]
            for u, row_offset, top, bottom in rows:
                for v, col_offset, left, right in cols:
                    patch = inputs[:, top + row_offset:bottom + row_offset,
                                   left + col_offset:right + col_offset, :]
                    taps[u][v] = tf.matmul(tf.reshape(patch, [-1, channels]),
                                           tf.reshape(upstream[:, top:bottom, left:right, :],
                                                      [-1, filters]), transpose_a=True)
            return input_gradient, tf.stack([tf.stack(row) for row in taps])

        return outputs, gradient

    return convolve(inputs, kernel)


IMPLEMENTATIONS = {"native": _native, "space_to_batch": _space_to_batch,
                   "shifted_gemm": _shifted_gemm, "tap_gradient": _tap_gradient,
                   "gemm_tap_gradient": functools.partial(_tap_gradient, gemm_forward=True)}
