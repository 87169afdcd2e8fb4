"""1x1 convolution training step: oneDNN's kernel gradient vs the same gradient as one GEMM.

    python -m bench.pointwise_kernel_gradient [--dtype=float32|bfloat16] [--network=resnet50|mobilenet_v2]

For ResNet-50's bottleneck 1x1 shapes at a 321 crop, batch 4, output stride 16 (the peers
benchmark's step), or MobileNetV2 v3+'s at a 321 crop, batch 8 (the CamVid recipe's), times the
forward pass + both gradients of `sum(conv(x, w) * g)` two ways: `tf.nn.conv2d`'s own gradients
(`native`), and `deeplab_tf.layers.tuned_conv.pointwise_conv2d`, whose kernel gradient is `x^T g`
as one MatMul over the flattened positions (`gemm`; input gradient TensorFlow's own), in
--dtype (float32 by default). Both are checked equal (1e-5 of the largest value in float32, 1e-2
in bfloat16, whose kernels may sum in another order), then timed in 9 interleaved, shuffled
repeats; printed: the median ms of each and their ratio per shape, and the sums. A throwaway measurement of whether
the backbone's kernel gradients could go through GEMMs (issue 9); `TunedConv2D` now takes the GEMM
per shape where the tuner times it faster.
"""

import argparse
import random
import time

import numpy as np
import tensorflow as tf

from bench import provenance
from deeplab_tf.layers.tuned_conv import pointwise_conv2d

def step(kind, w):
    @tf.function
    def s(x, g):
        with tf.GradientTape() as t:
            t.watch([x, w])
            y = tf.nn.conv2d(x, w, 1, "VALID") if kind == "native" else pointwise_conv2d(x, w, (1, 1))
            loss = tf.reduce_sum(y * g)
        return t.gradient(loss, [x, w])
    return s


# (batch, [(size, in, out channels), ...]) at a 321 crop, output stride 16: ResNet-50's bottleneck
# 1x1 shapes (batch 4); MobileNetV2's expansions and projections, then the v3+ decoder's 1x1s at
# stride 4 (batch 8), each distinct shape once.
SHAPES = {
    "resnet50": (4, [(81, 256, 64), (81, 64, 256), (41, 512, 128), (41, 128, 512),
                     (21, 1024, 256), (21, 256, 1024), (21, 2048, 512), (21, 512, 2048)]),
    "mobilenet_v2": (8, [(161, 32, 16), (161, 16, 96), (81, 96, 24), (81, 24, 144), (81, 144, 24),
                         (41, 144, 32), (41, 32, 192), (41, 192, 32), (21, 192, 64), (21, 64, 384),
                         (21, 384, 64), (21, 576, 96), (21, 96, 576), (21, 960, 160), (21, 160, 960),
                         (81, 176, 128), (81, 128, 128)]),
}
REPEATS = 9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--network", choices=sorted(SHAPES), default="resnet50")
    args = parser.parse_args(argv)
    print(provenance.describe())
    dtype, (batch, shapes) = args.dtype, SHAPES[args.network]
    tolerance = {"float32": 1e-5, "bfloat16": 1e-2}[dtype]
    rng = np.random.default_rng(0)
    totals = {"native": 0.0, "gemm": 0.0}
    for size, channels, filters in shapes:
        x, w, g = (tf.constant(rng.standard_normal(shape), dtype=dtype) for shape in (
            (batch, size, size, channels), (1, 1, channels, filters), (batch, size, size, filters)))
        w = w * tf.constant(0.05, dtype)
        steps = {kind: step(kind, w) for kind in totals}
        native, gemm = (steps[kind](x, g) for kind in ("native", "gemm"))
        for a, b in zip(native, gemm):
            a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
            assert float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a))) < tolerance
        times = {kind: [] for kind in steps}
        for _ in range(REPEATS):
            order = list(steps)
            random.shuffle(order)
            for kind in order:
                start = time.perf_counter()
                [grad.numpy() for grad in steps[kind](x, g)]
                times[kind].append(1e3 * (time.perf_counter() - start))
        median = {kind: float(np.median(ms)) for kind, ms in times.items()}
        for kind in totals:
            totals[kind] += median[kind]
        print(f"{batch}x{size}x{size}x{channels}->{filters}: native {median['native']:.1f} ms, "
              f"gemm kernel gradient {median['gemm']:.1f} ms "
              f"({median['gemm'] / median['native']:.2f}x)")
    print(f"sum: native {totals['native']:.1f} ms, gemm {totals['gemm']:.1f} ms "
          f"({totals['gemm'] / totals['native']:.2f}x)")


if __name__ == "__main__":
    main()
