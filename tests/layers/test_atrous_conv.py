"""Tests for deeplab_tf.layers.atrous_conv against an independent NumPy reference."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers import ATROUS_IMPLEMENTATIONS
from deeplab_tf.layers import AtrousConv2D
from deeplab_tf.layers import AtrousDepthwiseConv2D
from deeplab_tf.layers import atrous_conv2d
from deeplab_tf.layers import atrous_depthwise_conv2d
from tests.cpu_capabilities import DILATION_ERROR
from tests.cpu_capabilities import bfloat16_sums_in_float32
from tests.cpu_capabilities import has_dilated_conv2d_gradients

RATES = (1, 2, 3, 6, 12, 18, 24)  # 3: odd rate with an even kernel splits the pad unevenly
SIZES = ((7, 9), (10, 8), (33, 33), (5, 4))
KERNEL_SIZES = (1, 2, 3, 4)
CHANNELS, FILTERS, MULTIPLIER = 3, 4, 2
OPS = {"conv": atrous_conv2d, "depthwise": atrous_depthwise_conv2d}


def reference(x, w, rate, padding, depthwise):
    """y[b, i, j, o] = sum_{u, v, c} xpad[b, i + r u, j + r v, c] w[u, v, c, o], in float64."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    k = w.shape[0]
    if padding == "same":
        total = (k - 1) * rate
        before = total // 2
        x = np.pad(x, [(0, 0), (before, total - before), (before, total - before), (0, 0)])
    out_h, out_w = x.shape[1] - (k - 1) * rate, x.shape[2] - (k - 1) * rate
    y = 0.0
    for u in range(k):
        for v in range(k):
            patch = x[:, rate * u:rate * u + out_h, rate * v:rate * v + out_w, :]
            if depthwise:  # output channel c * multiplier + m
                term = (patch[..., :, None] * w[u, v]).reshape(patch.shape[:3] + (-1,))
            else:
                term = np.einsum("bhwc,co->bhwo", patch, w[u, v])
            y = y + term
    return y


def random_case(size, kernel_size, depthwise, seed=0, batch=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *size, CHANNELS)).astype(np.float32)
    out = MULTIPLIER if depthwise else FILTERS
    w = rng.standard_normal((kernel_size, kernel_size, CHANNELS, out)).astype(np.float32)
    return x, w


def assert_close(actual, expected):
    expected = np.asarray(expected)
    atol = 1e-5 * max(np.abs(expected).max(), 1.0)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5, atol=atol)


def fits(size, kernel_size, rate, padding):
    return padding == "same" or min(size) > (kernel_size - 1) * rate


def lacks_native_gradients(op, rate, implementation, dtype="float32"):
    """Whether `implementation` differentiates through TF's dilated `tf.nn.conv2d` gradient
    kernels in `dtype` and this CPU has none (probed: which exist depends on the CPU)."""
    return (implementation == "native" and op == "conv" and rate > 1
            and not has_dilated_conv2d_gradients(dtype))


CASES = [
    (rate, size, k, padding)
    for rate in RATES
    for size in SIZES
    for k in KERNEL_SIZES
    for padding in ("same", "valid")
    if fits(size, k, rate, padding)
]


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("rate,size,kernel_size,padding", CASES)
def test_matches_numpy_reference(rate, size, kernel_size, padding, op, implementation):
    depthwise = op == "depthwise"
    x, w = random_case(size, kernel_size, depthwise)
    y = OPS[op](x, w, rate, padding=padding, implementation=implementation)
    expected = reference(x, w, rate, padding, depthwise)
    assert y.shape == expected.shape
    assert_close(y, expected)


def test_same_padding_matches_tf_convention_for_even_kernels():
    # TF's SAME puts the odd extra zero after; the reference and both implementations agree.
    x, w = random_case((6, 6), 2, depthwise=False)
    for rate in (1, 3):
        tf_same = tf.nn.convolution(x, w, padding="SAME", dilations=rate)
        assert_close(tf_same, reference(x, w, rate, "same", depthwise=False))
        for implementation in ATROUS_IMPLEMENTATIONS:
            assert_close(atrous_conv2d(x, w, rate, "SAME", implementation), tf_same)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    "rate,size,kernel_size,padding",
    [(2, (7, 9), 3, "same"), (6, (10, 8), 2, "same"), (12, (5, 4), 3, "same"),
     (3, (10, 8), 3, "valid"), (1, (7, 9), 3, "same")],
)
def test_gradients_agree(rate, size, kernel_size, padding, op):
    depthwise = op == "depthwise"
    x, w = random_case(size, kernel_size, depthwise, seed=1)
    x, w = tf.constant(x), tf.constant(w)
    grads = {}
    for implementation in ATROUS_IMPLEMENTATIONS:
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = OPS[op](x, w, rate, padding, implementation)
            upstream = tf.random.stateless_normal(tf.shape(y), seed=[1, 2])
            loss = tf.reduce_sum(y * upstream)
        if lacks_native_gradients(op, rate, implementation):
            with pytest.raises(tf.errors.InvalidArgumentError, match=DILATION_ERROR):
                tape.gradient(loss, [x, w])
            continue
        grads[implementation] = tape.gradient(loss, [x, w])
    # Against native's where this CPU has them, else the next implementation's.
    reference_grads, *others = grads.values()
    for other in others:
        for grad, expected in zip(other, reference_grads):
            assert_close(grad, expected)


def reference_gradients(x, w, g, rate, padding, depthwise):
    """d sum(y * g) / d (x, w) of `reference`, in float64, from its adjoint."""
    x64, w64, g = x.astype(np.float64), w.astype(np.float64), g.astype(np.float64)
    k, multiplier = w.shape[0], w.shape[-1]
    before = after = 0
    if padding == "same":
        before, after = ((k - 1) * rate) // 2, (k - 1) * rate - ((k - 1) * rate) // 2
    xpad = np.pad(x64, [(0, 0), (before, after), (before, after), (0, 0)])
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(w64)
    out_h, out_w = g.shape[1:3]
    if depthwise:
        g = g.reshape(g.shape[:3] + (x.shape[-1], multiplier))
    for u in range(k):
        for v in range(k):
            rows, cols = slice(rate * u, rate * u + out_h), slice(rate * v, rate * v + out_w)
            patch = xpad[:, rows, cols, :]
            if depthwise:
                dw[u, v] = np.einsum("bhwc,bhwcm->cm", patch, g)
                dxpad[:, rows, cols, :] += np.einsum("bhwcm,cm->bhwc", g, w64[u, v])
            else:
                dw[u, v] = np.einsum("bhwc,bhwo->co", patch, g)
                dxpad[:, rows, cols, :] += np.einsum("bhwo,co->bhwc", g, w64[u, v])
    return dxpad[:, before:before + x.shape[1], before:before + x.shape[2], :], dw


def tape_gradients(fn, x, w, g):
    x, w = tf.constant(x), tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        loss = tf.reduce_sum(fn(x, w) * g)
    return tape.gradient(loss, [x, w])


GRADIENT_CASES = [
    (rate, size, k, padding)
    for rate, size in [(1, (7, 9)), (2, (10, 8)), (3, (7, 9)), (6, (10, 8)), (12, (5, 4)),
                       (18, (33, 33)), (24, (7, 9))]
    for k, padding in [(3, "same"), (2, "same"), (3, "valid")]
    if fits(size, k, rate, padding)
]


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("rate,size,kernel_size,padding", GRADIENT_CASES)
def test_gradients_match_numpy_reference(rate, size, kernel_size, padding, op, implementation):
    depthwise = op == "depthwise"
    x, w = random_case(size, kernel_size, depthwise, seed=2)
    expected_y = reference(x, w, rate, padding, depthwise)
    g = np.random.default_rng(3).standard_normal(expected_y.shape).astype(np.float32)
    fn = lambda x, w: OPS[op](x, w, rate, padding, implementation)  # noqa: E731
    if lacks_native_gradients(op, rate, implementation):
        with pytest.raises(tf.errors.InvalidArgumentError, match=DILATION_ERROR):
            tape_gradients(fn, x, w, g)
        return
    grads = tape_gradients(fn, x, w, g)
    for grad, expected in zip(grads, reference_gradients(x, w, g, rate, padding, depthwise)):
        assert grad is not None
        assert_close(grad, expected)


@pytest.mark.parametrize("implementation", ("shifted_gemm", "tap_gradient"))
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("rate,kernel_size,padding",
                         [(24, 3, "same"), (24, 2, "same"), (5, 4, "same"), (2, 3, "valid")])
def test_per_tap_dynamic_shapes_gradients(rate, kernel_size, padding, op, implementation):
    # Unknown sizes: the taps' ranges are clipped in the graph instead of skipped in Python.
    depthwise = op == "depthwise"
    _, w = random_case((1, 1), kernel_size, depthwise)
    spec = tf.TensorSpec([None, None, None, CHANNELS])

    @tf.function(input_signature=[spec, tf.TensorSpec(w.shape), tf.TensorSpec(None)])
    def grads(x, w, g):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            loss = tf.reduce_sum(OPS[op](x, w, rate, padding, implementation) * g)
        return tape.gradient(loss, [x, w])

    for size, batch in (((5, 4), 1), ((9, 13), 3), ((30, 27), 2)):
        if not fits(size, kernel_size, rate, padding):
            continue
        x, _ = random_case(size, kernel_size, depthwise, seed=4, batch=batch)
        g = np.random.default_rng(5).standard_normal(
            reference(x, w, rate, padding, depthwise).shape).astype(np.float32)
        expected = reference_gradients(x, w, g, rate, padding, depthwise)
        for grad, want in zip(grads(x, w, g), expected):
            assert_close(grad, want)


def count_ops(fn, x, w, op_type):
    graph = tf.function(fn).get_concrete_function(tf.constant(x), tf.constant(w)).graph
    return sum(node.type == op_type for node in graph.get_operations())


def test_shifted_gemm_skips_taps_in_the_padding():
    x, w = random_case((7, 9), 3, depthwise=False)
    fn = lambda rate: lambda x, w: atrous_conv2d(x, w, rate, "same", "shifted_gemm")
    assert count_ops(fn(1), x, w, "MatMul") == 9
    assert count_ops(fn(7), x, w, "MatMul") == 3  # rows at +-7 fall off a 7-row map
    assert count_ops(fn(9), x, w, "MatMul") == 1  # only the centre tap: a 1x1 convolution


def gradient_op_counts(rate, size, kernel_size=3):
    """Counts of conv/GEMM op types in the graph of tap_gradient's forward pass and both
    gradients, and its Conv2D ops."""
    x, w = random_case(size, kernel_size, depthwise=False)

    def grads(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            loss = tf.reduce_sum(atrous_conv2d(x, w, rate, "same", "tap_gradient"))
        return tape.gradient(loss, [x, w])

    graph = tf.function(grads).get_concrete_function(tf.constant(x), tf.constant(w)).graph
    ops = graph.get_operations()
    op_types = ("MatMul", "Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
    counts = {op_type: sum(node.type == op_type for node in ops) for op_type in op_types}
    return counts, [node for node in ops if node.type == "Conv2D"]


def test_tap_gradient_uses_forward_convolutions_and_one_gemm_per_useful_tap():
    counts, convs = gradient_op_counts(2, (7, 9))
    # Forward and input gradient are forward convolutions; 9 taps read the map: 9 GEMMs.
    assert counts == {"MatMul": 9, "Conv2D": 2, "Conv2DBackpropInput": 0,
                      "Conv2DBackpropFilter": 0}
    assert [conv.inputs[1].shape.as_list()[:2] for conv in convs] == [[3, 3], [3, 3]]
    counts, convs = gradient_op_counts(7, (7, 9))  # rows at +-7 fall off a 7-row map
    assert counts["MatMul"] == 3
    assert [conv.inputs[1].shape.as_list()[:2] for conv in convs] == [[1, 3], [1, 3]]
    counts, convs = gradient_op_counts(9, (7, 9))  # only the centre tap: a 1x1 convolution
    assert counts["MatMul"] == 1
    assert [conv.inputs[1].shape.as_list()[:2] for conv in convs] == [[1, 1], [1, 1]]


# Largest error of a low-precision result relative to the largest reference value: a few
# roundings of the output and of sums in the type (bfloat16 keeps 8 significant bits, float16 11).
LOW_PRECISION_TOLERANCE = {"bfloat16": 2e-2, "float16": 2e-2}
# Where this CPU's bfloat16 kernels round their sums to bfloat16 along the way (probed: Eigen's,
# wherever oneDNN does not take bfloat16), errors grow as sqrt(terms) * 2**-9: 2.3e-2 measured for
# the 160-term kernel gradient of a rate-1 convolution (1e-2 at most with oneDNN's float32 sums).
BFLOAT16_SUMS_TOLERANCE = 5e-2


def low_precision_tolerance(dtype):
    """Returns LOW_PRECISION_TOLERANCE[dtype], or BFLOAT16_SUMS_TOLERANCE for bfloat16 where
    this CPU's bfloat16 kernels do not sum in float32."""
    if dtype == "bfloat16" and not bfloat16_sums_in_float32():
        return BFLOAT16_SUMS_TOLERANCE
    return LOW_PRECISION_TOLERANCE[dtype]


def rounded(array, dtype):
    """`array` rounded to `dtype`, back in float64 (the inputs the reference sees)."""
    return tf.cast(tf.cast(array, dtype), tf.float64).numpy()


def assert_close_relative_to_max(actual, expected, tolerance):
    actual = tf.cast(actual, tf.float64).numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * np.abs(expected).max())


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", LOW_PRECISION_TOLERANCE)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("rate,padding", [(1, "same"), (2, "valid"), (6, "same"), (18, "same")])
def test_low_precision_matches_numpy_reference(rate, padding, op, dtype, implementation):
    depthwise, tolerance = op == "depthwise", low_precision_tolerance(dtype)
    x, w = random_case((10, 8), 3, depthwise, seed=4)
    x, w = rounded(x, dtype), rounded(w, dtype)
    expected_y = reference(x, w, rate, padding, depthwise)
    g = rounded(np.random.default_rng(5).standard_normal(expected_y.shape), dtype)
    fn = lambda x, w: OPS[op](x, w, rate, padding, implementation)  # noqa: E731
    inputs = [tf.cast(a, dtype) for a in (x, w, g)]
    y = fn(*inputs[:2])
    assert y.dtype == dtype
    assert_close_relative_to_max(y, expected_y, tolerance)
    if lacks_native_gradients(op, rate, implementation, dtype):
        # No such kernel on this CPU (probed: float16 needs AVX512-FP16, and any type oneDNN);
        # TF raises. `auto` takes tap_gradient in float16.
        with pytest.raises(tf.errors.InvalidArgumentError, match=DILATION_ERROR):
            tape_gradients(fn, *inputs)
        return
    grads = tape_gradients(fn, *inputs)
    for grad, expected in zip(grads, reference_gradients(x, w, g, rate, padding, depthwise)):
        assert grad.dtype == dtype
        assert_close_relative_to_max(grad, expected, tolerance)


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
@pytest.mark.parametrize("rate,size", [(1, (9, 9)), (2, (10, 8)), (6, (21, 21))])
def test_bfloat16_convolution_rounds_like_one_float32_sum(rate, size, implementation):
    """Every implementation's bfloat16 full convolution keeps oneDNN's error bound: sums kept in
    float32 and rounded to bfloat16 (unit roundoff u = 2**-8) once per tap product and once at
    the end, so each output is within u * (sum over taps of |tap product| + |exact output|) of
    the exact value. A sum of the tap products in bfloat16 (rounding every partial sum) leaves
    that bound at a fraction of a percent of the outputs; so does any other extra rounding."""
    if not bfloat16_sums_in_float32():
        pytest.skip("this CPU's bfloat16 kernels round their sums to bfloat16 (probed)")
    rng = np.random.default_rng(rate)
    channels = 64
    x = rounded(rng.standard_normal((2, *size, channels)), "bfloat16")
    w = rounded(rng.standard_normal((3, 3, channels, 16)) / np.sqrt(9 * channels), "bfloat16")
    exact = reference(x, w, rate, "same", depthwise=False)
    padded = np.pad(x, [(0, 0), (rate, rate), (rate, rate), (0, 0)])
    tap_magnitudes = sum(
        np.abs(np.einsum("bhwc,co->bhwo",
                         padded[:, rate * u:rate * u + size[0], rate * v:rate * v + size[1]],
                         w[u, v]))
        for u in range(3) for v in range(3))
    bound = 2.0 ** -8 * (tap_magnitudes + np.abs(exact)) * 1.01  # 1%: second-order terms
    y = atrous_conv2d(tf.constant(x, tf.bfloat16), tf.constant(w, tf.bfloat16), rate, "same",
                      implementation)
    errors = np.abs(tf.cast(y, tf.float64).numpy() - exact)
    outside = errors > bound
    assert not outside.any(), (f"{outside.mean():.2%} of the outputs beyond the bound; worst "
                               f"error / bound {np.max(errors / bound):.2f}")


@pytest.mark.parametrize("dtype,tolerance", [("float16", 2e-2), ("float64", 1e-12)])
@pytest.mark.parametrize("padding", ("same", "valid"))
@pytest.mark.parametrize("dynamic", (False, True))
def test_auto_has_gradients_in_float16_and_float64(dynamic, padding, dtype, tolerance, monkeypatch):
    """Where this CPU's kernels have no gradient of a dilated convolution in the type (float64
    always; float16 unless the CPU has AVX512-FP16 or AMX-FP16), `auto`'s rule takes
    `tap_gradient` on every padding and with unknown sizes; where they have one, its float32 rule
    (`tap_gradient` for "same" padding and static sizes, `native` otherwise). Either way the
    gradients match the reference."""
    from deeplab_tf.layers import atrous_conv

    picks, select = [], atrous_conv.select_implementation
    monkeypatch.setattr(atrous_conv, "select_implementation",
                        lambda *args: picks.append(select(*args)) or picks[-1])
    x, w = (rounded(a, dtype) for a in random_case((10, 8), 3, depthwise=False, seed=8))
    expected_y = reference(x, w, 2, padding, False)
    g = rounded(np.random.default_rng(9).standard_normal(expected_y.shape), dtype)
    spec = [None, None, None, x.shape[-1]] if dynamic else x.shape

    @tf.function(input_signature=[tf.TensorSpec(spec, dtype), tf.TensorSpec(w.shape, dtype),
                                  tf.TensorSpec(None, dtype)])
    def gradients(x, w, g):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            loss = tf.reduce_sum(atrous_conv2d(x, w, 2, padding) * g)
        return tape.gradient(loss, [x, w])

    grads = gradients(*(tf.cast(a, dtype) for a in (x, w, g)))
    float32_rule = "tap_gradient" if padding == "same" and not dynamic else "native"
    assert picks == [float32_rule if has_dilated_conv2d_gradients(dtype) else "tap_gradient"]  # once, while tracing
    for grad, expected in zip(grads, reference_gradients(x, w, g, 2, padding, False)):
        assert_close_relative_to_max(grad, expected, tolerance)


def test_tap_gradient_has_float64_gradients_of_dilated_convolutions():
    # TF on CPU has no float64 kernel for the dilated convolution's gradients; tap_gradient's
    # are forward convolutions and GEMMs, which have one.
    x, w = (a.astype(np.float64) for a in random_case((10, 8), 3, depthwise=False, seed=6))
    g = np.random.default_rng(7).standard_normal((2, 10, 8, FILTERS))
    grads = tape_gradients(lambda x, w: atrous_conv2d(x, w, 6, "same", "tap_gradient"), x, w, g)
    for grad, want in zip(grads, reference_gradients(x, w, g, 6, "same", depthwise=False)):
        assert grad.dtype == tf.float64
        np.testing.assert_allclose(grad.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depthwise", (False, True))
def test_auto_picks_an_exact_implementation(depthwise):
    from deeplab_tf.layers.atrous_auto import select_implementation

    concrete = set(ATROUS_IMPLEMENTATIONS) - {"auto"}
    for shape in [(8, 22, 30, 320), (4, 33, 33, 2048), (4, 65, 65, 2048), (None, None, None, 3),
                  (2, 5, 4, 3), (1, 129, 129, 256)]:
        for rate in (1, 2, 3, 6, 12, 18, 24, 36):
            for k in (1, 2, 3):
                for padding in ("same", "valid"):
                    for dtype in ("float32", "bfloat16", "float16", "float64"):
                        for deterministic in (False, True):
                            kernel_shape = (k, k, shape[-1], 1 if depthwise else 256)
                            name = select_implementation(shape, kernel_shape, rate, padding, depthwise,
                                                         dtype, deterministic)
                            assert name in concrete


@pytest.mark.parametrize("native_gradients", (True, False), ids=("onednn_like", "eigen_like"))
def test_auto_rule_on_the_aspp_shapes(native_gradients, monkeypatch):
    """The rule, on both kinds of CPU: with native dilated gradients in the type (oneDNN's float32
    and bfloat16) and without (float16 and float64 on most CPUs, every type with TF's Eigen
    kernels); which one this CPU is is checked by the test below."""
    from deeplab_tf.layers import atrous_auto
    from deeplab_tf.layers.atrous_auto import select_implementation

    monkeypatch.setattr(atrous_auto, "native_has_dilated_gradients", lambda dtype: native_gradients)
    camvid, conv = (8, 22, 30, 320), (3, 3, 320, 256)
    for dtype in ("float32", "bfloat16", "float16", "float64"):
        assert select_implementation(camvid, conv, 1, "same", False, dtype) == "native"
        for rate in (2, 12, 18, 36):
            assert select_implementation(camvid, conv, rate, "same", False, dtype) == "tap_gradient"
        assert select_implementation(camvid, (1, 1, 320, 256), 6, "same", False, dtype) == "native"
        assert select_implementation(camvid, (3, 3, 320, 1), 36, "same", True, dtype) == "native"  # depthwise
        # "valid" padding, unknown sizes, op determinism: native where it has gradients, else a
        # per-tap implementation (space_to_batch when determinism is on).
        fallback = "native" if native_gradients else "tap_gradient"
        assert select_implementation(camvid, conv, 36, "valid", False, dtype) == fallback
        assert select_implementation((None, None, None, 320), conv, 36, "same", False, dtype) == fallback
        assert (select_implementation(camvid, conv, 12, "same", False, dtype, True)
                == ("native" if native_gradients else "space_to_batch"))
    os8, os8_conv = (4, 65, 65, 2048), (3, 3, 2048, 256)
    assert [select_implementation(os8, os8_conv, rate, "same", False)
            for rate in (1, 2, 6, 12, 18, 24)] == ["native"] + ["tap_gradient"] * 5


@pytest.mark.parametrize("dtype", ("float32", "bfloat16", "float16", "float64"))
def test_auto_takes_native_only_where_this_cpu_has_gradients(dtype):
    """Where `auto`'s rule takes `native` for a dilated full convolution (rate 2: "valid"
    padding, unknown sizes, op determinism), this CPU has that convolution's gradients in the
    type (probed here independently of the library's own probe)."""
    from deeplab_tf.layers.atrous_auto import select_implementation

    picks = {select_implementation(shape, (3, 3, 8, 8), 2, padding, False, dtype, deterministic)
             for shape in ((1, 9, 9, 8), (None, None, None, 8)) for padding in ("same", "valid")
             for deterministic in (False, True)}
    assert "native" not in picks or has_dilated_conv2d_gradients(dtype), (
        f"auto picks native in {dtype}, whose dilated conv2d gradients this CPU lacks: {picks}")


# Shapes on which `auto` takes each of its branches: rates 1..24 on odd and even sizes, maps
# smaller than the rate (only the centre tap left), maps of 64+ pixels.
AUTO_CASES = [
    (rate, size, k, padding)
    for rate in (1, 2, 3, 6, 12, 18, 24)
    for size in ((7, 9), (10, 8), (5, 4), (33, 33), (64, 65), (66, 64))
    for k in (2, 3)
    for padding in ("same", "valid")
    if fits(size, k, rate, padding) and (max(size) < 64 or rate <= 3)
]


@pytest.mark.parametrize("op", OPS)
def test_auto_matches_numpy_reference_whatever_it_picks(op, monkeypatch):
    """`auto` gives the reference values and gradients on every branch it takes."""
    from deeplab_tf.layers import atrous_conv

    depthwise = op == "depthwise"
    picks, select = [], atrous_conv.select_implementation
    monkeypatch.setattr(atrous_conv, "select_implementation",
                        lambda *args: picks.append(select(*args)) or picks[-1])
    for rate, size, k, padding in AUTO_CASES:
        x, w = random_case(size, k, depthwise, seed=rate, batch=2)
        expected = reference(x, w, rate, padding, depthwise)
        assert_close(OPS[op](x, w, rate, padding, "auto"), expected)
        g = np.random.default_rng(rate + 1).standard_normal(expected.shape).astype(np.float32)
        grads = tape_gradients(lambda x, w: OPS[op](x, w, rate, padding, "auto"), x, w, g)
        for grad, want in zip(grads, reference_gradients(x, w, g, rate, padding, depthwise)):
            assert_close(grad, want)
    assert len(picks) == 2 * len(AUTO_CASES)  # the forward pass, then again under the tape
    if not depthwise:
        assert set(picks) == {"native", "tap_gradient"}


def test_conv_defaults_to_auto(monkeypatch):
    from deeplab_tf.layers import atrous_conv

    picks, select = [], atrous_conv.select_implementation
    monkeypatch.setattr(atrous_conv, "select_implementation",
                        lambda *args: picks.append(select(*args)) or picks[-1])
    x, w = random_case((7, 9), 3, depthwise=False)
    atrous_conv2d(x, w, 12)
    layer = AtrousConv2D(FILTERS, 3, rate=12)
    layer(x)
    assert layer.implementation == "auto"
    assert picks == ["tap_gradient", "tap_gradient"]


def make_layer(kind, **kwargs):
    if kind == "conv":
        return AtrousConv2D(FILTERS, 3, **kwargs)
    return AtrousDepthwiseConv2D(3, depth_multiplier=MULTIPLIER, **kwargs)


@pytest.mark.parametrize("kind", OPS)
def test_config_round_trip(kind):
    regularizer = "kernel_regularizer" if kind == "conv" else "depthwise_regularizer"
    layer = make_layer(kind, rate=6, padding="VALID", implementation="space_to_batch",
                       activation="relu", bias_initializer="ones",
                       **{regularizer: keras.regularizers.L2(1e-4)})
    x, _ = random_case((14, 15), 3, depthwise=False)
    y = layer(x)
    config = layer.get_config()
    assert config["padding"] == "valid"
    assert json.loads(json.dumps(config)) == config
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    assert_close(clone(x), y)
    assert len(clone.losses) == 1


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
def test_keras_file_save_and_load(tmp_path, implementation):
    inputs = keras.Input((None, None, CHANNELS))
    hidden = AtrousConv2D(FILTERS, 3, rate=2, implementation=implementation)(inputs)
    outputs = AtrousDepthwiseConv2D(2, rate=6, padding="valid", depth_multiplier=MULTIPLIER,
                                    implementation=implementation)(hidden)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "atrous.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [type(layer) for layer in loaded.layers[1:]] == [AtrousConv2D, AtrousDepthwiseConv2D]
    x, _ = random_case((9, 10), 1, depthwise=False)
    assert_close(loaded(x), model(x))


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
@pytest.mark.parametrize("rate,padding", [(2, "same"), (6, "same"), (3, "valid")])
@pytest.mark.parametrize("kind", OPS)
def test_weights_interchangeable_with_keras(kind, rate, padding, implementation):
    if kind == "conv":
        keras_layer = keras.layers.Conv2D(FILTERS, 3, padding=padding, dilation_rate=rate,
                                          bias_initializer="random_normal")
    else:
        keras_layer = keras.layers.DepthwiseConv2D(
            3, padding=padding, dilation_rate=rate, depth_multiplier=MULTIPLIER,
            bias_initializer="random_normal")
    layer = make_layer(kind, rate=rate, padding=padding, implementation=implementation)
    x, _ = random_case((11, 12), 3, depthwise=False)
    expected = keras_layer(x)
    layer.build(x.shape)
    assert [w.path.split("/")[-1] for w in layer.weights] == ["kernel", "bias"]
    layer.set_weights(keras_layer.get_weights())
    assert_close(layer(x), expected)


@pytest.mark.parametrize("implementation", ATROUS_IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", OPS)
def test_dynamic_shapes_in_tf_function(kind, implementation):
    layer = make_layer(kind, rate=6, implementation=implementation)
    layer.build((None, None, None, CHANNELS))
    reference_layer = make_layer(kind, rate=6, implementation="native")
    reference_layer.build((None, None, None, CHANNELS))
    reference_layer.set_weights(layer.get_weights())
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, None, None, CHANNELS])])
    symbolic = fn.get_concrete_function().structured_outputs
    assert symbolic.shape.as_list() == list(layer.compute_output_shape((None,) * 3 + (CHANNELS,)))
    for size, batch in (((5, 4), 1), ((10, 13), 3)):
        x, _ = random_case(size, 1, depthwise=False, batch=batch)
        assert_close(fn(x), reference_layer(x))


@pytest.mark.parametrize("kind", OPS)
def test_compute_output_shape(kind):
    channels = FILTERS if kind == "conv" else CHANNELS * MULTIPLIER
    same = make_layer(kind, rate=2)
    valid = make_layer(kind, rate=2, padding="valid")
    assert same.compute_output_shape((None, 10, None, CHANNELS)) == (None, 10, None, channels)
    assert valid.compute_output_shape((2, 10, None, CHANNELS)) == (2, 6, None, channels)
    symbolic = valid(keras.Input((10, 9, CHANNELS)))
    assert tuple(symbolic.shape) == (None, 6, 5, channels)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"rate": 0}, "rate=0"), ({"padding": "full"}, "'full'"),
     ({"implementation": "fast"}, r"'native', 'space_to_batch'.*'fast'")],
)
def test_invalid_arguments(kwargs, match):
    x, w = random_case((5, 5), 3, depthwise=False)
    args = {"rate": 2, **kwargs}
    for op in OPS.values():
        with pytest.raises(ValueError, match=match):
            op(x, w, **args)
    for kind in OPS:
        with pytest.raises(ValueError, match=match):
            make_layer(kind, **kwargs)


def test_invalid_kernel_size():
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        AtrousConv2D(FILTERS, (3, 5))
    assert AtrousDepthwiseConv2D((3, 3)).kernel_size == 3


def test_auto_takes_a_reproducible_implementation_under_op_determinism(monkeypatch):
    from tensorflow.python.framework import config as tf_config

    from deeplab_tf.layers import atrous_conv

    ran = []
    for name in ("native", "tap_gradient", "space_to_batch"):
        real = atrous_conv._IMPLEMENTATIONS[name]
        monkeypatch.setitem(atrous_conv._IMPLEMENTATIONS, name,
                            lambda *args, real=real, name=name: ran.append(name) or real(*args))
    x, w = random_case((7, 9), 3, depthwise=False)
    atrous_conv2d(x, w, 12)
    tf.config.experimental.enable_op_determinism()
    try:
        actual = atrous_conv2d(x, w, 12)
    finally:
        tf_config.disable_op_determinism()
    # Native where this CPU has its gradients (probed), else space_to_batch.
    assert ran == ["tap_gradient", "native" if has_dilated_conv2d_gradients("float32") else "space_to_batch"]
    assert_close(actual, reference(x, w, 12, "same", False))


def test_auto_under_op_determinism_takes_no_per_tap_gemms_in_float16(monkeypatch):
    """Under op determinism `auto` takes `native` in float16 where this CPU has its dilated
    gradients (AVX512-FP16 or AMX-FP16), else `space_to_batch`; the gradients match the reference."""
    from tensorflow.python.framework import config as tf_config

    from deeplab_tf.layers import atrous_conv

    picks, select = [], atrous_conv.select_implementation
    monkeypatch.setattr(atrous_conv, "select_implementation",
                        lambda *args: picks.append(select(*args)) or picks[-1])
    x, w = (rounded(a, "float16") for a in random_case((7, 9), 3, depthwise=False))
    g = np.ones((2, 7, 9, FILTERS))
    tf.config.experimental.enable_op_determinism()
    try:
        grads = tape_gradients(lambda x, w: atrous_conv2d(x, w, 2), *(tf.cast(a, tf.float16) for a in (x, w, g)))
    finally:
        tf_config.disable_op_determinism()
    assert picks == ["native" if has_dilated_conv2d_gradients("float16") else "space_to_batch"]
    for grad, expected in zip(grads, reference_gradients(x, w, g, 2, "same", False)):
        assert_close_relative_to_max(grad, expected, LOW_PRECISION_TOLERANCE["float16"])
